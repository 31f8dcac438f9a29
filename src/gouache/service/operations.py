"""The operational checks around every request, in one place: moderation, prices, budgets, rate limits and
metrics. The image and responses services consult it before any compute and report to it afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field

from gouache.service.access import Caller
from gouache.service.metrics import Metrics
from gouache.service.policies.budgets import Budgets
from gouache.service.policies.moderation import ModerationPolicy
from gouache.service.policies.pricing import LocalRates, PriceTable
from gouache.service.policies.rate_limits import LimitState, RateLimiter
from gouache.settings import Settings
from gouache.store import Store


@dataclass
class Operations:
    prices: PriceTable
    local: LocalRates
    moderation: ModerationPolicy
    budgets: Budgets
    limiter: RateLimiter
    metrics: Metrics = field(default_factory=Metrics)
    default_requests_limit: int | None = None
    default_images_limit: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> Operations:
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
            ),
            limiter=RateLimiter(settings.rate_limit_window_s),
            default_requests_limit=settings.rate_limit_requests,
            default_images_limit=settings.rate_limit_images,
        )

    def requests_limit(self, caller: Caller) -> int | None:
        return caller.rate_limit_requests or self.default_requests_limit

    def images_limit(self, caller: Caller) -> int | None:
        return caller.rate_limit_images or self.default_images_limit

    def take_request(self, caller: Caller) -> LimitState | None:
        return self.limiter.take(caller.limit_key, "requests", self.requests_limit(caller))

    def take_images(self, caller: Caller, n: int) -> LimitState | None:
        return self.limiter.take(caller.limit_key, "images", self.images_limit(caller), n)

    def limit_headers(self, caller: Caller) -> dict[str, str]:
        """The current `x-ratelimit-*` headers of a caller (requests and images, where limited)."""
        headers: dict[str, str] = {}
        for kind, limit in (("requests", self.requests_limit(caller)), ("images", self.images_limit(caller))):
            state = self.limiter.state(caller.limit_key, kind, limit)
            if state is not None:
                headers.update(state.headers(kind))
        return headers
