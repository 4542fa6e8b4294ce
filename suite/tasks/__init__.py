"""Task families: each turns a seeded generator into batches of few-shot tasks."""
from __future__ import annotations

from dataclasses import dataclass, fields

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


def _families():
    from suite.tasks import sinusoid

    return {"sinusoid": sinusoid}


FAMILIES = _families()
TASK_FIELD = Field("str", choices=tuple(FAMILIES), doc="task family")


def task_schema(family: str) -> dict[str, Field]:
    return {"family": TASK_FIELD, **FAMILIES[family].SCHEMA}


def make_tasks(config: dict):
    """Build the task family named by config['family'] from its validated config."""
    family = FAMILIES[config["family"]]
    return family.Tasks(**{k: v for k, v in config.items() if k != "family"})
