"""The point-mass 2D navigation of MAML's reinforcement-learning experiments (Finn, Abbeel & Levine 2017,
arXiv 1703.03400 §5.3, Appendix C; cbfinn/maml_rl maml_examples/point_env_randgoal.py; tristandeleu/pytorch-maml-rl
maml_rl/envs/navigation.py): a point starts at the origin, each action times `action_scale` is its velocity, clipped
to ±action_bound per coordinate, and a task is a goal drawn uniformly from [goal_low, goal_high]²; a trajectory lasts
`horizon` steps or until the point is within `done_radius` of the goal in both coordinates. maml_rl wraps the
environment in rllab's NormalizedEnv, which maps the policy's action a ∈ [−1, 1] to 0.1·a (action_scale 0.1;
rllab/envs/normalized_env.py) before clipping; pytorch-maml-rl clips the raw action (action_scale 1).

The reward is where paper and code differ: the paper's §5.3 says the negative squared distance to the goal, the code
computes the negative distance (`reward`: 'negative-squared-distance' or 'negative-distance').

`Navigation2D` is a gymnasium environment of one task; `BatchedNavigation` steps many tasks × trajectories at once as
tensors (time-major rollouts for suite.algorithms.policy_gradient), the same arithmetic.
"""
from __future__ import annotations

import gymnasium
import numpy as np

from suite.lazy import lazy

torch = lazy("torch")

REWARDS = ("negative-distance", "negative-squared-distance")


def reward_of(offset, kind: str):
    """The reward of a position `offset` from the goal (last dimension: x, y)."""
    squared = (offset ** 2).sum(-1)
    if kind == "negative-distance":
        return -(squared ** 0.5)
    if kind == "negative-squared-distance":
        return -squared
    raise ValueError(f"reward {kind!r}: one of {', '.join(REWARDS)}")


def sample_goals(n: int, low: float, high: float, generator) -> "torch.Tensor":
    """n goals uniform on [low, high]², float64."""
    return low + (high - low) * torch.rand((n, 2), generator=generator, dtype=torch.float64)


class BatchedNavigation:
    """Goals [N, 2] (one per trajectory: repeat a task's goal for its trajectories); state [N, 2] positions."""

    def __init__(self, goals, action_scale: float, action_bound: float, reward: str, done_radius: float,
                 horizon: int):
        self.goals, self.action_bound, self.reward, self.done_radius = goals, action_bound, reward, done_radius
        self.action_scale, self.horizon = action_scale, horizon

    def reset(self):
        self.position = torch.zeros_like(self.goals)
        self.running = torch.ones(len(self.goals), dtype=torch.bool, device=self.goals.device)
        return self.position.clone()

    def step(self, actions):
        """(observations, rewards, running-before-this-step mask): a finished trajectory no longer moves and its
        reward is 0."""
        was_running = self.running.clone()
        move = (self.action_scale * actions.to(self.position.dtype)).clamp(-self.action_bound, self.action_bound)
        self.position = self.position + move * was_running.unsqueeze(-1)
        offset = self.position - self.goals
        rewards = reward_of(offset, self.reward) * was_running
        self.running = was_running & ~(offset.abs() < self.done_radius).all(-1)
        return self.position.clone(), rewards, was_running.to(self.position.dtype)

    def rollout(self, act):
        """Run every trajectory for the horizon: act(observations [N, 2], t) -> actions [N, 2]. Time-major
        observations [T, N, 2] (each step's input), actions [T, N, 2], rewards and mask [T, N]."""
        obs = self.reset()
        observations, actions, rewards, masks = [], [], [], []
        for t in range(self.horizon):
            a = act(obs, t)
            next_obs, r, mask = self.step(a)
            observations.append(obs)
            actions.append(a)
            rewards.append(r)
            masks.append(mask)
            obs = next_obs
        return torch.stack(observations), torch.stack(actions), torch.stack(rewards), torch.stack(masks)


class Navigation2D(gymnasium.Env):
    """One 2D navigation task as a gymnasium environment (its goal given, or in reset's options={'goal': ...})."""

    metadata = {"render_modes": []}

    def __init__(self, goal, action_scale: float, action_bound: float, reward: str, done_radius: float,
                 horizon: int):
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        bound = action_bound / action_scale  # the actions that are not clipped
        self.action_space = gymnasium.spaces.Box(-bound, bound, shape=(2,), dtype=np.float64)
        self.action_bound, self.reward, self.done_radius, self.horizon = action_bound, reward, done_radius, horizon
        self.action_scale, self.goal = action_scale, np.asarray(goal, dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if options and "goal" in options:
            self.goal = np.asarray(options["goal"], dtype=np.float64)
        self.position, self.t = np.zeros(2), 0
        return self.position.copy(), {"goal": self.goal.copy()}

    def step(self, action):
        self.position = self.position + np.clip(self.action_scale * np.asarray(action), -self.action_bound,
                                                self.action_bound)
        self.t += 1
        offset = self.position - self.goal
        reward = float(reward_of(torch.as_tensor(offset), self.reward))
        terminated = bool((np.abs(offset) < self.done_radius).all())
        return self.position.copy(), reward, terminated, self.t >= self.horizon, {"goal": self.goal.copy()}
