"""MAML for RL (suite/algorithms/maml_trpo.py) on 2D navigation: the meta-gradient through the inner policy-gradient
step against finite differences, TRPO's accepted step within its KL bound, the evaluation's returns."""
import pytest
import torch

from suite.algorithms import maml_trpo
from suite.algorithms import policy_gradient as pg
from suite.models.functional import FunctionalModel
from suite.tasks import navigation2d
from suite.tasks.base import seeded_generator

HP = dict(iterations=2, meta_batch=3, shots=4, queries=4, inner_steps=1, inner_lr=0.1, discount=0.99, gae_lambda=1.0,
          normalize_advantages=True, baseline_reg=1e-5, init_log_std=0.0, max_kl=0.01, cg_iterations=10,
          cg_damping=1e-5, backtrack_ratio=0.8, max_backtracks=15)


def setup(dtype=torch.float32, horizon=12, activation="relu"):
    model = FunctionalModel({"kind": "mlp", "hidden": [8, 8], "activation": activation, "init": "glorot-uniform"},
                            in_dim=2, out_dim=2, loss="return", loss_scale=1.0, loss_reduction="mean")
    family = navigation2d.Tasks([-0.5, 0.5], 0.1, 0.1, "negative-distance", 0.01, horizon)
    params = {k: v.to(dtype) for k, v in maml_trpo.initial_params(model, 0, HP, "cpu").items()}
    return model, family, params


def test_the_meta_gradient_through_the_policy_gradient_step_matches_finite_differences():
    torch.set_default_dtype(torch.float64)
    try:
        model, family, params = setup(torch.float64, activation="tanh")  # ReLU's kink sits at the origin's start
        batch = family.sample(2, 4, 4, seeded_generator(0, 0), "train")
        rollouts = [maml_trpo.rollout(model, [params] * 2, batch, 4, seeded_generator(0, 1))]
        post = maml_trpo.rollout(model, [params] * 2, batch, 4, seeded_generator(0, 2))

        def objective(theta):  # the mean post-update log-likelihood weighted by fixed advantages
            adapted = maml_trpo.adapt_on(model, [theta] * 2, rollouts, [0.1], 4, HP, create_graph=True)
            total = 0
            for i, p in enumerate(adapted):
                obs, actions, rewards, mask = maml_trpo.split(post, i, 4)
                total = total + (maml_trpo.log_prob(model, p, obs, actions) * rewards * mask).sum()
            return total

        theta = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        grads = dict(zip(theta, torch.autograd.grad(objective(theta), list(theta.values()))))
        eps = 1e-6
        for name in ("0.weight", "2.bias", "log_std"):
            for i in range(min(theta[name].numel(), 3)):
                plus = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
                minus = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
                with torch.no_grad():
                    plus[name].view(-1)[i] += eps
                    minus[name].view(-1)[i] -= eps
                numeric = (objective(plus) - objective(minus)) / (2 * eps)
                torch.testing.assert_close(grads[name].reshape(-1)[i], numeric.detach(), rtol=1e-5, atol=1e-8,
                                           msg=lambda m: f"{name}[{i}]: {m}")
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_trpo_meta_update_stays_within_its_kl_bound_and_lowers_the_surrogate(monkeypatch):
    model, family, params = setup()
    learner = maml_trpo.Learner(model, params, HP, "loop")
    accepted = []
    search = pg.line_search

    def watched(trial, full_step, max_kl, *args):
        step, k = search(trial, full_step, max_kl, *args)
        accepted.append((trial(torch.zeros_like(step)), trial(step), k))
        return step, k

    monkeypatch.setattr(pg, "line_search", watched)
    for it in range(2):
        learner.step(family.sample(3, 4, 4, seeded_generator(1, it), "train"), it, seeded_generator(1, it, 2))
    for (loss_before, _), (loss, kl), k in accepted:
        if k is None:
            continue
        assert kl <= HP["max_kl"] and loss < loss_before
    assert any(k is not None for *_, k in accepted)


def test_the_evaluation_returns_are_each_tasks_mean_trajectory_return_after_each_step():
    model, family, params = setup(horizon=20)
    batch = family.sample(3, 5, 5, seeded_generator(2, 0), "test")
    evaluation = maml_trpo.PolicyEvaluation(HP)
    returns, examples = evaluation.returns(model, params, batch, [0, 1, 2], [0.1, 0.05], seeded_generator(2, 1),
                                           examples=2)
    assert set(returns) == {0, 1, 2} and all(r.shape == (3,) for r in returns.values())
    again, _ = evaluation.returns(model, params, batch, [0], [], seeded_generator(2, 1))
    torch.testing.assert_close(again[0], returns[0])  # step 0: the same trajectories of the unadapted policy
    assert (returns[0] < 0).all()  # every reward is a negative distance
    assert len(examples) == 2 and examples[1]["goal"] == batch.goals[1].tolist()
    path = torch.tensor(examples[0]["paths"]["1"])
    assert path[0].tolist() == [0.0, 0.0] and len(path) == 21  # from the origin, every position of its 20 steps
    assert ((path[1:] - path[:-1]).abs() <= 0.1 + 1e-6).all()  # each move clipped to the action bound


