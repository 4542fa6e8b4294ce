"""Train → config.json → evaluate → results.json, for each run and seed of a claim.

Training checkpoints atomically every `checkpoint_every` iterations and resumes from the last checkpoint. The
tasks of iteration i come from a generator seeded by (seed, i) alone, so a resumed run repeats exactly the
computation of an uninterrupted one.
"""
from __future__ import annotations

import ast
import hashlib
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from suite.algorithms import make_learner
from suite.data import DataError
from suite.evaluate import CURVE_FIELDS, curve_point, evaluate
from suite.io import Locked, atomic_torch_save, atomic_write_bytes, atomic_write_json, exclusive_lock
from suite.manifest import ManifestError, RunConfig, config_hash
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


def _suite_imports(path: Path) -> list[str]:
    """The suite modules a source file imports (anywhere in it), as dotted names."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "suite":
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names if alias.name.split(".")[0] == "suite"]
    return names


def training_code_files(modules: list[str]) -> set[Path]:
    """The source files of `modules` and of every suite module they import, followed statically."""
    package = Path(__file__).resolve().parent
    files, todo = set(), list(modules)
    while todo:
        parts = todo.pop().split(".")[1:]
        for candidate in (package.joinpath(*parts).with_suffix(".py"), package.joinpath(*parts, "__init__.py")):
            if parts and candidate.is_file() and candidate not in files:
                files.add(candidate)
                todo += _suite_imports(candidate)
    return files


def training_code_digest(modules: list[str], extra: list[Path] = ()) -> str:
    """sha256 over that code and the `extra` files: code a training does not use (another algorithm, another
    dataset) leaves it reusable."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for f in sorted(training_code_files(modules) | set(extra)):
        digest.update(f"{f.relative_to(package)}\n".encode() + f.read_bytes())
    return digest.hexdigest()[:16]


def training_hash(cfg: RunConfig, data: dict | None = None) -> str:
    """The training configuration and the code it runs: the algorithm, the task family (with its split and data
    digest files), the model and this loop. A learning curve on test tasks during training makes the evaluation
    settings and code part of the training record too; so does `data`, what the tasks are drawn from where that can
    differ (Mini-ImageNet's format and arrays, or its generated stand-in)."""
    package, family = Path(__file__).resolve().parent, cfg.task["family"]
    modules = [f"suite.algorithms.{cfg.algorithm}", f"suite.tasks.{family}", "suite.models"]
    extra = [package / "runner.py"]  # the loop itself; what it imports for other purposes is not followed
    extra += sorted((package / "splits" / family).glob("*.json")) + sorted((package / "data").glob(f"{family}.json"))
    spec = dict(cfg.training)
    if cfg.evaluation.get("during_training"):  # what curve_point reads (not the final evaluation's tasks or seed)
        spec["evaluation"] = {k: v for k, v in cfg.evaluation.items() if k in CURVE_FIELDS}
        modules.append("suite.evaluate")
    if data is not None:
        spec["data"] = data
    return config_hash({**spec, "code": training_code_digest(modules, extra)})


