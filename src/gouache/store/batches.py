"""Batch rows of the Batch API and their finished lines.

A line's row is written the moment the line finishes (its output line is a blob), so a server that stops,
however it stops, resumes a batch by skipping the lines it already has; `(batch_id, line)` is unique, so a
line is never recorded twice. The output and error files are written once, with the batch's final status,
in one transaction (`finalize_batch`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gouache.store.database import Database
from gouache.store.files import FileView, new_file_id
from gouache.store.models import BatchLineRecord, BatchRecord, FileRecord, utcnow
from gouache.store.owners import ALL_OWNERS, Owner, owned_by, owns
from gouache.store.pages import keyset_page
from gouache.store.values import is_id, json_copy

#: Statuses after which nothing changes any more.
FINAL_BATCH_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
#: Statuses a starting server picks up and carries on with.
ACTIVE_BATCH_STATUSES = ("validating", "in_progress", "finalizing", "cancelling")
_STATUS_TIMESTAMP = {
    "in_progress": "in_progress_at",
    "finalizing": "finalizing_at",
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelling": "cancelling_at",
    "cancelled": "cancelled_at",
}


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


@dataclass(frozen=True)
class BatchView:
    id: str
    api_key_id: str | None
    endpoint: str
    input_file_id: str
    completion_window: str
    status: str
    metadata: dict[str, Any] | None
    errors: list[Any] | None
    output_file_id: str | None
    error_file_id: str | None
    output_expires_s: int | None
    total: int
    model: str | None
    timestamps: dict[str, datetime | None]
    completed: int = 0
    failed: int = 0
    usage: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_record(cls, rec: BatchRecord, completed: int, failed: int, usage: dict[str, int]) -> BatchView:
        stamps = {
            name: getattr(rec, name) for name in ("created_at", "expires_at", *_STATUS_TIMESTAMP.values())
        }
        return cls(
            rec.id, rec.api_key_id, rec.endpoint, rec.input_file_id, rec.completion_window, rec.status,
            rec.metadata_, rec.errors, rec.output_file_id, rec.error_file_id, rec.output_expires_s, rec.total,
            rec.model, stamps, completed, failed, usage,
        )  # fmt: skip


@dataclass(frozen=True)
class BatchLineView:
    line: int
    custom_id: str
    status_code: int
    result_blob: str


@dataclass(frozen=True)
class OutputFile:
    """A file `finalize_batch` creates: bytes already in the blob store."""

    blob_key: str
    byte_size: int
    filename: str
    expires_at: datetime | None


class BatchRepository(Database):
    """Creating batches, moving them through their statuses, recording finished lines, finalising."""

    def create_batch(
        self,
        *,
        endpoint: str,
        input_file_id: str,
        completion_window: str,
        metadata: dict[str, Any] | None,
        output_expires_s: int | None,
        api_key_id: str | None,
        expires_at: datetime,
    ) -> BatchView:
        record = BatchRecord(
            id=new_batch_id(), api_key_id=api_key_id, endpoint=endpoint, input_file_id=input_file_id,
            completion_window=completion_window, status="validating",
            metadata_=None if metadata is None else json_copy(metadata, "metadata"),
            output_expires_s=output_expires_s, total=0, created_at=utcnow(), expires_at=expires_at,
        )  # fmt: skip
        with self._write() as session:
            session.add(record)
            session.flush()
            return BatchView.from_record(record, 0, 0, {})

    def get_batch(self, batch_id: str, owner: Owner = ALL_OWNERS) -> BatchView | None:
        if not is_id(batch_id):
            return None
        with self._read_sessions() as session:
            record = session.get(BatchRecord, batch_id)
            if record is None or not owns(record.api_key_id, owner):
                return None
            return _view(session, record)

    def list_batches(
        self, owner: Owner, *, limit: int = 20, order: str = "desc", after: str | None = None
    ) -> list[BatchView]:
        """Batches by creation time (`order`, newest first by default), starting after the batch `after` (a
        cursor), at most `limit`."""
        stmt = select(BatchRecord)
        condition = owned_by(BatchRecord.api_key_id, owner)
        if condition is not None:
            stmt = stmt.where(condition)
        cursor = self.get_batch(after, owner) if after is not None else None
        created = None if cursor is None else cursor.timestamps.get("created_at")
        stmt = keyset_page(
            stmt,
            BatchRecord.created_at,
            BatchRecord.id,
            cursor=None if cursor is None or created is None else (created, cursor.id),
            order=order,
            limit=limit,
        )
        with self._read_sessions() as session:
            return [_view(session, r) for r in session.scalars(stmt)]

    def active_batch_ids(self) -> list[str]:
        """Batches not final yet, oldest first: what a starting server carries on with."""
        stmt = (
            select(BatchRecord.id)
            .where(BatchRecord.status.in_(ACTIVE_BATCH_STATUSES))
            .order_by(BatchRecord.created_at, BatchRecord.id)
        )
        with self._read_sessions() as session:
            return list(session.scalars(stmt))

    def set_batch_status(
        self, batch_id: str, status: str, *, only_from: tuple[str, ...] | None = None, **values: Any
    ) -> bool:
        """Move a batch to `status` (stamping its timestamp) if it is in one of `only_from` (any non-final
        status if None); returns whether it moved. `values` sets other columns (total, model, errors)."""
        with self._write() as session:
            record = session.get(BatchRecord, batch_id)
            if record is None or record.status in FINAL_BATCH_STATUSES:
                return False
            if only_from is not None and record.status not in only_from:
                return False
            record.status = status
            stamp = _STATUS_TIMESTAMP.get(status)
            if stamp is not None:
                setattr(record, stamp, utcnow())
            for name, value in values.items():
                setattr(record, name, value)
            return True

    def record_line(
        self,
        batch_id: str,
        line: int,
        custom_id: str,
        status_code: int,
        result: bytes,
        usage: dict[str, Any] | None,
    ) -> bool:
        """Keep a finished line (its output line JSON as a blob); False if the line was already recorded."""
        blob_key = self.blobs.put(result, "json")
        try:
            with self._write() as session:
                session.add(
                    BatchLineRecord(
                        batch_id=batch_id,
                        line=line,
                        custom_id=custom_id,
                        status_code=status_code,
                        result_blob=blob_key,
                        usage=None if usage is None else json_copy(usage, "usage"),
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            return False
        return True

    def done_lines(self, batch_id: str) -> set[int]:
        with self._read_sessions() as session:
            return set(
                session.scalars(select(BatchLineRecord.line).where(BatchLineRecord.batch_id == batch_id))
            )

    def batch_lines(self, batch_id: str) -> list[BatchLineView]:
        stmt = (
            select(BatchLineRecord).where(BatchLineRecord.batch_id == batch_id).order_by(BatchLineRecord.line)
        )
        with self._read_sessions() as session:
            return [
                BatchLineView(r.line, r.custom_id, r.status_code, r.result_blob)
                for r in session.scalars(stmt)
            ]

    def finalize_batch(
        self,
        batch_id: str,
        status: str,
        *,
        api_key_id: str | None,
        output: OutputFile | None,
        errors: OutputFile | None,
    ) -> bool:
        """Create the output and error files and set the final status, in one transaction; False if the batch
        was already final (a second finaliser lost the race and wrote nothing)."""
        with self._write() as session:
            record = session.get(BatchRecord, batch_id)
            if record is None or record.status in FINAL_BATCH_STATUSES:
                return False
            for name, file in (("output_file_id", output), ("error_file_id", errors)):
                if file is not None:
                    row = FileRecord(
                        id=new_file_id(),
                        api_key_id=api_key_id,
                        purpose="batch_output",
                        filename=file.filename,
                        byte_size=file.byte_size,
                        blob_key=file.blob_key,
                        status="processed",
                        created_at=utcnow(),
                        expires_at=file.expires_at,
                    )
                    session.add(row)
                    setattr(record, name, row.id)
            record.status = status
            setattr(record, _STATUS_TIMESTAMP[status], utcnow())
            return True


def _view(session: Session, record: BatchRecord) -> BatchView:
    rows = session.execute(
        select(BatchLineRecord.status_code, BatchLineRecord.usage).where(
            BatchLineRecord.batch_id == record.id
        )
    ).all()
    completed = failed = 0
    usage: dict[str, int] = {}
    for status_code, line_usage in rows:
        if status_code == 200:
            completed += 1
        else:
            failed += 1
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            usage[key] = usage.get(key, 0) + int((line_usage or {}).get(key, 0))
    return BatchView.from_record(record, completed, failed, usage)


__all__ = ["BatchLineView", "BatchRepository", "BatchView", "FileView", "OutputFile"]
