"""Omniglot (Lake et al., 2015): fetch the two official archives, verify them by content, cache them at 28x28.

The archives are verified by what they hold, not by their md5 alone (a repacked zip of the same PNGs is as good):
each part's digest is sha256 over its sorted PNG paths, hashing `path + "\\n" + sha256(png).hexdigest() + "\\n"`
per file, and must equal the one pinned in omniglot.json, with the alphabets and counts.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from tqdm import tqdm

from suite.data import DataError
from suite.io import atomic_write
from suite.data.download import download, looks_like_html

PARTS = ("images_background", "images_evaluation")
URLS = {part: [f"https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{part}.zip",
               f"https://github.com/brendenlake/omniglot/raw/master/python/{part}.zip"] for part in PARTS}
MD5 = {"images_background": "68d2efa1b9178cc56df9314c21c6e718",  # torchvision's zips_md5
       "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811"}
PINNED_FILE = Path(__file__).with_name("omniglot.json")
CACHE_NAME = "omniglot-28.npz"
CACHE_VERSION = 1  # bump when the decoding changes, so that old caches are rebuilt
SIZE = 28
DRAWERS = 20
NOT_FETCHED = "Omniglot is not fetched: run `suite fetch omniglot` (or `suite fetch omniglot --from PATH`)"

_PNG_PATH = re.compile(r"(images_background|images_evaluation)/([^/]+)/(character\d\d)/\d{4}_(\d\d)\.png")
_EXPECTED = ("images_background.zip and images_evaluation.zip (or the extracted folders images_background/ and "
             "images_evaluation/), as in the python/ folder of github.com/brendenlake/omniglot")


@functools.cache
def pinned() -> dict:
    """The pinned digest, alphabets and counts of each part."""
    return json.loads(PINNED_FILE.read_text())["parts"]


def cache_path(data_dir: Path) -> Path:
    return Path(data_dir) / "omniglot" / CACHE_NAME


def content_digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\n{hashlib.sha256(files[name]).hexdigest()}\n".encode())
    return h.hexdigest()


def fetch_omniglot(data_dir: Path, source: Path | None = None, urls: dict[str, list[str]] | None = None, *,
                   progress: bool = True, log: Callable[[str], None] | None = None) -> Path:
    """Download both archives (from `urls`, part -> mirrors; default URLS), or take them from the folder `source`
    (the two zips or the two extracted folders), verify their content and write the cache; return its path."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    data_dir = Path(data_dir)
    cache = cache_path(data_dir)
    if cache.exists():
        try:
            _read_cache(cache)
            log(f"Omniglot is already fetched and verified: {cache} (nothing to do)")
            return cache
        except DataError as e:
            log(f"{e}; fetching again")
    if source is None:
        urls = urls or URLS
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".omniglot-download-") as tmp:
            for part in PARTS:
                log(f"downloading {part}.zip")
                download(urls[part], Path(tmp) / f"{part}.zip", MD5[part], progress=progress)
            parts = {part: _read_verified(where, part) for part, where in _locate(Path(tmp)).items()}
    else:
        parts = {part: _read_verified(where, part) for part, where in _locate(Path(source)).items()}

    characters = [c for part in PARTS for c in parts[part]]
    images = np.zeros((len(characters), DRAWERS, SIZE, SIZE), dtype=np.uint8)
    with tqdm(total=len(characters) * DRAWERS, desc="decoding Omniglot", unit="img", disable=not progress) as bar:
        for i, pngs in enumerate(drawers for part in PARTS for drawers in parts[part].values()):
            for j, png in enumerate(pngs):
                images[i, j] = _decode(png)
            bar.update(len(pngs))
    _write_cache(cache, images, characters)
    log(f"Omniglot: {len(characters)} characters x {DRAWERS} drawers verified and cached in {cache}")
    return cache


def load_omniglot(data_dir: Path) -> tuple[np.ndarray, list[str]]:
    """The cached images, uint8 [1623, 20, 28, 28] (strokes 255, background 0), and their character names
    (`images_background/<alphabet>/characterNN`, background then evaluation, each sorted)."""
    cache = cache_path(data_dir)
    if not cache.exists():
        raise DataError(f"{NOT_FETCHED}; there is no {cache}")
    return _read_cache(cache)


def _decode(png: bytes) -> np.ndarray:
    # As MAML's resize_images.py: resize((28, 28), LANCZOS). Pillow resizes mode "1" images with nearest
    # neighbour whatever filter is asked, so this gives the same binary images MAML trained on. We keep them
    # binary, and invert as MAML does (1 - image): strokes 255, background 0.
    with Image.open(io.BytesIO(png)) as im:
        small = im.resize((SIZE, SIZE), resample=Image.LANCZOS)
    return np.where(np.asarray(small, dtype=bool), 0, 255).astype(np.uint8)


