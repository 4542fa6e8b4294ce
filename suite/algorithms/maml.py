"""MAML (Finn, Abbeel & Levine 2017, arXiv 1703.03400, Algorithm 2), with the true second-order meta-gradient.

    sample a batch of tasks T_i
    for each T_i:  θ'_i = θ − α ∇θ L_Ti(f_θ) on its support set       (inner_steps times)
    θ ← Adam(θ, ∇θ Σ_i L_Ti(f_θ'_i) on the query sets)                 (differentiating through θ'_i)
"""
from __future__ import annotations

from functools import partial

from suite.algorithms.base import (check_evaluation, extra_inputs, finetune_steps_limit,  # noqa: F401
                                   initial_params, paths)  # (the protocol's usual answers)
from suite.algorithms.base import Learner as BaseLearner, make_torch_optimizer, map_tasks
from suite.algorithms.inner import sgd_adapt
from suite.lazy import lazy
from suite.protocol.fields import OUTER_OPTIMIZER
from suite.protocol.schema import Field

torch = lazy("torch")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = "the mean query loss of the meta-batch after adaptation"

ARGS = {
    "iterations": Field("positive_int", doc="meta-iterations"),
    "meta_batch": Field("positive_int", doc="tasks per meta-iteration"),
    "shots": Field("positive_int", doc="support points (regression) or images per class (classification)"),
    "queries": Field("positive_int", doc="query points, or images per class, per training task"),
    "inner_steps": Field("positive_int", doc="gradient steps in the inner loop during training"),
    "inner_lr": Field("positive_float", doc="α, the inner-loop step size"),
    "meta_optimizer": Field(OUTER_OPTIMIZER, doc="outer optimiser (Adam in the paper)"),
}


def check(hp: dict, task: dict, family, where: str):
    pass


def task_shape(hp: dict) -> tuple[int, int, int]:
    return hp["meta_batch"], hp["shots"], hp["queries"]


def carries_inner_state(hp: dict) -> bool:
    return False


def second_order(hp: dict) -> bool:
    return True


def hessian_vector_products(hp: dict) -> bool:
    return False



def query_loss_after_adaptation(model, params, support_x, support_y, query_x, query_y, steps, lr):
    adapted = sgd_adapt(model.loss, params, support_x, support_y, steps, lr, model.inner_loop_names)
    return model.loss(adapted, query_x, query_y)


def meta_loss(model, params, tasks, steps, lr, path: str, task_loss=query_loss_after_adaptation):
    """Mean over tasks of the query loss after adaptation."""
    loss_for_task = partial(task_loss, steps=steps, lr=lr)
    return map_tasks(loss_for_task, path, model, params, *tasks.tensors()).mean()


def meta_gradient(model, params, tasks, steps, lr, path: str, task_loss=query_loss_after_adaptation):
    """(∇θ of the meta-loss, the meta-loss), second order: autograd differentiates through the inner steps.
    The loop differentiates one task at a time, so only one task's graph is alive at once."""
    if path != "loop":
        loss = meta_loss(model, params, tasks, steps, lr, path, task_loss)
        return dict(zip(params, torch.autograd.grad(loss, list(params.values())))), loss.detach()
    grads, total = {k: torch.zeros_like(p) for k, p in params.items()}, 0.0
    for i in range(len(tasks)):
        loss = task_loss(model, params, *tasks[i].tensors(), steps, lr) / len(tasks)
        for k, g in zip(params, torch.autograd.grad(loss, list(params.values()))):
            grads[k] += g
        total += loss.detach()
    return grads, total


class Learner(BaseLearner):
    capturable = True

    def __init__(self, model, params, hp, path):
        super().__init__(model, params, hp, path)
        self.optimizer = make_torch_optimizer(self.params, hp["meta_optimizer"])

    task_loss = staticmethod(query_loss_after_adaptation)  # one task's query loss after its inner steps

    def update(self, tasks):
        """One meta-iteration, its logged loss as a tensor: no host synchronisation, so a CUDA graph can capture it
        (suite.training.graphs)."""
        grads, loss = meta_gradient(self.model, self.params, tasks, self.hp["inner_steps"], self.hp["inner_lr"],
                                    self.path, self.task_loss)
        self.apply_gradients(grads)
        return loss

    def step(self, tasks, iteration, generator):
        return self.update(tasks).item()
