"""Mini-ImageNet (Vinyals et al., 2016) on Ravi & Larochelle's split: taken from the copy a user has, checked against
the pinned split (suite/splits/miniimagenet/ravi.json), and converted once into the suite's own cache.

Accepted, from `--from PATH` (a folder, or a .zip / .tar[.gz] of one) or `--url URL --sha256 HEX` (such an archive):
  pickle       learn2learn's mini-imagenet-cache-{train,validation,test}.pkl (torchmeta's tarball, from
               renmengye/few-shot-ssl-public, names the middle one -val.pkl): {'image_data': uint8 [N, 84, 84, 3],
               'class_dict': wnid -> row indices}. A class's images in the order of its indices.
  hdf5         torchmeta's {train,val,test}_data.hdf5 (group 'datasets', one uint8 [600, 84, 84, 3] per wnid) with
               {split}_labels.json. Rows in order. Needs h5py: pip install 'suite[hdf5]'.
  folders      {train,val,test}/<wnid>/*.jpg|*.jpeg|*.png at any size (MAML's proc_images.py output, MAML++'s and
               Reptile's layouts). Sorted file names.
  ravi-images  Ravi's flat images/ folder (n0153282900000005.jpg, ...). The split file's rows, in order.
  imagenet     an ILSVRC-2012 training folder <wnid>/<wnid>_N.JPEG, Ravi's rows mapped to files as below. In row order.
Image files are converted to RGB and resized to 84x84 with PIL's LANCZOS, as MAML's proc_images.py does.

Which ImageNet file Ravi's row n0153282900000005.jpg (image 5 of class n01532829) is was never published: users who
asked (twitter-research/meta-learning-lstm issues #1 and #2) were sent the authors' own copy of the images. The
convention the public generators use, and this module uses, is Albert Berenguel's (utils/create_miniImagenet.py in
gitabcworld/FewShotLearning and gitabcworld/MatchingNetworks, 2017; the same code is in
yaoyao-liu/mini-imagenet-tools' mini_imagenet_generator.py): sort the class's files <wnid>_N.JPEG by the integer N and
read the index as 1-based into that list (5: the file with the fifth smallest N). His own comment there marks the
sort as a guess, and openai/supervised-reptile's per-class file lists of the same classes contradict it (they hold
n02089867_1.JPEG, which can only be first, while that class's smallest Ravi index is 3), so images built this way are
probably not exactly Ravi's. The cache records the format it was made from.

Cache, <root>/miniimagenet/: {train,val,test}.npy, uint8 [classes x images per class, 84, 84, 3], one class after
another in the split file's order (np.load(..., mmap_mode='r') maps them), and miniimagenet.json: the split and its
sha256, the classes of each split, images per class, the source and its format, `generated`, and each array's size and
sha256 (checked at fetch time; a load checks sizes only). miniimagenet.json is written last, so a cache without it is
not one.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import re
import sys
import tarfile
import tempfile
import urllib.parse
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from tqdm import tqdm

from suite.data import DataError, cache_is_current, split_file
from suite.data.download import download, looks_like_html
from suite.io import atomic_write_json, file_sha256, remove_made_folders

SPLITS = ("train", "val", "test")
SIZE = 84
SHAPE = (SIZE, SIZE, 3)
SPLIT_FILE = split_file("miniimagenet", "ravi")
META_NAME = "miniimagenet.json"
CACHE_VERSION = 1  # bump when the conversion changes, so that old caches are rebuilt
GENERATED_PER_CLASS = 20  # MAML's 5-shot episodes take 5 + 15 images per class
GENERATED_SEED = 0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
NOT_FETCHED = ("Mini-ImageNet is not fetched: run `suite fetch miniimagenet --from PATH` (your copy) or "
               "`suite fetch miniimagenet --generated` (a synthetic stand-in)")

_WNID = re.compile(r"n\d{8}")
_RAVI_NAME = re.compile(r"(n\d{8})(\d{8})\.jpg")
_IMAGENET_NAME = re.compile(r"(n\d{8})_(\d+)\.jpe?g", re.IGNORECASE)
_PICKLE_NAMES = {"train": ("train",), "val": ("validation", "val"), "test": ("test",)}
_EXPECTED = ("learn2learn's mini-imagenet-cache-*.pkl, torchmeta's *_data.hdf5 with *_labels.json, image folders "
             "train/ val/ test/ with one folder per class, Ravi's images/ folder, or an ImageNet training folder "
             "<wnid>/<wnid>_N.JPEG")


def cache_dir(root: Path) -> Path:
    return Path(root) / "miniimagenet"


def read_split(path: Path | None = None) -> dict:
    """A split file: its classes per split, images per class and each class's rows (see split_from_csvs)."""
    return json.loads(Path(path or SPLIT_FILE).read_text())


