"""Checkpoints: written atomically, read with a clear error, and one training per folder at a time (a lock)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch

from suite.io import Locked, atomic_write, exclusive_lock
from suite.training.layout import RunError


def save_checkpoint(path: Path, obj):
    atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: Path, device="cpu") -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # a truncated or foreign file: pickle, zip and EOF errors alike
        raise RunError(f"{path}: cannot read this checkpoint ({type(e).__name__}: {e}); delete it to start the "
                       "run again") from None


@contextmanager
def training_lock(ckpts: Path, what: str, variant: bool = False):
    """Hold the run's lock (beside its checkpoint folders) for the block: a second process training the same run
    is a clear error naming the holder. A variant that retrains locks its own training alone."""
    try:
        with exclusive_lock(ckpts.parent / (f"training-{ckpts.name}.lock" if variant else "training.lock")):
            yield
    except Locked as e:
        raise RunError(f"{what} is being trained by another process (PID {e.holder}); wait for it to finish, or "
                       "stop it, before starting it again") from None
