"""MAML++ (Antoniou, Edwards & Storkey, "How to train your MAML", ICLR 2019, arXiv 1810.09502 §4): MAML with six
fixes, each a switch, so that the paper's ablation is a list of runs. With every switch off it is MAML (the tests
check it equals suite.algorithms.maml bit for bit).

    for each epoch e (iterations_per_epoch meta-iterations):
        β_e = cosine annealing of the meta learning rate over the epochs                         (CA)
        second_order = e ≥ first_order_epochs                                                     (DA)
        for each task T_i:
            θ_0 = θ
            for step s = 0 .. S−1:
                θ_{s+1} = θ_s − α_{l,s} ∇ L_support(f(θ_s; BN_s))    α per layer and step, learned    (LSLR)
                                                                    BN_s: step s's γ, β           (BNWB)
                                                                    and running statistics        (BNRS)
            L_i = Σ_s v_s(e) L_query(f(θ_{s+1}; BN_s))   annealed weights, the last step's alone     (MSL)
                                                          after msl_epochs
        θ ← Adam(θ, ∇ Σ_i L_i / n)

What follows AntreasAntoniou/HowToTrainYourMAMLPytorch (commit 86964701) where the paper is silent:
- MSL's weights are the code's get_per_step_loss_importance_vector: 1/S each at epoch 0; each non-final weight
  falls by e/(S·msl_epochs) to a floor of 0.03/S, the final one rises to match (at most 1 − (S−1)·0.03/S). From
  epoch msl_epochs on, the meta-loss is the last step's query loss alone.
- Step s's support forward and the query forward after its update both use batch-norm index s (the code's
  net_forward(num_step=s)); test-time fine-tuning does the same (MAMLFewShotClassifier.forward).
- LSLR's rates are one per parameter tensor and step, initialised to inner_lr, trained by the outer Adam (the
  code's LSLRGradientDescentLearningRule; it allocates S + 1 rates per tensor and uses the first S).
- DA: the code's `epoch > first_order_to_second_order_epoch`, i.e. first_order_epochs = that value + 1 (its released
  configs say −1: second order throughout, first_order_epochs 0).
- CA: torch's CosineAnnealingLR stepped with the epoch before every iteration (T_max = the epochs, η_min =
  min_meta_lr), which also anneals LSLR's rates' learning rate: one Adam trains both.
- BNRS: per-step running statistics (momentum 0.1, torch's update with the unbiased batch variance), updated by
  every training forward in task order. The code normalises with batch statistics always
  (F.batch_norm(training=True)), so its running statistics change no output; here too they are collected and kept
  with the trained model (final.pt's buffers), and the evaluation normalises as the claim's batch_norm says.
- Batch norm is left out of the inner loop (its `enable_inner_loop_optimizable_bn_params: false`): the model must
  say batch_norm_adapted: false where BNWB is on.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from functools import partial

from suite.algorithms import maml
from suite.algorithms.base import ALL_PATHS, check_evaluation, extra_inputs  # noqa: F401 (the protocol's usual answers)
from suite.algorithms.maml import (carries_inner_state, hessian_vector_products, initial_params,  # noqa: F401
                                   second_order, task_shape)
from suite.algorithms.inner import grad
from suite.lazy import lazy
from suite.protocol.schema import Field, ManifestError

torch = lazy("torch")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = ("the mean over the meta-batch of each task's query loss after adaptation (MSL's weighted sum over "
               "steps while it is on)")

ARGS = {
    **maml.ARGS,
    "inner_lr": Field("positive_float", doc="α, the inner-loop step size (LSLR's initial per-layer, per-step rates)"),
    "iterations_per_epoch": Field("positive_int", doc="meta-iterations per epoch, the unit of MSL's, DA's and CA's "
                                                      "schedules (the code's total_iter_per_epoch, 500)"),
    "multi_step_loss": Field("bool", doc="MSL: the meta-loss weighs the query loss after every inner step"),
    "msl_epochs": Field("positive_int", doc="epochs over which MSL's weights anneal towards the last step's, "
                                            "after which its last step's loss alone counts (the code's "
                                            "multi_step_loss_num_epochs: 10 on Omniglot, 15 on Mini-ImageNet)"),
    "first_order_epochs": Field("nonnegative_int", doc="DA: epochs of first-order meta-gradients before second "
                                                       "order (0: second order throughout, as MAML)"),
    "per_step_bn_weights": Field("bool", doc="BNWB: a batch-norm scale and offset per inner step"),
    "per_step_bn_statistics": Field("bool", doc="BNRS: batch-norm running statistics collected per inner step"),
    "learned_inner_lr": Field("bool", doc="LSLR: a learned inner learning rate per parameter tensor and step"),
    "cosine_annealing": Field("bool", doc="CA: the meta learning rate annealed from meta_optimizer.lr to "
                                          "min_meta_lr over the epochs by a cosine"),
    "min_meta_lr": Field("positive_float", doc="CA's final meta learning rate (the code's min_learning_rate)"),
    "msl_floor": Field("positive_float", doc="MSL: each non-final weight falls to msl_floor / S at the least (the "
                                             "code's min_value_for_non_final_losses = 0.03 / S)"),
    "bn_momentum": Field("positive_float", doc="BNRS: the running statistics' momentum (the code's "
                                               "MetaBatchNormLayer(momentum=0.1))"),
}



def check(hp: dict, task: dict, family, where: str):
    epochs = hp["iterations"] / hp["iterations_per_epoch"]
    if hp["cosine_annealing"] and hp["min_meta_lr"] > hp["meta_optimizer"]["lr"]:
        raise ManifestError(f"{where}.min_meta_lr: {hp['min_meta_lr']} is above meta_optimizer.lr "
                            f"{hp['meta_optimizer']['lr']}; cosine annealing lowers the rate")
    if hp["iterations"] % hp["iterations_per_epoch"]:
        raise ManifestError(f"{where}.iterations: {hp['iterations']} is not a whole number of epochs of "
                            f"{hp['iterations_per_epoch']} iterations ({epochs:.3g})")


def paths(hp: dict) -> tuple[str, ...]:
    """BNRS updates its running statistics task after task, as the code does: only the per-task loop can."""
    return ("loop",) if hp["per_step_bn_statistics"] else ALL_PATHS


def finetune_steps_limit(hp: dict) -> int | None:
    """Test-time fine-tuning runs the learner's own steps: with per-step weights or rates, at most inner_steps."""
    return hp["inner_steps"] if hp["per_step_bn_weights"] or hp["learned_inner_lr"] else None


