"""Bayesian MAML (Yoon, Kim, Dia, Kim, Bengio & Ahn 2018, arXiv 1806.03836, §3.2–3.3, Algorithm 2): M particles of a
Bayesian network adapted together by Stein variational gradient descent, meta-trained by the chaser loss.

    Θ = {θ^m}, M particles: each a network's weights W with log γ (the noise precision) and log λ (the weights')
    sample a batch of tasks τ
    for each τ:  Θ^n_τ   = SVGD_n(Θ; D^trn_τ)                        (the chaser: n steps on the support set)
                 Θ^n+s_τ = SVGD_s(Θ^n_τ; D^trn_τ ∪ D^val_τ)          (the leader: s more, on support and query)
    Θ ← Adam(Θ, ∇Θ mean_τ Σ_m ‖W^n,m_τ − stopgrad(W^n+s,m_τ)‖²)        (the chaser loss, precisions left out)

SVGD ascends each particle's unnormalised log posterior (jsikyoon/bmaml bnn.py, bmaml.py:459-462), summed over
the points: Σ_i [½ log γ − ½ γ (f_W(x_i) − y_i)²] + (P/2) log λ − (λ/2)‖W‖² + log Gamma(γ; a_γ, b_γ) +
log Gamma(λ; a_λ, b_λ), the Gamma densities of the log-parametrised precisions with their Jacobian (a log γ − bγ).
suite.algorithms.svgd has the kernel and both forms of its repulsion. Test-time fine-tuning is the same SVGD on the
support set (Learner.schedule), and the prediction the particles' mean (ParticleModel, as evaluation.prediction
says): BMAML's evaluation (bmaml.py:512-522). As in the code the meta-gradient goes through the chaser's steps (stop_grad=False) and the
meta learning rate decays by `meta_lr_decay` every `meta_lr_decay_period` of the iterations (bmaml_main.py:148).
"""
from __future__ import annotations

import math

import numpy as np

from suite.algorithms import svgd
from suite.algorithms.base import Learner as BaseLearner, make_torch_optimizer, map_tasks
from suite.algorithms.base import extra_inputs, finetune_steps_limit  # noqa: F401 (the protocol's usual answers)
from suite.algorithms.maml import carries_inner_state, hessian_vector_products, second_order, task_shape  # noqa: F401
from suite.lazy import lazy
from suite.protocol.fields import OUTER_OPTIMIZER
from suite.protocol.schema import Field, ManifestError

torch = lazy("torch")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = "the chaser loss: mean over the meta-batch of Σ_m ‖chaser − leader‖² (precisions left out)"
PRECISIONS = ("log_gamma", "log_lambda")
PREDICTIONS = ("particle-mean", "each-particle")

ARGS = {
    "iterations": Field("positive_int", doc="meta-iterations"),
    "meta_batch": Field("positive_int", doc="tasks per meta-iteration"),
    "shots": Field("positive_int", doc="support points per training task (D^trn, the chaser's)"),
    "queries": Field("positive_int", doc="further points per training task the leader adds (D^val)"),
    "particles": Field("positive_int", doc="M, the particles (at least 2: the kernel's bandwidth divides by log M)"),
    "inner_steps": Field("positive_int", doc="n, the chaser's SVGD steps"),
    "leader_steps": Field("positive_int", doc="s, the leader's further SVGD steps"),
    "inner_lr": Field("positive_float", doc="ε, the SVGD step size of the chaser and of test-time fine-tuning"),
    "leader_lr": Field("positive_float", doc="the leader's SVGD step size"),
    "repulsion": Field("str", choices=svgd.REPULSION,
                       doc="'code': the kernel gradient as jsikyoon/bmaml computes it (half the exact one); "
                           "'exact': Liu & Wang's"),
    "gamma_shape": Field("positive_float", doc="a of the Gamma(a, b) prior on the noise precision γ (the code: 2.0)"),
    "gamma_rate": Field("positive_float", doc="b of the Gamma prior on γ (the code: 0.2)"),
    "lambda_shape": Field("positive_float", doc="a of the Gamma prior on the weight precision λ (the code: 2.0)"),
    "lambda_rate": Field("positive_float", doc="b of the Gamma prior on λ (the code: 2.0)"),
    "log_gamma_init": Field("float", doc="mean of log γ at initialisation (the code: −log 0.01)"),
    "log_lambda_init": Field("float", doc="mean of log λ at initialisation (the code: −log 1 = 0)"),
    "precision_init_std": Field("positive_float", doc="std of log γ and log λ at initialisation (the code: 0.001)"),
    "meta_optimizer": Field(OUTER_OPTIMIZER, doc="outer optimiser over all particles (Adam in the code)"),
    "meta_lr_decay": Field("positive_float", doc="factor on the meta learning rate per period (the code: 0.98)"),
    "meta_lr_decay_period": Field("positive_float", doc="the period, a fraction of the iterations (the code: 0.01)"),
}


