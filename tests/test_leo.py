"""LEO (suite/algorithms/leo.py): the decoder's shapes, the meta-gradient through the latent adaptation and the
fine-tuning against finite differences (float64), the deterministic test-time pipeline without adaptation as a
linear classifier, the meta-gradient's clipping and NaN fallback."""
import pytest
import torch

from suite.algorithms import leo
from suite.models.functional import FunctionalModel

WAYS, SHOTS, QUERIES, D, L = 3, 2, 2, 6, 4
HP = dict(iterations=2, meta_batch=2, shots=SHOTS, queries=QUERIES, latent_size=L, inner_steps=2, finetune_steps=2,
          inner_lr_init=0.5, finetune_lr_init=0.1, dropout=0.0, kl_weight=0.1, encoder_penalty_weight=0.01,
          l2_penalty_weight=1e-3, orthogonality_penalty_weight=1e-2, gradient_clip_value=0.1, gradient_clip_norm=0.1,
          deterministic=True, meta_optimizer={"name": "adam", "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8})


def setup(dtype=torch.float64, seed=0):
    model = FunctionalModel({"kind": "linear", "bias": False}, in_dim=D, out_dim=WAYS, loss="cross_entropy",
                            loss_scale=1.0, loss_reduction="mean")
    theta = {k: v.to(dtype) for k, v in leo.initial_params(model, seed, HP, "cpu").items()}
    g = torch.Generator().manual_seed(seed + 1)
    sx, qx = torch.randn(WAYS * SHOTS, D, generator=g, dtype=dtype), torch.randn(WAYS * QUERIES, D, generator=g,
                                                                                   dtype=dtype)
    sy, qy = torch.arange(WAYS).repeat_interleave(SHOTS), torch.arange(WAYS).repeat_interleave(QUERIES)
    return model, theta, (sx, sy, qx, qy)


def test_the_parameters_and_the_decoded_weights_have_leos_shapes():
    model, theta, (sx, sy, *_) = setup()
    assert {k: tuple(v.shape) for k, v in theta.items()} == {
        "encoder": (D, L), "relation.0": (2 * L, 2 * L), "relation.1": (2 * L, 2 * L), "relation.2": (2 * L, 2 * L),
        "decoder": (L, 2 * D), "inner_lr": (L,), "finetune_lr": (D,)}
    stats = leo.encode(theta, sx, sy, WAYS)
    assert stats.shape == (WAYS, 2 * L)
    z = torch.randn(WAYS, SHOTS, L, dtype=torch.float64)
    assert leo.decode(theta, z, None).shape == (WAYS, SHOTS, D)
    assert leo.decode(theta, z, torch.randn(WAYS, SHOTS, D, dtype=torch.float64)).shape == (WAYS, SHOTS, D)


@pytest.mark.parametrize("sampled", [False, True])
@pytest.mark.parametrize("name", ["encoder", "relation.1", "decoder", "inner_lr", "finetune_lr"])
def test_the_meta_gradient_through_latent_adaptation_and_fine_tuning_matches_finite_differences(name, sampled):
    model, theta, task = setup()
    hp = {**HP, "encoder_penalty_weight": 0.0}  # its target, the adapted code, is held fixed (stop_gradient)
    if sampled:  # the same generator draws the same noise and dropout masks for every evaluation of the loss
        hp.update(deterministic=False, dropout=0.3)

    def loss(params):
        return leo.task_loss(params, *task, WAYS, hp, torch.Generator().manual_seed(0))[0]

    params = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    (analytic,) = torch.autograd.grad(loss(params), [params[name]])
    for i in range(min(3, theta[name].numel())):
        shifted = []
        for sign in (1, -1):
            p = {k: v.clone() for k, v in theta.items()}
            p[name].view(-1)[i] += sign * 1e-6
            shifted.append(loss({k: v.requires_grad_(True) for k, v in p.items()}).detach())
        numeric = (shifted[0] - shifted[1]) / 2e-6
        torch.testing.assert_close(analytic.reshape(-1)[i], numeric, rtol=1e-5, atol=1e-9)
    assert analytic.abs().sum() > 0  # the loss depends on it: through both inner loops for the rates


def test_without_adaptation_the_deterministic_model_is_a_linear_classifier_on_the_decoded_class_codes():
    model, theta, (sx, sy, qx, qy) = setup()
    schedule = leo.Schedule({**HP, "inner_steps": 0})
    weights = schedule.at(model, schedule.start(model, theta, sx, sy), 0)["0.weight"]
    # by hand: each example's code, its mean relation to all, averaged per class; the decoder's mean half
    h = sx @ theta["encoder"]
    pairs = torch.cat([h[:, None].expand(-1, len(h), -1), h[None].expand(len(h), -1, -1)], -1)
    r = (torch.relu(torch.relu(pairs @ theta["relation.0"]) @ theta["relation.1"]) @ theta["relation.2"]).mean(1)
    codes = torch.stack([r[sy == c].mean(0) for c in range(WAYS)])[:, :L]
    expected = codes @ theta["decoder"][:, :D]
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(model.forward({"0.weight": weights}, qx), qx @ expected.t())


def test_test_time_fine_tuning_steps_at_the_learned_rates_on_the_support_sum():
    model, theta, (sx, sy, qx, qy) = setup()
    schedule = leo.Schedule(HP)
    start = schedule.start(model, theta, sx, sy)
    w = start["w"].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(sx @ w.mean(1).t(), sy, reduction="sum"), w)
    after = schedule.update(model, start, schedule.gradient(model, start, sx, sy, 0), 0)
    torch.testing.assert_close(after["w"], start["w"] - theta["finetune_lr"] * g)


def test_the_meta_gradient_is_clipped_by_value_then_by_norm_and_a_nan_meta_batch_falls_back_to_weight_decay():
    grads = {"a": torch.tensor([0.5, -0.05, 0.02]), "b": torch.tensor([0.01, 0.01])}
    out = leo.clipped(grads, 0.1, 0.1)
    clipped_a = torch.tensor([0.1, -0.05, 0.02])
    torch.testing.assert_close(out["a"], clipped_a * 0.1 / clipped_a.norm())
    torch.testing.assert_close(out["b"], grads["b"])  # within both bounds: unchanged

    model, theta, task = setup(torch.float32)
    learner = leo.Learner(model, theta, {**HP, "meta_optimizer": {"name": "sgd", "lr": 1.0}}, "loop")
    before = {k: v.detach().clone() for k, v in learner.params.items()}
    bad = tuple(t.clone() for t in task)
    bad[0][0, 0] = float("nan")
    from suite.tasks.base import TaskBatch
    batch = TaskBatch(*(t.unsqueeze(0).float() if t.is_floating_point() else t.unsqueeze(0) for t in bad))
    learner.step(batch, 0, torch.Generator().manual_seed(0))
    for k, v in learner.params.items():
        expected = leo.clipped({k: leo.NAN_FALLBACK * before[k] if k in leo.WEIGHTS else torch.zeros_like(v)},
                               0.1, 0.1)[k]
        torch.testing.assert_close(v.detach(), before[k] - expected)
