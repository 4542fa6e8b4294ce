"""LEO's pre-computed image embeddings (Rusu et al. 2019, arXiv 1807.05960 §4.2.1; released with deepmind/leo):
640-d features of a WRN-28-10 trained on the meta-training classes, checked field by field and converted once into
the suite's own cache.

The release is one zip, URL below (`suite fetch leo_embeddings` downloads it; deepmind/leo's README: wget it and
unzip). Its sha256 was never published: unless --sha256 pins it, the downloaded file's sha256 is logged and recorded
in the cache's metadata. Unzipped, it is
  embeddings/<dataset>/<crop>/<split>_embeddings.pkl
with dataset miniImageNet or tieredImageNet, crop center or multiview (multiview: Mini-ImageNet only) and split
train, val or test. Each file is a Python 2 pickle (read with encoding="latin1", through an unpickler that builds
numpy arrays and containers only, never arbitrary objects) of a dict:
  embeddings  float [n, 640], one row per image
  labels      [n] (deepmind/leo's data.py does not read them; only their length is checked)
  keys        [n] strings "<id>-<class>-<image file>", the image file starting with "<class>_" (an ImageNet wnid
              and an ILSVRC file name, e.g. "1234-n01532829-n01532829_00001234.JPEG"); data.py indexes the images
              by that file name, so it must not repeat.
Accepted, from `--from PATH`: the zip itself, the extracted embeddings/ folder, its parent, or any folder holding
<dataset>/center/; both datasets must be there. Only the center crop is read (the paper's and data.py's default);
multiview files are skipped, and the log says so. Each split must hold the paper's number of classes (Mini-ImageNet
64/16/20 on Ravi & Larochelle's split, tieredImageNet 351/97/160), and the three splits of a dataset no common class:
a pickle of another split under a split's name is caught either way. deepmind/leo's runner.py evaluates with
600 − shots queries per class (config.py total_examples_per_class = 600, drawn without replacement), which every
Mini-ImageNet class has; tieredImageNet's classes have varying counts, recorded per class in the cache.

`--generated` writes a small stand-in in exactly this format (Python 2 pickles: str as Python 2 byte strings, numpy
under its Python 2 module names) and converts it through the same reader: both datasets, center crop, the real
number of classes per split (Mini-ImageNet's the classes of Ravi's split, tieredImageNet's made-up wnids n9xxxxxxx),
GENERATED_PER_CLASS images per class, in shuffled key order. Each class has a random mean in a subspace of
GENERATED_RANK dimensions that all classes of a dataset share (one network's features have such structure, which a
method can learn from the training classes), each image it plus unit Gaussian noise through a ReLU (non-negative,
like the real features): classes can be told apart, not trivially (nearest-prototype accuracy about 50% 5-way
1-shot and 80% 5-shot, near LEO's 61% and 78%). Fixed seed.

Cache, <root>/leo_embeddings/: <dataset>/{train,val,test}.npy, float32 [n, 640], the classes one after another in
sorted order and each class's images in the pickle's key order (np.load(..., mmap_mode='r') maps them), and
leo_embeddings.json: per dataset and split the classes, the offsets of their rows (class c is rows
offsets[c]:offsets[c+1]), the array's size and sha256, the source pickle's sha256; the source, its sha256 (and whether
it was checked) and `generated`. leo_embeddings.json is written last, so a cache without it is not one.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from tqdm import tqdm

from suite.data import DataError, cache_is_current, split_file
from suite.data.download import CHUNK, download, looks_like_html
from suite.io import atomic_write, atomic_write_json, file_sha256, remove_made_folders

DATASETS = ("miniImageNet", "tieredImageNet")
SPLITS = ("train", "val", "test")
CROPS = ("center", "multiview")
CROP = "center"
DIM = 640
URL = "http://storage.googleapis.com/leo-embeddings/embeddings.zip"
CLASSES = {"miniImageNet": {"train": 64, "val": 16, "test": 20},
           "tieredImageNet": {"train": 351, "val": 97, "test": 160}}  # LEO §4.2.1
META_NAME = "leo_embeddings.json"
CACHE_VERSION = 1  # bump when the conversion changes, so that old caches are rebuilt
GENERATED_PER_CLASS = 20  # 5-way 5-shot episodes with 15 queries take 5 + 15 images per class
GENERATED_SEED = 0
GENERATED_SPREAD = 0.25  # std of the class means against unit noise: prototypes score ~50% 5-way 1-shot, ~80% 5-shot
GENERATED_RANK = 16  # the class means' shared subspace (below LEO's 64 latent units)
FORMAT = "leo-pickles"
NOT_FETCHED = ("LEO's embeddings are not fetched: run `suite fetch leo_embeddings` (downloads embeddings.zip), "
               "`suite fetch leo_embeddings --from PATH` (your copy: the zip or its extracted embeddings/ folder) or "
               "`suite fetch leo_embeddings --generated` (a synthetic stand-in)")

_PICKLE = re.compile(r"(?:.*/)?(miniImageNet|tieredImageNet)/(center|multiview)/(train|val|test)_embeddings\.pkl")
_EXPECTED = f"the extracted embeddings/ folder of {URL} (or its parent, or the zip itself)"
_COPY_ROWS = 1 << 16


def cache_dir(root: Path) -> Path:
    return Path(root) / "leo_embeddings"


def pickle_name(dataset: str, split: str, crop: str = CROP) -> str:
    """Where a split's pickle lies inside embeddings/."""
    return f"{dataset}/{crop}/{split}_embeddings.pkl"