def check(hp: dict, task: dict, family, where: str):
    if hp["particles"] < 2:
        raise ManifestError(f"{where}.particles: SVGD's median bandwidth h = med²/log M divides by log M, which is 0 "
                            "for one particle, so BMAML needs at least 2 (for one network use emaml with "
                            "particles: 1, which is MAML)")


def check_evaluation(hp: dict, evaluation: dict, where: str):
    """Test-time fine-tuning is the algorithm's own inner step (Schedule) at inner_lr, full-batch, on all of every
    particle: the evaluation says so rather than naming an optimiser that would be ignored; and it says what a set
    of particles predicts."""
    if evaluation.get("prediction") not in PREDICTIONS:
        raise ManifestError(f"{where}.prediction: say what the particles' test metric is of: 'particle-mean' (the "
                            "MSE of their mean output, BMAML's code) or 'each-particle' (the mean of their own MSEs, "
                            "EMAML's code)")
    optimizer = evaluation["optimizer"]
    if optimizer["name"] != "sgd" or optimizer["lr"] != hp["inner_lr"]:
        raise ManifestError(f"{where}.optimizer: the particles fine-tune at test time by the steps they trained "
                            f"with, at inner_lr {hp['inner_lr']}: write {{name: sgd, lr: {hp['inner_lr']}}} "
                            f"(got {optimizer})")
    for field, allowed in (("batch_size", "full"), ("frozen_layers", None), ("lr_search", None)):
        if evaluation.get(field, allowed) != allowed:
            raise ManifestError(f"{where}.{field}: the particles fine-tune as they trained: full-batch, nothing "
                                "frozen, at their own step size")


def paths(hp: dict) -> tuple[str, ...]:
    """vmap or the loop: the particles are stacked along their own leading dimension, which the grouped form (a
    leading task dimension) does not know."""
    return ("vmap", "loop")


def particle_seed(seed: int, m: int) -> int:
    return int(np.random.SeedSequence([seed, m]).generate_state(1)[0])


def initial_particles(model, seed: int, hp: dict, device) -> dict:
    """M particles, each the model initialised alone (the code gives every particle its own scope)."""
    each = [model.init_params(particle_seed(seed, m), device=device) for m in range(hp["particles"])]
    return {k: torch.stack([p[k] for p in each]) for k in each[0]}


def initial_params(model, seed: int, hp: dict, device) -> dict:
    """initial_particles, with log γ and log λ drawn around their initial means."""
    particles = initial_particles(model, seed, hp, device)
    g = torch.Generator().manual_seed(particle_seed(seed, hp["particles"]))
    noise = torch.randn(2, hp["particles"], generator=g) * hp["precision_init_std"]
    particles["log_gamma"] = (hp["log_gamma_init"] + noise[0]).to(device)
    particles["log_lambda"] = (hp["log_lambda_init"] + noise[1]).to(device)
    return particles


def weights(particle: dict) -> dict:
    return {k: v for k, v in particle.items() if k not in PRECISIONS}


def log_posterior(model, hp: dict, particle: dict, x, y):
    """One particle's unnormalised log posterior on the points (x, y) (bnn.py: log_likelihood_data, log_prior_weight)."""
    w = weights(particle)
    log_gamma, log_lambda = particle["log_gamma"], particle["log_lambda"]
    residual = model.forward(w, x) - y
    log_likelihood = (0.5 * log_gamma - 0.5 * torch.exp(log_gamma) * residual ** 2).sum()
    n_weights = sum(v.numel() for v in w.values())
    squares = sum((v ** 2).sum() for v in w.values())
    a_g, b_g, a_l, b_l = hp["gamma_shape"], hp["gamma_rate"], hp["lambda_shape"], hp["lambda_rate"]
    return (log_likelihood + 0.5 * n_weights * log_lambda - 0.5 * torch.exp(log_lambda) * squares
            + a_g * log_gamma - b_g * torch.exp(log_gamma) + a_l * log_lambda - b_l * torch.exp(log_lambda))


def adapt(model, hp: dict, particles: dict, x, y, steps: int, lr: float) -> dict:
    """`steps` SVGD steps of the particles on (x, y), differentiable w.r.t. the particles."""
    def log_p(particle, xs, ys):
        return log_posterior(model, hp, particle, xs, ys)

    for _ in range(steps):
        particles = svgd.step(log_p, particles, lr, hp["repulsion"], x, y)
    return particles


def chaser_loss(model, particles, support_x, support_y, query_x, query_y, *, hp):
    """One task's chaser loss: Σ_m ‖W_chaser^m − W_leader^m‖², the leader held fixed (bmaml.py:150-164)."""
    chaser = adapt(model, hp, particles, support_x, support_y, hp["inner_steps"], hp["inner_lr"])
    leader = adapt(model, hp, {k: v.detach() for k, v in chaser.items()}, torch.cat([support_x, query_x]),
                   torch.cat([support_y, query_y]), hp["leader_steps"], hp["leader_lr"])
    return sum(((chaser[k] - leader[k].detach()) ** 2).sum() for k in weights(chaser))


