"""Streaming latency: time to the first partial image divided by the time to the completed image, for a
streamed generation through the official SDK to a live server (goal <= 0.25), against a non-streamed request
of the same model, size, steps and seed measured in the same run.

    .venv/bin/python bench/stream.py [--family sd1] [--size 1024x1024] [--steps 20] [--partials 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openai import OpenAI  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tests.live import start_server  # noqa: E402

from gouache.engine.tiny import build_tiny_pipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="sd1")
    parser.add_argument("--size", default="1024x1024")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--partials", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_tiny_pipeline(args.family, root / "model")
        catalog = root / "catalog.toml"
        catalog.write_text(
            f'[models.bench]\npath = "{model_dir}"\nresolution = {max(width, height) // 2}\n'
            f'[models.bench.plans.medium]\nsteps = {args.steps}\nguidance = 5.0\nscheduler = "dpm++"\n'
        )
        server = start_server(
            root / "data", {"GOUACHE_CATALOG_FILE": str(catalog), "GOUACHE_DEFAULT_MODEL": "bench"}
        )
        client = OpenAI(base_url=server.base_url, api_key="bench", max_retries=0, timeout=600)
        body = {"model": "bench", "prompt": "a red circle", "size": args.size, "quality": "medium"}

        def streamed() -> tuple[float, float, int]:
            t0 = time.perf_counter()
            first = None
            partials = 0
            for event in client.images.generate(**body, stream=True, partial_images=args.partials,
                                                extra_body={"seed": 1}):  # fmt: skip
                if event.type == "image_generation.partial_image":
                    partials += 1
                    first = first or time.perf_counter() - t0
            total = time.perf_counter() - t0
            return first or total, total, partials

        def plain() -> float:
            t0 = time.perf_counter()
            client.images.generate(**body, extra_body={"seed": 1})
            return time.perf_counter() - t0

        try:
            streamed()
            plain()  # warm-up
            firsts, totals, plains, counts = [], [], [], []
            for _ in range(args.repeats):
                first, total, count = streamed()
                firsts.append(first)
                totals.append(total)
                counts.append(count)
                plains.append(plain())
        finally:
            server.stop()
    first, total, base = (statistics.median(x) for x in (firsts, totals, plains))
    console.print(
        f"tiny {args.family}, {args.size}, {args.steps} steps, partial_images={args.partials} "
        f"(got {min(counts)}), median of {args.repeats}"
    )
    table = Table("measurement", "seconds", "ratio")
    table.add_row("non-streamed request (baseline)", f"{base:.3f}", "1.000")
    table.add_row("streamed: completed image", f"{total:.3f}", f"{total / base:.3f} of baseline")
    table.add_row("streamed: first partial image", f"{first:.3f}", f"{first / total:.3f} of streamed total")
    console.print(table)


if __name__ == "__main__":
    main()