def checkpoint_dir(root: Path, cfg: RunConfig, data: dict | None = None) -> Path:
    """checkpoints/<claim>/<profile>/<run>/seed<N>/<training hash>, beside the results folder: latest.pt while
    training, final.pt after (large binaries: cached by DVC, not kept in git). The training hash covers the
    training configuration and code, so two trainings never share a folder and an unchanged one is reused."""
    return (root.resolve().parent / "checkpoints" / cfg.claim / cfg.profile / cfg.run / f"seed{cfg.seed}"
            / training_hash(cfg, data))


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
    """Commit of the checkout at `where`, and whether its code (suite/, new files included, and pyproject.toml)
    differs from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=30)

    head = git("rev-parse", "HEAD")
    if head.returncode:
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=all", "--", "suite", "pyproject.toml")
    return {"git_commit": head.stdout.strip(), "git_dirty": bool(status.stdout.strip())}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def build(cfg: RunConfig, data_dir: Path):
    family = FAMILIES[cfg.task["family"]]
    model = FunctionalModel(cfg.model, in_dim=family.INPUT_DIM, out_dim=family.output_dim(cfg.task),
                            loss=family.LOSS, loss_scale=family.loss_scale(cfg.task),
                            loss_reduction=family.loss_reduction(cfg.task))
    return make_tasks(cfg.task, data_dir), model


def load_checkpoint(path: Path, device="cpu") -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # a truncated or foreign file: pickle, zip and EOF errors alike
        raise RunError(f"{path}: cannot read this checkpoint ({type(e).__name__}: {e}); delete it to start the "
                       "run again") from None


def _read_hash(path: Path):
    try:
        return json.loads(path.read_text()).get("config_hash")
    except (OSError, ValueError):
        return None


def check_not_overwriting(out: Path, cfg: RunConfig, overwrite: bool):
    """Refuse to replace another config's results, unless asked to."""
    stale = []
    for name in ("config.json", "results.json"):
        h = _read_hash(out / name)
        if h is not None and h != cfg.hash:
            stale.append(f"{out / name} (config {h})")
    if stale and not overwrite:
        raise RunError(f"claim {cfg.claim!r}, run {cfg.run!r}, seed {cfg.seed}: {stale[0]} comes from another "
                       f"configuration than the manifest's (config {cfg.hash}). Pass --overwrite to replace it.")
    for name in ("config.json", "results.json"):
        if stale:
            (out / name).unlink(missing_ok=True)


def existing_result(root: Path, cfg: RunConfig) -> dict | None:
    """The finished result of exactly this configuration, if there is one."""
    path = run_dir(root, cfg) / "results.json"
    if _read_hash(path) == cfg.hash:
        return json.loads(path.read_text())
    return None


def _data_name(record: dict) -> str:
    data = record["provenance"].get("data")
    if not data:
        return "data with no recorded provenance"
    return f"{'generated ' if data.get('generated') else ''}{data.get('dataset')} ({data.get('format')})"


def train_and_evaluate(cfg: RunConfig, root: Path, device: torch.device, code: dict, data_dir: Path,
                       overwrite: bool = False, progress: dict | None = None) -> dict:
    """Train (resuming from a checkpoint), evaluate and write results.json. `code` is git_state() taken when the
    process started: the code that runs is the code that was loaded then. `progress`: options of the progress
    bars (tqdm's), None for none."""
    out = run_dir(root, cfg)
    check_not_overwriting(out, cfg, overwrite)
    family, model = build(cfg, data_dir)  # before anything is written: missing data fails here
    # what the tasks are drawn from where that can differ (e.g. the generated stand-in), as JSON will hold it
    data = json.loads(json.dumps(getattr(family, "provenance", None)))
    ckpts = checkpoint_dir(root, cfg, data)
    try:
        with exclusive_lock(ckpts.parent / "training.lock"):  # the run's folders are this process's alone
            return _train_evaluate_and_write(cfg, root, device, code, data_dir, overwrite, progress, family, model,
                                             data, ckpts)
    except Locked as e:
        raise RunError(f"claim {cfg.claim!r}, run {cfg.run!r}, seed {cfg.seed} is being trained by another process "
                       f"(PID {e.holder}); wait for it to finish, or stop it, before starting it again") from None


