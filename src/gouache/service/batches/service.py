"""The Batch API's use cases: create (checks that need no file parsing), retrieve, list, cancel. The work
itself is done by the `BatchRunner` in the server, which this service wakes when there is news."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from gouache.service.access import Caller
from gouache.service.errors import InvalidRequest, NotFound, ServiceError
from gouache.service.files import FileService
from gouache.service.pages import ListQuery, one_page
from gouache.store import Store
from gouache.store.batches import FINAL_BATCH_STATUSES, BatchView
from gouache.store.models import utcnow

#: The endpoints a batch may target: the Images API's JSON endpoints, and the Responses API (its lines use
#: the image_generation tool, as every Gouache response does).
BATCH_ENDPOINTS = ("/v1/images/generations", "/v1/images/edits", "/v1/responses")
COMPLETION_WINDOW_S = 24 * 3600
MIN_OUTPUT_TTL_S, MAX_OUTPUT_TTL_S = 3600, 30 * 24 * 3600


class Conflict(ServiceError):
    """The object is not in a state that allows this (cancel a completed batch): 409."""

    status = 409
    code = "invalid_state"


def _check_metadata(metadata: dict[str, Any] | None) -> None:
    """OpenAI's metadata rules: at most 16 string pairs, keys up to 64 characters, values up to 512."""
    if metadata is None:
        return
    if len(metadata) > 16:
        raise InvalidRequest("metadata takes at most 16 keys.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64:
            raise InvalidRequest(f"metadata key '{key[:64]}...' is over 64 characters.", param="metadata")
        if not isinstance(value, str) or len(value) > 512:
            raise InvalidRequest(
                f"metadata['{key}'] must be a string of at most 512 characters.", param=f"metadata.{key}"
            )


class BatchService:
    def __init__(self, store: Store, files: FileService) -> None:
        self.store = store
        self.files = files
        #: Called when a batch is created or cancelled (the runner sets it to wake itself).
        self.wake: Callable[[], None] = lambda: None

    def create(
        self,
        caller: Caller,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, Any] | None = None,
        output_expires_s: int | None = None,
    ) -> BatchView:
        """A new batch in `validating`; the runner reads its file next. Blocking."""
        if endpoint not in BATCH_ENDPOINTS:
            raise InvalidRequest(
                f"Invalid value: '{endpoint}'. Gouache runs batches on {', '.join(BATCH_ENDPOINTS)}.",
                param="endpoint",
            )
        if completion_window != "24h":
            raise InvalidRequest(
                f"Invalid value: '{completion_window}'. Supported values are: '24h'.",
                param="completion_window",
            )
        _check_metadata(metadata)
        if output_expires_s is not None and not MIN_OUTPUT_TTL_S <= output_expires_s <= MAX_OUTPUT_TTL_S:
            raise InvalidRequest(
                f"output_expires_after.seconds must be between {MIN_OUTPUT_TTL_S} and {MAX_OUTPUT_TTL_S}.",
                param="output_expires_after.seconds",
            )
        file = self.files.get(input_file_id, caller, param="input_file_id")
        if file.purpose != "batch":
            raise InvalidRequest(
                f"File {input_file_id} has purpose '{file.purpose}'; a batch input file needs 'batch'.",
                param="input_file_id",
            )
        batch = self.store.create_batch(
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window=completion_window,
            metadata=metadata,
            output_expires_s=output_expires_s,
            api_key_id=caller.key_id,
            expires_at=utcnow() + timedelta(seconds=COMPLETION_WINDOW_S),
        )
        self.wake()
        return batch

    def get(self, batch_id: str, caller: Caller) -> BatchView:
        batch = self.store.get_batch(batch_id, caller.owner)
        if batch is None:
            raise NotFound(f"No batch found with id '{batch_id}'.", param="batch_id")
        return batch

    def list(self, caller: Caller, query: ListQuery) -> tuple[list[BatchView], bool]:
        """A page of the caller's batches and whether more follow."""
        return one_page(
            lambda q: self.store.list_batches(caller.owner, limit=q.limit, order=q.order, after=q.after),
            query,
        )

    def cancel(self, batch_id: str, caller: Caller) -> BatchView:
        """Ask a batch to stop: `cancelling` now, `cancelled` once the runner has stopped its lines and
        written the partial output. A batch already final cannot be cancelled (409)."""
        batch = self.get(batch_id, caller)
        if batch.status in FINAL_BATCH_STATUSES:
            raise Conflict(f"Cannot cancel a batch with status '{batch.status}'.", param="batch_id")
        self.store.set_batch_status(
            batch_id, "cancelling", only_from=("validating", "in_progress", "finalizing")
        )
        self.wake()
        return self.get(batch_id, caller)
