"""iMAML's implicit meta-gradient (suite.algorithms.imaml) against closed forms, in float64: conjugate gradient
against torch.linalg.solve, the implicit gradient of a quadratic task against the exact gradient of its query loss at
the regularised inner problem's solution, the λ → ∞ limit, and the three paths against each other."""

import pytest
import torch

from suite.algorithms import imaml
from suite.training.paths import PATHS
from test_gradients import assert_close_dicts, conv_with_batch_norm, float64, mlp  # noqa: F401 (float64: autouse)


def spd(n, low, high, generator):
    """A random symmetric matrix with eigenvalues in [low, high]."""
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator))
    return q @ torch.diag(torch.rand(n, generator=generator) * (high - low) + low) @ q.T


def hp(**changes):
    return {"inner_steps": 3, "inner_lr": 0.1, "lam": 2.0, "proximal": "every-step", "cg_steps": 5,
            "cg_damping": 0.0, "lam_damping": 0.0, "cg_tolerance": 1e-10, **changes}


def test_conjugate_gradient_solves_a_random_spd_system_per_task():
    g = torch.Generator().manual_seed(0)
    matrices = torch.stack([spd(12, 0.1, 5.0, g) for _ in range(3)])
    b = {"u": torch.randn(3, 4, generator=g), "w": torch.randn(3, 2, 4, generator=g)}

    def matvec(v):  # the dict as one vector per task
        flat = torch.cat([v["u"], v["w"].flatten(1)], 1)
        out = torch.einsum("tij,tj->ti", matrices, flat)
        return {"u": out[:, :4], "w": out[:, 4:].reshape(3, 2, 4)}

    x = imaml.conjugate_gradient(matvec, b, steps=12, tolerance=1e-30, task_dims=1)
    expected = torch.linalg.solve(matrices, torch.cat([b["u"], b["w"].flatten(1)], 1))
    torch.testing.assert_close(torch.cat([x["u"], x["w"].flatten(1)], 1), expected, rtol=1e-8, atol=1e-10)
    # one task alone (task_dims 0) runs the same computation as in the batch
    alone = imaml.conjugate_gradient(lambda v: {k: t[0] for k, t in matvec({k: t.unsqueeze(0) for k, t in v.items()
                                                                             }).items()},
                                     {k: t[0] for k, t in b.items()}, steps=12, tolerance=1e-30)
    assert_close_dicts(alone, {k: t[0] for k, t in x.items()}, rtol=1e-12, atol=1e-14)
    # fewer steps than the dimension: not yet the solution (the test above could not pass by accident)
    short = imaml.conjugate_gradient(matvec, b, steps=2, tolerance=1e-30, task_dims=1)
    assert not torch.allclose(torch.cat([short["u"], short["w"].flatten(1)], 1), expected, atol=1e-3)


def quadratic(n=6, seed=0):
    """L(φ; M, t) = ½(w − t)ᵀM(w − t): the support loss with (A, a), the query loss with (Q, q)."""
    g = torch.Generator().manual_seed(seed)

    def loss(p, m, t):
        d = p["w"] - t
        return 0.5 * d @ m @ d

    return loss, spd(n, 0.5, 3.0, g), torch.randn(n, generator=g), spd(n, 0.5, 2.0, g), torch.randn(n, generator=g), \
        torch.randn(n, generator=g)


@pytest.mark.parametrize("damping", [(0.0, 0.0), (1.0, 10.0)], ids=["paper-system", "code-system"])
def test_implicit_gradient_of_a_quadratic_task_is_its_exact_meta_gradient(damping):
    """With the inner problem solved (many steps) and CG run to convergence, the paper's system gives the exact
    gradient of L_test(φ*(θ)), φ*(θ) = (A + λI)⁻¹(Aa + λθ); the code's damped system gives the solution of its own
    system, (1 + c)·v + A·v/(λ + d) = ∇L_test(φ*)."""
    loss, a_mat, a, q_mat, q, theta = quadratic()
    cg_damping, lam_damping = damping
    config = hp(inner_steps=400, inner_lr=0.2, lam=2.0, cg_steps=6, cg_damping=cg_damping, lam_damping=lam_damping,
                cg_tolerance=1e-30)
    g, query_loss = imaml.implicit_gradient(loss, {"w": theta}, a_mat, a, q_mat, q, config, {"w"})
    lam, eye = config["lam"], torch.eye(len(theta))

    def solution(t):
        return torch.linalg.solve(a_mat + lam * eye, a_mat @ a + lam * t)

    phi = solution(theta)
    torch.testing.assert_close(query_loss, loss({"w": phi}, q_mat, q))
    if damping == (0.0, 0.0):
        exact = torch.func.grad(lambda t: loss({"w": solution(t)}, q_mat, q))(theta)
    else:
        exact = torch.linalg.solve((1 + cg_damping) * eye + a_mat / (lam + lam_damping), q_mat @ (phi - q))
    torch.testing.assert_close(g["w"], exact, rtol=1e-9, atol=1e-11)
    # the query gradient at φ* alone (first-order MAML's direction) is not it
    assert not torch.allclose(g["w"], q_mat @ (phi - q), atol=1e-3)


