"""SVG output: the raster traced into vector paths with `vtracer` (MIT).

The image is reduced to :data:`COLOURS` flat colours first (median cut, no dithering): flat artwork keeps
its shapes, and a photo-like image becomes a poster of a few thousand paths instead of 20 MB of speckle. A
transparent image keeps its transparent areas empty (vtracer skips fully transparent pixels)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

COLOURS = 24
#: Patches smaller than this many pixels (squared side) are dropped as speckle.
SPECKLE = 4


def to_svg(image: Image.Image) -> bytes:
    """The SVG file (UTF-8) of a raster image (RGB or RGBA), its size kept. vtracer is imported here: a
    server asked for no SVG never loads it."""
    import vtracer

    rgba = image.convert("RGBA")
    reduced = rgba.convert("RGB").quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT).convert("RGB")
    pixels = np.dstack([np.asarray(reduced), np.asarray(rgba)[..., 3]])
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buf, format="PNG", compress_level=1)
    svg = vtracer.convert_raw_image_to_svg(
        buf.getvalue(),
        img_format="png",
        colormode="color",
        hierarchical="stacked",
        mode="spline",
        filter_speckle=SPECKLE,
        color_precision=8,
        layer_difference=8,
        path_precision=2,
    )
    return str(svg).encode("utf-8")
