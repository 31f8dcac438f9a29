"""Reading a batch's input file: one request per JSONL line, `{"custom_id", "method": "POST", "url", "body"}`.

The whole file is refused, with line-numbered errors (OpenAI's `errors.data`: code, line, message, param),
when any line is malformed JSON or not a request object, a `custom_id` repeats, a `url` is not the batch's
endpoint, or the file has more than 50,000 lines or 200 MB. The bodies themselves are checked when each line
runs, exactly as a direct request's would be, and a bad body fails only its line (in the error file)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_LINES = 50_000
MAX_BYTES = 200 * 1024 * 1024
#: Errors kept on a refused batch (the first ones, in line order).
MAX_ERRORS = 100


@dataclass(frozen=True)
class BatchLine:
    """One request of the batch; `line` counts from 1, as OpenAI's errors do."""

    line: int
    custom_id: str
    body: dict[str, Any]


def _error(line: int | None, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": param}


def read_batch_file(data: bytes, endpoint: str) -> tuple[list[BatchLine], list[dict[str, Any]]]:
    """The file's requests, or the errors that refuse it (then the list of requests is empty)."""
    if len(data) > MAX_BYTES:
        return [], [_error(None, "too_large", f"The input file is over {MAX_BYTES // 2**20} MB.")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [_error(None, "invalid_encoding", f"The input file is not UTF-8 text: {exc}.")]
    rows = [(n, raw) for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    if not rows:
        return [], [_error(None, "empty_file", "The input file has no requests.")]
    if len(rows) > MAX_LINES:
        return [], [_error(None, "too_many_requests", f"The input file has {len(rows)} requests; "
                           f"a batch takes at most {MAX_LINES}.")]  # fmt: skip
    lines: list[BatchLine] = []
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, raw in rows:
        line, error = _read_line(number, raw, endpoint)
        if error is None and line is not None and line.custom_id in seen:
            error = _error(
                number,
                "duplicate_custom_id",
                f"custom_id '{line.custom_id}' is also on line {seen[line.custom_id]}; each must be unique.",
                "custom_id",
            )
        if error is not None:
            errors.append(error)
            if len(errors) >= MAX_ERRORS:
                break
            continue
        assert line is not None
        seen[line.custom_id] = number
        lines.append(line)
    return ([], errors) if errors else (lines, [])


def _read_line(number: int, raw: str, endpoint: str) -> tuple[BatchLine | None, dict[str, Any] | None]:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, _error(number, "invalid_json_line", f"Line {number} is not valid JSON: {exc.msg}.")
    if not isinstance(item, dict):
        return None, _error(number, "invalid_request", f"Line {number} is not a JSON object.")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
        return None, _error(
            number,
            "missing_custom_id",
            "Each line needs a custom_id: a string of 1-512 characters.",
            "custom_id",
        )
    if item.get("method") != "POST":
        return None, _error(number, "invalid_method", "The method must be 'POST'.", "method")
    if item.get("url") != endpoint:
        return None, _error(
            number,
            "mismatched_endpoint",
            f"The url {item.get('url')!r} is not this batch's endpoint '{endpoint}'.",
            "url",
        )
    body = item.get("body")
    if not isinstance(body, dict):
        return None, _error(number, "invalid_body", "The body must be a JSON object.", "body")
    unknown = sorted(set(item) - {"custom_id", "method", "url", "body"})
    if unknown:
        return None, _error(number, "unknown_parameter", f"Unknown field '{unknown[0]}'.", unknown[0])
    return BatchLine(number, custom_id, body), None
