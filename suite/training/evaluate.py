"""Episodic evaluation: fine-tune a trained model on each fixed test task's support set and measure the query
set after each recorded number of steps. Every run of a claim sees the same seeded test tasks."""
from __future__ import annotations

import math

from tqdm import tqdm

from suite.algorithms.base import map_tasks
from suite.algorithms.bmaml import ParticleModel
from suite.algorithms.inner import finetune, inner_batches, scheduled_finetune
from suite.lazy import lazy
from suite.protocol.fields import (INTERVALS, first_frozen_set_only, frozen_sets_and_suffixes, metric_suffixes,
                                   modes_and_suffixes)
from suite.tasks.base import TaskBatch, seeded_generator

# imported on first use: a run's identity reads NUMERICS_VERSION where torch may not be installed
torch = lazy("torch")

# Bump when a change alters what the evaluation computes: its test tasks, fine-tuning or metrics (then regenerate
# tests/goldens/).
NUMERICS_VERSION = 1


def finetuned_names(model, frozen_blocks) -> frozenset[str]:
    """The parameters test-time fine-tuning updates: those the model's inner loops update, outside the frozen
    conv blocks."""
    frozen = set().union(*(model.conv_block_names(b) for b in frozen_blocks))
    return frozenset(model.inner_loop_names - frozen)


def predict(model, params, support_x, query_x, batch_norm: str):
    """Query outputs. Non-transductive: each query is normalised in a batch with the support set only."""
    if batch_norm != "non-transductive":
        return model.forward(params, query_x)
    return model.forward_each(params, support_x, query_x)


def query_outputs(model, params, support_x, query_x, batch_norm) -> dict:
    """{metric suffix of each batch-norm mode: the query outputs in that mode}."""
    return {suffix: predict(model, params, support_x, query_x, mode) for mode, suffix in modes_and_suffixes(batch_norm)}


def output_metrics(model, outputs: dict, query_y) -> dict:
    out = {}
    for suffix, pred in outputs.items():
        for name in model.metrics:
            out[name + suffix] = model.mean_metric(name, pred, query_y)
    return out


def query_metrics(model, params, support_x, query_x, query_y, batch_norm) -> dict:
    return output_metrics(model, query_outputs(model, params, support_x, query_x, batch_norm), query_y)


def proximal_loss(model, trained, names, config):
    """The loss test-time fine-tuning descends: the model's, plus λ/2‖φ − θ‖² over the fine-tuned parameters when
    the evaluation has `proximal_lam` (iMAML's inner problem, arXiv 1909.04630 Eq. 4, θ the trained parameters); one
    per task for a grouped batch."""
    if "proximal_lam" not in config:
        return model.loss
    lam = config["proximal_lam"]

    def loss(p, x, y):
        return model.loss(p, x, y) + lam / 2 * sum(((p[k] - trained[k]) ** 2).flatten(model.task_dims).sum(-1)
                                                   for k in names)

    return loss


def finetune_curve(model, params, support_x, support_y, query_x, query_y, batches, config, lr=None,
                   initial_state=None, frozen_blocks=(), schedule=None, members: int = 1) -> dict:
    """Metrics of one task after each recorded step count: {metric: tensor[len(steps)]}, with the conv blocks
    `frozen_blocks` left as trained. `schedule`: the learner's own per-step inner loop (Learner.schedule), which
    then replaces the evaluation's optimiser. `members` > 1: params hold an ensemble's trained models along a
    dimension after the task dimensions; each is fine-tuned alone and the metrics are those of their mean outputs
    (MAML++'s code averages its top models' query logits)."""
    optimizer = dict(config["optimizer"], lr=lr if lr is not None else config["optimizer"]["lr"])
    names = finetuned_names(model, frozen_blocks)

    def outputs_after_steps(trained):
        loss = proximal_loss(model, trained, names, config)

        def measure(p):
            return query_outputs(model, p, support_x, query_x, config["batch_norm"])

        if schedule is None:
            return finetune(loss, trained, support_x, support_y, optimizer, names, config["steps"], measure, batches,
                            initial_state)
        if batches is not None or optimizer["name"] != "sgd" or frozen_blocks:
            raise ValueError("a learner with its own per-step inner loop fine-tunes as it trained: full-batch sgd, "
                             "nothing frozen")
        return scheduled_finetune(model, schedule, loss, trained, support_x, support_y, config["steps"], measure)

    if members == 1:
        records = [output_metrics(model, o, query_y) for o in outputs_after_steps(params)]
    else:
        each = [outputs_after_steps({k: v.select(model.task_dims, j) for k, v in params.items()})
                for j in range(members)]
        records = [output_metrics(model, {suffix: torch.stack([e[i][suffix] for e in each]).mean(0)
                                          for suffix in each[0][i]}, query_y) for i in range(len(each[0]))]
    return {name: torch.stack([r[name] for r in records], -1) for name in records[0]}  # [(tasks,) steps]


