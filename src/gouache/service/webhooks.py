"""Outgoing webhooks, every kind signed the one way OpenAI signs its webhooks (the Standard Webhooks scheme):
headers `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">` with `GOUACHE_WEBHOOK_SECRET`, so the official SDK's
`client.webhooks.unwrap(body, headers, secret=...)` (or `verify_signature`) checks them.

Events have OpenAI's envelope, `{"id": "evt_...", "object": "event", "type", "created_at", ...}`: batch
events (`service/batches`) put `{"id": batch_id}` in `data`, the budget alert (`policies/budgets`) keeps its
fields beside the envelope's. They are sent in the background; a failing receiver is logged, never raised."""

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


def new_event(event_type: str, /, **fields: Any) -> dict[str, Any]:
    """An event of type `event_type` in OpenAI's envelope, with `fields` beside it (e.g. `data`)."""
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "type": event_type,
        "created_at": int(time.time()),
        **fields,
    }


def signed_request(payload: dict[str, Any], secret: str | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an event; signed when a secret is configured."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    event_id = str(payload["id"])
    timestamp = str(int(time.time()))
    headers = {"content-type": "application/json", "webhook-id": event_id, "webhook-timestamp": timestamp}
    if secret:
        message = f"{event_id}.{timestamp}.".encode() + body
        digest = hmac.new(signing_key(secret), message, hashlib.sha256).digest()
        headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode()
    return body, headers


def post_event(url: str, payload: dict[str, Any], secret: str | None) -> None:
    """POST the event in the background."""
    body, headers = signed_request(payload, secret)

    def send() -> None:
        try:
            httpx.post(url, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT_S).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("webhook %s to %s failed: %s", payload.get("type"), url, exc)

    threading.Thread(target=send, name="gouache-webhook", daemon=True).start()
