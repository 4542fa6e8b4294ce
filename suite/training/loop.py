"""The training loop: resumes from latest.pt, checkpoints every `checkpoint_every` iterations, and leaves final.pt
with the parameters and the training's record (curve, time, and each segment's code and device).

The tasks of iteration i come from a generator seeded by (seed, i) alone, so a resumed run repeats exactly the
computation of an uninterrupted one. (Its numerics version is suite.training.identity.TRAINING_LOOP_VERSION.)
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from suite.protocol.components import algorithms
from suite.tasks.base import seeded_generator
from suite.training.checkpoints import load_checkpoint, save_checkpoint
from suite.training.evaluate import curve_point
from suite.training.provenance import device_name, versions


def curve_point_due(cfg, done: int) -> bool:
    """Whether training takes a learning-curve point after its `done`-th iteration (and always after its last)."""
    during = cfg.evaluation.get("during_training")
    return bool(during) and (done % during["every"] == 0 or done == cfg.hyperparameters["iterations"])


def learning_curve_point(cfg, model, learner, family, device, path: str, done: int) -> tuple[str, float]:
    from_training = cfg.evaluation["optimizer_state"] == "from-training"
    return curve_point(model, learner.params, family, cfg.evaluation, device, path, cfg.execution["eval_chunk"],
                       done, learner.inner_state if from_training else None)


def train_with_checkpoints(cfg, family, model, learner, ckpts: Path, device, path: str, code: dict,
                           progress: dict | None) -> dict:
    iterations = cfg.hyperparameters["iterations"]
    every, log_every = cfg.execution["checkpoint_every"], cfg.execution["log_every"]
    ckpt_path = ckpts / "latest.pt"
    segment = {**code, "device": str(device), "device_name": device_name(device), "versions": versions(),
               "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    start, curve, elapsed, gpu_seconds, resumed_at, segments = 0, {"iteration": [], "loss": []}, 0.0, 0.0, [], []
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, device)
        learner.load_state_dict(ckpt["learner"])
        start, curve, elapsed, gpu_seconds = ckpt["iteration"], ckpt["curve"], ckpt["elapsed"], ckpt["gpu_seconds"]
        resumed_at, segments = ckpt["resumed_at"] + [start], ckpt["segments"]
    segments = segments + [{**segment, "from_iteration": start}]
    on_gpu = device.type == "cuda"

    n_tasks, shots, queries = algorithms()[cfg.algorithm].task_shape(cfg.hyperparameters)
    began, window = time.perf_counter(), []
    bar = tqdm(total=iterations, initial=start, desc=f"{cfg.claim}/{cfg.run} seed {cfg.seed}", unit="it",
               disable=progress is None, mininterval=1.0, dynamic_ncols=True, **(progress or {}))
    for it in range(start, iterations):
        generator = seeded_generator(cfg.seed, it)
        tasks = family.sample(n_tasks, shots, queries, generator, split="train").to(device)
        window.append(learner.step(tasks, it, generator))
        done = it + 1
        if curve_point_due(cfg, done):
            name, value = learning_curve_point(cfg, model, learner, family, device, path, done)
            curve.setdefault("test", {"metric": name, "iteration": [], "value": []})
            curve["test"]["iteration"].append(done)
            curve["test"]["value"].append(value)
        if done % log_every == 0 or done == iterations:
            curve["iteration"].append(done)
            curve["loss"].append(sum(window) / len(window))
            window = []
            bar.set_postfix(loss=f"{curve['loss'][-1]:.4g}", refresh=False)
        bar.update(1)
        if done % every == 0 and done < iterations:
            spent = time.perf_counter() - began
            save_checkpoint(ckpt_path, {
                "iteration": done, "learner": learner.state_dict(), "curve": curve, "elapsed": elapsed + spent,
                "gpu_seconds": gpu_seconds + (spent if on_gpu else 0.0), "resumed_at": resumed_at,
                "segments": segments})
    bar.close()
    spent = time.perf_counter() - began
    training = {"curve": curve, "seconds": elapsed + spent, "gpu_seconds": gpu_seconds + (spent if on_gpu else 0.0),
                "resumed_at": resumed_at, "segments": segments}
    save_checkpoint(ckpts / "final.pt", {"params": learner.state_dict()["params"], "training": training,
                                         "inner_state": learner.inner_state})
    ckpt_path.unlink(missing_ok=True)
    return training
