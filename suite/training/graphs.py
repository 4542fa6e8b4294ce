"""A meta-iteration as one CUDA graph (`suite run --cuda-graph`): on a GPU, eager PyTorch launches each of a
meta-iteration's ~1,000 (5-way vmap) to ~5,000 (20-way) kernels from Python, and a small Conv4's kernels are over
before the next launch; replaying the captured iteration launches them all at once.

The step must be the learner's `update(tasks)` alone (Learner.capturable: MAML, first-order MAML, ANIL), with no
host synchronisation; the task tensors live in static buffers that each iteration's tasks are copied into, and the
outer Adam runs with `capturable=True` (its step count on the device). Capture follows PyTorch's recipe
(https://pytorch.org/docs/stable/notes/cuda.html#cuda-graphs): the first WARMUP iterations run eagerly on a side
stream, and are real iterations of the training; the next one is captured, then replayed, and so is every one after
it. The arithmetic is the eager step's, but capturable Adam computes its bias correction on the device, so the
numbers differ from an eager GPU run's in rounding: a training segment that used it says so in its provenance
(`cuda_graph`). On a CPU the same object runs `update` eagerly on its static buffers (what the tests exercise);
`suite run --cuda-graph` itself asks for a CUDA device.
"""
from __future__ import annotations

import os

import torch

from suite.tasks.base import TaskBatch

CUDA_GRAPH = "SUITE_CUDA_GRAPH"  # environment variable: "1" captures the step (set by `suite run --cuda-graph`)
WARMUP = 3  # eager iterations before the capture: cuBLAS/cuDNN workspaces, autograd's lazy state, Adam's state


def cuda_graph_requested() -> bool:
    return os.environ.get(CUDA_GRAPH) == "1"


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device):
    """Switch an optimiser with a `capturable` option (Adam) to it, its step counts moved to the device."""
    for group in optimizer.param_groups:
        if "capturable" in group:
            group["capturable"] = True
    for state in optimizer.state.values():
        if "step" in state:
            state["step"] = state["step"].to(device=device, dtype=torch.float32)


class CapturedStep:
    """learner.step's replacement: `step(tasks, iteration, generator)` -> the logged loss, the update captured once
    as a CUDA graph and replayed (see the module's docstring). Every meta-batch must have the first one's shapes."""

    def __init__(self, learner, device: torch.device):
        if not learner.capturable:
            raise ValueError(f"{type(learner).__module__}'s learner cannot be captured as a CUDA graph")
        self.learner, self.device, self.on_gpu = learner, device, device.type == "cuda"
        self.tasks: TaskBatch | None = None  # the static buffers
        self.graph, self.loss, self.eager_left = None, None, WARMUP
        if self.on_gpu:
            make_capturable(learner.optimizer, device)
            self.stream = torch.cuda.Stream(device)

    def _load(self, tasks: TaskBatch):
        if self.tasks is None:
            self.tasks = TaskBatch(*(t.to(self.device, copy=True) for t in tasks.tensors()))
            return
        for static, new in zip(self.tasks.tensors(), tasks.tensors()):
            if static.shape != new.shape:
                raise ValueError(f"a captured step needs meta-batches of one shape: {tuple(new.shape)} after "
                                 f"{tuple(static.shape)}")
            static.copy_(new, non_blocking=True)

    def step(self, tasks: TaskBatch, iteration: int, generator) -> float:
        self._load(tasks)
        if not self.on_gpu:
            return self.learner.update(self.tasks).item()
        current = torch.cuda.current_stream(self.device)
        if self.eager_left:
            self.eager_left -= 1
            self.stream.wait_stream(current)
            with torch.cuda.stream(self.stream):
                loss = self.learner.update(self.tasks)
            current.wait_stream(self.stream)
            return loss.item()
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.loss = self.learner.update(self.tasks)
        self.graph.replay()
        return self.loss.item()
