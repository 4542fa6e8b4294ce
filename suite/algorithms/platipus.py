"""PLATIPUS, probabilistic MAML (Finn, Xu & Levine 2018, arXiv 1806.02817, Algorithms 1 and 2): a Gaussian over the
initial weights whose mean is shifted by a gradient step on the task's data, sampled, then adapted as MAML adapts.

    Θ = {μθ, σθ, v_q, γp, γq}: a mean and two diagonal stds over the weights, two learned step sizes
    sample a batch of tasks T_i
    for each T_i:  q_i = N(μθ − γq ∇μ L(μθ, D^test_i), v_q²)           (the variational posterior: it sees the queries)
                   θ_i ~ q_i                                              (one reparametrised draw)
                   φ_i = θ_i − α ∇θ L(θ_i, D^tr_i)                        (inner_steps times)
                   p_i = N(μθ − γp ∇μ L(μθ, D^tr_i), σθ²)                 (the prior, conditioned on the support set)
    Θ ← Adam(Θ, ∇Θ mean_i [L(φ_i, D^test_i) + kl_weight · KL(q_i ‖ p_i)])

Inference (Algorithm 2) draws `samples` θ_s ~ p(θ | D^tr) and adapts each by the same gradient steps: the learner
is evaluated as a set of particles (suite.algorithms.bmaml.ParticleModel, as evaluation.prediction says), sampled
by Schedule.start. The meta-gradient goes through the draws, the shifted means and the inner steps (second order, as
MAML). The paper's algorithm box was not read here (no primary text reached; no official code exists): this follows
the two reimplementations' step comments (cnguyen10/few_shot_meta_learning Platipus.py, "steps 7-11"), which agree
with it as recalled; the stds are parametrised by their logs, as both do. The manifest records what is uncertain.
"""
from __future__ import annotations

from functools import partial

from suite.algorithms import bmaml, emaml
from suite.algorithms.base import Learner as BaseLearner, make_torch_optimizer, map_tasks
from suite.algorithms.base import extra_inputs, finetune_steps_limit  # noqa: F401 (the protocol's usual answers)
from suite.algorithms.bmaml import check_evaluation, paths  # noqa: F401 (a set of samples is evaluated as particles)
from suite.algorithms.inner import grad, sgd_adapt
from suite.algorithms.maml import ARGS as MAML_ARGS
from suite.algorithms.maml import carries_inner_state, hessian_vector_products, second_order, task_shape  # noqa: F401
from suite.lazy import lazy
from suite.protocol.schema import Field

torch = lazy("torch")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = "mean over the meta-batch of the query loss after adaptation plus kl_weight · KL(q ‖ p)"
PARTS = ("mean", "log_sigma", "log_v_q")  # μθ, log σθ, log v_q: each a dict of the model's parameter names
NOISE_STREAM = 5  # the evaluation's draws: seeded_generator(evaluation seed, 0, NOISE_STREAM)

ARGS = {
    **{k: MAML_ARGS[k] for k in ("iterations", "meta_batch", "shots", "queries", "inner_steps", "inner_lr")},
    "kl_weight": Field("float", doc="weight of KL(q ‖ p) in the meta-loss (the paper's bound: 1)"),
    "gamma_p_init": Field("float", doc="γp at initialisation: the prior mean's step size on D^tr (learned)"),
    "gamma_q_init": Field("float", doc="γq at initialisation: the posterior mean's step size on D^test (learned)"),
    "log_sigma_init": Field("float", doc="log σθ at initialisation, every weight (the prior's std)"),
    "log_v_q_init": Field("float", doc="log v_q at initialisation, every weight (the posterior's std)"),
    "samples": Field("positive_int", doc="θ drawn from the prior per test task (Algorithm 2, repeated)"),
    "meta_optimizer": MAML_ARGS["meta_optimizer"],
}


def check(hp: dict, task: dict, family, where: str):
    pass


def initial_params(model, seed: int, hp: dict, device) -> dict:
    """Θ: μθ the model's initialisation, the log-stds constant, γp and γq scalars."""
    mean = model.init_params(seed, device=device)
    theta = {f"mean.{k}": v for k, v in mean.items()}
    for part, init in (("log_sigma", hp["log_sigma_init"]), ("log_v_q", hp["log_v_q_init"])):
        theta.update({f"{part}.{k}": torch.full_like(v, init) for k, v in mean.items()})
    theta["gamma_p"] = torch.tensor(float(hp["gamma_p_init"]), device=device)
    theta["gamma_q"] = torch.tensor(float(hp["gamma_q_init"]), device=device)
    return theta


