"""Functional models: an nn.Module used only as a parameter layout, evaluated with torch.func.functional_call
on a dict of parameters, so that algorithms can differentiate through and vmap over parameter updates."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from suite.schema import Field, ManifestError

INIT_SCHEMES = ("pytorch", "truncated-normal")

MLP_SCHEMA = {
    "kind": Field("str", choices=("mlp", "conv")),
    "hidden": Field("positive_int_list", doc="hidden layer widths, e.g. [40, 40]"),
    "activation": Field("str", choices=("relu",)),
    "init": Field("str", choices=INIT_SCHEMES,
                  doc="'pytorch' (nn.Linear's default) or 'truncated-normal' (weights N(0, init_std²) cut at "
                      "2 std, zero biases: cbfinn/maml's construct_fc_weights)"),
    "init_std": Field("positive_float", required=False, doc="std of the truncated normal"),
}

CONV_SCHEMA = {
    "kind": Field("str", choices=("mlp", "conv")),
    "in_channels": Field("positive_int"),
    "image_size": Field("positive_int"),
    "filters": Field("positive_int"),
    "layers": Field("positive_int"),
    "downsample": Field("str", choices=("stride", "max-pool", "max-pool-same"),
                        doc="stride-2 convolutions (MAML/Reptile Omniglot), or 2x2 max-pool (Mini-ImageNet) with TF's "
                            "'VALID' padding (MAML: 84→42→21→10→5) or its 'SAME' padding (supervised-reptile: "
                            "84→42→21→11→6)"),
    "batch_norm_eps": Field("positive_float", doc="TF's batch norm default is 1e-3, PyTorch's 1e-5"),
    "batch_norm_scale": Field("bool", doc="a learned BN scale γ: tf.contrib's batch_norm (MAML) has none, "
                                          "tf.layers' (Reptile) has one"),
    "batch_norm_adapted": Field("bool", doc="whether inner loops (training and test-time fine-tuning) update the "
                                            "batch-norm parameters; cbfinn/maml keeps them out of its fast weights"),
    "head": Field("str", choices=("flatten", "mean-pool"),
                  doc="features into the linear head: flattened maps (Reptile) or their spatial mean (MAML's "
                      "Omniglot code, tf.reduce_mean over height and width)"),
    "init": Field("str", choices=("pytorch", "glorot", "maml-code"),
                  doc="'pytorch' defaults; 'glorot' uniform weights and zero biases (tf.layers' default, Reptile); "
                      "'maml-code': Glorot convolutions, zero biases, a N(0, 1) head (cbfinn/maml "
                      "construct_conv_weights)"),
}

SCHEMAS = {"mlp": MLP_SCHEMA, "conv": CONV_SCHEMA}


def model_schema(kind: str) -> dict[str, Field]:
    return SCHEMAS[kind]


def check_model_config(config: dict, where: str):
    if config.get("init") == "truncated-normal" and "init_std" not in config:
        raise ManifestError(f"{where}.init_std: required when init is 'truncated-normal'")


class BatchNorm(nn.Module):
    """Batch norm that always normalises with the statistics of the batch it is given (as MAML's and Reptile's
    TF code do), written from tensor ops: F.batch_norm under torch.func.vmap gives second-order gradients
    about 1% off (functorch #534), these ops are exact."""

    def __init__(self, channels: int, eps: float, scale: bool):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if scale else None
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        centered = x - x.mean(dims, keepdim=True)
        scale = torch.rsqrt((centered * centered).mean(dims, keepdim=True) + self.eps)
        if self.weight is not None:  # scale and shift are per channel: few passes over the activations
            scale = scale * self.weight.view(shape)
        return torch.addcmul(self.bias.view(shape), centered, scale)


class SpatialMean(nn.Module):
    def forward(self, x):
        return x.mean(dim=(-2, -1))


def _mlp(config, in_dim, out_dim):
    layers, width = [], in_dim
    for h in config["hidden"]:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, out_dim))
    module = nn.Sequential(*layers)
    if config["init"] == "truncated-normal":
        std = config["init_std"]
        for layer in module:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.zeros_(layer.bias)
    return module


