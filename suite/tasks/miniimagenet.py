"""Mini-ImageNet N-way K-shot classification (Vinyals et al. 2016) on Ravi & Larochelle's split, as MAML samples it.

A task draws `ways` distinct classes of its split and, for each, `shots + queries` distinct images of the class;
labels 0..ways−1 follow the (random) order of the drawn classes. Images are float32 in [0, 1], channels first
(3, 84, 84), read from the cache `suite fetch miniimagenet` writes (real data, or the generated stand-in: see
`provenance`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from suite.data import split_file
from suite.data.miniimagenet import SIZE, SPLITS, load_miniimagenet, read_split
from suite.lazy import lazy
from suite.protocol.schema import Field, ManifestError
from suite.tasks.base import (LOSS_NORMALISATION, TaskBatch, check_pinned_split, classes_loss_reduction,
                              classes_loss_scale, classes_output_dim, classes_support_points)

SPLIT_NAMES = ("ravi",)

FIELDS = {
    "split": Field("str", choices=SPLIT_NAMES,
                   doc="class split file in suite/splits/miniimagenet/: 'ravi', Ravi & Larochelle's 64/16/20 "
                       "classes of 600 images (the split MAML, Reptile and most later papers use)"),
    "split_sha256": Field("str", doc="the sha256 of that file, pinned"),
    "ways": Field("positive_int", doc="classes per task"),
    "loss_normalisation": LOSS_NORMALISATION,
}

torch = lazy("torch")

# Bump when a change alters the tasks drawn (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOSS = "cross_entropy"
INPUT_DIM = 3  # channels
GENERATED = False


def split_path(name: str) -> Path:
    return split_file("miniimagenet", name)


def check(config: dict, where: str):
    check_pinned_split(split_path(config["split"]), config, where)


def check_protocol(config: dict, model: dict, shots_and_queries: list[tuple[str, int, int]], where: str):
    """What the data allows: a conv model on 84×84 RGB images, at most 600 images per class, enough classes."""
    if model["kind"] != "conv" or model["in_channels"] != 3 or model["image_size"] != SIZE:
        raise ManifestError(f"{where}: Mini-ImageNet needs a conv model with in_channels 3 and image_size {SIZE} "
                            "(the cached images)")
    split = read_split(split_path(config["split"]))
    for part, shots, queries in shots_and_queries:
        if shots + queries > split["images_per_class"]:
            raise ManifestError(f"{where}: {shots} shots + {queries} queries per class, but Mini-ImageNet has "
                                f"{split['images_per_class']} images per class")
        if len(split["classes"][part]) < config["ways"]:
            raise ManifestError(f"{where}: {config['ways']}-way tasks from the {part} split of "
                                f"{config['split']}.json, which has {len(split['classes'][part])} classes")


output_dim, loss_scale, loss_reduction = classes_output_dim, classes_loss_scale, classes_loss_reduction
support_points = classes_support_points


class Tasks:
    def __init__(self, split, split_sha256, ways, loss_normalisation, data_dir):
        self.ways, self.images, self.starts = ways, {}, {}
        for part in SPLITS:
            images, classes, meta = load_miniimagenet(Path(data_dir), part, split_path(split))
            self.images[part] = images  # memory-mapped uint8 [classes × per class, 84, 84, 3]
            self.starts[part] = torch.tensor([rows.start for rows in classes.values()], dtype=torch.long)
        self.per_class, self.generated = meta["images_per_class"], meta["generated"]
        self.provenance = {"dataset": "miniimagenet", "split": meta["split"], "generated": meta["generated"],
                           "format": meta["format"], "images_per_class": self.per_class,
                           "sha256": {part: meta["arrays"][part]["sha256"] for part in SPLITS}}

    def sample(self, n_tasks: int, shots: int, queries: int, generator: "torch.Generator", split: str) -> TaskBatch:
        starts, n = self.starts[split], shots + queries
        if len(starts) < self.ways:
            raise ValueError(f"{self.ways}-way tasks need {self.ways} classes, the {split} split has {len(starts)}")
        if n > self.per_class:
            raise ValueError(f"{shots} shots + {queries} queries per class, but the "
                             f"{'generated stand-in' if self.generated else 'data'} has {self.per_class} images "
                             "per class")
        rows = torch.empty(n_tasks, self.ways, n, dtype=torch.long)
        for t in range(n_tasks):
            classes = torch.randperm(len(starts), generator=generator)[: self.ways]
            picks = torch.stack([torch.randperm(self.per_class, generator=generator)[:n] for _ in range(self.ways)])
            rows[t] = starts[classes, None] + picks
        images = np.asarray(self.images[split][rows.flatten().numpy()])  # one read from the memory map
        x = torch.from_numpy(images).float().div_(255).permute(0, 3, 1, 2).contiguous()
        x = x.reshape(n_tasks, self.ways, n, 3, SIZE, SIZE)
        labels = torch.arange(self.ways).view(1, self.ways, 1).expand(n_tasks, self.ways, n)
        support_x = x[:, :, :shots].reshape(n_tasks, self.ways * shots, 3, SIZE, SIZE)
        query_x = x[:, :, shots:].reshape(n_tasks, self.ways * queries, 3, SIZE, SIZE)
        return TaskBatch(support_x, labels[:, :, :shots].reshape(n_tasks, -1),
                         query_x, labels[:, :, shots:].reshape(n_tasks, -1))
