"""Per-key rate limits over a sliding window: requests and images per window (a minute by default).

Each (key, kind) keeps the times and amounts it admitted within the window; a request that does not fit is
refused with 429 and how long until it would (`Retry-After`), and every answer can carry OpenAI's
`x-ratelimit-*` headers."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from gouache.service.errors import InvalidRequest, ServiceError


@dataclass(frozen=True)
class LimitState:
    limit: int
    remaining: int
    reset_s: float  # until the window is empty again (OpenAI's "reset to its initial state")

    def headers(self, kind: str) -> dict[str, str]:
        return {
            f"x-ratelimit-limit-{kind}": str(self.limit),
            f"x-ratelimit-remaining-{kind}": str(self.remaining),
            f"x-ratelimit-reset-{kind}": format_duration(self.reset_s),
        }


class RateLimited(ServiceError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


def format_duration(seconds: float) -> str:
    """OpenAI's style for reset times: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 1000) / 1000:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


class RateLimiter:
    """Windows kept in this process's memory: the single server's limiter (no I/O on the request path)."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._events: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def _window(self, key: str, kind: str, now: float) -> deque[tuple[float, int]]:
        events = self._events.setdefault((key, kind), deque())
        while events and events[0][0] <= now - self.window_s:
            events.popleft()
        return events

    def take(self, key: str, kind: str, limit: int | None, amount: int = 1) -> LimitState | None:
        """Admit `amount` (requests or images) for `key`, or raise `RateLimited`. None when unlimited."""
        if limit is None:
            return None
        check_amount(kind, limit, amount, self.window_s)
        now = time.monotonic()
        with self._lock:
            events = self._window(key, kind, now)
            refuse_unless_fits(list(events), kind, limit, amount, self.window_s, now)
            events.append((now, amount))
            return window_state(events, limit, self.window_s, now)

    def state(self, key: str, kind: str, limit: int | None) -> LimitState | None:
        if limit is None:
            return None
        now = time.monotonic()
        with self._lock:
            return window_state(self._window(key, kind, now), limit, self.window_s, now)


class SharedRateLimiter:
    """Windows kept in the database (`store.rate_take`), so that every process sharing it (a Ray cluster's
    gateways) counts the same admissions; times are wall-clock seconds, which all machines share. Costs a
    short write transaction per limited check (design note 42). The `x-ratelimit-*` headers report the
    window as this process last saw it."""

    def __init__(
        self, store: RateStore, window_s: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, str], tuple[float, list[tuple[float, int]]]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, kind: str, limit: int | None, amount: int = 1) -> LimitState | None:
        if limit is None:
            return None
        check_amount(kind, limit, amount, self.window_s)
        now = self.clock()

        def decide(events: list[tuple[float, int]]) -> int:
            refuse_unless_fits(events, kind, limit, amount, self.window_s, now)
            return amount

        events = self.store.rate_take(key, kind, self.window_s, now, decide)
        with self._lock:
            self._seen[(key, kind)] = (now, events)
        return window_state(events, limit, self.window_s, now)

    def state(self, key: str, kind: str, limit: int | None) -> LimitState | None:
        if limit is None:
            return None
        now = self.clock()
        with self._lock:
            _, events = self._seen.get((key, kind), (now, []))
        return window_state([e for e in events if e[0] > now - self.window_s], limit, self.window_s, now)


class RateStore(Protocol):
    def rate_take(
        self,
        key: str,
        kind: str,
        window_s: float,
        now: float,
        decide: Callable[[list[tuple[float, int]]], int | None],
    ) -> list[tuple[float, int]]: ...


def check_amount(kind: str, limit: int, amount: int, window_s: float) -> None:
    """A request larger than the whole limit can never fit: 400, not a 429 to retry forever."""
    if amount > limit:
        raise InvalidRequest(
            f"This request needs {amount} {kind} but the limit is {limit} {kind} per "
            f"{window_s:g}s window; ask for fewer.",
            param="n",
        )


def window_state(events: Iterable[tuple[float, int]], limit: int, window_s: float, now: float) -> LimitState:
    events = list(events)
    used = sum(amount for _, amount in events)
    reset = events[-1][0] + window_s - now if events else 0.0
    return LimitState(limit, max(0, limit - used), max(0.0, reset))


def refuse_unless_fits(
    events: list[tuple[float, int]], kind: str, limit: int, amount: int, window_s: float, now: float
) -> None:
    """Raise `RateLimited` (with how long until it would fit) unless `amount` fits in the window's events."""
    used = sum(a for _, a in events)
    if used + amount <= limit:
        return
    # Wait until enough of the oldest admissions have left the window.
    freed, wait = 0, 0.0
    for at, a in events:
        freed += a
        wait = at + window_s - now
        if used - freed + amount <= limit:
            break
    state = window_state(events, limit, window_s, now)
    headers = {
        **state.headers(kind),
        "retry-after": str(max(1, math.ceil(wait))),
        "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
    }
    raise RateLimited(
        f"Rate limit reached for {kind} on this key: limit {limit} per {window_s:g}s, "
        f"used {used}. Please try again in {format_duration(wait)}.",
        type=kind,
        headers=headers,
    )
