"""Download one file from a list of mirrors: md5- or sha256-checked, written atomically, never left half-written."""
from __future__ import annotations

import hashlib
import http.client
import urllib.request
from pathlib import Path

from tqdm import tqdm

from suite.data import DataError
from suite.io import atomic_write

CHUNK = 1 << 20
TIMEOUT_S = 60
_HTML_STARTS = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<!--")


def looks_like_html(head: bytes) -> bool:
    """Whether the first bytes of a file are a web page (what a quota, login or error page gives instead of data)."""
    return head.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()[:16].lower().startswith(_HTML_STARTS)


def download(urls: list[str], dest: Path, md5: str | None = None, progress: bool = True, *,
             sha256: str | None = None, unchecked: bool = False) -> Path:
    """Fetch `dest` from the first mirror in `urls` that gives a file with this md5 (or, given instead, this sha256);
    raise DataError naming every mirror's error when none does. `unchecked`: no checksum is known (a release that
    never published one), so any file but a web page is taken (the caller records its digest)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not urls:
        raise DataError(f"could not download {dest.name}: no mirror given")
    if unchecked == bool(md5 or sha256):
        raise ValueError("download: give md5 or sha256, or unchecked=True, not both or neither")
    errors = []
    for url in urls:
        try:
            _download_one(url, dest, None if unchecked else ("sha256", sha256) if sha256 else ("md5", md5), progress)
            return dest
        except (DataError, OSError, ValueError, http.client.HTTPException) as e:
            errors.append(f"{url}: {e}")
    raise DataError(f"could not download {dest.name} from any of {len(urls)} mirror(s): " + "; ".join(errors))


def _download_one(url: str, dest: Path, expected: tuple[str, str] | None, progress: bool):
    algorithm, value = expected or ("sha256", None)

    def write(f):
        digest, size, head = hashlib.new(algorithm), 0, b""
        request = urllib.request.Request(url, headers={"User-Agent": "suite-fetch (python urllib)"})
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            with tqdm(total=int(length) if length and length.isdigit() else None, unit="B", unit_scale=True,
                      desc=dest.name, disable=not progress, leave=False) as bar:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    head = head if len(head) >= 512 else (head + chunk)[:512]
                    size += len(chunk)
                    bar.update(len(chunk))
        if value is None or digest.hexdigest() != value.lower():
            if looks_like_html(head):
                raise DataError("looks like an HTML page, not a zip archive — a quota or login page?")
            if value is not None:
                raise DataError(f"{algorithm} {digest.hexdigest()} ({size:,} bytes), expected {value}")

    atomic_write(dest, write)
