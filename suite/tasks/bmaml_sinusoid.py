"""Bayesian MAML's sinusoid regression (Yoon et al. 2018, arXiv 1806.03836 §5.1; jsikyoon/bmaml data_generator.py),
which is not MAML's: a frequency too, a phase over [0, 2π], noise, and a finite set of training tasks.

A task is y = A·sin(w·x − b) + ε with A ~ U[amplitude], b ~ U[phase], w ~ U[frequency], x ~ U[x_range] and
ε ~ N(0, (noise·A)²) (data_generator.py:24-27, 62-72: the noise's std is a fraction of the task's amplitude). Training
draws its meta-batches from `train_tasks` tasks fixed once, each with its points and noise fixed too (the code's
finite mode stores x, y and the noise per task: data_generator.py:42-46, 59-83), without replacement within a
meta-batch; validation and test tasks are fresh draws, their query targets noiseless when `noiseless_queries` (the
code evaluates on clean targets: data_generator.py:134-139). Its numbers may not be pooled with MAML's sinusoid.
"""
from __future__ import annotations

from suite.lazy import lazy
from suite.protocol.schema import Field, ManifestError
from suite.tasks.base import TaskBatch, seeded_generator
from suite.tasks.sinusoid import loss_reduction, loss_scale, output_dim, support_points  # noqa: F401 (regression's)

FIELDS = {
    "amplitude": Field("range", doc="[low, high] of the uniform amplitude A (the code: [0.1, 5.0])"),
    "phase": Field("range", doc="[low, high] of the uniform phase b, in radians (the code: [0, 2π])"),
    "frequency": Field("range", doc="[low, high] of the uniform frequency w (the code: [0.5, 2.0])"),
    "x_range": Field("range", doc="[low, high] of the uniform inputs x (the code: [-5, 5])"),
    "noise": Field("float", doc="the noise's std as a fraction of the task's amplitude (the code's noise_factor, 0.01)"),
    "train_tasks": Field("positive_int", doc="|T|, the fixed training tasks meta-batches are drawn from (100 or 1000)"),
    "train_points": Field("positive_int", doc="points fixed per training task (at least shots + queries of training)"),
    "pool_seed": Field("int", doc="seed of the fixed training tasks (their functions, points and noise)"),
    "noiseless_queries": Field("bool", doc="validation and test query targets without noise, as the code evaluates"),
}

torch = lazy("torch")

# Bump when a change alters the tasks drawn (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOSS = "mse"
INPUT_DIM = 1
GENERATED = True
POOL_STREAM = 3  # seeded_generator(pool_seed, i, POOL_STREAM) draws training task i


def check(config: dict, where: str):
    if config["noise"] < 0:
        raise ManifestError(f"{where}.noise: a noise std cannot be negative")


def check_protocol(config: dict, model: dict, uses: list, where: str):
    if model["kind"] != "mlp":
        raise ManifestError(f"{where}: sinusoid regression needs the mlp model")
    for split, shots, queries in uses:
        if split == "train" and shots + queries > config["train_points"]:
            raise ManifestError(f"{where}.train_points: training takes {shots} support and {queries} query points "
                                f"a task, more than the {config['train_points']} fixed per training task")


CODE_TEST_TASKS = {}


class Tasks:
    provenance = None  # generated: the same for every run

    def __init__(self, amplitude, phase, frequency, x_range, noise, train_tasks, train_points, pool_seed,
                 noiseless_queries, data_dir=None):
        self.amplitude, self.phase, self.frequency, self.x_range = amplitude, phase, frequency, x_range
        self.noise, self.noiseless_queries = noise, noiseless_queries
        self.train_tasks, self.train_points, self.pool_seed = train_tasks, train_points, pool_seed
        self._pool = None

    @staticmethod
    def _uniform(shape, bounds, generator):
        low, high = bounds
        return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)

    def _draw(self, n_tasks: int, points: int, generator):
        """(A, b, w) [n, 1, 1], x [n, points, 1] and standard normal noise z [n, points, 1], drawn in that order."""
        amplitude = self._uniform((n_tasks, 1, 1), self.amplitude, generator)
        phase = self._uniform((n_tasks, 1, 1), self.phase, generator)
        frequency = self._uniform((n_tasks, 1, 1), self.frequency, generator)
        x = self._uniform((n_tasks, points, 1), self.x_range, generator)
        z = torch.randn((n_tasks, points, 1), generator=generator, dtype=torch.float64)
        return amplitude, phase, frequency, x, z

    def pool(self):
        """The fixed training tasks: x [|T|, train_points, 1] and their noisy y, task i drawn by (pool_seed, i)."""
        if self._pool is None:
            drawn = [self._draw(1, self.train_points, seeded_generator(self.pool_seed, i, POOL_STREAM))
                     for i in range(self.train_tasks)]
            amplitude, phase, frequency, x, z = (torch.cat(parts) for parts in zip(*drawn))
            y = amplitude * torch.sin(frequency * x - phase) + self.noise * amplitude * z
            self._pool = (x.float(), y.float())
        return self._pool

    def sample(self, n_tasks: int, shots: int, queries: int, generator: "torch.Generator", split: str) -> TaskBatch:
        """`n_tasks` tasks with `shots` support and `queries` query points: for training, distinct tasks of the fixed
        set with the first shots + queries of their fixed points; else fresh tasks."""
        if split == "train":
            if n_tasks > self.train_tasks:
                raise ValueError(f"a meta-batch of {n_tasks} tasks from {self.train_tasks} training tasks")
            x, y = self.pool()
            chosen = torch.randperm(self.train_tasks, generator=generator)[:n_tasks]
            x, y = x[chosen, : shots + queries], y[chosen, : shots + queries]
            return TaskBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])
        amplitude, phase, frequency, x, z = self._draw(n_tasks, shots + queries, generator)
        clean = amplitude * torch.sin(frequency * x - phase)
        noisy = clean + self.noise * amplitude * z
        y = torch.cat([noisy[:, :shots], (clean if self.noiseless_queries else noisy)[:, shots:]], 1)
        x, y = x.float(), y.float()
        return TaskBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])

    def curve(self, generator: "torch.Generator", points: int):
        """(x, y) of the noiseless function that sample(1, ...) of a test task draws with a generator in this state,
        on an even grid over x_range (for figures)."""
        amplitude, phase, frequency, _, _ = self._draw(1, 1, generator)
        x = torch.linspace(*self.x_range, points, dtype=torch.float64).view(points, 1)
        return x.float(), (amplitude[0] * torch.sin(frequency[0] * x - phase[0])).float()

