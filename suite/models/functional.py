"""A model as a function of its parameters: the nn.Module a model kind builds is used only as a parameter layout,
evaluated with torch.func.functional_call on a dict of parameters, so that algorithms can differentiate through and
vmap over parameter updates."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from suite.models.layers import BatchNorm
from suite.protocol.components import model_kinds


class FunctionalModel:
    """forward(params, x) and loss(params, x, y) for a parameter dict; init_params(seed) makes a fresh dict.
    `grouped()` is the same model for a batch of tasks at once (suite.models.grouped)."""

    task_dims = 0  # the leading dimensions that index tasks

    def __init__(self, config: dict, in_dim: int, out_dim: int, loss: str, loss_scale: float, loss_reduction: str):
        # the loss over a batch: loss_scale × its mean or sum over the samples (TF code that minimises a vector of
        # per-sample losses, as supervised-reptile does, steps along the gradient of their sum)
        self.config, self.loss_name, self.loss_scale, self.loss_reduction = config, loss, loss_scale, loss_reduction
        kind = model_kinds()[config["kind"]]
        self._build = lambda: kind.build(config, in_dim, out_dim)
        self.module = self._build()
        frozen = kind.not_adapted(config, self.module)
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

    def grouped(self):
        """This model evaluated on many tasks at once, each with its own parameters (suite.models.grouped)."""
        from suite.models.grouped import GroupedModel

        return GroupedModel(self)

    def forward_each(self, params, context_x, x):
        """Outputs for each point of x normalised in a batch with context_x alone (non-transductive batch norm)."""
        def one(point):
            return self.forward(params, torch.cat([context_x, point.unsqueeze(0)]))[-1]

        return torch.func.vmap(one)(x)

    def loss(self, params, x, y):
        return self.loss_of_outputs(self.forward(params, x), y)

    def loss_of_outputs(self, out, y):
        if self.loss_name == "mse":
            return F.mse_loss(out, y, reduction=self.loss_reduction) * self.loss_scale
        return F.cross_entropy(out, y, reduction=self.loss_reduction) * self.loss_scale

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics mean_metric measures (suite.protocol.fields.metric_bases without a predictive_std)."""
        return ("mse",) if self.loss_name == "mse" else ("loss", "accuracy")

    def mean_metric(self, name: str, out, y):
        """The mean squared error (`mse`), cross-entropy (`loss`) or `accuracy` over the points."""
        if name == "mse":
            return F.mse_loss(out, y)
        if name == "loss":
            return F.cross_entropy(out, y)
        return (out.argmax(-1) == y).float().mean()

    @property
    def has_conv(self) -> bool:
        return any(isinstance(m, nn.Conv2d) for m in self.module.modules())
