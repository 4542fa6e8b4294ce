"""`suite bench`: meta-iterations per second and peak memory of each algorithm in a manifest bench setting, on each
path (suite.training.paths: vmap over tasks, per-task loop, tasks grouped into one computation), side by side in
one run.

Each measurement runs in a fresh process so that its peak memory is its own: on CPU the process's peak resident
set (torch and its libraries included, so compare rows rather than read one alone); on CUDA, torch's peak
allocation.
Where a run records a learning curve (evaluation.during_training), the timed loop takes its curve points at the
runner's cadence and times them apart: "it/s" is the training step alone, "curve point ms/it" what the curve adds
per iteration, and the paper-scale estimate counts both.
"CPU ms/it" is the process's CPU time per iteration over all its threads (curve points included): steadier than
wall time on a shared machine.
The FLOP floor of a run is the FLOPs of its training step (torch's FlopCounterMode) at the best rate this machine
runs the model's plain forward and backward, on one task's images or on the whole meta-batch as one batch: how fast
the step could be if every FLOP ran as fast as that plain work does here.
Reference rows (suite.training.reference) time the plainest hand-written PyTorch loop (MAML: autograd with
create_graph=True; Reptile: an nn.Module and torch.optim) and, where it is installed
(scripts/install-learn2learn.sh), learn2learn's MAML wrapper, on the same tasks and model, so the speed-up is also
stated against those.
"""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from suite.protocol import Manifest, ManifestError, RunConfig
from suite.protocol.components import algorithms
from suite.tasks.base import seeded_generator
from suite.training.loop import curve_point_due, learning_curve_point
from suite.training.provenance import resolve_device
from suite.training.reference import (LEARN2LEARN, autograd_loop_step, has_learn2learn, learn2learn_step,
                                      plain_reptile_step)
from suite.training.paths import PATHS, choose_path
from suite.training.run import build, build_model, initial_params, make_learner


REFERENCE = "plain PyTorch loop"
FLOOR = "flop floor"


def _rss_kib(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _measure(cfg: RunConfig, device: str, path: str, iterations: int, reference: str | None,
             data_dir: Path, warmup: int) -> dict:
    device = torch.device(device)
    family, model = build(cfg, data_dir)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    learner = make_learner(cfg, model, initial_params(cfg, model, device), path)
    plain = plain_reptile_step if cfg.algorithm == "reptile" else autograd_loop_step
    step = {None: lambda: learner.step, REFERENCE: lambda: plain(learner),
            LEARN2LEARN: lambda: learn2learn_step(learner, cfg.algorithm)}[reference]()
    n_tasks, shots, queries = algorithms()[cfg.algorithm].task_shape(cfg.hyperparameters)

    def clock():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    def one(it) -> float:
        """Seconds of this iteration's learning-curve point, when the runner would take one after it."""
        generator = seeded_generator(cfg.seed, it)
        step(family.sample(n_tasks, shots, queries, generator, split="train").to(device), it, generator)
        if not curve_point_due(cfg, it + 1):
            return 0.0
        began = clock()
        learning_curve_point(cfg, model, learner, family, device, path, it + 1)
        return clock() - began

    for it in range(warmup):
        one(it)
    began, cpu_began = clock(), time.process_time()
    curve_seconds = sum(one(it) for it in range(warmup, warmup + iterations))
    seconds = clock() - began - curve_seconds
    cpu_seconds = time.process_time() - cpu_began  # every thread's; the learning-curve points included
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else _rss_kib("VmHWM:") / 1024)
    return {"it/s": iterations / seconds, "ms/it": 1000 * seconds / iterations,
            "CPU ms/it": 1000 * cpu_seconds / iterations,
            "curve point ms/it": 1000 * curve_seconds / iterations, "peak memory MiB": peak}


def flop_floor(cfg: RunConfig, device: str, data_dir: Path, repeats: int = 5) -> dict:
    """FLOPs of one training step, counted by torch's FlopCounterMode on the per-task loop (every path computes the
    same mathematics), and the floor they set: those FLOPs at the best rate this machine runs the model's plain
    forward and backward, on one task's images or on all the meta-batch's images as one batch."""
    device = torch.device(device)
    family, model = build(cfg, data_dir)
    learner = make_learner(cfg, model, initial_params(cfg, model, device), "loop")
    n_tasks, shots, queries = algorithms()[cfg.algorithm].task_shape(cfg.hyperparameters)
    generator = seeded_generator(cfg.seed, 0)
    tasks = family.sample(n_tasks, shots, queries, generator, split="train").to(device)
    with FlopCounterMode(display=False) as step_flops:
        learner.step(tasks, 0, generator)
    params = {k: p.detach().requires_grad_(True) for k, p in learner.params.items()}

    def flops_per_second(x, y) -> float:
        """FLOP/s of the model's forward and backward on the batch (x, y)."""
        def forward_backward():
            return torch.autograd.grad(model.loss(params, x, y), list(params.values()))

        with FlopCounterMode(display=False) as counted:
            forward_backward()
        forward_backward()  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        began = time.perf_counter()
        for _ in range(repeats):
            forward_backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return counted.get_total_flops() * repeats / (time.perf_counter() - began)

    x = torch.cat([tasks.support_x, tasks.query_x], 1)
    y = torch.cat([tasks.support_y, tasks.query_y], 1)
    rate = max(flops_per_second(x[0], y[0]), flops_per_second(x.flatten(0, 1), y.flatten(0, 1)))  # one task; all
    return {"GFLOP a step": step_flops.get_total_flops() / 1e9, "GFLOP/s": rate / 1e9,
            "floor ms": 1000 * step_flops.get_total_flops() / rate}