def split_from_csvs(folder: Path, name: str = "ravi", source: str = "") -> dict:
    """Ravi's {train,val,test}.csv as a split file: the classes in the CSVs' order, and for each class the 8-digit
    indices of its rows in row order (row k of class w is the file w + '%08d' % rows[w][k] + '.jpg')."""
    classes, rows, md5 = {}, {}, {}
    for split in SPLITS:
        path = Path(folder) / f"{split}.csv"
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"{path}: cannot read Ravi's CSV ({e})") from None
        lines, md5[split] = raw.decode(errors="replace").splitlines(), hashlib.md5(raw).hexdigest()
        if not lines or lines[0] != "filename,label":
            raise DataError(f"{path}: expected the header filename,label")
        classes[split] = []
        for number, line in enumerate(lines[1:], start=2):
            match = _RAVI_NAME.fullmatch(line.partition(",")[0])
            if not match or line.partition(",")[2] != match[1]:
                raise DataError(f"{path}, line {number}: expected <wnid><8 digits>.jpg,<wnid>, got {line!r}")
            wnid = match[1]
            if wnid in rows and (not classes[split] or classes[split][-1] != wnid):
                raise DataError(f"{path}, line {number}: the rows of {wnid} are not together")
            if wnid not in rows:
                classes[split].append(wnid)
                rows[wnid] = []
            rows[wnid].append(int(match[2]))
    counts = sorted({len(r) for r in rows.values()})
    if len(counts) != 1:
        raise DataError(f"{folder}: classes have different numbers of rows ({counts})")
    return {"name": name, "source": source, "csv_md5": md5, "images_per_class": counts[0], "classes": classes,
            "rows": rows}


def split_file_text(split: dict) -> str:
    """The split file as it is written: JSON with its objects indented and every list on one line."""
    def dump(value, depth: int) -> str:
        if isinstance(value, dict) and value:
            return "{\n" + ",\n".join(f"{' ' * (depth + 1)}{json.dumps(k)}: {dump(v, depth + 1)}"
                                       for k, v in value.items()) + "\n" + " " * depth + "}"
        return json.dumps(value, ensure_ascii=False)

    return dump(split, 0) + "\n"


