"""iMAML, implicit MAML (Rajeswaran, Finn, Kakade & Levine 2019, arXiv 1909.04630, Algorithms 1 and 2): each task's
inner loop approximately solves a proximally regularised problem, and the meta-gradient comes from the implicit
function theorem instead of back-propagation through the inner steps: conjugate gradient on (I + H/λ)·g = ∇L_test,
with Hessian-vector products, so its memory does not grow with the number of inner steps.

    sample a batch of tasks T_i
    for each T_i:  φ_i ≈ argmin_φ L_train(φ) + λ/2 ‖φ − θ‖²              (inner_steps of gradient descent, no graph)
                   g_i ≈ (I + ∇²L_train(φ_i)/λ)^{-1} ∇φ L_test(φ_i)      (cg_steps of conjugate gradient, Alg. 2)
    θ ← Adam(θ, mean_i g_i)

Where the paper and its code (aravindr93/imaml_dev at 6a2a669) differ, a field says which a claim follows:
- `proximal`: `every-step` descends the paper's regularised objective (Eq. 4) at every inner step; `after-steps` is
  the code's learn_task: inner_steps on L_train alone, then one step on the regulariser alone, φ ← φ − α·λ·(φ − θ).
- The system CG solves is (1 + cg_damping)·v + H·v/(λ + lam_damping) = ∇L_test(φ): the paper's is cg_damping = 0,
  lam_damping = 0; the code's omniglot_implicit_maml.py calls matrix_evaluator(task, lam, args.cg_damping), which
  binds cg_damping to its `regu_coef` and leaves `lam_damping` at its default, 10.
- CG starts from zero and stops early once r·r < cg_tolerance (the code's cg_solve, residual_tol = 1e-10); with
  cg_steps ≤ 1 the code takes ∇L_test(φ) itself, and so does this module.

The implicit gradient covers the parameters the inner loop adapts (`inner_loop_names`); a parameter it leaves alone
(φ = θ there) gets the query gradient, as first-order MAML's. The Hessian is the training loss's alone: the
regulariser's is the λ·I the identity term accounts for.

Hessian-free iMAML (the paper's other Omniglot row: a Newton-CG inner solver with a line search) is not here: the
released code asserts `inner_alg == 'gradient'` ("sqp unsupported in this version"), and the paper's text does not
pin down its steps or its line search.
"""
from __future__ import annotations

import suite.algorithms.maml as maml
from suite.algorithms.base import (check_evaluation, extra_inputs, finetune_steps_limit,  # noqa: F401
                                   initial_params, paths)  # (the protocol's usual answers)
from suite.algorithms.base import mean_task_gradients
from suite.algorithms.inner import _transformed, grad, grad_and_losses
from suite.algorithms.maml import carries_inner_state, check, task_shape  # noqa: F401
from suite.lazy import lazy
from suite.protocol.fields import OUTER_OPTIMIZER
from suite.protocol.schema import Field

torch = lazy("torch")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = "the mean query loss of the meta-batch after the proximal inner loop"

ARGS = {
    "iterations": Field("positive_int", doc="meta-iterations (--meta_steps)"),
    "meta_batch": Field("positive_int", doc="tasks per meta-iteration (--task_mb_size)"),
    "shots": Field("positive_int", doc="images per class of a training task's support set"),
    "queries": Field("positive_int", doc="images per class of a training task's query set"),
    "inner_steps": Field("positive_int", doc="gradient steps of the inner loop (--n_steps)"),
    "inner_lr": Field("positive_float", doc="α, the inner step size (--inner_lr)"),
    "lam": Field("positive_float", doc="λ, the proximal regularisation's strength (--lam)"),
    "proximal": Field("str", choices=("every-step", "after-steps"),
                      doc="'every-step': each inner step descends L_train + λ/2‖φ − θ‖² (the paper, Eq. 4); "
                          "'after-steps': inner_steps on L_train, then one step on the regulariser alone (the code)"),
    "cg_steps": Field("positive_int", doc="conjugate-gradient steps for the implicit meta-gradient (--cg_steps); "
                                          "1 takes the query gradient itself, as the code does"),
    "cg_damping": Field("nonnegative_float",
                        doc="added to the identity's coefficient: (1 + cg_damping)·v + H·v/(λ + lam_damping) "
                            "(--cg_damping; 0 in the paper's system)"),
    "lam_damping": Field("nonnegative_float",
                         doc="added to λ under the Hessian term (the code's matrix_evaluator default, 10; 0 in the "
                             "paper's system)"),
    "cg_tolerance": Field("positive_float", doc="CG stops once the residual's r·r falls below this (cg_solve's "
                                                "residual_tol)"),
    "meta_optimizer": Field(OUTER_OPTIMIZER, doc="outer optimiser (Adam; the code sets its ε to 1e-3)"),
}


def second_order(hp: dict) -> bool:
    return True  # each Hessian-vector product is a double backward through every layer


def hessian_vector_products(hp: dict) -> bool:
    return True  # the conjugate gradient's products, nested torch.func transforms under vmap



def _dot(a: dict, b: dict, task_dims: int):
    """Σ_k a_k·b_k, one number per task (a tensor of shape [] for one task, [tasks] for a grouped batch)."""
    return sum((a[k] * b[k]).flatten(task_dims).sum(-1) for k in a)


def _scale(s, tensor):
    """s·tensor with one scalar per task: s of shape [] or [tasks], broadcast over the tensor's other dimensions."""
    return s.reshape(s.shape + (1,) * (tensor.dim() - s.dim())) * tensor