TASK_STREAM, BATCH_STREAM = 1, 2


def test_split(config) -> str:
    """The split the test tasks come from (suite.protocol.fields.EVALUATION's test_split)."""
    return config.get("test_split", "test")


def fixed_tasks(family, config, n_tasks: int, seed: int, split: str):
    """ids -> the TaskBatch of those fixed tasks of `split`: task i drawn from a generator seeded by (seed, i)
    alone; or, when the evaluation says `test_tasks`, the first n_tasks test tasks drawn at once as that paper's
    code draws them, from its own stream."""
    if split == "test" and "test_tasks" in config:
        drawn = family.sample_as_code(config["test_tasks"], n_tasks, config["shots"], config["queries"], seed)
        return lambda ids: drawn[ids.start:ids.stop]
    return lambda ids: TaskBatch.cat([family.sample(1, config["shots"], config["queries"],
                                                    seeded_generator(seed, i, TASK_STREAM), split) for i in ids])


def evaluate_on_tasks(model, params, family, n_tasks: int, seed: int, split: str, config, device, path: str,
                      chunk: int, lr=None, progress: dict | None = None, initial_state=None, schedule=None,
                      members: int = 1) -> dict:
    """{metric@step: per-task values} on tasks 0..n_tasks−1 of `split`, fine-tuning from `params` on each.
    Task i (and its fine-tuning mini-batches) is drawn from a generator seeded by (seed, i) alone, so the tasks
    are the same for every run, chunk size and device; each set of frozen blocks fine-tunes on the same task.
    `schedule`, `members`: as finetune_curve's."""
    params = {k: p.detach() for k, p in params.items()}

    def curves_for_task(m, p, sx, sy, qx, qy, b):
        out = {}
        for frozen, suffix in frozen_sets_and_suffixes(config):
            curve = finetune_curve(m, p, sx, sy, qx, qy, b, config, lr, initial_state, frozen, schedule, members)
            out.update({name + suffix: values for name, values in curve.items()})
        return out

    tasks = fixed_tasks(family, config, n_tasks, seed, split)
    per_metric: dict[str, list] = {}
    for start in tqdm(range(0, n_tasks, chunk), disable=progress is None,
                      **{"desc": "evaluating", "unit": "chunk", "leave": False, **(progress or {})}):
        ids = range(start, min(start + chunk, n_tasks))
        part = tasks(ids).to(device)
        b = None  # the fine-tuning mini-batches: per step, [tasks, size] indices
        if config["batch_size"] != "full":
            b = list(torch.cat([inner_batches(1, part.support_x.shape[1], config["batch_size"],
                                              max(config["steps"][-1], 1), seeded_generator(seed, i, BATCH_STREAM))
                                for i in ids]).to(device).unbind(1))
        curves = map_tasks(curves_for_task, path, model, params, *part.tensors(), b)
        for name, values in curves.items():
            per_metric.setdefault(name, []).append(values.cpu().double())
    out = {}
    for name, chunks in per_metric.items():
        values = torch.cat(chunks)  # [tasks, len(steps)]
        metric, _, suffix = name.partition("/")
        for j, step in enumerate(config["steps"]):
            out[f"{metric}@{step}" + (f"/{suffix}" if suffix else "")] = values[:, j].tolist()
    return out


