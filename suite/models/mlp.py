"""A multilayer perceptron: Linear–activation blocks and a linear head (MAML's sinusoid network, §5.1; its
navigation policy's mean, §5.3)."""
from __future__ import annotations

from suite.lazy import lazy
from suite.protocol.schema import Field, ManifestError

nn = lazy("torch.nn")
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh"}  # the torch.nn module of each

# Bump when a change alters its initialisation or forward pass (then regenerate tests/goldens/).
NUMERICS_VERSION = 1

FIELDS = {
    "hidden": Field("positive_int_list", doc="hidden layer widths, e.g. [40, 40]"),
    "activation": Field("str", choices=tuple(ACTIVATIONS)),
    "init": Field("str", choices=("pytorch", "truncated-normal", "xavier-uniform", "glorot-uniform"),
                  doc="'pytorch' (nn.Linear's default), 'truncated-normal' (weights N(0, init_std²) cut at "
                      "2 std, zero biases: cbfinn/maml's construct_fc_weights), 'xavier-uniform' (Glorot-uniform "
                      "weights, biases N(0, init_std²): jsikyoon/bmaml bnn.py's tf xavier_initializer) or "
                      "'glorot-uniform' (Glorot-uniform weights, zero biases: rllab's MLP, pytorch-maml-rl's "
                      "weight_init)"),
    "init_std": Field("positive_float", required=False,
                      doc="std of the truncated normal weights, or of the biases under xavier-uniform"),
}


def check(config: dict, where: str):
    if (config["init"] in ("truncated-normal", "xavier-uniform")) != ("init_std" in config):
        raise ManifestError(f"{where}.init_std: required when init is 'truncated-normal' or 'xavier-uniform', and "
                            "only then")


def has_batch_norm(config: dict) -> bool:
    return False


def conv_blocks(config: dict) -> int:
    return 0


def not_adapted(config: dict, module) -> set[str]:
    return set()


def build(config: dict, in_dim: int, out_dim: int):
    layers, width = [], in_dim
    for h in config["hidden"]:
        layers += [nn.Linear(width, h), getattr(nn, ACTIVATIONS[config["activation"]])()]
        width = h
    layers.append(nn.Linear(width, out_dim))
    module = nn.Sequential(*layers)
    if config["init"] == "truncated-normal":
        std = config["init_std"]
        for layer in module:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.zeros_(layer.bias)
    if config["init"] in ("xavier-uniform", "glorot-uniform"):
        for layer in module:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                if config["init"] == "xavier-uniform":
                    nn.init.normal_(layer.bias, std=config["init_std"])
                else:
                    nn.init.zeros_(layer.bias)
    return module