def conjugate_gradient(matvec, b: dict, steps: int, tolerance: float, task_dims: int = 0) -> dict:
    """x ≈ A⁻¹b by `steps` of conjugate gradient from x = 0, for a symmetric positive-definite A given as
    matvec(v) = A·v on tensor dicts; per task (a leading dimension of `task_dims`), a task whose residual r·r fell
    below `tolerance` keeps its x (cg_solve's early stop, made per task so that tasks batched together run the
    same computation as alone)."""
    x = {k: torch.zeros_like(v) for k, v in b.items()}
    r, p = dict(b), dict(b)
    rr = _dot(r, r, task_dims)
    done = torch.zeros_like(rr, dtype=torch.bool)
    for _ in range(steps):
        ap = matvec(p)
        pap = _dot(p, ap, task_dims)
        alpha = torch.where(done, torch.zeros_like(rr), rr / torch.where(done, torch.ones_like(pap), pap))
        x = {k: x[k] + _scale(alpha, p[k]) for k in x}
        r = {k: r[k] - _scale(alpha, ap[k]) for k in r}
        new = _dot(r, r, task_dims)
        beta = torch.where(done, torch.zeros_like(rr), new / torch.where(done, torch.ones_like(rr), rr))
        p = {k: r[k] + _scale(beta, p[k]) for k in p}
        done = done | (new < tolerance)
        rr = torch.where(done, rr, new)
    return x


def hessian_vector_product_of(loss, at: dict, task_dims: int):
    """v -> H·v, H the Hessian of loss(params) (summed over tasks) at `at`: ∇(∇loss·v), a double backward. Under a
    torch.func transform (the vmap path) it is torch.func.grad of torch.func.grad; elsewhere torch.autograd keeps
    the first backward's graph and reuses it for every v, which is why `auto` keeps iMAML off vmap
    (suite.training.paths)."""
    if _transformed():
        def directional(a, v):
            return _dot(torch.func.grad(lambda b: loss(b).sum())(a), v, task_dims).sum()

        return lambda v: torch.func.grad(directional)(at, v)
    tracked = {k: p.detach().requires_grad_(True) for k, p in at.items()}
    with torch.enable_grad():
        gradient = torch.autograd.grad(loss(tracked).sum(), list(tracked.values()), create_graph=True)

    def product(v):
        with torch.enable_grad():
            hv = torch.autograd.grad(_dot(dict(zip(tracked, gradient)), v, task_dims).sum(), list(tracked.values()),
                                     retain_graph=True, allow_unused=True, materialize_grads=True)
        return dict(zip(tracked, hv))

    return product


def proximal_adapt(loss, theta: dict, x, y, hp: dict, names) -> dict:
    """φ after the inner loop on loss(φ, x, y) with the proximal term λ/2‖φ − θ‖² (hp['proximal'] says how), the
    parameters in `names` adapted; no graph is kept."""
    lr, lam, phi = hp["inner_lr"], hp["lam"], dict(theta)
    every_step = hp["proximal"] == "every-step"
    for _ in range(hp["inner_steps"]):
        g = grad(loss)(phi, x, y)
        phi = {k: p - lr * (g[k] + lam * (p - theta[k]) if every_step else g[k]) if k in names else p
               for k, p in phi.items()}
    if not every_step:
        phi = {k: p - lr * lam * (p - theta[k]) if k in names else p for k, p in phi.items()}
    return phi


def implicit_gradient(loss, theta: dict, support_x, support_y, query_x, query_y, hp: dict, names,
                      task_dims: int = 0):
    """(g, query loss) for one task, or for each task of a grouped batch (task_dims = 1): g is the implicit
    meta-gradient for the parameters in `names` and the query gradient at φ for the others."""
    phi = proximal_adapt(loss, theta, support_x, support_y, hp, names)
    query_grad, query_loss = grad_and_losses(loss)(phi, query_x, query_y)
    if hp["cg_steps"] <= 1:
        return query_grad, query_loss
    adapted = {k: phi[k] for k in phi if k in names}

    hessian_vector_product = hessian_vector_product_of(
        lambda a: loss({**phi, **a}, support_x, support_y), adapted, task_dims)
    identity, curvature = 1.0 + hp["cg_damping"], 1.0 / (hp["lam"] + hp["lam_damping"])

    def matvec(v):
        hv = hessian_vector_product(v)
        return {k: identity * v[k] + curvature * hv[k] for k in v}

    solved = conjugate_gradient(matvec, {k: query_grad[k] for k in adapted}, hp["cg_steps"], hp["cg_tolerance"],
                                task_dims)
    return {**query_grad, **solved}, query_loss


def meta_gradient(model, params, tasks, hp: dict, path: str):
    """(mean_i g_i, mean query loss after the inner loop)."""
    def gradient_for_task(m, p, sx, sy, qx, qy):
        return implicit_gradient(m.loss, p, sx, sy, qx, qy, hp, m.inner_loop_names, m.task_dims)

    return mean_task_gradients(gradient_for_task, path, model, params, tasks)


class Learner(maml.Learner):  # MAML's outer Adam on θ; only the meta-gradient differs
    capturable = False  # its conjugate-gradient loop has not been checked under a CUDA graph

    def update(self, tasks):
        grads, loss = meta_gradient(self.model, self.params, tasks, self.hp, self.path)
        self.apply_gradients(grads)
        return loss
