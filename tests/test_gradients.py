"""Every algorithm's update checked against finite differences or a closed form, in float64."""

import copy

import pytest
import torch

from suite.algorithms import anil, fomaml, maml, pretrained, reptile
from suite.algorithms.inner import InnerOptimizer, inner_batches
from suite.models.functional import FunctionalModel
from suite.tasks.base import TaskBatch
from suite.training.paths import PATHS



@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def finite_difference_gradient(f, params, eps=1e-6):
    grads = {}
    for name, p in params.items():
        g = torch.zeros_like(p)
        for i in range(p.numel()):
            plus = {k: v.clone() for k, v in params.items()}
            minus = {k: v.clone() for k, v in params.items()}
            plus[name].view(-1)[i] += eps
            minus[name].view(-1)[i] -= eps
            g.view(-1)[i] = (f(plus) - f(minus)) / (2 * eps)
        grads[name] = g
    return grads


def assert_close_dicts(a, b, rtol=1e-6, atol=1e-9):
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=atol, msg=lambda m: f"{k}: {m}")


def mlp():
    model = FunctionalModel({"kind": "mlp", "hidden": [6, 5], "activation": "relu", "init": "pytorch"},
                            in_dim=1, out_dim=1, loss="mse", loss_scale=1.0, loss_reduction="mean")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 8, 1, generator=g) * 10 - 5
    tasks = TaskBatch(x[:, :4], torch.sin(x[:, :4]) * 2, x[:, 4:], torch.sin(x[:, 4:]) * 2)
    return model, model.init_params(1, dtype=torch.float64), tasks


def conv_with_batch_norm(maml_style=False):
    """Reptile-style (BN scale, flattened head) or MAML-style (no BN scale, BN left out of the inner loop,
    mean-pooled head, loss × ways)."""
    config = {"kind": "conv", "in_channels": 1, "image_size": 6, "filters": 3, "layers": 2,
              "downsample": "stride", "batch_norm_eps": 1e-3, "batch_norm_scale": not maml_style,
              "batch_norm_adapted": not maml_style,
              "head": "mean-pool" if maml_style else "flatten", "init": "maml-code" if maml_style else "glorot"}
    model = FunctionalModel(config, in_dim=1, out_dim=2, loss="cross_entropy", loss_scale=2.0 if maml_style else 1.0,
                            loss_reduction="mean")
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 8, 1, 6, 6, generator=g)
    labels = torch.tensor([0, 1, 0, 1]).repeat(2, 1)
    tasks = TaskBatch(images[:, :4], labels, images[:, 4:], labels)
    params = model.init_params(1, dtype=torch.float64)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in params.items()}  # BN affine ≠ (1, 0)
    return model, params, tasks


def meta_gradient_and_finite_differences(algorithm, model, params, tasks, steps, lr, path):
    """(the algorithm's meta-gradient, its meta-loss, the finite-difference gradient of that meta-loss)."""
    def meta_loss(p):
        with torch.no_grad():
            return algorithm.meta_loss(model, p, tasks, steps, lr, path).item()

    leaf = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    analytic, loss = algorithm.meta_gradient(model, leaf, tasks, steps, lr, path)
    return analytic, loss, finite_difference_gradient(meta_loss, params)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("setting", [mlp, conv_with_batch_norm, lambda: conv_with_batch_norm(maml_style=True)],
                         ids=["mlp", "conv-bn", "conv-bn-maml-style"])
def test_maml_meta_gradient_matches_finite_differences(setting, path):
    model, params, tasks = setting()
    steps, lr = 2, 0.3
    analytic, _, numeric = meta_gradient_and_finite_differences(maml, model, params, tasks, steps, lr, path)
    assert_close_dicts(analytic, numeric, rtol=1e-5, atol=1e-8)
    # a first-order gradient is measurably different here, so the check above does see second-order terms
    first_order, _ = fomaml.meta_gradient(model, params, tasks, steps, lr, path)
    assert max((first_order[k] - numeric[k]).abs().max().item() for k in params) > 1e-4


def restricted_to_the_head(model):
    """The same model with its inner loops adapting the head alone: MAML on it is what ANIL computes."""
    return model.adapting_only(model.head_names)


@pytest.mark.parametrize("setting", [mlp, conv_with_batch_norm, lambda: conv_with_batch_norm(maml_style=True)],
                         ids=["mlp", "conv-bn", "conv-bn-maml-style"])
