"""Optimised backend (OpenVINO UNet) against raw PyTorch: the same pipeline, weights, seed and steps.

Rows:

* ``sd1-arch 512x512, 20 steps``: a Stable Diffusion 1.x pipeline built from configs (the SD1 UNet's blocks --
  three cross-attention down blocks, two layers each, 8 heads, 768-wide cross-attention -- at a quarter of
  SD 1.5's channels, 64/128/256/256; a small CLIP text encoder and VAE, since the UNet is the backend's
  part), text-to-image with classifier-free guidance. Wall time per image after a warm-up (conversion and
  compilation are timed separately and reported in ``detail``), with the PSNR of OpenVINO's image against
  PyTorch's and whether the same seed gave the same bytes.
* ``gouache-mini 1024x1024 high``: the default model through the engine's runner, each backend in its own
  process, with the process's resident memory idle (model loaded, after a warm-up render) and at its peak.

``quick`` renders 128x128 in 2 steps (gouache-mini: 64x64 ``low``), once: a smoke run, not figures.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gouache.benchmarks import BenchOptions, Ratio

PROMPT = "a red star to the left of a blue circle"
SEED = 1234


def measure(options: BenchOptions) -> list[Ratio]:
    return [_sd1_arch(options), _mini(options)]


# ---------------------------------------------------------------------------------------------------------
# SD1-architecture pipeline, in process
# ---------------------------------------------------------------------------------------------------------


def build_sd1_arch(seed: int = 0) -> Any:
    """An SD 1.x pipeline with SD1's UNet layout at a quarter of its channels (random weights)."""
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from gouache.engine import tiny

    with torch.random.fork_rng(devices=[]):
        base = tiny._sd1(seed)
        torch.manual_seed(seed)
        unet: Any = UNet2DConditionModel(
            sample_size=64,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            block_out_channels=(64, 128, 256, 256),
            layers_per_block=2,
            norm_num_groups=32,
            cross_attention_dim=768,
            attention_head_dim=8,
        )
        unet.eval()
        config = CLIPTextConfig(
            **{**base.text_encoder.config.to_dict(), "hidden_size": 768, "projection_dim": 768}
        )
        text_encoder = CLIPTextModel(config).eval()
    pipe: Any = StableDiffusionPipeline(
        vae=base.vae,
        text_encoder=text_encoder,
        tokenizer=base.tokenizer,
        unet=unet,
        scheduler=DPMSolverMultistepScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _render(pipe: Any, size: int, steps: int) -> tuple[Any, float]:
    import numpy as np
    import torch

    generator = torch.Generator("cpu").manual_seed(SEED)
    start = time.perf_counter()
    with torch.inference_mode():
        out = pipe(
            prompt=PROMPT,
            width=size,
            height=size,
            num_inference_steps=steps,
            guidance_scale=7.0,
            generator=generator,
            output_type="np",
        )
    elapsed = time.perf_counter() - start
    return np.asarray(np.round(out.images[0] * 255), dtype=np.uint8), elapsed


def psnr(a: Any, b: Any) -> float:
    import numpy as np

    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _sd1_arch(options: BenchOptions) -> Ratio:
    import torch

    from gouache.engine.backend import BackendOptions, apply_backend, backend_of

    threads = options.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    size, steps = (128, 2) if options.quick else (512, 20)
    repeats = 1 if options.quick else max(1, options.repeats)
    pipe = build_sd1_arch()
    reference, _ = _render(pipe, size, steps)  # warm-up
    baseline = statistics.median(_render(pipe, size, steps)[1] for _ in range(repeats))
    with tempfile.TemporaryDirectory(prefix="gouache-bench-ov-") as cache:
        apply_backend(
            pipe,
            BackendOptions("openvino", threads=threads, cache_dir=Path(cache)),
            override=None,
            key="sd1-arch",
        )
        first, warmup_s = _render(pipe, size, steps)
        if backend_of(pipe) != "openvino":
            raise RuntimeError("OpenVINO could not run the SD1-architecture UNet (see the log)")
        runs = [_render(pipe, size, steps) for _ in range(repeats)]
    candidate = statistics.median(elapsed for _, elapsed in runs)
    same = all(image.tobytes() == first.tobytes() for image, _ in runs)
    detail = (
        f"SD1-arch UNet at 1/4 channels, {size}x{size}, {steps} steps, CFG, {threads} threads; "
        f"PSNR {psnr(first, reference):.1f} dB vs PyTorch; same seed same bytes: {'yes' if same else 'NO'}; "
        f"first run (convert + compile) {warmup_s:.1f} s"
    )
    return Ratio(f"sd1-arch {size}x{size}, {steps} steps", "pytorch", baseline, "openvino", candidate, detail)


# ---------------------------------------------------------------------------------------------------------
# gouache-mini through the runner, one process per backend (for honest memory figures)
# ---------------------------------------------------------------------------------------------------------


def _mini(options: BenchOptions) -> Ratio:
    repeats = 1 if options.quick else max(1, options.repeats)
    size = 64 if options.quick else 1024
    quality = "low" if options.quick else "high"
    with tempfile.TemporaryDirectory(prefix="gouache-bench-ov-") as cache:
        results = {
            backend: _child(backend, size, quality, repeats, options.threads, Path(cache))
            for backend in ("pytorch", "openvino")
        }
    base, cand = results["pytorch"], results["openvino"]
    detail = (
        f"RSS idle {base['idle_mb']:.0f} -> {cand['idle_mb']:.0f} MB, peak {base['peak_mb']:.0f} -> "
        f"{cand['peak_mb']:.0f} MB (pytorch -> openvino, model loaded and warmed up); "
        f"PSNR {cand['psnr'] if 'psnr' in cand else float('nan'):.1f} dB; backend in use: {cand['backend']}"
    )
    return Ratio(
        f"gouache-mini {size}x{size} {quality}",
        "pytorch",
        base["seconds"],
        "openvino",
        cand["seconds"],
        detail,
    )


def _child(backend: str, size: int, quality: str, repeats: int, threads: int | None, cache: Path) -> dict:
    args = [sys.executable, "-m", "gouache.benchmarks.backend", backend, str(size), quality, str(repeats)]
    args += [str(threads or 0), str(cache)]
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"the {backend} run failed: {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_main(backend: str, size: str, quality: str, repeats: str, threads: str, cache: str) -> None:
    import io

    import numpy as np
    import torch
    from PIL import Image

    from gouache.engine.backend import BackendOptions, backend_of
    from gouache.engine.catalog import Catalog
    from gouache.engine.jobs import RenderJob
    from gouache.engine.pipelines import ModelCache
    from gouache.engine.runner import Runner

    n_threads = int(threads) or torch.get_num_threads()
    torch.set_num_threads(n_threads)
    spec = Catalog.load().resolve("gouache-mini")
    assert spec is not None
    cache_options = BackendOptions(backend, threads=n_threads, cache_dir=Path(cache))
    runner = Runner(ModelCache(backend=cache_options))
    side = int(size)
    job = RenderJob(spec, PROMPT, spec.plan(quality), side, side, (SEED,))

    first = runner.render(job)  # warm-up: OpenVINO converts and compiles here
    idle = _rss_mb()
    times = []
    for _ in range(int(repeats)):
        start = time.perf_counter()
        result = runner.render(job)
        times.append(time.perf_counter() - start)
    pixels = np.asarray(Image.open(io.BytesIO(result.images[0].data)).convert("RGB"))
    reference_path = Path(cache) / "pytorch.npy"
    report: dict[str, Any] = {
        "seconds": statistics.median(times),
        "idle_mb": idle,
        "peak_mb": _peak_mb(),
        "backend": backend_of(runner.cache.get(spec).pipeline),
        "same_bytes": first.images[0].data == result.images[0].data,
    }
    if backend == "pytorch":
        np.save(reference_path, pixels)
    elif reference_path.is_file():
        report["psnr"] = psnr(pixels, np.load(reference_path))
    print(json.dumps(report))


if __name__ == "__main__":
    _child_main(*sys.argv[1:])