def _conv(config, out_dim):
    blocks, channels, size = [], config["in_channels"], config["image_size"]
    stride = 2 if config["downsample"] == "stride" else 1
    for _ in range(config["layers"]):
        blocks += [nn.Conv2d(channels, config["filters"], 3, stride=stride, padding=1),
                   BatchNorm(config["filters"], config["batch_norm_eps"], config["batch_norm_scale"]), nn.ReLU()]
        if config["downsample"] != "stride":  # a partial last window is pooled over what it covers: TF's 'SAME'
            blocks.append(nn.MaxPool2d(2, ceil_mode=config["downsample"] == "max-pool-same"))
        channels = config["filters"]
        size = size // 2 if config["downsample"] == "max-pool" else (size + 1) // 2
    if config["head"] == "mean-pool":
        blocks += [SpatialMean(), nn.Linear(channels, out_dim)]
    else:
        blocks += [nn.Flatten(), nn.Linear(channels * size * size, out_dim)]
    module = nn.Sequential(*blocks)
    if config["init"] != "pytorch":
        for layer in module:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        if config["init"] == "maml-code":
            nn.init.normal_(module[-1].weight, std=1.0)
    return module


class FunctionalModel:
    """forward(params, x) and loss(params, x, y) for a parameter dict; init_params(seed) makes a fresh dict."""

    def __init__(self, config: dict, in_dim: int, out_dim: int, loss: str, loss_scale: float = 1.0,
                 loss_reduction: str = "mean"):
        # the loss over a batch: loss_scale × its mean or sum over the samples (TF code that minimises a vector of
        # per-sample losses, as supervised-reptile does, steps along the gradient of their sum)
        self.config, self.loss_name, self.loss_scale, self.loss_reduction = config, loss, loss_scale, loss_reduction
        self._build = lambda: _mlp(config, in_dim, out_dim) if config["kind"] == "mlp" else _conv(config, out_dim)
        self.module = self._build()
        frozen = set()
        if config["kind"] == "conv" and not config["batch_norm_adapted"]:
            frozen = {f"{name}.{p}" for name, m in self.module.named_modules() if isinstance(m, BatchNorm)
                      for p, _ in m.named_parameters()}
        # the parameters inner loops update (the outer loop trains all of them)
        self.inner_loop_names = frozenset(n for n, _ in self.module.named_parameters() if n not in frozen)
        # the head is the final linear layer; the body is every layer before it, sharing the same parameters and
        # names (ANIL adapts the head alone on the body's features)
        assert isinstance(self.module[-1], nn.Linear), "every model ends in its linear head"
        self._head = str(len(self.module) - 1)
        self.head_names = frozenset(n for n, _ in self.module.named_parameters() if n.split(".")[0] == self._head)
        self._body = nn.Sequential(*list(self.module)[:-1])
        # conv block i (1-based): its convolution's and its batch norm's parameters (freeze-layer evaluation)
        blocks = []
        for index, layer in enumerate(self.module):
            if isinstance(layer, nn.Conv2d):
                blocks.append(set())
            if isinstance(layer, (nn.Conv2d, BatchNorm)):
                blocks[-1] |= {f"{index}.{p}" for p, _ in layer.named_parameters()}
        self._conv_blocks = tuple(frozenset(b) for b in blocks)

    def init_params(self, seed: int, device="cpu", dtype=torch.float32) -> dict[str, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._build()
        return {k: v.detach().to(device=device, dtype=dtype) for k, v in module.named_parameters()}

    def forward(self, params, x):
        return functional_call(self.module, params, (x,))

    def features(self, params, x):
        """The body's output, the head's input: forward(params, x) == head(params, features(params, x))."""
        return functional_call(self._body, {k: p for k, p in params.items() if k not in self.head_names}, (x,))

    def head(self, params, features):
        """The final linear layer on body features; it reads only the parameters in head_names."""
        return F.linear(features, params[f"{self._head}.weight"], params[f"{self._head}.bias"])

    def conv_block_names(self, block: int) -> frozenset[str]:
        """The parameter names of conv block `block` (1-based): the convolution's weight and bias and the
        parameters of the batch norm that follows it."""
        if not 1 <= block <= len(self._conv_blocks):
            raise ValueError(f"conv block {block}: the model has conv blocks 1..{len(self._conv_blocks)}")
        return self._conv_blocks[block - 1]

    def adapting_only(self, names) -> "FunctionalModel":
        """This model with its inner loops, test-time fine-tuning included, restricted to `names`."""
        restricted = copy.copy(self)
        restricted.inner_loop_names = frozenset(self.inner_loop_names & names)
        return restricted

    def loss(self, params, x, y):
        return self.loss_of_outputs(self.forward(params, x), y)

    def loss_of_outputs(self, out, y):
        if self.loss_name == "mse":
            return F.mse_loss(out, y, reduction=self.loss_reduction) * self.loss_scale
        return F.cross_entropy(out, y, reduction=self.loss_reduction) * self.loss_scale

    @property
    def has_conv(self) -> bool:
        return self.config["kind"] == "conv"