# ---------------------------------------------------------------------------------------------------- fetching


def fetch_leo_embeddings(root: Path, source: Path | None = None, url: str | None = None, sha256: str | None = None,
                         *, generated: bool = False, progress: bool = True,
                         log: Callable[[str], None] | None = None) -> None:
    """Convert the release at `source` (the zip or a folder of it), or downloaded from `url` (the official one when
    nothing is given; checked against `sha256` if given), or with `generated` a synthetic stand-in in its format,
    into the cache."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    root = Path(root)
    given = [flag for flag, value in (("--from", source), ("--url", url), ("--generated", generated)) if value]
    if len(given) > 1:
        raise DataError(f"give only one of {' and '.join(given)}")
    if sha256 is not None and (source is not None or generated):
        raise DataError(f"--sha256 checks a download (the official URL, or --url), not {given[0]}")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise DataError(f"--sha256 needs the sha256 of the file (64 hex digits), not {sha256!r}")
    if not given:
        url = URL
    cache = cache_dir(root)
    meta = None
    if (cache / META_NAME).exists():
        try:
            meta = _read_meta(cache)
        except DataError as e:
            log(f"{e}; fetching again")
    if cache_is_current(meta, generated, cache, f"LEO's embeddings{' (generated stand-in)' if generated else ''}",
                        "LEO's real embeddings", log):
        return

    made = [p for p in [root, *root.parents] if not p.exists()]
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=root, prefix=".leo_embeddings-") as tmp:
            tmp = Path(tmp)
            origin = {"source": None, "source_sha256": None, "source_sha256_checked": False}
            if generated:
                tree = _Tree.of_folder(write_standin(tmp / "standin"), log)
            else:
                where = source
                if url is not None:
                    where = tmp / "embeddings.zip"
                    origin = {"source": url, **_download(url, where, sha256, progress, log)}
                else:
                    origin["source"] = str(source)
                tree = _open(Path(where), origin, log)
            stage = tmp / "cache"
            try:
                datasets = _convert(tree, stage, progress, log)
            finally:
                tree.close()
            meta = {"dataset": "leo_embeddings", "version": CACHE_VERSION, "generated": generated,
                    "format": "generated" if generated else FORMAT, "crop": CROP, "dim": DIM, **origin,
                    "datasets": datasets}
            _install(stage, cache, meta)
    except BaseException:
        remove_made_folders(made)
        raise
    counts = "; ".join(f"{ds} " + ", ".join(f"{s} {len(datasets[ds]['splits'][s]['classes'])} classes / "
                                            f"{datasets[ds]['splits'][s]['rows']:,} images" for s in SPLITS)
                       for ds in DATASETS)
    log(f"LEO's embeddings{' (generated stand-in)' if generated else ''}: {counts}; cached in {cache}")


def _install(stage: Path, cache: Path, meta: dict):
    """Move the staged arrays into the cache, the metadata last."""
    made = [p for p in [*(cache / ds for ds in DATASETS), cache] if not p.exists()]
    try:
        for ds in DATASETS:
            (cache / ds).mkdir(parents=True, exist_ok=True)
        (cache / META_NAME).unlink(missing_ok=True)  # the old cache stops being one before its arrays change
        for ds in DATASETS:
            for split in SPLITS:
                os.replace(stage / ds / f"{split}.npy", cache / ds / f"{split}.npy")
        atomic_write_json(cache / META_NAME, meta)
    except BaseException:
        remove_made_folders(made)
        raise


def _download(url: str, dest: Path, sha256: str | None, progress: bool, log) -> dict:
    """Download `url` to `dest`: checked against `sha256` when given, else its sha256 is logged and returned."""
    log(f"downloading {url}")
    if sha256 is not None:
        download([url], dest, progress=progress, sha256=sha256)
        return {"source_sha256": sha256.lower(), "source_sha256_checked": True}
    digest = file_sha256(download([url], dest, progress=progress, unchecked=True))
    log(f"downloaded {url}: {dest.stat().st_size:,} bytes, sha256 {digest} (not checked: the official "
        f"file's sha256 was never published; it is recorded in {META_NAME}, and --sha256 {digest} pins "
        "it next time); its content is checked field by field")
    return {"source_sha256": digest, "source_sha256_checked": False}


class _Tree:
    """The six center-crop pickles of a copy: each one's name (for messages) and how to open it."""

    def __init__(self, names: dict, openers: dict, close: Callable[[], None] = lambda: None):
        self.names, self.openers, self.close = names, openers, close

    @classmethod
    def of_folder(cls, folder: Path, log) -> "_Tree":
        top = _locate(folder)
        names, openers = {}, {}
        for ds in DATASETS:
            if not (top / ds).is_dir():
                raise DataError(f"{top / ds}: no such folder: the {ds} embeddings are missing (embeddings.zip holds "
                                f"{' and '.join(DATASETS)})")
            if not (top / ds / CROP).is_dir():
                raise DataError(f"{top / ds / CROP}: no such folder: the {ds} center-crop embeddings are missing")
            if (top / ds / "multiview").is_dir():
                log(f"{top / ds / 'multiview'}: skipped (only the center crop is read)")
            for split in SPLITS:
                path = top / pickle_name(ds, split)
                if not path.is_file():
                    raise DataError(f"{path}: no such file: the {ds} {split} embeddings are missing")
                names[ds, split], openers[ds, split] = str(path), (lambda p=path: open(p, "rb"))
        return cls(names, openers)

    @classmethod
    def of_zip(cls, path: Path, zf: zipfile.ZipFile, log) -> "_Tree":
        found, skipped = {}, 0
        for info in zf.infolist():
            match = _PICKLE.fullmatch(info.filename)
            if match is None or info.is_dir() or "__MACOSX" in info.filename:
                continue
            ds, crop, split = match.groups()
            if crop != CROP:
                skipped += 1
            elif (ds, split) in found:
                raise DataError(f"{path}: holds {info.filename} and {found[ds, split]}: which one is it?")
            else:
                found[ds, split] = info.filename
        if skipped:
            log(f"{path}: {skipped} multiview file(s) skipped (only the center crop is read)")
        for ds in DATASETS:
            if not any(k[0] == ds for k in found):
                raise DataError(f"{path}: no {ds}/{CROP}/ in it: the {ds} embeddings are missing (expected "
                                f"{_EXPECTED})")
            for split in SPLITS:
                if (ds, split) not in found:
                    raise DataError(f"{path}: no {pickle_name(ds, split)} in it: the {ds} {split} embeddings are "
                                    "missing")
        return cls({k: f"{path}/{m}" for k, m in found.items()},
                   {k: (lambda m=m: zf.open(m)) for k, m in found.items()}, zf.close)


