"""Functional inner loops over a parameter dict: pure functions of tensors, so they compose with
torch.func.grad (to differentiate through them) and torch.func.vmap (to run many tasks at once)."""
from __future__ import annotations

import torch
from torch.func import grad


def sgd_adapt(loss, params: dict, x, y, steps: int, lr: float, names=None) -> dict:
    """`steps` steps of plain gradient descent on loss(params, x, y), updating the parameters in `names` (all when
    None); differentiable w.r.t. params."""
    for _ in range(steps):
        grads = grad(loss)(params, x, y)
        params = {k: p - lr * grads[k] if names is None or k in names else p for k, p in params.items()}
    return params


class InnerOptimizer:
    """SGD or Adam as pure functions: state = init(params); params, state = update(params, grads, state)."""

    def __init__(self, config: dict, names=None):
        self.config, self.names = config, names  # the parameters updated (all when None)

    def init(self, params: dict):
        if self.config["name"] == "sgd":
            return None
        return {"m": {k: torch.zeros_like(p) for k, p in params.items()},
                "v": {k: torch.zeros_like(p) for k, p in params.items()}, "t": 0}

    def update(self, params: dict, grads: dict, state):
        new, state = self._step(params, grads, state)
        return ({k: new[k] if self.names is None or k in self.names else p for k, p in params.items()}), state

    def _step(self, params: dict, grads: dict, state):
        lr = self.config["lr"]
        if self.config["name"] == "sgd":
            return {k: p - lr * grads[k] for k, p in params.items()}, None
        # Adam in TensorFlow's form (Reptile's code): ε is added to √v, bias correction folded into the step.
        (b1, b2), eps, t = self.config["betas"], self.config["eps"], state["t"] + 1
        m = {k: b1 * state["m"][k] + (1 - b1) * g for k, g in grads.items()}
        v = {k: b2 * state["v"][k] + (1 - b2) * g * g for k, g in grads.items()}
        step = lr * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t)
        return {k: p - step * m[k] / (v[k].sqrt() + eps) for k, p in params.items()}, {"m": m, "v": v, "t": t}


def optimizer_adapt(loss, params: dict, x, y, batches, optimizer: dict, names=None, state=None):
    """Run the configured inner optimiser over mini-batches (the j-th of `batches` indexes the points of step j;
    a [steps, size] tensor, or a list when the sizes differ), updating
    the parameters in `names` (all when None), from optimiser `state` (fresh when None); return the final
    parameters, those before the last step, and the optimiser state."""
    inner = InnerOptimizer(optimizer, names)
    state, before_last = (inner.init(params) if state is None else state), params
    for batch in batches:
        grads = grad(loss)(params, x[batch], y[batch])
        before_last = params
        params, state = inner.update(params, grads, state)
    return params, before_last, state
