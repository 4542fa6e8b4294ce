"""The training loop: resumes from latest.pt, checkpoints every `checkpoint_every` iterations, and leaves final.pt
with the parameters and the training's record (curve, time, and each segment's code and device). A model selection
that validates (suite.protocol.fields.SELECTION) scores the model on its fixed validation tasks every `every`
iterations and after the last, keeps the k best as candidates/<iteration>.pt beside the checkpoints, and leaves them
in final.pt: the scores are in the checkpointed curve, so a resumed run keeps the same candidates.

The tasks of iteration i come from a generator seeded by (seed, i) alone, so a resumed run repeats exactly the
computation of an uninterrupted one, and worker processes can draw them ahead of the step (suite.training.prefetch).
(Its numerics version is suite.training.identity.TRAINING_LOOP_VERSION.)

A time limit (`suite run --time-limit`, which sets STOP_AT for this process and its workers) stops a training at the
first iteration boundary past it: it checkpoints there and raises TimeLimitReached, and the same command resumes it.
"""
from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from suite.protocol.components import algorithms
from suite.protocol.fields import KEPT, selects_by_validation
from suite.training.checkpoints import load_checkpoint, save_checkpoint
from suite.training.evaluate import curve_point, validation_point
from suite.training.graphs import CapturedStep, cuda_graph_requested
from suite.training.layout import RunError
from suite.training.parking import CANDIDATES, FINAL, LATEST
from suite.training.prefetch import meta_batches, prefetch_workers
from suite.training.provenance import device_name, versions

STOP_AT = "SUITE_STOP_AT"  # environment variable: the time (seconds since the epoch) at which trainings stop


class TimeLimitReached(RunError):
    """A training stopped at the time limit and checkpointed: run it again to resume."""


def stop_time() -> float:
    """When trainings must stop (STOP_AT), or infinity."""
    return float(os.environ.get(STOP_AT) or "inf")


def curve_point_due(cfg, done: int) -> bool:
    """Whether training takes a learning-curve point after its `done`-th iteration (and always after its last)."""
    during = cfg.evaluation.get("during_training")
    return bool(during) and (done % during["every"] == 0 or done == cfg.hyperparameters["iterations"])


def learning_curve_point(cfg, model, learner, family, device, path: str, done: int) -> tuple[str, float]:
    from_training = cfg.evaluation["optimizer_state"] == "from-training"
    return curve_point(model, learner.params, family, cfg.evaluation, device, path, cfg.execution["eval_chunk"],
                       done, learner.inner_state if from_training else None, learner.schedule)


def validation_due(cfg, done: int) -> bool:
    """Whether training validates for model selection after its `done`-th iteration (and always after its last)."""
    return selects_by_validation(cfg.evaluation) and (
        done % cfg.evaluation["selection"]["every"] == 0 or done == cfg.hyperparameters["iterations"])


def ranked(validation: dict) -> list[tuple[int, float]]:
    """(iteration, value) of every validation, best first; of equal values the later first (the order of
    HowToTrainYourMAMLPytorch's np.argsort(val_acc)[::-1] for a stable sort)."""
    points = list(zip(validation["iteration"], validation["value"]))
    sign = 1 if validation["metric"].startswith("mse") else -1
    return sorted(points, key=lambda p: (sign * p[1], -p[0]))


def keep_candidates(folder: Path, learner, done: int, validation: dict, k: int):
    """Save the model just validated if it is among the k best so far, and drop any that no longer is."""
    best = {it for it, _ in ranked(validation)[:k]}
    folder.mkdir(parents=True, exist_ok=True)
    if done in best:
        save_checkpoint(folder / f"{done}.pt", {"params": learner.state_dict()["params"]})
    for f in folder.glob("*.pt"):
        if int(f.stem) not in best:
            f.unlink()


def selected_candidates(folder: Path, validation: dict, k: int, device) -> list[dict]:
    """The k best candidates, best first: {iteration, value, params}."""
    best = ranked(validation)[:k]
    missing = [str(folder / f"{it}.pt") for it, _ in best if not (folder / f"{it}.pt").is_file()]
    if missing:
        raise RunError(f"the model selection's candidate snapshots {', '.join(missing)} are missing: the training "
                       "resumed from a checkpoint that came without its candidates/ (suite park carries them); "
                       "retrain it with --overwrite")
    return [{"iteration": it, "value": value, "params": load_checkpoint(folder / f"{it}.pt", device)["params"]}
            for it, value in best]


