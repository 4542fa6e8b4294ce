"""The path: how the tasks of a meta-batch (and of an evaluation chunk) are computed — `vmap`, one torch.func.vmap
over the tasks; `loop`, one task after another; or `grouped`, the tasks as one batched computation (per-task weights
stacked, convolutions grouped by task, torch's own batch norm: suite.models.grouped). suite.algorithms.base.map_tasks
runs each. Reptile with a carried inner optimiser state is serial on every path; `grouped` runs it with the grouped
model on one task at a time.

The paths compute the same mathematics and round differently. So a result records its path, each path has its own
goldens (tests/goldens/), and a training's checkpoints are its path's own; a result of any path is current, so
adding a path marks nothing stale. `auto`, the default, is the one place that chooses, by device and by the shape of
the run's tasks, from `suite bench --claim omniglot-maml` and `suite bench --claim reptile-k-ablation` (2-core CPU,
Conv4 Omniglot, two threads; the faster path over the per-task loop, in two bench runs and a longer run of 6
iterations per path where the two disagreed):

    MAML 5-way 1-shot, 1 query per class (10 images a task):  vmap 1.8-2.9×, grouped 1.5-2.3×
    MAML 20-way 1-shot, 5 inner steps (40 images):            vmap 1.1-1.3×, grouped 1.1-1.4×
    MAML 5-way 1-shot, 15 queries per class (80 images):      vmap 0.5-0.8×, grouped 0.8-1.1×
    MAML 5-way 5-shot, 5 queries (50 images; 3 iterations):   grouped 0.6× (two rounds)
    ANIL and first-order MAML, 5-way and 20-way 1-shot:       vmap 1.2-2.8×, grouped 1.2-2.8×
    Reptile 5-way 10-shot, per-task Adam (50 images):         vmap 1.2-1.5×, grouped 1.4-2.1×
    Reptile 5-way 5-shot, carried Adam (serial):              grouped 0.9-1.2×
    iMAML 5-way 1-shot, 16 steps, meta-batch 32 (10 images):  vmap 1.7×, grouped 2.1× (one run of 4 iterations)
    iMAML 5-way 5-shot (50 images) / 20-way 1-shot (40):      vmap 0.3× / 0.8×, grouped 0.6× / 1.3×

Small tasks are overhead-bound, and vmap's fewer, larger operations win there; from a few dozen images on, the
grouped path's native batch norm and unsplit convolutions win, except in a second-order meta-gradient (MAML's):
torch computes the double backward of a grouped convolution's weight group by group, which costs more the more
support images a task has, and the per-task loop wins from 50 images on (since its first inner step takes its
gradient with torch.autograd.grad, suite.algorithms.inner.grad_and_losses). So on CPU, for conv models: vmap up to
SMALL_TASK images a task; above that the grouped path, but the loop for a second-order algorithm above
SECOND_ORDER_GROUPED images. An algorithm computes only its own paths (Algorithm.paths): MAML++ with per-step running
statistics the loop, Bayesian MAML's particles vmap or the loop. An algorithm that takes Hessian-vector products (iMAML) skips vmap: under it each
product nests torch.func.grad in torch.func.grad, where the other paths reuse one autograd graph. Without
convolutions the grouped path wins on CPU (sinusoid MLP, `suite bench`: 1.2-1.8× vmap). On a GPU, vmap until the GPU script (scripts/gpu-check.sh) has measured the grouped path there.
"""
from __future__ import annotations

from suite.protocol.components import algorithms, families

PATHS = ("vmap", "loop", "grouped")
SMALL_TASK = 16  # images per task (support and query) up to which vmap beats the grouped path for a conv model on CPU
SECOND_ORDER_GROUPED = 40  # images per task up to which the grouped path beats the loop for a second-order algorithm


def choose_path(cfg, model, device, requested: str = "auto") -> str:
    """`requested` itself, or for `auto` the faster path for this run's device and task shape; where the algorithm
    cannot compute that path (Algorithm.paths), its first path instead (a path asked of a whole claim is a
    preference)."""
    if requested not in (*PATHS, "auto"):
        raise ValueError(f"path {requested!r}: expected auto, {', '.join(PATHS)}")
    algorithm = algorithms()[cfg.algorithm]
    allowed = algorithm.paths(cfg.hyperparameters)
    chosen = requested if requested in PATHS else _auto(cfg, model, device, algorithm)
    return chosen if chosen in allowed else allowed[0]


def _auto(cfg, model, device, algorithm) -> str:
    if device.type == "cuda":
        return "vmap"
    if not model.has_conv:
        return "grouped"
    _, shots, queries = algorithm.task_shape(cfg.hyperparameters)
    points = families()[cfg.task["family"]].support_points(cfg.task, shots + queries)
    if points <= SMALL_TASK and not algorithm.hessian_vector_products(cfg.hyperparameters):
        return "vmap"
    if algorithm.second_order(cfg.hyperparameters) and points > SECOND_ORDER_GROUPED:
        return "loop"
    return "grouped"
