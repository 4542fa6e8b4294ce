"""Several runs at once: worker processes that split the CPU threads (or share the GPU), each run the same
computation it would be alone, and a watch that ends the workers when `suite run` is gone."""
from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from tqdm import tqdm

from suite.data import DataError
from suite.protocol import ManifestError, RunConfig, shared_trainings
from suite.training.identity import is_current
from suite.training.layout import PROGRESS, RunError, read_record, run_dir
from suite.training.loop import TimeLimitReached
from suite.training.parking import where_resumable
from suite.training.run import describe, train_and_evaluate


def under_way_first(configs: list[RunConfig], root: Path) -> list[RunConfig]:
    """The configurations whose trainings are under way first, then the others, each group in the order given. Under
    way: its progress.json is of this configuration and its checkpoint is here or parked. With fewer jobs than runs,
    or a time limit, a restarted campaign so goes on with what it began before it starts anything new."""
    def under_way(cfg: RunConfig) -> bool:
        progress = read_record(run_dir(root, cfg) / PROGRESS)
        return progress is not None and is_current(progress, cfg) and \
            where_resumable(root.resolve().parent, progress) is not None

    return sorted(configs, key=lambda cfg: not under_way(cfg))  # sorted is stable


def training_order(configs: list[RunConfig], root: Path) -> list[list[RunConfig]]:
    """The configurations as they train: grouped by the training they share (shared_trainings: the first trains, the
    others are evaluated on its model after it), the trainings under way first (under_way_first)."""
    return shared_trainings(under_way_first(configs, root))


def train_and_evaluate_group(group: list[RunConfig], root: Path, device: torch.device, code: dict, data_dir: Path,
                             overwrite: bool = False, progress: dict | None = None, path: str = "auto"):
    """train_and_evaluate the runs of one training (training_order) in turn: the first trains, the others find its
    model. Stopped at the time limit, the first leaves the others for the next start. A failure says how many of
    the group's runs it failed (`runs_failed`: this run and those after it; the runs before it have their results)."""
    for i, cfg in enumerate(group):
        try:
            train_and_evaluate(cfg, root, device, code, data_dir, overwrite, progress, path)
        except TimeLimitReached:
            raise
        except Exception as e:
            e.runs_failed = len(group) - i  # kept when a worker's exception is pickled back (its __dict__)
            raise


def describe_group(group: list[RunConfig]) -> str:
    return describe(group[0]) + (f" (and its twin{'s' if len(group) > 2 else ''} "
                                 f"{', '.join(repr(c.run) for c in group[1:])})" if len(group) > 1 else "")


def train_and_evaluate_all(configs: list[RunConfig], root: Path, device: torch.device, code: dict, data_dir: Path,
                           overwrite: bool = False, progress: bool = True, jobs: int = 1, path: str = "auto"):
    """train_and_evaluate every configuration: one training after another, or with `jobs` > 1 in that many worker
    processes, which split the CPU threads between them. Each run is the same computation either way (its
    tasks come from its own seeds). In parallel, a failed training does not stop the others; the failures are
    raised together at the end. A training stopped at the time limit (suite.training.loop.TimeLimitReached) is not a
    failure: it is reported, and the others go on until they reach it too. Trainings under way go first, and runs
    that share a training are one job (training_order)."""
    groups = training_order(configs, root)
    if jobs == 1 or len(groups) <= 1:
        for group in groups:
            try:
                train_and_evaluate_group(group, root, device, code, data_dir, overwrite, {} if progress else None,
                                         path)
            except TimeLimitReached as e:
                tqdm.write(str(e), file=sys.stderr)
        return
    jobs = min(jobs, len(groups))
    spawn = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked children
    slots = spawn.Queue()
    for slot in range(jobs):
        slots.put(slot)
    tqdm.set_lock(spawn.RLock())  # one lock for every process's progress bars
    failed, failed_runs = [], 0  # a failed training fails its twins too (runs_failed)
    with ProcessPoolExecutor(jobs, mp_context=spawn, initializer=_init_worker,
                             initargs=(max(1, torch.get_num_threads() // jobs), slots, tqdm.get_lock(),
                                       os.getpid())) as pool:
        futures = {pool.submit(_train_and_evaluate_in_worker, group, root, device, code, data_dir, overwrite,
                               progress, path): group for group in groups}
        for future in as_completed(futures):
            what = describe_group(futures[future])
            try:
                future.result()
                tqdm.write(f"{what}: done", file=sys.stderr)
            except TimeLimitReached as e:
                tqdm.write(str(e), file=sys.stderr)
            except (RunError, ManifestError, DataError) as e:
                failed.append(f"{what}: {e}")
                failed_runs += getattr(e, "runs_failed", len(futures[future]))
            except Exception as e:  # a bug rather than bad input: keep its traceback
                failed.append(f"{what}: {type(e).__name__}: {e}\n{e.__cause__ or ''}".rstrip())
                failed_runs += getattr(e, "runs_failed", len(futures[future]))
    if failed:
        raise RunError(f"{failed_runs} of {len(configs)} runs failed (the others finished):\n" + "\n".join(failed))


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


def _train_and_evaluate_in_worker(group, root, device, code, data_dir, overwrite, progress, path):
    train_and_evaluate_group(group, root, device, code, data_dir, overwrite,
                             {"position": _worker_bar_position, "leave": False} if progress else None, path)
