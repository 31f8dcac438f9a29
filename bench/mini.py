"""gouache-mini speed: wall time per quality tier for a 1024x1024 PNG, served by Gouache through the official
SDK, against the raw diffusers pipeline on the same weights in the same run.

    .venv/bin/python bench/mini.py [--size 1024x1024] [--repeats 5] [--threads 2]

The raw baseline is what a user would write by hand: ``DiffusionPipeline.from_pretrained`` on the shipped
folder, the tier's steps and guidance at the model's 64 px working resolution, a Lanczos resize to the size
and a PNG encode. Gouache does the same denoising, then its ``flat`` upscaler (crisp edges) and the PNG, plus
HTTP, validation, the queue and the database record. Calls are interleaved (raw, served, raw, served...) and
the median is reported. Goals (issue 4): ``low`` under 1 s, ``high`` under 5 s. Run it alone.
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
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tests.live import start_server  # noqa: E402

import gouache.mini.pipeline  # noqa: E402,F401  (registers the custom component classes with diffusers)
from gouache.engine.catalog import Catalog  # noqa: E402
from gouache.engine.geometry import working_size  # noqa: E402
from gouache.engine.pipelines import LoadedModel  # noqa: E402

PROMPT = "a red star to the left of a blue circle"
GOALS = {"low": 1.0, "high": 5.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(args.threads)
    console = Console()
    spec = Catalog.load().resolve("gouache-mini")
    assert spec is not None
    pipe = DiffusionPipeline.from_pretrained(str(spec.path), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    loaded = LoadedModel(spec, pipe)
    work_w, work_h = working_size(width, height, spec.resolution, spec.multiple)

    def raw(quality: str) -> float:
        plan = spec.plan(quality)
        loaded.use_scheduler(plan.scheduler)
        t0 = time.perf_counter()
        with torch.inference_mode():
            image = pipe(
                PROMPT, width=work_w, height=work_h, num_inference_steps=plan.steps,
                guidance_scale=plan.guidance, generator=torch.Generator("cpu").manual_seed(1),
            ).images[0]  # fmt: skip
        image = image.resize((width, height), Image.Resampling.LANCZOS)
        image.save(io.BytesIO(), format="PNG", compress_level=6)
        return time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "data", {"GOUACHE_TORCH_THREADS": str(args.threads)})
        client = OpenAI(base_url=server.base_url, api_key="bench", max_retries=0, timeout=600)

        def served(quality: str) -> float:
            t0 = time.perf_counter()
            client.images.generate(
                model="gpt-image-2", prompt=PROMPT, size=args.size, quality=quality,  # type: ignore[arg-type]
                extra_body={"seed": 1},
            )  # fmt: skip
            return time.perf_counter() - t0

        rows = []
        try:
            for quality in spec.qualities:
                raw(quality)
                served(quality)  # warm-up
                raw_s, served_s = [], []
                for _ in range(args.repeats):
                    raw_s.append(raw(quality))
                    served_s.append(served(quality))
                rows.append(
                    (quality, spec.plan(quality).steps, statistics.median(raw_s), statistics.median(served_s))
                )
        finally:
            server.stop()

    console.print(
        f"Machine: {platform.processor() or platform.machine()}, {args.threads} torch threads, torch "
        f"{torch.__version__}; gouache-mini, {args.size} PNG (rendered at {work_w}x{work_h}), "
        f"median of {args.repeats}"
    )
    table = Table("quality", "steps", "raw pipeline s", "Gouache via SDK s", "ratio", "goal")
    for quality, steps, raw_med, served_med in rows:
        goal = GOALS.get(quality)
        verdict = "" if goal is None else f"< {goal:.0f} s: {'met' if served_med < goal else 'missed'}"
        table.add_row(
            quality, str(steps), f"{raw_med:.3f}", f"{served_med:.3f}", f"{served_med / raw_med:.2f}", verdict
        )
    console.print(table)


if __name__ == "__main__":
    main()
