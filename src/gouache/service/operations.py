"""The operational checks around every request, in one place: moderation, prices, budgets, rate limits and
metrics. The image and responses services consult it before any compute and report to it afterwards.

"Why was I refused?" has one answer per stage: the requests limit in `api/access.py` (before any route),
moderation and OpenAI's rules in the image service, and everything that depends on the request's price
in `Operations.admit`: the monthly budgets, then the per-key images limit."""

from __future__ import annotations

from dataclasses import dataclass, field

from gouache.service.access import Caller
from gouache.service.errors import ServiceError
from gouache.service.metrics import Metrics
from gouache.service.policies.budgets import Budgets, Reservation
from gouache.service.policies.moderation import ModerationPolicy
from gouache.service.policies.pricing import LocalRates, PriceTable
from gouache.service.policies.rate_limits import LimitState, RateLimiter, SharedRateLimiter
from gouache.settings import Settings
from gouache.store import Store


@dataclass
class Admission:
    """A priced request let in: the soft-budget warnings it reached (sent as `x-gouache-budget-warning`) and
    its cost, held against its budgets until `release()`."""

    warnings: tuple[str, ...] = ()
    reservation: Reservation | None = None

    def release(self) -> None:
        """Stop holding the cost: once the request's ledger row counts it, or when the request does not go
        ahead after all. Safe to call more than once."""
        if self.reservation is not None:
            self.reservation.release()


@dataclass
class Operations:
    prices: PriceTable
    local: LocalRates
    moderation: ModerationPolicy
    budgets: Budgets
    limiter: RateLimiter | SharedRateLimiter
    metrics: Metrics = field(default_factory=Metrics)
    default_requests_limit: int | None = None
    default_images_limit: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings, store: Store, shared: bool = False) -> Operations:
        """`shared`: several processes serve this store (a Ray cluster's gateways), so rate limits and
        budget holds are kept in the database rather than in this process's memory."""
        return cls(
            prices=PriceTable.load(settings.prices_file),
            local=LocalRates(settings.cpu_hour_usd, settings.watts, settings.kwh_usd),
            moderation=ModerationPolicy.load(settings.moderation_policy_file),
            budgets=Budgets(
                store,
                usd=settings.budget_usd,
                images=settings.budget_images,
                soft_fraction=settings.budget_soft_fraction,
                webhook_url=settings.budget_webhook_url,
                webhook_secret=(
                    settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
                ),
                shared=shared,
            ),
            limiter=(
                SharedRateLimiter(store, settings.rate_limit_window_s)
                if shared
                else RateLimiter(settings.rate_limit_window_s)
            ),
            default_requests_limit=settings.rate_limit_requests,
            default_images_limit=settings.rate_limit_images,
        )

    def requests_limit(self, caller: Caller) -> int | None:
        return caller.rate_limit_requests or self.default_requests_limit

    def images_limit(self, caller: Caller) -> int | None:
        return caller.rate_limit_images or self.default_images_limit

    def take_request(self, caller: Caller) -> LimitState | None:
        return self.limiter.take(caller.limit_key, "requests", self.requests_limit(caller))

    def admit(self, caller: Caller, cost_usd: float, images: int, batch: bool = False) -> Admission:
        """Let a priced request in, or raise why not: a hard budget (429 `insufficient_quota`), then the
        per-key images limit (429 `rate_limit_exceeded`; 400 when `n` alone is over it). A refusal by the
        images limit releases what the budgets held. Batch API lines count against the same limits in
        their own windows (`batch_requests`, `batch_images`), never against interactive traffic's. Reads
        the ledger: call it off the event loop."""
        warnings, reservation = self.budgets.admit(caller, cost_usd, images)
        admission = Admission(tuple(warnings), reservation)
        try:
            if batch:
                self.limiter.take(caller.limit_key, "batch_requests", self.requests_limit(caller))
            kind = "batch_images" if batch else "images"
            self.limiter.take(caller.limit_key, kind, self.images_limit(caller), images)
        except ServiceError:
            admission.release()
            raise
        return admission

    def limit_headers(self, caller: Caller) -> dict[str, str]:
        """The current `x-ratelimit-*` headers of a caller (requests and images, where limited)."""
        headers: dict[str, str] = {}
        for kind, limit in (("requests", self.requests_limit(caller)), ("images", self.images_limit(caller))):
            state = self.limiter.state(caller.limit_key, kind, limit)
            if state is not None:
                headers.update(state.headers(kind))
        return headers
