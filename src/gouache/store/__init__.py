"""Persistence: request and image rows in SQL (SQLite or PostgreSQL), image bytes in content-addressed files.

Knows nothing about HTTP or the engine; everything above it talks to `Store`.
"""

from gouache.store.blobs import BlobStore, make_key
from gouache.store.errors import BlobNotFound, NotFound, RecordNotFound, StoreError
from gouache.store.migrate import alembic_config, head_revision
from gouache.store.models import (
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    Base,
    ImageRecord,
    RequestRecord,
    RequestStatus,
    ResponseRecord,
)
from gouache.store.repository import Store
from gouache.store.views import ImageView, RequestView, ResponseView

__all__ = [
    "TERMINAL_STATUSES",
    "UNFINISHED_STATUSES",
    "Base",
    "BlobNotFound",
    "BlobStore",
    "ImageRecord",
    "ImageView",
    "NotFound",
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
