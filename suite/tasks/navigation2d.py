"""MAML's 2D navigation tasks (arXiv 1703.03400 §5.3, Appendix C; suite.tasks.point_navigation has the environment):
a task is a goal drawn uniformly from goal_range², and its data are trajectories the policy samples, not a fixed set
of points. A batch of tasks (GoalBatch) is their goals and the environment's settings; `shots` is the trajectories a
task's inner policy-gradient step samples and `queries` those its adapted policy samples for the meta-update.
"""
from __future__ import annotations

import numpy as np

from suite.lazy import lazy
from suite.protocol.schema import Field, ManifestError
from suite.tasks.point_navigation import REWARDS, BatchedNavigation, sample_goals
from suite.tasks.sinusoid import loss_reduction, loss_scale, support_points  # noqa: F401 (no loss to scale)

torch = lazy("torch")

FIELDS = {
    "goal_range": Field("range", doc="[low, high] of each coordinate of the uniform goal (the code: [-0.5, 0.5])"),
    "action_scale": Field("positive_float", doc="the velocity is this times the policy's action, before the clip "
                                                "(maml_rl's NormalizedEnv: 0.1; pytorch-maml-rl: 1)"),
    "action_bound": Field("positive_float", doc="velocities are clipped to ±this per coordinate (0.1)"),
    "reward": Field("str", choices=REWARDS,
                    doc="'negative-distance' (the code) or 'negative-squared-distance' (the paper's §5.3)"),
    "done_radius": Field("float", doc="a trajectory ends when the point is this close to the goal in x and in y"),
    "horizon": Field("positive_int", doc="steps of a trajectory at most (100)"),
}

# Bump when a change alters the tasks drawn or the environment (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOSS = "return"
INPUT_DIM = 2  # the observation: the point's position
GENERATED = True


def _check_cbfinn_maml_rl(evaluation: dict, where: str):
    pass  # any number of goals (the code's is 40) and trajectories


# Test tasks drawn as a paper's released code draws them (evaluation.test_tasks): name -> check of the evaluation
CODE_TEST_TASKS = {"cbfinn-maml-rl": _check_cbfinn_maml_rl}


def output_dim(config: dict) -> int:
    return 2  # the action: a velocity (the Gaussian policy's mean)


def check(config: dict, where: str):
    if config["done_radius"] < 0:
        raise ManifestError(f"{where}.done_radius: a distance cannot be negative")


def check_protocol(config: dict, model: dict, uses: list, where: str):
    if model["kind"] != "mlp":
        raise ManifestError(f"{where}: a navigation policy is the mlp model")


class GoalBatch:
    """Tasks of 2D navigation: goals [n, 2] (float64) and how the environment runs."""

    def __init__(self, goals, settings: dict, shots: int, queries: int):
        self.goals, self.settings, self.shots, self.queries = goals, settings, shots, queries

    def __len__(self):
        return len(self.goals)

    def __getitem__(self, i):
        return GoalBatch(self.goals[i:i + 1] if isinstance(i, int) else self.goals[i], self.settings, self.shots,
                         self.queries)

    def to(self, device):
        return GoalBatch(self.goals.to(device), self.settings, self.shots, self.queries)

    def environment(self, trajectories: int) -> BatchedNavigation:
        """Every task's `trajectories` trajectories at once: goals repeated task by task ([task, trajectory] order)."""
        return BatchedNavigation(self.goals.repeat_interleave(trajectories, 0), **self.settings)


class Tasks:
    provenance = None  # generated: the same for every run

    def __init__(self, goal_range, action_scale, action_bound, reward, done_radius, horizon, data_dir=None):
        self.goal_range = goal_range
        self.settings = {"action_scale": action_scale, "action_bound": action_bound, "reward": reward,
                         "done_radius": done_radius, "horizon": horizon}

    def sample(self, n_tasks: int, shots: int, queries: int, generator: "torch.Generator", split: str) -> GoalBatch:
        """`n_tasks` goals, every split from the same distribution; shots and queries: trajectories per task."""
        return GoalBatch(sample_goals(n_tasks, *self.goal_range, generator), self.settings, shots, queries)

    def sample_as_code(self, code: str, n_tasks: int, shots: int, queries: int, seed: int) -> GoalBatch:
        """The first `n_tasks` test goals exactly as a released code draws them. 'cbfinn-maml-rl': maml_examples/
        test_maml_point.py calls np.random.seed(1), then np.random.uniform(-0.5, 0.5, size=(40, 2)) (its Table 4
        averages over those 40 goals); `seed` is the evaluation's."""
        if code != "cbfinn-maml-rl":
            raise ValueError(f"unknown code {code!r}")
        goals = np.random.RandomState(seed).uniform(*self.goal_range, size=(n_tasks, 2))
        return GoalBatch(torch.from_numpy(goals), self.settings, shots, queries)