def msl_weights(steps: int, epoch: int, msl_epochs: int, msl_floor: float) -> list[float]:
    """The code's get_per_step_loss_importance_vector at `epoch`."""
    decay, floor = 1.0 / steps / msl_epochs, msl_floor / steps
    weights = [max(1.0 / steps - epoch * decay, floor) for _ in range(steps - 1)]
    return weights + [min(1.0 / steps + epoch * (steps - 1) * decay, 1.0 - (steps - 1) * floor)]


def cosine_lr(start: float, end: float, epoch: int, epochs: int) -> float:
    """CosineAnnealingLR's closed form (T_max = epochs, η_min = end) at `epoch`."""
    return end + (start - end) * (1 + math.cos(math.pi * epoch / epochs)) / 2


LR_PREFIX = "inner_lr/"


class Schedule:
    """How a parameter dict of this learner runs its inner loop: the model's parameters at inner step s (step s's
    batch-norm scale and offset under BNWB; never the learned rates) and step s's rate for each adapted tensor.
    Test-time fine-tuning (suite.training.evaluate) runs the same, so it adapts as training did."""

    def __init__(self, model, hp: dict):
        self.steps, self.lr = hp["inner_steps"], hp["inner_lr"]
        self.per_step = bn_names(model) if hp["per_step_bn_weights"] else frozenset()
        self.learned = hp["learned_inner_lr"]

    def start(self, model, params: dict, x, y) -> dict:
        """Fine-tuning begins from the trained parameters."""
        return params

    def at(self, model, params: dict, step: int) -> dict:
        """The model's parameters at inner step `step`, for a model whose leading `task_dims` index tasks."""
        if step >= self.steps and (self.per_step or self.learned):
            raise ValueError(f"inner step {step}: per-step parameters exist for steps 0..{self.steps - 1} (measure "
                             f"fine-tuning at most inner_steps = {self.steps} steps)")
        return {k: p.select(model.task_dims, step) if k in self.per_step else p
                for k, p in params.items() if not k.startswith(LR_PREFIX)}

    def rate(self, model, params: dict, name: str, step: int):
        if not self.learned:
            return self.lr
        rates = params[LR_PREFIX + name].select(model.task_dims, step)  # a scalar, or one per task
        return rates.view(*rates.shape, *(1,) * (params[name].dim() - rates.dim()))

    def update(self, model, params: dict, grads: dict, step: int) -> dict:
        return {k: p - self.rate(model, params, k, step) * grads[k] if k in grads else p for k, p in params.items()}

    def gradient(self, model, params: dict, x, y, step: int, loss=None) -> dict:
        """∇ of loss (the model's) at step `step` w.r.t. the adapted parameters (differentiable w.r.t. params)."""
        loss = loss or model.loss
        adapted = {k: params[k] for k in model.inner_loop_names}

        def at_step(a, xs, ys):
            return loss(self.at(model, {**params, **a}, step), xs, ys)

        return grad(at_step, first_step=step == 0)(adapted, x, y)


def bn_names(model) -> frozenset[str]:
    from suite.models.layers import BatchNorm

    return frozenset(f"{i}.{p}" for i, layer in enumerate(model.module) if isinstance(layer, BatchNorm)
                     for p, _ in layer.named_parameters())


