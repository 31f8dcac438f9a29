"""Leases: work that only one of several server processes sharing a database may do at a time, taken over by
another when its holder dies (issue 21: the Batch API's runner on a cluster's gateways).

A holder renews its lease while it runs; a holder that dies stops renewing, and once `ttl_s` has passed any
other process takes the lease on its next try. Clocks: seconds since the epoch, which every machine of a
cluster shares (NTP); a skew shorter than the lease only shifts the takeover."""

from __future__ import annotations

import time
from collections.abc import Callable

from gouache.store import Store

#: How long a lease lasts without renewal: how long a dead holder's work waits before another takes it.
LEASE_TTL_S = 30.0
#: How often a live holder renews it (well inside the TTL, so that a slow moment never loses it).
LEASE_RENEW_S = 10.0


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
        self.renew_s = min(renew_s, ttl_s / 2)
        self._renewed_at: float | None = None

    def held(self) -> bool:
        """Whether this process holds the lease now: renewed at most every `renew_s`, taken when free or
        expired. Blocking (a database write when it renews)."""
        now = self.clock()
        if self._renewed_at is not None and now - self._renewed_at < self.renew_s:
            return True
        if self.store.lease_take(self.name, self.holder, now, self.ttl_s):
            self._renewed_at = now
            return True
        self._renewed_at = None
        return False

    def release(self) -> None:
        """Give the lease up (a process stopping), so that another takes it at once. Blocking."""
        if self._renewed_at is not None:
            self.store.lease_release(self.name, self.holder)
            self._renewed_at = None