def _train_evaluate_and_write(cfg, root, device, code, data_dir, overwrite, progress, family, model, data, ckpts):
    out = run_dir(root, cfg)
    if (out / "results.json").exists():
        if not overwrite:
            existing = json.loads((out / "results.json").read_text())
            if existing["provenance"].get("data") != data:
                raise RunError(f"claim {cfg.claim!r}, run {cfg.run!r}, seed {cfg.seed}: {out / 'results.json'} was "
                               f"measured on other data than {data_dir} now holds ({_data_name(existing)} vs "
                               f"{_data_name({'provenance': {'data': data}})}). Pass --overwrite to replace it.")
            return existing
        (out / "results.json").unlink()
        shutil.rmtree(ckpts, ignore_errors=True)  # --overwrite of the same configuration: train again
    atomic_write_json(out / "config.json", {**cfg.to_json(),
                                            "provenance": {**code, "versions": versions(), "data": data}})
    vectorize = choose_vectorize(model, device)
    params = model.init_params(cfg.seed, device=device)
    learner = make_learner(cfg.algorithm, model, params, cfg.hyperparameters, vectorize)
    tuned = model.adapting_only(learner.inner_loop_names)  # what test-time fine-tuning adapts (ANIL: the head)
    if (ckpts / "final.pt").exists():  # the same training (configuration and code) finished before: evaluate it
        trained = load_checkpoint(ckpts / "final.pt", device)
        learner.load_params(trained["params"])
        train, inner_state = trained["training"], trained.get("inner_state")
    else:
        train = train_with_checkpoints(cfg, family, tuned, learner, ckpts, device, vectorize, code, progress)
        inner_state = getattr(learner, "inner_state", None)

    eval_began = time.perf_counter()
    result = evaluate(tuned, learner.params, family, cfg.evaluation, device, vectorize, cfg.execution["eval_chunk"],
                      None if progress is None else {"desc": f"{cfg.claim}/{cfg.run} seed {cfg.seed} evaluating",
                                                     **progress},
                      training_state=inner_state)
    eval_time = time.perf_counter() - eval_began
    train_time, curve = train["seconds"], train["curve"]

    record = {
        "claim": cfg.claim, "profile": cfg.profile, "run": cfg.run, "seed": cfg.seed, "algorithm": cfg.algorithm,
        "config_hash": cfg.hash,
        "metrics": result["metrics"],
        "finetune_lr": result["finetune_lr"],
        "lr_search": result["lr_search"],
        "training": {"iterations": cfg.hyperparameters["iterations"], "curve": curve,
                     "resumed_at": train["resumed_at"], "training_hash": ckpts.name, "segments": train["segments"]},
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
            "gpu_hours": round((train["gpu_seconds"] + (eval_time if device.type == "cuda" else 0)) / 3600, 4),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(),
            "data": data,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        },
        "config": cfg.to_json(),
        "examples": result["examples"],
        "episodes": result["episodes"],
    }
    atomic_write_bytes(curve_file(root, cfg), ("iteration,loss\n" + "".join(
        f"{i},{loss!r}\n" for i, loss in zip(curve["iteration"], curve["loss"]))).encode())
    atomic_write_json(out / "results.json", record)
    for other in ckpts.parent.iterdir():  # checkpoints of this run's earlier configurations or code
        if other != ckpts and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
    return record


def train_and_evaluate_all(configs: list[RunConfig], root: Path, device: torch.device, code: dict, data_dir: Path,
                           overwrite: bool = False, progress: bool = True, jobs: int = 1):
    """train_and_evaluate every configuration: one after another, or with `jobs` > 1 in that many worker
    processes, which split the CPU threads between them. Each run is the same computation either way (its
    tasks come from its own seeds). In parallel, a failed run does not stop the others; the failures are
    raised together at the end."""
    if jobs == 1 or len(configs) <= 1:
        for cfg in configs:
            train_and_evaluate(cfg, root, device, code, data_dir, overwrite, {} if progress else None)
        return
    jobs = min(jobs, len(configs))
    spawn = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked children
    slots = spawn.Queue()
    for slot in range(jobs):
        slots.put(slot)
    tqdm.set_lock(spawn.RLock())  # one lock for every process's progress bars
    failed = []
    with ProcessPoolExecutor(jobs, mp_context=spawn, initializer=_init_worker,
                             initargs=(max(1, torch.get_num_threads() // jobs), slots, tqdm.get_lock(),
                                       os.getpid())) as pool:
        futures = {pool.submit(_train_and_evaluate_in_worker, cfg, root, device, code, data_dir, overwrite,
                               progress): cfg for cfg in configs}
        for future in as_completed(futures):
            cfg = futures[future]
            what = f"claim {cfg.claim!r}, run {cfg.run!r}, seed {cfg.seed}"
            try:
                future.result()
                tqdm.write(f"{what}: done", file=sys.stderr)
            except (RunError, ManifestError, DataError) as e:
                failed.append(f"{what}: {e}")
            except Exception as e:  # a bug rather than bad input: keep its traceback
                failed.append(f"{what}: {type(e).__name__}: {e}\n{e.__cause__ or ''}".rstrip())
    if failed:
        raise RunError(f"{len(failed)} of {len(configs)} runs failed (the others finished):\n" + "\n".join(failed))


_worker_bar_position = 0


def _init_worker(threads: int, slots, bar_lock, parent: int):
    """A worker of train_and_evaluate_all: its share of the threads, its own line for progress bars, and a watch
    that ends it when `suite run` is gone (killed, say), so no orphan goes on training beside a restarted run."""
    global _worker_bar_position
    torch.set_num_threads(threads)
    tqdm.set_lock(bar_lock)
    _worker_bar_position = slots.get()
    threading.Thread(target=_exit_without_parent, args=(parent,), daemon=True).start()


def _exit_without_parent(parent: int, every: float = 1.0):
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)  # what it wrote is whole (atomic writes); its checkpoint resumes when the run is started again


