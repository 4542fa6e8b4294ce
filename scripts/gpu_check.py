"""The speed issue's GPU checks, in one run of well under 10 minutes (see scripts/gpu-check.sh for the command):

1. every path's MAML, first-order MAML and ANIL meta-gradient on the GPU, in float64, against the per-task loop on
   the CPU (a Conv4 with batch norm, small enough to be quick);
2. the captured step (suite.training.graphs, `suite run --cuda-graph`) against the eager one on the GPU, at the
   Omniglot claims' own shapes: milliseconds per meta-iteration of each, what 60,000 captured iterations take (the
   target: ≤ 10 minutes for 5-way 1-shot), and how far the two trainings' parameters drift apart;
3. `suite bench --claim omniglot-maml` on the GPU: seconds per iteration of every path at the claims' shapes, whose
   last lines give what the paper's 60,000 iterations take on the runner's path.

Prints a markdown report; writes it to $OUT/gpu-check.md as well when OUT is set.
"""
import os
import subprocess
import sys
import time

import torch

from suite.algorithms import anil, fomaml, maml
from suite.models.functional import FunctionalModel
from suite.protocol import load_manifest
from suite.protocol.components import algorithms
from suite.tasks.base import TaskBatch
from suite.training.graphs import WARMUP, CapturedStep
from suite.training.paths import PATHS
from suite.training.run import build_model, initial_params, make_learner

BENCH_SECONDS = int(os.environ.get("BENCH_SECONDS", "400"))  # each measurement is a fresh process: 20 for this
# claim, which took over 60 s on an H200 (scripts/gpu-campaign.sh skips it and times the runs with suite plan)
ITERATIONS = os.environ.get("BENCH_ITERATIONS", "30")
CONV = {"kind": "conv", "in_channels": 1, "image_size": 28, "filters": 16, "layers": 4, "downsample": "stride",
        "batch_norm_eps": 1e-3, "batch_norm_scale": False, "batch_norm_adapted": False, "head": "mean-pool",
        "init": "maml-code"}


def gradient_checks(device) -> list[str]:
    torch.set_default_dtype(torch.float64)
    model = FunctionalModel(CONV, in_dim=1, out_dim=5, loss="cross_entropy", loss_scale=5.0, loss_reduction="mean")
    g = torch.Generator().manual_seed(0)
    images = torch.randn(4, 10, 1, 28, 28, generator=g)
    labels = torch.arange(5).repeat(4, 1)
    params = model.init_params(1, dtype=torch.float64)
    lines = ["| algorithm | path | max abs difference from the CPU loop | max abs gradient |", "|---|---|---|---|"]
    for algorithm in (maml, fomaml, anil):
        def gradient(path, where):
            tasks = TaskBatch(images[:, :5], labels, images[:, 5:], labels).to(where)
            leaf = {k: v.to(where).clone().requires_grad_(True) for k, v in params.items()}
            grads, _ = algorithm.meta_gradient(model, leaf, tasks, 2, 0.4, path)
            return {k: v.cpu() for k, v in grads.items()}

        reference = gradient("loop", "cpu")
        for path in PATHS:
            grads = gradient(path, device)
            diff = max((grads[k] - reference[k]).abs().max().item() for k in reference)
            scale = max(reference[k].abs().max().item() for k in reference)
            lines.append(f"| {algorithm.__name__.split('.')[-1]} | {path} | {diff:.2e} | {scale:.2e} |")
    torch.set_default_dtype(torch.float32)
    return lines


# (claim, run, paths) whose step is timed eager and captured: 5-way and 20-way, 1- and 5-shot
CAPTURED = [("omniglot-maml", "n5-k1", ("grouped", "vmap")), ("omniglot-maml", "n5-k5", ("grouped",)),
            ("omniglot-maml", "n20-k1", ("grouped",)), ("omniglot-maml", "n20-k5", ("grouped",)),
            ("anil-omniglot", "maml-n20-k5", ("grouped",)), ("anil-omniglot", "anil-n20-k5", ("grouped",))]
TIMED = int(os.environ.get("CAPTURED_ITERATIONS", "30"))  # iterations timed after the warm-up, each way


