"""The caches, on one live server. Result cache: a request with an explicit seed rendered (`"cache": false`,
a miss) against the same request served from the store (a hit). Prompt-embedding cache: a request whose
prompt is new (its text encoder runs) against one whose prompt was seen (its embedding is reused)."""

from __future__ import annotations

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import PROMPT, fresh_prompts, median_time, size_for, tiny_server


def measure(options: BenchOptions) -> list[Ratio]:
    resolution = size_for(options)
    steps = 2 if options.quick else 10
    with tiny_server(resolution, steps, options.threads) as tiny:
        client = tiny.client()

        def request(cache: bool) -> None:
            client.images.generate(
                model="bench", prompt=PROMPT, size="1024x1024", quality="low",
                extra_body={"seed": 7, "cache": cache},
            )  # fmt: skip

        miss_s = median_time(lambda: request(False), options)
        request(True)  # stores the cached answer
        hit_s = median_time(lambda: request(True), options)
        prompts = fresh_prompts("a new prompt")

        def prompt(text: str) -> None:
            client.images.generate(
                model="bench", prompt=text, size="1024x1024", quality="low",
                extra_body={"seed": 7, "cache": False},
            )  # fmt: skip

        new_s = median_time(lambda: prompt(next(prompts)), options)
        seen_s = median_time(lambda: prompt(PROMPT), options)
    return [
        Ratio(
            "prompt-embedding cache",
            "new prompt (text encoder runs)",
            new_s,
            "repeated prompt (cached embedding)",
            seen_s,
            f"tiny sd1 (a small text encoder: gains grow with the encoder) at {resolution} px",
        ),
        Ratio(
            "result cache",
            "miss (rendered)",
            miss_s,
            "hit (served from the store)",
            hit_s,
            f"x{miss_s / hit_s:.1f} faster; tiny sd1 at {resolution} px, {steps} steps, 1024x1024 PNG",
        ),
    ]
