"""MAML-RL's policy-gradient pieces (suite/algorithms/policy_gradient.py), each against a closed form, in float64."""
import numpy as np
import pytest
import torch

from suite.algorithms import policy_gradient as pg


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def trajectories(steps=12, batch=6, obs_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(steps, batch, obs_dim, generator=g) * 3
    lengths = torch.randint(4, steps + 1, (batch,), generator=g)
    mask = (torch.arange(steps).unsqueeze(1) < lengths).double()
    rewards = torch.randn(steps, batch, generator=g) * mask
    return obs, mask, rewards


def test_discounted_returns_and_gae_with_lambda_one_are_their_sums():
    obs, mask, rewards = trajectories()
    returns = pg.discounted_returns(rewards, mask, 0.9)
    for b in range(rewards.shape[1]):
        n = int(mask[:, b].sum())
        for t in range(n):
            expected = sum(0.9 ** (k - t) * rewards[k, b] for k in range(t, n))
            assert returns[t, b].item() == pytest.approx(expected.item(), abs=1e-12)
        assert (returns[n:, b] == 0).all()
    values = torch.randn_like(rewards) * mask
    torch.testing.assert_close(pg.gae(rewards, values, mask, 0.9, 1.0), (returns - values) * mask)


def test_the_linear_baseline_is_rllabs_ridge_least_squares():
    obs, mask, _ = trajectories(steps=30, batch=10)
    features = pg.baseline_features(obs, mask)
    assert features.shape == (30, 10, 2 * 2 + 4)
    w_true = torch.randn(features.shape[-1], generator=torch.Generator().manual_seed(3))
    returns = (features @ w_true) * mask
    weights = pg.fit_linear_baseline(obs, mask, returns, reg_coeff=1e-12)
    torch.testing.assert_close(pg.baseline_values(weights, obs, mask), returns, atol=1e-8, rtol=1e-8)
    noisy = returns + torch.randn_like(returns) * mask  # not in the span: numpy's ridge solution
    x, y = features.flatten(0, 1).numpy(), noisy.flatten().numpy()
    expected = np.linalg.lstsq(x.T @ x + 1e-5 * np.eye(x.shape[1]), x.T @ y, rcond=None)[0]
    np.testing.assert_allclose(pg.fit_linear_baseline(obs, mask, noisy).numpy(), expected, rtol=1e-8, atol=1e-10)
    assert features[mask == 0].abs().sum() == 0  # finished trajectories add nothing to the fit


def test_conjugate_gradient_solves_a_fisher_system_to_tolerance():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(40, 20, generator=g)
    fisher = a.T @ a / 40 + 0.1 * torch.eye(20)
    b = torch.randn(20, generator=g)
    x = pg.conjugate_gradient(lambda v: fisher @ v, b, iterations=20, residual_tol=1e-20)
    assert (fisher @ x - b).norm() < 1e-8 * b.norm()
    few = pg.conjugate_gradient(lambda v: fisher @ v, b, iterations=3)  # fewer steps: a worse solution
    assert (fisher @ few - b).norm() > 1e-6


def test_the_line_search_never_accepts_a_step_beyond_the_kl_bound():
    fisher = torch.diag(torch.tensor([1.0, 10.0]))
    target = torch.tensor([3.0, -2.0])

    def surrogate_and_kl(step):
        return ((step - target) ** 2).sum(), 0.5 * step @ fisher @ step

    full = target.clone()  # ½ sᵀFs = 24.5: far beyond the bound
    accepted = []
    for max_kl in (0.01, 0.5, 5.0, 24.5, 100.0):
        step, k = pg.line_search(surrogate_and_kl, full, max_kl)
        loss, kl = surrogate_and_kl(step)
        if k is None:  # nothing within the bound in 15 backtracks (0.8^14 of the step still has KL 0.047)
            assert max_kl == 0.01 and (step == 0).all()
            continue
        accepted.append(k)
        assert kl <= max_kl and loss < surrogate_and_kl(torch.zeros(2))[0]
        if k:  # the step before it was refused
            assert surrogate_and_kl(step / 0.8)[1] > max_kl
    assert accepted[-2:] == [0, 0] and accepted[0] > 0  # the whole step once the bound allows it
    direction = pg.trpo_direction(-2 * target, lambda v: fisher @ v, max_kl=0.01, damping=0.0)
    assert (0.5 * direction @ fisher @ direction).item() == pytest.approx(0.01)  # scaled to the bound


def test_the_policy_gradient_estimate_matches_the_exact_gradient_on_a_one_step_bandit():
    """A Gaussian policy a ~ N(μ, σ²) and reward −(a − 2)²: ∂E[r]/∂μ = −2(μ − 2), ∂E[r]/∂log σ = −2σ²."""
    mu, log_sigma = torch.tensor(0.5, requires_grad=True), torch.tensor(-0.3, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    actions = (mu + log_sigma.exp() * torch.randn(n, generator=g)).detach()
    rewards = -(actions - 2.0) ** 2
    log_probs = torch.distributions.Normal(mu, log_sigma.exp()).log_prob(actions)
    advantages = rewards - rewards.mean()  # a constant baseline leaves the estimate unbiased
    loss = pg.reinforce_loss(log_probs.view(1, n), advantages.view(1, n), torch.ones(1, n))
    d_mu, d_log_sigma = torch.autograd.grad(-loss, [mu, log_sigma])
    assert d_mu.item() == pytest.approx(-2 * (0.5 - 2.0), rel=0.02)
    assert d_log_sigma.item() == pytest.approx(-2 * np.exp(-0.6), rel=0.03)


def test_the_batched_navigation_steps_as_the_gymnasium_environment_does():
    from suite.tasks import point_navigation as nav
    goals = nav.sample_goals(3, -0.5, 0.5, torch.Generator().manual_seed(0))
    assert ((goals >= -0.5) & (goals <= 0.5)).all()
    g = torch.Generator().manual_seed(1)
    actions = torch.randn(100, 3, 2, generator=g) * 0.2  # often beyond the ±0.1 clip
    for reward in nav.REWARDS:
        batched = nav.BatchedNavigation(goals, 0.5, 0.1, reward, 0.01, 100)
        obs, acts, rewards, mask = batched.rollout(lambda o, t: actions[t])
        for i in range(3):
            env = nav.Navigation2D(goals[i].numpy(), 0.5, 0.1, reward, 0.01, 100)
            o, _ = env.reset()
            for t in range(100):
                np.testing.assert_allclose(obs[t, i].numpy(), o)
                o, r, terminated, truncated, _ = env.step(actions[t, i].numpy())
                assert rewards[t, i].item() == pytest.approx(r, abs=1e-12)
                if terminated or truncated:
                    break
            assert truncated and mask[:, i].sum() == 100


def test_navigation_rewards_are_the_papers_or_the_codes_and_a_reached_goal_ends_the_trajectory():
    from suite.tasks import point_navigation as nav
    goal = torch.tensor([[0.3, -0.4]])
    for reward, first in (("negative-distance", -((0.2 ** 2 + 0.33 ** 2) ** 0.5)), ("negative-squared-distance",
                                                                                     -(0.2 ** 2 + 0.33 ** 2))):
        env = nav.BatchedNavigation(goal, 0.1, 0.1, reward, 0.01, 100)
        env.reset()
        _, r, mask = env.step(torch.tensor([[5.0, -0.7]]))  # scaled to (0.5, −0.07), clipped to (0.1, −0.07)
        assert r.item() == pytest.approx(first) and mask.item() == 1
    env = nav.BatchedNavigation(goal, 1.0, 0.1, "negative-distance", 0.01, 100)
    _, _, rewards, mask = env.rollout(lambda o, t: (goal - o).clamp(-0.1, 0.1))  # straight to the goal
    assert mask.sum() == 4 and rewards[4:].abs().sum() == 0  # 4 steps reach it; the rest are masked
