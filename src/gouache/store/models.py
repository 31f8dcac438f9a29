"""SQLAlchemy models: one row per API request, one row per generated image.

Image bytes never live in the database; `ImageRecord.blob_key` names a file in the `BlobStore`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Explicit constraint names, so that migrations (and SQLite batch mode, which rebuilds tables) can refer
#: to constraints by a stable name on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Longest accepted blob key: 64 hex digits, a dot and an extension of up to 15 characters.
BLOB_KEY_LENGTH = 80


class RequestStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


UNFINISHED_STATUSES: frozenset[str] = frozenset({RequestStatus.QUEUED, RequestStatus.RUNNING})
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {RequestStatus.SUCCEEDED, RequestStatus.FAILED, RequestStatus.CANCELLED}
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no timezone support and hands back naive values; PostgreSQL's `timestamptz` hands them back
    in the session time zone. Both are normalised to UTC here, and naive input is refused rather than
    guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given; use an aware datetime (e.g. datetime.now(UTC))")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _nullable_json() -> JSON:
    # none_as_null: Python None becomes SQL NULL rather than the JSON literal 'null'.
    return JSON(none_as_null=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RequestRecord(Base):
    """One API call (e.g. `images.generations`), from queueing to its terminal status."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_created_at", "created_at"),
        Index("ix_requests_api_key_id_created_at", "api_key_id", "created_at"),
        Index("ix_requests_cache_key", "cache_key"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(255))
    resolved_model: Mapped[str | None] = mapped_column(String(255))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    user: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[dict[str, Any] | None] = mapped_column(_nullable_json())
    timings: Mapped[dict[str, Any] | None] = mapped_column(_nullable_json())
    usage: Mapped[dict[str, Any] | None] = mapped_column(_nullable_json())
    #: Jobs ahead of this one (waiting or running) when it entered the engine's queue; 0 once it runs.
    queue_position: Mapped[int | None] = mapped_column(Integer)
    #: Set when an engine failure was retried on the catalog's fallback model: {"from", "to", "reason"}.
    fallback: Mapped[dict[str, Any] | None] = mapped_column(_nullable_json())
    #: Hash of every input of a request with an explicit seed (the result cache); None when not cacheable.
    cache_key: Mapped[str | None] = mapped_column(String(64))
    #: The batch (Batch API) this request is a line of; None for interactive requests.
    batch_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The usage ledger: who asked, what it would have cost on the hosted API, what it cost here.
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    size: Mapped[str | None] = mapped_column(String(16))
    quality: Mapped[str | None] = mapped_column(String(16))
    image_count: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    local_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    wall_s: Mapped[float | None] = mapped_column(Float)
    cpu_s: Mapped[float | None] = mapped_column(Float)

    images: Mapped[list[ImageRecord]] = relationship(
        back_populates="request",
        order_by="ImageRecord.index",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def __repr__(self) -> str:
        return f"RequestRecord(id={self.id!r}, endpoint={self.endpoint!r}, status={self.status!r})"


class ImageRecord(Base):
    """One output image of a request; its bytes are the blob named by `blob_key`."""

    __tablename__ = "images"
    __table_args__ = (
        Index("ix_images_request_id", "request_id"),
        UniqueConstraint("request_id", "index"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(BLOB_KEY_LENGTH))
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    byte_size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    request: Mapped[RequestRecord] = relationship(back_populates="images")

    def __repr__(self) -> str:
        return f"ImageRecord(id={self.id!r}, request_id={self.request_id!r}, index={self.index})"


class ResponseRecord(Base):
    """One Responses API turn. Chains link through `previous_response_id`; generated images are referenced by
    image id inside `output` items (their bytes live in the blob store, once)."""

    __tablename__ = "responses"
    __table_args__ = (
        Index("ix_responses_previous_response_id", "previous_response_id"),
        Index("ix_responses_created_at", "created_at"),
        Index("ix_responses_api_key_id", "api_key_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    input_items: Mapped[list[Any]] = mapped_column(JSON)
    output: Mapped[list[Any]] = mapped_column(JSON)
    usage: Mapped[dict[str, Any] | None] = mapped_column(_nullable_json())
    error: Mapped[dict[str, Any] | None] = mapped_column(_nullable_json())
    user: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    api_key_id: Mapped[str | None] = mapped_column(String(32))


class ApiKeyRecord(Base):
    """An API key. Only the SHA-256 of the secret is stored (keys are long random strings, so a fast hash is
    enough); `redacted` keeps its first and last characters for display."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("secret_hash"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[str] = mapped_column(String(64))
    redacted: Mapped[str] = mapped_column(String(32))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    budget_usd: Mapped[float | None] = mapped_column(Float)
    budget_images: Mapped[int | None] = mapped_column(Integer)
    rate_limit_requests: Mapped[int | None] = mapped_column(Integer)
    rate_limit_images: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class FileRecord(Base):
    """An uploaded (or produced) file of the Files API; its bytes are the blob named by `blob_key`."""

    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_api_key_id_created_at", "api_key_id", "created_at"),
        Index("ix_files_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    byte_size: Mapped[int] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(BLOB_KEY_LENGTH))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BatchRecord(Base):
    """A Batch API batch: its input file, where it stands, and its output and error files once final."""

    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batches_api_key_id_created_at", "api_key_id", "created_at"),
        Index("ix_batches_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", _nullable_json())
    errors: Mapped[list[Any] | None] = mapped_column(_nullable_json())
    output_file_id: Mapped[str | None] = mapped_column(String(64))
    error_file_id: Mapped[str | None] = mapped_column(String(64))
    output_expires_s: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer, default=0)
    model: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    in_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finalizing_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelling_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BatchLineRecord(Base):
    """One finished line of a batch: written as the line completes, so a restarted server skips it. The
    output line itself (JSON, with its images) is a blob; `status_code` 200 lines go to the output file."""

    __tablename__ = "batch_lines"
    __table_args__ = (UniqueConstraint("batch_id", "line"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    custom_id: Mapped[str] = mapped_column(String(512))
    status_code: Mapped[int] = mapped_column(Integer)
    result_blob: Mapped[str] = mapped_column(String(BLOB_KEY_LENGTH))
    usage: Mapped[dict[str, Any] | None] = mapped_column(_nullable_json())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RateEventRecord(Base):
    """One admission counted by a rate limit shared by several server processes (a cluster's gateways):
    `amount` requests or images for `key` (an API key id or an anonymous caller) of limit `kind`, at `at`
    (seconds since the epoch: every process on every machine shares the clock). Rows older than the window
    are deleted as the limit is next checked."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_key_kind_at", "key", "kind", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float)
    amount: Mapped[int] = mapped_column(Integer)


class BudgetHoldRecord(Base):
    """What an admitted request will spend, held against the budgets from admission until its ledger row
    counts it (issue 21): kept here, not in one process's memory, so that gateways sharing the database
    cannot each admit the last of a budget. `key_id` is None for a caller without a key; `expires_at`
    (seconds since the epoch) bounds a hold whose request never reached the ledger (a process that died)."""

    __tablename__ = "budget_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    usd: Mapped[float] = mapped_column(Float)
    images: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class LeaseRecord(Base):
    """A job only one server process may do at a time (the Batch API's runner on a cluster's gateways):
    `holder` has it until `expires_at` (seconds since the epoch), and renews it while alive; any process may
    take it over once it has expired."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[float] = mapped_column(Float)


class ClusterMemberRecord(Base):
    """A server process among several sharing the database (a Ray cluster's gateway replicas), so that each
    can list the others with their nodes (`/health`): written when it starts, `seen_at` renewed on the batch
    lease's cadence, deleted when it stops cleanly. Times are seconds since the epoch."""

    __tablename__ = "cluster_members"

    replica: Mapped[str] = mapped_column(String(255), primary_key=True)
    role: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(128))
    node_address: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)
    seen_at: Mapped[float] = mapped_column(Float)
