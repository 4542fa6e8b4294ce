"""MAML++'s six switches (suite.algorithms.mamlpp), each by what it must do, in float64: all off is MAML bit for bit;
the meta-gradient with LSLR, BNWB and MSL on matches finite differences; MSL's weights are the code's; DA's first
epochs are first-order MAML; CA is torch's CosineAnnealingLR; LSLR's rates learn; BNRS keeps statistics per step
as torch's batch norm would."""

import pytest
import torch
import torch.nn.functional as F

from suite.algorithms import fomaml, maml, mamlpp
from suite.training.paths import PATHS
from test_gradients import (assert_close_dicts, conv_with_batch_norm, finite_difference_gradient,  # noqa: F401
                            float64)

MAML_STYLE = dict(maml_style=True)  # BN left out of the inner loop, as MAML++'s code


def hp(**switches):
    return {"iterations": 4, "meta_batch": 2, "shots": 2, "queries": 2, "inner_steps": 2, "inner_lr": 0.3,
            "meta_optimizer": {"name": "adam", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8},
            "iterations_per_epoch": 2, "multi_step_loss": False, "msl_epochs": 10, "first_order_epochs": 0,
            "per_step_bn_weights": False, "per_step_bn_statistics": False, "learned_inner_lr": False,
            "cosine_annealing": False, "min_meta_lr": 1e-5, "msl_floor": 0.03, "bn_momentum": 0.1, **switches}


def trained(module, model, params, tasks, config, path, iterations=2):
    learner = module.Learner(model, params, config, path)
    losses = [learner.step(tasks, it, torch.Generator().manual_seed(it)) for it in range(iterations)]
    return learner, losses


@pytest.mark.parametrize("path", PATHS)
def test_every_switch_off_is_maml_bit_for_bit(path):
    model, params, tasks = conv_with_batch_norm(**MAML_STYLE)
    plus, plus_losses = trained(mamlpp, model, params, tasks, hp(), path)
    plain, plain_losses = trained(maml, model, params, tasks, hp(), path)
    assert plus_losses == plain_losses
    for k in params:
        assert torch.equal(plus.params[k], plain.params[k]), k
    assert not torch.equal(plain.params["0.weight"], params["0.weight"])  # it did train


def lslr_bnwb_msl():
    return hp(learned_inner_lr=True, per_step_bn_weights=True, multi_step_loss=True)


@pytest.mark.parametrize("path", PATHS)
def test_meta_gradient_with_lslr_bnwb_and_msl_matches_finite_differences(path):
    model, params, tasks = conv_with_batch_norm(**MAML_STYLE)
    config = lslr_bnwb_msl()
    learner = mamlpp.Learner(model, params, config, path)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # per-step values that differ, so that a mixed-up step index shows
        for k, p in learner.params.items():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    weights = mamlpp.msl_weights(2, 1, 10, 0.03)
    task_loss = mamlpp.partial(mamlpp.query_loss_after_adaptation, schedule=learner.schedule, weights=weights,
                               second_order=True)
    analytic, _ = maml.meta_gradient(model, learner.params, tasks, 2, 0.3, path, task_loss)

    def meta_loss(p):
        with torch.no_grad():
            return maml.meta_loss(model, p, tasks, 2, 0.3, path, task_loss).item()

    numeric = finite_difference_gradient(meta_loss, {k: v.detach() for k, v in learner.params.items()})
    assert_close_dicts(analytic, numeric, rtol=1e-5, atol=1e-8)
    assert set(analytic) >= {"inner_lr/0.weight", "inner_lr/3.weight"}
    assert learner.params["1.bias"].shape == (2, 3)  # BNWB: an offset per step


def test_msl_with_the_last_weight_one_and_the_rest_zero_is_mamls_query_loss():
    model, params, tasks = conv_with_batch_norm(**MAML_STYLE)
    schedule = mamlpp.Schedule(model, hp())
    task = tasks[0].tensors()
    plain = maml.query_loss_after_adaptation(model, params, *task, 2, 0.3)
    weighted = mamlpp.query_loss_after_adaptation(model, params, *task, 2, 0.3, schedule=schedule,
                                                  weights=[0.0, 1.0], second_order=True)
    assert torch.equal(plain, weighted)
    spread = mamlpp.query_loss_after_adaptation(model, params, *task, 2, 0.3, schedule=schedule,
                                                weights=[0.5, 0.5], second_order=True)
    assert not torch.allclose(plain, spread)


def test_msl_weights_are_the_codes_annealing():
    assert mamlpp.msl_weights(5, 0, 10, 0.03) == [0.2] * 5
    w = mamlpp.msl_weights(5, 3, 10, 0.03)
    assert w[:4] == pytest.approx([0.2 - 3 / 50] * 4) and w[4] == pytest.approx(0.2 + 3 * 4 / 50)
    late = mamlpp.msl_weights(5, 6, 5, 0.03)  # the non-final weights have reached their floor, 0.03 / 5
    assert late[:4] == pytest.approx([0.006] * 4) and late[4] == pytest.approx(1 - 4 * 0.006)
    assert sum(w) == pytest.approx(1.0)


