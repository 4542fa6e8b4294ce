"""Episodic evaluation: fine-tune a trained model on each fixed test task's support set and measure the query
set after each recorded number of steps. Every run of a claim sees the same seeded test tasks."""
from __future__ import annotations

import math

import torch
from tqdm import tqdm
import torch.nn.functional as F
from torch.func import grad, vmap

from suite.algorithms.base import OPTIMIZER_SCHEMA, check_optimizer
from suite.algorithms.inner import InnerOptimizer
from suite.algorithms.reptile import inner_batches
from suite.schema import Field, ManifestError
from suite.tasks.base import TaskBatch, seeded_generator

BN_MODES = ("transductive", "non-transductive")

EVALUATION_SCHEMA = {
    "tasks": Field("positive_int", doc="number of fixed test tasks"),
    "seed": Field("seed", doc="seed of the test tasks (the same for every run of the claim)"),
    "shots": Field("positive_int", doc="support points, or images per class, of a test task"),
    "queries": Field("positive_int", doc="query points, or images per class, of a test task"),
    "steps": Field("step_list", doc="fine-tuning step counts at which the query set is measured"),
    "optimizer": Field(OPTIMIZER_SCHEMA, doc="test-time fine-tuning optimiser"),
    "batch_size": Field(lambda v, where: v if v == "full" else _positive_int(v, where),
                        doc="'full' (the whole support set each step) or points per mini-batch"),
    "batch_norm": Field(lambda v, where: _batch_norm_modes(v, where),
                        doc="test-time batch-norm mode: 'transductive' normalises all queries together (MAML's "
                            "code); 'non-transductive' predicts each query in a batch with the support set only "
                            "(Reptile's definition); 'none' for models without batch norm. A list measures each "
                            "mode on the same fine-tuned model, as metrics named like accuracy@50/transductive"),
    "interval": Field("str", choices=("ci95-normal",), doc="1.96·std/√n over tasks, as MAML's code computes it"),
    "optimizer_state": Field("str", choices=("fresh", "from-training"),
                             doc="'fresh': each test task's fine-tuning starts a new optimiser; 'from-training': it "
                                 "starts from the inner Adam state training left (supervised-reptile's evaluation "
                                 "restores all variables, Adam's included, after each task)"),
    "during_training": Field({
        "every": Field("positive_int", doc="meta-iterations between two points of the test-accuracy curve"),
        "tasks": Field("positive_int", doc="fresh test tasks evaluated at each point"),
        "seed": Field("seed"),
    }, required=False, doc="a learning curve on test tasks while training (supervised-reptile evaluates one "
                           "train and one test task every --eval-interval iterations)"),
    "frozen_layers": Field(lambda v, where: _frozen_layer_sets(v, where), required=False,
                           doc="sets of conv blocks (1-based: block i is the i-th convolution and its batch norm) "
                               "kept frozen during test-time fine-tuning, each measured on the same trained model "
                               "and test tasks, as metrics named like accuracy@10/frozen-none or "
                               "accuracy@10/transductive/frozen-1-2; only the later blocks' parameters and the "
                               "head adapt (those of them the model's inner loops update: batch_norm_adapted "
                               "still holds). Raghu et al.'s layer-freezing experiment (arXiv 1909.09157) is "
                               "[[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]]"),
    "lr_search": Field({
        "candidates": Field("positive_float_list"),
        "tasks": Field("positive_int"),
        "seed": Field("seed"),
    }, required=False, doc="pick the fine-tuning lr from candidates on separately seeded validation tasks "
                           "(the MAML paper tuned the baselines' step size automatically)"),
}


def _positive_int(v, where):
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ManifestError(f"{where}: expected 'full' or a positive integer, got {v!r}")
    return v


def _batch_norm_modes(v, where):
    ok = v in ("none", *BN_MODES) if isinstance(v, str) else (
        isinstance(v, list) and v and all(m in BN_MODES for m in v) and len(set(v)) == len(v))
    if not ok:
        raise ManifestError(f"{where}: expected 'none', 'transductive', 'non-transductive' or a list of the last "
                            f"two, got {v!r}")
    return v


