"""Load: a burst of concurrent requests over loopback against a live server on a tiny model: latency
percentiles, throughput, the count of each status (200, 429 queue full, anything else: must be 0) and the
server's resident memory before and after the burst (growth must stay under 10 %)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import tiny_server
from gouache.benchmarks.live import LiveServer


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def burst(
    server: LiveServer, count: int, body: dict[str, object]
) -> tuple[list[tuple[int, float]], float]:
    """`count` requests at once (seeds 0..count-1, cache off); each one's status and latency, and the wall
    time of the whole burst."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=600) as client:

        async def one(i: int) -> tuple[int, float]:
            t0 = time.perf_counter()
            response = await client.post("/images/generations", json={**body, "seed": i, "cache": False})
            return response.status_code, time.perf_counter() - t0

        started = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(count)))
        return list(results), time.perf_counter() - started


@dataclass
class LoadReport:
    requests: int
    results: list[tuple[int, float]]
    wall_s: float
    single_s: float
    rss_before_mb: float
    rss_after_mb: float

    @property
    def statuses(self) -> Counter[int]:
        return Counter(status for status, _ in self.results)

    @property
    def other(self) -> int:
        return sum(n for status, n in self.statuses.items() if status not in (200, 429))

    @property
    def growth(self) -> float:
        return (self.rss_after_mb - self.rss_before_mb) / self.rss_before_mb

    def latencies(self, status: int | None = None) -> list[float]:
        return [s for code, s in self.results if status is None or code == status]

    @property
    def failed(self) -> bool:
        return bool(self.other) or self.growth >= 0.10


def run_load(
    requests: int, queue_depth: int = 64, steps: int = 2, size: str = "1024x640", threads: int | None = None
) -> LoadReport:
    body: dict[str, object] = {"model": "bench", "prompt": "a red circle", "size": size, "quality": "low"}
    env = {"GOUACHE_QUEUE_DEPTH": str(queue_depth)}
    with tiny_server(64, steps, threads, env) as tiny:
        asyncio.run(burst(tiny.server, 4, body))  # warm-up: model, allocator, first requests
        single, _ = asyncio.run(burst(tiny.server, 1, body))
        rss_before = rss_mb(tiny.server.process.pid)
        results, wall = asyncio.run(burst(tiny.server, requests, body))
        rss_after = rss_mb(tiny.server.process.pid)
    return LoadReport(requests, results, wall, single[0][1], rss_before, rss_after)


def measure(options: BenchOptions) -> list[Ratio]:
    count = 8 if options.quick else 200
    report = run_load(count, threads=options.threads)
    ok = report.latencies(200)
    statuses = ", ".join(f"{n}x{code}" for code, n in sorted(report.statuses.items()))
    return [
        Ratio(
            "load burst",
            "one request alone",
            report.single_s,
            f"mean latency (200) in a burst of {count}",
            statistics.mean(ok) if ok else float("nan"),
            f"{statuses}; {len(ok) / report.wall_s:.1f} images/s; RSS {report.growth:+.1%}"
            + ("; FAILED" if report.failed else ""),
        )
    ]