def fetch_miniimagenet(root: Path, source: Path | None = None, url: str | None = None, sha256: str | None = None, *,
                       generated: bool = False, split_file: Path | None = None, progress: bool = True,
                       log: Callable[[str], None] | None = None) -> Path:
    """Convert the copy at `source` (a folder or archive), or the archive at `url` (with its sha256), or with
    `generated` a synthetic stand-in, into the cache; return the cache folder."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    split_file = Path(split_file or SPLIT_FILE)
    spec, root = read_split(split_file), Path(root)
    given = [flag for flag, value in (("--from", source), ("--url", url), ("--generated", generated)) if value]
    if len(given) != 1:
        raise DataError(f"give only one of {' and '.join(given)}" if given else "Mini-ImageNet has no official "
                        f"download: give --from PATH (your copy: {_EXPECTED}), --url URL --sha256 HEX (an archive "
                        "of one) or --generated (a synthetic stand-in)")
    if url is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256 or ""):
        raise DataError(f"--url {url} needs --sha256 HEX, the sha256 of the file (64 hex digits)"
                        + (f", not {sha256!r}" if sha256 else ""))
    cache = cache_dir(root)
    meta = None
    if (cache / META_NAME).exists():
        try:
            meta = _read_meta(cache, split_file)
        except DataError as e:
            log(f"{e}; fetching again")
    if meta is not None and cache_is_current(meta, generated, cache, f"Mini-ImageNet ({meta['format']})",
                                             f"real Mini-ImageNet ({meta['format']})", log):
        return cache

    made = [p for p in [root, *root.parents] if not p.exists()]
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=root, prefix=".miniimagenet-") as tmp:
            fmt, origin, read = _open(Path(tmp), source, url, sha256, generated, spec, progress, log)
            stage, arrays = Path(tmp) / "cache", {}
            stage.mkdir()
            for split in SPLITS:  # one split in memory at a time
                np.save(stage / f"{split}.npy", read(split))
                arrays[split] = {"file": f"{split}.npy", "bytes": (stage / f"{split}.npy").stat().st_size,
                                 "sha256": file_sha256(stage / f"{split}.npy")}
            per_class = GENERATED_PER_CLASS if generated else spec["images_per_class"]
            meta = {"dataset": "miniimagenet", "version": CACHE_VERSION, "split": spec["name"],
                    "split_sha256": file_sha256(split_file), "generated": generated, "format": fmt,
                    "source": origin, "images_per_class": per_class, "image_shape": list(SHAPE),
                    "classes": {s: spec["classes"][s] for s in SPLITS}, "arrays": arrays}
            cache.mkdir(exist_ok=True)
            (cache / META_NAME).unlink(missing_ok=True)  # the old cache stops being one before its arrays change
            for split in SPLITS:
                os.replace(stage / f"{split}.npy", cache / f"{split}.npy")
            atomic_write_json(cache / META_NAME, meta)
    except BaseException:
        remove_made_folders(made)
        raise
    counts = ", ".join(f"{s} {len(spec['classes'][s])}" for s in SPLITS)
    log(f"Mini-ImageNet{' (generated stand-in)' if generated else ''}: classes {counts} x {per_class} images "
        f"cached in {cache}")
    return cache


def _open(tmp: Path, source, url, sha256, generated, spec, progress, log) -> tuple[str, str | None, Callable]:
    """The format, where the data came from, and a function giving each split's images in cache order."""
    if generated:
        arrays = _generated(spec)
        return "generated", None, arrays.__getitem__
    where, origin = source, str(source)
    if url is not None:
        where, origin = tmp / (Path(urllib.parse.urlparse(url).path).name or "download"), url
        log(f"downloading {url}")
        download([url], where, progress=progress, sha256=sha256)
    where = Path(where)
    if not where.exists():
        raise DataError(f"{where}: no such file or folder; expected a folder or archive holding {_EXPECTED}")
    if where.is_file():
        where = _unpack(where, tmp / "unpacked")
    fmt, where = _detect(where)
    log(f"reading Mini-ImageNet ({fmt}) from {where}")
    return fmt, origin, lambda split: READERS[fmt](where, split, spec, progress)


def load_miniimagenet(root: Path, split: str, split_file: Path | None = None) -> tuple[np.ndarray, dict, dict]:
    """The cached images of a split, memory-mapped uint8 [N, 84, 84, 3]; each class's rows (wnid -> range, in the
    split file's order); and the cache's metadata (miniimagenet.json: `generated`, `format`, sha256s, ...)."""
    cache = cache_dir(root)
    if not (cache / META_NAME).exists():
        raise DataError(f"{NOT_FETCHED}; there is no {cache / META_NAME}")
    meta = _read_meta(cache, Path(split_file or SPLIT_FILE))
    path = cache / meta["arrays"][split]["file"]
    try:
        images = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: damaged Mini-ImageNet cache ({e}); run `suite fetch miniimagenet` again") from None
    n = meta["images_per_class"]
    classes = meta["classes"][split]
    if images.shape != (len(classes) * n, *SHAPE) or images.dtype != np.uint8:
        raise DataError(f"{path}: damaged Mini-ImageNet cache (images {images.dtype} {images.shape}, expected uint8 "
                        f"[{len(classes) * n}, 84, 84, 3]); run `suite fetch miniimagenet` again")
    return images, {wnid: range(i * n, (i + 1) * n) for i, wnid in enumerate(classes)}, meta


