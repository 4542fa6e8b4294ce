"""Functional inner loops over a parameter dict: pure functions of tensors, so they compose with
torch.func.grad (to differentiate through them) and torch.func.vmap (to run many tasks at once). Test-time
fine-tuning is the same inner loop (`finetune`).

A loss may be one task's (a scalar) or a grouped batch's (suite.models.grouped: one per task, parameters and data
with a leading task dimension): the loops differentiate the losses' sum, whose gradient w.r.t. each task's own
parameters is that task's gradient."""
from __future__ import annotations

from suite.lazy import lazy

torch = lazy("torch")

# Bump when a change alters what these loops compute (every algorithm and the evaluation use them; then regenerate
# tests/goldens/).
NUMERICS_VERSION = 1


def _transformed() -> bool:
    """Whether a torch.func transform (vmap, grad) is running: the vmap path's inner loops run under one."""
    return torch._C._functorch.peek_interpreter_stack() is not None


def grad_and_losses(loss, first_step: bool = True):
    """(gradient, losses) of loss(params, ...): the gradient w.r.t. params of the losses' sum over tasks, and the
    losses themselves. As torch.func.grad computes it, the gradient is differentiable w.r.t. whatever requires grad
    (second order). It is torch.func.grad under a torch.func transform (the vmap path) and where a second-order
    step follows earlier ones (`first_step` False); elsewhere torch.autograd.grad, the same arithmetic (the goldens
    agree bit for bit) at less overhead per step: 1.2x a 1-step second-order MAML step at 15 queries, while after
    earlier second-order steps its graph walk through their history made a 5-step MAML step 2x slower."""
    def total(*args):
        losses = loss(*args)
        return losses.sum(), losses

    def gradient(params: dict, *args):
        tensors = [*params.values(), *(a for a in args if isinstance(a, torch.Tensor))]
        second_order = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        if _transformed() or (second_order and not first_step):
            return torch.func.grad(total, has_aux=True)(params, *args)
        tracked = {k: p if p.requires_grad else p.detach().requires_grad_(True) for k, p in params.items()}
        with torch.enable_grad():
            summed, losses = total(tracked, *args)
            grads = torch.autograd.grad(summed, list(tracked.values()), create_graph=second_order, allow_unused=True,
                                        materialize_grads=True)
        return dict(zip(tracked, grads)), losses if second_order else losses.detach()

    return gradient


def grad(loss, first_step: bool = True):
    """The gradient of loss(params, ...) summed over its tasks (grad_and_losses without the losses)."""
    with_losses = grad_and_losses(loss, first_step)
    return lambda params, *args: with_losses(params, *args)[0]


def take(x, batch):
    """The points of x that `batch` indexes: x[batch] for one task; for a grouped batch (x [T, N, ...], batch
    [T, size]) each task's own."""
    if batch.dim() == 1:
        return x[batch]
    return x[torch.arange(len(batch), device=batch.device).unsqueeze(1), batch]


def sgd_adapt(loss, params: dict, x, y, steps: int, lr: float, names=None) -> dict:
    """`steps` steps of plain gradient descent on loss(params, x, y), updating the parameters in `names` (all when
    None); differentiable w.r.t. params."""
    for step in range(steps):
        grads = grad(loss, first_step=step == 0)(params, x, y)
        params = {k: p - lr * grads[k] if names is None or k in names else p for k, p in params.items()}
    return params


class InnerOptimizer:
    """An inner optimiser (suite.protocol.fields.INNER_OPTIMIZER) as pure functions: state = init(params);
    params, state = update(params, grads, state). `sgd`, or `adam-tf`: Adam in TensorFlow's form, as
    tf.train.AdamOptimizer and so Reptile's code compute it: ε is added to the uncorrected √v and the bias
    correction is folded into the step size, lr·√(1 − β2^t)/(1 − β1^t)."""

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
    for j, batch in enumerate(batches):
        grads = grad(loss, first_step=j == 0)(params, take(x, batch), take(y, batch))
        before_last = params
        params, state = inner.update(params, grads, state)
    return params, before_last, state


def finetune(loss, params: dict, x, y, optimizer: dict, names, steps: list[int], measure, batches=None, state=None):
    """Fine-tune `params` on (x, y) with the inner optimiser for steps[-1] steps — on all of (x, y) each step, or on
    the points the j-th of `batches` indexes at step j (`take`) — and return [measure(params after s steps) for s in
    steps].
    `names`: the parameters updated; `state`: the optimiser state to start from (fresh when None)."""
    inner = InnerOptimizer(optimizer, names)
    state, records = (inner.init(params) if state is None else state), []
    for step in range(steps[-1] + 1):
        if step in steps:
            records.append(measure(params))
        if step == steps[-1]:
            break
        bx, by = (x, y) if batches is None else (take(x, batches[step]), take(y, batches[step]))
        params, state = inner.update(params, grad(loss, first_step=step == 0)(params, bx, by), state)
    return records


def scheduled_finetune(model, schedule, loss, params: dict, x, y, steps: list[int], measure):
    """finetune for a learner whose inner loop has its own per-step schedule (suite.algorithms.mamlpp.Schedule:
    per-step parameters and rates), on all of (x, y) each step: [measure(the model's parameters after s steps) for
    s in steps], those after s ≥ 1 steps at step s − 1's index, as MAML++'s code measures its query set. The
    schedule's start() first turns the trained parameters into those fine-tuning begins from (PLATIPUS: samples
    drawn from its prior given (x, y))."""
    records = []
    params = schedule.start(model, params, x, y)
    for step in range(steps[-1] + 1):
        if step in steps:
            records.append(measure(schedule.at(model, params, max(step - 1, 0))))
        if step == steps[-1]:
            break
        params = schedule.update(model, params, schedule.gradient(model, params, x, y, step, loss), step)
    return records


def inner_batches(n_tasks, n_points, batch_size, steps, generator):
    """Indices [n_tasks, steps, batch_size]: consecutive slices of a stream of shuffles of the points, so a
    mini-batch may straddle two shuffles (supervised-reptile's _mini_batches keeps its partial batch too)."""
    if batch_size > n_points:
        raise ValueError(f"inner_batch ({batch_size}) exceeds the points per task ({n_points})")
    shuffles = -(-steps * batch_size // n_points)
    stream = torch.stack([torch.cat([torch.randperm(n_points, generator=generator) for _ in range(shuffles)])
                          for _ in range(n_tasks)])
    return stream[:, : steps * batch_size].reshape(n_tasks, steps, batch_size)
