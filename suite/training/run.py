"""One run: train (resuming from a checkpoint), evaluate, write config.json and results.json with provenance."""
from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from suite.algorithms.base import Learner
from suite.io import atomic_write_bytes, atomic_write_json
from suite.models.functional import FunctionalModel
from suite.protocol import PAPER, RunConfig
from suite.protocol.components import algorithms, families
from suite.protocol.fields import RESOURCES, measures_resources, selects_by_validation
from suite.training.checkpoints import load_checkpoint, save_checkpoint, training_lock
from suite.training.evaluate import evaluate, test_split
from suite.training.identity import numerics
from suite.training.layout import (PROGRESS, VARIANT_MARK, RunError, check_not_overwriting, checkpoint_base,
                                   checkpoint_dir, curve_file, existing_result, run_dir)
from suite.training.loop import train_with_checkpoints
from suite.training.parking import (FINAL, discard_parked, has_finished, has_started, keep_trained, kept_dir,
                                    restore_trained, restore_twin, trained_by, twin_under_way, unpark)
from suite.training.paths import PATHS, choose_path
from suite.training.provenance import device_name, versions
from suite.training.resources import measure_training, resource_metrics


def build_model(cfg: RunConfig) -> FunctionalModel:
    """The run's model, its head and loss shaped by the task family (its input widened by the algorithm's extra
    inputs)."""
    family = families()[cfg.task["family"]]
    in_dim = family.INPUT_DIM + algorithms()[cfg.algorithm].extra_inputs(cfg.hyperparameters)
    return FunctionalModel(cfg.model, in_dim=in_dim, out_dim=family.output_dim(cfg.task),
                           loss=family.LOSS, loss_scale=family.loss_scale(cfg.task),
                           loss_reduction=family.loss_reduction(cfg.task))


def build(cfg: RunConfig, data_dir: Path):
    """The run's tasks (their data under `data_dir`) and model; a task of each shape the run draws is drawn once
    first, so that data too small for the protocol (a generated stand-in's images per class) fails here, before
    training, with the run named."""
    family = families()[cfg.task["family"]]
    tasks = family.Tasks(**{k: v for k, v in cfg.task.items() if k != "family"}, data_dir=data_dir)
    _, shots, queries = algorithms()[cfg.algorithm].task_shape(cfg.hyperparameters)
    uses = [("train", shots, queries)]
    if not measures_resources(cfg.evaluation):
        e = cfg.evaluation
        uses += [(test_split(e), e["shots"], e["queries"])] + ([("val", e["shots"], e["queries"])]
                                                         if selects_by_validation(e) else [])
    for split, k, q in uses:
        try:
            tasks.sample(1, k, q, torch.Generator().manual_seed(0), split)
        except ValueError as error:
            raise RunError(f"{describe(cfg)}: its {split} tasks cannot be drawn from this data: {error}") from None
        except KeyError:
            raise RunError(f"{describe(cfg)}: its task family's data has no {split} split") from None
    return tasks, build_model(cfg)


def initial_params(cfg: RunConfig, model, device) -> dict:
    """The parameters the run's training starts from (the algorithm's initial_params)."""
    return algorithms()[cfg.algorithm].initial_params(model, cfg.seed, cfg.hyperparameters, device)


def make_learner(cfg: RunConfig, model, params: dict, path: str) -> Learner:
    return algorithms()[cfg.algorithm].Learner(model, params, cfg.hyperparameters, path)


def resumed_path(root: Path, cfg: RunConfig, data: dict | None) -> str:
    """The path of this run's training in progress, if it has one (its latest.pt, here or parked), else auto: a run
    asked for `auto` resumes on the path it began with, rather than starting afresh on the other."""
    started = [p for p in PATHS if has_started(checkpoint_dir(root, cfg, data, p))]
    return started[0] if started else "auto"


class NotTrained(RunError):
    """A sensitivity variant whose trained model is not here, asked to be evaluated without training."""


class TwinUnderWay(RunError):
    """A run whose training is another run's (the same training identity), under way and not finished."""


def trained_path(root: Path, cfg: RunConfig, data: dict | None) -> str:
    """A path on which this training has finished (its final.pt), else the one it is under way on, else auto: a
    variant is evaluated on its run's trained model whichever path trained it."""
    done = [p for p in PATHS if has_finished(checkpoint_dir(root, cfg, data, p))]
    return done[0] if done else resumed_path(root, cfg, data)


def describe(cfg: RunConfig) -> str:
    return f"claim {cfg.claim!r}, run {cfg.run!r}" + (f", variant {cfg.variant!r}" if cfg.variant else "") + \
        f", seed {cfg.seed}"


