"""A tiny fake Mini-ImageNet written in every format users have, holding the same images in all of them.

The split is a Ravi-style split file of its own (5/3/3 real wnids × 4 images), passed to fetch_miniimagenet as
split_file. The images are JPEGs: the pickle and HDF5 copies hold them decoded, as the real ones hold the decoded
images of Ravi's files, so every format describes the same pixels.
"""
from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from suite.data.miniimagenet import SPLITS, read_split, split_file_text

SIZE = 84
COUNTS = {"train": 5, "val": 3, "test": 3}
PER_CLASS = 4
IMAGENET_NUMBERS = [7, 9, 12, 30, 100, 205, 1000, 1500]  # <wnid>_N.JPEG of each class; sorted by N, not by name
FORMATS = ("pickle", "hdf5", "folders", "ravi-images", "imagenet")


def tiny_split(path: Path) -> dict:
    """Write the split file: the first real classes of each of Ravi's splits, 4 rows each (1-based positions
    among IMAGENET_NUMBERS)."""
    ravi, rng = read_split(), np.random.default_rng(1)
    classes = {split: ravi["classes"][split][:COUNTS[split]] for split in SPLITS}
    rows = {wnid: sorted(int(i) + 1 for i in rng.choice(len(IMAGENET_NUMBERS), PER_CLASS, replace=False))
            for split in SPLITS for wnid in classes[split]}
    split = {"name": "tiny", "source": "tests/fake_miniimagenet.py", "images_per_class": PER_CLASS,
             "classes": classes, "rows": rows}
    path.write_text(split_file_text(split))
    return split


def jpeg(seed: int, size=(SIZE, SIZE)) -> bytes:
    """A smooth random colour image (so that resizing it is not trivial), as JPEG."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    out = io.BytesIO()
    small.resize(size, resample=Image.BICUBIC).save(out, format="JPEG", quality=90)
    return out.getvalue()


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def images(split: dict, size=(SIZE, SIZE)) -> dict[str, list[bytes]]:
    """The JPEG of each class's images, in row order."""
    wnids = [w for s in SPLITS for w in split["classes"][s]]
    return {wnid: [jpeg(100 * c + k, size) for k in range(split["images_per_class"])] for c, wnid in enumerate(wnids)}


def expected_cache(split: dict, jpegs: dict) -> dict[str, np.ndarray]:
    """What each split's array must hold: the classes in the split's order, their images in row order."""
    return {s: np.stack([decoded(j) for wnid in split["classes"][s] for j in jpegs[wnid]]) for s in SPLITS}


def write(fmt: str, folder: Path, split: dict, jpegs: dict, **options) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    WRITERS[fmt](folder, split, jpegs, **options)
    return folder


def write_pickles(folder: Path, split, jpegs, val_name="validation", image_data=None):
    """learn2learn's layout; the rows of image_data shuffled, so that only class_dict gives a class's order."""
    rng = np.random.default_rng(2)
    for s, name in zip(SPLITS, ("train", val_name, "test")):
        ordered = expected_cache(split, jpegs)[s]
        place = rng.permutation(len(ordered))  # image i of the split goes to row place[i]
        data = np.empty_like(ordered)
        data[place] = ordered
        n = split["images_per_class"]
        class_dict = {wnid: [int(p) for p in place[c * n:(c + 1) * n]] for c, wnid in enumerate(split["classes"][s])}
        content = {"image_data": data if image_data is None else image_data(data), "class_dict": class_dict}
        (folder / f"mini-imagenet-cache-{name}.pkl").write_bytes(pickle.dumps(content))


def write_hdf5(folder: Path, split, jpegs):
    import h5py

    for s in SPLITS:
        with h5py.File(folder / f"{s}_data.hdf5", "w") as f:
            group = f.create_group("datasets")
            for wnid in split["classes"][s]:
                group.create_dataset(wnid, data=np.stack([decoded(j) for j in jpegs[wnid]]))
        (folder / f"{s}_labels.json").write_text(json.dumps(sorted(split["classes"][s])))


def write_folders(folder: Path, split, jpegs):
    """MAML's proc_images.py output: {split}/<wnid>/<Ravi's file name>."""
    for s in SPLITS:
        for wnid in split["classes"][s]:
            (folder / s / wnid).mkdir(parents=True)
            for index, data in zip(split["rows"][wnid], jpegs[wnid]):
                (folder / s / wnid / f"{wnid}{index:08d}.jpg").write_bytes(data)


def write_ravi_images(folder: Path, split, jpegs):
    (folder / "images").mkdir()
    for wnid, rows in split["rows"].items():
        for index, data in zip(rows, jpegs[wnid]):
            (folder / "images" / f"{wnid}{index:08d}.jpg").write_bytes(data)


def write_imagenet(folder: Path, split, jpegs):
    """<wnid>/<wnid>_N.JPEG for every N of IMAGENET_NUMBERS: the class's images at its rows' positions (N sorted
    as integers, 1-based), other images everywhere else."""
    for c, (wnid, rows) in enumerate(split["rows"].items()):
        (folder / wnid).mkdir()
        chosen = {IMAGENET_NUMBERS[i - 1]: data for i, data in zip(rows, jpegs[wnid])}
        for k, number in enumerate(IMAGENET_NUMBERS):
            data = chosen.get(number) or jpeg(10_000 + 100 * c + k)
            (folder / wnid / f"{wnid}_{number}.JPEG").write_bytes(data)
    (folder / "n99999999").mkdir()  # ImageNet has other classes too


WRITERS = {"pickle": write_pickles, "hdf5": write_hdf5, "folders": write_folders, "ravi-images": write_ravi_images,
           "imagenet": write_imagenet}
