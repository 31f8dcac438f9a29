"""Server overhead: the same model, size, steps and seed, timed as a raw diffusers pipeline call and as a
request through the official SDK to a live Gouache server, interleaved in one run. Prints a table of ratios.

    .venv/bin/python bench/overhead.py [--family sd1] [--size 1024x1024] [--steps 10] [--repeats 3]

The model is a tiny random pipeline built from configs (no download), rendered at its working resolution equal
to the requested size, so neither side resizes. Run it alone: two cores are easily disturbed.
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from diffusers import DiffusionPipeline  # noqa: E402
from openai import OpenAI  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tests.live import start_server  # noqa: E402

from gouache.engine.catalog import spec_for_directory  # noqa: E402
from gouache.engine.pipelines import LoadedModel  # noqa: E402
from gouache.engine.tiny import build_tiny_pipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="sd1")
    parser.add_argument("--size", default="1024x1024")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(args.threads)
    console = Console()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_tiny_pipeline(args.family, root / "model")
        catalog = root / "catalog.toml"
        catalog.write_text(
            f'[models.bench]\npath = "{model_dir}"\nresolution = {max(width, height)}\n'
            f'[models.bench.plans.low]\nsteps = {args.steps}\nguidance = 5.0\nscheduler = "dpm++"\n'
        )
        pipe = DiffusionPipeline.from_pretrained(str(model_dir), torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        # the same scheduler swap the server does
        LoadedModel(spec_for_directory(model_dir), pipe).use_scheduler("dpm++")
        server = start_server(
            root / "data",
            {"GOUACHE_CATALOG_FILE": str(catalog), "GOUACHE_DEFAULT_MODEL": "bench",
             "GOUACHE_TORCH_THREADS": str(args.threads)},
        )  # fmt: skip
        client = OpenAI(base_url=server.base_url, api_key="bench", max_retries=0, timeout=600)

        def raw() -> tuple[float, float]:
            t0 = time.perf_counter()
            with torch.inference_mode():
                image = pipe(
                    "a red circle", width=width, height=height, num_inference_steps=args.steps,
                    guidance_scale=5.0, generator=torch.Generator("cpu").manual_seed(1),
                ).images[0]  # fmt: skip
            t1 = time.perf_counter()
            image.save(io.BytesIO(), format="PNG", compress_level=6)
            return t1 - t0, time.perf_counter() - t0

        def served() -> float:
            t0 = time.perf_counter()
            client.images.generate(
                model="bench", prompt="a red circle", size=args.size, quality="low", extra_body={"seed": 1}
            )
            return time.perf_counter() - t0

        try:
            raw()
            served()  # warm-up both sides
            raw_call, raw_png, server_times = [], [], []
            for _ in range(args.repeats):
                call, with_png = raw()
                raw_call.append(call)
                raw_png.append(with_png)
                server_times.append(served())
        finally:
            server.stop()

    med_call, med_png, med_server = (statistics.median(x) for x in (raw_call, raw_png, server_times))
    console.print(
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}; model: tiny {args.family}; {args.size}, {args.steps} steps, "
        f"median of {args.repeats}"
    )
    table = Table("measurement", "seconds", "ratio to raw call")
    table.add_row("raw diffusers pipeline call", f"{med_call:.3f}", "1.000")
    table.add_row("raw call + PNG encode", f"{med_png:.3f}", f"{med_png / med_call:.3f}")
    table.add_row("Gouache server via openai SDK", f"{med_server:.3f}", f"{med_server / med_call:.3f}")
    console.print(table)
    console.print(f"server / (raw + PNG encode) = {med_server / med_png:.3f}")


if __name__ == "__main__":
    main()
