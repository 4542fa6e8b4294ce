"""The torch modules the model kinds build from, beside torch.nn's."""
from __future__ import annotations

import torch
from torch import nn


class BatchNorm(nn.Module):
    """Batch norm that always normalises with the statistics of the batch it is given (as MAML's and Reptile's
    TF code do), written from tensor ops: F.batch_norm under torch.func.vmap gives second-order gradients
    about 1% off (functorch #534), these ops are exact.

    `observed`: None, or a list to which each forward appends its batch's (mean, unbiased variance) per channel,
    detached (MAML++'s per-step running statistics are collected from them: suite.algorithms.mamlpp)."""

    def __init__(self, channels: int, eps: float, scale: bool):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if scale else None
        self.bias = nn.Parameter(torch.zeros(channels))
        self.observed = None

    def forward(self, x):
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = x.mean(dims, keepdim=True)
        centered = x - mean
        variance = (centered * centered).mean(dims, keepdim=True)
        if self.observed is not None:
            n = x.numel() // x.shape[1]
            self.observed.append((mean.detach().flatten(), variance.detach().flatten() * n / max(n - 1, 1)))
        scale = torch.rsqrt(variance + self.eps)
        if self.weight is not None:  # scale and shift are per channel: few passes over the activations
            scale = scale * self.weight.view(shape)
        return torch.addcmul(self.bias.view(shape), centered, scale)


class SpatialMean(nn.Module):
    def forward(self, x):
        return x.mean(dim=(-2, -1))
