"""Monthly budgets, global and per key, in hosted-equivalent dollars or images.

A request is checked before any compute against what was spent this calendar month (UTC), in-flight
requests included. Past the hard limit it is refused (429 `insufficient_quota`); reaching the soft share
(`budget_soft_fraction`) sends one alert per budget and month: a log line, an optional webhook POST (an
event signed like the batch events, `service/webhooks.py`), and a warning the API returns as the
`x-gouache-budget-warning` header.

Between admission and its ledger row a request's cost is *held*, so that concurrent requests cannot all pass
the same remaining budget. One process keeps its holds in memory; processes that share a database (a Ray
cluster's gateways, `shared=True`) keep them in it (`budget_holds`), checked and written in one serialised
transaction, so that two gateways cannot both spend the last of a budget."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gouache.service.access import Caller
from gouache.service.errors import ServiceError
from gouache.service.policies.pricing import format_usd
from gouache.service.webhooks import new_event, post_event
from gouache.store import ALL_OWNERS, AllOwners, Owner, Store

log = logging.getLogger(__name__)

#: An admitted request holds its cost here until its ledger row is written (or this long, if it never is).
RESERVATION_TTL_S = 600.0


class BudgetExceeded(ServiceError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


@dataclass(frozen=True)
class Budget:
    scope: str  # "global" or "key"
    owner: Owner
    usd: float | None
    images: int | None

    @property
    def label(self) -> str:
        return "global" if self.scope == "global" else f"key {self.owner}"


@dataclass
class Reservation:
    """What an admitted request will spend, counted by budget checks until its ledger row exists, so that
    concurrent requests cannot all pass the same remaining budget."""

    key_id: str | None
    usd: float
    images: int
    at: float = field(default_factory=time.monotonic)
    owner: Budgets | None = None
    #: The database row that holds it (shared budgets), else None (held in the owner's memory).
    hold_id: int | None = None

    def release(self) -> None:
        if self.owner is not None:
            self.owner._release(self)
            self.owner = None


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class Budgets:
    def __init__(
        self,
        store: Store,
        *,
        usd: float | None = None,
        images: int | None = None,
        soft_fraction: float = 0.8,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        notify: Callable[[str, dict[str, Any], str | None], None] = post_event,
        shared: bool = False,
    ) -> None:
        """`notify(url, event, secret)` sends the alert (`post_event`: signed, in the background). `shared`:
        other processes admit requests against the same database, so holds live in it."""
        self.store = store
        self.shared = shared
        self.global_budget = Budget("global", ALL_OWNERS, usd, images)
        self.soft_fraction = soft_fraction
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.notify = notify
        self._alerted: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self._admission = threading.Lock()
        self._pending: list[Reservation] = []

    def budgets_for(self, caller: Caller) -> list[Budget]:
        budgets = [self.global_budget]
        if caller.key_id is not None:
            budgets.append(Budget("key", caller.key_id, caller.budget_usd, caller.budget_images))
        return [b for b in budgets if b.usd is not None or b.images is not None]

    def admit(self, caller: Caller, cost_usd: float, images: int) -> tuple[list[str], Reservation | None]:
        """`check`, then hold the request's cost until `Reservation.release()` (call it once its ledger row
        is written, or if it is refused later). One admission at a time (across processes when shared)."""
        budgets = self.budgets_for(caller)
        if not budgets:
            return [], None
        since = month_start()
        if self.shared:
            warnings: list[str] = []

            def decide(spent: list[tuple[float, int]]) -> None:
                warnings.extend(self._judge(budgets, spent, cost_usd, images, since))

            hold_id = self.store.budget_hold(
                caller.key_id, cost_usd, images, since=since, owners=[b.owner for b in budgets],
                now=time.time(), ttl_s=RESERVATION_TTL_S, decide=decide,
            )  # fmt: skip
            return warnings, Reservation(caller.key_id, cost_usd, images, owner=self, hold_id=hold_id)
        with self._admission:
            warnings = self.check(caller, cost_usd, images)
            reservation = Reservation(caller.key_id, cost_usd, images, owner=self)
            with self._lock:
                self._pending.append(reservation)
            return warnings, reservation

    def _release(self, reservation: Reservation) -> None:
        if reservation.hold_id is not None:
            self.store.budget_release(reservation.hold_id)
            return
        with self._lock:
            if reservation in self._pending:
                self._pending.remove(reservation)

    def _pending_for(self, owner: Owner) -> tuple[float, int]:
        horizon = time.monotonic() - RESERVATION_TTL_S
        with self._lock:
            self._pending = [r for r in self._pending if r.at > horizon]
            held = [r for r in self._pending if isinstance(owner, AllOwners) or r.key_id == owner]
        return sum(r.usd for r in held), sum(r.images for r in held)

    def check(self, caller: Caller, cost_usd: float, images: int) -> list[str]:
        """Refuse a request that would go over a hard limit; return the soft-limit warnings it raises (this
        process's holds counted; `admit` counts every process's when shared)."""
        since = month_start()
        budgets = self.budgets_for(caller)
        spent = []
        for budget in budgets:
            spent_usd, spent_images = self.store.spend_since(since, budget.owner)
            held_usd, held_images = self._pending_for(budget.owner)
            spent.append((spent_usd + held_usd, spent_images + held_images))
        return self._judge(budgets, spent, cost_usd, images, since)

    def _judge(
        self,
        budgets: list[Budget],
        spent: list[tuple[float, int]],
        cost_usd: float,
        images: int,
        since: datetime,
    ) -> list[str]:
        """Raise `BudgetExceeded` if the request goes over a hard limit, given what each budget has spent
        (ledger and holds); else the soft-limit warnings it reaches (alerting once per budget and month)."""
        warnings: list[str] = []
        month = since.strftime("%Y-%m")
        for budget, (spent_usd, spent_images) in zip(budgets, spent, strict=True):
            for kind, limit, spent_amount, cost in (
                ("usd", budget.usd, spent_usd, cost_usd),
                ("images", budget.images, spent_images, images),
            ):
                if limit is None:
                    continue
                projected = spent_amount + cost
                if projected > limit + 1e-9:
                    raise BudgetExceeded(
                        f"You exceeded your current quota: the {budget.label} monthly budget is "
                        f"{_amount(kind, limit)}, {_amount(kind, spent_amount)} is spent this month and this "
                        f"request needs {_amount(kind, cost)}.",
                        headers={"x-should-retry": "false"},
                    )
                if projected + 1e-9 >= self.soft_fraction * limit:
                    share = projected / limit if limit else 1.0
                    warnings.append(
                        f"{budget.label}: {share:.0%} of the monthly budget of {_amount(kind, limit)} used"
                    )
                    self._alert(budget, kind, limit, projected, month)
        return warnings

    def _alert(self, budget: Budget, kind: str, limit: float, spent: float, month: str) -> None:
        key = (budget.label, kind, month)
        with self._lock:
            if key in self._alerted:
                return
            self._alerted.add(key)
        log.warning(
            "budget alert: %s has used %s of its monthly %s budget (%s, soft threshold %.0f%%)",
            budget.label, _amount(kind, spent), kind, _amount(kind, limit), self.soft_fraction * 100,
        )  # fmt: skip
        if self.webhook_url:
            event = new_event(
                "gouache.budget.soft_limit",
                scope=budget.scope,
                api_key_id=None if budget.scope == "global" else budget.owner,
                kind=kind,
                limit=limit,
                spent=round(spent, 6),
                threshold=self.soft_fraction,
                month=month,
            )
            self.notify(self.webhook_url, event, self.webhook_secret)


def _amount(kind: str, value: float) -> str:
    return f"${format_usd(value)}" if kind == "usd" else f"{int(value)} images"
