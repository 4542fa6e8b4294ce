"""PLATIPUS's ambiguous 1-D regression (Finn, Xu & Levine 2018, arXiv 1806.02817 §5; as LEO's §4.1 describes it):
each task is a sine or a line, in equal proportion, observed with Gaussian noise, so that a few support points may
fit either. Not MAML's sinusoid: its numbers may not be pooled with it.

A task is y = A·sin(x + φ) + ε with A ~ U[amplitude], φ ~ U[phase] (a fraction `sine_fraction` of the tasks), else
y = a·x + b + ε with a ~ U[slope], b ~ U[intercept]; x ~ U[x_range], ε ~ N(0, noise²). The ranges are the
reimplementations' (cnguyen10/few_shot_meta_learning: A ∈ [0.1, 5], φ ∈ [0, π], a, b ∈ [−3, 3], x ∈ [−5, 5], half
sines); the paper's appendix was not read here. Query targets are noisy unless `noiseless_queries`.
"""
from __future__ import annotations

from suite.lazy import lazy
from suite.protocol.schema import Field, ManifestError
from suite.tasks import bmaml_sinusoid
from suite.tasks.base import TaskBatch
from suite.tasks.sinusoid import loss_reduction, loss_scale, output_dim, support_points  # noqa: F401 (regression's)

FIELDS = {
    "amplitude": Field("range", doc="[low, high] of the sine's uniform amplitude A"),
    "phase": Field("range", doc="[low, high] of the sine's uniform phase φ, in radians"),
    "slope": Field("range", doc="[low, high] of the line's uniform slope a"),
    "intercept": Field("range", doc="[low, high] of the line's uniform intercept b"),
    "x_range": Field("range", doc="[low, high] of the uniform inputs x"),
    "sine_fraction": Field("float", doc="the probability that a task is a sine (else a line)"),
    "noise": Field("float", doc="std of the Gaussian noise on the targets (LEO §4.1 on PLATIPUS: 0.3)"),
    "noiseless_queries": Field("bool", doc="query targets without noise"),
}

torch = lazy("torch")

# Bump when a change alters the tasks drawn (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOSS = "mse"
INPUT_DIM = 1
GENERATED = True
CODE_TEST_TASKS = {}


def check(config: dict, where: str):
    if not 0.0 <= config["sine_fraction"] <= 1.0:
        raise ManifestError(f"{where}.sine_fraction: a probability, in [0, 1] (got {config['sine_fraction']})")
    if config["noise"] < 0:
        raise ManifestError(f"{where}.noise: a noise std cannot be negative")


def check_protocol(config: dict, model: dict, uses: list, where: str):
    if model["kind"] != "mlp":
        raise ManifestError(f"{where}: 1-D regression needs the mlp model")


class Tasks:
    provenance = None  # generated: the same for every run

    def __init__(self, amplitude, phase, slope, intercept, x_range, sine_fraction, noise, noiseless_queries,
                 data_dir=None):
        self.amplitude, self.phase, self.slope, self.intercept = amplitude, phase, slope, intercept
        self.x_range, self.sine_fraction, self.noise = x_range, sine_fraction, noise
        self.noiseless_queries = noiseless_queries

    _uniform = staticmethod(bmaml_sinusoid.Tasks._uniform)

    def _functions(self, n_tasks: int, generator):
        """(is_sine [n, 1, 1], f: x [n, points, 1] -> the noiseless targets), drawn in a fixed order."""
        is_sine = torch.rand((n_tasks, 1, 1), generator=generator, dtype=torch.float64) < self.sine_fraction
        amplitude = self._uniform((n_tasks, 1, 1), self.amplitude, generator)
        phase = self._uniform((n_tasks, 1, 1), self.phase, generator)
        slope = self._uniform((n_tasks, 1, 1), self.slope, generator)
        intercept = self._uniform((n_tasks, 1, 1), self.intercept, generator)
        return is_sine, lambda x: torch.where(is_sine, amplitude * torch.sin(x + phase), slope * x + intercept)

    def sample(self, n_tasks: int, shots: int, queries: int, generator: "torch.Generator", split: str) -> TaskBatch:
        """`n_tasks` tasks with `shots` support and `queries` query points, every split from the same distribution."""
        _, f = self._functions(n_tasks, generator)
        x = self._uniform((n_tasks, shots + queries, 1), self.x_range, generator)
        clean = f(x)
        noisy = clean + self.noise * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
        y = torch.cat([noisy[:, :shots], (clean if self.noiseless_queries else noisy)[:, shots:]], 1)
        x, y = x.float(), y.float()
        return TaskBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])

    def curve(self, generator: "torch.Generator", points: int):
        """(x, y) of the noiseless function that sample(1, ...) of a test task draws with a generator in this state,
        on an even grid over x_range (for figures)."""
        _, f = self._functions(1, generator)
        x = torch.linspace(*self.x_range, points, dtype=torch.float64).view(1, points, 1)
        return x[0].float(), f(x)[0].float()
