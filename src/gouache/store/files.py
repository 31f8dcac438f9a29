"""File rows of the Files API: one row per file, its bytes in the content-addressed `BlobStore`.

Blobs are shared by identical bytes (an uploaded image may also be a generated one), so deleting a file
removes its blob only when no other file or image row still names it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from gouache.store.database import Database
from gouache.store.models import FileRecord, ImageRecord, utcnow
from gouache.store.owners import ALL_OWNERS, Owner, owned_by, owns
from gouache.store.pages import keyset_page
from gouache.store.values import column_text, is_id


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


@dataclass(frozen=True)
class FileView:
    id: str
    api_key_id: str | None
    purpose: str
    filename: str
    byte_size: int
    blob_key: str
    status: str
    created_at: datetime
    expires_at: datetime | None

    @classmethod
    def from_record(cls, rec: FileRecord) -> FileView:
        return cls(
            rec.id, rec.api_key_id, rec.purpose, rec.filename, rec.byte_size, rec.blob_key, rec.status,
            rec.created_at, rec.expires_at,
        )  # fmt: skip


class FileRepository(Database):
    """Adding, listing, reading and deleting files (rows plus blob bytes)."""

    def add_file(
        self,
        data: bytes,
        *,
        purpose: str,
        filename: str,
        api_key_id: str | None,
        expires_at: datetime | None = None,
        ext: str = "file",
    ) -> FileView:
        """Store the bytes (outside the transaction), then the row."""
        blob_key = self.blobs.put(data, ext)
        record = FileRecord(
            id=new_file_id(), api_key_id=api_key_id, purpose=purpose, filename=column_text(filename),
            byte_size=len(data), blob_key=blob_key, status="processed", created_at=utcnow(),
            expires_at=expires_at,
        )  # fmt: skip
        with self._write() as session:
            session.add(record)
            session.flush()
            return FileView.from_record(record)

    def get_file(self, file_id: str, owner: Owner = ALL_OWNERS) -> FileView | None:
        """A file row, or None if there is none, it expired, or it belongs to another owner."""
        if not is_id(file_id):
            return None
        with self._read_sessions() as session:
            record = session.get(FileRecord, file_id)
            if record is None or not owns(record.api_key_id, owner):
                return None
            if record.expires_at is not None and record.expires_at <= utcnow():
                return None
            return FileView.from_record(record)

    def read_file_bytes(self, file: FileView) -> bytes:
        return self.blobs.get(file.blob_key)

    def list_files(
        self,
        owner: Owner,
        *,
        purpose: str | None = None,
        limit: int = 10_000,
        order: str = "desc",
        after: str | None = None,
    ) -> list[FileView]:
        """Files by creation time (`order`), starting after the file `after` (a cursor), at most `limit`."""
        stmt = select(FileRecord)
        condition = owned_by(FileRecord.api_key_id, owner)
        if condition is not None:
            stmt = stmt.where(condition)
        if purpose is not None:
            stmt = stmt.where(FileRecord.purpose == purpose)
        stmt = stmt.where((FileRecord.expires_at.is_(None)) | (FileRecord.expires_at > utcnow()))
        cursor = self.get_file(after, owner) if after is not None else None
        stmt = keyset_page(
            stmt,
            FileRecord.created_at,
            FileRecord.id,
            cursor=None if cursor is None else (cursor.created_at, cursor.id),
            order=order,
            limit=limit,
        )
        with self._read_sessions() as session:
            return [FileView.from_record(r) for r in session.scalars(stmt)]

    def delete_file(self, file_id: str, owner: Owner = ALL_OWNERS) -> bool:
        """Delete the row, then its blob when nothing else names it; False if there was no such file."""
        if not is_id(file_id):
            return False
        with self._write() as session:
            record = session.get(FileRecord, file_id)
            if record is None or not owns(record.api_key_id, owner):
                return False
            blob_key = record.blob_key
            session.delete(record)
        self._drop_blob_if_unused(blob_key)
        return True

    def delete_expired_files(self) -> int:
        """The periodic sweep: remove every file past its `expires_at` (rows, then unused blobs)."""
        now = utcnow()
        with self._write() as session:
            keys = list(session.scalars(select(FileRecord.blob_key).where(FileRecord.expires_at <= now)))
            session.execute(
                delete(FileRecord)
                .where(FileRecord.expires_at <= now)
                .execution_options(synchronize_session=False)
            )
        for key in set(keys):
            self._drop_blob_if_unused(key)
        return len(keys)

    def _drop_blob_if_unused(self, blob_key: str) -> None:
        with self._read_sessions() as session:
            used = session.scalar(select(FileRecord.id).where(FileRecord.blob_key == blob_key).limit(1))
            used = used or session.scalar(
                select(ImageRecord.id).where(ImageRecord.blob_key == blob_key).limit(1)
            )
        if used is None:
            self.blobs.delete(blob_key)
