"""The tasks of a meta-batch as one computation: a model evaluated on T tasks at once, each with its own parameters.
Parameters and data carry a leading task dimension; a convolution runs as one grouped convolution
(per-task filters stacked, `groups = T`, the tasks' activations side by side along the channels), batch norm as one
native F.batch_norm over those channels (per task and channel, as the per-task forward normalises), a linear layer
as one batched matrix product.

No torch.func.vmap is involved, so torch's own batch norm is used (under vmap its second-order gradients are ~1% off,
functorch #534); the computation is exact but rounds differently from the per-task forward, so it is its own path
with its own goldens (suite.training.paths). Every task of the batch must have the same number of points.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from suite.models.layers import BatchNorm, SpatialMean


def task_mean(values):
    """[T, ...] → [T]: each task's mean."""
    return values.flatten(1).mean(1)


class GroupedModel:
    """A FunctionalModel (its `grouped()`) for T tasks at once: forward(params, x) with params {name: [T, ...]} and
    x [T, N, ...] gives [T, N, ...]; loss(...) gives the T tasks' losses, [T]."""

    task_dims = 1  # the leading dimensions that index tasks (0 for a FunctionalModel)

    def __init__(self, model):
        self.model = model
        self.module = model.module
        self.loss_name, self.loss_scale, self.loss_reduction = model.loss_name, model.loss_scale, model.loss_reduction
        self.inner_loop_names, self.head_names = model.inner_loop_names, model.head_names

    def conv_block_names(self, block: int) -> frozenset[str]:
        return self.model.conv_block_names(block)

    def _run(self, layers, params, x):
        """x [T, N, ...] through `layers` (indices into self.module). Image activations are kept as [N, T·C, H, W],
        the layout of a grouped convolution, until a layer flattens them back to [T, N, features]."""
        tasks, points = x.shape[:2]
        grouped = False  # whether x is in the [N, T·C, H, W] layout
        for index in layers:
            layer, name = self.module[index], str(index)
            if isinstance(layer, nn.Conv2d):
                if not grouped:
                    x, grouped = x.transpose(0, 1).flatten(1, 2), True
                x = F.conv2d(x, params[f"{name}.weight"].flatten(0, 1), params[f"{name}.bias"].flatten(),
                             layer.stride, layer.padding, layer.dilation, groups=tasks)
            elif isinstance(layer, BatchNorm):
                weight = params.get(f"{name}.weight")
                bias = params[f"{name}.bias"].flatten()
                # no learned scale: a constant 1 (exact), as torch's double backward of batch norm with a bias but
                # no weight fails ("Expected a proper Tensor but got None"), which iMAML's Hessian-vector products
                # need when the inner loop adapts the bias
                weight = torch.ones_like(bias) if weight is None else weight.flatten()
                x = F.batch_norm(x, None, None, weight, bias, training=True, eps=layer.eps)
            elif isinstance(layer, SpatialMean):
                x, grouped = x.mean(dim=(-2, -1)).view(points, tasks, -1).transpose(0, 1), False
            elif isinstance(layer, nn.Flatten):
                x, grouped = x.reshape(points, tasks, -1).transpose(0, 1), False
            elif isinstance(layer, nn.Linear):
                x = torch.baddbmm(params[f"{name}.bias"].unsqueeze(1), x, params[f"{name}.weight"].transpose(1, 2))
            elif isinstance(layer, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.MaxPool2d)):
                x = layer(x)
            else:
                raise TypeError(f"the grouped path has no batched form of {type(layer).__name__}")
        return x

    def forward(self, params, x):
        return self._run(range(len(self.module)), params, x)

    def features(self, params, x):
        return self._run(range(len(self.module) - 1), params, x)

    def head(self, params, features):
        head = str(len(self.module) - 1)
        return torch.baddbmm(params[f"{head}.bias"].unsqueeze(1), features, params[f"{head}.weight"].transpose(1, 2))

    def forward_each(self, params, context_x, x):
        """Outputs for each point of x normalised in a batch with context_x alone (non-transductive batch norm)."""
        return torch.stack([self.forward(params, torch.cat([context_x, x[:, i:i + 1]], 1))[:, -1]
                            for i in range(x.shape[1])], 1)

    def loss(self, params, x, y):
        return self.loss_of_outputs(self.forward(params, x), y)

    def loss_of_outputs(self, out, y):
        """Each task's loss, [T]: loss_scale × the mean or sum over its samples."""
        if self.loss_name == "mse":
            per_point = (out - y) ** 2
        else:
            per_point = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
        total = per_point.flatten(1).sum(1) if self.loss_reduction == "sum" else task_mean(per_point)
        return total * self.loss_scale

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics mean_metric measures (suite.protocol.fields.metric_bases without a predictive_std)."""
        return ("mse",) if self.loss_name == "mse" else ("loss", "accuracy")

    def mean_metric(self, name: str, out, y):
        """Each task's mean squared error, cross-entropy or accuracy over its points, [T]."""
        if name == "mse":
            return task_mean((out - y) ** 2)
        if name == "loss":
            return task_mean(F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(y.shape))
        return task_mean((out.argmax(-1) == y).float())