def train_with_checkpoints(cfg, family, model, learner, ckpts: Path, device, path: str, code: dict,
                           progress: dict | None, on_checkpoint=None) -> dict:
    """Train to the end from latest.pt (if any) and leave final.pt; `on_checkpoint(iteration, seconds,
    gpu_seconds, segments, curve)` hears of each checkpoint, and of the one resumed from (the run's progress.json,
    whose curve so far the report draws while the training is under way)."""
    iterations = cfg.hyperparameters["iterations"]
    every, log_every = cfg.execution["checkpoint_every"], cfg.execution["log_every"]
    ckpt_path = ckpts / LATEST
    segment = {**code, "device": str(device), "device_name": device_name(device), "versions": versions(),
               "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    start, curve, elapsed, gpu_seconds, resumed_at, segments = 0, {"iteration": [], "loss": []}, 0.0, 0.0, [], []
    restored_window = []
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, device)
        learner.load_state_dict(ckpt["learner"])
        start, curve, elapsed, gpu_seconds = ckpt["iteration"], ckpt["curve"], ckpt["elapsed"], ckpt["gpu_seconds"]
        resumed_at, segments = ckpt["resumed_at"] + [start], ckpt["segments"]
        restored_window = ckpt.get("window", [])  # losses since the last logged point (a stop between two)
    step = learner.step
    if cuda_graph_requested() and learner.capturable:
        step, segment["cuda_graph"] = CapturedStep(learner, device).step, True
    elif cuda_graph_requested():
        tqdm.write(f"{cfg.label}: {cfg.algorithm}'s step is not captured (its learner is "
                   "not capturable); it runs eagerly")
    segments = segments + [{**segment, "from_iteration": start}]
    if start and on_checkpoint:
        on_checkpoint(start, elapsed, gpu_seconds, segments[:-1], curve)
    on_gpu = device.type == "cuda"

    n_tasks, shots, queries = algorithms()[cfg.algorithm].task_shape(cfg.hyperparameters)
    from_training = cfg.evaluation.get("optimizer_state") == "from-training"
    candidates = ckpts / CANDIDATES
    k = max(cfg.evaluation["selection"].get("k", 1), KEPT) if selects_by_validation(cfg.evaluation) else 0
    began, window, stop_at = time.perf_counter(), restored_window, stop_time()

    def save_latest(done: int):
        spent = time.perf_counter() - began
        segments[-1].update(iterations=done - start, seconds=round(spent, 2))  # this segment's pace
        save_checkpoint(ckpt_path, {
            "iteration": done, "learner": learner.state_dict(), "curve": curve, "elapsed": elapsed + spent,
            "gpu_seconds": gpu_seconds + (spent if on_gpu else 0.0), "resumed_at": resumed_at,
            "segments": segments, "window": window})
        if on_checkpoint:
            on_checkpoint(done, elapsed + spent, gpu_seconds + (spent if on_gpu else 0.0), segments, curve)

    bar = tqdm(total=iterations, initial=start, desc=cfg.label, unit="it",
               disable=progress is None, mininterval=1.0, dynamic_ncols=True, **(progress or {}))
    batches = meta_batches(family, (n_tasks, shots, queries), cfg.seed, start, iterations, prefetch_workers())
    for it, tasks, generator in batches:
        if time.time() >= stop_at:
            if it > start:
                save_latest(it)
            bar.close()
            raise TimeLimitReached(f"{cfg.label}: stopped at the time limit after "
                                   f"iteration {it:,} of {iterations:,} (checkpoint {ckpt_path}); the same command "
                                   "resumes it")
        window.append(step(tasks.to(device), it, generator))
        done = it + 1
        if curve_point_due(cfg, done):
            name, value = learning_curve_point(cfg, model, learner, family, device, path, done)
            curve.setdefault("test", {"metric": name, "iteration": [], "value": []})
            curve["test"]["iteration"].append(done)
            curve["test"]["value"].append(value)
        if validation_due(cfg, done):
            name, value = validation_point(model, learner.params, family, cfg.evaluation, device, path,
                                           cfg.execution["eval_chunk"], learner.inner_state if from_training else None,
                                           learner.schedule)
            curve.setdefault("validation", {"metric": name, "iteration": [], "value": []})
            curve["validation"]["iteration"].append(done)
            curve["validation"]["value"].append(value)
            keep_candidates(candidates, learner, done, curve["validation"], k)
        if done % log_every == 0 or done == iterations:
            curve["iteration"].append(done)
            curve["loss"].append(sum(window) / len(window))
            window = []
            bar.set_postfix(loss=f"{curve['loss'][-1]:.4g}", refresh=False)
        bar.update(1)
        if done % every == 0 and done < iterations:
            save_latest(done)
    bar.close()
    spent = time.perf_counter() - began
    segments[-1].update(iterations=iterations - start, seconds=round(spent, 2))
    training = {"curve": curve, "seconds": elapsed + spent, "gpu_seconds": gpu_seconds + (spent if on_gpu else 0.0),
                "resumed_at": resumed_at, "segments": segments}
    selected = selected_candidates(candidates, curve["validation"], k, device) if k else []
    save_checkpoint(ckpts / FINAL, {"params": learner.state_dict()["params"], "training": training,
                                    "inner_state": learner.inner_state, "candidates": selected,
                                    "buffers": getattr(learner, "buffers", None)})
    ckpt_path.unlink(missing_ok=True)
    if candidates.is_dir():
        shutil.rmtree(candidates)
    return training