def _primary_point(model, params, family, config, n_tasks: int, seed: int, split: str, device, path: str,
                   chunk: int, initial_state, schedule) -> tuple[str, float]:
    """(metric, mean over the tasks) of the primary metric after the last fine-tuning step, in the first
    batch-norm mode and with the first set of frozen blocks (the only one fine-tuned). The query set is measured
    after that step alone: the fine-tuning does not depend on the steps measured before it, so the value is the
    same, at a fifth less of the cost for steps [0, 5]."""
    config = dict(first_frozen_set_only(config), steps=config["steps"][-1:])
    episodes = evaluate_on_tasks(model, params, family, n_tasks, seed, split, config, device, path, chunk,
                                 initial_state=initial_state, schedule=schedule)
    name = ("mse" if model.loss_name == "mse" else "accuracy") + f"@{config['steps'][-1]}" + \
        metric_suffixes(config)[0]
    values = episodes[name]
    return name, sum(values) / len(values)


def curve_point(model, params, family, config, device, path: str, chunk: int, iteration: int,
                initial_state=None, schedule=None) -> tuple[str, float]:
    """(metric, mean) on the fresh test tasks of this iteration's learning-curve point (_primary_point)."""
    spec = config["during_training"]
    return _primary_point(model, params, family, config, spec["tasks"], spec["seed"] * 10**9 + iteration, "test",
                          device, path, chunk, initial_state, schedule)


def validation_point(model, params, family, config, device, path: str, chunk: int, initial_state=None,
                     schedule=None) -> tuple[str, float]:
    """(metric, mean) on the selection's fixed validation tasks (the same at every point: model selection
    compares like with like), the primary metric as _primary_point measures it."""
    spec = config["selection"]
    return _primary_point(model, params, family, config, spec["tasks"], spec["seed"], "val", device, path, chunk,
                          initial_state, schedule)


def summarise(values: list[float], interval: str) -> dict:
    """Mean, std (population, as np.std) and the interval the evaluation names (ci95-normal: 1.96·std/√n) of
    per-task values."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return {"mean": mean, "std": std, "ci95": INTERVALS[interval] * std / math.sqrt(n), "n": n}


def evaluate(model, params, family, config, device, path: str, chunk: int, progress: dict | None = None,
             training_state=None, schedule=None, members: int = 1) -> dict:
    """The claim's evaluation for one trained model (or an ensemble of `members`, stacked as finetune_curve reads
    them): optional lr search on validation tasks, then the test tasks. `training_state` is the inner optimiser
    state training left, used when optimizer_state is 'from-training'; `schedule` the learner's own inner loop."""
    if model.loss_name == "return":  # a policy (MAML-RL): returns after policy-gradient steps
        return evaluate_returns(model, params, family, config, device, schedule)
    initial_state = training_state if config["optimizer_state"] == "from-training" else None
    lr, search = None, None
    if "lr_search" in config and schedule is not None:
        raise ValueError("evaluation.lr_search: a learner with its own per-step inner loop (MAML++) fine-tunes with "
                         "its own rates; remove the lr search")
    if "lr_search" in config:
        s = config["lr_search"]
        search = []
        for candidate in s["candidates"]:
            episodes = evaluate_on_tasks(model, params, family, s["tasks"], s["seed"], "val",
                                         first_frozen_set_only(config), device, path, chunk, lr=candidate,
                                         initial_state=initial_state)
            search.append({"lr": candidate, "score": _search_score(episodes, config)})
        lr = min(search, key=lambda r: r["score"])["lr"]
    episodes = evaluate_on_tasks(model, params, family, config["tasks"], config["seed"], test_split(config), config,
                                 device, path, chunk, lr=lr, progress=progress, initial_state=initial_state,
                                 schedule=schedule, members=members)
    return {
        "metrics": {name: summarise(values, config["interval"]) for name, values in episodes.items()},
        "episodes": episodes,
        "finetune_lr": lr if lr is not None else config["optimizer"]["lr"],
        "lr_search": search,
        "examples": regression_examples(model, params, family, config, device, lr, schedule)
        if hasattr(family, "curve") and members == 1 else [],
    }


