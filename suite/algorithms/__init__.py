"""Algorithms. Each module defines HYPERPARAMETERS (its manifest schema: every field required) and a Learner.

A Learner owns the parameter dict and its outer optimiser; `step(tasks, iteration, generator)` performs one
meta-iteration on a TaskBatch and returns the training loss. `task_shape()` says what it samples.
"""
from __future__ import annotations

from suite.algorithms.base import OPTIMIZER_SCHEMA, Learner, check_optimizer, make_torch_optimizer

__all__ = ["ALGORITHMS", "OPTIMIZER_SCHEMA", "Learner", "algorithm_schema", "check_optimizer", "make_learner",
           "make_torch_optimizer"]
from suite.schema import Field


def _registry():
    from suite.algorithms import anil, fomaml, maml, pretrained, reptile

    return {"maml": maml, "fomaml": fomaml, "anil": anil, "reptile": reptile, "pretrained": pretrained}


ALGORITHMS = _registry()


def algorithm_schema(name: str) -> dict[str, Field]:
    return {"algorithm": Field("str", choices=tuple(ALGORITHMS)), **ALGORITHMS[name].HYPERPARAMETERS}


def make_learner(name: str, model, params: dict, hp: dict, vectorize: bool) -> Learner:
    return ALGORITHMS[name].Learner(model, params, hp, vectorize)
