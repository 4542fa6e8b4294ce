"""Task families: each turns a seeded generator into batches of few-shot tasks.

A family module defines SCHEMA (its manifest fields), LOSS ('mse' or 'cross_entropy'), INPUT_DIM,
output_dim(config), loss_scale(config), check_task_config(config, where) and
Tasks(**config, data_dir).sample(n_tasks, shots, queries, generator, split) -> TaskBatch.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from suite.schema import Field


@dataclass
class TaskBatch:
    """A batch of tasks with a leading task dimension: support (x, y) and query (x, y)."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def __len__(self):
        return self.support_x.shape[0]

    def to(self, device) -> "TaskBatch":
        return TaskBatch(*(getattr(self, f.name).to(device) for f in fields(self)))

    def __getitem__(self, i) -> "TaskBatch":
        return TaskBatch(*(getattr(self, f.name)[i] for f in fields(self)))

    def tensors(self):
        return self.support_x, self.support_y, self.query_x, self.query_y

    @staticmethod
    def cat(batches: list["TaskBatch"]) -> "TaskBatch":
        return TaskBatch(*(torch.cat([getattr(b, f.name) for b in batches]) for f in fields(TaskBatch)))


def seeded_generator(*entropy: int) -> torch.Generator:
    """A CPU generator determined by the integers given alone (e.g. (seed, iteration)), via numpy's SeedSequence
    so that nearby seeds give unrelated streams."""
    state = np.random.SeedSequence(list(entropy)).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def _families():
    from suite.tasks import omniglot, sinusoid

    return {"sinusoid": sinusoid, "omniglot": omniglot}


FAMILIES = _families()
TASK_FIELD = Field("str", choices=tuple(FAMILIES), doc="task family")


def task_schema(family: str) -> dict[str, Field]:
    return {"family": TASK_FIELD, **FAMILIES[family].SCHEMA}


def make_tasks(config: dict, data_dir):
    """Build the task family named by config['family'] from its validated config; data under `data_dir`."""
    family = FAMILIES[config["family"]]
    return family.Tasks(**{k: v for k, v in config.items() if k != "family"}, data_dir=data_dir)