def _frozen_layer_sets(v, where):
    if not isinstance(v, list) or not v:
        raise ManifestError(f"{where}: expected a non-empty list of conv-block lists like [[], [1], [1, 2]], "
                            f"got {v!r}")
    for i, blocks in enumerate(v):
        if not isinstance(blocks, list) or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0
                                                   for b in blocks) or blocks != sorted(set(blocks)):
            raise ManifestError(f"{where}[{i}]: expected increasing 1-based conv-block indices like [1, 2] (or [] "
                                f"for none frozen), got {blocks!r}")
    if len({tuple(blocks) for blocks in v}) != len(v):
        raise ManifestError(f"{where}: a set of frozen blocks is listed twice in {v!r}")
    return v


def modes_and_suffixes(batch_norm) -> list[tuple[str, str]]:
    return [(batch_norm, "")] if isinstance(batch_norm, str) else [(m, f"/{m}") for m in batch_norm]


def frozen_sets_and_suffixes(config) -> list[tuple[tuple[int, ...], str]]:
    """(frozen conv blocks, metric suffix) for each fine-tuning of a test task: one with nothing frozen and no
    suffix when the evaluation has no frozen_layers."""
    if "frozen_layers" not in config:
        return [((), "")]
    return [(tuple(blocks), "/frozen-" + ("-".join(map(str, blocks)) or "none")) for blocks in config["frozen_layers"]]


def metric_suffixes(config) -> list[str]:
    """The suffixes of an evaluation's metric names, the primary one first: the batch-norm mode, then the frozen
    blocks (accuracy@10/transductive/frozen-1-2)."""
    return [mode + frozen for _, mode in modes_and_suffixes(config["batch_norm"])
            for _, frozen in frozen_sets_and_suffixes(config)]


def finetuned_names(model, frozen_blocks) -> frozenset[str]:
    """The parameters test-time fine-tuning updates: those the model's inner loops update, outside the frozen
    conv blocks."""
    frozen = set().union(*(model.conv_block_names(b) for b in frozen_blocks))
    return frozenset(model.inner_loop_names - frozen)


def check_evaluation(config: dict, where: str, model: dict):
    """Cross-field checks of an evaluation against itself and the claim's (validated) model."""
    model_has_batch_norm = model["kind"] == "conv"
    check_optimizer(config["optimizer"], f"{where}.optimizer")
    if "frozen_layers" in config:
        if model["kind"] != "conv":
            raise ManifestError(f"{where}.frozen_layers: freezing conv blocks needs a conv model, not "
                                f"{model['kind']!r}")
        for i, blocks in enumerate(config["frozen_layers"]):
            if blocks and blocks[-1] > model["layers"]:
                raise ManifestError(f"{where}.frozen_layers[{i}]: the model has conv blocks 1..{model['layers']}, "
                                    f"not {blocks[-1]}")
    if model_has_batch_norm and config["batch_norm"] == "none":
        raise ManifestError(f"{where}.batch_norm: the model has batch norm: say 'transductive' or 'non-transductive'")
    if not model_has_batch_norm and config["batch_norm"] != "none":
        raise ManifestError(f"{where}.batch_norm: the model has no batch norm, so this must be 'none'")
    if "lr_search" in config and config["lr_search"]["seed"] == config["seed"]:
        raise ManifestError(f"{where}.lr_search.seed: must differ from the test tasks' seed (no tuning on test tasks)")
    if sorted(set(config["steps"])) != config["steps"]:
        raise ManifestError(f"{where}.steps: expected increasing step counts, got {config['steps']}")


def predict(model, params, support_x, query_x, batch_norm: str):
    """Query outputs. Non-transductive: each query is normalised in a batch with the support set only."""
    if batch_norm != "non-transductive":
        return model.forward(params, query_x)

    def one(q):
        return model.forward(params, torch.cat([support_x, q.unsqueeze(0)]))[-1]

    return vmap(one)(query_x)


def query_metrics(model, params, support_x, query_x, query_y, batch_norm) -> dict:
    out = {}
    for mode, suffix in modes_and_suffixes(batch_norm):
        pred = predict(model, params, support_x, query_x, mode)
        if model.loss_name == "mse":
            out[f"mse{suffix}"] = F.mse_loss(pred, query_y)
        else:
            out[f"loss{suffix}"] = F.cross_entropy(pred, query_y)
            out[f"accuracy{suffix}"] = (pred.argmax(-1) == query_y).float().mean()
    return out