def _data_name(record: dict) -> str:
    data = record["provenance"].get("data")
    if not data:
        return "data with no recorded provenance"
    return f"{'generated ' if data.get('generated') else ''}{data.get('dataset')} ({data.get('format')})"


def train_and_evaluate(cfg: RunConfig, root: Path, device: torch.device, code: dict, data_dir: Path,
                       overwrite: bool = False, progress: dict | None = None, path: str = "auto",
                       may_train: bool = True) -> dict:
    """Train (resuming from a checkpoint), evaluate and write results.json. `code` is git_state() taken when the
    process started: the code that runs is the code that was loaded then. `progress`: options of the progress
    bars (tqdm's), None for none. `path`: vmap, loop, grouped, or auto (suite.training.paths). A sensitivity
    variant is evaluated on its trained model when that exists (its run's, unless it retrains); otherwise it is
    trained only if `may_train`, else NotTrained is raised before anything is written."""
    out = run_dir(root, cfg)
    if cfg.variant and not overwrite and (done := existing_result(root, cfg)) is not None:
        return done  # measured already (its trained model need not be here)
    check_not_overwriting(out, cfg, overwrite)
    family, model = build(cfg, data_dir)  # before anything is written: missing data fails here
    # what the tasks are drawn from where that can differ (e.g. the generated stand-in), as JSON will hold it
    data = json.loads(json.dumps(family.provenance))
    if path == "auto":
        path = trained_path(root, cfg, data) if cfg.variant else resumed_path(root, cfg, data)
    path = choose_path(cfg, model, device, path)
    if measures_resources(cfg.evaluation):
        if cfg.variant and cfg.retrains and not may_train:
            raise NotTrained(f"{describe(cfg)}: the variant measures its own configuration; `suite sensitivity "
                             f"--claim {cfg.claim} --variant {cfg.variant} --train` measures it")
        return _measure_and_write(cfg, root, device, code, data_dir, overwrite, data, path)
    ckpts = checkpoint_dir(root, cfg, data, path)
    restore_trained(ckpts)  # a paper training finished on another machine (kept in git)
    if (twin := restore_twin(ckpts)) and "/" in twin:  # or the same training, finished by another run (of any claim)
        tqdm.write(f"{describe(cfg)}: evaluated on {twin}'s training (the same)", file=sys.stderr)
    if cfg.variant and (ckpts / FINAL).is_file():  # evaluation alone: it reads the finished training only
        return _train_evaluate_and_write(cfg, root, device, code, data_dir, overwrite, progress, family, model,
                                         data, ckpts, path)
    if cfg.variant and not may_train:
        raise NotTrained(f"{describe(cfg)}: " + ("the variant retrains" if cfg.retrains else
                         f"evaluated on run {cfg.run!r}'s trained model") + f", and {ckpts / 'final.pt'} is not "
                         f"here; `suite sensitivity --claim {cfg.claim} --variant {cfg.variant} --train` trains it")
    if (twin := twin_under_way(ckpts)) is not None:
        claim, run = twin.split("/") if "/" in twin else (cfg.claim, twin)
        whose = f"run {run!r}" if claim == cfg.claim else f"{claim}'s run {run!r}"
        then = (f"--run {run} --run {cfg.run}` finishes it and then evaluates this run on its model"
                if claim == cfg.claim else f"--run {run}` finishes it; this command then evaluates this run on its "
                "model")
        raise TwinUnderWay(f"{describe(cfg)}: its training is that of {whose} (the same training configuration; the "
                           f"evaluation differs), which is under way; `suite run --claim {claim} --profile "
                           f"{cfg.profile} {then}")
    with training_lock(ckpts, describe(cfg), variant=cfg.variant is not None):  # its folders are ours
        return _train_evaluate_and_write(cfg, root, device, code, data_dir, overwrite, progress, family, model,
                                         data, ckpts, path)


def _reuse_or_replace(cfg, out: Path, data_dir: Path, data, overwrite: bool) -> dict | None:
    """The result already in `out` (made by this configuration: check_not_overwriting) when there is one and it is
    kept; None when there is none, or when --overwrite has just removed it."""
    if not (out / "results.json").exists():
        return None
    if overwrite:
        (out / "results.json").unlink()
        return None
    existing = json.loads((out / "results.json").read_text())
    if existing["provenance"].get("data") != data:
        raise RunError(f"claim {cfg.claim!r}, run {cfg.run!r}, seed {cfg.seed}: {out / 'results.json'} was "
                       f"measured on other data than {data_dir} now holds ({_data_name(existing)} vs "
                       f"{_data_name({'provenance': {'data': data}})}). Pass --overwrite to replace it.")
    return existing


