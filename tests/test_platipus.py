"""PLATIPUS (suite/algorithms/platipus.py), its ambiguous regression tasks (suite/tasks/ambiguous_regression.py) and
the predictive metrics of a set of sampled functions (suite.algorithms.bmaml.ParticleModel), in float64 where a
gradient is checked."""
import math

import pytest
import torch

from suite.algorithms import bmaml, maml, platipus
from suite.models.functional import FunctionalModel
from suite.tasks import ambiguous_regression
from suite.tasks.base import TaskBatch, seeded_generator

HP = dict(iterations=10, meta_batch=3, shots=4, queries=4, inner_steps=2, inner_lr=0.05, kl_weight=1.0,
          gamma_p_init=0.01, gamma_q_init=0.02, log_sigma_init=-2.0, log_v_q_init=-2.5, samples=4,
          meta_optimizer={"name": "adam", "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8})


def mlp(dtype=torch.float32):
    model = FunctionalModel({"kind": "mlp", "hidden": [6, 5], "activation": "relu", "init": "pytorch"},
                            in_dim=1, out_dim=1, loss="mse", loss_scale=1.0, loss_reduction="mean")
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 8, 1, generator=g) * 10 - 5).to(dtype)
    tasks = TaskBatch(x[:, :4], torch.sin(x[:, :4]) * 2, x[:, 4:], torch.sin(x[:, 4:]) * 2)
    return model, tasks


def family(**over):
    config = dict(amplitude=[0.1, 5.0], phase=[0.0, math.pi], slope=[-3.0, 3.0], intercept=[-3.0, 3.0],
                  x_range=[-5.0, 5.0], sine_fraction=0.5, noise=0.3, noiseless_queries=False)
    return ambiguous_regression.Tasks(**{**config, **over})


def test_the_kl_term_is_the_closed_form_of_two_diagonal_gaussians():
    torch.manual_seed(0)
    shapes = {"a": (3, 2), "b": (4,)}
    mq, mp = ({k: torch.randn(s, dtype=torch.float64) for k, s in shapes.items()} for _ in range(2))
    sq, sp = ({k: torch.randn(s, dtype=torch.float64) * 0.5 for k, s in shapes.items()} for _ in range(2))
    expected = sum(torch.distributions.kl_divergence(torch.distributions.Normal(mq[k], sq[k].exp()),
                                                     torch.distributions.Normal(mp[k], sp[k].exp())).sum()
                   for k in shapes)
    torch.testing.assert_close(platipus.gaussian_kl(mq, sq, mp, sp), expected)
    assert platipus.gaussian_kl(mq, sq, mq, sq) == 0.0


def test_the_meta_gradient_through_the_draw_the_shifted_means_and_the_inner_steps_matches_finite_differences():
    model, tasks = mlp(torch.float64)
    theta = {k: v.double() for k, v in platipus.initial_params(model, 1, HP, "cpu").items()}
    theta["gamma_p"], theta["gamma_q"] = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)
    noise = {k: v.double() for k, v in platipus.draw_noise(theta, 1, torch.Generator().manual_seed(2)).items()}
    one = {k: v[0] for k, v in noise.items()}
    task = tasks[0].tensors()
    checked = ["gamma_p", "gamma_q", "mean.0.weight", "log_sigma.2.bias", "log_v_q.4.weight"]

    def loss(t):
        return platipus.task_loss(model, t, *task, one, hp=HP)

    tracked = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    grads = dict(zip(tracked, torch.autograd.grad(loss(tracked), list(tracked.values()))))
    eps = 1e-6
    for name in checked:
        for i in range(min(theta[name].numel(), 4)):
            plus = {k: v.clone() for k, v in theta.items()}
            minus = {k: v.clone() for k, v in theta.items()}
            plus[name].view(-1)[i] += eps
            minus[name].view(-1)[i] -= eps
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            torch.testing.assert_close(grads[name].reshape(-1)[i], numeric, rtol=1e-5, atol=1e-8,
                                       msg=lambda m: f"{name}[{i}]: {m}")
    assert grads["gamma_p"] != 0 and grads["gamma_q"] != 0  # both shifted means reach the loss (through the KL)


def test_with_its_noise_shifts_and_kl_switched_off_platipus_is_maml():
    model, tasks = mlp(torch.float64)
    hp = {**HP, "kl_weight": 0.0, "gamma_p_init": 0.0, "gamma_q_init": 0.0, "log_sigma_init": -40.0,
          "log_v_q_init": -40.0}
    theta = {k: v.double().requires_grad_(True) for k, v in platipus.initial_params(model, 0, hp, "cpu").items()}
    noise = {k: v.double() for k, v in platipus.draw_noise(theta, len(tasks), torch.Generator().manual_seed(1)).items()}
    loss = torch.stack([platipus.task_loss(model, theta, *tasks[i].tensors(), {k: v[i] for k, v in noise.items()},
                                           hp=hp) for i in range(len(tasks))]).mean()
    grads = dict(zip(theta, torch.autograd.grad(loss, list(theta.values()))))
    mean = {k: v.detach().clone().requires_grad_(True) for k, v in platipus.part(theta, "mean").items()}
    expected, maml_loss = maml.meta_gradient(model, mean, tasks, hp["inner_steps"], hp["inner_lr"], "loop")
    assert loss.item() == pytest.approx(maml_loss.item(), rel=1e-12)
    for k, g in expected.items():
        torch.testing.assert_close(grads[f"mean.{k}"], g, rtol=1e-9, atol=1e-12)