def test_after_steps_proximal_is_the_codes_inner_loop():
    """`after-steps`: inner_steps of gradient descent on the support loss, then one step on λ/2‖φ − θ‖² alone."""
    loss, a_mat, a, _, _, theta = quadratic()
    config = hp(inner_steps=4, inner_lr=0.1, lam=2.0, proximal="after-steps")
    phi = theta.clone()
    for _ in range(4):
        phi = phi - 0.1 * a_mat @ (phi - a)
    phi = phi - 0.1 * 2.0 * (phi - theta)
    adapted = imaml.proximal_adapt(loss, {"w": theta}, a_mat, a, config, {"w"})
    torch.testing.assert_close(adapted["w"], phi)
    every = imaml.proximal_adapt(loss, {"w": theta}, a_mat, a, dict(config, proximal="every-step"), {"w"})
    assert not torch.allclose(every["w"], phi)


@pytest.mark.parametrize("path", PATHS)
def test_large_lambda_gives_the_query_gradient_at_theta(path):
    """λ → ∞: φ stays at θ and (I + H/λ)⁻¹ → I, so the meta-gradient tends to the query loss's gradient at θ."""
    model, params, tasks = conv_with_batch_norm()
    lam = 1e7
    config = hp(lam=lam, inner_lr=1.0 / (lam + 10.0), inner_steps=3, cg_steps=5)
    g, _ = imaml.meta_gradient(model, params, tasks, config, path)
    expected = {k: torch.zeros_like(v) for k, v in params.items()}
    for i in range(len(tasks)):
        task = tasks[i]
        gi = torch.func.grad(model.loss)(params, task.query_x, task.query_y)
        expected = {k: expected[k] + gi[k] / len(tasks) for k in expected}
    assert_close_dicts(g, expected, rtol=1e-4, atol=1e-6)
    # at an ordinary λ it differs (the limit is not what every λ gives)
    ordinary, _ = imaml.meta_gradient(model, params, tasks, hp(lam=0.5, inner_lr=0.3), path)
    assert any(not torch.allclose(ordinary[k], expected[k], rtol=1e-2, atol=1e-4) for k in expected)


@pytest.mark.parametrize("setting", [mlp, conv_with_batch_norm, lambda: conv_with_batch_norm(maml_style=True)],
                         ids=["mlp", "conv", "conv-maml-style"])
def test_paths_agree(setting):
    """vmap, the per-task loop and the grouped batch compute one meta-gradient; the model whose batch norm the
    inner loop leaves alone gets the query gradient there."""
    model, params, tasks = setting()
    config = hp(proximal="after-steps", cg_damping=1.0, lam_damping=10.0)
    grads = {path: imaml.meta_gradient(model, params, tasks, config, path) for path in PATHS}
    for path in PATHS:
        assert_close_dicts(grads[path][0], grads["loop"][0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grads[path][1], grads["loop"][1])


def test_test_time_fine_tuning_with_a_proximal_term():
    """evaluation.proximal_lam: each fine-tuning step descends L + λ/2‖φ − θ‖². Its first step is a plain one (the
    term's gradient is zero at θ), its second pulls back toward θ, exactly as written by hand."""
    from suite.algorithms.inner import grad
    from suite.training.evaluate import finetune_curve

    model, params, tasks = mlp()
    task = tasks[0]
    config = {"optimizer": {"name": "sgd", "lr": 0.05}, "steps": [0, 1, 2], "batch_norm": "none"}
    plain = finetune_curve(model, params, task.support_x, task.support_y, task.query_x, task.query_y, None, config)
    lam = 3.0
    proximal = finetune_curve(model, params, task.support_x, task.support_y, task.query_x, task.query_y, None,
                              dict(config, proximal_lam=lam))
    torch.testing.assert_close(proximal["mse"][:2], plain["mse"][:2])
    phi = dict(params)
    for _ in range(2):
        g = grad(model.loss)(phi, task.support_x, task.support_y)
        phi = {k: p - 0.05 * (g[k] + lam * (p - params[k])) for k, p in phi.items()}
    by_hand = torch.nn.functional.mse_loss(model.forward(phi, task.query_x), task.query_y)
    torch.testing.assert_close(proximal["mse"][2], by_hand)
    assert not torch.allclose(proximal["mse"][2], plain["mse"][2])