def part(theta: dict, name: str) -> dict:
    """One of PARTS as a dict of the model's parameter names."""
    prefix = name + "."
    return {k[len(prefix):]: v for k, v in theta.items() if k.startswith(prefix)}


def shifted_mean(model, mean: dict, gamma, x, y) -> dict:
    """μθ − γ ∇μ L(μθ; x, y): the mean of the prior (on D^tr, γp) or of the posterior (on D^test, γq)."""
    g = grad(model.loss)(mean, x, y)
    return {k: m - gamma * g[k] for k, m in mean.items()}


def gaussian_kl(mean_q: dict, log_std_q: dict, mean_p: dict, log_std_p: dict):
    """KL(N(mean_q, std_q²) ‖ N(mean_p, std_p²)) of diagonal Gaussians, summed over every weight."""
    return sum((log_std_p[k] - log_std_q[k]
                + (torch.exp(2 * log_std_q[k]) + (mean_q[k] - mean_p[k]) ** 2) / (2 * torch.exp(2 * log_std_p[k]))
                - 0.5).sum() for k in mean_q)


def task_loss(model, theta, support_x, support_y, query_x, query_y, noise, *, hp):
    """One task's meta-loss: the query loss after adapting a draw from q, plus kl_weight · KL(q ‖ p)."""
    mean = part(theta, "mean")
    posterior = shifted_mean(model, mean, theta["gamma_q"], query_x, query_y)
    prior = shifted_mean(model, mean, theta["gamma_p"], support_x, support_y)
    log_v_q, log_sigma = part(theta, "log_v_q"), part(theta, "log_sigma")
    drawn = {k: m + torch.exp(log_v_q[k]) * noise[k] for k, m in posterior.items()}
    adapted = sgd_adapt(model.loss, drawn, support_x, support_y, hp["inner_steps"], hp["inner_lr"])
    return model.loss(adapted, query_x, query_y) + hp["kl_weight"] * gaussian_kl(posterior, log_v_q, prior, log_sigma)


def draw_noise(theta: dict, n: int, generator) -> dict:
    """Standard normal draws [n, *shape] for every weight, from `generator` (None: torch's global one)."""
    return {k: torch.randn((n, *v.shape), generator=generator).to(v.device) for k, v in part(theta, "mean").items()}


class Schedule(bmaml.Schedule):
    """Test-time inference (Algorithm 2): start() draws θ_s = μθ − γp ∇μ L(μθ, D^tr) + σθ ⊙ ε_s, s = 1..samples, the
    ε_s drawn once from the evaluation's seed (the same for every test task, so a task's samples do not depend on
    which tasks were evaluated with it); each step is then every sample's gradient step at α."""

    def __init__(self, hp: dict):
        super().__init__(hp)
        self.noise = None

    def draw(self, theta: dict, seed: int):
        from suite.tasks.base import seeded_generator
        self.noise = draw_noise(theta, self.hp["samples"], seeded_generator(seed, 0, NOISE_STREAM))

    def start(self, model, theta: dict, x, y) -> dict:
        if self.noise is None:
            raise RuntimeError("PLATIPUS's test-time draws are made by Learner.evaluated (the evaluation's seed)")
        prior = shifted_mean(model.single, part(theta, "mean"), theta["gamma_p"], x, y)
        log_sigma = part(theta, "log_sigma")
        return {k: m + torch.exp(log_sigma[k]) * self.noise[k] for k, m in prior.items()}

    def moved(self, single, params: dict, x, y) -> dict:
        return emaml.adapt(single, params, x, y, 1, self.hp["inner_lr"])  # each sample's step, as EMAML's particles


class Learner(BaseLearner):
    def __init__(self, model, params, hp, path):
        super().__init__(model, params, hp, path)
        self.optimizer = make_torch_optimizer(self.params, hp["meta_optimizer"])
        self.schedule = Schedule(hp)

    def evaluated(self, model, evaluation: dict):
        self.schedule.draw(self.params, evaluation["seed"])
        return bmaml.ParticleModel(model, evaluation["prediction"], evaluation.get("predictive_std"))

    def step(self, tasks, iteration, generator):
        noise = draw_noise(self.params, len(tasks), generator)
        loss = map_tasks(partial(task_loss, hp=self.hp), self.path, self.model, self.params, *tasks.tensors(),
                         noise).mean()
        grads = torch.autograd.grad(loss, list(self.params.values()))
        self.apply_gradients(dict(zip(self.params, grads)))
        return loss.item()

