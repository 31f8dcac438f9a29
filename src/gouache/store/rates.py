"""Rate-limit windows kept in the database, so that every server process sharing it (a Ray cluster's
gateways) counts the same admissions. The policy (what fits, how long to wait) stays in
`gouache.service.policies.rate_limits`; this repository only keeps the events and serialises the check.

Serialising: on PostgreSQL a transaction-scoped advisory lock per (key, kind), so two gateways cannot both
admit the last slot; on SQLite the write transaction's BEGIN IMMEDIATE already takes the database's lock."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from sqlalchemy import delete, select, text

from gouache.store.database import Database
from gouache.store.models import RateEventRecord

#: (seconds since the epoch, amount) of each admission in the window, oldest first.
Events = list[tuple[float, int]]


class RateRepository(Database):
    def rate_take(
        self, key: str, kind: str, window_s: float, now: float, decide: Callable[[Events], int | None]
    ) -> Events:
        """In one serialised transaction: drop `key`/`kind` events older than the window, read the rest,
        ask `decide(events)` for the amount to admit (None: admit nothing; it may raise to refuse), record
        it, and return the events including it."""
        with self._write() as session:
            if not self.is_sqlite:
                lock = zlib.crc32(f"{key}\0{kind}".encode()) - 2**31
                session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})
            where = (RateEventRecord.key == key, RateEventRecord.kind == kind)
            session.execute(delete(RateEventRecord).where(*where, RateEventRecord.at <= now - window_s))
            rows = session.execute(
                select(RateEventRecord.at, RateEventRecord.amount).where(*where).order_by(RateEventRecord.at)
            ).all()
            events: Events = [(float(at), int(amount)) for at, amount in rows]
            amount = decide(events)
            if amount is not None:
                session.add(RateEventRecord(key=key, kind=kind, at=now, amount=amount))
                events.append((now, amount))
            return events
