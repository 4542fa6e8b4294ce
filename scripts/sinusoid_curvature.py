"""Why does 10-step fine-tuning diverge on a few sinusoid test tasks? Gradient descent with step α on a loss whose
Hessian has an eigenvalue above 2/α is unstable along that direction. This script computes, for each test task of a
trained maml-sinusoid run, the largest eigenvalue of the Hessian of its support loss at the trained start, and
compares it with 2/α and with whether the task diverged in the committed result (by the claim's
expectations.divergence bound).

    python scripts/sinusoid_curvature.py --seed 0                       # the run's own test tasks
    python scripts/sinusoid_curvature.py --seed 0 --variant code-test-tasks

It reads checkpoints/ (the run's final.pt: train it first with `suite run --claim maml-sinusoid`) and the committed
results.json; it writes nothing. Each task's Hessian is computed in full (1,761 parameters, float64): about ten
CPU-minutes for 600 tasks.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from torch.func import hessian

from suite.protocol import load_manifest
from suite.training.evaluate import fixed_tasks
from suite.training.layout import checkpoint_dir, run_dir
from suite.training.run import build, trained_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", default="maml")
    parser.add_argument("--variant", help="a sensitivity variant of the run (its evaluation decides the tasks)")
    parser.add_argument("--results", default="results")
    parser.add_argument("--tasks", type=int, help="only the first N test tasks (default: all of them)")
    args = parser.parse_args()

    claim = load_manifest("benchmarks.yaml").claim("maml-sinusoid")
    configs = (claim.variant_configs(seeds=[args.seed], variants=[args.variant], runs=[args.run]) if args.variant
               else claim.run_configs(seeds=[args.seed], runs=[args.run]))
    cfg = configs[0]
    family, model = build(cfg, Path("datasets"))
    ckpt = checkpoint_dir(Path(args.results), cfg, None, trained_path(Path(args.results), cfg, None)) / "final.pt"
    params = {k: v.double() for k, v in torch.load(ckpt, weights_only=False)["params"].items()}
    e = cfg.evaluation
    tasks = fixed_tasks(family, e, e["tasks"], e["seed"], "test")(range(e["tasks"]))  # the evaluation's own tasks
    episodes = json.loads((run_dir(Path(args.results), cfg) / "results.json").read_text())["episodes"]
    last = f"mse@{e['steps'][-1]}"
    bound = claim.body()["expectations"]["divergence"]["loss_above"]
    diverged = [not math.isfinite(v) or v > bound for v in episodes[last]]

    names, shapes = list(params), [p.shape for p in params.values()]
    flat0 = torch.cat([p.reshape(-1) for p in params.values()])

    def support_loss(flat, x, y):
        chunks = torch.split(flat, [s.numel() for s in shapes])
        p = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
        return model.loss(p, x.double(), y.double())

    top = []
    n = min(args.tasks or e["tasks"], e["tasks"])
    diverged = diverged[:n]
    for i in range(n):
        task = tasks[i]
        h = hessian(support_loss)(flat0, task.support_x, task.support_y)
        top.append(torch.linalg.eigvalsh(h)[-1].item())
    limit = 2 / e["optimizer"]["lr"]
    above = [t > limit for t in top]
    both = sum(a and d for a, d in zip(above, diverged))
    print(f"maml-sinusoid {cfg.run}{'/' + cfg.variant if cfg.variant else ''} seed {args.seed}: {n} test "
          f"tasks, α = {e['optimizer']['lr']}, 2/α = {limit:g}")
    print(f"  largest Hessian eigenvalue of the support loss at the trained start: median "
          f"{sorted(top)[len(top) // 2]:.3g}, max {max(top):.3g}")
    print(f"  tasks above 2/α: {sum(above)}; diverged by step {e['steps'][-1]} (MSE > {bound:g} or not "
          f"finite): {sum(diverged)}; both: {both}")
    for i in sorted(range(len(top)), key=lambda i: -top[i])[:8]:
        print(f"    task {i}: λ_max {top[i]:.4g}, {last} {episodes[last][i]:.4g}")


if __name__ == "__main__":
    main()
