"""Output lines and the final output / error files of a batch.

Each finished line is kept as its output line, `{"id", "custom_id", "response": {"status_code", "request_id",
"body"}, "error"}`, where `body` is exactly what a direct request would have answered. At the end, lines with
status 200 make the output file and every other line the error file, in input order; when a batch is
cancelled or expires, the lines that never ran go to the error file too (`batch_cancelled`,
`batch_expired`), so every `custom_id` appears exactly once across the two files."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any

from gouache.service.batches.validation import BatchLine
from gouache.store import Store
from gouache.store.batches import BatchView, OutputFile
from gouache.store.models import utcnow


def output_line(custom_id: str, status_code: int, request_id: str | None, body: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": "batch_req_" + secrets.token_hex(12),
            "custom_id": custom_id,
            "response": {
                "status_code": status_code,
                "request_id": request_id or "req_" + secrets.token_hex(12),
                "body": body,
            },
            "error": None,
        },
        separators=(",", ":"),
    ).encode()


def unrun_line(custom_id: str, code: str, message: str) -> bytes:
    return json.dumps(
        {
            "id": "batch_req_" + secrets.token_hex(12),
            "custom_id": custom_id,
            "response": None,
            "error": {"code": code, "message": message},
        },
        separators=(",", ":"),
    ).encode()


def write_final_files(
    store: Store, batch: BatchView, lines: list[BatchLine], final_status: str
) -> tuple[OutputFile | None, OutputFile | None]:
    """The output and error files' bytes, put in the blob store (rows are created by `finalize_batch`)."""
    done = {row.line: row for row in store.batch_lines(batch.id)}
    output: list[bytes] = []
    errors: list[bytes] = []
    for line in lines:
        row = done.get(line.line)
        if row is not None:
            (output if row.status_code == 200 else errors).append(store.blobs.get(row.result_blob))
        elif final_status in ("cancelled", "expired"):
            code = f"batch_{final_status}"
            errors.append(
                unrun_line(line.custom_id, code, f"The batch was {final_status} before this request ran.")
            )
    expires_at = None
    if batch.output_expires_s is not None:
        expires_at = utcnow() + timedelta(seconds=batch.output_expires_s)
    return (
        _file(store, output, f"{batch.id}_output.jsonl", expires_at),
        _file(store, errors, f"{batch.id}_error.jsonl", expires_at),
    )


def _file(store: Store, lines: list[bytes], filename: str, expires_at: Any) -> OutputFile | None:
    if not lines:
        return None
    data = b"\n".join(lines) + b"\n"
    return OutputFile(store.blobs.put(data, "jsonl"), len(data), filename, expires_at)