def _locate(source: Path) -> dict[str, Path]:
    """The zip or extracted folder of each part in `source`."""
    if not source.exists():
        raise DataError(f"{source}: no such folder; expected one holding {_EXPECTED}")
    if not source.is_dir():
        raise DataError(f"{source} is a file; pass the folder holding {_EXPECTED}")
    found = {}
    for part in PARTS:
        if (source / f"{part}.zip").is_file():
            found[part] = source / f"{part}.zip"
        elif (source / part).is_dir():
            found[part] = source / part
    if not found and (source / "python").is_dir():  # the root of a clone of brendenlake/omniglot
        return _locate(source / "python")
    missing = [part for part in PARTS if part not in found]
    if missing:
        raise DataError(f"{source}: no {' and no '.join(f'{p}.zip (or {p}/)' for p in missing)} in it; "
                        f"expected {_EXPECTED}")
    return found


def _is_png(name: str, part: str) -> bool:
    return (name.startswith(part + "/") and name.lower().endswith(".png")
            and not any(c.startswith(".") for c in name.split("/")))


def _read(where: Path, part: str) -> dict[str, bytes]:
    if where.is_dir():
        return {rel: p.read_bytes() for p in sorted(where.rglob("*"))
                if p.is_file() and _is_png(rel := p.relative_to(where.parent).as_posix(), part)}
    with open(where, "rb") as f:
        if looks_like_html(f.read(512)):
            raise DataError(f"{where}: looks like an HTML page, not a zip archive — a quota or login page? "
                            "Delete it and fetch again")
    try:
        with zipfile.ZipFile(where) as zf:
            return {info.filename: zf.read(info) for info in zf.infolist() if _is_png(info.filename, part)}
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise DataError(f"{where}: not a valid zip archive, truncated or damaged ({e})") from None


def _read_verified(where: Path, part: str) -> dict[str, list[bytes]]:
    """Read one part and check it against the pinned alphabets, counts and digest; return the PNGs of each
    character (sorted), drawers 01..20 in order."""
    files = _read(where, part)
    pin = pinned()[part]
    if not files:
        raise DataError(f"{where}: no {part}/<alphabet>/characterNN/*.png images in it")
    characters: dict[str, dict[int, str]] = {}
    for name in files:
        match = _PNG_PATH.fullmatch(name)
        if not match:
            raise DataError(f"{where}: unexpected file {name} (expected {part}/<alphabet>/characterNN/IIII_RR.png)")
        drawers = characters.setdefault(name.rsplit("/", 1)[0], {})
        if int(match[4]) in drawers:
            raise DataError(f"{where}: {drawers[int(match[4])]} and {name} are the same drawer of one character")
        drawers[int(match[4])] = name
    alphabets = {c.split("/")[1] for c in characters}
    missing, extra = sorted(set(pin["alphabets"]) - alphabets), sorted(alphabets - set(pin["alphabets"]))
    if missing:
        raise DataError(f"{where}: {len(missing)} of the {len(pin['alphabets'])} {part} alphabets are missing: "
                        + ", ".join(missing))
    if extra:
        raise DataError(f"{where}: alphabets that are not in Omniglot's {part}: " + ", ".join(extra))
    incomplete = [c for c, d in sorted(characters.items()) if sorted(d) != list(range(1, DRAWERS + 1))]
    if len(characters) != pin["characters"] or len(files) != pin["images"] or incomplete:
        raise DataError(f"{where}: wrong number of images: {len(characters)} characters and {len(files):,} images, "
                        f"expected {pin['characters']} and {pin['images']:,} (drawers 01..{DRAWERS} of each)"
                        + (f"; incomplete: {', '.join(incomplete[:5])}" if incomplete else ""))
    digest = content_digest(files)
    if digest != pin["digest"]:
        raise DataError(f"{where}: the content differs from the pinned Omniglot {part} (digest {digest[:16]}…, "
                        f"pinned {pin['digest'][:16]}… in {PINNED_FILE.name}): an image is changed or damaged")
    return {c: [files[d[k]] for k in sorted(d)] for c, d in sorted(characters.items())}


def _write_cache(path: Path, images: np.ndarray, characters: list[str]):
    """Atomically: nothing half-written is ever left in the data folder."""
    atomic_write(path, lambda f: np.savez_compressed(
        f, images=images, characters=np.array(characters), version=np.array(CACHE_VERSION),
        **{f"digest_{part}": np.array(pinned()[part]["digest"]) for part in PARTS}))


def _read_cache(path: Path) -> tuple[np.ndarray, list[str]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            version, images, characters = int(npz["version"]), npz["images"], npz["characters"].tolist()
            digests = {part: str(npz[f"digest_{part}"]) for part in PARTS}
    except Exception as e:  # noqa: BLE001 -- whatever np.load raises on a damaged file
        raise DataError(f"{path}: damaged Omniglot cache ({type(e).__name__}: {e}); run `suite fetch omniglot` "
                        "again") from None
    n = sum(pin["characters"] for pin in pinned().values())
    if digests != {part: pinned()[part]["digest"] for part in PARTS} or version != CACHE_VERSION:
        raise DataError(f"{path} was made from other Omniglot data or by another version of the code than the "
                        f"pinned ones (see {PINNED_FILE.name}); run `suite fetch omniglot` again")
    if images.shape != (n, DRAWERS, SIZE, SIZE) or images.dtype != np.uint8 or len(characters) != n:
        raise DataError(f"{path}: damaged Omniglot cache (images {images.dtype} {images.shape}, "
                        f"{len(characters)} characters); run `suite fetch omniglot` again")
    return images, characters
