"""Reading the usage ledger: summaries for `gouache usage`, and OpenAI's organization usage and costs pages
(`/v1/organization/usage/images`, `/v1/organization/costs`) so existing dashboards can read them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gouache.service.errors import InvalidRequest
from gouache.store import ALL_OWNERS, LedgerEntry, Owner, Store

#: Ledger endpoint -> OpenAI's usage `source`.
SOURCES = {
    "images.generations": "image.generation",
    "images.edits": "image.edit",
    "images.variations": "image.variation",
}
BUCKET_SECONDS = {"1m": 60, "1h": 3600, "1d": 86400}
#: (default, maximum) number of buckets per page, as OpenAI documents them.
BUCKET_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
COSTS_LIMITS = (7, 180)
IMAGE_GROUPS = ("project_id", "user_id", "api_key_id", "model", "size", "source")
COST_GROUPS = ("project_id", "line_item")


@dataclass
class Totals:
    requests: int = 0
    images: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    hosted_usd: float = 0.0
    local_usd: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    refused: int = 0

    def add(self, entry: LedgerEntry) -> None:
        self.requests += 1
        if entry.status == "failed":
            self.refused += 1
        self.images += entry.image_count if entry.status == "succeeded" else 0
        usage = entry.usage or {}
        self.input_tokens += int(usage.get("input_tokens", 0))
        self.output_tokens += int(usage.get("output_tokens", 0))
        self.hosted_usd += entry.cost_usd
        self.local_usd += entry.local_cost_usd
        self.cpu_s += entry.cpu_s or 0.0
        self.wall_s += entry.wall_s or 0.0


@dataclass
class Summary:
    by: str
    rows: dict[str, Totals] = field(default_factory=dict)
    total: Totals = field(default_factory=Totals)


GROUPERS: dict[str, Callable[[LedgerEntry], str]] = {
    "day": lambda e: e.created_at.strftime("%Y-%m-%d"),
    "model": lambda e: e.model,
    "key": lambda e: e.api_key_id or "(no key)",
    "endpoint": lambda e: e.endpoint,
}


def summarize(entries: Iterable[LedgerEntry], by: str = "day") -> Summary:
    if by not in GROUPERS:
        raise ValueError(f"cannot group by {by!r}; use one of {', '.join(GROUPERS)}")
    summary = Summary(by)
    group = GROUPERS[by]
    for entry in entries:
        summary.rows.setdefault(group(entry), Totals()).add(entry)
        summary.total.add(entry)
    return summary


def usage_summary(
    store: Store, since: datetime, key: str | None = None, by: str = "day", owner: Owner = ALL_OWNERS
) -> Summary:
    entries = store.ledger(since, owner=owner)
    if key is not None:
        entries = [e for e in entries if e.api_key_id == key]
    return summarize(entries, by)


# --- OpenAI's organization endpoints -----------------------------------------------------------------


@dataclass(frozen=True)
class PageQuery:
    start_time: int
    end_time: int | None
    bucket_width: str
    limit: int | None
    page: str | None
    group_by: tuple[str, ...]


def _buckets(query: PageQuery, limits: tuple[int, int]) -> tuple[list[tuple[int, int]], str | None]:
    """The page's buckets [(start, end)], aligned to UTC boundaries of the bucket width, and the next
    page's cursor (None on the last page)."""
    width = BUCKET_SECONDS[query.bucket_width]
    default, maximum = limits
    limit = default if query.limit is None else query.limit
    if not 1 <= limit <= maximum:
        raise InvalidRequest(
            f"Invalid 'limit': {limit}. With bucket_width={query.bucket_width} it must be 1-{maximum}.",
            param="limit",
            code="invalid_value",
        )
    if not 0 <= query.start_time <= LAST_SECOND:
        raise InvalidRequest(
            f"Invalid 'start_time': must be Unix seconds from 0 to {LAST_SECOND}.", param="start_time"
        )
    end = query.end_time if query.end_time is not None else int(datetime.now(UTC).timestamp())
    if end > LAST_SECOND:
        raise InvalidRequest(
            f"Invalid 'end_time': must be Unix seconds up to {LAST_SECOND}.", param="end_time"
        )
    if end <= query.start_time:
        raise InvalidRequest("'end_time' must be after 'start_time'.", param="end_time")
    first = query.start_time - query.start_time % width
    if query.page:
        try:
            first = int(query.page.removeprefix("page_"))
        except ValueError as exc:
            raise InvalidRequest(f"Invalid 'page': {query.page!r}.", param="page") from exc
        if not 0 <= first <= LAST_SECOND:
            raise InvalidRequest(f"Invalid 'page': {query.page!r}.", param="page")
    buckets: list[tuple[int, int]] = []
    start = first
    while start < end and len(buckets) < limit:
        buckets.append((start, start + width))
        start += width
    return buckets, (f"page_{start}" if start < end else None)


#: The last second a page may reach (3000-01-01; a bucket a day wide past it still fits a datetime).
LAST_SECOND = 32503680000