def _locate(folder: Path, depth: int = 0) -> Path:
    """The folder holding <dataset>/ (the extracted embeddings/ folder), at or under `folder`."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such file or folder; expected {_EXPECTED}")
    if any((folder / ds).is_dir() for ds in DATASETS):
        return folder
    if (folder / "embeddings").is_dir():
        return _locate(folder / "embeddings", depth + 1)
    subfolders = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
    if len(subfolders) == 1 and depth < 2:
        return _locate(subfolders[0], depth + 1)
    raise DataError(f"{folder}: no {' or '.join(f'{ds}/' for ds in DATASETS)} folder in it; expected {_EXPECTED}")


def _open(where: Path, origin: dict, log) -> _Tree:
    if not where.exists():
        raise DataError(f"{where}: no such file or folder; expected {_EXPECTED}")
    if where.is_dir():
        return _Tree.of_folder(where, log)
    _check_not_html(where, "a zip archive")
    with open(where, "rb") as f:
        head = f.read(4)
    if not head.startswith(b"PK"):
        raise DataError(f"{where}: not a zip archive; expected {_EXPECTED}")
    if origin["source_sha256"] is None:
        origin["source_sha256"] = file_sha256(where)
    try:
        zf = zipfile.ZipFile(where)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{where}: not a valid zip archive, truncated or damaged ({type(e).__name__}: {e})") from None
    try:
        return _Tree.of_zip(where, zf, log)
    except BaseException:
        zf.close()
        raise


def _convert(tree: _Tree, stage: Path, progress: bool, log) -> dict:
    """Read, check and write each split of each dataset into `stage`; their metadata."""
    ravi = json.loads(split_file("miniimagenet", "ravi").read_text())["classes"]
    out = {}
    bar = tqdm(total=len(DATASETS) * len(SPLITS), desc="converting LEO's embeddings", unit="file",
               disable=not progress)
    with bar:
        for ds in DATASETS:
            (stage / ds).mkdir(parents=True)
            splits = {}
            for split in SPLITS:
                splits[split] = _convert_one(tree, ds, split, stage / ds / f"{split}.npy")
                bar.update()
            for i, a in enumerate(SPLITS):
                for b in SPLITS[i + 1:]:
                    common = sorted(set(splits[a]["classes"]) & set(splits[b]["classes"]))
                    if common:
                        raise DataError(f"{tree.names[ds, b]}: {len(common)} of its classes are also in "
                                        f"{tree.names[ds, a]} ({_few(common)}); the splits share no class: a "
                                        "pickle of another split?")
            out[ds] = {"splits": splits}
            if ds == "miniImageNet":
                out[ds]["ravi_split"] = all(sorted(splits[s]["classes"]) == sorted(ravi[s]) for s in SPLITS)
                if not out[ds]["ravi_split"]:
                    log(f"note: the {ds} classes are not those of Ravi & Larochelle's split (recorded in the cache)")
    return out


def _convert_one(tree: _Tree, ds: str, split: str, dest: Path) -> dict:
    name = tree.names[ds, split]
    try:
        with tree.openers[ds, split]() as f:
            head = f.read(512)
            if looks_like_html(head):
                raise DataError(f"{name}: looks like an HTML page, not a pickle — a quota or login page? Delete it "
                                "and fetch again")
            digest, size = hashlib.sha256(head), len(head)
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        with tree.openers[ds, split]() as f:
            data = _ArraysOnly(f, encoding="latin1").load()  # latin1: numpy arrays in Python 2 pickles
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 -- whatever unpickling a damaged file raises
        why = " ".join(str(e).split())  # one line: some unpickling errors span two
        raise DataError(f"{name}: not a valid pickle of arrays, truncated or damaged ({type(e).__name__}: {why})") \
            from None
    embeddings, classes, order, offsets = _check(name, ds, split, data)
    del data
    out = np.lib.format.open_memmap(dest, mode="w+", dtype=np.float32, shape=(len(order), DIM))
    for start in range(0, len(order), _COPY_ROWS):
        rows = np.asarray(embeddings[order[start:start + _COPY_ROWS]], dtype=np.float32)
        if not np.isfinite(rows).all():
            raise DataError(f"{name}: the embeddings hold NaN or infinite values")
        out[start:start + len(rows)] = rows
    out.flush()
    del out
    return {"pickle": pickle_name(ds, split), "pickle_sha256": digest.hexdigest(), "pickle_bytes": size,
            "file": f"{ds}/{split}.npy", "rows": len(order), "bytes": dest.stat().st_size,
            "sha256": file_sha256(dest), "classes": classes, "offsets": offsets.tolist()}


def _check(name: str, ds: str, split: str, data) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """The checked embeddings; the classes in sorted order; the rows in cache order; each class's offsets."""
    if not isinstance(data, dict):
        raise DataError(f"{name}: expected a dict with 'embeddings', 'labels' and 'keys', got {type(data).__name__}")
    missing = [k for k in ("embeddings", "labels", "keys") if k not in data]
    if missing:
        raise DataError(f"{name}: the dict has no {', '.join(repr(k) for k in missing)} (it has "
                        f"{', '.join(repr(k) for k in data) or 'nothing'})")
    embeddings, labels, keys = data["embeddings"], data["labels"], data["keys"]
    if not isinstance(embeddings, np.ndarray) or embeddings.dtype.kind != "f" or embeddings.ndim != 2 \
            or embeddings.shape[1] != DIM:
        raise DataError(f"{name}: embeddings is {getattr(embeddings, 'dtype', type(embeddings).__name__)} "
                        f"{list(getattr(embeddings, 'shape', ''))}, expected float [n, {DIM}]")
    n = len(embeddings)
    for field, value in (("labels", labels), ("keys", keys)):
        shape = np.shape(value) if isinstance(value, (np.ndarray, list, tuple)) else None
        if shape is None or len(shape) != 1 or shape[0] != n:
            raise DataError(f"{name}: {field} has shape {list(shape) if shape is not None else type(value).__name__}"
                            f", expected [{n}] like the {n:,} embeddings")
    keys = keys.tolist() if isinstance(keys, np.ndarray) else list(keys)
    row_class, seen, index = [], {}, {}
    for i, key in enumerate(keys):
        if isinstance(key, bytes):
            key = key.decode("latin1")
        if not isinstance(key, str):
            raise DataError(f"{name}: keys[{i}] is {type(key).__name__} {key!r}, not a string")
        parts = key.split("-")
        if len(parts) != 3 or not parts[1]:
            raise DataError(f"{name}: keys[{i}] = {key!r} is not <id>-<class>-<image file>")
        _, cls, image = parts
        if image.split("_")[0] != cls:
            raise DataError(f"{name}: keys[{i}] = {key!r}: its image file {image!r} does not start with its class "
                            f"{cls}_")
        if image in seen:
            raise DataError(f"{name}: keys[{i}] = {key!r} repeats the image file {image} of keys[{seen[image]}]")
        seen[image] = i
        row_class.append(index.setdefault(cls, len(index)))
    classes = sorted(index)
    rank = np.empty(len(index), dtype=np.int64)
    rank[[index[c] for c in classes]] = np.arange(len(classes))
    row_rank = rank[np.asarray(row_class, dtype=np.int64)] if n else np.zeros(0, dtype=np.int64)
    expected = CLASSES[ds][split]
    if len(classes) != expected:
        other = next((s for s in SPLITS if s != split and CLASSES[ds][s] == len(classes)), None)
        raise DataError(f"{name}: {len(classes)} classes, expected {expected} for {ds}'s {split} split"
                        + (f" ({len(classes)} is its {other} split's: the {other} pickle under the {split} name?)"
                           if other else ""))
    order = np.argsort(row_rank, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(row_rank, minlength=len(classes)))]).astype(np.int64)
    return embeddings, classes, order, offsets


