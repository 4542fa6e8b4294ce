"""First-order MAML (Finn et al. 2017 §5.2; Nichol et al. 2018 §2): MAML's update with the second-order
terms dropped, i.e. the query-loss gradient taken at the adapted parameters θ'_i and applied to θ.

    for each T_i:  θ'_i = θ − α ∇θ L_Ti(f_θ) on its support set       (inner_steps times, no graph kept)
                   g_i  = ∇θ' L_Ti(f_θ'_i) on its query set
    θ ← Adam(θ, mean_i g_i)
"""
from __future__ import annotations

from suite.algorithms.base import (check_evaluation, extra_inputs, finetune_steps_limit,  # noqa: F401
                                   initial_params, paths)  # (the protocol's usual answers)
from suite.algorithms.base import Learner as BaseLearner, make_torch_optimizer, mean_task_gradients
from suite.algorithms.inner import grad_and_losses, sgd_adapt
from suite.algorithms.maml import ARGS, carries_inner_state, check, task_shape  # noqa: F401

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = "the mean query loss of the meta-batch after adaptation"


def second_order(hp: dict) -> bool:
    return False


def hessian_vector_products(hp: dict) -> bool:
    return False



def task_gradient(loss, params, support_x, support_y, query_x, query_y, steps, lr, names=None):
    """(g_i, query loss) for one task (or for each task of a grouped batch)."""
    adapted = sgd_adapt(loss, params, support_x, support_y, steps, lr, names)
    return grad_and_losses(loss)(adapted, query_x, query_y)


def meta_gradient(model, params, tasks, steps, lr, path: str):
    """(mean_i g_i, mean query loss)."""
    def gradient_for_task(m, p, sx, sy, qx, qy):
        return task_gradient(m.loss, p, sx, sy, qx, qy, steps, lr, m.inner_loop_names)

    return mean_task_gradients(gradient_for_task, path, model, params, tasks)


class Learner(BaseLearner):
    capturable = True

    def __init__(self, model, params, hp, path):
        super().__init__(model, params, hp, path)
        self.optimizer = make_torch_optimizer(self.params, hp["meta_optimizer"])

    def update(self, tasks):
        """One meta-iteration, its logged loss as a tensor (as maml.Learner.update)."""
        grads, loss = meta_gradient(self.model, self.params, tasks, self.hp["inner_steps"], self.hp["inner_lr"],
                                    self.path)
        self.apply_gradients(grads)
        return loss

    def step(self, tasks, iteration, generator):
        return self.update(tasks).item()