class ParticleModel:
    """The model a set of particles is evaluated as: its output is every particle's, [M, points, 1]. Its MSE is that
    of the particles' mean output under 'particle-mean' (BMAML's evaluation, bmaml.py:512-522); under 'each-particle'
    it is the mean of the particles' own MSEs (EMAML's evaluation, emaml.py:143: by Jensen never below the other).
    With a `predictive_std` s the particles are a predictive distribution, the mixture (1/M) Σ_m N(f_m(x), s²), and
    it measures also the query points' mean negative log-likelihood under it (`nll`) and the fraction of query
    targets inside its central 90% interval (`coverage90`, from the mixture's CDF). Everything else is the single
    model's."""

    def __init__(self, model, prediction: str, predictive_std: float | None = None):
        self.single, self.prediction, self.predictive_std = model, prediction, predictive_std
        self.metrics = ("mse",) if predictive_std is None else ("mse", "nll", "coverage90")

    def __getattr__(self, name):
        return getattr(self.single, name)

    def forward(self, params, x):
        return torch.func.vmap(self.single.forward, in_dims=(0, None))(weights(params), x)

    def prediction_of(self, out):
        return out.mean(0) if self.prediction == "particle-mean" else out

    def loss(self, params, x, y):
        return ((self.prediction_of(self.forward(params, x)) - y) ** 2).mean()

    def mean_metric(self, name: str, out, y):
        if name == "mse":
            return ((self.prediction_of(out) - y) ** 2).mean()
        z = (y - out) / self.predictive_std  # [M, points, 1]
        if name == "nll":
            log_densities = -0.5 * z ** 2 - math.log(self.predictive_std * math.sqrt(2 * math.pi))
            return -(torch.logsumexp(log_densities, 0) - math.log(len(out))).mean()
        if name == "coverage90":
            cdf = (0.5 * (1 + torch.erf(z / math.sqrt(2)))).mean(0)
            return ((cdf > 0.05) & (cdf < 0.95)).to(out.dtype).mean()
        raise ValueError(f"a set of particles is measured by {', '.join(self.metrics)}, not {name!r}")


class Schedule:
    """Test-time fine-tuning as training adapts: SVGD steps on the support set (suite.algorithms.inner
    .scheduled_finetune calls it)."""

    def __init__(self, hp: dict):
        self.hp = hp

    def start(self, model, params: dict, x, y) -> dict:
        """Fine-tuning begins from the trained particles."""
        return params

    def at(self, model, params: dict, step: int) -> dict:
        return params

    def moved(self, single, params: dict, x, y) -> dict:
        """The particles after one step on (x, y)."""
        return adapt(single, self.hp, params, x, y, 1, self.hp["inner_lr"])

    def gradient(self, model, params: dict, x, y, step: int, loss=None) -> dict:
        """The step's change of the particles (loss unused: the algorithm's own inner step moves them)."""
        moved = self.moved(model.single, params, x, y)
        return {k: moved[k] - params[k] for k in params}

    def update(self, model, params: dict, change: dict, step: int) -> dict:
        return {k: p + change[k] for k, p in params.items()}


def decay_meta_lr(optimizer, hp: dict, iteration: int):
    """lr · decay^(iteration / (period · iterations)), bmaml_main.py:148's meta_lr·0.98^((itr−1)/(iters/100))."""
    decay = hp["meta_lr_decay"] ** (iteration / (hp["meta_lr_decay_period"] * hp["iterations"]))
    for group in optimizer.param_groups:
        group["lr"] = hp["meta_optimizer"]["lr"] * decay


class Learner(BaseLearner):
    task_loss = staticmethod(chaser_loss)  # one task's meta-loss: (model, particles, *task, hp=...)
    Schedule = Schedule

    def __init__(self, model, params, hp, path):
        super().__init__(model, params, hp, path)
        self.optimizer = make_torch_optimizer(self.params, hp["meta_optimizer"])
        self.schedule = self.Schedule(hp)

    def evaluated(self, model, evaluation: dict):
        return ParticleModel(model, evaluation["prediction"], evaluation.get("predictive_std"))

    def step(self, tasks, iteration, generator):
        decay_meta_lr(self.optimizer, self.hp, iteration)
        loss = map_tasks(lambda m, p, *task: self.task_loss(m, p, *task, hp=self.hp), self.path, self.model,
                         self.params, *tasks.tensors()).mean()
        grads = torch.autograd.grad(loss, list(self.params.values()))
        self.apply_gradients(dict(zip(self.params, grads)))
        return loss.item()