def _read_meta(cache: Path, split_file: Path) -> dict:
    """miniimagenet.json, checked against the split file and the arrays' sizes (cheap: no hashing)."""
    path = cache / META_NAME
    try:
        meta = json.loads(path.read_text())
        version, generated, per_class = meta["version"], meta["generated"], meta["images_per_class"]
        classes, arrays = meta["classes"], meta["arrays"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: damaged Mini-ImageNet cache ({type(e).__name__}: {e}); run `suite fetch "
                        "miniimagenet` again") from None
    spec = read_split(split_file)
    if version != CACHE_VERSION or classes != {s: spec["classes"][s] for s in SPLITS}:
        raise DataError(f"{path} was made by another version of the code or for another split than "
                        f"{split_file.name}; run `suite fetch miniimagenet` again")
    if per_class != (GENERATED_PER_CLASS if generated else spec["images_per_class"]):
        raise DataError(f"{path}: {per_class} images per class, expected {spec['images_per_class']}")
    for split in SPLITS:
        array = cache / arrays[split]["file"]
        size = array.stat().st_size if array.is_file() else None
        if size != arrays[split]["bytes"]:
            raise DataError(f"{array}: {'missing' if size is None else f'{size:,} bytes'}, {path.name} says "
                            f"{arrays[split]['bytes']:,}; run `suite fetch miniimagenet` again")
    return meta


def _few(names, k: int = 5) -> str:
    return ", ".join(names[:k]) + (f", … ({len(names) - k} more)" if len(names) > k else "")


def _check_classes(where: Path, split: str, spec: dict, found, extra_ok: bool = False):
    expected = spec["classes"][split]
    missing, extra = sorted(set(expected) - set(found)), [] if extra_ok else sorted(set(found) - set(expected))
    if missing or extra:
        raise DataError(f"{where}: the {split} classes are not those of {spec['name']}'s split: " + "; ".join(
            ([f"{len(missing)} missing ({_few(missing)})"] if missing else [])
            + ([f"{len(extra)} not in it ({_few(extra)})"] if extra else [])))


def _check_count(where: Path, wnid: str, n: int, spec: dict):
    if n != spec["images_per_class"]:
        raise DataError(f"{where}: class {wnid} has {n} images, expected {spec['images_per_class']}")


def _check_not_html(path: Path, what: str):
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as f:
        if looks_like_html(f.read(512)):
            raise DataError(f"{path}: looks like an HTML page, not {what} — a quota or login page? Delete it and "
                            "fetch again")


def _damaged(path: Path, what: str, min_bytes: int, error: Exception) -> DataError:
    """The error for a file that cannot be read: too small to hold the images (a quota page saved under the
    file's name, an interrupted copy) says so."""
    size, why = path.stat().st_size, f"{type(error).__name__}: {error}"
    if size < min_bytes:
        return DataError(f"{path}: {size:,} bytes, too small to be {what} holding {min_bytes // (SIZE * SIZE * 3):,} "
                         f"images of 84x84x3: truncated? ({why})")
    return DataError(f"{path}: not a valid {what.split(' ', 1)[1]}, truncated or damaged ({why})")


def _images_bytes(spec: dict, split: str) -> int:
    return len(spec["classes"][split]) * spec["images_per_class"] * SIZE * SIZE * 3


class _ArraysOnly(pickle.Unpickler):
    """Unpickles containers and numpy arrays only: a pickle can run any code, and these files come from mirrors."""

    ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
                ("numpy._core.numeric", "_frombuffer"), ("collections", "OrderedDict"), ("builtins", "range"),
                ("_codecs", "encode")}  # how Python 3 writes bytes into protocol 2

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not an array or a container")
        return super().find_class(module, name)


