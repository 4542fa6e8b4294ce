"""Bayesian MAML's pieces: SVGD (suite/algorithms/svgd.py) and its sinusoid tasks (suite/tasks/bmaml_sinusoid.py)."""
import math
from pathlib import Path

import pytest
import torch

from suite.algorithms import svgd
from suite.tasks import bmaml_sinusoid
from suite.tasks.base import seeded_generator

REPO = Path(__file__).resolve().parents[1]


def gaussian_log_p(mean, std):
    return lambda particle: (-0.5 * ((particle["x"] - mean) / std) ** 2).sum()


@pytest.mark.parametrize("repulsion", svgd.REPULSION)
def test_svgd_moves_the_particles_of_a_gaussian_target_to_its_mean_and_variance(repulsion):
    torch.manual_seed(0)
    particles = {"x": torch.randn(100, 1, dtype=torch.float64) - 3.0}  # far from the target, too narrow
    log_p = gaussian_log_p(2.0, 0.5)
    for _ in range(3000):
        particles = svgd.step(log_p, particles, 0.05, repulsion)
    x = particles["x"].flatten()
    assert abs(x.mean().item() - 2.0) < 0.02
    # the exact kernel gradient spreads them to the target's width; BMAML's code halves the repulsion, so its
    # particles settle narrower: that is the difference a claim choosing 'code' inherits
    if repulsion == "exact":
        assert abs(x.std().item() - 0.5) < 0.1
    else:
        assert 0.2 < x.std().item() < 0.5


def test_without_the_kernel_svgd_is_independent_gradient_ascents():
    torch.manual_seed(1)
    particles = {"w": torch.randn(5, 3, 2, dtype=torch.float64), "b": torch.randn(5, 2, dtype=torch.float64)}

    def log_p(p, x):
        return -((x @ p["w"] + p["b"]) ** 2).sum()

    x = torch.randn(4, 3, dtype=torch.float64)
    moved = svgd.step(log_p, particles, 0.1, "exact", x, use_kernel=False)
    for m in range(5):
        one = {k: v[m].clone().requires_grad_(True) for k, v in particles.items()}
        grads = torch.autograd.grad(log_p(one, x), list(one.values()))
        for (k, v), g in zip(one.items(), grads):
            torch.testing.assert_close(moved[k][m], v.detach() + 0.1 * g, rtol=0, atol=1e-14)


def test_the_code_repulsion_is_half_the_exact_kernel_gradient_and_the_bandwidth_is_bmamls():
    torch.manual_seed(2)
    flat = torch.randn(4, 3, dtype=torch.float64)
    k, exact, h = svgd.kernel(flat, "exact")
    _, code, _ = svgd.kernel(flat, "code")
    torch.testing.assert_close(code, exact / 2)
    sq = torch.cdist(flat, flat) ** 2
    middle = sq.flatten().sort().values[7:9].mean()  # 16 entries, 4 of them the diagonal's zeros
    torch.testing.assert_close(h, middle / math.log(4))
    # the repulsive term is Σ_j ∇θ_j k(θ_j, θ_i), by autograd
    for i in range(4):
        moving = flat.clone().requires_grad_(True)
        total = sum(torch.exp(-((moving[j] - flat[i]) ** 2).sum() / h) for j in range(4))
        (g,) = torch.autograd.grad(total, moving)
        torch.testing.assert_close(exact[i], g.sum(0))
    with pytest.raises(ValueError, match="at least 2 particles"):
        svgd.kernel(flat[:1], "code")


def test_a_meta_gradient_through_an_svgd_step_matches_finite_differences():
    torch.manual_seed(3)
    particles = {"x": torch.randn(3, 2, dtype=torch.float64, requires_grad=True)}

    def log_p(p, target):
        return -((p["x"] - target) ** 2).sum() - 0.1 * (p["x"] ** 4).sum()

    target = torch.tensor([0.5, -1.0], dtype=torch.float64)

    _, _, h = svgd.kernel(particles["x"].detach(), "exact")

    def outer(x):  # the bandwidth carries no gradient (BMAML stops it): finite differences hold it fixed too
        moved = svgd.step(log_p, {"x": x}, 0.2, "exact", target, h=h)
        return (moved["x"] ** 2).sum()

    (g,) = torch.autograd.grad(outer(particles["x"]), particles["x"])
    x0, eps = particles["x"].detach(), 1e-6
    numeric = torch.zeros_like(x0)
    for idx in range(x0.numel()):
        d = torch.zeros_like(x0).flatten()
        d[idx] = eps
        d = d.view_as(x0)
        numeric.view(-1)[idx] = (outer(x0 + d) - outer(x0 - d)) / (2 * eps)
    torch.testing.assert_close(g, numeric, rtol=1e-6, atol=1e-8)


