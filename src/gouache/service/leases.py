"""Leases: work that only one of several server processes sharing a database may do at a time, taken over by
another when its holder dies (issue 21: the Batch API's runner on a cluster's gateways). And membership: each
such process keeps a row saying where it runs, renewed on the same cadence from the same loop (the batch
runner's), so that any of them can list the others (`/health`).

A holder renews its lease while it runs; a holder that dies stops renewing, and once `ttl_s` has passed any
other process takes the lease on its next try. Clocks: seconds since the epoch, which every machine of a
cluster shares (NTP); a skew shorter than the lease only shifts the takeover."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gouache.store import Store
from gouache.store.members import ClusterMember

#: How long a lease lasts without renewal: how long a dead holder's work waits before another takes it.
LEASE_TTL_S = 30.0
#: How often a live holder renews it (well inside the TTL, so that a slow moment never loses it).
LEASE_RENEW_S = 10.0
#: How long the row of a member that died without stopping is kept (counted as gone) before any renewing
#: member deletes it.
MEMBER_FORGET_S = 600.0


class _Cadence:
    """When a row that expires after `ttl_s` is next written: at once, then at most every `renew_s` (kept well
    inside the TTL, so that a slow moment never lets it expire). Shared by `Lease` and `Membership`."""

    def __init__(self, renew_s: float, ttl_s: float) -> None:
        self.renew_s = min(renew_s, ttl_s / 2)
        self.renewed_at: float | None = None

    def due(self, now: float) -> bool:
        return self.renewed_at is None or now - self.renewed_at >= self.renew_s


class Lease:
    """Lease `name` held, or tried for, as `holder` (unique per process)."""

    def __init__(
        self,
        store: Store,
        name: str,
        holder: str,
        ttl_s: float = LEASE_TTL_S,
        renew_s: float = LEASE_RENEW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock
        self.name = name
        self.holder = holder
        self.ttl_s = ttl_s
        self._cadence = _Cadence(renew_s, ttl_s)

    def held(self) -> bool:
        """Whether this process holds the lease now: renewed at most every `renew_s`, taken when free or
        expired. Blocking (a database write when it renews)."""
        now = self.clock()
        if not self._cadence.due(now):
            return True
        if self.store.lease_take(self.name, self.holder, now, self.ttl_s):
            self._cadence.renewed_at = now
            return True
        self._cadence.renewed_at = None
        return False

    def release(self) -> None:
        """Give the lease up (a process stopping), so that another takes it at once. Blocking."""
        if self._cadence.renewed_at is not None:
            self.store.lease_release(self.name, self.holder)
            self._cadence.renewed_at = None


@dataclass(frozen=True)
class Member:
    """A server process among those sharing the database: its replica id (unique), role (the deployment, e.g.
    "gateway") and where it runs."""

    replica: str
    role: str
    node_id: str
    node_address: str
    pid: int


@dataclass(frozen=True)
class Roster:
    """The members as seen now: `live` ones (seen within the TTL), oldest first, and how many are `gone`
    (not seen within the TTL, not stopped cleanly; forgotten after `MEMBER_FORGET_S`)."""

    live: list[ClusterMember]
    gone: int


class Membership:
    """`member`'s row among the processes sharing `store`: `renew()` writes it at once and then at most
    every `renew_s` (the lease's cadence: the batch runner's loop calls both, so a gateway keeps one timer);
    a member not renewed for `ttl_s` counts as gone; `leave()` deletes the row (a clean stop)."""

    def __init__(
        self,
        store: Store,
        member: Member,
        ttl_s: float = LEASE_TTL_S,
        renew_s: float = LEASE_RENEW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.member = member
        self.clock = clock
        self.ttl_s = ttl_s
        self._cadence = _Cadence(renew_s, ttl_s)

    def renew(self) -> None:
        """Say this member is alive, if the last renewal is `renew_s` old (or there was none). Blocking."""
        now = self.clock()
        if not self._cadence.due(now):
            return
        m = self.member
        self.store.member_beat(
            m.replica, m.role, m.node_id, m.node_address, m.pid, now=now, forget_before=now - MEMBER_FORGET_S
        )
        self._cadence.renewed_at = now

    def leave(self) -> None:
        """Delete this member's row (stopping), so that nobody lists it any more. Blocking."""
        self.store.member_leave(self.member.replica)
        self._cadence.renewed_at = None

    def roster(self) -> Roster:
        """The live members and how many are gone, by this process's clock. Blocking (a read)."""
        horizon = self.clock() - self.ttl_s
        rows = self.store.members()
        live = [r for r in rows if r.seen_at > horizon]
        return Roster(live, len(rows) - len(live))
