"""Load: a bounded burst of concurrent requests over loopback against a live server on a tiny model. Prints
latency percentiles, throughput, the count of each status (200, 429 queue full, anything else: must be 0)
and the server's resident memory before and after the burst (growth must stay under 10 %).

    .venv/bin/python bench/load.py [--requests 200] [--queue-depth 64] [--steps 2] [--size 1024x640]

Exits 1 when a response is neither 200 nor 429, or when the server's memory grew by 10 % or more. The code
lives in gouache.benchmarks.load (`gouache bench --only load` reports the burst as a ratio).
"""

from __future__ import annotations

import argparse
import statistics
import sys

from rich.console import Console
from rich.table import Table

from gouache.benchmarks import machine
from gouache.benchmarks.load import percentile, run_load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--queue-depth", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", default="1024x640")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    console = Console()
    report = run_load(args.requests, args.queue_depth, args.steps, args.size, args.threads)
    console.print(
        f"Machine: {machine()}; tiny sd1, {args.size}, {args.steps} steps; {args.requests} concurrent "
        f"requests, queue depth {args.queue_depth}"
    )
    table = Table("measurement", "value")
    groups = (("200", report.latencies(200)), ("429", report.latencies(429)), ("all", report.latencies()))
    for name, values in groups:
        if values:
            table.add_row(
                f"latency p50 / p95 / p99 ({name}), s",
                f"{percentile(values, 50):.2f} / {percentile(values, 95):.2f} / {percentile(values, 99):.2f}",
            )
    ok = report.latencies(200)
    table.add_row("one request alone, s", f"{report.single_s:.2f}")
    table.add_row("wall time of the burst, s", f"{report.wall_s:.1f}")
    table.add_row("throughput, images/s", f"{len(ok) / report.wall_s:.2f}")
    table.add_row("throughput, answers/s", f"{len(report.results) / report.wall_s:.2f}")
    table.add_row("mean latency (200), s", f"{statistics.mean(ok):.2f}" if ok else "-")
    table.add_row("count 200", str(report.statuses.get(200, 0)))
    table.add_row("count 429 (queue full, Retry-After)", str(report.statuses.get(429, 0)))
    table.add_row("count other", str(report.other))
    table.add_row(
        "server RSS before / after, MB",
        f"{report.rss_before_mb:.0f} / {report.rss_after_mb:.0f} ({report.growth:+.1%})",
    )
    console.print(table)
    if report.other:
        statuses = dict(report.statuses)
        console.print(f"[red]FAIL[/]: {report.other} responses were neither 200 nor 429: {statuses}")
    if report.growth >= 0.10:
        console.print(f"[red]FAIL[/]: server memory grew by {report.growth:.1%}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
