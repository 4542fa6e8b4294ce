"""Fetched datasets: where they live, and the error raised for bad data or failed downloads."""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "SUITE_DATA"
DEFAULT_DATA = "datasets"


class DataError(RuntimeError):
    """Data cannot be fetched or read (failed download, damaged archive, content that is not the pinned one).
    The message names the file."""


def data_root(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get(DATA_ENV) or DEFAULT_DATA)