def finetune_curve(model, params, support_x, support_y, query_x, query_y, batches, config, lr=None,
                   initial_state=None, frozen_blocks=()) -> dict:
    """Metrics of one task after each recorded step count: {metric: tensor[len(steps)]}, with the conv blocks
    `frozen_blocks` left as trained."""
    opt = dict(config["optimizer"], lr=lr if lr is not None else config["optimizer"]["lr"])
    inner = InnerOptimizer(opt, finetuned_names(model, frozen_blocks))
    state, records = (inner.init(params) if initial_state is None else initial_state), []
    for step in range(config["steps"][-1] + 1):
        if step in config["steps"]:
            records.append(query_metrics(model, params, support_x, query_x, query_y, config["batch_norm"]))
        if step == config["steps"][-1]:
            break
        x, y = (support_x, support_y) if batches is None else (support_x[batches[step]], support_y[batches[step]])
        grads = grad(model.loss)(params, x, y)
        params, state = inner.update(params, grads, state)
    return {name: torch.stack([r[name] for r in records]) for name in records[0]}


TASK_STREAM, BATCH_STREAM = 1, 2


def evaluate_on_tasks(model, params, family, n_tasks: int, seed: int, split: str, config, device, vectorize: bool,
                      chunk: int, lr=None, progress: dict | None = None, initial_state=None) -> dict:
    """{metric@step: per-task values} on tasks 0..n_tasks−1 of `split`, fine-tuning from `params` on each.
    Task i (and its fine-tuning mini-batches) is drawn from a generator seeded by (seed, i) alone, so the tasks
    are the same for every run, chunk size and device; each set of frozen blocks fine-tunes on the same task."""
    params = {k: p.detach() for k, p in params.items()}

    def one(sx, sy, qx, qy, b):
        out = {}
        for frozen, suffix in frozen_sets_and_suffixes(config):
            curve = finetune_curve(model, params, sx, sy, qx, qy, b, config, lr, initial_state, frozen)
            out.update({name + suffix: values for name, values in curve.items()})
        return out

    per_metric: dict[str, list] = {}
    for start in tqdm(range(0, n_tasks, chunk), disable=progress is None,
                      **{"desc": "evaluating", "unit": "chunk", "leave": False, **(progress or {})}):
        ids = range(start, min(start + chunk, n_tasks))
        part = TaskBatch.cat([family.sample(1, config["shots"], config["queries"],
                                            seeded_generator(seed, i, TASK_STREAM), split) for i in ids]).to(device)
        b = None
        if config["batch_size"] != "full":
            b = torch.cat([inner_batches(1, part.support_x.shape[1], config["batch_size"],
                                         max(config["steps"][-1], 1), seeded_generator(seed, i, BATCH_STREAM))
                           for i in ids]).to(device)
        if vectorize:
            curves = vmap(one, in_dims=(0, 0, 0, 0, None if b is None else 0))(*part.tensors(), b)
        else:
            rows = [one(*part[i].tensors(), None if b is None else b[i]) for i in range(len(part))]
            curves = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
        for name, values in curves.items():
            per_metric.setdefault(name, []).append(values.cpu().double())
    out = {}
    for name, chunks in per_metric.items():
        values = torch.cat(chunks)  # [tasks, len(steps)]
        metric, _, suffix = name.partition("/")
        for j, step in enumerate(config["steps"]):
            out[f"{metric}@{step}" + (f"/{suffix}" if suffix else "")] = values[:, j].tolist()
    return out


# the evaluation fields a learning-curve point reads: a training that records a curve depends on these alone
CURVE_FIELDS = ("during_training", "shots", "queries", "steps", "optimizer", "batch_size", "batch_norm",
                "optimizer_state", "frozen_layers")


def curve_point(model, params, family, config, device, vectorize: bool, chunk: int, iteration: int,
                initial_state=None) -> tuple[str, float]:
    """(metric, mean) on the fresh test tasks of this iteration's learning-curve point: the primary metric after
    the last fine-tuning step, in the first batch-norm mode (and with the first set of frozen blocks, the only
    one fine-tuned here). The query set is measured after that step alone: the fine-tuning does not depend on the
    steps measured before it, so the value is the same, at a fifth less of the cost for steps [0, 5]."""
    spec = config["during_training"]
    config = dict(first_frozen_set_only(config), steps=config["steps"][-1:])
    episodes = evaluate_on_tasks(model, params, family, spec["tasks"], spec["seed"] * 10**9 + iteration, "test",
                                 config, device, vectorize, chunk, initial_state=initial_state)
    name = ("mse" if model.loss_name == "mse" else "accuracy") + f"@{config['steps'][-1]}" + \
        metric_suffixes(config)[0]
    values = episodes[name]
    return name, sum(values) / len(values)


