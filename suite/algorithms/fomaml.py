"""First-order MAML (Finn et al. 2017 §5.2; Nichol et al. 2018 §2): MAML's update with the second-order
terms dropped, i.e. the query-loss gradient taken at the adapted parameters θ'_i and applied to θ.

    for each T_i:  θ'_i = θ − α ∇θ L_Ti(f_θ) on its support set       (inner_steps times, no graph kept)
                   g_i  = ∇θ' L_Ti(f_θ'_i) on its query set
    θ ← Adam(θ, mean_i g_i)
"""
from __future__ import annotations

import torch
from torch.func import grad_and_value, vmap

from suite.algorithms.base import Learner as BaseLearner, make_torch_optimizer
from suite.algorithms.inner import sgd_adapt
from suite.algorithms.maml import HYPERPARAMETERS  # noqa: F401  (the same hyperparameters as MAML)


def task_gradient(loss, params, support_x, support_y, query_x, query_y, steps, lr, names=None):
    """(g_i, query loss) for one task."""
    adapted = sgd_adapt(loss, params, support_x, support_y, steps, lr, names)
    return grad_and_value(loss)(adapted, query_x, query_y)


def meta_gradient(model, params, tasks, steps, lr, vectorize: bool):
    """(mean_i g_i, mean query loss)."""
    params = {k: p.detach() for k, p in params.items()}

    def per_task(p, sx, sy, qx, qy):
        return task_gradient(model.loss, p, sx, sy, qx, qy, steps, lr, model.inner_loop_names)

    if vectorize:
        grads, losses = vmap(per_task, in_dims=(None, 0, 0, 0, 0))(params, *tasks.tensors())
        return {k: g.mean(0) for k, g in grads.items()}, losses.mean()
    results = [per_task(params, *tasks[i].tensors()) for i in range(len(tasks))]
    grads = {k: torch.stack([g[k] for g, _ in results]).mean(0) for k in params}
    return grads, torch.stack([value for _, value in results]).mean()


class Learner(BaseLearner):
    def __init__(self, model, params, hp, vectorize):
        super().__init__(model, params, hp, vectorize)
        self.optimizer = make_torch_optimizer(self.params, hp["meta_optimizer"])

    def step(self, tasks, iteration, generator):
        grads, loss = meta_gradient(self.model, self.params, tasks, self.hp["inner_steps"], self.hp["inner_lr"],
                                    self.vectorize)
        self.apply_gradients(grads)
        return loss.item()
