"""Content-addressed storage of image bytes on the local file system.

A blob key is ``"<sha256 hex of the bytes>.<ext>"`` (e.g. ``"9f86d0…0a08.png"``), so a key alone names the
file and its type. Blobs live at ``root/<hex[0:2]>/<hex[2:4]>/<key>``; the two fan-out levels keep
directories small. Identical bytes stored with the same extension share one file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from gouache.store.errors import BlobNotFound

_KEY_RE = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,15}")
_EXT_RE = re.compile(r"[a-z0-9]{1,15}")


def make_key(data: bytes, ext: str) -> str:
    """The key `BlobStore.put(data, ext)` would return, without writing anything."""
    return f"{hashlib.sha256(data).hexdigest()}.{_normalize_ext(ext)}"


def _normalize_ext(ext: str) -> str:
    ext = ext.lower().removeprefix(".")
    if not _EXT_RE.fullmatch(ext):
        raise ValueError(f"invalid blob extension {ext!r}: expected 1-15 characters of [a-z0-9]")
    return ext


def _check_key(key: str) -> str:
    # Keys become file paths: only the exact shape put() produces is accepted (no traversal, no separators).
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(f"invalid blob key {key!r}: expected '<64 hex digits>.<ext>'")
    return key


class BlobStore:
    """Content-addressed files under `root`. Safe to use from several threads and processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    def put(self, data: bytes, ext: str) -> str:
        """Store `data` and return its key. Idempotent: existing identical blobs are not rewritten.

        The bytes go to a temporary file in the destination directory, are fsynced, and are then renamed
        into place with `os.replace`, so readers never see a partial blob, even after a crash.
        """
        key = make_key(data, ext)
        path = self.path(key)
        if path.is_file():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return key

    def path(self, key: str) -> Path:
        """Where the blob `key` lives (whether or not it exists)."""
        _check_key(key)
        return self.root / key[0:2] / key[2:4] / key

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> bytes:
        """The bytes of blob `key`; raises `BlobNotFound` if there is none."""
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {key!r} under {self.root}") from None

    def delete(self, key: str) -> bool:
        """Remove blob `key`; returns whether it existed.

        Blobs are shared by every record with the same bytes, so callers must make sure no record still
        refers to the key.
        """
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True
