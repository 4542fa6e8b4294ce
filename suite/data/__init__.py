"""Fetched datasets: the error raised for bad data or failed downloads, and the pinned split files."""
from __future__ import annotations

from pathlib import Path


class DataError(RuntimeError):
    """Data cannot be fetched or read (failed download, damaged archive, content that is not the pinned one).
    The message names the file."""


SPLITS = Path(__file__).resolve().parent.parent / "splits"


def split_file(dataset: str, name: str) -> Path:
    """suite/splits/<dataset>/<name>.json: a class split, pinned by its sha256 in the claims that use it."""
    return SPLITS / dataset / f"{name}.json"


def cache_is_current(meta: dict | None, generated: bool, cache: Path, what: str, real: str, log) -> bool:
    """The one-way rule of a converted cache that may hold real data or a generated stand-in (Mini-ImageNet's, LEO's
    embeddings'): True when `cache` (its metadata `meta`, None for none) already holds what is asked, so there is
    nothing to do; real data replace a stand-in, never the other way round (real data are not lost by accident).
    `what` names the cache's content in messages, `real` its real data."""
    if meta is None:
        return False
    if meta["generated"] == generated:
        log(f"{what} is already fetched and verified: {cache} (nothing to do)")
        return True
    if generated:
        raise DataError(f"{cache} holds {real}; delete that folder to replace it by the generated stand-in")
    log(f"{cache} holds the generated stand-in; replacing it by the real data")
    return False