@pytest.mark.parametrize("path", PATHS)
def test_derivative_order_annealing_is_first_order_maml_in_its_first_epochs_then_second_order(path):
    model, params, tasks = conv_with_batch_norm(**MAML_STYLE)
    config = hp(first_order_epochs=1)
    learner = mamlpp.Learner(model, params, config, path)
    grads = {}
    learner.apply_gradients = lambda g: grads.update(g)  # capture the meta-gradient instead of stepping
    learner.step(tasks, 1, None)  # epoch 0 (2 iterations an epoch): first order
    first, _ = fomaml.meta_gradient(model, params, tasks, 2, 0.3, path)
    assert_close_dicts(grads, first, rtol=1e-10, atol=1e-12)
    learner.step(tasks, 2, None)  # epoch 1: second order
    second, _ = maml.meta_gradient(model, learner.params, tasks, 2, 0.3, path)
    assert_close_dicts(grads, second, rtol=1e-10, atol=1e-12)
    assert max((first[k] - second[k]).abs().max().item() for k in first) > 1e-4


def test_cosine_annealing_is_torchs_cosine_schedule_over_the_epochs():
    model, params, tasks = conv_with_batch_norm(**MAML_STYLE)
    config = hp(cosine_annealing=True, iterations=8, iterations_per_epoch=2, min_meta_lr=1e-4)
    learner = mamlpp.Learner(model, params, config, "loop")
    reference = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(reference, T_max=4, eta_min=1e-4)
    rates = []
    for it in range(8):
        learner.step(tasks, it, None)
        rates.append(learner.optimizer.param_groups[0]["lr"])
    expected = []
    for epoch in range(4):
        expected += [reference.param_groups[0]["lr"]] * 2
        reference.step()
        scheduler.step()
    assert rates == pytest.approx(expected, rel=1e-12)
    assert rates[0] == 0.01 and rates[-1] < 0.01 / 2


def test_lslr_rates_are_per_layer_and_step_receive_gradients_and_change():
    model, params, tasks = conv_with_batch_norm(**MAML_STYLE)
    learner, _ = trained(mamlpp, model, params, tasks, hp(learned_inner_lr=True), "loop")
    rates = {k: v for k, v in learner.params.items() if k.startswith(mamlpp.LR_PREFIX)}
    assert set(rates) == {mamlpp.LR_PREFIX + k for k in model.inner_loop_names}
    convolutions = {f"{i}.bias" for i, m in enumerate(model.module) if isinstance(m, torch.nn.Conv2d)}
    for k, r in rates.items():
        if k.removeprefix(mamlpp.LR_PREFIX) in convolutions:  # a bias before batch norm has no gradient: nor its rate
            assert torch.equal(r, torch.full((2,), 0.3)), k
            continue
        assert r.shape == (2,) and not torch.equal(r, torch.full((2,), 0.3)), k
        assert r[0] != r[1], k  # each step learns its own rate


def test_bnwb_learns_a_scale_and_offset_per_step():
    model, params, tasks = conv_with_batch_norm(**MAML_STYLE)
    learner, _ = trained(mamlpp, model, params, tasks, hp(per_step_bn_weights=True), "loop")
    for k in mamlpp.bn_names(model):
        per_step = learner.params[k]
        assert per_step.shape[0] == 2 and not torch.equal(per_step[0], per_step[1]), k
    with pytest.raises(ValueError, match="batch_norm_adapted: false"):
        conv_model, conv_params, _ = conv_with_batch_norm()  # BN adapted in the inner loop
        mamlpp.Learner(conv_model, conv_params, hp(per_step_bn_weights=True), "loop")


def test_bnrs_keeps_running_statistics_per_step_as_torchs_batch_norm_updates_them():
    model, params, tasks = conv_with_batch_norm(**MAML_STYLE)
    learner, _ = trained(mamlpp, model, params, tasks, hp(per_step_bn_statistics=True), "loop", iterations=1)
    # replay: each task's step-s support forward and (after the last step) its query forward, through torch's
    # batch norm with running statistics at momentum 0.1
    running = {"mean": torch.zeros(2, 3), "var": torch.ones(2, 3)}
    schedule = mamlpp.Schedule(model, hp())
    bn = model.module[1]
    for i in range(len(tasks)):
        sx, sy, qx, qy = tasks[i].tensors()
        p = params
        for s in range(2):
            for x in [sx] + ([qx] if s == 1 else []):
                hidden = F.conv2d(x, p["0.weight"], p["0.bias"], stride=2, padding=1)
                F.batch_norm(hidden, running["mean"][s], running["var"][s], None, p["1.bias"], training=True,
                             momentum=0.1, eps=bn.eps)
                if x is sx:
                    p = schedule.update(model, p, schedule.gradient(model, p, sx, sy, s), s)
    stats = learner.buffers["1"]
    torch.testing.assert_close(stats["mean"], running["mean"], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(stats["var"], running["var"], rtol=1e-10, atol=1e-12)
    assert not torch.allclose(stats["mean"][0], stats["mean"][1])  # step 1 sees adapted weights
    with pytest.raises(ValueError, match="loop path"):
        mamlpp.Learner(model, params, hp(per_step_bn_statistics=True), "vmap")


def test_fine_tuning_past_the_per_step_parameters_is_a_manifest_error(tmp_path):
    import yaml

    from suite.protocol.manifest import load_manifest
    from suite.protocol.schema import ManifestError

    from pathlib import Path

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "benchmarks.yaml").read_text())
    raw["claims"]["mamlpp-omniglot"]["evaluation"]["steps"] = [0, 5, 10]
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ManifestError, match=r"mamlpp-omniglot.*runs.n20-k1-lslr.evaluation.steps: this run's trained "
                                            r"model has per-step parameters for 5 inner steps"):
        load_manifest(path)
