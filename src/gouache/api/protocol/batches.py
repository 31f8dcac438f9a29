"""Wire types of OpenAI's Batch API (`batch` object, create body, list page)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gouache.api.protocol.common import CursorPage, Identified
from gouache.store.batches import BatchView


class OutputExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    anchor: Literal["created_at"]
    seconds: int = Field(ge=3600, le=2_592_000)


class BatchCreateRequest(BaseModel):
    """`POST /v1/batches` (JSON, validated strictly)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input_file_id: str = Field(min_length=1, max_length=64)
    endpoint: str = Field(min_length=1, max_length=64)
    completion_window: str = Field(min_length=1, max_length=16)
    metadata: dict[str, str] | None = None
    output_expires_after: OutputExpiresAfter | None = None


class BatchError(BaseModel):
    code: str | None = None
    line: int | None = None
    message: str | None = None
    param: str | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError]


class BatchRequestCounts(BaseModel):
    completed: int
    failed: int
    total: int


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class BatchUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = InputTokensDetails()
    output_tokens: int
    output_tokens_details: OutputTokensDetails = OutputTokensDetails()
    total_tokens: int


BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]


class BatchObject(Identified):
    object: Literal["batch"] = "batch"
    endpoint: str
    model: str | None = None
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts
    usage: BatchUsage
    metadata: dict[str, Any] | None = None

    @classmethod
    def of(cls, batch: BatchView) -> BatchObject:
        stamps = {name: _ts(value) for name, value in batch.timestamps.items()}
        usage = batch.usage
        return cls(
            id=batch.id,
            endpoint=batch.endpoint,
            model=batch.model,
            errors=None if not batch.errors else BatchErrors(data=[BatchError(**e) for e in batch.errors]),
            input_file_id=batch.input_file_id,
            completion_window=batch.completion_window,
            status=batch.status,  # type: ignore[arg-type]
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            request_counts=BatchRequestCounts(
                completed=batch.completed, failed=batch.failed, total=batch.total
            ),
            usage=BatchUsage(
                input_tokens=usage.get("input_tokens", 0),
                output_tokens=usage.get("output_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            ),
            metadata=batch.metadata,
            **stamps,  # type: ignore[arg-type]
        )


class BatchList(CursorPage[BatchObject]):
    """A page of batches."""


def _ts(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())
