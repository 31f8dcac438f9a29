"""Load: a bounded burst of concurrent requests over loopback against a live server on a tiny model. Prints
latency percentiles, throughput, the count of each status (200, 429 queue full, anything else: must be 0)
and the server's resident memory before and after the burst (growth must stay under 10 %).

    .venv/bin/python bench/load.py [--requests 200] [--queue-depth 64] [--steps 2] [--size 1024x640]

Exits 1 when a response is neither 200 nor 429, or when the server's memory grew by 10 % or more.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tests.live import LiveServer, start_server  # noqa: E402

from gouache.engine.tiny import build_tiny_pipeline  # noqa: E402


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
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=600) as client:

        async def one(i: int) -> tuple[int, float]:
            t0 = time.perf_counter()
            response = await client.post("/images/generations", json={**body, "seed": i})
            return response.status_code, time.perf_counter() - t0

        started = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(count)))
        return list(results), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--queue-depth", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", default="1024x640")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    console = Console()
    body: dict[str, object] = {
        "model": "bench",
        "prompt": "a red circle",
        "size": args.size,
        "quality": "low",
    }

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_tiny_pipeline("sd1", root / "model")
        catalog = root / "catalog.toml"
        catalog.write_text(
            f'[models.bench]\npath = "{model_dir}"\nresolution = 64\n'
            f"[models.bench.plans.low]\nsteps = {args.steps}\nguidance = 2.0\n"
        )
        server = start_server(
            root / "data",
            {"GOUACHE_CATALOG_FILE": str(catalog), "GOUACHE_DEFAULT_MODEL": "bench",
             "GOUACHE_TORCH_THREADS": str(args.threads), "GOUACHE_QUEUE_DEPTH": str(args.queue_depth),
             "GOUACHE_LOG_LEVEL": "warning"},
        )  # fmt: skip
        try:
            asyncio.run(burst(server, 4, body))  # warm-up: model, allocator, first requests
            rss_before = rss_mb(server.process.pid)
            results, wall = asyncio.run(burst(server, args.requests, body))
            rss_after = rss_mb(server.process.pid)
        finally:
            server.stop()

    statuses = Counter(status for status, _ in results)
    ok = [seconds for status, seconds in results if status == 200]
    everything = [seconds for _, seconds in results]
    other = sum(n for status, n in statuses.items() if status not in (200, 429))
    growth = (rss_after - rss_before) / rss_before

    console.print(
        f"Machine: {platform.processor() or platform.machine()}, {args.threads} torch threads; tiny sd1, "
        f"{args.size}, {args.steps} steps; {args.requests} concurrent requests, "
        f"queue depth {args.queue_depth}"
    )
    table = Table("measurement", "value")
    refused = [seconds for status, seconds in results if status == 429]
    for name, values in (("200", ok), ("429", refused), ("all", everything)):
        if values:
            table.add_row(
                f"latency p50 / p95 / p99 ({name}), s",
                f"{percentile(values, 50):.2f} / {percentile(values, 95):.2f} / {percentile(values, 99):.2f}",
            )
    table.add_row("wall time of the burst, s", f"{wall:.1f}")
    table.add_row("throughput, images/s", f"{len(ok) / wall:.2f}")
    table.add_row("throughput, answers/s", f"{len(results) / wall:.2f}")
    table.add_row("mean latency (200), s", f"{statistics.mean(ok):.2f}" if ok else "-")
    table.add_row("count 200", str(statuses.get(200, 0)))
    table.add_row("count 429 (queue full, Retry-After)", str(statuses.get(429, 0)))
    table.add_row("count other", str(other))
    table.add_row("server RSS before / after, MB", f"{rss_before:.0f} / {rss_after:.0f} ({growth:+.1%})")
    console.print(table)
    if other:
        console.print(f"[red]FAIL[/]: {other} responses were neither 200 nor 429: {dict(statuses)}")
    if growth >= 0.10:
        console.print(f"[red]FAIL[/]: server memory grew by {growth:.1%}")
    return 1 if other or growth >= 0.10 else 0


if __name__ == "__main__":
    sys.exit(main())
