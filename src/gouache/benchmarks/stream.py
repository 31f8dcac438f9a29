"""Streaming latency: time to the first partial image of a streamed generation against the time to its
completed image, through the official SDK to a live server (goal: at most 0.25)."""

from __future__ import annotations

import statistics
import time

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import PROMPT, repeats, size_for, tiny_server

PARTIALS = 3


def measure(options: BenchOptions) -> list[Ratio]:
    resolution = size_for(options)
    steps = 4 if options.quick else 20
    with tiny_server(resolution, steps, options.threads) as tiny:
        client = tiny.client()

        def streamed() -> tuple[float, float]:
            t0 = time.perf_counter()
            first = None
            for event in client.images.generate(
                model="bench", prompt=PROMPT, size="1024x1024", quality="medium", stream=True,
                partial_images=PARTIALS, extra_body={"seed": 1},
            ):  # fmt: skip
                if event.type == "image_generation.partial_image" and first is None:
                    first = time.perf_counter() - t0
            total = time.perf_counter() - t0
            return first or total, total

        streamed()  # warm-up
        runs = [streamed() for _ in range(repeats(options))]
    return [
        Ratio(
            "time to first partial",
            "streamed: completed image",
            statistics.median(total for _, total in runs),
            "streamed: first partial image",
            statistics.median(first for first, _ in runs),
            f"partial_images={PARTIALS}; tiny sd1 at {resolution} px, {steps} steps, 1024x1024",
        )
    ]
