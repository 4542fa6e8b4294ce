"""N-way K-shot classification on LEO's pre-computed image embeddings (Rusu et al. 2019, arXiv 1807.05960 §4.2.1;
deepmind/leo data.py): 640-d features of a WRN-28-10 trained on the meta-training classes, "center" crop, for
Mini-ImageNet or tieredImageNet, read from the cache `suite fetch leo_embeddings` writes (the released
embeddings.zip, or a generated stand-in in its exact format: see `provenance`).

A task draws `ways` distinct classes of its split and, for each, `shots + queries` distinct images of the class
(data.py get_instance: a shuffled class list, np.random.choice without replacement); labels 0..ways−1 follow the
drawn order; each embedding is scaled to unit L2 norm when l2_normalize (data.py: tf.nn.l2_normalize on every
instance). Support and queries are grouped class after class.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from suite.data.leo_embeddings import DIM, SPLITS, load_leo_embeddings
from suite.lazy import lazy
from suite.protocol.schema import Field, ManifestError
from suite.tasks.base import TaskBatch, classes_output_dim, classes_support_points

torch = lazy("torch")

# The classes per split (LEO §4.2.1: Mini-ImageNet 64/16/20, tieredImageNet 351/97/160) and the images per class
# the code assumes at validation and test time (config.py total_examples_per_class: queries = 600 − shots).
CLASSES = {"miniImageNet": {"train": 64, "val": 16, "test": 20},
           "tieredImageNet": {"train": 351, "val": 97, "test": 160}}
IMAGES_PER_CLASS = 600

FIELDS = {
    "dataset": Field("str", choices=tuple(CLASSES), doc="whose embeddings: 'miniImageNet' or 'tieredImageNet'"),
    "crop": Field("str", choices=("center",), doc="the embeddings' crop (the release's 'center'; 'multiview' "
                                                  "exists for Mini-ImageNet only and is not read)"),
    "ways": Field("positive_int", doc="classes per task"),
    "l2_normalize": Field("bool", doc="scale each embedding to unit L2 norm (LEO's data.py always does)"),
}

# Bump when a change alters the tasks drawn (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOSS = "cross_entropy"
INPUT_DIM = DIM  # features
GENERATED = False


def check(config: dict, where: str):
    pass


def check_protocol(config: dict, model: dict, shots_and_queries: list[tuple[str, int, int]], where: str):
    """What the data allows: a model on feature vectors, enough classes and images per class."""
    if model["kind"] not in ("linear", "mlp"):
        raise ManifestError(f"{where}: LEO's embeddings are {DIM}-d feature vectors: a linear or mlp model, not "
                            f"{model['kind']!r}")
    for part, shots, queries in shots_and_queries:
        if shots + queries > IMAGES_PER_CLASS:
            raise ManifestError(f"{where}: {shots} shots + {queries} queries per class, but LEO's protocol takes at "
                                f"most {IMAGES_PER_CLASS} images per class")
        if CLASSES[config["dataset"]][part] < config["ways"]:
            raise ManifestError(f"{where}: {config['ways']}-way tasks from the {part} split of {config['dataset']}, "
                                f"which has {CLASSES[config['dataset']][part]} classes")


output_dim, support_points = classes_output_dim, classes_support_points


def loss_scale(config: dict) -> float:
    return 1.0


def loss_reduction(config: dict) -> str:
    return "mean"


class Tasks:
    def __init__(self, dataset, crop, ways, l2_normalize, data_dir):
        self.ways, self.l2_normalize, self.embeddings, self.offsets = ways, l2_normalize, {}, {}
        for part in SPLITS:
            embeddings, offsets, meta = load_leo_embeddings(Path(data_dir), dataset, part)
            self.embeddings[part] = embeddings  # float32 [n, 640], class after class (memory-mapped)
            self.offsets[part] = torch.from_numpy(np.asarray(offsets, dtype=np.int64))
        self.generated = meta["generated"]
        self.provenance = {"dataset": f"leo_embeddings/{dataset}", "crop": crop, "generated": meta["generated"],
                           "format": meta.get("format", "leo-pickles"), "sha256": meta.get("sha256")}

    def sample(self, n_tasks: int, shots: int, queries: int, generator: "torch.Generator", split: str) -> TaskBatch:
        offsets, n = self.offsets[split], shots + queries
        counts = offsets[1:] - offsets[:-1]
        if len(counts) < self.ways:
            raise ValueError(f"{self.ways}-way tasks need {self.ways} classes, the {split} split has {len(counts)}")
        rows = torch.empty(n_tasks, self.ways, n, dtype=torch.long)
        for t in range(n_tasks):
            classes = torch.randperm(len(counts), generator=generator)[: self.ways]
            for j, c in enumerate(classes.tolist()):
                if counts[c] < n:
                    raise ValueError(f"{shots} shots + {queries} queries per class, but class {c} of the {split} "
                                     f"split has {int(counts[c])} images"
                                     f"{' (the generated stand-in)' if self.generated else ''}")
                rows[t, j] = offsets[c] + torch.randperm(int(counts[c]), generator=generator)[:n]
        x = torch.from_numpy(np.asarray(self.embeddings[split][rows.flatten().numpy()], dtype=np.float32))
        if self.l2_normalize:
            x = x * torch.rsqrt((x * x).sum(-1, keepdim=True).clamp_min(1e-12))  # tf.nn.l2_normalize's form
        x = x.reshape(n_tasks, self.ways, n, DIM)
        labels = torch.arange(self.ways).view(1, self.ways, 1).expand(n_tasks, self.ways, n)
        return TaskBatch(x[:, :, :shots].reshape(n_tasks, -1, DIM), labels[:, :, :shots].reshape(n_tasks, -1),
                         x[:, :, shots:].reshape(n_tasks, -1, DIM), labels[:, :, shots:].reshape(n_tasks, -1))