def test_the_head_on_the_body_features_is_the_forward_pass(setting):
    model, params, tasks = setting()
    x = tasks[0].support_x
    assert torch.equal(model.head(params, model.features(params, x)), model.forward(params, x))
    assert model.head_names == {f"{len(model.module) - 1}.weight", f"{len(model.module) - 1}.bias"}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("setting", [conv_with_batch_norm, lambda: conv_with_batch_norm(maml_style=True)],
                         ids=["conv-bn", "conv-bn-maml-style"])
def test_anil_meta_gradient_matches_finite_differences_and_maml_with_a_head_only_inner_loop(setting, path):
    model, params, tasks = setting()
    steps, lr = 2, 0.3
    analytic, loss, numeric = meta_gradient_and_finite_differences(anil, model, params, tasks, steps, lr, path)
    assert_close_dicts(analytic, numeric, rtol=1e-5, atol=1e-8)
    # the body is learned by the outer loop (a bias right before batch norm has no gradient, in MAML too)
    assert all(analytic[k].abs().max() > 1e-6 for k in set(params) - model.head_names if k.endswith("weight"))
    # MAML recomputing the body at every inner step, with only the head adapting, is the same computation
    leaf = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    reference, reference_loss = maml.meta_gradient(restricted_to_the_head(model), leaf, tasks, steps, lr, path)
    assert_close_dicts(analytic, reference, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(loss, reference_loss, rtol=1e-12, atol=0)
    # and the full-network inner loop is measurably different, so the check above does see the restriction
    full, _ = maml.meta_gradient(model, leaf, tasks, steps, lr, path)
    assert max((full[k] - analytic[k]).abs().max().item() for k in params) > 1e-4


def test_anil_inner_loop_moves_the_head_alone_and_as_maml_restricted_to_the_head_would():
    model, params, tasks = conv_with_batch_norm()
    from suite.algorithms.inner import sgd_adapt

    sx, sy = tasks[0].support_x, tasks[0].support_y
    head = anil.adapt_head(model, params, model.features(params, sx), sy, 2, 0.3)
    assert set(head) == model.head_names  # the inner loop has no body parameters to change
    restricted = sgd_adapt(model.loss, params, sx, sy, 2, 0.3, model.head_names)
    for k in params:
        if k in model.head_names:
            torch.testing.assert_close(head[k], restricted[k], rtol=1e-12, atol=1e-14)
            assert not torch.equal(head[k], params[k])
        else:
            assert torch.equal(restricted[k], params[k])


class Quadratic:
    """loss(θ, c) = mean_j ½ (θ − c_j)ᵀ A (θ − c_j): every update has a closed form."""

    loss_name = "mse"
    inner_loop_names = None  # every parameter adapts

    def __init__(self, d=3, seed=0):
        g = torch.Generator().manual_seed(seed)
        m = torch.randn(d, d, generator=g)
        self.A = m @ m.T / d + 0.5 * torch.eye(d)
        self.d = d

    def loss(self, params, x, y, dims=None):
        diff = params["theta"] - x
        per_point = 0.5 * ((diff @ self.A) * diff).sum(-1)
        return per_point.mean() if dims is None else per_point.mean(dims)

    def grouped(self):
        """The same loss for many tasks at once: θ [T, d], x [T, N, d] → [T]."""
        quadratic = copy.copy(self)
        quadratic.loss = lambda params, x, y: self.loss({"theta": params["theta"].unsqueeze(1)}, x, y, dims=(-1,))
        return quadratic

    def tasks(self, n_tasks, shots, queries, seed=1):
        g = torch.Generator().manual_seed(seed)
        c = torch.randn(n_tasks, shots + queries, self.d, generator=g)
        y = torch.zeros(n_tasks, shots + queries, 1)
        return TaskBatch(c[:, :shots], y[:, :shots], c[:, shots:], y[:, shots:])


ADAM = {"name": "adam-tf", "lr": 0.1, "betas": [0.9, 0.999], "eps": 1e-8}  # an inner loop's Adam


@pytest.mark.parametrize("path", PATHS)
def test_maml_and_first_order_maml_match_their_closed_forms_on_a_quadratic(path):
    q, alpha = Quadratic(), 0.2
    tasks = q.tasks(4, 5, 5)
    theta = {"theta": torch.randn(q.d, generator=torch.Generator().manual_seed(3))}
    I = torch.eye(q.d)
    cs, cq = tasks.support_x.mean(1), tasks.query_x.mean(1)  # [tasks, d]
    adapted = theta["theta"] - alpha * (theta["theta"] - cs) @ q.A  # one inner step per task
    query_grad = (adapted - cq) @ q.A  # ∇θ' of the query loss (A symmetric)
    expected_first = query_grad.mean(0)
    expected_second = (query_grad @ (I - alpha * q.A)).mean(0)

    first, _ = fomaml.meta_gradient(q, theta, tasks, 1, alpha, path)
    leaf = {"theta": theta["theta"].clone().requires_grad_(True)}
    second, _ = maml.meta_gradient(q, leaf, tasks, 1, alpha, path)
    torch.testing.assert_close(first["theta"], expected_first)
    torch.testing.assert_close(second["theta"], expected_second)


def reptile_hp(**kw):
    return {"iterations": 10, "meta_batch": 4, "shots": 6, "inner_batch": 6, "inner_steps": 1,
            "inner_optimizer": {"name": "sgd", "lr": 0.1}, "meta_step": 0.5, "meta_step_final": 0.5, "meta_direction": "all-steps",
            "inner_optimizer_state": "per-task", **kw}


@pytest.mark.parametrize("path", PATHS)
def test_reptile_with_one_inner_step_is_sgd_on_the_expected_loss_with_rate_alpha_times_epsilon(path):
    q = Quadratic()
    hp = reptile_hp()
    tasks = q.tasks(4, 6, 0)
    phi = torch.randn(q.d, generator=torch.Generator().manual_seed(4))
    learner = reptile.Learner(q, {"theta": phi}, hp, path)
    learner.step(tasks, 0, torch.Generator().manual_seed(0))
    expected_loss_grad = ((phi - tasks.support_x.mean(1)) @ q.A).mean(0)
    rate = hp["inner_optimizer"]["lr"] * hp["meta_step"]
    torch.testing.assert_close(learner.params["theta"].detach(), phi - rate * expected_loss_grad)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("meta_batch", [1, 4], ids=["serial", "batched"])
def test_reptile_with_k_steps_interpolates_towards_the_closed_form_task_solutions(path, meta_batch):
    q, k, alpha = Quadratic(), 3, 0.1
    hp = reptile_hp(inner_steps=k, meta_batch=meta_batch, meta_step=1.0, meta_step_final=0.0, iterations=4)
    tasks = q.tasks(meta_batch, 6, 0)
    phi = torch.randn(q.d, generator=torch.Generator().manual_seed(5))
    learner = reptile.Learner(q, {"theta": phi}, hp, path)
    iteration = 1  # ε = 1·(1 − 1/4) + 0·(1/4) = 0.75: the annealing is part of what is checked
    learner.step(tasks, iteration, torch.Generator().manual_seed(0))
    c = tasks.support_x.mean(1)
    contraction = torch.linalg.matrix_power(torch.eye(q.d) - alpha * q.A, k)
    w = c + (phi - c) @ contraction.T  # W_i − c_i = (I − αA)^k (φ − c_i), full-batch steps
    torch.testing.assert_close(learner.params["theta"].detach(), phi + 0.75 * (w - phi).mean(0))


@pytest.mark.parametrize("path", PATHS)
def test_last_step_direction_is_the_first_order_maml_gradient_at_the_penultimate_weights(path):
    q, k, alpha = Quadratic(), 3, 0.1
    hp = reptile_hp(inner_steps=k, meta_direction="last-step", meta_step=1.0, meta_step_final=1.0)
    tasks = q.tasks(4, 6, 0)
    phi = torch.randn(q.d, generator=torch.Generator().manual_seed(8))
    learner = reptile.Learner(q, {"theta": phi}, hp, path)
    learner.step(tasks, 0, torch.Generator().manual_seed(0))
    c = tasks.support_x.mean(1)
    penultimate = c + (phi - c) @ torch.linalg.matrix_power(torch.eye(q.d) - alpha * q.A, k - 1).T
    gradient_there = (penultimate - c) @ q.A
    torch.testing.assert_close(learner.params["theta"].detach(), phi - alpha * gradient_there.mean(0))


def test_separate_tail_keeps_its_images_out_of_the_first_steps_and_takes_the_last_step_on_all_of_them():
    ways, shots, tail = 3, 6, 2
    labels = torch.stack([torch.randperm(ways * shots, generator=torch.Generator().manual_seed(s)) % ways
                          for s in range(4)])  # classes interleaved in a different order in each task
    steps = reptile.separate_tail_batches(labels, tail, 5, 4, torch.Generator().manual_seed(0))
    assert [b.shape for b in steps] == [(4, 5)] * 3 + [(4, ways * tail)]
    for i in range(4):
        tail_points = steps[-1][i].tolist()
        assert sorted(labels[i, tail_points].tolist()) == sorted(list(range(ways)) * tail)
        first = torch.cat([b[i] for b in steps[:-1]]).tolist()
        assert not set(first) & set(tail_points)
        assert len(set(first[:ways * (shots - tail)])) == len(first[:ways * (shots - tail)])  # one epoch, no repeats
    assert [b.shape for b in reptile.separate_tail_batches(labels, tail, 5, 1, torch.Generator())] == [(4, 6)]


@pytest.mark.parametrize("path", PATHS)
def test_separate_tail_direction_is_the_gradient_on_the_tail_at_the_penultimate_weights(path):
    """Closed form on the quadratic: the first k−1 full-batch steps see only the points outside the tail."""
    q, k, alpha, ways, shots, tail = Quadratic(), 3, 0.1, 2, 4, 1
    hp = reptile_hp(inner_steps=k, meta_direction="last-step", meta_step=1.0, meta_step_final=1.0, shots=shots,
                    inner_batch=ways * (shots - tail), tail_shots=tail)
    tasks = q.tasks(4, ways * shots, 0)
    tasks.support_y = (torch.arange(ways * shots) % ways).repeat(4, 1)
    phi = torch.randn(q.d, generator=torch.Generator().manual_seed(8))
    learner = reptile.Learner(q, {"theta": phi}, hp, path)
    learner.step(tasks, 0, torch.Generator().manual_seed(0))
    in_tail = torch.zeros(ways * shots, dtype=torch.bool)
    in_tail[:ways * tail] = True  # the first image of each class (classes alternate: 0, 1, 0, 1, ...)
    rest, tail_mean = tasks.support_x[:, ~in_tail].mean(1), tasks.support_x[:, in_tail].mean(1)
    penultimate = rest + (phi - rest) @ torch.linalg.matrix_power(torch.eye(q.d) - alpha * q.A, k - 1).T
    torch.testing.assert_close(learner.params["theta"].detach(),
                               phi - alpha * ((penultimate - tail_mean) @ q.A).mean(0))
    shared = reptile.Learner(q, {"theta": phi}, {k_: v for k_, v in hp.items() if k_ != "tail_shots"}, path)
    shared.step(tasks, 0, torch.Generator().manual_seed(0))
    assert not torch.allclose(shared.params["theta"], learner.params["theta"])


def test_parameters_outside_the_inner_loop_keep_their_values_through_adaptation():
    model, params, tasks = conv_with_batch_norm(maml_style=True)
    frozen = set(params) - model.inner_loop_names
    assert frozen == {"1.bias", "4.bias"}  # the two batch-norm offsets (no scale in this style)
    from suite.algorithms.inner import sgd_adapt

    adapted = sgd_adapt(model.loss, params, tasks[0].support_x, tasks[0].support_y, 2, 0.3, model.inner_loop_names)
    for k in params:
        assert torch.equal(adapted[k], params[k]) == (k in frozen)


def test_carried_inner_adam_state_runs_on_through_tasks_and_survives_a_checkpoint():
    from suite.algorithms.inner import optimizer_adapt

    q, adam = Quadratic(), dict(ADAM, betas=[0.0, 0.999], lr=0.05)
    hp = reptile_hp(inner_steps=2, inner_batch=3, inner_optimizer=adam, inner_optimizer_state="carried",
                    meta_step=1.0, meta_step_final=1.0)
    phi = torch.randn(q.d, generator=torch.Generator().manual_seed(9))
    learner = reptile.Learner(q, {"theta": phi}, hp, "vmap")  # carried state is serial whatever this says
    tasks = [q.tasks(4, 6, 0, seed=s) for s in (1, 2, 3)]
    learner.step(tasks[0], 0, torch.Generator().manual_seed(0))
    assert learner.inner_state["t"] == 4 * 2
    saved = {k: v for k, v in learner.state_dict().items()}
    resumed = reptile.Learner(q, {"theta": phi}, hp, "vmap")
    resumed.load_state_dict(saved)
    for it, t in enumerate(tasks[1:], start=1):
        learner.step(t, it, torch.Generator().manual_seed(it))
        resumed.step(t, it, torch.Generator().manual_seed(it))
    torch.testing.assert_close(resumed.params["theta"], learner.params["theta"])
    # by hand: the second task's inner loop starts from the state the first task left
    batches = inner_batches(4, 6, 3, 2, torch.Generator().manual_seed(0))
    state, directions = None, []
    for i in range(4):
        final, _, state = optimizer_adapt(q.loss, {"theta": phi}, tasks[0].support_x[i], tasks[0].support_y[i],
                                          batches[i], adam,
                                          state=state)
        directions.append(final["theta"] - phi)
    fresh = reptile.Learner(q, {"theta": phi}, hp, "vmap")
    fresh.step(tasks[0], 0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(fresh.params["theta"].detach(), phi + torch.stack(directions).mean(0))
    per_task = reptile.Learner(q, {"theta": phi}, dict(hp, inner_optimizer_state="per-task"), "vmap")
    per_task.step(tasks[0], 0, torch.Generator().manual_seed(0))
    assert not torch.allclose(per_task.params["theta"], fresh.params["theta"])


def test_reptile_inner_batches_do_not_overlap_within_an_epoch():
    idx = inner_batches(2, 20, 5, 4, torch.Generator().manual_seed(0))
    assert idx.shape == (2, 4, 5)
    for task in idx:
        assert sorted(task.flatten().tolist()) == list(range(20))
    straddling = inner_batches(1, 10, 4, 5, torch.Generator().manual_seed(0))[0].flatten().tolist()
    assert sorted(straddling[:10]) == list(range(10)) and sorted(straddling[10:]) == sorted(set(straddling[10:]))
    with pytest.raises(ValueError, match="inner_batch"):
        inner_batches(1, 4, 5, 1, torch.Generator())


def test_functional_adam_matches_torch_adam_up_to_where_epsilon_enters():
    q = Quadratic()
    x = q.tasks(1, 6, 0).support_x[0]
    theta = torch.randn(q.d, generator=torch.Generator().manual_seed(6))
    config = dict(ADAM, betas=[0.0, 0.999], eps=1e-12)  # Reptile's β1 = 0; ε tiny so the two forms agree
    inner = InnerOptimizer(config)
    params, state = {"theta": theta.clone()}, inner.init({"theta": theta})
    reference = theta.clone().requires_grad_(True)
    opt = torch.optim.Adam([reference], lr=config["lr"], betas=(0.0, 0.999), eps=1e-12)
    for _ in range(5):
        grads = {"theta": torch.func.grad(q.loss)(params, x, None)["theta"]}
        params, state = inner.update(params, grads, state)
        opt.zero_grad()
        q.loss({"theta": reference}, x, None).backward()
        opt.step()
    torch.testing.assert_close(params["theta"], reference.detach())


def test_pretrained_baseline_takes_an_optimiser_step_on_the_pooled_task_mixture():
    q = Quadratic()
    tasks = q.tasks(3, 4, 0)
    phi = torch.randn(q.d, generator=torch.Generator().manual_seed(7))
    hp = {"iterations": 1, "meta_batch": 3, "shots": 4, "optimizer": {"name": "sgd", "lr": 0.3}}
    learner = pretrained.Learner(q, {"theta": phi}, hp, "vmap")
    learner.step(tasks, 0, torch.Generator())
    pooled_grad = (phi - tasks.support_x.reshape(-1, q.d)).mean(0) @ q.A
    torch.testing.assert_close(learner.params["theta"].detach(), phi - 0.3 * pooled_grad)


def test_adam_tf_is_tensorflows_adam_and_differs_from_torch_optim_adam():
    """Inner loops' adam-tf adds ε to the uncorrected √v and folds the bias correction into the step
    (tf.train.AdamOptimizer); outer loops' adam is torch.optim.Adam (ε added to the corrected √v̂)."""
    lr, (b1, b2), eps = 0.1, (0.9, 0.999), 1e-3
    p, g = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([1e-4, 3e-2], dtype=torch.float64)
    inner = InnerOptimizer({"name": "adam-tf", "lr": lr, "betas": [b1, b2], "eps": eps})
    ours, _ = inner.update({"p": p}, {"p": g}, inner.init({"p": p}))
    by_hand = p - lr * (1 - b2) ** 0.5 / (1 - b1) * ((1 - b1) * g) / (((1 - b2) * g * g).sqrt() + eps)
    torch.testing.assert_close(ours["p"], by_hand, rtol=1e-12, atol=0)
    param = p.clone().requires_grad_(True)
    outer = torch.optim.Adam([param], lr=lr, betas=(b1, b2), eps=eps)
    param.grad = g.clone()
    outer.step()
    assert not torch.allclose(ours["p"], param.detach(), rtol=1e-3, atol=0)
