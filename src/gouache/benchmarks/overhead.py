"""Server overhead: the same model, size, steps and seed as a raw diffusers pipeline call (plus the resize to
the output size and a PNG encode, what a user would write by hand) and as a request through the official
SDK to a live Gouache server, interleaved in one run."""

from __future__ import annotations

import io
import statistics

import torch
from PIL import Image

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import fresh_prompts, repeats, size_for, timed, tiny_server

SIZE = 1024


def measure(options: BenchOptions) -> list[Ratio]:
    from diffusers import DiffusionPipeline

    from gouache.engine import devices
    from gouache.engine.catalog import spec_for_directory
    from gouache.engine.pipelines import LoadedModel
    from gouache.settings import Settings

    resolution = size_for(options)
    steps = 2 if options.quick else 10
    # The raw baseline runs where the server does (GOUACHE_DEVICE / GOUACHE_DTYPE; the CPU in float32 by
    # default), so that the row compares the server with the same work, not two devices.
    settings = Settings()
    device = devices.resolve_device(settings.device, devices.probe())
    dtype = devices.resolve_dtype(settings.dtype, device)
    with tiny_server(resolution, steps, options.threads) as tiny:
        pipe = DiffusionPipeline.from_pretrained(str(tiny.model_dir), torch_dtype=dtype).to(device)
        pipe.set_progress_bar_config(disable=True)
        LoadedModel(spec_for_directory(tiny.model_dir), pipe).use_scheduler("dpm++")
        client = tiny.client()
        raw_prompts, served_prompts = fresh_prompts(), fresh_prompts()

        def raw() -> None:
            with torch.inference_mode():
                image = pipe(
                    next(raw_prompts), width=resolution, height=resolution, num_inference_steps=steps,
                    guidance_scale=5.0, generator=torch.Generator("cpu").manual_seed(1),
                ).images[0]  # fmt: skip
            image = image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
            image.save(io.BytesIO(), format="PNG")

        def served() -> None:
            client.images.generate(
                model="bench", prompt=next(served_prompts), size=f"{SIZE}x{SIZE}", quality="low",
                extra_body={"seed": 1, "cache": False},
            )  # fmt: skip

        raw()
        served()  # warm-up both sides
        raw_s, served_s = [], []
        for _ in range(repeats(options)):
            raw_s.append(timed(raw))
            served_s.append(timed(served))
    return [
        Ratio(
            "server overhead",
            "raw diffusers call + resize + PNG",
            statistics.median(raw_s),
            "Gouache via openai SDK",
            statistics.median(served_s),
            f"tiny sd1 at {resolution} px, {steps} steps, {SIZE}x{SIZE} PNG, {device} "
            f"{devices.dtype_name(dtype)}",
        )
    ]
