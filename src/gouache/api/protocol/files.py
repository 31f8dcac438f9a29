"""Wire types of OpenAI's Files API (`file` object, list page, deletion)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from gouache.api.protocol.common import CursorPage, Identified
from gouache.store.files import FileView


class FileObject(Identified):
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None = None
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None

    @classmethod
    def of(cls, file: FileView) -> FileObject:
        return cls(
            id=file.id,
            bytes=file.byte_size,
            created_at=_ts(file.created_at),
            expires_at=None if file.expires_at is None else _ts(file.expires_at),
            filename=file.filename,
            purpose=file.purpose,
            status="processed",
        )


class FileList(CursorPage[FileObject]):
    """A page of files."""


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


def _ts(value: datetime) -> int:
    return int(value.timestamp())
