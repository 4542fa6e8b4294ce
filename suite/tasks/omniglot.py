"""Omniglot N-way K-shot classification (Lake et al. 2015), as MAML's and Reptile's code sample it.

A class is a character, or a character rotated by a multiple of 90° where the protocol augments that split with
rotations. A task draws `ways` distinct classes of its split and, for each, `shots + queries` distinct drawers
of the 20; labels 0..ways−1 follow the (random) order of the drawn classes.
"""
from __future__ import annotations

import json
import random
from pathlib import Path


from suite.data import split_file
from suite.data.omniglot import DRAWERS, SIZE, load_omniglot
from suite.lazy import lazy
from suite.protocol.schema import Field, ManifestError
from suite.tasks.base import (LOSS_NORMALISATION, TaskBatch, check_pinned_split, classes_loss_reduction,
                              classes_loss_scale, classes_output_dim, classes_support_points)

SPLIT_NAMES = ("maml", "reptile", "vinyals")

FIELDS = {
    "split": Field("str", choices=SPLIT_NAMES, doc="character split file in suite/splits/omniglot/"),
    "split_sha256": Field("str", doc="the sha256 of that file, pinned"),
    "ways": Field("positive_int", doc="classes per task"),
    "rotations": Field({
        "train": Field("step_list"), "val": Field("step_list"), "test": Field("step_list"),
    }, doc="rotations (degrees, multiples of 90) of each split; [0] for none"),
    "rotation_mode": Field("str", choices=("classes", "per-task"),
                           doc="'classes': every (character, rotation) pair is a class of the split (Reptile's "
                               "augment_dataset); 'per-task': a task draws distinct characters and rotates each "
                               "class by a random rotation of the list (cbfinn/maml's data_generator, test tasks "
                               "included)"),
    "strokes": Field("str", choices=("bright", "dark"),
                     doc="'bright': strokes 1, background 0 (MAML's code inverts the PNGs); 'dark': the PNGs as "
                         "they are, strokes 0 (Reptile's code)"),
    "loss_normalisation": LOSS_NORMALISATION,
}

torch = lazy("torch")

# Bump when a change alters the tasks drawn (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOSS = "cross_entropy"
INPUT_DIM = 1  # channels
GENERATED = False


def split_path(name: str) -> Path:
    return split_file("omniglot", name)


def check(config: dict, where: str):
    check_pinned_split(split_path(config["split"]), config, where)
    for split, rotations in config["rotations"].items():
        if not rotations or any(r % 90 or r >= 360 for r in rotations) or len(set(rotations)) != len(rotations):
            raise ManifestError(f"{where}.rotations.{split}: expected distinct multiples of 90 below 360, "
                                f"got {rotations}")


def check_protocol(config: dict, model: dict, shots_and_queries: list[tuple[str, int, int]], where: str):
    """What the data allows: a Conv4 on 28×28 grey images, at most 20 drawers per class, enough classes."""
    if model["kind"] != "conv" or model["in_channels"] != 1 or model["image_size"] != SIZE:
        raise ManifestError(f"{where}: Omniglot needs a conv model with in_channels 1 and image_size {SIZE} "
                            "(the cached images)")
    classes = json.loads(split_path(config["split"]).read_text())["classes"]
    for split, shots, queries in shots_and_queries:
        if shots + queries > DRAWERS:
            raise ManifestError(f"{where}: {shots} shots + {queries} queries per class, but Omniglot has "
                                f"{DRAWERS} drawers per character")
        rotated = 1 if config["rotation_mode"] == "per-task" else len(config["rotations"][split])
        n_classes = len(classes[split]) * rotated
        if n_classes < config["ways"]:
            raise ManifestError(f"{where}: {config['ways']}-way tasks from the {split} split of "
                                f"{config['split']}.json, which has {n_classes} classes")


output_dim, loss_scale, loss_reduction = classes_output_dim, classes_loss_scale, classes_loss_reduction
support_points = classes_support_points


def shuffled_split(characters: list[str], seed: int, sizes: dict[str, int]) -> dict[str, list[str]]:
    """Python's random.shuffle of the sorted character list with `seed`, cut into consecutive parts
    (MAML's code: seed 1, 1100 train / 100 val / rest test; Reptile's: seed 0, 1200 train / rest test)."""
    order = sorted(characters, key=lambda c: tuple(c.split("/")))  # alphabet, then character, as os.listdir sorted
    random.Random(seed).shuffle(order)
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = order[start:start + size] if size >= 0 else order[start:]
        start += size
    return out


class Tasks:
    provenance = None  # the data cannot differ from run to run (generated, or pinned by its digest)

    def __init__(self, split, split_sha256, ways, rotations, rotation_mode, strokes, loss_normalisation, data_dir):

        images, names = load_omniglot(Path(data_dir))
        index = {n.split("/", 1)[1]: i for i, n in enumerate(names)}  # "Alphabet/characterNN" -> row
        classes = json.loads(split_path(split).read_text())["classes"]
        self.ways, self.strokes, self.per_task = ways, strokes, rotation_mode == "per-task"
        self.images = torch.from_numpy(images)  # [1623, 20, 28, 28] uint8, strokes 255
        self.pools, self.quarter_turns = {}, {}
        for part, characters in classes.items():
            rows = torch.tensor([index[c] for c in characters], dtype=torch.long)
            ks = torch.tensor([r // 90 for r in rotations[part]])
            self.quarter_turns[part] = ks
            # a class is (character row, quarter turns): with 'classes', every character with every rotation
            self.pools[part] = torch.stack([rows, torch.zeros_like(rows)], 1) if self.per_task else \
                torch.stack([rows.repeat_interleave(len(ks)), ks.repeat(len(rows))], dim=1)

    def _classes(self, split, generator):
        pool = self.pools[split]
        chosen = pool[torch.randperm(len(pool), generator=generator)[: self.ways]].clone()
        if self.per_task:
            turns = self.quarter_turns[split]
            chosen[:, 1] = turns[torch.randint(len(turns), (self.ways,), generator=generator)]
        return chosen

    def sample(self, n_tasks: int, shots: int, queries: int, generator: "torch.Generator", split: str) -> TaskBatch:
        pool = self.pools[split]
        if len(pool) < self.ways:
            raise ValueError(f"{self.ways}-way tasks need {self.ways} classes, the {split} split has {len(pool)}")
        n = shots + queries
        xs = []
        for _ in range(n_tasks):
            chosen = self._classes(split, generator)
            drawers = torch.stack([torch.randperm(DRAWERS, generator=generator)[:n] for _ in range(self.ways)])
            imgs = self.images[chosen[:, 0, None], drawers]  # [ways, n, 28, 28]
            imgs = torch.stack([torch.rot90(im, int(k), dims=(-2, -1)) for im, k in zip(imgs, chosen[:, 1])])
            xs.append(imgs)
        x = torch.stack(xs).float().div_(255).unsqueeze(3)  # [tasks, ways, n, 1, 28, 28]
        if self.strokes == "dark":
            x = 1.0 - x
        labels = torch.arange(self.ways).view(1, self.ways, 1).expand(n_tasks, self.ways, n)
        support_x = x[:, :, :shots].reshape(n_tasks, self.ways * shots, *x.shape[3:])
        query_x = x[:, :, shots:].reshape(n_tasks, self.ways * queries, *x.shape[3:])
        return TaskBatch(support_x, labels[:, :, :shots].reshape(n_tasks, -1),
                         query_x, labels[:, :, shots:].reshape(n_tasks, -1))
