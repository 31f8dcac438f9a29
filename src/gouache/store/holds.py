"""Budget holds and leases kept in the database, so that every server process sharing it (a Ray cluster's
gateways) sees the same ones (issue 21). The budget policy (limits, warnings, alerts) stays in
`gouache.service.policies.budgets`; this repository keeps the holds and serialises the check, as
`store/rates.py` does for rate limits: a PostgreSQL advisory lock per purpose, SQLite's BEGIN IMMEDIATE."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from gouache.store.database import Database
from gouache.store.ledger import spend_statement
from gouache.store.models import BudgetHoldRecord, LeaseRecord
from gouache.store.owners import Owner, owned_by

#: (dollars, images) spent by one budget's owner: ledger rows plus unexpired holds.
Spent = tuple[float, int]


class HoldRepository(Database):
    def budget_hold(
        self,
        key_id: str | None,
        usd: float,
        images: int,
        *,
        since: datetime,
        owners: Sequence[Owner],
        now: float,
        ttl_s: float,
        decide: Callable[[list[Spent]], None],
    ) -> int:
        """In one serialised transaction: drop expired holds, add up each owner's spend since `since` (ledger
        rows and holds), let `decide(spent)` refuse (it raises) or accept, and on acceptance record a hold of
        `usd`/`images` for `key_id` until `now + ttl_s`. Returns the hold's id (for `budget_release`)."""
        with self._write() as session:
            self._serialise(session, "budget")
            session.execute(delete(BudgetHoldRecord).where(BudgetHoldRecord.expires_at <= now))
            spent: list[Spent] = []
            for owner in owners:
                ledger_usd, ledger_images = session.execute(spend_statement(since, owner)).one()
                held = select(
                    func.coalesce(func.sum(BudgetHoldRecord.usd), 0.0),
                    func.coalesce(func.sum(BudgetHoldRecord.images), 0),
                )
                condition = owned_by(BudgetHoldRecord.key_id, owner)
                held_usd, held_images = session.execute(
                    held if condition is None else held.where(condition)
                ).one()
                spent.append((float(ledger_usd) + float(held_usd), int(ledger_images) + int(held_images)))
            decide(spent)
            hold = BudgetHoldRecord(key_id=key_id, usd=usd, images=images, expires_at=now + ttl_s)
            session.add(hold)
            session.flush()
            return int(hold.id)

    def budget_release(self, hold_id: int) -> None:
        """Drop a hold: its request's ledger row counts the cost now, or the request did not go ahead."""
        with self._write() as session:
            session.execute(delete(BudgetHoldRecord).where(BudgetHoldRecord.id == hold_id))

    def lease_take(self, name: str, holder: str, now: float, ttl_s: float) -> bool:
        """Take or renew lease `name` for `holder` until `now + ttl_s`; False while another holder's lease
        has not expired."""
        with self._write() as session:
            self._serialise(session, f"lease\0{name}")
            lease = session.get(LeaseRecord, name)
            if lease is None:
                session.add(LeaseRecord(name=name, holder=holder, expires_at=now + ttl_s))
                return True
            if lease.holder != holder and lease.expires_at > now:
                return False
            lease.holder, lease.expires_at = holder, now + ttl_s
            return True

    def lease_release(self, name: str, holder: str) -> None:
        """Give lease `name` up at once (a process stopping), if `holder` has it."""
        with self._write() as session:
            session.execute(delete(LeaseRecord).where(LeaseRecord.name == name, LeaseRecord.holder == holder))

    def lease_holder(self, name: str) -> tuple[str, float] | None:
        """Who holds lease `name` and until when (expired or not), if anyone."""
        with self._read_sessions() as session:
            lease = session.get(LeaseRecord, name)
            return None if lease is None else (lease.holder, lease.expires_at)

    def _serialise(self, session: Session, purpose: str) -> None:
        """Writers with the same purpose take turns (SQLite: BEGIN IMMEDIATE already did)."""
        if not self.is_sqlite:
            lock = zlib.crc32(purpose.encode()) - 2**31
            session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})