def test_both_paths_compute_the_same_platipus_step():
    model, tasks = mlp()
    theta = platipus.initial_params(model, 0, HP, "cpu")
    learners = [platipus.Learner(model, theta, HP, path) for path in ("loop", "vmap")]
    losses = [learner.step(tasks, 0, torch.Generator().manual_seed(5)) for learner in learners]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for k in theta:
        torch.testing.assert_close(learners[0].params[k], learners[1].params[k], rtol=1e-4, atol=1e-6)


def test_test_time_draws_come_from_the_prior_given_the_support_set_and_the_evaluations_seed():
    model, tasks = mlp()
    theta = platipus.initial_params(model, 0, HP, "cpu")
    theta["gamma_p"] = torch.tensor(0.5)
    learner = platipus.Learner(model, theta, HP, "loop")
    evaluated = learner.evaluated(model, {"seed": 7, "prediction": "particle-mean"})
    sx, sy, *_ = tasks[0].tensors()
    drawn = learner.schedule.start(evaluated, learner.params, sx, sy)
    # the prior's mean: μ − γp ∇μ MSE(μ; support), by autograd here
    mean = {k: v.detach().clone().requires_grad_(True) for k, v in platipus.part(theta, "mean").items()}
    g = dict(zip(mean, torch.autograd.grad(model.loss(mean, sx, sy), list(mean.values()))))
    noise = platipus.draw_noise(theta, HP["samples"], seeded_generator(7, 0, platipus.NOISE_STREAM))
    for k, m in mean.items():
        expected = m.detach() - 0.5 * g[k] + math.exp(HP["log_sigma_init"]) * noise[k]
        torch.testing.assert_close(drawn[k], expected)
        assert drawn[k].shape == (HP["samples"], *m.shape)
    again = platipus.Learner(model, theta, HP, "loop")
    again.evaluated(model, {"seed": 7, "prediction": "particle-mean"})
    torch.testing.assert_close(again.schedule.start(evaluated, again.params, sx, sy), drawn)


def test_the_mixtures_nll_and_coverage_are_their_closed_forms():
    torch.manual_seed(0)
    out, y, s = torch.randn(4, 30, 1, dtype=torch.float64), torch.randn(30, 1, dtype=torch.float64) * 2, 0.3
    model = bmaml.ParticleModel(None, "particle-mean", s)
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(4, dtype=torch.float64)),
        torch.distributions.Normal(out[..., 0].T, s))
    torch.testing.assert_close(model.mean_metric("nll", out, y), -mixture.log_prob(y[:, 0]).mean())
    cdf = mixture.cdf(y[:, 0])
    assert model.mean_metric("coverage90", out, y) == ((cdf > 0.05) & (cdf < 0.95)).double().mean()
    one = out[:1]  # one function: inside its interval when |y − f| < 1.645 s
    inside = ((y - one[0]).abs() < 1.6448536269514722 * s).double().mean()
    assert model.mean_metric("coverage90", one, y) == inside
    assert model.metrics == ("mse", "nll", "coverage90")
    assert bmaml.ParticleModel(None, "particle-mean").metrics == ("mse",)


def test_ambiguous_tasks_are_sines_or_lines_in_proportion_with_their_noise():
    clean = family(noise=0.0, noiseless_queries=True)
    batch = clean.sample(2000, 5, 5, seeded_generator(0, 0), "test")
    x = torch.cat([batch.support_x, batch.query_x], 1).double()[..., 0]
    y = torch.cat([batch.support_y, batch.query_y], 1).double()[..., 0]
    design = torch.stack([x, torch.ones_like(x)], -1)  # least-squares line through each task's 10 points
    coef = torch.linalg.lstsq(design, y.unsqueeze(-1)).solution
    residual = (design @ coef)[..., 0] - y
    is_line = residual.abs().max(1).values < 1e-4
    assert 0.45 < is_line.double().mean() < 0.55
    assert (coef[is_line].abs() <= 3.0 + 1e-4).all()  # slope and intercept in [−3, 3]
    assert (y[~is_line].abs() <= 5.0 + 1e-4).all()  # a sine's amplitude is at most 5
    noisy = family().sample(2000, 5, 5, seeded_generator(0, 0), "test")  # the same draws, then the noise
    torch.testing.assert_close(noisy.support_x, batch.support_x)
    assert (noisy.support_y - batch.support_y).std() == pytest.approx(0.3, rel=0.05)
    assert (noisy.query_y - batch.query_y).abs().max() > 0  # queries noisy unless noiseless_queries