def captured_checks(device) -> list[str]:
    """Each CAPTURED run's paper step, float32, eager (learner.step) and captured (CapturedStep), from the same
    initial parameters on the same random 28×28 meta-batches (four, in turn): time per iteration after WARMUP + 2
    iterations, and the largest parameter difference after all of them (capturable Adam rounds its bias correction
    differently, so a small drift is expected; a large one is a capture bug)."""
    manifest = load_manifest()
    lines = ["| claim | run | path | eager ms/it | captured ms/it | speed-up | 60,000 captured its, min | "
             "max parameter difference |", "|---|---|---|---|---|---|---|---|"]
    for claim, run, paths in CAPTURED:
        cfg = manifest.claim(claim).run_configs("paper", runs=[run], seeds=[0])[0]
        n_tasks, shots, queries = algorithms()[cfg.algorithm].task_shape(cfg.hyperparameters)
        ways = cfg.task["ways"]
        g = torch.Generator().manual_seed(0)
        batches = [TaskBatch(torch.rand(n_tasks, ways * shots, 1, 28, 28, generator=g),
                             torch.arange(ways).repeat_interleave(shots).repeat(n_tasks, 1),
                             torch.rand(n_tasks, ways * queries, 1, 28, 28, generator=g),
                             torch.arange(ways).repeat_interleave(queries).repeat(n_tasks, 1)).to(device)
                   for _ in range(4)]
        model = build_model(cfg)
        for path in paths:
            params = initial_params(cfg, model, device)
            eager = make_learner(cfg, model, params, path)
            captured = make_learner(cfg, model, params, path)
            times = {}
            for name, step in (("eager", eager.step), ("captured", CapturedStep(captured, device).step)):
                for i in range(WARMUP + 2):
                    step(batches[i % 4], i, None)
                sync(device)
                began = time.perf_counter()
                for i in range(WARMUP + 2, WARMUP + 2 + TIMED):
                    step(batches[i % 4], i, None)
                sync(device)
                times[name] = (time.perf_counter() - began) / TIMED
            diff = max((eager.params[k] - captured.params[k]).abs().max().item() for k in params)
            lines.append(f"| {claim} | {run} | {path} | {1e3 * times['eager']:.1f} | {1e3 * times['captured']:.1f} | "
                         f"{times['eager'] / times['captured']:.1f}x | {60000 * times['captured'] / 60:.1f} | "
                         f"{diff:.1e} |")
            del eager, captured
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return lines


def sync(device):
    if device.type == "cuda":  # (on a CPU, a dry run of the script's code: the captured step runs eagerly there)
        torch.cuda.synchronize(device)


def main():
    device = torch.device("cuda")
    report = [f"# GPU check: {torch.cuda.get_device_name(device)}, torch {torch.__version__}", "",
              "## Meta-gradients, float64, against the CPU loop", ""]
    began = time.perf_counter()
    report += gradient_checks(device)
    report += ["", f"({time.perf_counter() - began:.0f} s)", "", "## The captured step against the eager one", ""]
    write(report, show=False)
    began = time.perf_counter()
    try:
        report += captured_checks(device)
    except Exception as e:  # a capture bug must not cost the rest of the call
        report += [f"(failed: {type(e).__name__}: {e})"]
    report += ["", f"({time.perf_counter() - began:.0f} s)", "", "## suite bench --claim omniglot-maml --device cuda",
               ""]
    write(report, show=False)  # the gradients are kept even if the bench runs out of time
    if BENCH_SECONDS <= 0:  # scripts/gpu-campaign.sh times the runs with suite plan instead
        write(report + ["(skipped: BENCH_SECONDS=0)"])
        return
    try:
        bench = subprocess.run([sys.executable, "-m", "suite.cli", "bench", "--claim", "omniglot-maml", "--device",
                                "cuda", "--iterations", ITERATIONS, "--warmup", "3"], capture_output=True, text=True,
                               timeout=BENCH_SECONDS)
        report += [bench.stdout, bench.stderr[-3000:] if bench.returncode else ""]
    except subprocess.TimeoutExpired as e:
        report += [f"(the bench ran out of its {BENCH_SECONDS} s)", (e.stdout or b"").decode()]
    write(report)


def write(report: list[str], show: bool = True):
    text = "\n".join(report)
    if show:
        print(text)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "gpu-check.md"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
