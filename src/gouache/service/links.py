"""Expiring, unguessable image URLs (`response_format=url`): an HMAC over the image id and expiry time, so the
server keeps no table of links and a forged, altered or expired link is simply unknown (404)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

LINK_TTL_S = 60 * 60


def load_secret(path: Path) -> bytes:
    """The signing key, made once per data directory so links survive restarts."""
    if path.is_file():
        return bytes.fromhex(path.read_text().strip())
    key = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key.hex())
    path.chmod(0o600)
    return key


class LinkSigner:
    def __init__(self, secret: bytes, ttl_s: int = LINK_TTL_S) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _signature(self, image_id: str, expires: int) -> str:
        message = f"{image_id}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:40]

    def sign(self, image_id: str, now: float | None = None) -> tuple[int, str]:
        """(expires, signature) for a link to `image_id`."""
        expires = int((now or time.time()) + self.ttl_s)
        return expires, self._signature(image_id, expires)

    def verify(self, image_id: str, expires: int, signature: str, now: float | None = None) -> bool:
        if expires < (now or time.time()) or not (signature.isascii() and image_id.isascii()):
            return False  # a signature is hex; anything else (even non-ASCII) is simply not one
        return hmac.compare_digest(self._signature(image_id, expires), signature)
