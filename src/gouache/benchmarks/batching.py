"""Cross-request batching: 8 concurrent requests (same model, size and plan; their own prompts and seeds)
against the same 8 requests one after another, on one live server (a tiny SD 1.x; then gouache-mini, the
default model, except with ``--quick``). The ratio is the concurrent wall time over
the sequential one; its inverse, the throughput gain, is in the detail (goal: at least 1.6x)."""

from __future__ import annotations

import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from openai import OpenAI

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import repeats, size_for, timed, tiny_server
from gouache.benchmarks.live import start_server

REQUESTS = 8


def _one(client: OpenAI, model: str, i: int) -> None:
    client.images.generate(
        model=model, prompt=f"a red star and a blue circle, number {i}", size="1024x1024", quality="low",
        extra_body={"seed": 1000 + i, "cache": False},
    )  # fmt: skip


def _compare(client: OpenAI, model: str, count: int, options: BenchOptions) -> tuple[float, float]:
    """Median wall times of `count` requests one after another and of the same requests at once."""
    _one(client, model, 0)  # warm-up

    def sequential() -> None:
        for i in range(count):
            _one(client, model, i)

    def concurrent() -> None:
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(lambda i: _one(client, model, i), range(count)))

    seq_s, conc_s = [], []
    for _ in range(repeats(options)):
        seq_s.append(timed(sequential))
        conc_s.append(timed(concurrent))
    return statistics.median(seq_s), statistics.median(conc_s)


def _row(name: str, count: int, times: tuple[float, float], what: str) -> Ratio:
    sequential_s, concurrent_s = times
    return Ratio(
        name,
        f"{count} requests one after another",
        sequential_s,
        f"{count} concurrent requests (batched)",
        concurrent_s,
        f"throughput x{sequential_s / concurrent_s:.2f}; {what}",
    )


def measure(options: BenchOptions) -> list[Ratio]:
    resolution = size_for(options, 256)
    steps = 2 if options.quick else 8
    count = 4 if options.quick else REQUESTS
    with tiny_server(resolution, steps, options.threads) as tiny:
        times = _compare(tiny.client(), "bench", count, options)
    rows = [_row("batching", count, times, f"tiny sd1 at {resolution} px, {steps} steps")]
    if not options.quick:  # the default model, as served out of the box
        with tempfile.TemporaryDirectory(prefix="gouache-bench-") as tmp:
            env = {"GOUACHE_LOG_LEVEL": "warning"}
            if options.threads:
                env["GOUACHE_TORCH_THREADS"] = str(options.threads)
            server = start_server(Path(tmp) / "data", env)
            try:
                client = OpenAI(base_url=server.base_url, api_key="bench", max_retries=0, timeout=600)
                times = _compare(client, "gpt-image-2", count, options)
            finally:
                server.stop()
        rows.append(_row("batching (gouache-mini)", count, times, "gouache-mini, quality low, 1024x1024"))
    return rows
