"""Sinusoid regression (MAML paper §5.1; cbfinn/maml data_generator.generate_sinusoid_batch).

A task is y = A·sin(x − φ) with A ~ U[amplitude], φ ~ U[phase], x ~ U[x_range]; the loss is MSE.
"""
from __future__ import annotations

import numpy as np

from suite.lazy import lazy
from suite.protocol.schema import Field, ManifestError
from suite.tasks.base import TaskBatch

FIELDS = {
    "amplitude": Field("range", doc="[low, high] of the uniform amplitude A"),
    "phase": Field("range", doc="[low, high] of the uniform phase φ, in radians"),
    "x_range": Field("range", doc="[low, high] of the uniform inputs x"),
}

torch = lazy("torch")

# Bump when a change alters the tasks drawn (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOSS = "mse"
INPUT_DIM = 1
GENERATED = True


def output_dim(config: dict) -> int:
    return 1


def loss_scale(config: dict) -> float:
    return 1.0


def loss_reduction(config: dict) -> str:
    return "mean"


def check(config: dict, where: str):
    pass


def support_points(config: dict, shots: int) -> int:
    return shots


def _check_cbfinn_maml(evaluation: dict, where: str):
    if evaluation["queries"] != evaluation["shots"]:
        raise ManifestError(f"{where}.queries: cbfinn/maml's test tasks have as many query points as support points "
                            f"(it draws 2K inputs per task), so queries must equal shots ({evaluation['shots']})")


# Test tasks drawn as a paper's released code draws them (evaluation.test_tasks): name -> check of the evaluation
CODE_TEST_TASKS = {"cbfinn-maml": _check_cbfinn_maml}


def check_protocol(config: dict, model: dict, shots_and_queries: list, where: str):
    if model["kind"] != "mlp":
        raise ManifestError(f"{where}: sinusoid regression needs the mlp model")


class Tasks:
    provenance = None  # the data cannot differ from run to run (generated, or pinned by its digest)

    def __init__(self, amplitude, phase, x_range, data_dir=None):
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range

    def _uniform(self, shape, bounds, generator):
        low, high = bounds
        return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)

    def sample(self, n_tasks: int, shots: int, queries: int, generator: "torch.Generator", split: str) -> TaskBatch:
        """`n_tasks` tasks with `shots` support and `queries` query points each, all drawn i.i.d.
        Sinusoid tasks are a continuous distribution, so every split draws from the same one."""
        amplitude, phase = self._functions(n_tasks, generator)
        x = self._uniform((n_tasks, shots + queries, 1), self.x_range, generator)
        y = amplitude * torch.sin(x - phase)
        x, y = x.float(), y.float()
        return TaskBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])

    def sample_as_code(self, code: str, n_tasks: int, shots: int, queries: int, seed: int) -> TaskBatch:
        """The first `n_tasks` test tasks exactly as a released code draws them. 'cbfinn-maml': main.py test() calls
        np.random.seed(seed) once, then for each of its test tasks data_generator.generate_sinusoid_batch() (meta-
        batch 1) draws amplitude, phase and 2K inputs, in that order, from numpy's global stream; the first K
        inputs are the support set, the other K the query set. Targets are computed in float64, then fed as
        float32."""
        if code != "cbfinn-maml":
            raise ValueError(f"unknown code {code!r}")
        rng = np.random.RandomState(seed)
        xs, ys = [], []
        for _ in range(n_tasks):
            amplitude = rng.uniform(*self.amplitude, [1])
            phase = rng.uniform(*self.phase, [1])
            x = rng.uniform(*self.x_range, [shots + queries, 1])
            xs.append(x)
            ys.append(amplitude[0] * np.sin(x - phase[0]))
        x, y = torch.from_numpy(np.stack(xs)).float(), torch.from_numpy(np.stack(ys)).float()
        return TaskBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])

    def _functions(self, n_tasks, generator):
        return (self._uniform((n_tasks, 1, 1), self.amplitude, generator),
                self._uniform((n_tasks, 1, 1), self.phase, generator))

    def curve(self, generator: "torch.Generator", points: int):
        """(x, y) of the whole function that sample(1, ...) draws with a generator in this state, on an even grid
        over x_range (for figures)."""
        amplitude, phase = self._functions(1, generator)
        x = torch.linspace(*self.x_range, points, dtype=torch.float64).view(points, 1)
        return x.float(), (amplitude[0] * torch.sin(x - phase[0])).float()
