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
