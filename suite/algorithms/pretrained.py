"""The "pretrain on all tasks" baseline of the MAML paper (Finn et al. 2017 §5.1, App. C): one network trained
jointly on data pooled from many tasks, then fine-tuned on each test task's support set like any other model.

    sample a batch of tasks, pool all their points
    θ ← optimiser(θ, ∇θ L(f_θ) on the pooled points)
"""
from __future__ import annotations

from suite.algorithms.base import (check_evaluation, extra_inputs, finetune_steps_limit,  # noqa: F401
                                   initial_params, paths)  # (the protocol's usual answers)
from suite.algorithms.base import Learner as BaseLearner, make_torch_optimizer
from suite.lazy import lazy
from suite.protocol.fields import OUTER_OPTIMIZER
from suite.protocol.schema import Field

torch = lazy("torch")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = "its loss on the pooled batch"

ARGS = {
    "iterations": Field("positive_int", doc="training iterations"),
    "meta_batch": Field("positive_int", doc="tasks pooled into each batch"),
    "shots": Field("positive_int", doc="points (or images per class) taken from each task"),
    "optimizer": Field(OUTER_OPTIMIZER),
}


def check(hp: dict, task: dict, family, where: str):
    pass


def task_shape(hp: dict) -> tuple[int, int, int]:
    return hp["meta_batch"], hp["shots"], 0  # pooled training points only: no query set


def carries_inner_state(hp: dict) -> bool:
    return False


def second_order(hp: dict) -> bool:
    return False


def hessian_vector_products(hp: dict) -> bool:
    return False



class Learner(BaseLearner):
    def __init__(self, model, params, hp, path):
        super().__init__(model, params, hp, path)
        self.optimizer = make_torch_optimizer(self.params, hp["optimizer"])

    def step(self, tasks, iteration, generator):
        loss = self.model.loss(self.params, tasks.support_x.flatten(0, 1), tasks.support_y.flatten(0, 1))
        grads = torch.autograd.grad(loss, list(self.params.values()))
        self.apply_gradients(dict(zip(self.params, grads)))
        return loss.item()
