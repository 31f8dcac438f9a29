"""API key rows: secret hashes (never the secrets), limits and budgets. A revoked key is kept, as the ledger
still names it.
"""

from __future__ import annotations

from sqlalchemy import select

from gouache.store.database import Database
from gouache.store.models import ApiKeyRecord, utcnow
from gouache.store.views import ApiKeyView


class ApiKeyRepository(Database):
    """Creating, finding, listing and revoking API keys."""

    def create_api_key(
        self,
        key_id: str,
        name: str,
        secret_hash: str,
        redacted: str,
        *,
        admin: bool = False,
        budget_usd: float | None = None,
        budget_images: int | None = None,
        rate_limit_requests: int | None = None,
        rate_limit_images: int | None = None,
    ) -> ApiKeyView:
        record = ApiKeyRecord(
            id=key_id, name=name, secret_hash=secret_hash, redacted=redacted, admin=admin,
            budget_usd=budget_usd, budget_images=budget_images, rate_limit_requests=rate_limit_requests,
            rate_limit_images=rate_limit_images, created_at=utcnow(),
        )  # fmt: skip
        with self._write() as session:
            session.add(record)
            session.flush()
            return ApiKeyView.from_record(record)

    def api_key_by_hash(self, secret_hash: str) -> ApiKeyView | None:
        """The key with this secret hash, revoked or not."""
        with self._read_sessions() as session:
            record = session.scalar(select(ApiKeyRecord).where(ApiKeyRecord.secret_hash == secret_hash))
            return None if record is None else ApiKeyView.from_record(record)

    def get_api_key(self, key_id: str) -> ApiKeyView | None:
        with self._read_sessions() as session:
            record = session.get(ApiKeyRecord, key_id)
            return None if record is None else ApiKeyView.from_record(record)

    def list_api_keys(self, include_revoked: bool = True) -> list[ApiKeyView]:
        stmt = select(ApiKeyRecord).order_by(ApiKeyRecord.created_at, ApiKeyRecord.id)
        if not include_revoked:
            stmt = stmt.where(ApiKeyRecord.revoked_at.is_(None))
        with self._read_sessions() as session:
            return [ApiKeyView.from_record(r) for r in session.scalars(stmt)]

    def has_active_api_keys(self) -> bool:
        stmt = select(ApiKeyRecord.id).where(ApiKeyRecord.revoked_at.is_(None)).limit(1)
        with self._read_sessions() as session:
            return session.scalar(stmt) is not None

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key (kept for the ledger); False if there is no such key or it was already revoked."""
        with self._write() as session:
            record = session.get(ApiKeyRecord, key_id)
            if record is None or record.revoked_at is not None:
                return False
            record.revoked_at = utcnow()
            return True
