"""Dtypes and memory strategies: the same tiny model rendered through the engine in float32 and in bfloat16
on the CPU (time, and how close the pictures are as PSNR; float16 on CUDA too where there is a GPU), and VAE
tiling: a 3840x2160 decode tiled against a 2048x2048 one untiled (time, and each decode's peak memory).

Peak memory is the process's resident-set high-water mark above its size just before the decode, each decode
in a fresh child process (`tracemalloc` does not see torch's allocations, and a process's high-water mark
never goes down). The tiles are SD 1.x's (512 px, 64 latent px) on the tiny random VAE."""

from __future__ import annotations

import functools
import io
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import repeats, size_for, timed

_DECODE = """
import json, resource, sys, time
import torch
from diffusers import AutoencoderKL

vae = AutoencoderKL.from_pretrained(sys.argv[1]).eval()
vae.tile_sample_min_size, vae.tile_latent_min_size = 512, 64  # SD 1.x's tiles
width, height, tiled = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
vae.enable_tiling() if tiled else vae.disable_tiling()
noise = torch.Generator().manual_seed(0)
latent = torch.randn(1, vae.config.latent_channels, height // 8, width // 8, generator=noise)
page = resource.getpagesize()
before = int(open("/proc/self/statm").read().split()[1]) * page
t0 = time.perf_counter()
with torch.inference_mode():
    vae.decode(latent)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak_bytes": max(0, peak - before)}))
"""


def measure(options: BenchOptions) -> list[Ratio]:
    from gouache.engine.tiny import build_tiny_pipeline

    with tempfile.TemporaryDirectory(prefix="gouache-bench-devices-") as tmp:
        model_dir = build_tiny_pipeline("sd1", Path(tmp) / "model")
        rows = [_dtype_row(options, model_dir, "cpu", "bfloat16")]
        if torch.cuda.is_available():
            rows.append(_dtype_row(options, model_dir, "cuda", "float16"))
        rows.append(_tiling_row(options, model_dir))
    return rows


def _dtype_row(options: BenchOptions, model_dir: Path, device: str, dtype: str) -> Ratio:
    """One engine render per dtype, interleaved; the pictures compared as PSNR (the same seed)."""
    from gouache.engine.catalog import SamplingPlan, spec_from_entry
    from gouache.engine.jobs import RenderJob
    from gouache.engine.pipelines import ModelCache
    from gouache.engine.runner import Runner

    size = size_for(options)
    steps = 2 if options.quick else 10
    entry = {"path": str(model_dir), "resolution": size}
    spec = spec_from_entry("bench", entry, base=None, source="bench")
    job = RenderJob(spec, "a red circle", SamplingPlan(steps, 5.0, "dpm++"), size, size, (1,))
    runners = {d: Runner(ModelCache(device=device, dtype=d)) for d in ("float32", dtype)}
    images = {d: runner.render(job).images[0].data for d, runner in runners.items()}  # warm-up
    times: dict[str, list[float]] = {d: [] for d in runners}
    for _ in range(repeats(options)):
        for d, runner in runners.items():
            times[d].append(timed(functools.partial(runner.render, job)))
    psnr = _psnr(images["float32"], images[dtype])
    return Ratio(
        f"{dtype} on {device}",
        "float32",
        statistics.median(times["float32"]),
        dtype,
        statistics.median(times[dtype]),
        f"tiny sd1 at {size} px, {steps} steps; PSNR {psnr:.1f} dB against float32",
    )


def _tiling_row(options: BenchOptions, model_dir: Path) -> Ratio:
    """A 3840x2160 decode tiled against a 2048x2048 one untiled (and, for scale, 3840x2160 untiled)."""
    small = options.quick
    big = (960, 544) if small else (3840, 2160)
    square = (512, 512) if small else (2048, 2048)
    untiled_square = _decode(model_dir, *square, tiled=False)
    tiled_big = _decode(model_dir, *big, tiled=True)
    untiled_big = _decode(model_dir, *big, tiled=False)

    def mb(run: dict[str, float]) -> str:
        return f"{run['peak_bytes'] / 2**20:,.0f} MB"

    return Ratio(
        "vae tiling",
        f"{square[0]}x{square[1]} untiled",
        untiled_square["seconds"],
        f"{big[0]}x{big[1]} tiled",
        tiled_big["seconds"],
        f"peak memory {mb(untiled_square)} untiled vs {mb(tiled_big)} tiled "
        f"({big[0]}x{big[1]} untiled: {mb(untiled_big)}); tiny VAE, SD 1.x tiles, CPU",
    )


def _decode(model_dir: Path, width: int, height: int, *, tiled: bool) -> dict[str, float]:
    args = [sys.executable, "-c", _DECODE, str(model_dir / "vae"), str(width), str(height), str(int(tiled))]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=1800)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _psnr(a: bytes, b: bytes) -> float:
    x, y = (np.asarray(Image.open(io.BytesIO(d)).convert("RGB"), dtype=np.float64) for d in (a, b))
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))
