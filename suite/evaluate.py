"""Episodic evaluation: fine-tune a trained model on each fixed test task's support set and measure the query
set after each recorded number of steps. Every run of a claim sees the same seeded test tasks."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from suite.algorithms import OPTIMIZER_SCHEMA, check_optimizer
from suite.algorithms.inner import InnerOptimizer
from suite.algorithms.reptile import inner_batches
from suite.schema import Field, ManifestError

EVALUATION_SCHEMA = {
    "tasks": Field("positive_int", doc="number of fixed test tasks"),
    "seed": Field("int", doc="seed of the test tasks (the same for every run of the claim)"),
    "shots": Field("positive_int", doc="support points, or images per class, of a test task"),
    "queries": Field("positive_int", doc="query points, or images per class, of a test task"),
    "steps": Field("step_list", doc="fine-tuning step counts at which the query set is measured"),
    "optimizer": Field(OPTIMIZER_SCHEMA, doc="test-time fine-tuning optimiser"),
    "batch_size": Field(lambda v, where: v if v == "full" else _positive_int(v, where),
                        doc="'full' (the whole support set each step) or points per mini-batch"),
    "batch_norm": Field("str", choices=("none", "transductive", "non-transductive"),
                        doc="test-time batch-norm mode: 'transductive' normalises all queries together (MAML's "
                            "code); 'non-transductive' predicts each query in a batch with the support set only "
                            "(Reptile's definition); 'none' for models without batch norm"),
    "interval": Field("str", choices=("ci95-normal",), doc="1.96·std/√n over tasks, as MAML's code computes it"),
    "lr_search": Field({
        "candidates": Field("float_list"),
        "tasks": Field("positive_int"),
        "seed": Field("int"),
    }, required=False, doc="pick the fine-tuning lr from candidates on separately seeded validation tasks "
                           "(the MAML paper tuned the baselines' step size automatically)"),
}


def _positive_int(v, where):
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ManifestError(f"{where}: expected 'full' or a positive integer, got {v!r}")
    return v


def check_evaluation(config: dict, where: str, model_has_batch_norm: bool):
    check_optimizer(config["optimizer"], f"{where}.optimizer")
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


def query_metrics(model, params, support_x, query_x, query_y, batch_norm: str) -> dict:
    out = predict(model, params, support_x, query_x, batch_norm)
    if model.loss_name == "mse":
        return {"mse": F.mse_loss(out, query_y)}
    return {"loss": F.cross_entropy(out, query_y), "accuracy": (out.argmax(-1) == query_y).float().mean()}


def finetune_curve(model, params, support_x, support_y, query_x, query_y, batches, config, lr=None) -> dict:
    """Metrics of one task after each recorded step count: {metric: tensor[len(steps)]}."""
    opt = dict(config["optimizer"], lr=lr if lr is not None else config["optimizer"]["lr"])
    inner = InnerOptimizer(opt)
    state, records = inner.init(params), []
    for step in range(config["steps"][-1] + 1):
        if step in config["steps"]:
            records.append(query_metrics(model, params, support_x, query_x, query_y, config["batch_norm"]))
        if step == config["steps"][-1]:
            break
        x, y = (support_x, support_y) if batches is None else (support_x[batches[step]], support_y[batches[step]])
        grads = grad(model.loss)(params, x, y)
        params, state = inner.update(params, grads, state)
    return {name: torch.stack([r[name] for r in records]) for name in records[0]}


def task_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def evaluate_on_tasks(model, params, tasks, config, vectorize: bool, generator, chunk: int, lr=None) -> dict:
    """{metric@step: list of per-task values} over a TaskBatch, fine-tuning from `params` on each task."""
    params = {k: p.detach() for k, p in params.items()}
    n_tasks, n_support = len(tasks), tasks.support_x.shape[1]
    batches = None
    if config["batch_size"] != "full":
        last = config["steps"][-1]
        batches = inner_batches(n_tasks, n_support, config["batch_size"], max(last, 1), generator)

    def one(sx, sy, qx, qy, b):
        return finetune_curve(model, params, sx, sy, qx, qy, b, config, lr)

    per_metric: dict[str, list] = {}
    for start in range(0, n_tasks, chunk):
        part = tasks[start:start + chunk]
        b = None if batches is None else batches[start:start + chunk].to(part.support_x.device)
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
        for j, step in enumerate(config["steps"]):
            out[f"{name}@{step}"] = values[:, j].tolist()
    return out


def summarise(values: list[float]) -> dict:
    """Mean, std (population, as np.std) and the 95% interval 1.96·std/√n of per-task values."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return {"mean": mean, "std": std, "ci95": 1.96 * std / math.sqrt(n), "n": n}


def evaluate(model, params, family, config, device, vectorize: bool, chunk: int) -> dict:
    """The claim's evaluation for one trained model: optional lr search on validation tasks, then the test tasks."""
    lr, search = None, None
    if "lr_search" in config:
        s = config["lr_search"]
        val_tasks = family.sample(s["tasks"], config["shots"], config["queries"], task_generator(s["seed"]),
                                  split="val").to(device)
        search = []
        for candidate in s["candidates"]:
            episodes = evaluate_on_tasks(model, params, val_tasks, config, vectorize,
                                         task_generator(s["seed"] + 1), chunk, lr=candidate)
            search.append({"lr": candidate, "score": _search_score(episodes, config)})
        lr = min(search, key=lambda r: r["score"])["lr"]
    test_tasks = family.sample(config["tasks"], config["shots"], config["queries"], task_generator(config["seed"]),
                               split="test").to(device)
    episodes = evaluate_on_tasks(model, params, test_tasks, config, vectorize, task_generator(config["seed"] + 1),
                                 chunk, lr=lr)
    return {
        "metrics": {name: summarise(values) for name, values in episodes.items()},
        "episodes": episodes,
        "finetune_lr": lr if lr is not None else config["optimizer"]["lr"],
        "lr_search": search,
    }


def _search_score(episodes: dict, config) -> float:
    """Lower is better: mean query loss over the recorded step counts after at least one step (−accuracy for
    classification), so the chosen lr is good across the whole fine-tuning curve."""
    name = "mse" if any(k.startswith("mse@") for k in episodes) else "accuracy"
    steps = [s for s in config["steps"] if s > 0] or config["steps"]
    score = sum(summarise(episodes[f"{name}@{s}"])["mean"] for s in steps) / len(steps)
    return score if name == "mse" else -score