def tasks(**over):
    config = dict(amplitude=[0.1, 5.0], phase=[0.0, 2 * math.pi], frequency=[0.5, 2.0], x_range=[-5.0, 5.0],
                  noise=0.01, train_tasks=100, train_points=20, pool_seed=10, noiseless_queries=True)
    return bmaml_sinusoid.Tasks(**{**config, **over})


def test_bmaml_training_tasks_come_from_a_fixed_set_with_fixed_points():
    family = tasks()
    a = family.sample(10, 5, 5, seeded_generator(0, 0), "train")
    b = family.sample(10, 5, 5, seeded_generator(0, 1), "train")
    pool_x, pool_y = family.pool()
    assert pool_x.shape == (100, 20, 1)
    for batch in (a, b):
        x = torch.cat([batch.support_x, batch.query_x], 1)
        y = torch.cat([batch.support_y, batch.query_y], 1)
        # every task of a batch is one of the fixed tasks, with its first 10 fixed points, and no task twice
        matches = [int(((pool_x[:, :10] - xi).abs().amax((1, 2)) == 0).nonzero()) for xi in x]
        assert len(set(matches)) == 10
        assert all(torch.equal(pool_y[m, :10], yi) for m, yi in zip(matches, y))
    assert not torch.equal(a.support_x, b.support_x)
    with pytest.raises(ValueError, match="from 100 training tasks"):
        family.sample(101, 5, 5, seeded_generator(0, 0), "train")


def test_bmaml_test_tasks_have_noisy_support_and_clean_queries_when_the_protocol_says_so():
    family, clean = tasks(noise=0.5), tasks(noise=0.5, noiseless_queries=False)
    noisy_batch = clean.sample(50, 5, 5, seeded_generator(1, 2), "test")
    batch = family.sample(50, 5, 5, seeded_generator(1, 2), "test")
    torch.testing.assert_close(batch.support_y, noisy_batch.support_y)  # the same draws
    assert not torch.allclose(batch.query_y, noisy_batch.query_y)
    # the clean queries lie on the function that curve() draws from the same generator state
    grid_x, grid_y = family.curve(seeded_generator(1, 2), 1000)
    one = family.sample(1, 5, 5, seeded_generator(1, 2), "test")
    nearest = (grid_x.view(1, -1) - one.query_x.view(-1, 1)).abs().argmin(1)
    assert (grid_y.flatten()[nearest] - one.query_y.flatten()).abs().max() < 0.05
    # and the support targets are off it by noise of std 0.5·A
    amplitude = grid_y.abs().max()
    nearest = (grid_x.view(1, -1) - one.support_x.view(-1, 1)).abs().argmin(1)
    assert (grid_y.flatten()[nearest] - one.support_y.flatten()).abs().max() < 4 * 0.5 * amplitude + 0.05


