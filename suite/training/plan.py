"""`suite plan`: what each claim's paper runs cost on this machine, measured, not guessed.

For each run of a claim (once: its seeds cost the same) on the path the runner takes for it: training iterations
are timed after a warm-up (at least `iterations` of them, and at least MIN_SECONDS' worth), one learning-curve
point where the run records a curve, and up to TIMED_TASKS of its test tasks; each is multiplied by how many of
them the paper run does (a validation task for model selection counted at a test task's cost, an ensemble's test
task at k times it: upper bounds). On generated Mini-ImageNet data the shapes,
and so the times, are the real data's.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch

from suite.protocol import PAPER, Manifest
from suite.protocol.components import algorithms
from suite.protocol.fields import measures_resources, selects_by_validation
from suite.tasks.base import seeded_generator
from suite.training.evaluate import evaluate_on_tasks, evaluate_returns
from suite.training.loop import learning_curve_point
from suite.training.paths import choose_path
from suite.training.run import build, initial_params, make_learner


MIN_SECONDS = 2.0  # timed iterations last at least this long, however cheap
TIMED_TASKS = 32  # test tasks timed (at most one chunk of them, as the evaluation computes them)


def _clock(device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def measure_run(cfg, device: torch.device, data_dir: Path, iterations: int, warmup: int) -> dict:
    """Seconds per training iteration, per learning-curve point and per test task, on the run's own path."""
    family, model = build(cfg, data_dir)
    path = choose_path(cfg, model, device)
    learner = make_learner(cfg, model, initial_params(cfg, model, device), path)
    tuned = learner.evaluated(model.adapting_only(learner.inner_loop_names), cfg.evaluation)  # as run.py evaluates it
    n_tasks, shots, queries = algorithms()[cfg.algorithm].task_shape(cfg.hyperparameters)

    def step(it):
        generator = seeded_generator(cfg.seed, it)
        learner.step(family.sample(n_tasks, shots, queries, generator, split="train").to(device), it, generator)

    for it in range(warmup):
        step(it)
    began, it = _clock(device), warmup
    while it < warmup + iterations or _clock(device) - began < MIN_SECONDS:  # cheap steps: time a second's worth
        step(it)
        it += 1
    step_seconds = (_clock(device) - began) / (it - warmup)
    curve_seconds = 0.0
    if cfg.evaluation.get("during_training"):
        began = _clock(device)
        learning_curve_point(cfg, tuned, learner, family, device, path, it)
        curve_seconds = _clock(device) - began
    e = cfg.evaluation
    if measures_resources(e):  # no test tasks
        return {"path": path, "step": step_seconds, "curve point": curve_seconds, "test task": 0.0}
    chunk = min(cfg.execution["eval_chunk"], e["tasks"], TIMED_TASKS)
    began = _clock(device)
    if tuned.loss_name == "return":  # a policy: its test tasks' returns after each step
        evaluate_returns(tuned, learner.params, family, dict(e, tasks=chunk), device, learner.schedule)
    else:
        evaluate_on_tasks(tuned, learner.params, family, chunk, e["seed"], "test", e, device, path, chunk,
                          initial_state=learner.inner_state, schedule=learner.schedule)
    task_seconds = (_clock(device) - began) / chunk
    return {"path": path, "step": step_seconds, "curve point": curve_seconds, "test task": task_seconds}


