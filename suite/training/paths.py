"""The path: how the tasks of a meta-batch (and of an evaluation chunk) are computed — `vmap`, one torch.func.vmap
over the tasks, or `loop`, one task after another (suite.algorithms.base.map_tasks runs either).

The paths compute the same mathematics and round differently. So a result records its path, each path has its own
goldens (tests/goldens/), and a training's checkpoints are its path's own; a result of either path is current, so
adding a path marks nothing stale. `auto`, the default, is the one place that chooses, by device and by the shape of
the run's tasks, from `suite bench --claim omniglot-maml` (2-core CPU, Conv4 Omniglot MAML, meta-batch 32 or 16,
two runs of 4 iterations each):

    5-way 1-shot, 1 query per class (10 images a task):    vmap 1.9× the loop (both runs)
    5-way 1-shot, 15 queries per class (80 images):         vmap 0.6× (both runs)
    20-way 1-shot, 1 query, 5 inner steps (40 images):      vmap 0.8× and 1.2×

vmap wins where a task is small and per-op overhead dominates the loop; batched convolutions lose where tasks are
large, so `auto` takes vmap up to SMALL_TASK images, where both runs agree. (The same bench measured vmap ahead for
ANIL at 20-way, 1.8×, and Reptile 5-way 10-shot, 1.7×: a rule per algorithm is for the speed issue.) On a GPU vmap
always wins; without convolutions it wins on CPU too.
"""
from __future__ import annotations

from suite.protocol.components import algorithms, families

PATHS = ("vmap", "loop")
SMALL_TASK = 16  # images per task (support and query) up to which vmap beats the loop for a conv model on CPU


def choose_path(cfg, model, device, requested: str = "auto") -> str:
    """`requested` itself, or for `auto` the faster path for this run's device and task shape."""
    if requested in PATHS:
        return requested
    if requested != "auto":
        raise ValueError(f"path {requested!r}: expected auto, {', '.join(PATHS)}")
    if device.type == "cuda" or not model.has_conv:
        return "vmap"
    _, shots, queries = algorithms()[cfg.algorithm].task_shape(cfg.hyperparameters)
    points = families()[cfg.task["family"]].support_points(cfg.task, shots + queries)
    return "vmap" if points <= SMALL_TASK else "loop"
