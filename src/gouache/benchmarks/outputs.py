"""The finishing steps of issue 19, each as a ratio of the render it follows: gouache-mini (quality low) at
1024x1024 in-process through the engine's runner, a plain PNG without metadata or signing as the baseline,
against the same render with one step added (transparent background, a 9-frame GIF, an SVG, the parameters
in the file, a C2PA signature). The key-and-matte transparency of other models is timed on its own on a
1024 px keyed image. Quality figures beside the costs: the matte's alpha error on edge pixels of synthetic
scenes with exact alpha (mean absolute error, 0-255), and the SVG's PSNR against the raster it traces."""

from __future__ import annotations

import io
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import median_time, repeats, timed

SIZE = 1024
PROMPT = "a red star to the left of a blue circle"
#: The matte's test scenes (as in tests/test_outputs_formats.py): a solid disc, a 3 px line, a soft glow.
SCENES = ("solid", "line", "glow")
FOREGROUND, KEY = np.array([200.0, 30.0, 40.0]), np.array([10.0, 240.0, 20.0])


def scene_alpha(kind: str, size: int) -> np.ndarray:
    """Exact alpha (0-1) of a test scene, anti-aliased by 4x supersampling."""
    ss, u = 4, size / 256
    a = Image.new("L", (size * ss, size * ss), 0)
    d = ImageDraw.Draw(a)
    k = ss * u
    if kind == "solid":
        d.ellipse((60 * k, 60 * k, 190 * k, 190 * k), fill=255)
    elif kind == "line":
        d.line((20 * k, 30 * k, 230 * k, 200 * k), fill=255, width=round(3 * ss))
    else:
        d.ellipse((90 * k, 90 * k, 160 * k, 160 * k), fill=255)
    a = a.reduce(ss)
    if kind == "glow":
        glow = np.asarray(a.filter(ImageFilter.GaussianBlur(8 * u))) * 0.8
        a = Image.fromarray(np.maximum(np.asarray(a), glow).astype(np.uint8))
    return np.asarray(a).astype(np.float32) / 255


def keyed(alpha: np.ndarray, seed: int = 0) -> Image.Image:
    """The scene composited over the key colour, with sigma-2 noise (a render is never perfectly flat)."""
    noise = np.random.default_rng(seed).normal(0, 2, (*alpha.shape, 3))
    composite = alpha[..., None] * FOREGROUND + (1 - alpha[..., None]) * KEY + noise
    return Image.fromarray(np.clip(composite, 0, 255).astype(np.uint8))


def matte_error(kind: str, size: int) -> float:
    """Mean absolute alpha error (0-255) of the key matte on the scene's edge pixels (0 < alpha < 1)."""
    from gouache.engine.outputs.alpha import matte

    alpha = scene_alpha(kind, size)
    out = np.asarray(matte(keyed(alpha)))[..., 3].astype(np.float32)
    edge = (alpha > 0) & (alpha < 1)
    return float(np.abs(out[edge] - alpha[edge] * 255).mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def svg_psnr(svg: bytes, raster: bytes) -> float | None:
    """The SVG rendered back with resvg against the PNG it traces (None without resvg-py, a dev extra)."""
    try:
        import resvg_py
    except ModuleNotFoundError:
        return None
    back = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg.decode())))).convert("RGB")
    return psnr(np.asarray(back), np.asarray(Image.open(io.BytesIO(raster)).convert("RGB")))


def measure(options: BenchOptions) -> list[Ratio]:
    from gouache.engine.catalog import Catalog
    from gouache.engine.jobs import RenderJob
    from gouache.engine.outputs import Animation, GenerationParameters, OutputOptions, encode_raster
    from gouache.engine.outputs.alpha import matte
    from gouache.engine.outputs.provenance import sign
    from gouache.engine.outputs.vector import to_svg
    from gouache.engine.pipelines import ModelCache
    from gouache.engine.runner import Runner
    from gouache.service.provenance import load_provenance

    spec = Catalog.load().resolve("gouache-mini")
    assert spec is not None
    plan = spec.plan("low")
    size = 256 if options.quick else SIZE
    runner = Runner(ModelCache())
    base = RenderJob(spec, PROMPT, plan, size, size, (1,))
    params = GenerationParameters(
        PROMPT, "", plan.steps, plan.scheduler, plan.guidance, 1, size, size, spec.name
    )
    frames = 3 if options.quick else 9
    with tempfile.TemporaryDirectory(prefix="gouache-bench-") as tmp:
        keys = load_provenance(Path(tmp)).keys

    # 1. Steps that need the model run inside the render: that render against the plain one, interleaved.
    in_render = {
        "transparent (gouache-mini layout alpha)": replace(
            base, outputs=OutputOptions(background="transparent")
        ),
        f"GIF, {frames} frames (image-to-image chain)": replace(
            base, output_format="gif", outputs=OutputOptions(animation=Animation(frames))
        ),
    }
    runner.render(base)  # warm-up: loads the model, caches the prompt's embedding
    times: dict[str, list[float]] = {"render": [], **{name: [] for name in in_render}}
    for job in in_render.values():  # warm-up of each variant
        runner.render(job)
    for _ in range(repeats(options)):
        times["render"].append(timed(lambda: runner.render(base)))
        for name, job in in_render.items():
            times[name].append(timed(lambda job=job: runner.render(job)))  # type: ignore[misc]
    render_s = statistics.median(times["render"])
    baseline = f"gouache-mini low {size} px PNG render"
    rows = [
        Ratio(f"outputs: {name}", baseline, render_s, "the render with the step", statistics.median(t))
        for name, t in times.items()
        if name != "render"
    ]

    # 2. Steps on the finished image, each timed alone and added to the render it follows.
    png = runner.render(replace(base, seeds=(4,))).images[0].data
    image = Image.open(io.BytesIO(png)).convert("RGB")
    svg = to_svg(image)
    keyed_image = keyed(scene_alpha("solid", size))
    errors = {kind: matte_error(kind, 256) for kind in SCENES}
    quality = svg_psnr(svg, png)
    alone: dict[str, tuple[Callable[[], object], str]] = {
        "SVG (24 colours, vtracer)": (
            lambda: to_svg(image),
            f"{len(svg) / 1024:.0f} KiB; PSNR vs the raster "
            + ("n/a (no resvg-py)" if quality is None else f"{quality:.1f} dB"),
        ),
        "parameters in the file (PNG chunks)": (
            lambda: encode_raster(image, "png", 100, params),
            "PNG encode",
        ),
        "C2PA signing (ES256, no thumbnail)": (
            lambda: sign(png, "png", keys, spec.name),
            f"+{(len(sign(png, 'png', keys, spec.name)) - len(png)) / 1024:.1f} KiB",
        ),
        "key-and-matte (other models)": (
            lambda: matte(keyed_image),
            "alpha MAE on edge pixels (0-255): " + ", ".join(f"{k} {e:.1f}" for k, e in errors.items()),
        ),
    }
    plain_png_s = median_time(lambda: encode_raster(image, "png", 100, None), options)
    for name, (step, detail) in alone.items():
        step_s = median_time(step, options)
        if name.startswith("parameters"):  # the chunks are written while encoding: the difference is theirs
            step_s = max(0.0, step_s - plain_png_s)
        rows.append(
            Ratio(
                f"outputs: {name}",
                baseline,
                render_s,
                "the render + the step alone",
                render_s + step_s,
                f"step {step_s * 1000:.0f} ms; {detail}",
            )
        )
    return rows
