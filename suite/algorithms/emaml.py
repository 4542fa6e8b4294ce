"""EMAML, Bayesian MAML's baseline (Yoon et al. 2018, arXiv 1806.03836 §5; jsikyoon/bmaml emaml.py): an ensemble of
M MAML networks, each adapted alone by gradient descent, meta-trained together on the sum of their query losses.

    Θ = {θ^m}, M particles (networks), each initialised alone
    sample a batch of tasks τ
    for each τ, m:  θ'^m_τ = θ^m − α ∇ MSE(f_θ^m; D^trn_τ)          (inner_steps times; no interaction)
    Θ ← Adam(Θ, ∇Θ mean_τ Σ_m MSE(f_θ'^m_τ; D^val_τ))                 (second order, emaml.py:139-183)

With the kernel switched off SVGD is this inner loop (suite.algorithms.svgd), and with one particle EMAML is MAML
(the code's README: num_particles=1). Test-time fine-tuning is the same gradient descent per particle; what its test
MSE is of — each particle's (the code's, emaml.py:143) or the ensemble mean's — is evaluation.prediction.
"""
from __future__ import annotations

from suite.algorithms import bmaml
from suite.algorithms.base import extra_inputs, finetune_steps_limit  # noqa: F401 (the protocol's usual answers)
from suite.algorithms.bmaml import (ARGS as BMAML_ARGS, carries_inner_state, check_evaluation,  # noqa: F401
                                    hessian_vector_products, initial_particles, paths, second_order, task_shape)
from suite.algorithms.inner import sgd_adapt
from suite.lazy import lazy

torch = lazy("torch")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = "mean over the meta-batch of Σ_m the particles' query MSE after adaptation"

ARGS = {k: BMAML_ARGS[k] for k in ("iterations", "meta_batch", "shots", "queries", "particles", "inner_steps",
                                   "inner_lr", "meta_optimizer", "meta_lr_decay", "meta_lr_decay_period")}


def check(hp: dict, task: dict, family, where: str):
    pass


def initial_params(model, seed: int, hp: dict, device) -> dict:
    return initial_particles(model, seed, hp, device)


def mse(model, params: dict, x, y):
    """The mean squared error, written out: F.mse_loss's batching rule mixes the vmap levels of particles and tasks
    (torch 2.14: its output and target sizes mismatch under a vmap over both)."""
    return ((model.forward(params, x) - y) ** 2).mean()


def adapt(model, particles: dict, x, y, steps: int, lr: float) -> dict:
    """Each particle's `steps` gradient steps on its own MSE on (x, y), differentiable w.r.t. the particles."""
    def loss(p, xs, ys):
        return mse(model, p, xs, ys)

    return torch.func.vmap(lambda p, xs, ys: sgd_adapt(loss, p, xs, ys, steps, lr),
                           in_dims=(0, None, None))(particles, x, y)


def ensemble_query_loss(model, particles, support_x, support_y, query_x, query_y, *, hp):
    adapted = adapt(model, particles, support_x, support_y, hp["inner_steps"], hp["inner_lr"])
    return torch.func.vmap(lambda p, xs, ys: mse(model, p, xs, ys), in_dims=(0, None, None))(
        adapted, query_x, query_y).sum()


class Schedule(bmaml.Schedule):
    """Test-time fine-tuning as training adapts: each particle's gradient steps on the support set."""

    def moved(self, single, params: dict, x, y) -> dict:
        return adapt(single, params, x, y, 1, self.hp["inner_lr"])


class Learner(bmaml.Learner):
    task_loss = staticmethod(ensemble_query_loss)
    Schedule = Schedule