def first_frozen_set_only(config) -> dict:
    """The evaluation with only its first set of frozen blocks: what a learning-curve point and the lr search
    fine-tune (they score the primary metric alone, so the other sets would be fine-tuned for nothing)."""
    return dict(config, frozen_layers=config["frozen_layers"][:1]) if "frozen_layers" in config else config


def summarise(values: list[float]) -> dict:
    """Mean, std (population, as np.std) and the 95% interval 1.96·std/√n of per-task values."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return {"mean": mean, "std": std, "ci95": 1.96 * std / math.sqrt(n), "n": n}


def evaluate(model, params, family, config, device, vectorize: bool, chunk: int, progress: dict | None = None,
             training_state=None) -> dict:
    """The claim's evaluation for one trained model: optional lr search on validation tasks, then the test tasks.
    `training_state` is the inner optimiser state training left, used when optimizer_state is 'from-training'."""
    initial_state = training_state if config["optimizer_state"] == "from-training" else None
    lr, search = None, None
    if "lr_search" in config:
        s = config["lr_search"]
        search = []
        for candidate in s["candidates"]:
            episodes = evaluate_on_tasks(model, params, family, s["tasks"], s["seed"], "val",
                                         first_frozen_set_only(config), device, vectorize, chunk, lr=candidate,
                                         initial_state=initial_state)
            search.append({"lr": candidate, "score": _search_score(episodes, config)})
        lr = min(search, key=lambda r: r["score"])["lr"]
    episodes = evaluate_on_tasks(model, params, family, config["tasks"], config["seed"], "test", config, device,
                                 vectorize, chunk, lr=lr, progress=progress, initial_state=initial_state)
    return {
        "metrics": {name: summarise(values) for name, values in episodes.items()},
        "episodes": episodes,
        "finetune_lr": lr if lr is not None else config["optimizer"]["lr"],
        "lr_search": search,
        "examples": regression_examples(model, params, family, config, device, lr) if hasattr(family, "curve") else [],
    }


EXAMPLES, GRID = 3, 200


def regression_examples(model, params, family, config, device, lr=None) -> list[dict]:
    """For the first test tasks: the true function on a grid, the support points, and the model's predictions
    on the grid after each recorded number of fine-tuning steps (the MAML paper's Figure 2)."""
    params = {k: p.detach() for k, p in params.items()}
    opt = InnerOptimizer(dict(config["optimizer"], lr=lr if lr is not None else config["optimizer"]["lr"]),
                         model.inner_loop_names)
    out = []
    for i in range(EXAMPLES):
        task = family.sample(1, config["shots"], config["queries"], seeded_generator(config["seed"], i, TASK_STREAM),
                             "test")[0].to(device)
        grid_x, grid_y = family.curve(seeded_generator(config["seed"], i, TASK_STREAM), GRID)
        p, state, predictions = params, opt.init(params), {}
        for step in range(config["steps"][-1] + 1):
            if step in config["steps"]:
                predictions[str(step)] = model.forward(p, grid_x.to(device)).flatten().tolist()
            if step < config["steps"][-1]:
                p, state = opt.update(p, grad(model.loss)(p, task.support_x, task.support_y), state)
        out.append({"support_x": task.support_x.flatten().tolist(), "support_y": task.support_y.flatten().tolist(),
                    "x": grid_x.flatten().tolist(), "y": grid_y.flatten().tolist(), "predictions": predictions})
    return out


def _search_score(episodes: dict, config) -> float:
    """Lower is better: mean query loss over the recorded step counts after at least one step (−accuracy for
    classification), so the chosen lr is good across the whole fine-tuning curve."""
    name = "mse" if any(k.startswith("mse@") for k in episodes) else "accuracy"
    suffix = metric_suffixes(config)[0]
    steps = [s for s in config["steps"] if s > 0] or config["steps"]
    score = sum(summarise(episodes[f"{name}@{s}{suffix}"])["mean"] for s in steps) / len(steps)
    return score if name == "mse" else -score
