"""The three kinds of component a claim combines — a task family, a model kind, an algorithm — as interfaces, and
where the protocol finds them.

Each component is one module (suite/tasks/<family>.py, suite/models/<kind>.py, suite/algorithms/<name>.py) that
satisfies one of the Protocols below: its manifest fields, cross-field checks and numerics version live beside its
computation, so adding one touches no generic code. The protocol layer reads the declarations by package name at
run time (`families()`, `model_kinds()`, `algorithms()`): a component imports torch lazily (suite.lazy), so reading
its declarations needs no torch, and a module listed in its package's SUPPORT is a helper, not a component.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any, Protocol

from suite.protocol.schema import Field


class TaskFamily(Protocol):
    """A task family module: turns a seeded generator into batches of few-shot tasks."""

    FIELDS: dict[str, Field]
    """Its manifest fields under `task:` (besides `family`), every one required unless declared optional."""
    NUMERICS_VERSION: int
    """Bumped by the change that alters the tasks it draws (the goldens in tests/goldens/ then change)."""
    LOSS: str
    """'mse' (regression) or 'cross_entropy' (classification)."""
    INPUT_DIM: int
    """Input features (regression) or image channels (classification)."""
    GENERATED: bool
    """Whether it draws its tasks on the fly, with no data to fetch (`suite fetch` only records that)."""

    def output_dim(self, config: dict) -> int:
        """Outputs of the model's head: 1 for regression, the ways for classification."""

    def loss_scale(self, config: dict) -> float:
        """The factor on the batch loss the protocol prescribes (MAML's code: ways, for 'sum/shots')."""

    def loss_reduction(self, config: dict) -> str:
        """'mean' or 'sum' of the per-sample losses."""

    def support_points(self, config: dict, shots: int) -> int:
        """Points in a support set of `shots` (per class, for classification)."""

    def check(self, config: dict, where: str) -> None:
        """Cross-field checks of the task config alone (a pinned split file's digest, rotations, ...)."""

    def check_protocol(self, config: dict, model: dict, uses: list[tuple[str, int, int]], where: str) -> None:
        """What the data allows: the model's input shape, and (split, shots, queries) for each use of the tasks."""

    Tasks: type
    """Tasks(**config without family, data_dir).sample(n_tasks, shots, queries, generator, split) -> TaskBatch;
    its `provenance` says what the tasks are drawn from where that can differ between runs (Mini-ImageNet's format
    and arrays, or its generated stand-in), else None; a regression family's Tasks also has curve(generator, points),
    the whole function sample(1, ...) draws (for the MAML paper's Figure 2)."""


class ModelKind(Protocol):
    """A model kind module: a parameter layout (an nn.Sequential) evaluated functionally on a parameter dict."""

    FIELDS: dict[str, Field]
    """Its manifest fields under `model:` (besides `kind`)."""
    NUMERICS_VERSION: int
    """Bumped by the change that alters its initialisation or forward pass."""

    def check(self, config: dict, where: str) -> None:
        """Cross-field checks of the model config."""

    def has_batch_norm(self, config: dict) -> bool:
        """Whether the model normalises batches (then the evaluation must say how, at test time)."""

    def conv_blocks(self, config: dict) -> int:
        """Its convolution blocks (0 for none), which an evaluation's frozen_layers may name."""

    def build(self, config: dict, in_dim: int, out_dim: int) -> Any:
        """A fresh nn.Sequential ending in its linear head, initialised as the config says (torch's global RNG)."""

    def not_adapted(self, config: dict, module: Any) -> set[str]:
        """Names of the parameters inner loops leave alone (MAML's code keeps batch norm out of its fast weights)."""


class Algorithm(Protocol):
    """An algorithm module: its hyperparameters and a Learner that performs one meta-iteration at a time."""

    ARGS: dict[str, Field]
    """Its hyperparameters, as a run of the manifest writes them (besides `algorithm` and the run's overrides)."""
    NUMERICS_VERSION: int
    """Bumped by the change that alters what it computes (the goldens then change)."""
    LOGGED_LOSS: str
    """What the training loss it logs is, for the report's learning-curve caption."""

    def check(self, hp: dict, task: dict, family: TaskFamily, where: str) -> None:
        """Cross-field checks of its hyperparameters, for the run's (validated) task config of `family`."""

    def check_evaluation(self, hp: dict, evaluation: dict, where: str) -> None:
        """Cross-field checks of the run's (validated) evaluation against its hyperparameters: BMAML's particles
        fine-tune with their own steps, so the evaluation must name those, and say what the set predicts."""

    def task_shape(self, hp: dict) -> tuple[int, int, int]:
        """(tasks per iteration, shots, queries per class or per task) of the training tasks it samples."""

    def carries_inner_state(self, hp: dict) -> bool:
        """Whether its inner optimiser state runs on across tasks (an evaluation may then start from it)."""

    def second_order(self, hp: dict) -> bool:
        """Whether its meta-gradient differentiates through the inner loop's gradients of the whole model (a double
        backward through every layer, as MAML's), which changes which path is fastest (suite.training.paths)."""

    def hessian_vector_products(self, hp: dict) -> bool:
        """Whether its meta-gradient takes Hessian-vector products of the inner loss (iMAML's conjugate gradient):
        under vmap each is a torch.func.grad of a torch.func.grad, which the per-task loop and the grouped path
        compute with torch.autograd instead (suite.training.paths)."""

    def paths(self, hp: dict) -> tuple[str, ...]:
        """The paths that can compute its meta-iteration (suite.training.paths), in order of preference when the
        one asked for or chosen is not among them: MAML++'s per-step batch-norm running statistics are updated task
        after task (the loop alone); Bayesian MAML's particles have no grouped form (vmap or the loop)."""

    def finetune_steps_limit(self, hp: dict) -> int | None:
        """The most test-time fine-tuning steps its trained model can take (None: no limit): MAML++'s per-step
        batch-norm weights and learned rates exist for its inner_steps steps only."""

    def extra_inputs(self, hp: dict) -> int:
        """Inputs it appends to the task's before the model reads them (0 for most): the context vector of MAML's
        App. C.2 baseline, a learned vector concatenated to every observation; the model is built that much wider."""

    def initial_params(self, model: Any, seed: int, hp: dict, device: Any) -> dict:
        """The parameters training starts from: the model's, initialised from the run's seed (Bayesian MAML: a set
        of particles, each initialised alone)."""

    Learner: type
    """Learner(model, params, hp, path): .step(tasks, iteration, generator) -> loss, .params, .inner_state,
    .inner_loop_names, .state_dict(), .load_state_dict(), .load_params()."""


def _discover(package: str) -> dict[str, Any]:
    """The component modules of `package`, by name: every module in it but its SUPPORT helpers."""
    pkg = importlib.import_module(package)
    support = set(getattr(pkg, "SUPPORT", ()))
    return {m.name: importlib.import_module(f"{package}.{m.name}")
            for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)
            if m.name not in support and not m.name.startswith("_")}


@functools.cache
def families() -> dict[str, TaskFamily]:
    return _discover("suite.tasks")


@functools.cache
def model_kinds() -> dict[str, ModelKind]:
    return _discover("suite.models")


@functools.cache
def algorithms() -> dict[str, Algorithm]:
    return _discover("suite.algorithms")
