"""Which shape a detected region is: templates drawn by the scene generator's own code, compared by IoU.

Shapes are never classified by a learnt model or by hand-written geometric rules: every shape of
:data:`~gouache.mini.scenes.vocabulary.SHAPES` is drawn at the region's centroid by
:func:`~gouache.mini.scenes.shapes.fill_shape` (or, for hatched sketch regions, by the renderer's own
:func:`~gouache.mini.scenes.rendering.draw_sketch`), over a few radii, and the best overlap wins. So a star is
scored as exactly the star the generator draws.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from functools import cache, partial

import numpy as np
from PIL import Image, ImageDraw

from gouache.mini.evaluation.analysis import (
    COLOUR_NAMES,
    COVERAGE_MIN,
    SQUARE,
    Analysis,
    Region,
    box_sum,
    dilate,
    erode,
)
from gouache.mini.scenes.rendering import draw_sketch
from gouache.mini.scenes.shapes import fill_shape
from gouache.mini.scenes.truth import ObjectTruth
from gouache.mini.scenes.vocabulary import SHAPES

SOLID_COVERAGE = 0.5  # and to its shape mask when half of it is (sketch hatching: see shape_masks)
HATCHED_GROWTH = 1.2  # closing grows a hatched (sketch) region's mask by more than this factor
SKETCH_SHRINK = 0.93  # the sketch style draws a shape at this fraction of its radius
TEMPLATE_SCALES = (0.84, 0.92, 1.0, 1.08, 1.16)  # template radii tried, as factors of the estimated one
SCALE_REFINE = (0.04, 0.02)  # then steps around the best

_TEMPLATE_SS = 4


@cache
def unit_area(shape: str) -> float:
    """Area of ``shape`` with bounding radius 1, measured on the generator's own rendering."""
    side, r = 400, 180.0
    canvas = Image.new("L", (side, side), 0)
    fill_shape(ImageDraw.Draw(canvas), shape, side / 2, side / 2, r, 255)
    return float(np.asarray(canvas, dtype=np.float32).sum() / 255.0 / (r * r))


