"""Content-addressed storage of image bytes: the `BlobStore` interface and its file system implementation.

A blob key is ``"<sha256 hex of the bytes>.<ext>"`` (e.g. ``"9f86d0…0a08.png"``), so a key alone names the
bytes and their type. Identical bytes stored with the same extension share one blob. Two stores implement
the interface: :class:`DirectoryBlobStore` (a local or mounted directory, the default) and
`gouache.store.s3_blobs.S3BlobStore` (an S3-compatible bucket, ``GOUACHE_BLOB_URL=s3://bucket/prefix``).
Callers only ever put, get, test and delete whole blobs by key, so either can serve every gateway of a
cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

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


def check_key(key: str) -> str:
    """`key` if it has the exact shape `put` produces, else ValueError. Keys become file paths and object
    names: no traversal, no separators."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(f"invalid blob key {key!r}: expected '<64 hex digits>.<ext>'")
    return key


class BlobStore(Protocol):
    """Where image bytes live. Every method is safe from several threads and processes at once."""

    #: Where the blobs are, for messages and logs (a directory, or ``s3://bucket/prefix``).
    location: str

    def put(self, data: bytes, ext: str) -> str:
        """Store `data` and return its key. Idempotent (identical bytes are stored once) and atomic
        (a reader sees the whole blob or none)."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes of blob `key`; raises `BlobNotFound` if there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> bool:
        """Remove blob `key`; returns whether it existed. Blobs are shared by every record with the same
        bytes, so callers must make sure no record still refers to the key."""
        ...

    def close(self) -> None:
        """Release connections (nothing to do for a directory)."""
        ...


class DirectoryBlobStore:
    """Content-addressed files under `root`, at ``root/<hex[0:2]>/<hex[2:4]>/<key>`` (the two fan-out levels
    keep directories small). Safe to use from several threads and processes at once, and from several
    machines when `root` is a shared mount."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def __repr__(self) -> str:
        return f"DirectoryBlobStore({str(self.root)!r})"

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
        check_key(key)
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
        """Remove blob `key`; returns whether it existed (see `BlobStore.delete`)."""
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:
        pass