def _train_and_evaluate_in_worker(cfg, root, device, code, data_dir, overwrite, progress):
    train_and_evaluate(cfg, root, device, code, data_dir, overwrite,
                       {"position": _worker_bar_position, "leave": False} if progress else None)


def versions() -> dict:
    return {"suite": _suite_version(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__}


def curve_point_due(cfg, done: int) -> bool:
    """Whether training takes a learning-curve point after its `done`-th iteration (and always after its last)."""
    during = cfg.evaluation.get("during_training")
    return bool(during) and (done % during["every"] == 0 or done == cfg.hyperparameters["iterations"])


def learning_curve_point(cfg, model, learner, family, device, vectorize: bool, done: int) -> tuple[str, float]:
    from_training = cfg.evaluation["optimizer_state"] == "from-training"
    return curve_point(model, learner.params, family, cfg.evaluation, device, vectorize, cfg.execution["eval_chunk"],
                       done, getattr(learner, "inner_state", None) if from_training else None)


def train_with_checkpoints(cfg, family, model, learner, ckpts: Path, device, vectorize: bool, code: dict,
                           progress: dict | None) -> dict:
    """The training loop: resumes from latest.pt, checkpoints every `checkpoint_every` iterations, and leaves
    final.pt with the parameters and the training's record (curve, time, and each segment's code and device)."""
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

    n_tasks, shots, queries = learner.task_shape()
    began, window = time.perf_counter(), []
    bar = tqdm(total=iterations, initial=start, desc=f"{cfg.claim}/{cfg.run} seed {cfg.seed}", unit="it",
               disable=progress is None, mininterval=1.0, dynamic_ncols=True, **(progress or {}))
    for it in range(start, iterations):
        generator = seeded_generator(cfg.seed, it)
        tasks = family.sample(n_tasks, shots, queries, generator, split="train").to(device)
        window.append(learner.step(tasks, it, generator))
        done = it + 1
        if curve_point_due(cfg, done):
            name, value = learning_curve_point(cfg, model, learner, family, device, vectorize, done)
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
            atomic_torch_save(ckpt_path, {
                "iteration": done, "learner": learner.state_dict(), "curve": curve, "elapsed": elapsed + spent,
                "gpu_seconds": gpu_seconds + (spent if on_gpu else 0.0), "resumed_at": resumed_at,
                "segments": segments})
    bar.close()
    spent = time.perf_counter() - began
    training = {"curve": curve, "seconds": elapsed + spent, "gpu_seconds": gpu_seconds + (spent if on_gpu else 0.0),
                "resumed_at": resumed_at, "segments": segments}
    atomic_torch_save(ckpts / "final.pt", {"params": learner.state_dict()["params"], "training": training,
                                           "inner_state": getattr(learner, "inner_state", None)})
    ckpt_path.unlink(missing_ok=True)
    return training


def _suite_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("suite")
    except PackageNotFoundError:
        return "unknown"
