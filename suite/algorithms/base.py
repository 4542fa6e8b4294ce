"""What every algorithm shares: outer optimisers, the one switch between the paths that compute a meta-batch (a
vmap over tasks, a per-task loop, or the tasks grouped into one computation), and the Learner base class."""
from __future__ import annotations

from functools import partial

from suite.lazy import lazy
from suite.protocol.schema import ManifestError

torch = lazy("torch")


ALL_PATHS = ("vmap", "loop", "grouped")  # suite.training.paths.PATHS


def paths(hp: dict) -> tuple[str, ...]:
    """The usual answer of suite.protocol.components.Algorithm.paths: any path computes a meta-batch."""
    return ALL_PATHS


def finetune_steps_limit(hp: dict) -> int | None:
    """The usual answer of Algorithm.finetune_steps_limit: a trained model fine-tunes for any number of steps."""
    return None


def check_evaluation(hp: dict, evaluation: dict, where: str):
    """The usual answer of Algorithm.check_evaluation: one trained network, so no `prediction` or `predictive_std`
    of a set of them."""
    for field in ("prediction", "predictive_std"):
        if field in evaluation:
            raise ManifestError(f"{where}.{field}: says how a set of particles predicts (bmaml, emaml, platipus); "
                                "this algorithm trains one network: remove it")


def extra_inputs(hp: dict) -> int:
    """The usual answer of Algorithm.extra_inputs: the model reads the task's inputs alone."""
    return 0


def initial_params(model, seed: int, hp: dict, device) -> dict:
    """The usual answer of Algorithm.initial_params: the model's parameters, initialised from the run's seed."""
    return model.init_params(seed, device=device)


def make_torch_optimizer(params: dict, config: dict):
    """An outer optimiser (suite.protocol.fields.OUTER_OPTIMIZER): torch.optim.SGD or torch.optim.Adam."""
    tensors = list(params.values())
    if config["name"] == "adam":
        return torch.optim.Adam(tensors, lr=config["lr"], betas=tuple(config["betas"]), eps=config["eps"])
    return torch.optim.SGD(tensors, lr=config["lr"])


def _index(tree, i):
    if isinstance(tree, dict):
        return {k: _index(v, i) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_index(v, i) for v in tree)
    return None if tree is None else tree[i]


def _stack(outs: list):
    if isinstance(outs[0], dict):
        return {k: _stack([o[k] for o in outs]) for k in outs[0]}
    if isinstance(outs[0], tuple):
        return tuple(_stack(list(parts)) for parts in zip(*outs))
    return torch.stack(outs)


def _expand(tree, n: int):
    if isinstance(tree, dict):
        return {k: _expand(v, n) for k, v in tree.items()}
    return None if tree is None else tree.expand(n, *tree.shape)


def map_tasks(fn, path: str, model, shared, *per_task):
    """fn(model, shared, *task_i) for every task i, outputs stacked along a new leading dimension, computed by
    `path` (suite.training.paths): `vmap`, one torch.func.vmap over the tasks; `loop`, task by task; `grouped`, one
    call of fn on all the tasks at once, with the model's grouped form (suite.models.grouped) and `shared` (a
    tensor dict, or None) expanded along a leading task dimension. Each of `per_task` holds the tasks along its
    leading dimension (tensors, or lists and dicts of them; None for nothing)."""
    n = next(len(x) if not isinstance(x, (list, tuple)) else len(x[0]) for x in per_task if x is not None)
    if path == "grouped":
        return fn(model.grouped(), _expand(shared, n), *per_task)
    if path == "vmap":
        dims = tuple(None if x is None else 0 for x in per_task)
        return torch.func.vmap(partial(fn, model), in_dims=(None, *dims))(shared, *per_task)
    return _stack([fn(model, shared, *(_index(x, i) for x in per_task)) for i in range(n)])


def mean_task_gradients(gradient_for_task, path: str, model, params: dict, tasks):
    """(the mean over tasks of gradient_for_task(model, θ, *task) -> (gradient, loss), the mean loss), θ the
    parameters detached: for a meta-gradient made of per-task gradients with no graph through θ (first-order MAML,
    iMAML)."""
    theta = {k: p.detach() for k, p in params.items()}
    grads, losses = map_tasks(gradient_for_task, path, model, theta, *tasks.tensors())
    return {k: g.mean(0) for k, g in grads.items()}, losses.mean()


class Learner:
    """Shared plumbing: leaf parameters, an outer optimiser (where the algorithm has one), checkpoint state.

    `inner_state` is the inner optimiser state carried from task to task (None unless the algorithm carries one);
    `inner_loop_names` the parameters its inner loop adapts, and so test-time fine-tuning too; `schedule` how
    test-time fine-tuning adapts them when the learner's inner loop has its own per-step parameters and rates
    (MAML++: suite.algorithms.mamlpp.Schedule), None where the evaluation's optimiser does."""

    schedule = None
    capturable = False  # whether `update(tasks)` is the whole step, free of host synchronisation (a CUDA graph can
    # capture it: suite.training.graphs)

    def __init__(self, model, params: dict, hp: dict, path: str):
        self.model, self.hp, self.path = model, hp, path  # path: how a meta-batch is computed (map_tasks)
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.optimizer = None
        self.inner_state = None

    @property
    def inner_loop_names(self) -> frozenset[str]:
        return self.model.inner_loop_names

    def evaluated(self, model, evaluation: dict):
        """The model its parameters are evaluated as under the claim's `evaluation`: `model` itself, or (a set of
        particles, an ensemble trained as one) a model whose prediction combines them as evaluation.prediction says
        (suite.algorithms.bmaml.ParticleModel)."""
        return model

    def step(self, tasks, iteration: int, generator) -> float:
        """One meta-iteration; `generator` is this iteration's own stream for any randomness of the update."""
        raise NotImplementedError

    def apply_gradients(self, grads: dict):
        for k, p in self.params.items():
            p.grad = grads[k]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {"params": {k: v.detach().clone() for k, v in self.params.items()},
                "optimizer": self.optimizer.state_dict() if self.optimizer else None}

    def load_params(self, params: dict):
        with torch.no_grad():
            for k, v in params.items():
                self.params[k].copy_(v)

    def load_state_dict(self, state: dict):
        self.load_params(state["params"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
