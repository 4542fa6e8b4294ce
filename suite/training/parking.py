"""Parked checkpoints: a training in progress carried to another machine through git.

A paper training can outlive the machine it runs on (a lent GPU for ten minutes, a session that ends). Its
checkpoints live in checkpoints/, which git ignores: large, and rewritten every few minutes. `suite park` copies
the latest.pt of each training in progress (each progress.json under results/) to the same relative path under
checkpoints-in-progress/, which git tracks; committed, it travels with the repository. On any machine, the runner
resumes a training whose latest.pt is not in checkpoints/ from its parked copy, and deletes the copy once the run's
results.json is written, so the commit that lands the result also removes the binary.

    checkpoints/<claim>/<profile>/<run>/seed<N>/<training identity>/latest.pt              this machine's
    checkpoints-in-progress/<claim>/<profile>/<run>/seed<N>/<training identity>/latest.pt  parked, in git
"""
from __future__ import annotations

import shutil
from pathlib import Path

from suite.io import atomic_write_bytes
from suite.training.layout import CHECKPOINTS, checkpoint_base

PARKED = "checkpoints-in-progress"
LATEST = "latest.pt"


def parked_dir(ckpts: Path) -> Path:
    """The parked twin of a checkpoint folder (suite.training.layout.checkpoint_dir)."""
    base = checkpoint_base(ckpts)
    return base / PARKED / ckpts.relative_to(base / CHECKPOINTS)


def has_started(ckpts: Path) -> bool:
    """A training under way in this folder, here or parked."""
    return (ckpts / LATEST).is_file() or (parked_dir(ckpts) / LATEST).is_file()


def unpark(ckpts: Path) -> bool:
    """Before training: copy the parked latest.pt into a checkpoint folder that has neither latest.pt nor final.pt
    (this machine's own checkpoint, when there is one, is the newer). True when it did."""
    source = parked_dir(ckpts) / LATEST
    if (ckpts / LATEST).exists() or (ckpts / "final.pt").exists() or not source.is_file():
        return False
    atomic_write_bytes(ckpts / LATEST, source.read_bytes())
    return True


def discard_parked(ckpts: Path):
    """After the run's results are written: its parked copy, and the folders it leaves empty."""
    folder = parked_dir(ckpts)
    shutil.rmtree(folder, ignore_errors=True)
    base = checkpoint_base(ckpts)
    for parent in folder.parents:
        if parent == base:
            break
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break


def checkpoint_folder(base: Path, progress: dict) -> Path:
    """The checkpoint folder a progress.json names (relative to the repository: checkpoints/...)."""
    return base / progress["checkpoint"]


def where_resumable(base: Path, progress: dict) -> str | None:
    """'here' when this machine holds the training's latest.pt, 'parked' when only its parked copy is here, None
    when neither is: the training cannot resume, whatever its progress.json says."""
    folder = checkpoint_folder(base, progress)
    if (folder / LATEST).is_file():
        return "here"
    return "parked" if (parked_dir(folder) / LATEST).is_file() else None


def park(base: Path, progress: dict) -> Path | None:
    """Copy a training's latest.pt to its parked twin (replacing an older one); the copy's path, or None when this
    machine has no latest.pt to park."""
    folder = checkpoint_folder(base, progress)
    if not (folder / LATEST).is_file():
        return None
    dest = parked_dir(folder) / LATEST
    atomic_write_bytes(dest, (folder / LATEST).read_bytes())
    return dest
