"""`Store`: the one entry point of the persistence layer (database rows plus image blobs).

Every method is synchronous, opens its own short `Session` and returns plain views, so a `Store` can be
shared by any number of worker threads.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    URL,
    ColumnElement,
    CursorResult,
    Engine,
    String,
    create_engine,
    event,
    func,
    make_url,
    select,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from gouache.store.blobs import BlobStore
from gouache.store.errors import RecordNotFound, StoreError
from gouache.store.migrate import current_revision, head_revision, upgrade_to_head
from gouache.store.models import (
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    ApiKeyRecord,
    ImageRecord,
    RequestRecord,
    RequestStatus,
    ResponseRecord,
    utcnow,
)
from gouache.store.views import ApiKeyView, ImageView, LedgerEntry, RequestView, ResponseView

#: How long a SQLite connection waits for another writer before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Execution option read by the SQLite "begin" hook: the kind of BEGIN to emit.
_SQLITE_BEGIN_OPTION = "gouache_sqlite_begin"

_SEED_MIN, _SEED_MAX = -(2**63), 2**63 - 1


class AllOwners:
    """The owner filter that matches every row (admin keys, and the open server with no keys)."""

    def __repr__(self) -> str:
        return "ALL_OWNERS"


#: Pass as `owner` to read every key's rows; a key id (or None, for rows made without a key) reads only
#: that owner's rows.
ALL_OWNERS = AllOwners()
Owner = str | None | AllOwners


def _owned(column: Any, owner: Owner) -> ColumnElement[bool] | None:
    if isinstance(owner, AllOwners):
        return None
    return column.is_(None) if owner is None else column == owner


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def new_image_id() -> str:
    return "img_" + secrets.token_hex(12)


class Store:
    """Requests and images in a SQL database (SQLite or PostgreSQL), image bytes in a `BlobStore`.

    Call `migrate()` once before use. `database_url` is a SQLAlchemy URL; a bare ``postgresql://`` URL is
    taken to mean the psycopg 3 driver.
    """

    def __init__(self, database_url: str, blob_root: Path) -> None:
        self.url: URL = _normalize_url(database_url)
        self.blobs = BlobStore(Path(blob_root))
        self.engine: Engine = _create_engine(self.url)
        # On SQLite, sessions that write start with BEGIN IMMEDIATE: they take the write lock up front
        # (waiting on busy_timeout) instead of failing when a read transaction later tries to write.
        self._write_engine = (
            self.engine.execution_options(**{_SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            if self.is_sqlite
            else self.engine
        )
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string(hide_password=True)!r}, {str(self.blobs.root)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    # --- schema -----------------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision. Idempotent; safe if several processes start at once."""
        upgrade_to_head(self._write_engine)

    def schema_is_current(self) -> bool:
        return current_revision(self.engine) == head_revision()

    def close(self) -> None:
        """Close every pooled connection. The store must not be used afterwards."""
        self.engine.dispose()

    # --- writes -----------------------------------------------------------------------------------------

    def create_request(
        self,
        endpoint: str,
        model: str,
        params: Mapping[str, Any],
        user: str | None = None,
        *,
        api_key_id: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        image_count: int = 0,
        cost_usd: float = 0.0,
        cache_key: str | None = None,
    ) -> str:
        """Record a new request with status "queued" and return its id. The ledger fields known before any
        compute (owner, size, quality, images, hosted-equivalent cost) are stored at once, so budgets count
        requests still in flight."""
        request_id = new_request_id()
        record = RequestRecord(
            id=request_id,
            endpoint=endpoint,
            model=_column_text(model),
            params=_json_copy(params, "params"),
            user=None if user is None else _column_text(user),
            status=RequestStatus.QUEUED.value,
            created_at=utcnow(),
            api_key_id=api_key_id,
            size=size,
            quality=quality,
            image_count=image_count,
            cost_usd=cost_usd,
            local_cost_usd=0.0,
            cache_key=cache_key,
        )
        with self._write() as session:
            session.add(record)
        return request_id

    def mark_running(
        self, request_id: str, resolved_model: str | None = None, seed: int | None = None
    ) -> None:
        """Set status "running", `started_at` and queue position 0; `resolved_model`/`seed` are stored when
        given."""
        _check_seed(seed)
        with self._write() as session:
            record = _get_request_record(session, request_id)
            record.status = RequestStatus.RUNNING.value
            record.started_at = utcnow()
            record.queue_position = 0
            if resolved_model is not None:
                record.resolved_model = resolved_model
            if seed is not None:
                record.seed = seed

    def mark_queued(self, request_id: str, position: int, resolved_model: str | None = None) -> None:
        """Record that the request entered the engine's queue behind `position` jobs (waiting or running).
        A request that already started running keeps its state."""
        with self._write() as session:
            record = _get_request_record(session, request_id)
            if record.status == RequestStatus.QUEUED.value:
                record.queue_position = position
            if resolved_model is not None and record.resolved_model is None:
                record.resolved_model = resolved_model

    def record_fallback(self, request_id: str, from_model: str, to_model: str, reason: str) -> None:
        """Record that an engine failure on `from_model` was retried on `to_model`."""
        with self._write() as session:
            record = _get_request_record(session, request_id)
            record.fallback = {"from": from_model, "to": to_model, "reason": reason[:2000]}
            record.resolved_model = to_model

    def finish_request(
        self,
        request_id: str,
        status: str,
        *,
        error: Mapping[str, Any] | None = None,
        timings: Mapping[str, Any] | None = None,
        usage: Mapping[str, Any] | None = None,
        seed: int | None = None,
        cost_usd: float | None = None,
        local_cost_usd: float | None = None,
        wall_s: float | None = None,
        cpu_s: float | None = None,
        image_count: int | None = None,
    ) -> None:
        """Set a terminal status and `finished_at`. Arguments left as None leave their column unchanged."""
        if status not in TERMINAL_STATUSES:
            raise ValueError(
                f"not a terminal status: {status!r} (expected one of {sorted(TERMINAL_STATUSES)})"
            )
        _check_seed(seed)
        error_json = None if error is None else _json_copy(error, "error")
        timings_json = None if timings is None else _json_copy(timings, "timings")
        usage_json = None if usage is None else _json_copy(usage, "usage")
        with self._write() as session:
            record = _get_request_record(session, request_id)
            record.status = str(status)
            record.finished_at = utcnow()
            if error_json is not None:
                record.error = error_json
            if timings_json is not None:
                record.timings = timings_json
            if usage_json is not None:
                record.usage = usage_json
            if seed is not None:
                record.seed = seed
            for name, value in (
                ("cost_usd", cost_usd),
                ("local_cost_usd", local_cost_usd),
                ("wall_s", wall_s),
                ("cpu_s", cpu_s),
                ("image_count", image_count),
            ):
                if value is not None:
                    setattr(record, name, value)

    def add_image(
        self,
        request_id: str,
        index: int,
        data: bytes,
        fmt: str,
        width: int,
        height: int,
        seed: int | None,
    ) -> str:
        """Store the image bytes as a blob, then its row; returns the image id.

        The blob is written before (and outside) the database transaction so the SQLite write lock is not
        held during file I/O. If the row cannot be written the blob may stay behind unreferenced, which is
        harmless: blobs are content-addressed and shared.
        """
        _check_seed(seed)
        fmt = fmt.lower()
        with self._read_sessions() as session:
            if session.get(RequestRecord, request_id) is None:
                raise RecordNotFound(f"no request {request_id!r}")
        blob_key = self.blobs.put(data, fmt)
        image_id = new_image_id()
        try:
            with self._write() as session:
                session.add(
                    ImageRecord(
                        id=image_id,
                        request_id=request_id,
                        index=index,
                        blob_key=blob_key,
                        format=fmt,
                        width=width,
                        height=height,
                        seed=seed,
                        byte_size=len(data),
                        created_at=utcnow(),
                    )
                )
        except IntegrityError as exc:
            with self._read_sessions() as session:
                if session.get(RequestRecord, request_id) is None:
                    raise RecordNotFound(f"no request {request_id!r}") from exc
            raise StoreError(f"request {request_id!r} already has an image with index {index}") from exc
        return image_id

    def fail_unfinished(self, reason: str) -> int:
        """Mark every "queued" or "running" request as "failed"; returns how many there were.

        Meant for start-up: requests left unfinished by a crashed or killed process will never complete.
        """
        error = {"message": reason, "type": "server_error", "param": None, "code": "interrupted"}
        stmt = (
            update(RequestRecord)
            .where(RequestRecord.status.in_(sorted(UNFINISHED_STATUSES)))
            .values(status=RequestStatus.FAILED.value, error=error, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        with self._write() as session:
            result = cast(CursorResult[Any], session.execute(stmt))
            return result.rowcount

    def save_response(
        self,
        response_id: str,
        *,
        model: str,
        status: str,
        previous_response_id: str | None,
        request: Mapping[str, Any],
        input_items: list[Any],
        output: list[Any],
        usage: Mapping[str, Any] | None = None,
        error: Mapping[str, Any] | None = None,
        user: str | None = None,
        api_key_id: str | None = None,
    ) -> None:
        """Insert or replace a Responses turn (a streamed turn is saved when it starts and when it ends)."""
        values = {
            "model": _column_text(model),
            "status": status,
            "previous_response_id": previous_response_id,
            "request": _json_copy(request, "request"),
            "input_items": json.loads(json.dumps(list(input_items))),
            "output": json.loads(json.dumps(list(output))),
            "usage": None if usage is None else _json_copy(usage, "usage"),
            "error": None if error is None else _json_copy(error, "error"),
            "user": None if user is None else _column_text(user),
            "finished_at": utcnow() if status != "in_progress" else None,
            "api_key_id": api_key_id,
        }
        with self._write() as session:
            record = session.get(ResponseRecord, response_id)
            if record is None:
                session.add(ResponseRecord(id=response_id, created_at=utcnow(), **values))
            else:
                for key, value in values.items():
                    setattr(record, key, value)

    def delete_response(self, response_id: str, owner: Owner = ALL_OWNERS) -> bool:
        if not _is_id(response_id):
            return False
        with self._write() as session:
            record = session.get(ResponseRecord, response_id)
            if record is None or not _owns(record.api_key_id, owner):
                return False
            session.delete(record)
            return True

    def fail_unfinished_responses(self, reason: str) -> int:
        """Like `fail_unfinished`, for Responses turns left "in_progress" by a stopped process."""
        error = {"message": reason, "type": "server_error", "param": None, "code": "interrupted"}
        stmt = (
            update(ResponseRecord)
            .where(ResponseRecord.status == "in_progress")
            .values(status="failed", error=error, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        with self._write() as session:
            return cast(CursorResult[Any], session.execute(stmt)).rowcount

    # --- reads ------------------------------------------------------------------------------------------

    def get_response(self, response_id: str, owner: Owner = ALL_OWNERS) -> ResponseView | None:
        """A stored turn, or None if there is none or it belongs to another owner."""
        if not _is_id(response_id):
            return None
        with self._read_sessions() as session:
            record = session.get(ResponseRecord, response_id)
            if record is None or not _owns(record.api_key_id, owner):
                return None
            return ResponseView.from_record(record)

    def find_call_image(self, call_id: str, owner: Owner = ALL_OWNERS) -> str | None:
        """The image id of a stored `image_generation_call` item, by the call's id."""
        if not _is_id(call_id):
            return None
        stmt = select(ResponseRecord).where(cast_(ResponseRecord.output, String).contains(call_id))
        condition = _owned(ResponseRecord.api_key_id, owner)
        if condition is not None:
            stmt = stmt.where(condition)
        with self._read_sessions() as session:
            for record in session.scalars(stmt):
                for item in record.output:
                    if item.get("id") == call_id and item.get("image_id"):
                        return str(item["image_id"])
        return None

    def response_chain(
        self, response_id: str, limit: int = 100, owner: Owner = ALL_OWNERS
    ) -> list[ResponseView]:
        """The turns that lead to `response_id`, oldest first (at most `limit`; a deleted turn, or one of
        another owner, ends it)."""
        chain: list[ResponseView] = []
        current: str | None = response_id
        while current is not None and len(chain) < limit:
            view = self.get_response(current, owner)
            if view is None:
                break
            chain.append(view)
            current = view.previous_response_id
        return chain[::-1]

    def find_cached(self, cache_key: str, api_key_id: str | None) -> RequestView | None:
        """The latest succeeded request with this result-cache key made by the same key (`api_key_id`;
        None: requests made without a key), whose images are all still stored; None if there is none."""
        query = (
            select(RequestRecord)
            .where(
                RequestRecord.cache_key == cache_key,
                RequestRecord.status == RequestStatus.SUCCEEDED.value,
                _owned(RequestRecord.api_key_id, api_key_id),  # type: ignore[arg-type]
            )
            .order_by(RequestRecord.created_at.desc())
            .limit(1)
            .options(selectinload(RequestRecord.images))
        )
        with self._read_sessions() as session:
            record = session.scalars(query).first()
            if record is None or not record.images or len(record.images) != record.image_count:
                return None
            if not all(self.blobs.exists(image.blob_key) for image in record.images):
                return None
            return RequestView.from_record(record)

    def get_request(self, request_id: str) -> RequestView | None:
        if not _is_id(request_id):
            return None
        with self._read_sessions() as session:
            record = session.get(RequestRecord, request_id, options=[selectinload(RequestRecord.images)])
            return None if record is None else RequestView.from_record(record)

    def list_requests(
        self,
        limit: int = 50,
        offset: int = 0,
        owner: Owner = ALL_OWNERS,
        *,
        status: str | None = None,
        endpoints: tuple[str, ...] | None = None,
    ) -> list[RequestView]:
        """Requests with their images, newest first; optionally only one `owner`'s (an API key id), one
        `status`, or some `endpoints` (e.g. ``("images.generations",)``)."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        stmt = (
            select(RequestRecord)
            .options(selectinload(RequestRecord.images))
            .order_by(RequestRecord.created_at.desc(), RequestRecord.id.desc())
            .limit(limit)
            .offset(offset)
        )
        condition = _owned(RequestRecord.api_key_id, owner)
        if condition is not None:
            stmt = stmt.where(condition)
        if status is not None:
            stmt = stmt.where(RequestRecord.status == status)
        if endpoints is not None:
            stmt = stmt.where(RequestRecord.endpoint.in_(endpoints))
        with self._read_sessions() as session:
            return [RequestView.from_record(r) for r in session.scalars(stmt)]

    def delete_request(self, request_id: str, *, owner: Owner = ALL_OWNERS) -> bool:
        """Delete a request, its image rows, and the blobs (outputs and uploads) that nothing else refers to.
        Returns False when there is no such request (or it is not `owner`'s).

        Blobs are shared by content, so a blob is removed only when no other image row has its key and no
        other request or stored Responses turn mentions it. The files go after the rows are committed: a
        crash in between leaves an unreferenced file, never a row without its file."""
        with self._write() as session:
            stmt = (
                select(RequestRecord)
                .options(selectinload(RequestRecord.images))
                .where(RequestRecord.id == request_id)
            )
            condition = _owned(RequestRecord.api_key_id, owner)
            if condition is not None:
                stmt = stmt.where(condition)
            record = session.scalars(stmt).first()
            if record is None:
                return False
            outputs = {image.blob_key for image in record.images}
            uploads = {
                key
                for key in [*record.params.get("input_images", []), record.params.get("mask")]
                if isinstance(key, str)
            }
            session.delete(record)
            session.flush()
            orphans = [key for key in sorted(outputs | uploads) if not _blob_in_use(session, key)]
        for key in orphans:
            self.blobs.delete(key)
        return True

    def get_image(self, image_id: str, owner: Owner = ALL_OWNERS) -> ImageView | None:
        """An image row, or None if there is none or its request belongs to another owner."""
        if not _is_id(image_id):
            return None
        with self._read_sessions() as session:
            record = session.get(ImageRecord, image_id)
            if record is None or not _owns(record.request.api_key_id, owner):
                return None
            return ImageView.from_record(record)

    def read_image_bytes(self, image_id: str, owner: Owner = ALL_OWNERS) -> bytes:
        """The encoded image; raises `RecordNotFound` (no such image) or `BlobNotFound` (file missing)."""
        image = self.get_image(image_id, owner)
        if image is None:
            raise RecordNotFound(f"no image {image_id!r}")
        return self.blobs.get(image.blob_key)

    # --- usage ledger -----------------------------------------------------------------------------------

    def ledger(
        self, since: datetime, until: datetime | None = None, owner: Owner = ALL_OWNERS
    ) -> list[LedgerEntry]:
        """The ledger rows created in [since, until), oldest first."""
        stmt = select(
            RequestRecord.id, RequestRecord.endpoint, RequestRecord.model, RequestRecord.api_key_id,
            RequestRecord.status, RequestRecord.size, RequestRecord.quality, RequestRecord.image_count,
            RequestRecord.usage, RequestRecord.cost_usd, RequestRecord.local_cost_usd, RequestRecord.wall_s,
            RequestRecord.cpu_s, RequestRecord.created_at,
        ).where(RequestRecord.created_at >= since)  # fmt: skip
        if until is not None:
            stmt = stmt.where(RequestRecord.created_at < until)
        condition = _owned(RequestRecord.api_key_id, owner)
        if condition is not None:
            stmt = stmt.where(condition)
        stmt = stmt.order_by(RequestRecord.created_at, RequestRecord.id)
        with self._read_sessions() as session:
            return [
                LedgerEntry(
                    id=r.id,
                    endpoint=r.endpoint,
                    model=r.model,
                    api_key_id=r.api_key_id,
                    status=r.status,
                    size=r.size,
                    quality=r.quality,
                    image_count=r.image_count or 0,
                    usage=r.usage,
                    cost_usd=r.cost_usd or 0.0,
                    local_cost_usd=r.local_cost_usd or 0.0,
                    wall_s=r.wall_s,
                    cpu_s=r.cpu_s,
                    created_at=r.created_at,
                )
                for r in session.execute(stmt)
            ]

    def spend_since(self, since: datetime, owner: Owner = ALL_OWNERS) -> tuple[float, int]:
        """Hosted-equivalent dollars and images of the requests created since `since` (in flight included)."""
        stmt = select(
            func.coalesce(func.sum(RequestRecord.cost_usd), 0.0),
            func.coalesce(func.sum(RequestRecord.image_count), 0),
        ).where(RequestRecord.created_at >= since)
        condition = _owned(RequestRecord.api_key_id, owner)
        if condition is not None:
            stmt = stmt.where(condition)
        with self._read_sessions() as session:
            usd, images = session.execute(stmt).one()
        return float(usd), int(images)

    # --- API keys ---------------------------------------------------------------------------------------

    def create_api_key(
        self,
        key_id: str,
        name: str,
        secret_hash: str,
        redacted: str,
        *,
        admin: bool = False,
        budget_usd: float | None = None,
        budget_images: int | None = None,
        rate_limit_requests: int | None = None,
        rate_limit_images: int | None = None,
    ) -> ApiKeyView:
        record = ApiKeyRecord(
            id=key_id, name=name, secret_hash=secret_hash, redacted=redacted, admin=admin,
            budget_usd=budget_usd, budget_images=budget_images, rate_limit_requests=rate_limit_requests,
            rate_limit_images=rate_limit_images, created_at=utcnow(),
        )  # fmt: skip
        with self._write() as session:
            session.add(record)
            session.flush()
            return ApiKeyView.from_record(record)

    def api_key_by_hash(self, secret_hash: str) -> ApiKeyView | None:
        """The key with this secret hash, revoked or not."""
        with self._read_sessions() as session:
            record = session.scalar(select(ApiKeyRecord).where(ApiKeyRecord.secret_hash == secret_hash))
            return None if record is None else ApiKeyView.from_record(record)

    def get_api_key(self, key_id: str) -> ApiKeyView | None:
        with self._read_sessions() as session:
            record = session.get(ApiKeyRecord, key_id)
            return None if record is None else ApiKeyView.from_record(record)

    def list_api_keys(self, include_revoked: bool = True) -> list[ApiKeyView]:
        stmt = select(ApiKeyRecord).order_by(ApiKeyRecord.created_at, ApiKeyRecord.id)
        if not include_revoked:
            stmt = stmt.where(ApiKeyRecord.revoked_at.is_(None))
        with self._read_sessions() as session:
            return [ApiKeyView.from_record(r) for r in session.scalars(stmt)]

    def has_active_api_keys(self) -> bool:
        stmt = select(ApiKeyRecord.id).where(ApiKeyRecord.revoked_at.is_(None)).limit(1)
        with self._read_sessions() as session:
            return session.scalar(stmt) is not None

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key (kept for the ledger); False if there is no such key or it was already revoked."""
        with self._write() as session:
            record = session.get(ApiKeyRecord, key_id)
            if record is None or record.revoked_at is not None:
                return False
            record.revoked_at = utcnow()
            return True

    # --- helpers ----------------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A session in a transaction, committed on success and rolled back on error."""
        with self._write_sessions() as session, session.begin():
            yield session


def _owns(row_owner: str | None, owner: Owner) -> bool:
    return isinstance(owner, AllOwners) or row_owner == owner


def _blob_in_use(session: Session, key: str) -> bool:
    """Whether any image row, request parameters or stored Responses turn still refers to blob `key`."""
    if session.scalar(select(func.count()).where(ImageRecord.blob_key == key)):
        return True
    in_params = select(func.count()).where(cast_(RequestRecord.params, String).contains(key))
    if session.scalar(in_params):
        return True
    in_turns = select(func.count()).where(cast_(ResponseRecord.input_items, String).contains(key))
    return bool(session.scalar(in_turns))


def _get_request_record(session: Session, request_id: str) -> RequestRecord:
    record = session.get(RequestRecord, request_id)
    if record is None:
        raise RecordNotFound(f"no request {request_id!r}")
    return record


def _json_copy(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A deep, plain-JSON copy: fails here, with a clear message, rather than at flush time, and detaches
    the stored value from the caller's (possibly mutated later) object."""
    try:
        copied = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from exc
    return cast(dict[str, Any], copied)


_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _is_id(value: str) -> bool:
    """Whether `value` can be one of our ids; anything else (NUL characters, 10 kB strings) matches no row
    and is not sent to the database at all."""
    return _ID.fullmatch(value) is not None


def _column_text(value: str, limit: int = 255) -> str:
    """A client-chosen string made storable in a text column on every backend: PostgreSQL refuses NUL
    characters, and the columns are 255 characters wide."""
    return value.replace("\x00", "\ufffd")[:limit]


def _check_seed(seed: int | None) -> None:
    if seed is not None and not _SEED_MIN <= seed <= _SEED_MAX:
        raise ValueError(f"seed {seed} does not fit in a signed 64-bit integer")


def _normalize_url(database_url: str) -> URL:
    url = make_url(database_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False})
    _install_sqlite_hooks(engine)
    return engine


def _install_sqlite_hooks(engine: Engine) -> None:
    """WAL, busy timeout and foreign keys on every connection; SQLAlchemy (not sqlite3) in charge of BEGIN.

    sqlite3's implicit BEGIN is deferred and happens only before DML; taking it over lets writers use
    BEGIN IMMEDIATE (see `Store.__init__`) and makes DDL transactional for migrations.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