def evaluate_returns(model, params, family, config, device, schedule) -> dict:
    """A policy's evaluation: on `tasks` fixed test tasks (drawn at once from (seed, 0), or as a released code
    draws them: `test_tasks`), its mean return over
    `shots` fresh trajectories after each recorded number of policy-gradient steps (schedule: the learner's own
    steps, at the evaluation's step sizes), the trajectories from their own stream (seed, 0, BATCH_STREAM)."""
    if "test_tasks" in config:
        tasks = family.sample_as_code(config["test_tasks"], config["tasks"], config["shots"], config["queries"],
                                      config["seed"])
    else:
        tasks = family.sample(config["tasks"], config["shots"], config["queries"],
                              seeded_generator(config["seed"], 0, TASK_STREAM), "test")
    tasks = tasks.to(device)
    lrs = step_sizes(config)
    returns, examples = schedule.returns(model, params, tasks, config["steps"], lrs,
                                         seeded_generator(config["seed"], 0, BATCH_STREAM), examples=EXAMPLES)
    episodes = {f"return@{s}": returns[s].double().cpu().tolist() for s in config["steps"]}
    return {"metrics": {name: summarise(values, config["interval"]) for name, values in episodes.items()},
            "episodes": episodes, "finetune_lr": lrs[0] if lrs else config["optimizer"]["lr"], "lr_search": None,
            "examples": examples}


def step_sizes(config) -> list[float]:
    """The size of each test-time step: the optimizer's lr, then `later_lr` after the first where the evaluation
    has one (MAML-RL's test: 0.1, then 0.05)."""
    n = config["steps"][-1]
    return [config["optimizer"]["lr"]] + [config.get("later_lr", config["optimizer"]["lr"])] * max(n - 1, 0)


EXAMPLES, GRID = 3, 200


def regression_examples(model, params, family, config, device, lr=None, schedule=None) -> list[dict]:
    """For the first test tasks: the true function on a grid, the support points, and the model's predictions
    on the grid after each recorded number of fine-tuning steps (the MAML paper's Figure 2); for a set of particles
    (ParticleModel: BMAML's, PLATIPUS's samples) also each particle's function ("samples", PLATIPUS's Figure 1:
    the sampled functions). `schedule`: the learner's own fine-tuning, as evaluate_on_tasks takes it."""
    params = {k: p.detach() for k, p in params.items()}
    optimizer = dict(config["optimizer"], lr=lr if lr is not None else config["optimizer"]["lr"])
    particles = isinstance(model, ParticleModel)
    out = []
    for i in range(EXAMPLES):
        task = family.sample(1, config["shots"], config["queries"], seeded_generator(config["seed"], i, TASK_STREAM),
                             "test")[0].to(device)
        grid_x, grid_y = family.curve(seeded_generator(config["seed"], i, TASK_STREAM), GRID)
        grid = grid_x.to(device)

        def measure(p):
            return model.forward(p, grid).detach()

        if schedule is None:
            outputs = finetune(model.loss, params, task.support_x, task.support_y, optimizer, model.inner_loop_names,
                               config["steps"], measure)
        else:
            outputs = scheduled_finetune(model, schedule, model.loss, params, task.support_x, task.support_y,
                                         config["steps"], measure)
        example = {"support_x": task.support_x.flatten().tolist(), "support_y": task.support_y.flatten().tolist(),
                   "x": grid_x.flatten().tolist(), "y": grid_y.flatten().tolist(),
                   "predictions": {str(s): (model.prediction_of(o) if particles else o).flatten().tolist()
                                   for s, o in zip(config["steps"], outputs)}}
        if particles:
            example["samples"] = {str(s): o.flatten(1).tolist() for s, o in zip(config["steps"], outputs)}
        out.append(example)
    return out


def _search_score(episodes: dict, config) -> float:
    """Lower is better: mean query loss over the recorded step counts after at least one step (−accuracy for
    classification), so the chosen lr is good across the whole fine-tuning curve."""
    name = "mse" if any(k.startswith("mse@") for k in episodes) else "accuracy"
    suffix = metric_suffixes(config)[0]
    steps = [s for s in config["steps"] if s > 0] or config["steps"]
    score = sum(sum(v) / len(v) for v in (episodes[f"{name}@{s}{suffix}"] for s in steps)) / len(steps)
    return score if name == "mse" else -score
