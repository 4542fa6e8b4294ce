"""Task families: each turns a seeded generator into batches of few-shot tasks.

A family module defines SCHEMA (its manifest fields), LOSS ('mse' or 'cross_entropy'), INPUT_DIM,
output_dim(config), loss_scale(config), loss_reduction(config) ('mean' or 'sum'), check_task_config(config, where)
and
Tasks(**config, data_dir).sample(n_tasks, shots, queries, generator, split) -> TaskBatch.
"""
from __future__ import annotations

from suite.schema import Field
from suite.tasks.base import TaskBatch, seeded_generator

__all__ = ["FAMILIES", "TASK_FIELD", "TaskBatch", "make_tasks", "seeded_generator", "task_schema"]


def _families():
    from suite.tasks import miniimagenet, omniglot, sinusoid

    return {"sinusoid": sinusoid, "omniglot": omniglot, "miniimagenet": miniimagenet}


FAMILIES = _families()
TASK_FIELD = Field("str", choices=tuple(FAMILIES), doc="task family")


def task_schema(family: str) -> dict[str, Field]:
    return {"family": TASK_FIELD, **FAMILIES[family].SCHEMA}


def make_tasks(config: dict, data_dir):
    """Build the task family named by config['family'] from its validated config; data under `data_dir`."""
    family = FAMILIES[config["family"]]
    return family.Tasks(**{k: v for k, v in config.items() if k != "family"}, data_dir=data_dir)
