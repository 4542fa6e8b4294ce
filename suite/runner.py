"""Train → config.json → evaluate → results.json, for each run and seed of a claim.

Training checkpoints atomically every `checkpoint_every` iterations and resumes from the last checkpoint. The
tasks of iteration i come from a generator seeded by (seed, i) alone, so a resumed run repeats exactly the
computation of an uninterrupted one.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from suite.algorithms import make_learner
from suite.evaluate import evaluate
from suite.io import atomic_torch_save, atomic_write_bytes, atomic_write_json
from suite.manifest import RunConfig
from suite.models import FunctionalModel
from suite.tasks import FAMILIES, make_tasks, seeded_generator

RESULTS_ENV = "SUITE_RESULTS"
DEFAULT_RESULTS = "results"


class RunError(RuntimeError):
    """A run cannot start or continue as asked (bad device, a result that would be overwritten, ...)."""


def results_root(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)


def run_dir(root: Path, cfg: RunConfig) -> Path:
    """results/<claim>/<profile>/<run>/seed<N>: config.json and results.json (kept in git)."""
    return root / cfg.claim / cfg.profile / cfg.run / f"seed{cfg.seed}"


def checkpoint_dir(root: Path, cfg: RunConfig) -> Path:
    """checkpoints/<claim>/<profile>/<run>/seed<N>, beside the results folder: latest.pt while training, final.pt
    after (large binaries: cached by DVC, not kept in git)."""
    return root.resolve().parent / "checkpoints" / cfg.claim / cfg.profile / cfg.run / f"seed{cfg.seed}"


def curve_file(root: Path, cfg: RunConfig) -> Path:
    """results/plots/<claim>/<profile>/<run>-seed<N>.csv: the learning curve, as DVC plots read it."""
    return root / "plots" / cfg.claim / cfg.profile / f"{cfg.run}-seed{cfg.seed}.csv"


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RunError(f"--device {spec}: no CUDA device is available here (use --device cpu or auto)")
        index = spec.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise RunError(f"--device {spec}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 ...)")
        return torch.device(spec)
    raise RunError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")


def choose_vectorize(model: FunctionalModel, device: torch.device) -> bool:
    """vmap over tasks wherever it is faster: always on GPU; on CPU only without convolutions, where vmap
    made Conv4 several times slower than a per-task loop (measured by `suite bench`)."""
    return device.type == "cuda" or not model.has_conv


def git_state(where: Path) -> dict:
    """Commit of the checkout at `where`, and whether its tracked files (results/ aside) differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=30)

    head = git("rev-parse", "HEAD")
    if head.returncode:
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {"git_commit": head.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def build(cfg: RunConfig, data_dir: Path):
    family = FAMILIES[cfg.task["family"]]
    model = FunctionalModel(cfg.model, in_dim=family.INPUT_DIM, out_dim=family.output_dim(cfg.task),
                            loss=family.LOSS, loss_scale=family.loss_scale(cfg.task))
    return make_tasks(cfg.task, data_dir), model


def _read_hash(path: Path):
    try:
        return json.loads(path.read_text()).get("config_hash")
    except (OSError, ValueError):
        return None


def check_not_overwriting(out: Path, ckpts: Path, cfg: RunConfig, overwrite: bool):
    """Refuse to mix a new config into folders holding another config's results, unless asked to replace them."""
    stale = []
    for name in ("config.json", "results.json"):
        h = _read_hash(out / name)
        if h is not None and h != cfg.hash:
            stale.append(f"{out / name} (config {h})")
    for name in ("latest.pt", "final.pt"):
        if (ckpts / name).exists() and torch.load(ckpts / name, weights_only=False).get("config_hash") != cfg.hash:
            stale.append(f"{ckpts / name}")
    if stale and not overwrite:
        raise RunError(f"claim {cfg.claim!r}, run {cfg.run!r}, seed {cfg.seed}: {stale[0]} comes from another "
                       f"configuration than the manifest's (config {cfg.hash}). Pass --overwrite to replace it.")
    if stale:
        for name in ("config.json", "results.json"):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(ckpts, ignore_errors=True)


def existing_result(root: Path, cfg: RunConfig) -> dict | None:
    """The finished result of exactly this configuration, if there is one."""
    path = run_dir(root, cfg) / "results.json"
    if _read_hash(path) == cfg.hash:
        return json.loads(path.read_text())
    return None


def train_and_evaluate(cfg: RunConfig, root: Path, device: torch.device, code: dict, data_dir: Path,
                       overwrite: bool = False, progress: bool = True) -> dict:
    """Train (resuming from a checkpoint), evaluate and write results.json. `code` is git_state() taken when the
    process started: the code that runs is the code that was loaded then."""
    out, ckpts = run_dir(root, cfg), checkpoint_dir(root, cfg)
    check_not_overwriting(out, ckpts, cfg, overwrite)
    if (out / "results.json").exists():
        if not overwrite:
            return json.loads((out / "results.json").read_text())
        (out / "results.json").unlink()
        shutil.rmtree(ckpts, ignore_errors=True)
    atomic_write_json(out / "config.json", cfg.to_json())

    family, model = build(cfg, data_dir)
    vectorize = choose_vectorize(model, device)
    params = model.init_params(cfg.seed, device=device)
    learner = make_learner(cfg.algorithm, model, params, cfg.hyperparameters, vectorize)
    iterations = cfg.hyperparameters["iterations"]
    every, log_every = cfg.execution["checkpoint_every"], cfg.execution["log_every"]
    ckpt_path = ckpts / "latest.pt"

    start, curve, elapsed, resumed_at = 0, {"iteration": [], "loss": []}, 0.0, []
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        learner.load_state_dict(ckpt["learner"])
        start, curve, elapsed = ckpt["iteration"], ckpt["curve"], ckpt["elapsed"]
        resumed_at = ckpt["resumed_at"] + [start]

    n_tasks, shots, queries = learner.task_shape()
    began, window = time.perf_counter(), []
    bar = tqdm(total=iterations, initial=start, desc=f"{cfg.claim}/{cfg.run} seed {cfg.seed}", unit="it",
               disable=not progress, mininterval=1.0, dynamic_ncols=True)
    for it in range(start, iterations):
        generator = seeded_generator(cfg.seed, it)
        tasks = family.sample(n_tasks, shots, queries, generator, split="train").to(device)
        window.append(learner.step(tasks, it, generator))
        done = it + 1
        if done % log_every == 0 or done == iterations:
            curve["iteration"].append(done)
            curve["loss"].append(sum(window) / len(window))
            window = []
            bar.set_postfix(loss=f"{curve['loss'][-1]:.4g}", refresh=False)
        bar.update(1)
        if done % every == 0 and done < iterations:
            atomic_torch_save(ckpt_path, {
                "config_hash": cfg.hash, "iteration": done, "learner": learner.state_dict(), "curve": curve,
                "elapsed": elapsed + time.perf_counter() - began, "resumed_at": resumed_at})
    bar.close()
    train_time = elapsed + time.perf_counter() - began
    atomic_torch_save(ckpts / "final.pt", {"config_hash": cfg.hash, "params": learner.state_dict()["params"]})

    eval_began = time.perf_counter()
    result = evaluate(model, learner.params, family, cfg.evaluation, device, vectorize, cfg.execution["eval_chunk"],
                      progress)
    eval_time = time.perf_counter() - eval_began

    record = {
        "claim": cfg.claim, "profile": cfg.profile, "run": cfg.run, "seed": cfg.seed, "algorithm": cfg.algorithm,
        "config_hash": cfg.hash,
        "metrics": result["metrics"],
        "finetune_lr": result["finetune_lr"],
        "lr_search": result["lr_search"],
        "training": {"iterations": iterations, "curve": curve, "resumed_at": resumed_at},
        "provenance": {
            **code,
            "config_hash": cfg.hash,
            "profile": cfg.profile,
            "seed": cfg.seed,
            "device": str(device),
            "device_name": device_name(device),
            "vectorized_over_tasks": vectorize,
            "train_seconds": round(train_time, 2),
            "eval_seconds": round(eval_time, 2),
            "gpu_hours": round((train_time + eval_time) / 3600, 4) if device.type == "cuda" else 0.0,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": {"suite": _suite_version(), "python": platform.python_version(), "torch": torch.__version__,
                         "numpy": np.__version__},
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        },
        "config": cfg.to_json(),
        "examples": result["examples"],
        "episodes": result["episodes"],
    }
    atomic_write_bytes(curve_file(root, cfg), ("iteration,loss\n" + "".join(
        f"{i},{loss!r}\n" for i, loss in zip(curve["iteration"], curve["loss"]))).encode())
    atomic_write_json(out / "results.json", record)
    ckpt_path.unlink(missing_ok=True)
    return record


def _suite_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("suite")
    except PackageNotFoundError:
        return "unknown"
