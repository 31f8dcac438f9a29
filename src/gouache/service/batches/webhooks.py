"""Batch events for an optional webhook: `batch.completed`, `batch.failed`, `batch.cancelled`, `batch.expired`
(OpenAI's event names and payload: `{"id", "object": "event", "type", "created_at", "data": {"id"}}`).

Signed as OpenAI signs its webhooks (the Standard Webhooks scheme): headers `webhook-id`, `webhook-timestamp`
and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, so the official SDK's
`client.webhooks.unwrap(body, headers, secret=...)` verifies them. Sent in the background like the budget
alert (`policies/budgets.post_webhook`); a failing receiver is logged, never raised."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from typing import Any

import httpx

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 10.0


def signing_key(secret: str) -> bytes:
    """A `whsec_<base64>` secret is the key's base64 (as the SDK reads it); any other text is the key."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def signed_request(payload: dict[str, Any], secret: str | None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    event_id = str(payload["id"])
    timestamp = str(int(time.time()))
    headers = {"content-type": "application/json", "webhook-id": event_id, "webhook-timestamp": timestamp}
    if secret:
        message = f"{event_id}.{timestamp}.".encode() + body
        digest = hmac.new(signing_key(secret), message, hashlib.sha256).digest()
        headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode()
    return body, headers


def batch_event(batch_id: str, status: str) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "type": f"batch.{status}",
        "created_at": int(time.time()),
        "data": {"id": batch_id},
    }


def post_event(url: str, payload: dict[str, Any], secret: str | None) -> None:
    body, headers = signed_request(payload, secret)

    def send() -> None:
        try:
            httpx.post(url, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT_S).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("batch webhook to %s failed: %s", url, exc)

    threading.Thread(target=send, name="gouache-batch-webhook", daemon=True).start()
