"""The finish stage's upscalers: `flat` gives crisp, anti-aliased, halo-free edges; gradients stay smooth."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from gouache.engine.catalog import Catalog, CatalogError, spec_from_entry
from gouache.engine.upscale import upscale

RED = (220, 30, 40)
WHITE = (250, 250, 250)


def circle(size: int = 64) -> Image.Image:
    """A red disc on white, anti-aliased the way the scene generator draws (4x supersampled)."""
    big = Image.new("RGB", (size * 4, size * 4), WHITE)
    ImageDraw.Draw(big).ellipse((size, size, size * 3, size * 3), fill=RED)
    return big.resize((size, size), Image.Resampling.BOX)


def ramp_width(row: np.ndarray) -> int:
    """Pixels over which the red channel's left edge of the disc goes from 10 % to 90 % of its fall."""
    red = row[:, 1].astype(np.float64)  # green: 250 outside, 30 inside
    hi, lo = red.max(), red.min()
    left = red[: len(red) // 2]
    start = int(np.argmax(left < hi - 0.1 * (hi - lo)))
    end = int(np.argmax(left < hi - 0.9 * (hi - lo)))
    return end - start


def test_flat_edges_are_crisp_where_lanczos_blurs() -> None:
    source = circle()
    flat = np.asarray(upscale(source, 1024, 1024, "flat"))
    smooth = np.asarray(upscale(source, 1024, 1024, "lanczos"))
    assert ramp_width(flat[512]) <= 3
    assert ramp_width(smooth[512]) >= 10
    # The disc keeps its place and size: its left edge within 2 px of the true one (at 256).
    assert abs(int(np.argmax(flat[512, :, 1] < 140)) - 256) <= 2


def test_flat_adds_no_halo_and_keeps_flat_areas() -> None:
    source = circle()
    flat = np.asarray(upscale(source, 1024, 1024, "flat")).astype(int)
    src = np.asarray(source).astype(int)
    for channel in range(3):
        assert flat[..., channel].min() >= src[..., channel].min() - 1
        assert flat[..., channel].max() <= src[..., channel].max() + 1
    assert tuple(flat[512, 512]) == RED and tuple(flat[10, 10]) == WHITE


def test_flat_keeps_gradients_smooth_and_exact_sizes() -> None:
    gradient = Image.fromarray(np.tile(np.linspace(40, 200, 64).astype(np.uint8), (64, 1)), "L").convert(
        "RGB"
    )
    out = upscale(gradient, 1536, 864, "flat")
    assert out.size == (1536, 864)
    steps = np.abs(np.diff(np.asarray(out)[400, :, 0].astype(int)))
    assert steps.max() <= 2  # no posterised bands
    assert upscale(circle(), 3840, 2160, "flat").size == (3840, 2160)
    assert upscale(circle(), 32, 32, "flat").size == (32, 32)  # reductions: plain resample
    rgba = circle().convert("RGBA")
    assert upscale(rgba, 256, 256, "flat").mode == "RGBA"


def star(size: int, scale: int) -> Image.Image:
    """A five-pointed red star on white (radius a tenth of the canvas: a small object of gouache-mini's
    scenes), drawn at ``size * scale`` px and box-filtered down by ``scale``."""
    big = size * 4 * scale
    c, outer = big / 2, big / 10
    points = [
        (c + (outer if i % 2 == 0 else outer * 0.4) * np.sin(i * np.pi / 5),
         c - (outer if i % 2 == 0 else outer * 0.4) * np.cos(i * np.pi / 5))
        for i in range(10)
    ]  # fmt: skip
    image = Image.new("RGB", (big, big), WHITE)
    ImageDraw.Draw(image).polygon(points, fill=RED)
    return image.resize((size * scale, size * scale), Image.Resampling.BOX)


def test_flat_sharpens_soft_edges_and_keeps_the_painted_shape() -> None:
    # A small star with edges two pixels soft, as a small diffusion model paints them.
    soft = star(64, 1).filter(ImageFilter.GaussianBlur(0.6))
    flat = np.asarray(upscale(soft, 1024, 1024, "flat"))[..., 1].astype(int)  # green: 250 out, 30 in
    # Crisp: few output pixels are between the two colours (a soft edge would leave thousands).
    between = np.count_nonzero((flat > 60) & (flat < 220))
    smooth = np.asarray(upscale(soft, 1024, 1024, "lanczos"))[..., 1].astype(int)
    assert between < 0.2 * np.count_nonzero((smooth > 60) & (smooth < 220))
    # The shape is the true star's: high overlap (Lanczos's 0.5 contour: 0.88; snapping the source pixels to
    # the nearer colour, the first design: 0.82), and each of the five points is there.
    truth = np.asarray(star(64, 16))[..., 1] < 140
    inside = flat < 140
    assert np.count_nonzero(inside & truth) / np.count_nonzero(inside | truth) > 0.85
    for i in range(5):
        tip_y = 512 - 0.85 * (1024 / 10) * np.cos(2 * i * np.pi / 5)
        tip_x = 512 + 0.85 * (1024 / 10) * np.sin(2 * i * np.pi / 5)
        assert inside[int(tip_y), int(tip_x)], f"point {i} of the star is lost"


def test_flat_does_not_grow_a_speck_into_a_blotch() -> None:
    source = np.full((64, 64, 3), 200, dtype=np.uint8)
    source[30, 30] = (40, 40, 200)
    out = np.asarray(upscale(Image.fromarray(source), 1024, 1024, "flat")).astype(int)
    bluish = np.count_nonzero(out[..., 2] - out[..., 0] > 80)
    assert bluish <= 16 * 16  # at most the one source pixel's footprint


def test_catalog_upscaler_setting() -> None:
    mini = Catalog.load().resolve("gouache-mini")
    assert mini is not None and mini.upscaler == "flat"
    with pytest.raises(CatalogError, match="upscaler must be one of"):
        spec_from_entry(
            "x", {"path": "builtin:gouache-mini", "upscaler": "magic"}, base=None, source="test.toml"
        )
    with pytest.raises(ValueError, match="unknown upscaler"):
        upscale(circle(), 128, 128, "magic")
