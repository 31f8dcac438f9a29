"""gouache-mini speed: wall time per quality tier for a 1024x1024 PNG served by Gouache through the official
SDK, against the raw diffusers pipeline on the same weights in the same run (the tier's steps and guidance at
the model's working resolution, a Lanczos resize and a PNG encode). Calls are interleaved; goals (issue 4):
``low`` under 1 s, ``high`` under 5 s."""

from __future__ import annotations

import functools
import io
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import fresh_prompts, repeats, timed
from gouache.benchmarks.live import start_server

PROMPT = "a red star to the left of a blue circle"
#: A scene with concepts and a setting (issue 22): timed served, against the shape scene served in the run.
CONCEPT_PROMPT = "a red fox in the snow"
GOALS = {"low": 1.0, "high": 5.0}
SIZE = 1024


def measure(options: BenchOptions) -> list[Ratio]:
    from diffusers import DiffusionPipeline
    from openai import OpenAI

    import gouache.mini.pipeline  # noqa: F401  (registers the custom component classes with diffusers)
    from gouache.engine.catalog import Catalog
    from gouache.engine.geometry import working_size
    from gouache.engine.pipelines import LoadedModel

    spec = Catalog.load().resolve("gouache-mini")
    assert spec is not None
    pipe = DiffusionPipeline.from_pretrained(str(spec.path), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    loaded = LoadedModel(spec, pipe)
    work_w, work_h = working_size(SIZE, SIZE, spec.resolution, spec.multiple)
    raw_prompts, served_prompts = fresh_prompts(PROMPT), fresh_prompts(PROMPT)
    concept_prompts = fresh_prompts(CONCEPT_PROMPT)

    def raw(quality: str) -> None:
        plan = spec.plan(quality)
        loaded.use_scheduler(plan.scheduler)
        with torch.inference_mode():
            image = pipe(
                next(raw_prompts), width=work_w, height=work_h, num_inference_steps=plan.steps,
                guidance_scale=plan.guidance, generator=torch.Generator("cpu").manual_seed(1),
            ).images[0]  # fmt: skip
        image = image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
        image.save(io.BytesIO(), format="PNG")

    qualities = ["low"] if options.quick else list(spec.qualities)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gouache-bench-") as tmp:
        # The server on PyTorch, like the raw baseline: this row is the server's own cost; the backend row
        # compares OpenVINO with PyTorch.
        env = {"GOUACHE_LOG_LEVEL": "warning", "GOUACHE_BACKEND": "pytorch"}
        if options.threads:
            env["GOUACHE_TORCH_THREADS"] = str(options.threads)
        server = start_server(Path(tmp) / "data", env)
        client = OpenAI(base_url=server.base_url, api_key="bench", max_retries=0, timeout=600)

        def served(quality: str, prompts: Iterator[str] = served_prompts) -> None:
            client.images.generate(  # type: ignore[call-overload]
                model="gpt-image-2", prompt=next(prompts), size=f"{SIZE}x{SIZE}", quality=quality,
                extra_body={"seed": 1, "cache": False},
            )  # fmt: skip

        try:
            for quality in qualities:
                raw(quality)
                served(quality)  # warm-up
                served(quality, concept_prompts)
                raw_s, served_s, concept_s = [], [], []
                for _ in range(repeats(options)):
                    raw_s.append(timed(functools.partial(raw, quality)))
                    served_s.append(timed(functools.partial(served, quality)))
                    concept_s.append(timed(functools.partial(served, quality, concept_prompts)))
                medians = statistics.median(raw_s), statistics.median(served_s), statistics.median(concept_s)
                rows.append((quality, *medians))
        finally:
            server.stop()
    out = []
    for quality, raw_med, served_med, concept_med in rows:
        goal = GOALS.get(quality)
        verdict = "" if goal is None else f"; goal < {goal:.0f} s {'met' if served_med < goal else 'missed'}"
        out.append(
            Ratio(
                f"gouache-mini {quality}",
                "raw diffusers + resize + PNG",
                raw_med,
                "Gouache via openai SDK",
                served_med,
                f"{spec.plan(quality).steps} steps at {work_w}x{work_h}, {SIZE}x{SIZE} PNG{verdict}",
            )
        )
        met = "" if goal is None else f"; goal < {goal:.0f} s {'met' if concept_med < goal else 'missed'}"
        out.append(
            Ratio(
                f"gouache-mini {quality}, concept scene",
                f"served {PROMPT!r}",
                served_med,
                f"served {CONCEPT_PROMPT!r}",
                concept_med,
                f"the backdrop field and the fox's drawing at {SIZE}x{SIZE} (issue 22){met}",
            )
        )
    return out
