"""Request rows: one per API call, written when it arrives and updated as it is queued, runs and ends.

The same rows are the usage ledger (`store/ledger.py` reads them) and the result cache (`find_cached`), so
their lifecycle lives here in one place.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import CursorResult, String, func, select, update
from sqlalchemy import cast as cast_
from sqlalchemy.orm import Session, selectinload

from gouache.store.database import Database
from gouache.store.errors import RecordNotFound
from gouache.store.models import (
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    ImageRecord,
    RequestRecord,
    RequestStatus,
    ResponseRecord,
    utcnow,
)
from gouache.store.owners import ALL_OWNERS, Owner, owned_by
from gouache.store.values import check_seed, column_text, is_id, json_copy
from gouache.store.views import RequestView


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


class RequestRepository(Database):
    """Creating, advancing, finishing, reading and deleting request rows."""

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
        batch_id: str | None = None,
    ) -> str:
        """Record a new request with status "queued" and return its id. The ledger fields known before any
        compute (owner, size, quality, images, hosted-equivalent cost) are stored at once, so budgets count
        requests still in flight."""
        request_id = new_request_id()
        record = RequestRecord(
            id=request_id,
            endpoint=endpoint,
            model=column_text(model),
            params=json_copy(params, "params"),
            user=None if user is None else column_text(user),
            status=RequestStatus.QUEUED.value,
            created_at=utcnow(),
            api_key_id=api_key_id,
            size=size,
            quality=quality,
            image_count=image_count,
            cost_usd=cost_usd,
            local_cost_usd=0.0,
            cache_key=cache_key,
            batch_id=batch_id,
        )
        with self._write() as session:
            session.add(record)
        return request_id

    def mark_running(
        self, request_id: str, resolved_model: str | None = None, seed: int | None = None
    ) -> None:
        """Set status "running", `started_at` and queue position 0; `resolved_model`/`seed` are stored when
        given."""
        check_seed(seed)
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

    def record_resolved(self, request_id: str, values: Mapping[str, Any]) -> None:
        """Add what was only known once the engine ran (device, dtype, memory measures) to the request's
        `params["resolved"]`."""
        extra = json_copy(values, "resolved")
        with self._write() as session:
            record = _get_request_record(session, request_id)
            params = dict(record.params or {})
            params["resolved"] = {**dict(params.get("resolved") or {}), **extra}
            record.params = params  # a new object: the JSON column sees the change

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
        check_seed(seed)
        error_json = None if error is None else json_copy(error, "error")
        timings_json = None if timings is None else json_copy(timings, "timings")
        usage_json = None if usage is None else json_copy(usage, "usage")
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

    def find_cached(self, cache_key: str, api_key_id: str | None) -> RequestView | None:
        """The latest succeeded request with this result-cache key made by the same key (`api_key_id`;
        None: requests made without a key), whose images are all still stored; None if there is none."""
        query = (
            select(RequestRecord)
            .where(
                RequestRecord.cache_key == cache_key,
                RequestRecord.status == RequestStatus.SUCCEEDED.value,
                owned_by(RequestRecord.api_key_id, api_key_id),  # type: ignore[arg-type]
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
        if not is_id(request_id):
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
        condition = owned_by(RequestRecord.api_key_id, owner)
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
            condition = owned_by(RequestRecord.api_key_id, owner)
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