def run_cost(cfg, measured: dict) -> dict:
    """Hours of one paper run: training (with its curve points) and evaluation (its lr search and test tasks)."""
    iterations, e = cfg.hyperparameters["iterations"], cfg.evaluation
    points = -(-iterations // e["during_training"]["every"]) if e.get("during_training") else 0
    validated = 0
    if selects_by_validation(e):  # every `every` iterations and after the last
        validated = (iterations // e["selection"]["every"] + bool(iterations % e["selection"]["every"])) * \
            e["selection"]["tasks"]
    train = iterations * measured["step"] + points * measured["curve point"] + validated * measured["test task"]
    searched = len(e["lr_search"]["candidates"]) * e["lr_search"]["tasks"] if "lr_search" in e else 0
    members = e["selection"].get("k", 1) if selects_by_validation(e) else 1
    # an lr-search task fine-tunes one set of frozen blocks; counting it at a test task's cost is an upper bound
    evaluation = (e.get("tasks", 0) * members + searched) * measured["test task"]  # resources: no test task
    return {"training h": train / 3600, "evaluation h": evaluation / 3600}


def measure_plan(manifest: Manifest, claim_ids: list[str], device: torch.device, data_dir: Path, iterations: int,
                 warmup: int, log=print, profile: str = PAPER) -> list[dict]:
    """One row per run of each claim: what it was timed at (seconds per training iteration, curve point and test
    task, on its own path) and its hours, for all its seeds (`config_hashes`, one per seed, say which
    configurations the row is of). A run whose training another claim's run also needs (Manifest.
    shared_across_claims) names it (`same training`); a claim's table is its cost alone, and `planned already` is
    the training hours an earlier row of this plan already counts (one training serves both)."""
    rows = []
    across = manifest.shared_across_claims(profile)
    planned = set()  # (seed, training_key) of the trainings this plan has counted
    for claim_id in claim_ids:
        claim = manifest.claim(claim_id)
        twins = claim.trained_by(profile)
        for name in claim.body(profile)["runs"]:
            configs = claim.run_configs(profile, runs=[name])
            log(f"timing {claim_id} / {name} ...")
            measured = measure_run(configs[0], device, data_dir, iterations, warmup)
            cost = run_cost(configs[0], measured)
            if name in twins:  # its training is an earlier run's, trained once (shared_trainings)
                cost["training h"] = 0.0
            shared = [(cfg.seed, cfg.training_key) for cfg in configs if cfg.shares_training]
            already = sum(key in planned for key in shared)
            planned.update(shared)
            rows.append({"claim": claim_id, "run": name, "seeds": len(configs), "path": measured["path"],
                         "s/it": measured["step"], "iterations": configs[0].hyperparameters["iterations"],
                         **{k: v * len(configs) for k, v in cost.items()},
                         "curve point s": measured["curve point"], "test task s": measured["test task"],
                         "config_hashes": [cfg.hash for cfg in configs], "trained by": twins.get(name),
                         "same training": list(dict.fromkeys(o for cfg in configs
                                                             for o in across.get((claim_id, name, cfg.seed), []))),
                         "planned already": cost["training h"] * already})
    return rows


def plan_text(rows: list[dict], device: torch.device, iterations: int, warmup: int, profile: str = PAPER) -> str:
    """measure_plan's rows as `suite plan` prints them: per run, per claim, and in all."""
    table = pd.DataFrame(rows)[["claim", "run", "seeds", "path", "s/it", "iterations", "training h", "evaluation h"]]
    table["total h"] = table["training h"] + table["evaluation h"]
    per_claim = table.groupby("claim", sort=False)[["training h", "evaluation h", "total h"]].sum()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    shared = [f"{r['claim']} / {r['run']}: trained by {r['trained by']} (the same training), so its training h is 0"
              for r in rows if r.get("trained by")]
    shared += [f"{r['claim']} / {r['run']}: the same training as {', '.join(r['same training'])}; one training serves "
               "both, whichever claim trains it first" for r in rows if r.get("same training")]
    once = sum(r.get("planned already", 0.0) for r in rows)
    return "\n".join([
        f"{profile.capitalize()}-profile cost on {device} ({name}, {torch.get_num_threads()} threads), from "
        f"{iterations} timed iterations after {warmup} warm-up per run, one curve point and one chunk of test tasks:", "",
        table.to_markdown(index=False, floatfmt=".3g"), *([""] + shared if shared else []), "",
        "Per claim (hours, all seeds):", "",
        per_claim.to_markdown(floatfmt=".3g"), "",
        f"All: {per_claim['total h'].sum() - once:.3g} h (one run at a time; `suite run --jobs N` runs N side by side"
        + (f"; the trainings two claims share counted once, {once:.3g} h less than the claims' sum" if once else "")
        + ")."])