class _ArraysOnly(pickle.Unpickler):
    """Unpickles containers and numpy arrays only: a pickle can run any code, and these files come from the web."""

    ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
                ("numpy._core.numeric", "_frombuffer"), ("collections", "OrderedDict"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not an array or a container")
        return super().find_class(module, name)


def _check_not_html(path: Path, what: str):
    with open(path, "rb") as f:
        if looks_like_html(f.read(512)):
            raise DataError(f"{path}: looks like an HTML page, not {what} — a quota or login page? Delete it and "
                            "fetch again")


def _few(names, k: int = 5) -> str:
    return ", ".join(names[:k]) + (f", … ({len(names) - k} more)" if len(names) > k else "")


# ----------------------------------------------------------------------------------------------------- loading


def load_leo_embeddings(root: Path, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """A split's cached embeddings, memory-mapped float32 [n, 640], class after class; the offsets of the classes'
    rows, int64 [classes + 1] (class c is rows offsets[c]:offsets[c+1]); and the metadata: `generated`, `format`,
    `source`, `classes` and `counts` (this split's), `sha256` (each split's array), ..."""
    if dataset not in DATASETS or split not in SPLITS:
        raise DataError(f"LEO's embeddings have datasets {', '.join(DATASETS)} and splits {', '.join(SPLITS)}, not "
                        f"{dataset!r} / {split!r}")
    cache = cache_dir(root)
    if not (cache / META_NAME).exists():
        raise DataError(f"{NOT_FETCHED}; there is no {cache / META_NAME}")
    meta = _read_meta(cache)
    entry = meta["datasets"][dataset]["splits"][split]
    path = cache / entry["file"]
    try:
        embeddings = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: damaged LEO embeddings cache ({e}); run `suite fetch leo_embeddings` again") \
            from None
    offsets = np.asarray(entry["offsets"], dtype=np.int64)
    if embeddings.dtype != np.float32 or embeddings.shape != (entry["rows"], DIM) or offsets[-1] != entry["rows"]:
        raise DataError(f"{path}: damaged LEO embeddings cache (embeddings {embeddings.dtype} "
                        f"{list(embeddings.shape)}, expected float32 [{entry['rows']}, {DIM}]); run `suite fetch "
                        "leo_embeddings` again")
    view = {k: v for k, v in meta.items() if k != "datasets"}
    view.update(dataset=dataset, split=split, classes=entry["classes"], counts=np.diff(offsets).tolist(),
                sha256={s: meta["datasets"][dataset]["splits"][s]["sha256"] for s in SPLITS},
                pickle_sha256=entry["pickle_sha256"])
    return embeddings, offsets, view


def _read_meta(cache: Path) -> dict:
    """leo_embeddings.json, checked against the arrays' sizes (cheap: no hashing)."""
    path = cache / META_NAME
    try:
        meta = json.loads(path.read_text())
        version, _ = meta["version"], meta["generated"]
        entries = [(ds, s, meta["datasets"][ds]["splits"][s]) for ds in DATASETS for s in SPLITS]
        for ds, s, entry in entries:
            offsets = entry["offsets"]
            if len(offsets) != len(entry["classes"]) + 1 or offsets[0] != 0 or offsets[-1] != entry["rows"] \
                    or any(a > b for a, b in zip(offsets, offsets[1:])):
                raise ValueError(f"{ds} {s}: offsets do not fit {len(entry['classes'])} classes of {entry['rows']} "
                                 "rows")
            missing = [k for k in ("file", "rows", "bytes", "sha256", "pickle_sha256") if k not in entry]
            if missing:
                raise KeyError(f"{ds} {s}: {', '.join(missing)}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: damaged LEO embeddings cache ({type(e).__name__}: {e}); run `suite fetch "
                        "leo_embeddings` again") from None
    if version != CACHE_VERSION:
        raise DataError(f"{path} was made by another version of the code; run `suite fetch leo_embeddings` again")
    for _, _, entry in entries:
        array = cache / entry["file"]
        size = array.stat().st_size if array.is_file() else None
        if size != entry["bytes"]:
            raise DataError(f"{array}: {'missing' if size is None else f'{size:,} bytes'}, {path.name} says "
                            f"{entry['bytes']:,}; run `suite fetch leo_embeddings` again")
    return meta


# ---------------------------------------------------------------------------- writing the format (the stand-in)


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be changed
    """Writes a pickle as Python 2 did (protocol 2): every str and bytes as a Python 2 byte string (read back by
    Python 3 with encoding="latin1" as str), and numpy under the module names it had then (numpy.core)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file: BinaryIO):
        super().__init__(file, protocol=2)

    def save_py2_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string

    def save_global(self, obj, name=None):
        module, name = obj.__module__, name or obj.__qualname__
        module = {"numpy._core.multiarray": "numpy.core.multiarray",
                  "numpy._core.numeric": "numpy.core.numeric"}.get(module, module)
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)


def write_pickle(path: Path, embeddings, labels, keys):
    """One <split>_embeddings.pkl as the release has it: {'embeddings', 'labels', 'keys'}."""
    def write(f):
        Py2Pickler(f).dump({"embeddings": embeddings, "labels": labels, "keys": keys})

    atomic_write(Path(path), write)


def standin_classes() -> dict[str, dict[str, list[str]]]:
    """The stand-in's classes: Mini-ImageNet's those of Ravi's split, tieredImageNet's made-up wnids (n9...)."""
    ravi = json.loads(split_file("miniimagenet", "ravi").read_text())["classes"]
    tiered, start = {}, 0
    for split in SPLITS:
        tiered[split] = [f"n9{start + i:07d}" for i in range(CLASSES["tieredImageNet"][split])]
        start += len(tiered[split])
    return {"miniImageNet": {s: list(ravi[s]) for s in SPLITS}, "tieredImageNet": tiered}


def write_standin(folder: Path, per_class: int = GENERATED_PER_CLASS, seed: int = GENERATED_SEED,
                  classes: dict | None = None) -> Path:
    """Write a synthetic release, <folder>/embeddings/<dataset>/center/<split>_embeddings.pkl, in the real format
    (see the module's docstring); return its embeddings/ folder."""
    rng = np.random.default_rng(seed)
    top = Path(folder) / "embeddings"
    classes = classes or standin_classes()
    # one network's features share structure: every class mean of a dataset lies in one GENERATED_RANK-dimensional
    # subspace (each dimension's spread still GENERATED_SPREAD), which its training classes reveal
    basis = {ds: rng.normal(0.0, GENERATED_RANK ** -0.5, (GENERATED_RANK, DIM)) for ds in DATASETS}
    for ds in DATASETS:
        for split in SPLITS:
            names = classes[ds][split]
            means = GENERATED_SPREAD * (rng.normal(0.0, 1.0, (len(names), 1, GENERATED_RANK)) @ basis[ds])
            embeddings = np.maximum(means + rng.normal(0.0, 1.0, (len(names), per_class, DIM)), 0)
            embeddings = embeddings.reshape(-1, DIM).astype(np.float32)
            labels = np.repeat(np.arange(len(names), dtype=np.int64), per_class)
            keys = np.array([f"{c * per_class + j}-{wnid}-{wnid}_{1 + 7 * j:08d}.JPEG"
                             for c, wnid in enumerate(names) for j in range(per_class)], dtype=object)
            shuffle = rng.permutation(len(keys))
            write_pickle(top / pickle_name(ds, split), embeddings[shuffle], labels[shuffle], keys[shuffle])
    return top
