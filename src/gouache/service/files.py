"""The Files API's use cases: upload, list, read, delete, and the periodic sweep of expired files.

Files belong to the key that uploaded them, like every other resource: another key's file is "not found".
Purposes are OpenAI's names for what Gouache uses a file for: `batch` (Batch API input, kept 30 days unless
`expires_after` says otherwise), `vision` and `user_data` (images that JSON edits and the Responses API
reference by `file_id`); `batch_output` files are written by batches, never uploaded."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from gouache.service.access import Caller
from gouache.service.errors import InvalidRequest, NotFound
from gouache.service.pages import ListQuery, one_page
from gouache.store import Store
from gouache.store.files import FileView
from gouache.store.models import utcnow

log = logging.getLogger(__name__)

UPLOAD_PURPOSES = ("batch", "vision", "user_data")
ALL_PURPOSES = (*UPLOAD_PURPOSES, "batch_output")
#: OpenAI's default lifetime of a `batch` file.
BATCH_FILE_TTL_S = 30 * 24 * 3600
#: `expires_after.seconds` bounds (OpenAI: one hour to thirty days).
MIN_TTL_S, MAX_TTL_S = 3600, 30 * 24 * 3600


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str
    purpose: str
    expires_after_s: int | None = None


class FileService:
    def __init__(self, store: Store, max_file_bytes: int) -> None:
        self.store = store
        self.max_file_bytes = max_file_bytes

    def upload(self, upload: Upload, caller: Caller) -> FileView:
        """Keep an uploaded file, or raise why not (purpose, size, lifetime); blocking."""
        if upload.purpose not in UPLOAD_PURPOSES:
            raise InvalidRequest(
                f"Invalid value: '{upload.purpose}'. Gouache takes files with purpose "
                f"{', '.join(UPLOAD_PURPOSES)}.",
                param="purpose",
            )
        if not upload.data:
            raise InvalidRequest("The file is empty.", param="file")
        if len(upload.data) > self.max_file_bytes:
            raise InvalidRequest(
                f"The file is {len(upload.data)} bytes; the largest accepted is {self.max_file_bytes} bytes "
                "(GOUACHE_MAX_FILE_MB).",
                param="file",
                code="file_too_large",
            )
        ttl = upload.expires_after_s
        if ttl is not None and not MIN_TTL_S <= ttl <= MAX_TTL_S:
            raise InvalidRequest(
                f"expires_after.seconds must be between {MIN_TTL_S} and {MAX_TTL_S}, got {ttl}.",
                param="expires_after.seconds",
            )
        if ttl is None and upload.purpose == "batch":
            ttl = BATCH_FILE_TTL_S
        expires_at = None if ttl is None else utcnow() + timedelta(seconds=ttl)
        return self.store.add_file(
            upload.data,
            purpose=upload.purpose,
            filename=upload.filename or "upload",
            api_key_id=caller.key_id,
            expires_at=expires_at,
        )

    def get(self, file_id: str, caller: Caller, param: str = "file_id") -> FileView:
        file = self.store.get_file(file_id, caller.owner)
        if file is None:
            raise NotFound(f"No such File object: {file_id}", param=param)
        return file

    def content(self, file_id: str, caller: Caller, param: str = "file_id") -> tuple[FileView, bytes]:
        file = self.get(file_id, caller, param)
        try:
            return file, self.store.read_file_bytes(file)
        except Exception as exc:  # a blob removed behind the row's back reads as a missing file
            raise NotFound(f"The content of file {file_id} is no longer stored.", param=param) from exc

    def list(
        self, caller: Caller, query: ListQuery, purpose: str | None = None
    ) -> tuple[list[FileView], bool]:
        """A page of the caller's files (of one `purpose` if given) and whether more follow."""
        return one_page(
            lambda q: self.store.list_files(
                caller.owner, purpose=purpose, limit=q.limit, order=q.order, after=q.after
            ),
            query,
        )

    def delete(self, file_id: str, caller: Caller) -> None:
        if not self.store.delete_file(file_id, caller.owner):
            raise NotFound(f"No such File object: {file_id}", param="file_id")

    def sweep(self) -> int:
        """Remove expired files (rows and unused blobs); returns how many."""
        removed = self.store.delete_expired_files()
        if removed:
            log.info("removed %d expired file(s)", removed)
        return removed