MLP = {"kind": "mlp", "hidden": [16, 16], "activation": "relu", "init": "xavier-uniform", "init_std": 0.01}
HP = dict(iterations=100, meta_batch=4, shots=5, queries=5, particles=3, inner_steps=1, leader_steps=1, inner_lr=1e-3,
          leader_lr=1e-3, repulsion="code", gamma_shape=2.0, gamma_rate=0.2, lambda_shape=2.0, lambda_rate=2.0,
          log_gamma_init=-math.log(0.01), log_lambda_init=0.0, precision_init_std=0.001,
          meta_optimizer={"name": "adam", "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8}, meta_lr_decay=0.98,
          meta_lr_decay_period=0.01)


def mlp():
    from suite.models.functional import FunctionalModel
    return FunctionalModel(MLP, in_dim=1, out_dim=1, loss="mse", loss_scale=1.0, loss_reduction="mean")


def test_emaml_with_one_particle_is_maml():
    from suite.algorithms import emaml, maml
    model, batch = mlp(), tasks().sample(4, 5, 5, seeded_generator(0, 0), "train")
    hp = {**HP, "particles": 1, "inner_steps": 2, "inner_lr": 0.01, "meta_lr_decay": 1.0}  # MAML has no decay
    particles = emaml.initial_params(model, 0, hp, "cpu")
    ensemble = emaml.Learner(model, particles, hp, "loop")
    single = maml.Learner(model, {k: v[0] for k, v in particles.items()}, hp, "loop")
    for i in range(3):
        batch = tasks().sample(4, 5, 5, seeded_generator(0, i), "train")
        assert ensemble.step(batch, i, None) == pytest.approx(single.step(batch, i, None), rel=1e-6)
    for k, v in single.params.items():
        torch.testing.assert_close(ensemble.params[k][0], v, rtol=1e-5, atol=1e-7)


def test_svgd_with_one_particle_is_gradient_ascent_on_the_log_posterior():
    from suite.algorithms import bmaml
    model = mlp()
    particle = bmaml.initial_params(model, 0, {**HP, "particles": 1}, "cpu")
    x, y = torch.randn(5, 1), torch.randn(5, 1)

    def log_p(p, xs, ys):
        return bmaml.log_posterior(model, HP, p, xs, ys)

    moved = svgd.step(log_p, particle, 1e-3, "exact", x, y, h=torch.tensor(1.0))  # k(θ, θ) = 1, no repulsion
    one = {k: v[0].clone().requires_grad_(True) for k, v in particle.items()}
    grads = torch.autograd.grad(log_p(one, x, y), list(one.values()))
    for (k, v), g in zip(one.items(), grads):
        torch.testing.assert_close(moved[k][0], v.detach() + 1e-3 * g)


def test_the_log_posterior_is_bmamls():
    from suite.algorithms import bmaml
    model = mlp()
    particle = {k: v[0] for k, v in bmaml.initial_params(model, 0, {**HP, "particles": 1}, "cpu").items()}
    x, y = torch.randn(5, 1), torch.randn(5, 1)
    g, lam = particle["log_gamma"].exp(), particle["log_lambda"].exp()
    w = bmaml.weights(particle)
    n = sum(v.numel() for v in w.values())
    expected = (0.5 * particle["log_gamma"] - 0.5 * g * (model.forward(w, x) - y) ** 2).sum() \
        + 0.5 * n * particle["log_lambda"] - 0.5 * lam * sum((v ** 2).sum() for v in w.values()) \
        + (2.0 - 1) * particle["log_gamma"] - 0.2 * g + particle["log_gamma"] \
        + (2.0 - 1) * particle["log_lambda"] - 2.0 * lam + particle["log_lambda"]  # bnn.py's terms, as written there
    torch.testing.assert_close(bmaml.log_posterior(model, HP, particle, x, y), expected)


def test_bmaml_computes_the_same_chaser_loss_on_either_path_and_learns_nothing_from_a_leader_that_does_not_move():
    from suite.algorithms import bmaml
    model, batch = mlp(), tasks().sample(4, 5, 5, seeded_generator(0, 0), "train")
    params = bmaml.initial_params(model, 0, HP, "cpu")
    losses = [bmaml.Learner(model, params, HP, path).step(batch, 0, None) for path in ("loop", "vmap")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5) and losses[0] > 0
    still = bmaml.Learner(model, params, {**HP, "leader_lr": 0.0}, "loop")
    assert still.step(batch, 0, None) == 0.0
    for k, v in params.items():
        torch.testing.assert_close(still.params[k], v)  # a zero meta-gradient: Adam does not move


def test_the_ensembles_mse_is_never_above_the_mean_of_its_particles_mse():
    from suite.algorithms import bmaml
    model = mlp()
    params = bmaml.initial_params(model, 0, {**HP, "particles": 5}, "cpu")
    x, y = torch.randn(20, 1), torch.randn(20, 1)
    mean, each = bmaml.ParticleModel(model, "particle-mean"), bmaml.ParticleModel(model, "each-particle")
    ensemble_mse = mean.mean_metric("mse", mean.forward(params, x), y)
    particles_mse = each.mean_metric("mse", each.forward(params, x), y)
    separately = sum(((model.forward({k: v[m] for k, v in bmaml.weights(params).items()}, x) - y) ** 2).mean()
                     for m in range(5)) / 5
    torch.testing.assert_close(particles_mse, separately)
    assert ensemble_mse <= particles_mse


@pytest.mark.parametrize("algorithm", ["emaml", "bmaml"])
def test_the_particle_algorithms_compute_the_same_step_on_vmap_and_the_loop(algorithm):
    from suite.protocol.components import algorithms
    module = algorithms()[algorithm]
    model, batch = mlp(), tasks().sample(4, 5, 5, seeded_generator(0, 0), "train")
    params = module.initial_params(model, 0, HP, "cpu")
    learners = [module.Learner(model, params, HP, path) for path in ("loop", "vmap")]
    losses = [learner.step(batch, 0, None) for learner in learners]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for k in params:
        torch.testing.assert_close(learners[0].params[k], learners[1].params[k], rtol=1e-4, atol=1e-6)
    assert module.paths(HP) == ("vmap", "loop")  # no grouped form of a set of particles


def test_the_xavier_uniform_mlp_is_bmamls_initialisation():
    from suite.models import mlp as mlp_kind
    from suite.protocol.schema import ManifestError
    params = mlp().init_params(0)
    bound = math.sqrt(6 / (16 + 16))
    assert params["2.weight"].abs().max() <= bound and params["2.weight"].abs().max() > 0.8 * bound
    assert 0.003 < params["2.bias"].std() < 0.03  # N(0, 0.01²) biases, as bnn.py's tf.random_normal
    with pytest.raises(ManifestError, match="init_std: required when init is 'truncated-normal' or 'xavier-uniform'"):
        mlp_kind.check({k: v for k, v in MLP.items() if k != "init_std"}, "m")


@pytest.mark.parametrize("where, value, expected", [
    ("evaluation.optimizer", {"name": "sgd", "lr": 0.01},
     r"runs.bmaml-t100-k5.evaluation.optimizer: the particles fine-tune at test time by the steps they trained with, "
     r"at inner_lr 0.001: write \{name: sgd, lr: 0.001\}"),
    ("evaluation.prediction", None, r"runs.bmaml-t100-k5.evaluation.prediction: say what the particles' test metric"),
    ("evaluation.batch_size", 2, r"runs.bmaml-t100-k5.evaluation.batch_size: the particles fine-tune as they trained"),
    ("runs.bmaml-t100-k5.particles", 1, r"particles: SVGD's median bandwidth h = med²/log M divides by log M"),
])
def test_the_manifest_says_how_particles_are_evaluated_or_is_refused(where, value, expected, tmp_path):
    import re

    import yaml

    from suite.protocol.manifest import ManifestError, load_manifest
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    target = raw["claims"]["bmaml-sinusoid"]
    *head, last = where.split(".")
    for k in head:
        target = target[k]
    if value is None:
        del target[last]
    else:
        target[last] = value
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "b.yaml")
    assert re.search(expected, str(info.value)), str(info.value)


def test_a_prediction_is_refused_for_one_network_and_the_code_metric_variant_does_not_retrain(tmp_path):
    import yaml

    from suite.protocol.manifest import ManifestError, load_manifest
    manifest = load_manifest(REPO / "benchmarks.yaml")
    variants = manifest.claim("bmaml-sinusoid").variant_configs(variants=["emaml-code-metric"])
    assert variants and all(not cfg.retrains and cfg.evaluation["prediction"] == "each-particle" for cfg in variants)
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    raw["claims"]["maml-sinusoid"]["evaluation"]["prediction"] = "particle-mean"
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ManifestError, match=r"claim 'maml-sinusoid': runs.maml.evaluation.prediction: says how a "
                                            r"set of particles predicts"):
        load_manifest(tmp_path / "b.yaml")
