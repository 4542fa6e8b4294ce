"""Stein variational gradient descent (Liu & Wang 2016, arXiv 1608.04471, Algorithm 1) over a set of particles, as
Bayesian MAML's inner loop runs it (Yoon et al. 2018, arXiv 1806.03836 §3; jsikyoon/bmaml bmaml.py:354-376, 480-510).

    θ_i ← θ_i + ε φ(θ_i),   φ(θ_i) = 1/M Σ_j [ k(θ_j, θ_i) ∇θ_j log p(θ_j) + ∇θ_j k(θ_j, θ_i) ]

with the RBF kernel k(a, b) = exp(−‖a − b‖² / h) and the median heuristic h = med / log M. Where paper and code
differ, both are here and a claim names which it uses:
- `repulsion`: 'exact' is ∇θ_j k(θ_j, θ_i) = 2/h Σ_j k_ij (θ_i − θ_j), Liu & Wang's kernel gradient; 'code' is
  BMAML's kernel(), which divides by h alone, half the exact repulsion.
- the bandwidth: BMAML's kernel='org' takes the median of all M² squared distances, the M zeros of the diagonal
  included (tf_utils.median: the mean of the two middle values for an even count), divided by log M, with no
  gradient through it. So SVGD needs M ≥ 2 particles here (log 1 = 0).
Particles are a dict of tensors with a leading particle dimension; log_p maps one particle's dict to a scalar.
"""
from __future__ import annotations

import math

from suite.lazy import lazy

torch = lazy("torch")

REPULSION = ("code", "exact")


def flatten(particles: dict):
    """[M, D]: each particle's tensors flattened and concatenated, in the dict's order."""
    return torch.cat([p.reshape(len(p), -1) for p in particles.values()], 1)


def unflatten(flat, like: dict) -> dict:
    out, start = {}, 0
    for k, p in like.items():
        size = p[0].numel()
        out[k] = flat[:, start:start + size].reshape(p.shape)
        start += size
    return out


def median(values):
    """The median of all the values, as tf_utils.median takes it: the mean of the two middle ones for an even count."""
    ordered = values.flatten().sort().values
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def kernel(flat, repulsion: str, h=None):
    """(k [M, M], the repulsive term Σ_j ∇θ_j k(θ_j, θ_i) [M, D], h) of the RBF kernel with BMAML's bandwidth (or
    the bandwidth `h` given)."""
    sq = ((flat.unsqueeze(1) - flat.unsqueeze(0)) ** 2).sum(-1)
    if h is None:
        if len(flat) < 2:
            raise ValueError("SVGD's median bandwidth divides by log M: it needs at least 2 particles")
        h = (median(sq) / math.log(len(flat))).detach()
    k = torch.exp(-sq / h)
    scale = 2.0 if repulsion == "exact" else 1.0
    return k, scale * (flat * k.sum(1, keepdim=True) - k @ flat) / h, h


def direction(flat, log_p_grads, repulsion: str, use_kernel: bool = True, h=None):
    """φ [M, D]: the SVGD direction, or with `use_kernel` False the particles' own gradients (k = identity, no
    repulsion: M independent gradient ascents)."""
    if not use_kernel:
        return log_p_grads
    k, repulsive, _ = kernel(flat, repulsion, h)
    return (k @ log_p_grads + repulsive) / len(flat)


def step(log_p, particles: dict, lr: float, repulsion: str, *args, use_kernel: bool = True, h=None) -> dict:
    """One SVGD step of the particles towards log_p(particle, *args); differentiable w.r.t. the particles (the
    bandwidth aside: h, BMAML's unless given, carries no gradient), so a meta-gradient can go through it."""
    grads = torch.func.vmap(torch.func.grad(log_p), in_dims=(0, *(None for _ in args)))(particles, *args)
    flat = flatten(particles)
    return unflatten(flat + lr * direction(flat, flatten(grads), repulsion, use_kernel, h), particles)