def test_a_figure_over_steps_names_one_run_per_series_that_measures_the_metric_at_each_step(tmp_path):
    from pathlib import Path

    import yaml

    from suite.protocol.manifest import ManifestError, figure_points, load_manifest
    repo = Path(__file__).resolve().parents[1]
    manifest = load_manifest(repo / "benchmarks.yaml")
    (figure,) = manifest.claim("maml-rl-navigation").body("paper")["figures"]
    assert figure_points(figure)["MAML"] == [("maml", s, f"return@{s}") for s in (0, 1, 2, 3)]
    for series, steps, expected in (({"MAML": "mmal"}, [0, 1], "with steps, a series is one run of this claim"),
                                    ({"MAML": "maml"}, [0, 7], "'return@7' is not measured by run 'maml'")):
        raw = yaml.safe_load((repo / "benchmarks.yaml").read_text())
        raw["claims"]["maml-rl-navigation"]["figures"][0].update(series=series, steps=steps)
        (tmp_path / "b.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        with pytest.raises(ManifestError, match=expected):
            load_manifest(tmp_path / "b.yaml")


def test_the_pretrained_policy_takes_adam_steps_on_the_mean_reinforce_loss_of_its_own_trajectories():
    from suite.algorithms import pretrained_policy
    model, family, params = setup()
    hp = {**{k: HP[k] for k in pretrained_policy.ARGS if k in HP},
          "meta_optimizer": {"name": "sgd", "lr": 0.1}}
    learner = pretrained_policy.Learner(model, params, hp, "loop")
    batch = family.sample(3, 4, 1, seeded_generator(3, 0), "train")
    data = maml_trpo.rollout(model, [params] * 3, batch, 4, seeded_generator(3, 1))  # the same trajectories
    theta = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    losses = []
    for i in range(3):
        obs, actions, rewards, mask = maml_trpo.split(data, i, 4)
        advantages = maml_trpo.advantages(obs, rewards, mask, hp)
        losses.append(pg.reinforce_loss(maml_trpo.log_prob(model, theta, obs, actions), advantages, mask))
    expected = torch.stack(losses).mean()
    grads = dict(zip(theta, torch.autograd.grad(expected, list(theta.values()))))
    returns = maml_trpo.trajectory_returns(data[2], data[3], 3)
    assert learner.step(batch, 0, seeded_generator(3, 1)) == pytest.approx(-returns.mean().item(), rel=1e-6)
    for k, v in params.items():
        torch.testing.assert_close(learner.params[k], v - 0.1 * grads[k])  # one SGD step of the meta optimiser


def context_setup(dtype=torch.float64):
    from suite.algorithms import context_vector
    hp = {**HP, "context_size": 2}
    model = FunctionalModel({"kind": "mlp", "hidden": [8, 8], "activation": "tanh", "init": "glorot-uniform"},
                            in_dim=2 + context_vector.extra_inputs(hp), out_dim=2, loss="return", loss_scale=1.0,
                            loss_reduction="mean")
    params = {k: v.to(dtype) for k, v in context_vector.initial_params(model, 0, hp, "cpu").items()}
    return model, params, hp


def test_the_context_vector_policy_reads_the_vector_beside_each_observation_and_its_steps_adapt_only_the_vector():
    torch.set_default_dtype(torch.float64)
    try:
        model, params, hp = context_setup()
        assert params["context"].tolist() == [0.0, 0.0] and params["0.weight"].shape == (8, 4)
        obs = torch.randn(5, 3, 2, generator=torch.Generator().manual_seed(0))
        context = {**params, "context": torch.tensor([0.3, -0.2])}
        widened = torch.cat([obs, torch.tensor([0.3, -0.2]).expand(5, 3, 2)], -1)
        torch.testing.assert_close(maml_trpo.mean_action(model, context, obs),
                                   model.forward(maml_trpo.weights(params), widened))
        family = navigation2d.Tasks([-0.5, 0.5], 0.1, 0.1, "negative-distance", 0.01, 12)
        batch = family.sample(2, 4, 4, seeded_generator(0, 0), "train")
        theta = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        (adapted, _), _ = maml_trpo.adapt(model, theta, batch, [0.5], hp, seeded_generator(0, 1), create_graph=True)
        assert not torch.equal(adapted["context"], params["context"])
        for k in params:  # the network and the log std stay the initialisation's, the same tensors
            if k != "context":
                assert adapted[k] is theta[k]

        post = maml_trpo.rollout(model, [params] * 2, batch, 4, seeded_generator(0, 2))
        rollouts = [maml_trpo.rollout(model, [params] * 2, batch, 4, seeded_generator(0, 3))]

        def objective(theta):  # the meta-gradient reaches the network through the adapted vector (second order)
            adapted = maml_trpo.adapt_on(model, [theta] * 2, rollouts, [0.5], 4, hp, create_graph=True)
            total = 0
            for i, p in enumerate(adapted):
                obs, actions, rewards, mask = maml_trpo.split(post, i, 4)
                total = total + (maml_trpo.log_prob(model, p, obs, actions) * rewards * mask).sum()
            return total

        grads = dict(zip(theta, torch.autograd.grad(objective(theta), list(theta.values()))))
        for name in ("0.weight", "context", "log_std"):
            for i in (0, 1):
                shifted = []
                for sign in (1, -1):
                    p = {k: v.detach().clone() for k, v in params.items()}
                    p[name].view(-1)[i] += sign * 1e-6
                    shifted.append(objective({k: v.requires_grad_(True) for k, v in p.items()}))
                numeric = (shifted[0] - shifted[1]) / 2e-6
                torch.testing.assert_close(grads[name].reshape(-1)[i], numeric.detach(), rtol=1e-5, atol=1e-8,
                                           msg=lambda m: f"{name}[{i}]: {m}")
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_random_policy_is_not_trained_and_a_run_may_give_it_its_own_network(tmp_path):
    from pathlib import Path

    import yaml

    from suite.protocol.manifest import ManifestError, load_manifest
    repo = Path(__file__).resolve().parents[1]
    claim = load_manifest(repo / "benchmarks.yaml").claim("maml-rl-navigation")
    (random,) = claim.run_configs("paper", seeds=[0], runs=["random"])
    (maml,) = claim.run_configs("paper", seeds=[0], runs=["maml"])
    assert random.model == {**maml.model, "activation": "tanh"}  # the run's model override, over the claim's
    for change, expected in (({"iterations": 5}, r"runs\.random\.iterations: a random initialisation is not trained"),
                             ({"model": {"kind": "conv4"}}, r"runs\.random\.model\.kind: a run cannot change"),
                             ({"model": {"activation": "sigmoid"}}, r"runs\.random\.model\.activation")):
        raw = yaml.safe_load((repo / "benchmarks.yaml").read_text())
        raw["claims"]["maml-rl-navigation"]["runs"]["random"].update(change)
        (tmp_path / "b.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        with pytest.raises(ManifestError, match=expected):
            load_manifest(tmp_path / "b.yaml")


def test_the_codes_finite_difference_fisher_products_approach_the_exact_ones_only_for_a_small_step(monkeypatch):
    torch.set_default_dtype(torch.float64)
    try:
        model, family, params = setup(torch.float64, activation="tanh")
        batch = family.sample(2, 4, 4, seeded_generator(4, 0), "train")
        v = torch.randn(sum(p.numel() for p in params.values()), generator=torch.Generator().manual_seed(1))
        products = {}
        direction = pg.trpo_direction

        def captured(gradient, fisher_vector_product, *args):
            products[key] = fisher_vector_product(v)
            return direction(gradient, fisher_vector_product, *args)

        monkeypatch.setattr(pg, "trpo_direction", captured)
        for key, extra in (("exact", {}), ("small", {"finite_difference_hvp": {"base_eps": 1e-5}}),
                           ("code", {"finite_difference_hvp": {"base_eps": 1.0}})):
            learner = maml_trpo.Learner(model, params, {**HP, "meta_batch": 2, **extra}, "loop")
            learner.step(batch, 0, seeded_generator(4, 1))  # the same trajectories for each
        torch.testing.assert_close(products["small"], products["exact"], rtol=1e-4, atol=1e-8)
        cosine = products["code"] @ products["exact"] / (products["code"].norm() * products["exact"].norm())
        assert not torch.allclose(products["code"], products["exact"], rtol=1e-2) and cosine > 0
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_line_search_trial_with_nan_parameters_is_rejected_not_an_error():
    model, family, params = setup()
    obs = torch.zeros(3, 2)
    broken = {**params, "0.weight": torch.full_like(params["0.weight"], float("nan"))}
    assert torch.isnan(maml_trpo.log_prob(model, broken, obs, torch.zeros(3, 2))).all()  # no ValueError

    def trial(step):  # NaN everywhere but at the current parameters
        return (torch.tensor(0.0), torch.tensor(0.0)) if not step.any() else (torch.tensor(float("nan")),) * 2

    step, k = pg.line_search(trial, torch.ones(4), 0.01)
    assert k is None and not step.any()  # rllab keeps the old parameters
