"""Atomic writes: through a temporary file in the same folder, then a rename, so a reader (or a crash) sees the
old file or the new one, never half of one."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: Path, write: Callable[[BinaryIO], None]):
    """Call write(f) on a temporary file and rename it to `path`; if anything fails, remove the temporary file
    and any folder this call created."""
    path = Path(path)
    made = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        remove_made_folders(made)
        raise


def remove_made_folders(made: list[Path]):
    """Undo the creation of `made` (innermost first), stopping at the first folder something else now holds."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            break


def atomic_write_bytes(path: Path, data: bytes):
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: Path, obj):
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())


class Locked(RuntimeError):
    """Another process holds the lock; `holder` is its PID as it wrote it (None if unknown)."""

    def __init__(self, path: Path, holder: int | None):
        super().__init__(f"{path} is locked by process {holder}")
        self.holder = holder


@contextmanager
def exclusive_lock(path: Path):
    """Hold an exclusive lock on `path` (created, with the folders above it, if missing) for the block, writing
    this process's PID into it; raise Locked at once if another process holds it. The operating system releases
    the lock when its holder exits, however it exits, so a killed process never leaves a stale one."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            raise Locked(path, int(text) if text.isdigit() else None) from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks (the Mini-ImageNet arrays are a gigabyte)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
