"""A resource measurement (suite.protocol.fields.RESOURCES): the memory and the seconds of a run's meta-iterations
from its initial parameters, as metrics like any other (memory_mib, seconds), so that a claim's relations can be
about them.

Memory is counted tensor by tensor (`TensorPeak`), not read from the process (its resident set mixes in the
libraries, the allocator's caching and whatever earlier work freed) or from CUDA's allocator (which a CPU lacks):
the peak of the bytes held by the storages the iteration creates, so it is exact, deterministic, and the same on
every device."""
from __future__ import annotations

import math
import time
import weakref
from pathlib import Path

from suite.lazy import lazy
from suite.protocol.components import algorithms
from suite.protocol.fields import INTERVALS
from suite.tasks.base import seeded_generator

torch = lazy("torch")

# Bump when a change alters what the measurement computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1


def tensor_peak():
    """A context manager whose `.peak` is, on exit, the most bytes the tensor storages created inside it held at
    once: every operator's outputs pass through it (a TorchDispatchMode); a storage is counted from its first
    appearance until it is freed (a weakref finalizer), views and in-place results once."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class TensorPeak(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live = self.peak = 0
            self.held = {}  # data pointer -> its finalizer

        def _freed(self, pointer: int, nbytes: int):
            self.live -= nbytes
            self.held.pop(pointer, None)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if not isinstance(t, torch.Tensor):
                    continue
                storage = t.untyped_storage()
                pointer, nbytes = storage.data_ptr(), storage.nbytes()
                if nbytes == 0 or pointer in self.held:
                    continue
                self.held[pointer] = weakref.finalize(storage, self._freed, pointer, nbytes)
                self.live += nbytes
                self.peak = max(self.peak, self.live)
            return out

    return TensorPeak()


def measure_training(cfg, device, path: str, data_dir: Path) -> dict:
    """{'memory_mib': the first iteration's tensor peak, 'seconds': [each later iteration], 'loss': [each
    iteration's logged loss], 'params': the parameters after them}; the tasks of iteration i are the training
    loop's (seeded by (seed, i))."""
    from suite.training.run import build, initial_params, make_learner

    family, model = build(cfg, data_dir)
    learner = make_learner(cfg, model, initial_params(cfg, model, device), path)
    n_tasks, shots, queries = algorithms()[cfg.algorithm].task_shape(cfg.hyperparameters)

    def clock():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    seconds, losses, memory = [], [], None
    for it in range(cfg.hyperparameters["iterations"]):
        generator = seeded_generator(cfg.seed, it)
        tasks = family.sample(n_tasks, shots, queries, generator, split="train").to(device)
        if it == 0:  # counted, not timed: the counting costs time on every operator
            with tensor_peak() as counted:
                losses.append(learner.step(tasks, it, generator))
            memory = counted.peak / 2**20
            continue
        began = clock()
        losses.append(learner.step(tasks, it, generator))
        seconds.append(clock() - began)
    return {"memory_mib": memory, "seconds": seconds, "loss": losses, "params": learner.state_dict()["params"]}


def resource_metrics(measured: dict, interval: str) -> dict:
    """The results' metrics: memory_mib (one exact count) and seconds (mean ± the interval over iterations)."""
    s = measured["seconds"]
    mean = sum(s) / len(s)
    std = math.sqrt(sum((x - mean) ** 2 for x in s) / len(s))
    return {"memory_mib": {"mean": measured["memory_mib"], "std": 0.0, "ci95": 0.0, "n": 1, "interval_kind": "exact"},
            "seconds": {"mean": mean, "std": std, "ci95": INTERVALS[interval] * std / math.sqrt(len(s)), "n": len(s),
                        "interval_kind": "ci95-iterations"}}
