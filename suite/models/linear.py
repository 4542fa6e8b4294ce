"""A linear classifier on fixed features: one Linear layer, its weight [classes, features] (LEO's classifier on
pre-computed image embeddings, whose weights LEO decodes per task rather than learning them directly)."""
from __future__ import annotations

from suite.lazy import lazy
from suite.models.mlp import conv_blocks, has_batch_norm, not_adapted  # noqa: F401 (no batch norm, no conv blocks)
from suite.protocol.schema import Field

nn = lazy("torch.nn")

# Bump when a change alters its initialisation or forward pass (then regenerate tests/goldens/).
NUMERICS_VERSION = 1

FIELDS = {
    "bias": Field("bool", doc="whether the classifier adds a bias per class (LEO's: none, logits = x·w_c)"),
}


def check(config: dict, where: str):
    pass


def build(config: dict, in_dim: int, out_dim: int):
    """nn.Linear's default initialisation (an algorithm that decodes the weights, LEO, replaces it)."""
    return nn.Sequential(nn.Linear(in_dim, out_dim, bias=config["bias"]))
