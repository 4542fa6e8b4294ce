"""The "pretrain on all tasks" baseline of the MAML paper (Finn et al. 2017 §5.1, App. C): one network trained
jointly on data pooled from many tasks, then fine-tuned on each test task's support set like any other model.

    sample a batch of tasks, pool all their points
    θ ← optimiser(θ, ∇θ L(f_θ) on the pooled points)
"""
from __future__ import annotations

from suite.algorithms.base import OPTIMIZER_SCHEMA, Learner as BaseLearner, make_torch_optimizer
from suite.schema import Field

import torch

HYPERPARAMETERS = {
    "iterations": Field("positive_int", doc="training iterations"),
    "meta_batch": Field("positive_int", doc="tasks pooled into each batch"),
    "shots": Field("positive_int", doc="points (or images per class) taken from each task"),
    "optimizer": Field(OPTIMIZER_SCHEMA),
}


class Learner(BaseLearner):
    def __init__(self, model, params, hp, vectorize):
        super().__init__(model, params, hp, vectorize)
        self.optimizer = make_torch_optimizer(self.params, hp["optimizer"])

    def task_shape(self):
        return self.hp["meta_batch"], self.hp["shots"], 0

    def step(self, tasks, iteration, generator):
        loss = self.model.loss(self.params, tasks.support_x.flatten(0, 1), tasks.support_y.flatten(0, 1))
        grads = torch.autograd.grad(loss, list(self.params.values()))
        self.apply_gradients(dict(zip(self.params, grads)))
        return loss.item()