def query_loss_after_adaptation(model, params, support_x, support_y, query_x, query_y, steps, lr, *, schedule,
                                weights, second_order):
    """One task's meta-loss: Σ_s weights[s]·L_query after step s+1 under MSL (weights given), else the query loss
    after the last step; first order drops the inner gradients' own dependence on θ (DA)."""
    total = 0.0
    for s in range(steps):
        g = schedule.gradient(model, params, support_x, support_y, s)
        if not second_order:
            g = {k: v.detach() for k, v in g.items()}
        params = schedule.update(model, params, g, s)
        if weights is not None or s == steps - 1:
            query = model.loss(schedule.at(model, params, s), query_x, query_y)
            total = total + (query if weights is None else weights[s] * query)
    return total


@contextmanager
def observing_batch_norm(module, enabled: bool):
    """{batch-norm layer: the (mean, variance) of each forward through it in the block} (suite.models.layers
    .BatchNorm.observed), or {} when not `enabled`."""
    from suite.models.layers import BatchNorm

    layers = {str(i): m for i, m in enumerate(module) if isinstance(m, BatchNorm)} if enabled else {}
    observed = {name: [] for name in layers}
    for name, layer in layers.items():
        layer.observed = observed[name]
    try:
        yield observed
    finally:
        for layer in layers.values():
            layer.observed = None


class Learner(maml.Learner):
    capturable = False  # its step changes with the iteration (annealing, the multi-step loss), not `update` alone

    def __init__(self, model, params, hp, path):
        self.schedule = Schedule(model, hp)
        steps = hp["inner_steps"]
        if hp["per_step_bn_weights"] and model.inner_loop_names & self.schedule.per_step:
            raise ValueError("MAML++'s per-step batch-norm weights (BNWB) are trained by the outer loop alone: the "
                             "model must say batch_norm_adapted: false")
        params = {k: p.expand(steps, *p.shape).clone() if k in self.schedule.per_step else p
                  for k, p in params.items()}
        if hp["learned_inner_lr"]:
            params.update({LR_PREFIX + k: torch.full((steps,), hp["inner_lr"], dtype=params[k].dtype,
                                                     device=params[k].device)
                           for k in sorted(model.inner_loop_names)})
        super().__init__(model, params, hp, path)
        self.buffers = None
        if hp["per_step_bn_statistics"]:
            if path != "loop":
                raise ValueError(f"MAML++'s per-step running statistics (BNRS) are updated task by task: the loop "
                                 f"path computes them, not {path!r}")
            channels = {k.rsplit(".", 1)[0]: p.shape[-1] for k, p in params.items() if k in bn_names(model)}
            self.buffers = {layer: {"mean": torch.zeros(steps, c), "var": torch.ones(steps, c)}
                            for layer, c in sorted(channels.items())}

    def step(self, tasks, iteration, generator):
        hp, steps = self.hp, self.hp["inner_steps"]
        epoch, epochs = iteration // hp["iterations_per_epoch"], hp["iterations"] // hp["iterations_per_epoch"]
        if hp["cosine_annealing"]:
            for group in self.optimizer.param_groups:
                group["lr"] = cosine_lr(hp["meta_optimizer"]["lr"], hp["min_meta_lr"], epoch, epochs)
        msl = hp["multi_step_loss"] and epoch < hp["msl_epochs"]
        task_loss = partial(query_loss_after_adaptation, schedule=self.schedule,
                            weights=msl_weights(steps, epoch, hp["msl_epochs"], hp["msl_floor"]) if msl else None,
                            second_order=epoch >= hp["first_order_epochs"])
        with observing_batch_norm(self.model.module, self.buffers is not None) as observed:
            grads, loss = maml.meta_gradient(self.model, self.params, tasks, steps, hp["inner_lr"], self.path,
                                             task_loss)
        if self.buffers is not None:
            # each task's forwards, in order: step s's support, then its query when the meta-loss reads it
            order = [s for s in range(steps) for _ in range(2 if msl or s == steps - 1 else 1)] * len(tasks)
            self._update_running_statistics(observed, order)
        self.apply_gradients(grads)
        return loss.item()

    def _update_running_statistics(self, observed: dict, order: list[int]):
        for layer, stats in observed.items():
            if len(stats) != len(order):
                raise RuntimeError(f"batch norm {layer}: {len(stats)} forwards observed, {len(order)} expected")
            running, momentum = self.buffers[layer], self.hp["bn_momentum"]
            for s, (mean, var) in zip(order, stats):
                running["mean"][s] = (1 - momentum) * running["mean"][s] + momentum * mean
                running["var"][s] = (1 - momentum) * running["var"][s] + momentum * var

    def state_dict(self) -> dict:
        return {**super().state_dict(), "buffers": self.buffers}

    def load_state_dict(self, state: dict):
        super().load_state_dict(state)
        self.buffers = state.get("buffers")
