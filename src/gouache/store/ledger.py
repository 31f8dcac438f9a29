"""The usage ledger: read-only aggregates over request rows (what was spent, by whom, when), for the
organization usage endpoints and for budgets.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select

from gouache.store.database import Database
from gouache.store.models import RequestRecord
from gouache.store.owners import ALL_OWNERS, Owner, owned_by
from gouache.store.views import LedgerEntry


class LedgerRepository(Database):
    """Ledger rows over a time range, and the spend since a moment (budgets)."""

    def ledger(
        self, since: datetime, until: datetime | None = None, owner: Owner = ALL_OWNERS
    ) -> list[LedgerEntry]:
        """The ledger rows created in [since, until), oldest first."""
        stmt = select(
            RequestRecord.id, RequestRecord.endpoint, RequestRecord.model, RequestRecord.api_key_id,
            RequestRecord.status, RequestRecord.size, RequestRecord.quality, RequestRecord.image_count,
            RequestRecord.usage, RequestRecord.cost_usd, RequestRecord.local_cost_usd, RequestRecord.wall_s,
            RequestRecord.cpu_s, RequestRecord.created_at,
        ).where(RequestRecord.created_at >= since)  # fmt: skip
        if until is not None:
            stmt = stmt.where(RequestRecord.created_at < until)
        condition = owned_by(RequestRecord.api_key_id, owner)
        if condition is not None:
            stmt = stmt.where(condition)
        stmt = stmt.order_by(RequestRecord.created_at, RequestRecord.id)
        with self._read_sessions() as session:
            return [
                LedgerEntry(
                    id=r.id,
                    endpoint=r.endpoint,
                    model=r.model,
                    api_key_id=r.api_key_id,
                    status=r.status,
                    size=r.size,
                    quality=r.quality,
                    image_count=r.image_count or 0,
                    usage=r.usage,
                    cost_usd=r.cost_usd or 0.0,
                    local_cost_usd=r.local_cost_usd or 0.0,
                    wall_s=r.wall_s,
                    cpu_s=r.cpu_s,
                    created_at=r.created_at,
                )
                for r in session.execute(stmt)
            ]

    def spend_since(self, since: datetime, owner: Owner = ALL_OWNERS) -> tuple[float, int]:
        """Hosted-equivalent dollars and images of the requests created since `since` (in flight included)."""
        with self._read_sessions() as session:
            usd, images = session.execute(spend_statement(since, owner)).one()
        return float(usd), int(images)


def spend_statement(since: datetime, owner: Owner) -> Select[float, int]:
    """The (dollars, images) of `owner`'s requests created since `since`."""
    stmt = select(
        func.coalesce(func.sum(RequestRecord.cost_usd), 0.0),
        func.coalesce(func.sum(RequestRecord.image_count), 0),
    ).where(RequestRecord.created_at >= since)
    condition = owned_by(RequestRecord.api_key_id, owner)
    return stmt if condition is None else stmt.where(condition)