def _write_progress(cfg, out: Path, ckpts: Path, path: str, iteration: int, seconds: float, gpu_seconds: float,
                    segments: list[dict], curve: dict):
    """progress.json beside a run's config.json while it trains: how far its training is, on what it ran and at what
    pace, and its learning curve so far, for the report's "in progress" (the checkpoint itself stays out of
    results/)."""
    atomic_write_json(out / PROGRESS, {
        "claim": cfg.claim, "profile": cfg.profile, "run": cfg.run, "variant": cfg.variant, "seed": cfg.seed,
        "config_hash": cfg.hash, "numerics": numerics(cfg), "path": path, "iteration": iteration,
        "iterations": cfg.hyperparameters["iterations"], "seconds": round(seconds, 2),
        "gpu_seconds": round(gpu_seconds, 2), "checkpoint": ckpts.relative_to(checkpoint_base(ckpts)).as_posix(),
        "segments": [{k: s.get(k) for k in ("device", "device_name", "git_commit", "git_dirty", "started",
                                            "from_iteration", "iterations", "seconds")} for s in segments],
        "curve": curve,
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def _write_config(cfg, out: Path, code: dict, data, path: str):
    atomic_write_json(out / "config.json", {**cfg.to_json(), "numerics": numerics(cfg), "path": path,
                                            "provenance": {**code, "versions": versions(), "data": data}})


def _write_curve(root: Path, cfg, curve: dict):
    """The training loss curve, for DVC's plots."""
    atomic_write_bytes(curve_file(root, cfg), ("iteration,loss\n" + "".join(
        f"{i},{loss!r}\n" for i, loss in zip(curve["iteration"], curve["loss"]))).encode())


def _record(cfg, device, code: dict, data, path: str, ckpts: Path, train: dict, result: dict, train_seconds: float,
            eval_seconds: float, twin: str | None = None, **provenance) -> dict:
    """results.json: what the run measured (`result`: metrics, fine-tuning lr and its search, examples, per-task
    values), its training's record (`train`, as final.pt holds it; `twin`, the run that trained it when another
    did) and the provenance of both."""
    gpu_seconds = train["gpu_seconds"] + (eval_seconds if device.type == "cuda" else 0)
    return {
        "claim": cfg.claim, "profile": cfg.profile, "run": cfg.run,
        **({"variant": cfg.variant, "retrains": cfg.retrains} if cfg.variant else {}),
        "seed": cfg.seed, "algorithm": cfg.algorithm,
        "config_hash": cfg.hash,
        "numerics": numerics(cfg),
        "path": path,
        "metrics": result["metrics"],
        "finetune_lr": result["finetune_lr"],
        "lr_search": result["lr_search"],
        **({"selection": result["selection"]} if "selection" in result else {}),
        "training": {"iterations": cfg.hyperparameters["iterations"], "curve": train["curve"],
                     "resumed_at": train["resumed_at"], "training_hash": ckpts.name, "segments": train["segments"],
                     **({"trained_by": twin} if twin else {})},
        "provenance": {
            **code, "config_hash": cfg.hash, "profile": cfg.profile, "seed": cfg.seed, "device": str(device),
            "device_name": device_name(device), "vectorized_over_tasks": path != "loop",
            "train_seconds": round(train_seconds, 2), "eval_seconds": round(eval_seconds, 2),
            "gpu_hours": round(gpu_seconds / 3600, 4),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions(),
            "data": data, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), **provenance},
        "config": cfg.to_json(),
        "examples": result["examples"],
        "episodes": result["episodes"],
    }


def _measure_and_write(cfg, root, device, code, data_dir, overwrite, data, path) -> dict:
    """A resource measurement (suite.training.resources), written as results.json; the parameters its iterations
    trained are left in its checkpoint folder as final.pt."""
    out = run_dir(root, cfg)
    if (existing := _reuse_or_replace(cfg, out, data_dir, data, overwrite)) is not None:
        return existing
    _write_config(cfg, out, code, data, path)
    began = time.perf_counter()
    measured = measure_training(cfg, device, path, data_dir)
    spent = time.perf_counter() - began
    iterations = cfg.hyperparameters["iterations"]
    train = {"curve": {"iteration": list(range(1, iterations + 1)), "loss": measured["loss"]}, "seconds": spent,
             "gpu_seconds": spent if device.type == "cuda" else 0.0, "resumed_at": [], "segments": []}
    ckpts = checkpoint_dir(root, cfg, data, path)  # its trained parameters, as any run leaves them
    save_checkpoint(ckpts / FINAL, {"params": measured["params"], "inner_state": None, "training": train})
    result = {"metrics": resource_metrics(measured, cfg.evaluation["interval"]), "finetune_lr": None,
              "lr_search": None, "examples": [], "episodes": {}}
    record = _record(cfg, device, code, data, path, ckpts, train, result, spent, 0.0,
                     memory=RESOURCES["memory"].doc)
    _write_curve(root, cfg, train["curve"])
    atomic_write_json(out / "results.json", record)
    return record


def selected_model(cfg, learner, trained: dict) -> tuple[dict, int, dict]:
    """(the parameters the test tasks evaluate, how many models they stack, the selection's record): the last
    model, the best candidate on validation, or the top k candidates stacked along a leading dimension (an ensemble,
    suite.training.evaluate.finetune_curve)."""
    rule = cfg.evaluation["selection"]["rule"]
    if rule == "last":
        return learner.params, 1, {"rule": rule, "iterations": [cfg.hyperparameters["iterations"]]}
    kept, k = trained["candidates"], cfg.evaluation["selection"].get("k", 1)
    if len(kept) < k:
        raise RunError(f"{describe(cfg)}: its training kept {len(kept)} validated models and the selection needs "
                       f"{k}; pass --overwrite to train it again")
    candidates = kept[:k]
    record = {"rule": rule, "iterations": [c["iteration"] for c in candidates],
              "validation": {"metric": trained["training"]["curve"]["validation"]["metric"],
                             "values": [c["value"] for c in candidates]}}
    if rule == "best-validation":
        return candidates[0]["params"], 1, record
    return {name: torch.stack([c["params"][name] for c in candidates]) for name in candidates[0]["params"]}, \
        len(candidates), record


def _train_evaluate_and_write(cfg, root, device, code, data_dir, overwrite, progress, family, model, data, ckpts,
                              path):
    out = run_dir(root, cfg)
    replacing = overwrite and (out / "results.json").exists()
    if (existing := _reuse_or_replace(cfg, out, data_dir, data, overwrite)) is not None:
        return existing
    if replacing and not cfg.variant:  # --overwrite of the same configuration: train again, or take a twin's own
        shutil.rmtree(ckpts, ignore_errors=True)  # training (a variant is evaluated again)
        restore_twin(ckpts)
    _write_config(cfg, out, code, data, path)
    params = initial_params(cfg, model, device)
    learner = make_learner(cfg, model, params, path)
    # what test-time fine-tuning adapts (ANIL: the head), and how the parameters predict (BMAML: the particles' mean)
    tuned = learner.evaluated(model.adapting_only(learner.inner_loop_names), cfg.evaluation)
    reused = (ckpts / FINAL).exists()
    if reused:  # the same training (configuration and numerics) finished: evaluate it
        trained = load_checkpoint(ckpts / FINAL, device)
        learner.load_params(trained["params"])
        learner.inner_state, train = trained["inner_state"], trained["training"]
    else:
        if cfg.variant:
            ckpts.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(ckpts / VARIANT_MARK, f"{cfg.variant}\n".encode())
        if unpark(ckpts):  # carried from another machine (suite park): resume where it stopped
            tqdm.write(f"{describe(cfg)}: resuming from its parked checkpoint", file=sys.stderr)
        train = train_with_checkpoints(cfg, family, tuned, learner, ckpts, device, path, code, progress,
                                       on_checkpoint=lambda *state: _write_progress(cfg, out, ckpts, path, *state))
        trained = load_checkpoint(ckpts / FINAL, device)

    eval_began = time.perf_counter()
    params, members, selection = selected_model(cfg, learner, trained)
    result = evaluate(tuned, params, family, cfg.evaluation, device, path, cfg.execution["eval_chunk"],
                      None if progress is None else {"desc": f"{cfg.label} evaluating",
                                                     **progress},
                      training_state=learner.inner_state, schedule=learner.schedule, members=members)
    result["selection"] = selection
    eval_time = time.perf_counter() - eval_began
    train_time, twin = train["seconds"], trained_by(ckpts)
    if (cfg.variant and not cfg.retrains) or twin:  # it trained nothing: its run's or its twin's model is reused
        train_time, train = 0.0, dict(train, gpu_seconds=0.0)
    record = _record(cfg, device, code, data, path, ckpts, train, result, train_time, eval_time, twin)
    if not cfg.variant or cfg.retrains:
        _write_curve(root, cfg, train["curve"])
    atomic_write_json(out / "results.json", record)
    (out / PROGRESS).unlink(missing_ok=True)
    discard_parked(ckpts)  # landed with the result: the parked copy goes in the same commit
    if cfg.profile == PAPER and (not cfg.variant or cfg.retrains) and not twin:
        keep_trained(ckpts)  # and the trained model, for variants measured later on any clone (a twin's is kept)
    if cfg.variant:
        return record
    for other in ckpts.parent.iterdir():  # this run's other trainings: earlier configurations, numerics, paths
        if other != ckpts and other.is_dir() and not (other / VARIANT_MARK).exists():
            shutil.rmtree(other, ignore_errors=True)
            shutil.rmtree(kept_dir(other), ignore_errors=True)
    return record
