"""Exceptions raised by the store."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error raised by `gouache.store`."""


class NotFound(StoreError, KeyError):
    """Something looked up by key does not exist. A `KeyError` too, so `except KeyError` also works."""

    def __str__(self) -> str:
        # KeyError.__str__ repr()s its argument; a plain message reads better in logs.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class RecordNotFound(NotFound):
    """No request or image row has the given id."""


class BlobNotFound(NotFound):
    """No blob file exists for the given key."""


class BlobStoreUnavailable(StoreError):
    """The configured blob store cannot be used (no such bucket, no credentials, endpoint unreachable, the
    S3 client not installed). The message names the setting to fix."""
