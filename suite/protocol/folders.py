"""The folders a command reads and writes, each from an explicit option, else its environment variable, else its
default (the CLI's --manifest, --results and --data take exactly these)."""
from __future__ import annotations

import os
from pathlib import Path

FOLDERS = {  # name -> (environment variable, default)
    "manifest": ("SUITE_MANIFEST", "benchmarks.yaml"),
    "results": ("SUITE_RESULTS", "results"),
    "data": ("SUITE_DATA", "datasets"),
}


def folder(name: str, explicit: str | Path | None = None) -> Path:
    env, default = FOLDERS[name]
    return Path(explicit or os.environ.get(env) or default)
