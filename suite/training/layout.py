"""Where a run's files go, and what is already there:

    results/<claim>/<profile>/<run>/seed<N>/{config,results}.json        kept in git
    results/<claim>/<profile>/<run>/seed<N>/variants/<variant>/...         a sensitivity variant of the run
    results/plots/<claim>/<profile>/<run>-seed<N>.csv                      the learning curve, as DVC plots read it
    checkpoints/<claim>/<profile>/<run>/seed<N>/<training identity>/       latest.pt while training, final.pt after

A variant that leaves training alone finds its run's final.pt in the same folder (the same training identity); one
that retrains gets a folder of its own identity beside it, marked as a variant's so the run does not remove it.
"""
from __future__ import annotations

import json
from pathlib import Path

from suite.protocol.manifest import RunConfig
from suite.training.identity import is_current, training_identity


PROGRESS = "progress.json"  # a run's training in progress, beside its config.json (suite.training.run)


class RunError(RuntimeError):
    """A run cannot start or continue as asked (bad device, a result that would be overwritten, ...)."""


def run_dir(root: Path, cfg: RunConfig) -> Path:
    out = root / cfg.claim / cfg.profile / cfg.run / f"seed{cfg.seed}"
    return out / "variants" / cfg.variant if cfg.variant else out


def curve_file(root: Path, cfg: RunConfig) -> Path:
    name = f"{cfg.run}~{cfg.variant}" if cfg.variant else cfg.run
    return root / "plots" / cfg.claim / cfg.profile / f"{name}-seed{cfg.seed}.csv"


CHECKPOINTS = "checkpoints"  # beside the results folder: checkpoint_dir
VARIANT_MARK = "variant"  # in a checkpoint folder a variant trained: the run's cleanup keeps it


def checkpoint_dir(root: Path, cfg: RunConfig, data: dict | None, path: str) -> Path:
    """Beside the results folder (large binaries: cached by DVC, not kept in git). Named by the training identity
    (with the path that trains), so two trainings never share a folder and an unchanged one — whatever happened to
    the source files — is reused."""
    return (root.resolve().parent / CHECKPOINTS / cfg.claim / cfg.profile / cfg.run / f"seed{cfg.seed}"
            / training_identity(cfg, data, path))


def checkpoint_base(ckpts: Path) -> Path:
    """The folder that holds checkpoints/ (beside results/) of a checkpoint_dir."""
    return ckpts.parents[5]


def read_record(path: Path) -> dict | None:
    """A JSON record of a run (config, results, progress), or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_not_overwriting(out: Path, cfg: RunConfig, overwrite: bool):
    """Refuse to replace the results of another configuration or other numerics versions, unless asked to."""
    stale = []
    for name in ("config.json", "results.json"):
        record = read_record(out / name)
        if record is not None and not is_current(record, cfg):
            stale.append(f"{out / name} (config {record.get('config_hash')}, numerics "
                         f"{record.get('numerics') or 'of version 1'})")
    if stale and not overwrite:
        raise RunError(f"claim {cfg.claim!r}, run {cfg.run!r}, seed {cfg.seed}: {stale[0]} comes from another "
                       f"configuration or numerics than the manifest's and the code's (config {cfg.hash}). Pass "
                       "--overwrite to replace it.")
    for name in ("config.json", "results.json"):
        if stale:
            (out / name).unlink(missing_ok=True)


def existing_result(root: Path, cfg: RunConfig) -> dict | None:
    """The finished result of exactly this configuration and numerics, if there is one."""
    record = read_record(run_dir(root, cfg) / "results.json")
    return record if record is not None and is_current(record, cfg) else None
