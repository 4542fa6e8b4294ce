"""Sensitivity variants of a claim's runs (the manifest's `sensitivity`): evaluated on the trained models that are
here, and trained, on request, where a variant changes training or its run's model is missing."""
from __future__ import annotations

from pathlib import Path

import torch

from suite.protocol import RunConfig
from suite.training.layout import existing_result
from suite.training.parallel import train_and_evaluate_all
from suite.training.run import NotTrained, train_and_evaluate


def run_variants(configs: list[RunConfig], root: Path, device: torch.device, code: dict, data_dir: Path,
                 overwrite: bool = False, progress: bool = True, jobs: int = 1, path: str = "auto",
                 train: bool = False) -> dict[tuple[str, str], list[str]]:
    """Evaluate each variant on its trained model: its run's when it changes evaluation alone, its own when it
    retrains. With `train`, the trainings missing are made first, `jobs` at once, one per distinct training and
    seed (two variants that train alike share one). Returns, per (claim, variant) left unmeasured for want of a
    trained model, the runs and seeds it lacks ("run seed N")."""
    firsts: dict[tuple, RunConfig] = {}
    if train:
        for cfg in configs:
            if overwrite or existing_result(root, cfg) is None:
                firsts.setdefault((cfg.claim, cfg.profile, cfg.run, cfg.seed, cfg.training_key), cfg)
        train_and_evaluate_all(list(firsts.values()), root, device, code, data_dir, overwrite, progress, jobs, path)
    missing: dict[tuple[str, str], list[str]] = {}
    for cfg in configs:
        try:
            again = overwrite and all(cfg is not first for first in firsts.values())  # not made just now
            train_and_evaluate(cfg, root, device, code, data_dir, again,
                               {} if progress else None, path, may_train=False)
        except NotTrained:
            missing.setdefault((cfg.claim, cfg.variant), []).append(f"{cfg.run} seed {cfg.seed}")
    return missing
