"""The shapes of gouache-mini's scenes: unit geometry, and how Pillow fills or outlines one.

Unit shapes are inscribed in the unit circle with their area centroid at the origin, so a truth's centre and
radius say exactly where a shape is. The renderer, :func:`object_mask` (where an object is, from its truth
alone) and the evaluator's shape templates all draw through :func:`fill_shape`, so a star is the same star
everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw

from gouache.mini.scenes.truth import ObjectTruth
from gouache.mini.scenes.vocabulary import RGB, RING_INNER, SIGN

# ----------------------------------------------------------------------------------------------------------
# Shape geometry (unit shapes inscribed in the unit circle; area centroid at the origin)
# ----------------------------------------------------------------------------------------------------------


def _regular(n: int, start_deg: float, radii: Sequence[float] = (1.0,)) -> tuple[tuple[float, float], ...]:
    pts = []
    for i in range(n * len(radii)):
        a = math.radians(start_deg + i * 360 / (n * len(radii)))
        r = radii[i % len(radii)]
        pts.append((r * math.cos(a), r * math.sin(a)))
    return tuple(pts)


def _heart() -> tuple[tuple[float, float], ...]:
    raw = []
    for i in range(48):
        t = 2 * math.pi * i / 48
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        raw.append((x, y))
    # shoelace area centroid, so the truth centre is the centre of mass of the drawn heart
    a = cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(raw, raw[1:] + raw[:1], strict=True):
        c = x0 * y1 - x1 * y0
        a += c
        cx += (x0 + x1) * c
        cy += (y0 + y1) * c
    cx, cy = cx / (3 * a), cy / (3 * a)
    shifted = [(x - cx, y - cy) for x, y in raw]
    m = max(math.hypot(x, y) for x, y in shifted)
    return tuple((x / m, y / m) for x, y in shifted)


def _cross(w: float = 0.32) -> tuple[tuple[float, float], ...]:
    h = math.sqrt(1 - w * w) - 0.005
    return (
        (-w, -h), (w, -h), (w, -w), (h, -w), (h, w), (w, w),
        (w, h), (-w, h), (-w, w), (-h, w), (-h, -w), (-w, -w),
    )  # fmt: skip


_SQ = 0.705
_UNIT_POLYGONS: dict[str, tuple[tuple[float, float], ...]] = {
    "square": ((-_SQ, -_SQ), (_SQ, -_SQ), (_SQ, _SQ), (-_SQ, _SQ)),
    "triangle": _regular(3, -90),
    "star": _regular(5, -90, (1.0, 0.47)),
    "heart": _heart(),
    "hexagon": _regular(6, 0),
    "cross": _cross(),
    "diamond": ((0.0, -1.0), (0.72, 0.0), (0.0, 1.0), (-0.72, 0.0)),
    "pentagon": _regular(5, -90),
}
_UNIT_CIRCLE = _regular(28, 0)


def shape_points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    unit = _UNIT_CIRCLE if shape in ("circle", "ring") else _UNIT_POLYGONS[shape]
    return [(cx + x * r, cy + y * r) for x, y in unit]


def fill_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: int | RGB
) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "ring":
        width = max(1, round(r * (1 - RING_INNER)))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=width)
    else:
        draw.polygon(shape_points(shape, cx, cy, r), fill=fill)


def outline_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, colour: RGB, w: int
) -> None:
    if shape in ("circle", "ring"):
        if shape == "ring":  # outer edge only, thin: most of the narrow band keeps the fill colour
            w = max(1, min(w, round(r * (1 - RING_INNER) * 0.2)))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=w)
    else:
        draw.polygon(shape_points(shape, cx, cy, r), outline=colour, width=w)


def object_mask(truth_obj: ObjectTruth, size: int) -> Image.Image:
    """Binary mask (mode ``"L"``, 0 or 255) of where the object's shape is on a ``size`` x ``size`` canvas,
    computed from the truth alone (a pixel is in the mask when at least half of it is covered)."""
    ss = 4
    canvas = Image.new("L", (size * ss, size * ss), 0)
    draw = ImageDraw.Draw(canvas)
    scale = size * ss
    if truth_obj.shape == SIGN and truth_obj.box is not None:
        x0, y0, x1, y1 = (v * scale for v in truth_obj.box)
        draw.rounded_rectangle((x0, y0, x1, y1), radius=(y1 - y0) * 0.2, fill=255)
    else:
        fill_shape(
            draw, truth_obj.shape, truth_obj.cx * scale, truth_obj.cy * scale, truth_obj.radius * scale, 255
        )
    return canvas.reduce(ss).point(lambda v: 255 if v >= 128 else 0)
