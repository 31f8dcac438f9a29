"""gouache-mini's caption reading time: reading a caption into a scene request (it runs on every request, and
again when the image is finished, for ``revised_prompt`` and the shades), against laying that request out and
turning it into grounding tokens, timed in the same run over the paraphrase set's prompts. Reading is pure
Python (no MiniLM call unless a word is unknown), so it should stay a small share of the layout."""

from __future__ import annotations

import random
import time

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import repeats


def measure(options: BenchOptions) -> list[Ratio]:
    from gouache.mini.evaluation.paraphrase import paraphrase_scenes
    from gouache.mini.grounding import scene_tokens
    from gouache.mini.reading import read_caption
    from gouache.mini.scenes.request import layout_scene

    captions = [s.caption for s in paraphrase_scenes(100 if options.quick else 400)]
    requests = [read_caption(c) for c in captions]  # warm caches (typo lookups) before timing
    read_s, layout_s = [], []
    for _ in range(repeats(options)):
        t0 = time.perf_counter()
        requests = [read_caption(c) for c in captions]
        t1 = time.perf_counter()
        for i, request in enumerate(requests):
            scene_tokens(layout_scene(request, random.Random(i)))
        t2 = time.perf_counter()
        read_s.append((t1 - t0) / len(captions))
        layout_s.append((t2 - t1) / len(captions))
    read, layout = min(read_s), min(layout_s)
    return [
        Ratio(
            "mini caption reading time",
            "layout + grounding tokens",
            layout,
            "read_caption",
            read,
            f"{read * 1e3:.2f} ms per caption ({len(captions)} paraphrased prompts)",
        )
    ]
