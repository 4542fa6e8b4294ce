"""Meta-batches drawn ahead of the step, in worker processes (`suite run --prefetch N`).

The tasks of training iteration i come from a generator seeded by (seed, i) alone (suite.training.loop), so any
process can draw them: a worker draws iteration i's tasks exactly as the training's own process would, and hands
back the tasks and the generator's state after the draw (which the step goes on using, e.g. Reptile's inner
mini-batches). The numbers are those of drawing in place, bit for bit; only the time moves. On a CPU whose cores all
train that time is not saved, so the default is none; on a GPU, drawing a 5-way Omniglot meta-batch (4-8 ms on the
CPU) would otherwise leave the device idle each iteration, and a few workers keep the next batches ready.
"""
from __future__ import annotations

import os
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from suite.tasks.base import seeded_generator

PREFETCH = "SUITE_PREFETCH"  # environment variable: worker processes per training (set by `suite run --prefetch`)
AHEAD = 4  # meta-batches each worker keeps ready (DataLoader's prefetch_factor)


def prefetch_workers() -> int:
    """The worker processes each training draws its meta-batches in (PREFETCH; 0: in the training's process)."""
    return int(os.environ.get(PREFETCH) or 0)


def draw(family, shape: tuple[int, int, int], seed: int, iteration: int):
    """(iteration's training tasks, its generator after drawing them); `shape`: (tasks, shots, queries)."""
    generator = seeded_generator(seed, iteration)
    return family.sample(*shape, generator, split="train"), generator


class _Draws(Dataset):
    """Item i: the draw of iteration start + i, with the generator as its state (a tensor, for the way back)."""

    def __init__(self, family, shape, seed: int, start: int, stop: int):
        self.family, self.shape, self.seed, self.start, self.stop = family, shape, seed, start, stop

    def __len__(self):
        return self.stop - self.start

    def __getitem__(self, i):
        tasks, generator = draw(self.family, self.shape, self.seed, self.start + i)
        return tasks, generator.get_state()


def meta_batches(family, shape: tuple[int, int, int], seed: int, start: int, stop: int,
                 workers: int) -> Iterator[tuple[int, object, torch.Generator]]:
    """(iteration, its tasks, its generator after the draw) for iterations start..stop−1, drawn here (`workers` 0)
    or by that many forked worker processes, in order."""
    if workers == 0 or start >= stop:
        for iteration in range(start, stop):
            yield iteration, *draw(family, shape, seed, iteration)
        return
    # fork: the workers share the family's data (Omniglot's 25 MB of images) instead of unpickling a copy each
    loader = DataLoader(_Draws(family, shape, seed, start, stop), batch_size=None, num_workers=workers,
                        prefetch_factor=AHEAD, multiprocessing_context="fork")
    for i, (tasks, state) in enumerate(loader):
        generator = torch.Generator()
        generator.set_state(state)
        yield start + i, tasks, generator
