"""Persistence: request and image rows in SQL (SQLite or PostgreSQL), image bytes in a content-addressed blob
store (a directory or an S3-compatible bucket).

Knows nothing about HTTP or the engine; everything above it talks to `Store`.
"""

from gouache.store.blobs import BlobStore, DirectoryBlobStore, make_key
from gouache.store.errors import BlobNotFound, BlobStoreUnavailable, NotFound, RecordNotFound, StoreError
from gouache.store.facade import Store
from gouache.store.migrate import alembic_config, head_revision
from gouache.store.models import (
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    ApiKeyRecord,
    Base,
    ImageRecord,
    RequestRecord,
    RequestStatus,
    ResponseRecord,
)
from gouache.store.owners import ALL_OWNERS, AllOwners, Owner
from gouache.store.views import ApiKeyView, ImageView, LedgerEntry, RequestView, ResponseView

__all__ = [
    "ALL_OWNERS",
    "TERMINAL_STATUSES",
    "UNFINISHED_STATUSES",
    "AllOwners",
    "ApiKeyRecord",
    "ApiKeyView",
    "Base",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreUnavailable",
    "DirectoryBlobStore",
    "ImageRecord",
    "ImageView",
    "LedgerEntry",
    "NotFound",
    "Owner",
    "RecordNotFound",
    "RequestRecord",
    "RequestStatus",
    "RequestView",
    "ResponseRecord",
    "ResponseView",
    "Store",
    "StoreError",
    "alembic_config",
    "head_revision",
    "make_key",
]
