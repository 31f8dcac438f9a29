"""Cross-request batching: 8 concurrent requests (same model, size and plan; their own prompts and seeds)
against the same 8 requests one after another, on one live server. The ratio is the concurrent wall time over
the sequential one; its inverse, the throughput gain, is in the detail (goal: at least 1.6x)."""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor

from openai import OpenAI

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import repeats, size_for, timed, tiny_server

REQUESTS = 8


def _one(client: OpenAI, i: int) -> None:
    client.images.generate(
        model="bench", prompt=f"shape number {i}", size="1024x1024", quality="low",
        extra_body={"seed": 1000 + i, "cache": False},
    )  # fmt: skip


def measure(options: BenchOptions) -> list[Ratio]:
    resolution = size_for(options, 256)
    steps = 2 if options.quick else 8
    count = 4 if options.quick else REQUESTS
    with tiny_server(resolution, steps, options.threads) as tiny:
        client = tiny.client()
        _one(client, 0)  # warm-up

        def sequential() -> None:
            for i in range(count):
                _one(client, i)

        def concurrent() -> None:
            with ThreadPoolExecutor(count) as pool:
                list(pool.map(lambda i: _one(client, i), range(count)))

        seq_s, conc_s = [], []
        for _ in range(repeats(options)):
            seq_s.append(timed(sequential))
            conc_s.append(timed(concurrent))
    sequential_s, concurrent_s = statistics.median(seq_s), statistics.median(conc_s)
    return [
        Ratio(
            "batching",
            f"{count} requests one after another",
            sequential_s,
            f"{count} concurrent requests (batched)",
            concurrent_s,
            f"throughput x{sequential_s / concurrent_s:.2f}; tiny sd1 at {resolution} px, {steps} steps",
        )
    ]
