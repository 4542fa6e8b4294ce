"""The torch modules the model kinds build from, beside torch.nn's."""
from __future__ import annotations

import torch
from torch import nn


class BatchNorm(nn.Module):
    """Batch norm that always normalises with the statistics of the batch it is given (as MAML's and Reptile's
    TF code do), written from tensor ops: F.batch_norm under torch.func.vmap gives second-order gradients
    about 1% off (functorch #534), these ops are exact."""

    def __init__(self, channels: int, eps: float, scale: bool):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if scale else None
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        centered = x - x.mean(dims, keepdim=True)
        scale = torch.rsqrt((centered * centered).mean(dims, keepdim=True) + self.eps)
        if self.weight is not None:  # scale and shift are per channel: few passes over the activations
            scale = scale * self.weight.view(shape)
        return torch.addcmul(self.bias.view(shape), centered, scale)


class SpatialMean(nn.Module):
    def forward(self, x):
        return x.mean(dim=(-2, -1))
