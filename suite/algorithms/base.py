"""What every algorithm shares: the outer-optimiser schema and plumbing, and the Learner base class."""
from __future__ import annotations

import torch

from suite.schema import Field, ManifestError

OPTIMIZER_SCHEMA = {
    "name": Field("str", choices=("sgd", "adam")),
    "lr": Field("positive_float"),
    "betas": Field("float_list", required=False, doc="Adam's (β1, β2)"),
    "eps": Field("positive_float", required=False, doc="Adam's ε"),
}


def check_optimizer(config: dict, where: str):
    if config["name"] == "adam":
        for key in ("betas", "eps"):
            if key not in config:
                raise ManifestError(f"{where}.{key}: required for Adam (write the value the paper's code used)")
        if len(config["betas"]) != 2 or not all(0 <= b < 1 for b in config["betas"]):
            raise ManifestError(f"{where}.betas: expected [β1, β2] in [0, 1), got {config['betas']}")
    elif "betas" in config or "eps" in config:
        raise ManifestError(f"{where}: 'betas' and 'eps' belong to Adam, not {config['name']}")


def make_torch_optimizer(params: dict, config: dict) -> torch.optim.Optimizer:
    tensors = list(params.values())
    if config["name"] == "adam":
        return torch.optim.Adam(tensors, lr=config["lr"], betas=tuple(config["betas"]), eps=config["eps"])
    return torch.optim.SGD(tensors, lr=config["lr"])


class Learner:
    """Shared plumbing: leaf parameters, an outer optimiser (where the algorithm has one), checkpoint state."""

    HYPERPARAMETERS: dict = {}

    def __init__(self, model, params: dict, hp: dict, vectorize: bool):
        self.model, self.hp, self.vectorize = model, hp, vectorize
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.optimizer = None

    @property
    def inner_loop_names(self) -> frozenset[str]:
        """The parameters this algorithm's inner loop adapts, and so test-time fine-tuning too."""
        return self.model.inner_loop_names

    def task_shape(self) -> tuple[int, int, int]:
        """(tasks per meta-batch, support points per task, query points per task)."""
        return self.hp["meta_batch"], self.hp["shots"], self.hp.get("queries", 0)

    def step(self, tasks, iteration: int, generator: torch.Generator) -> float:
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