def _in_child(args):
    if args[0] == FLOOR:
        return flop_floor(*args[1:])
    return _measure(*args)


def bench_configs(manifest: Manifest, claim_id: str) -> list[RunConfig]:
    """Every run of the bench setting named after the claim: the claim's task and model, each algorithm once."""
    setting = manifest.bench.get(claim_id)
    if setting is None:
        raise ManifestError(f"{manifest.path}: no bench setting for claim {claim_id!r} (bench settings: "
                            f"{', '.join(manifest.bench) or 'none'})")
    claim = manifest.claim(claim_id)
    body = claim.body()
    return [claim.run_config(body, "bench", name, run, body["seeds"][0]) for name, run in setting.items()]


def run_bench(manifest: Manifest, claim_id: str, iterations: int, device_spec: str, data_dir: Path,
              warmup: int) -> str:
    device = str(resolve_device(device_spec))
    jobs = []
    for cfg in bench_configs(manifest, claim_id):
        if cfg.algorithm == "pretrained":  # one pooled batch: there is no per-task computation to vectorise
            jobs.append((cfg.run, "pooled batch", (cfg, device, "vmap", iterations, None, data_dir, warmup)))
            continue
        for path in PATHS:
            jobs.append((cfg.run, path, (cfg, device, path, iterations, None, data_dir, warmup)))
        if cfg.algorithm in ("maml", "reptile"):
            jobs.append((cfg.run, REFERENCE, (cfg, device, "loop", iterations, REFERENCE, data_dir, warmup)))
        if cfg.algorithm in ("maml", "fomaml", "anil") and has_learn2learn():
            jobs.append((cfg.run, LEARN2LEARN, (cfg, device, "loop", iterations, LEARN2LEARN, data_dir, warmup)))
        jobs.append((cfg.run, FLOOR, (FLOOR, cfg, device, data_dir)))
    context = multiprocessing.get_context("spawn")
    rows, floors = [], {}
    for run, path, args in jobs:
        with context.Pool(1) as pool:
            measured = pool.apply(_in_child, (args,))
        if path == FLOOR:
            floors[run] = measured
        else:
            rows.append({"algorithm": run, "implementation": path, **measured})
    table = pd.DataFrame(rows)
    lines = [f"Bench setting of {claim_id} on {device} ({torch.get_num_threads()} threads), "
             f"{iterations} timed meta-iterations after {warmup} warm-up:", "",
             table.to_markdown(index=False, floatfmt=".3g"), ""]
    for run in table["algorithm"].unique():
        r = table[table["algorithm"] == run].set_index("implementation")["it/s"]
        if "loop" not in r:
            continue
        fastest, floor = r[list(PATHS)].max(), floors.get(run)
        lines.append(f"{run}: " + ", ".join(f"{path} {r[path] / r['loop']:.2f}x" for path in PATHS if path != "loop")
                     + " the per-task loop" + "".join(f"; the fastest path {fastest / r[other]:.2f}x {label}"
                                                      for other, label in ((REFERENCE, "the plain PyTorch loop"),
                                                                           (LEARN2LEARN, LEARN2LEARN))
                                                      if other in r)
                     + (f"; {floor['GFLOP a step']:.3g} GFLOP a step, the fastest path at "
                        f"{1000 / fastest / floor['floor ms']:.2f}x the FLOP floor of {floor['floor ms']:.3g} ms "
                        f"({floor['GFLOP/s']:.3g} GFLOP/s, the model's forward and backward on one task or the whole "
                        "meta-batch as one batch, whichever is faster)" if floor else ""))
    if not has_learn2learn():
        lines.append("(learn2learn is not installed: scripts/install-learn2learn.sh adds it to these rows)")
    lines.append("")
    for cfg in bench_configs(manifest, claim_id):
        by_path = table[table["algorithm"] == cfg.run].set_index("implementation")
        chosen = choose_path(cfg, build_model(cfg), torch.device(device))
        row = by_path.loc[chosen] if chosen in by_path.index else by_path.iloc[0]
        ms = row["ms/it"] + row["curve point ms/it"]
        hours = cfg.hyperparameters["iterations"] * ms / 1000 / 3600
        took = f"{hours:.1f} h" if hours >= 1 else f"{60 * hours:.1f} min"
        curve = ""
        if row["curve point ms/it"]:
            every = cfg.evaluation["during_training"]["every"]
            curve = (f", {1000 / ms:.3g} it/s with the learning-curve point it takes "
                     + ("after every iteration" if every == 1 else f"every {every} iterations"))
        lines.append(f"{cfg.run}: the runner's path on {device} is {row.name}; the paper's "
                     f"{cfg.hyperparameters['iterations']} iterations take {took} ({row['it/s']:.3g} it/s{curve})")
    return "\n".join(lines)
