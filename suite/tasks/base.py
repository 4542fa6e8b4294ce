"""What every task family shares: the TaskBatch it returns and seeded generators."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from suite.io import file_sha256
from suite.lazy import lazy
from suite.protocol.schema import Field, ManifestError

torch = lazy("torch")


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


def seeded_generator(*entropy: int) -> "torch.Generator":
    """A CPU generator determined by the integers given alone (e.g. (seed, iteration)), via numpy's SeedSequence
    so that nearby seeds give unrelated streams."""
    state = np.random.SeedSequence(list(entropy)).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


# What every classification family (Omniglot, Mini-ImageNet) shares: the loss over a batch and the output size.
LOSS_NORMALISATION = Field("str", choices=("mean", "sum", "sum/shots"),
                           doc="the cross-entropy of a batch: its 'mean' over the samples (PyTorch's default); "
                               "their 'sum' (supervised-reptile minimises the vector of per-sample losses, so TF "
                               "steps along the sum); or MAML's code, 'sum/shots': summed and divided by the shots "
                               "per class, i.e. ways × the mean")


def classes_output_dim(config: dict) -> int:
    return config["ways"]


def classes_loss_scale(config: dict) -> float:
    return float(config["ways"]) if config["loss_normalisation"] == "sum/shots" else 1.0


def classes_loss_reduction(config: dict) -> str:
    return "sum" if config["loss_normalisation"] == "sum" else "mean"


def classes_support_points(config: dict, shots: int) -> int:
    return config["ways"] * shots


def check_pinned_split(path, config: dict, where: str):
    """The claim pins the split file by its sha256: a changed file is an error, not a silently other split."""
    actual = file_sha256(path)
    if actual != config["split_sha256"]:
        raise ManifestError(f"{where}.split_sha256: {path.name} has sha256 {actual}, the claim pins "
                            f"{config['split_sha256']}")