def _template(shape: str, cx: float, cy: float, r: float, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Binary mask (at least half covered) of ``shape`` at pixel centre ``(cx, cy)`` and radius ``r``, over
    the window ``[x0, x0 + w) x [y0, y0 + h)`` of the analysis canvas."""
    ss = _TEMPLATE_SS
    canvas = Image.new("L", (w * ss, h * ss), 0)
    fill_shape(ImageDraw.Draw(canvas), shape, (cx - x0) * ss, (cy - y0) * ss, r * ss, 255)
    return np.asarray(canvas.reduce(ss), dtype=np.uint8) >= 128


def shape_masks(region: Region, analysis: Analysis, x0: int, y0: int, w: int, h: int) -> list[np.ndarray]:
    """Hypotheses of where a solid (not hatched) region's object is, as binary masks over a window of the
    analysis canvas: the pixels at least half covered by its colour, and, if other-coloured foreground hugs
    the region (within 2 pixels), the region with it: an outline drawn inside the shape's edge belongs to
    the shape."""
    solid = _coverage_window(region, x0, y0, w, h) >= SOLID_COVERAGE
    masks = [solid]
    window = _window(analysis.labels, x0, y0, w, h, -1)
    cover = _window(analysis.coverage, x0, y0, w, h, 0.0)
    other = (window >= 0) & (window != COLOUR_NAMES.index(region.colour)) & (cover >= SOLID_COVERAGE)
    hug = other & dilate(dilate(solid.astype(np.uint8))).astype(bool)
    if hug.any():
        masks.append(solid | hug)
    return masks


def _coverage_window(region: Region, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    cov = np.zeros((h, w), dtype=np.float32)
    cov[region.ys - y0, region.xs - x0] = region.coverage
    return cov


def is_hatched(cov: np.ndarray) -> bool:
    """Whether a region's coverage looks hatched (sketch style): a 3x3 closing grows its half-covered
    pixels by more than :data:`HATCHED_GROWTH`."""
    solid = int((cov >= SOLID_COVERAGE).sum())
    closed = int((erode(dilate(cov, SQUARE), SQUARE) >= SOLID_COVERAGE).sum())
    return closed > HATCHED_GROWTH * max(1, solid)


def _window(a: np.ndarray, x0: int, y0: int, w: int, h: int, fill: float) -> np.ndarray:
    """``a[y0:y0+h, x0:x0+w]``, padded with ``fill`` where the window leaves the canvas."""
    out = np.full((h, w), fill, dtype=a.dtype)
    ys0, xs0 = max(0, y0), max(0, x0)
    ys1, xs1 = min(a.shape[0], y0 + h), min(a.shape[1], x0 + w)
    if ys1 > ys0 and xs1 > xs0:
        out[ys0 - y0 : ys1 - y0, xs0 - x0 : xs1 - x0] = a[ys0:ys1, xs0:xs1]
    return out


def _sketch_template(
    shape: str, cx: float, cy: float, r: float, x0: int, y0: int, w: int, h: int, size: int
) -> np.ndarray:
    """Coverage of ``shape`` drawn by the generator's own sketch code (hatching and a doubled outline) at
    pixel centre ``(cx, cy)`` and radius ``r``, over a window of a ``size`` canvas."""
    ss = _TEMPLATE_SS
    canvas = Image.new("RGB", (w * ss, h * ss), (0, 0, 0))
    obj = ObjectTruth(shape, "white", (255, 255, 255), (cx - x0) / size, (cy - y0) / size, r / size, "", "")
    draw_sketch(canvas, obj, size * ss, random.Random(0))
    return np.asarray(canvas.reduce(ss).getchannel(0), dtype=np.float32) / 255.0


def _soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = float(np.maximum(a, b).sum())
    return float(np.minimum(a, b).sum()) / union if union else 0.0


def shape_scores(region: Region, analysis: Analysis, shapes: Iterable[str] = SHAPES) -> dict[str, float]:
    """How well ``region`` fits each shape, in [0, 1], from templates drawn by the generator's own code
    centred on the region's centroid, at :data:`TEMPLATE_SCALES` of a radius estimated from the region.

    A solid region: best intersection-over-union of one of its :func:`shape_masks` with the shape's filled
    template (a pixel inside when at least half covered, like
    :func:`~gouache.mini.scenes.shapes.object_mask`), the radius being the one at which the template's area
    equals the mask's. A hatched region (:func:`is_hatched`): soft IoU of the 3x3-averaged coverage with that
    of the shape drawn in the sketch style, the radius from the region's bounding circle."""
    size = analysis.size
    cx, cy = region.cx * size, region.cy * size
    reach = region.radius * size * 1.25 + 3
    x0 = math.floor(min(cx - reach, region.xs.min() - 1))
    y0 = math.floor(min(cy - reach, region.ys.min() - 1))
    x1 = math.ceil(max(cx + reach, region.xs.max() + 2))
    y1 = math.ceil(max(cy + reach, region.ys.max() + 2))
    w, h = x1 - x0, y1 - y0
    cov = _coverage_window(region, x0, y0, w, h)
    scores: dict[str, float] = {}
    if is_hatched(cov):
        seen = box_sum(cov[:, :, None], 1)[:, :, 0]
        closed = erode(dilate(cov, SQUARE), SQUARE) >= SOLID_COVERAGE
        ys, xs = np.nonzero(closed)  # the hatching's phase pulls the coverage centroid; the closed mask not
        cx, cy = x0 + float(xs.mean()) + 0.5, y0 + float(ys.mean()) + 0.5
        r_sketch = region.radius * size / SKETCH_SHRINK
        for shape in shapes:
            sketch_fit = partial(_sketch_fit, seen, shape, cx, cy, r_sketch, (x0, y0, w, h), size)
            scores[shape] = _best_over_scales(sketch_fit)
        return scores
    masks = shape_masks(region, analysis, x0, y0, w, h)
    for shape in shapes:
        best = 0.0
        for mask in masks:
            r0 = math.sqrt(max(int(mask.sum()), 1) / unit_area(shape))
            best = max(best, _best_over_scales(partial(_mask_fit, mask, shape, cx, cy, r0, (x0, y0, w, h))))
        scores[shape] = best
    return scores


Window = tuple[int, int, int, int]  # x0, y0, width, height on the analysis canvas


def _mask_fit(
    mask: np.ndarray, shape: str, cx: float, cy: float, r: float, window: Window, scale: float
) -> float:
    """IoU of ``mask`` with the filled template of ``shape`` at radius ``r * scale``."""
    t = _template(shape, cx, cy, r * scale, *window)
    inter = int((t & mask).sum())
    union = int(mask.sum()) + int(t.sum()) - inter
    return inter / union if union else 0.0


def _sketch_fit(
    seen: np.ndarray, shape: str, cx: float, cy: float, r: float, window: Window, size: int, scale: float
) -> float:
    """Soft IoU of the 3x3-summed coverage ``seen`` with that of ``shape`` sketched at ``r * scale``."""
    t = _sketch_template(shape, cx, cy, r * scale, *window, size)
    t[t < COVERAGE_MIN] = 0.0
    return _soft_iou(seen, box_sum(t[:, :, None], 1)[:, :, 0])


def _best_over_scales(fit: Callable[[float], float]) -> float:
    """Best ``fit(scale)`` over :data:`TEMPLATE_SCALES`, refined around the best one in finer steps."""
    values = {scale: fit(scale) for scale in TEMPLATE_SCALES}
    centre = max(values, key=lambda k: values[k])
    for step in SCALE_REFINE:
        for scale in (centre - step, centre + step):
            values[scale] = fit(scale)
        centre = max(values, key=lambda k: values[k])
    return values[centre]


def classify_shape(region: Region, analysis: Analysis) -> tuple[str, float]:
    """The shape of :data:`~gouache.mini.scenes.vocabulary.SHAPES` that fits ``region`` best, and its IoU."""
    scores = shape_scores(region, analysis)
    best = max(scores, key=lambda s: scores[s])
    return best, scores[best]
