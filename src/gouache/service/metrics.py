"""Prometheus metrics on a registry of their own (so several apps can live in one process, as in tests)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "gouache_http_requests",
            "HTTP requests by endpoint and status.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "gouache_http_request_duration_seconds", "HTTP request latency (streams: until the last byte).",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.image_latency = Histogram(
            "gouache_image_request_duration_seconds", "Render latency of image requests, queue included.",
            ["model", "quality"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.images = Counter("gouache_images", "Images generated.", ["model", "quality"], registry=r)
        self.tokens = Counter("gouache_tokens", "Tokens in OpenAI's usage terms.", ["direction"], registry=r)
        self.hosted_usd = Counter(
            "gouache_hosted_cost_usd", "Hosted-equivalent dollars served.", ["model"], registry=r
        )
        self.local_usd = Counter("gouache_local_cost_usd", "Local dollars (CPU and energy).", registry=r)
        self.refusals = Counter(
            "gouache_refusals", "Requests refused before compute, by error code.", ["code"], registry=r
        )
        self.queue_depth = Gauge("gouache_queue_depth", "Render jobs waiting or running.", registry=r)
        #: Labels added to every sample (a cluster's gateway replica: replica and node); none in one process.
        self.instance: dict[str, str] = {}
        #: More exposition text appended after ours (a cluster's gateway: the engine replicas' gauges).
        self.extra: Callable[[], str] | None = None

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))

    def observe_images(
        self,
        model: str,
        quality: str,
        seconds: float,
        images: int,
        usage: dict[str, int | dict[str, int]],
        hosted_usd: float,
        local_usd: float,
    ) -> None:
        self.image_latency.labels(model, quality).observe(seconds)
        self.images.labels(model, quality).inc(images)
        self.observe_tokens(usage)
        self.hosted_usd.labels(model).inc(hosted_usd)
        self.local_usd.inc(local_usd)

    def observe_tokens(self, usage: dict[str, int | dict[str, int]]) -> None:
        for direction in ("input", "output"):
            value = usage.get(f"{direction}_tokens", 0)
            if isinstance(value, int):
                self.tokens.labels(direction).inc(value)

    def exposition(self) -> bytes:
        text = generate_latest(self.registry)
        if self.instance:
            text = label_samples(text, self.instance)
        if self.extra is not None:
            text += self.extra().encode()
        return text


def label_samples(text: bytes, labels: dict[str, str]) -> bytes:
    """Prometheus text with `labels` added to every sample (comment lines unchanged): on a cluster each
    gateway replica labels its numbers with its replica and node, so scraped series never mix replicas."""
    extra = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    out = []
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, brace, rest = line.partition("{")
            if brace:
                line = f"{name}{{{extra},{rest}" if not rest.startswith("}") else f"{name}{{{extra}{rest}"
            else:
                metric, _, value = line.partition(" ")
                line = f"{metric}{{{extra}}} {value}"
        out.append(line)
    return ("\n".join(out) + "\n").encode()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