def _datetime(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _page(buckets: list[dict[str, Any]], next_page: str | None) -> dict[str, Any]:
    return {"object": "page", "data": buckets, "has_more": next_page is not None, "next_page": next_page}


def _check_groups(group_by: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    for name in group_by:
        if name not in allowed:
            raise InvalidRequest(
                f"Invalid value: '{name}'. Supported values are: {', '.join(allowed)}.", param="group_by"
            )


def usage_images_page(
    store: Store,
    query: PageQuery,
    owner: Owner,
    *,
    sources: tuple[str, ...] = (),
    sizes: tuple[str, ...] = (),
    api_key_ids: tuple[str, ...] = (),
    models: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`GET /v1/organization/usage/images`: images and requests per time bucket, optionally grouped."""
    _check_groups(query.group_by, IMAGE_GROUPS)
    buckets, next_page = _buckets(query, BUCKET_LIMITS[query.bucket_width])
    entries = _entries(store, buckets, owner)
    fields: dict[str, Callable[[LedgerEntry], str | None]] = {
        "project_id": lambda e: None,
        "user_id": lambda e: None,
        "api_key_id": lambda e: e.api_key_id,
        "model": lambda e: e.model,
        "size": lambda e: e.size,
        "source": lambda e: SOURCES.get(e.endpoint),
    }
    selected = [
        e for e in entries
        if e.endpoint in SOURCES and e.status == "succeeded"
        and (not sources or SOURCES[e.endpoint] in sources) and (not sizes or e.size in sizes)
        and (not api_key_ids or e.api_key_id in api_key_ids) and (not models or e.model in models)
    ]  # fmt: skip

    def result(key: tuple[str | None, ...], group: list[LedgerEntry]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "object": "organization.usage.images.result",
            "images": sum(e.image_count for e in group),
            "num_model_requests": len(group),
        }
        out.update({name: None for name in IMAGE_GROUPS})
        out.update(dict(zip(query.group_by, key, strict=True)))
        return out

    data = [
        {"object": "bucket", "start_time": start, "end_time": end, "results": [
            result(key, group)
            for key, group in _grouped(selected, start, end, query.group_by, fields).items()
        ]}
        for start, end in buckets
    ]  # fmt: skip
    return _page(data, next_page)


def costs_page(store: Store, query: PageQuery, owner: Owner) -> dict[str, Any]:
    """`GET /v1/organization/costs`: hosted-equivalent dollars per day, optionally by line item. Each result
    also carries `gouache_local_amount`, what the same requests cost here (an extension)."""
    _check_groups(query.group_by, COST_GROUPS)
    if query.bucket_width != "1d":
        raise InvalidRequest(
            f"Invalid value: '{query.bucket_width}'. Supported values are: 1d.", param="bucket_width"
        )
    buckets, next_page = _buckets(query, COSTS_LIMITS)
    entries = _entries(store, buckets, owner)
    fields: dict[str, Callable[[LedgerEntry], str | None]] = {
        "project_id": lambda e: None,
        "line_item": lambda e: f"{e.model}, {SOURCES.get(e.endpoint, e.endpoint)}",
    }

    def result(key: tuple[str | None, ...], group: list[LedgerEntry]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "object": "organization.costs.result",
            "amount": {"value": round(sum(e.cost_usd for e in group), 6), "currency": "usd"},
            "line_item": None,
            "project_id": None,
            "gouache_local_amount": {
                "value": round(sum(e.local_cost_usd for e in group), 6), "currency": "usd",
            },
        }  # fmt: skip
        out.update(dict(zip(query.group_by, key, strict=True)))
        return out

    data = [
        {"object": "bucket", "start_time": start, "end_time": end, "results": [
            result(key, group)
            for key, group in _grouped(entries, start, end, query.group_by, fields).items()
        ]}
        for start, end in buckets
    ]  # fmt: skip
    return _page(data, next_page)


def _entries(store: Store, buckets: list[tuple[int, int]], owner: Owner) -> list[LedgerEntry]:
    if not buckets:
        return []
    return store.ledger(_datetime(buckets[0][0]), _datetime(buckets[-1][1]), owner)


def _grouped(
    entries: list[LedgerEntry],
    start: int,
    end: int,
    group_by: tuple[str, ...],
    fields: dict[str, Callable[[LedgerEntry], str | None]],
) -> dict[tuple[str | None, ...], list[LedgerEntry]]:
    lo, hi = _datetime(start), _datetime(end)
    groups: dict[tuple[str | None, ...], list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        if lo <= entry.created_at < hi:
            groups[tuple(fields[name](entry) for name in group_by)].append(entry)
    return dict(groups)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`7d`, `12h`, `30m`, or an ISO date/time (UTC when no zone is given)."""
    now = now or datetime.now(UTC)
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text and text[-1] in units and text[:-1].isdigit():
        return now - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"cannot read {text!r} as a time: use 7d, 12h, 30m or 2026-11-01") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def local_cost_per_image(store: Store, quality: str, size: str, since: datetime) -> float | None:
    """The mean local dollars per image of past successful requests at this quality and size, if any."""
    entries = [
        e for e in store.ledger(since)
        if e.status == "succeeded" and e.quality == quality and e.size == size and e.image_count
    ]  # fmt: skip
    images = sum(e.image_count for e in entries)
    return sum(e.local_cost_usd for e in entries) / images if images else None