def _read_pickle(folder: Path, split: str, spec: dict, progress: bool) -> np.ndarray:
    names = [folder / f"mini-imagenet-cache-{name}.pkl" for name in _PICKLE_NAMES[split]]
    path = next((p for p in names if p.exists()), None)
    if path is None:
        raise DataError(f"{folder}: no {' or '.join(p.name for p in names)} in it")
    _check_not_html(path, "a pickle")
    try:
        with open(path, "rb") as f:
            data = _ArraysOnly(f, encoding="latin1").load()  # latin1: numpy arrays in Python 2 pickles
    except Exception as e:  # noqa: BLE001 -- whatever unpickling a damaged file raises
        raise _damaged(path, "a pickle", _images_bytes(spec, split), e) from None
    if not isinstance(data, dict) or not {"image_data", "class_dict"} <= set(data):
        raise DataError(f"{path}: expected a dict with 'image_data' and 'class_dict' (learn2learn's "
                        f"mini-imagenet-cache), got {type(data).__name__}")
    images, class_dict = data["image_data"], data["class_dict"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != SHAPE:
        raise DataError(f"{path}: image_data is {getattr(images, 'dtype', type(images).__name__)} "
                        f"{getattr(images, 'shape', '')}, expected uint8 [N, 84, 84, 3]")
    _check_classes(path, split, spec, class_dict)
    rows = []
    for wnid in spec["classes"][split]:
        index = np.asarray(class_dict[wnid]).reshape(-1)
        _check_count(path, wnid, len(index), spec)
        if index.dtype.kind not in "iu" or index.min() < 0 or index.max() >= len(images):
            raise DataError(f"{path}: class_dict[{wnid!r}] holds indices that are not rows of image_data")
        rows.append(index)
    return images[np.concatenate(rows)]


def _h5py(path: Path):
    try:
        import h5py
    except ImportError:
        raise DataError(f"{path}: reading torchmeta's HDF5 files needs h5py: pip install h5py (or "
                        "pip install 'suite[hdf5]')") from None
    return h5py


def _read_hdf5(folder: Path, split: str, spec: dict, progress: bool) -> np.ndarray:
    path, labels_path = folder / f"{split}_data.hdf5", folder / f"{split}_labels.json"
    _check_not_html(path, "an HDF5 file")
    try:
        labels = json.loads(labels_path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{labels_path}: expected the JSON list of the split's classes ({e})") from None
    h5py, n = _h5py(path), spec["images_per_class"]
    out = np.empty((len(spec["classes"][split]) * n, *SHAPE), dtype=np.uint8)
    try:
        with h5py.File(path, "r") as f:
            if not isinstance(f.get("datasets"), h5py.Group):
                raise DataError(f"{path}: no group 'datasets' (torchmeta's layout: one dataset per class)")
            group = f["datasets"]
            _check_classes(path, split, spec, list(group))
            if not isinstance(labels, list) or sorted(labels) != sorted(group):
                raise DataError(f"{labels_path}: does not list the classes of {path.name}")
            for i, wnid in enumerate(spec["classes"][split]):
                data = group[wnid]
                if data.dtype != np.uint8 or data.shape[1:] != SHAPE:
                    raise DataError(f"{path}: class {wnid} is {data.dtype} {data.shape}, expected uint8 "
                                    f"[{n}, 84, 84, 3]")
                _check_count(path, wnid, data.shape[0], spec)
                out[i * n:(i + 1) * n] = data[()]
    except (OSError, KeyError, ValueError) as e:
        raise _damaged(path, "an HDF5 file", _images_bytes(spec, split), e) from None
    return out


def _read_folders(folder: Path, split: str, spec: dict, progress: bool) -> np.ndarray:
    where = folder / split
    if not where.is_dir():
        raise DataError(f"{where}: no such folder; expected train/, val/ and test/ with one folder per class")
    found = {p.name: p for p in where.iterdir() if p.is_dir() and not p.name.startswith(".")}
    _check_classes(where, split, spec, found)
    files = []
    for wnid in spec["classes"][split]:
        images = sorted(p for p in found[wnid].iterdir()
                        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        _check_count(found[wnid], wnid, len(images), spec)
        files += images
    return _decode_all(files, progress, split)


def _ravi_folder(folder: Path) -> Path:
    return folder / "images" if (folder / "images").is_dir() else folder


def _read_ravi_images(folder: Path, split: str, spec: dict, progress: bool) -> np.ndarray:
    where = _ravi_folder(folder)
    names = {p.name for p in where.iterdir() if _RAVI_NAME.fullmatch(p.name)}
    found = {}
    for name in names:
        found.setdefault(name[:9], set()).add(name)
    all_classes = {wnid for s in SPLITS for wnid in spec["classes"][s]}
    _check_classes(where, split, spec, {w for w in found if w in spec["classes"][split] or w not in all_classes})
    files = []
    for wnid in spec["classes"][split]:
        expected = [f"{wnid}{index:08d}.jpg" for index in spec["rows"][wnid]]
        absent, others = [e for e in expected if e not in names], sorted(found[wnid] - set(expected))
        if absent or others:
            raise DataError(f"{where}: class {wnid} has {len(found[wnid])} images, expected the "
                            f"{spec['images_per_class']} rows of the split"
                            + (f"; missing: {_few(absent, 3)}" if absent else "")
                            + (f"; not rows of the split: {_few(others, 3)}" if others else ""))
        files += [where / e for e in expected]
    return _decode_all(files, progress, split)


def ravi_row_files(class_folder: Path, rows: list[int]) -> list[Path]:
    """The ImageNet files of a class's Ravi rows: its <wnid>_N.JPEG sorted by the integer N, 1-based (see above)."""
    wnid = class_folder.name
    listing = sorted((int(m[2]), p) for p in class_folder.iterdir()
                     if (m := _IMAGENET_NAME.fullmatch(p.name)) and m[1] == wnid)
    if not listing or max(rows) > len(listing):
        raise DataError(f"{class_folder}: {len(listing)} images {wnid}_N.JPEG, but the split's rows of {wnid} go up "
                        f"to image {max(rows)}")
    return [listing[i - 1][1] for i in rows]


def _read_imagenet(folder: Path, split: str, spec: dict, progress: bool) -> np.ndarray:
    if (folder / "train.csv").is_file():  # Ravi's CSVs beside the class folders: they must be the pinned split
        csvs = split_from_csvs(folder)
        if csvs["classes"] != spec["classes"] or csvs["rows"] != spec["rows"]:
            raise DataError(f"{folder / 'train.csv'}: the CSVs beside the ImageNet folders are not the pinned "
                            f"split {spec['name']} (md5s {csvs['csv_md5']})")
    found = [p.name for p in folder.iterdir() if p.is_dir() and _WNID.fullmatch(p.name)]
    _check_classes(folder, split, spec, found, extra_ok=True)  # ImageNet has 1000 classes
    files = [f for wnid in spec["classes"][split] for f in ravi_row_files(folder / wnid, spec["rows"][wnid])]
    return _decode_all(files, progress, split)


def _decode(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (SIZE, SIZE):
                im = im.resize((SIZE, SIZE), resample=Image.LANCZOS)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None


def _decode_all(files: list[Path], progress: bool, split: str) -> np.ndarray:
    out = np.empty((len(files), *SHAPE), dtype=np.uint8)
    for i, path in enumerate(tqdm(files, desc=f"decoding Mini-ImageNet {split}", unit="img", disable=not progress)):
        out[i] = _decode(path)
    return out


READERS = {"pickle": _read_pickle, "hdf5": _read_hdf5, "folders": _read_folders, "ravi-images": _read_ravi_images,
           "imagenet": _read_imagenet}


def _detect(folder: Path, depth: int = 0) -> tuple[str, Path]:
    """The format of the copy in `folder` (or in its only subfolder, as archives often wrap one)."""
    entries = sorted(folder.iterdir())
    if any(p.name.startswith("mini-imagenet-cache-") and p.suffix == ".pkl" for p in entries):
        return "pickle", folder
    if any(p.name.endswith("_data.hdf5") for p in entries):
        return "hdf5", folder
    if any((folder / s).is_dir() for s in SPLITS):
        return "folders", folder
    if (folder / "images").is_dir() or any(_RAVI_NAME.fullmatch(p.name) for p in entries):
        return "ravi-images", folder
    if any(p.is_dir() and _WNID.fullmatch(p.name) for p in entries):
        return "imagenet", folder
    subfolders = [p for p in entries if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
    if len(subfolders) == 1 and depth < 2:
        return _detect(subfolders[0], depth + 1)
    raise DataError(f"{folder}: no Mini-ImageNet found in it; expected {_EXPECTED}")


def _unpack(path: Path, into: Path) -> Path:
    with open(path, "rb") as f:
        head = f.read(512)
    if looks_like_html(head):
        raise DataError(f"{path}: looks like an HTML page, not an archive — a quota or login page? Delete it and "
                        "fetch again")
    try:
        if head.startswith(b"PK"):
            with zipfile.ZipFile(path) as zf:
                zf.extractall(into)
        elif head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ")) or head[257:262] == b"ustar":
            with tarfile.open(path) as tf:
                tf.extractall(into, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        else:
            raise DataError(f"{path}: not a zip or tar archive; pass the folder holding {_EXPECTED}, or an archive "
                            "of it")
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError,
            NotImplementedError) as e:
        raise DataError(f"{path}: not a valid archive, truncated or damaged ({type(e).__name__}: {e})") from None
    return into


def _generated(spec: dict) -> dict[str, np.ndarray]:
    """A stand-in with the real classes: each class a coarse random colour pattern, each image it plus noise, so
    that classes can be told apart. Fixed seed: the same arrays everywhere."""
    rng, out = np.random.default_rng(GENERATED_SEED), {}
    for split in SPLITS:
        n = len(spec["classes"][split])
        patterns = rng.integers(0, 256, (n, 1, 6, 6, 3), dtype=np.int16).repeat(SIZE // 6, 2).repeat(SIZE // 6, 3)
        noise = rng.integers(-48, 49, (n, GENERATED_PER_CLASS, *SHAPE), dtype=np.int16)
        out[split] = np.clip(patterns + noise, 0, 255).astype(np.uint8).reshape(-1, *SHAPE)
    return out
