"""Policy-gradient pieces of MAML for reinforcement learning (Finn, Abbeel & Levine 2017, arXiv 1703.03400 §5.3 and
Appendix C; cbfinn/maml_rl on rllab; tristandeleu/pytorch-maml-rl): discounted returns, rllab's linear feature
baseline, generalised advantage estimation, the REINFORCE surrogate of the inner loop, and TRPO's outer step
(conjugate gradient on Fisher-vector products of the KL, then a backtracking line search under the KL bound).

Trajectories are time-major: rewards and masks [T, B] (B trajectories of at most T steps; the mask is 1 while a
trajectory runs), observations [T, B, obs_dim], actions [T, B, act_dim].
"""
from __future__ import annotations

from suite.lazy import lazy

torch = lazy("torch")


def discounted_returns(rewards, mask, gamma: float):
    """R_t = Σ_{k ≥ t} γ^(k−t) r_k within each trajectory (masked steps contribute nothing), [T, B]."""
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        running = (rewards[t] + gamma * running) * mask[t]
        out[t] = running
    return out


def baseline_features(observations, mask):
    """rllab's LinearFeatureBaseline features (rllab/baselines/linear_feature_baseline.py _features): the
    observation clipped to ±10 and its square, the time step t/100 and its square and cube, and a constant 1;
    [T, B, 2·obs_dim + 4], zero where the mask is."""
    steps = len(observations)
    o = observations.clamp(-10, 10)
    t = (torch.arange(steps, dtype=o.dtype, device=o.device) / 100.0).view(steps, 1, 1).expand(*o.shape[:2], 1)
    features = torch.cat([o, o ** 2, t, t ** 2, t ** 3, torch.ones_like(t)], -1)
    return features * mask.unsqueeze(-1)


def fit_linear_baseline(observations, mask, returns, reg_coeff: float = 1e-5, tries: int = 5):
    """The ridge least-squares weights of returns on baseline_features (rllab's fit: lstsq of (XᵀX + c·I) w = Xᵀy,
    c multiplied by 10 until the solution is finite, at most `tries` times)."""
    x = baseline_features(observations, mask).flatten(0, 1).double()
    y = (returns * mask).flatten().double()
    gram, target = x.T @ x, x.T @ y
    eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    for _ in range(tries):
        weights = torch.linalg.lstsq(gram + reg_coeff * eye, target.unsqueeze(-1)).solution[:, 0]
        if torch.isfinite(weights).all():
            return weights.to(returns.dtype)
        reg_coeff *= 10
    raise FloatingPointError("the linear baseline's least squares has no finite solution")


def baseline_values(weights, observations, mask):
    """The fitted baseline's value of every step, [T, B]."""
    return baseline_features(observations, mask) @ weights


def gae(rewards, values, mask, gamma: float, lam: float):
    """Generalised advantage estimation (Schulman et al. 2016): A_t = Σ_k (γλ)^k δ_{t+k}, δ_t = r_t + γ V_{t+1} − V_t,
    with V after a trajectory's end 0; [T, B]. λ = 1 gives the returns minus the baseline."""
    values = values * mask
    next_values = torch.cat([values[1:], torch.zeros_like(values[:1])])
    deltas = (rewards + gamma * next_values - values) * mask
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        running = (deltas[t] + gamma * lam * running) * mask[t]
        out[t] = running
    return out


def normalise(advantages, mask, eps: float = 1e-8):
    """Advantages less their mean, over their std (over the unmasked steps), as pytorch-maml-rl's weighted_normalize."""
    n = mask.sum()
    mean = (advantages * mask).sum() / n
    std = ((((advantages - mean) * mask) ** 2).sum() / n).sqrt()
    return (advantages - mean) / (std + eps) * mask


def reinforce_loss(log_probs, advantages, mask):
    """The REINFORCE surrogate −mean over steps of log π(a_t | s_t)·A_t (advantages fixed): its gradient is the
    vanilla policy gradient estimate (negated)."""
    return -(log_probs * advantages.detach() * mask).sum() / mask.sum()


def conjugate_gradient(fisher_vector_product, b, iterations: int = 10, residual_tol: float = 1e-10):
    """x ≈ F⁻¹ b by conjugate gradient on the products v ↦ F v (rllab's cg: at most `iterations` steps, stopping
    once ‖r‖² < residual_tol)."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    r_dot = r @ r
    for _ in range(iterations):
        if r_dot < residual_tol:
            break
        z = fisher_vector_product(p)
        alpha = r_dot / (p @ z)
        x = x + alpha * p
        r = r - alpha * z
        new_r_dot = r @ r
        p = r + (new_r_dot / r_dot) * p
        r_dot = new_r_dot
    return x


def line_search(surrogate_and_kl, full_step, max_kl: float, backtrack_ratio: float = 0.8, max_backtracks: int = 15):
    """TRPO's backtracking line search: the first fraction ratio^k of `full_step` (k = 0, 1, ...) whose surrogate
    loss is below the current one and whose mean KL from the current policy is within max_kl; (the step, k), or
    (zero, None) when none is (rllab's ConjugateGradientOptimizer then keeps the old parameters).
    surrogate_and_kl(step) -> (loss, kl) of the parameters moved by `step`."""
    loss_before, _ = surrogate_and_kl(torch.zeros_like(full_step))
    for k in range(max_backtracks):
        step = backtrack_ratio ** k * full_step
        loss, kl = surrogate_and_kl(step)
        if loss < loss_before and kl <= max_kl:
            return step, k
    return torch.zeros_like(full_step), None


def trpo_direction(gradient, fisher_vector_product, max_kl: float, cg_iterations: int = 10, damping: float = 1e-5):
    """The full TRPO step for a loss gradient g: s = −F⁻¹g scaled so that ½ sᵀ F s = max_kl (F damped by
    `damping`·I), the step the line search starts from."""
    def damped(v):
        return fisher_vector_product(v) + damping * v

    direction = conjugate_gradient(damped, -gradient, cg_iterations)
    shs = 0.5 * direction @ damped(direction)
    return direction * torch.sqrt(max_kl / shs.clamp_min(1e-20))
