"""The exact evaluator of gouache-mini: generated images scored against the ground truth of held-out scenes.

No model acts as judge. Every prompt is the (paraphrased) caption of a procedurally generated scene
(:mod:`gouache.mini.scenes`) whose truth is known exactly; the generated image is analysed with plain image
processing and compared with that truth, for what the caption mentions only.

Held-out scenes
---------------
:func:`held_out_scenes` draws scene ``i`` of an evaluation run with seed ``seed`` from generator seed
``HELD_OUT_BASE + seed * HELD_OUT_STRIDE + i`` (``10**9 + seed * 10**6 + i``), with ``paraphrase=True``
captions (held-out wording, :data:`gouache.mini.scenes.PARAPHRASE_LEADS`). **Contract with the trainer:
training draws generator seeds below** :data:`HELD_OUT_BASE` **(10**9) and never at or above it**, so no
evaluation scene (same layout, colours, words) is ever a training image. Kinds are cycled through ``kinds``
so every kind gets the same share.

Image analysis (never uses the truth's positions)
-------------------------------------------------
The model may draw an object anywhere, so detection works from the image alone:

1. The image is brought to the scene size (area averaging) as float RGB.
2. **Background**: the pixels of a 2-pixel border are clustered greedily (mode of coarsely quantised
   colours, then the median of the pixels near it, repeated while a tenth of the border is unexplained).
   The background model is every mix of two of those colours (gradients, two-tone, textures) and every
   such colour darkened by up to a quarter (soft shadows).
3. **Unmixing**: each pixel is explained as ``(1 - a) * background + a * C`` for each named colour ``C`` of
   :data:`~gouache.mini.scenes.COLOURS` (colours within :data:`BACKGROUND_EXCLUSION` of the background are
   not candidates: scenes never draw objects that close to the background). The cost of an explanation is
   its RGB residual plus :data:`PURITY_PREFERENCE` times ``2 * min(a, 1 - a)``, so a pure colour beats an
   equally good mix (gray is not "half black on white"). Explanations within :data:`AMBIGUITY_SLACK` of
   the best are decided by the confident (``a >= CONFIDENT_COVERAGE``) pixels in the 5x5 neighbourhood.
   Anti-aliased edges and sketch hatching thus keep their true colour name instead of a blend's. A pixel is
   *foreground of colour C* when ``a >= COVERAGE_MIN`` and the residual is at most :data:`RESIDUAL_MAX`.
4. **Regions**: 4-connected components of equal colour (a breadth-first flood fill; no scipy), less specks
   smaller than :data:`SPECK_AREA` pixels at 64 px (scaled with the area); centroids are coverage-weighted.

Metrics (each trial is a yes/no; accuracy = correct / trials)
-------------------------------------------------------------
* ``colour`` (one trial per mentioned object; a count group is one trial; a sign when the caption names its
  colour): a region of the object's colour exists that is at least :data:`MIN_AREA_FRACTION` of the
  object's expected area (from its truth radius, not its position); in ``single`` scenes it must also be the
  largest foreground region, not counting its own outline (:func:`outlines`).
* ``shape`` (per object with a shape): the object's region (its colour's largest; the best shape fit when
  objects share a colour; in single scenes the largest foreground region if none has its colour) is
  classified by :func:`shape_scores`: templates of every shape of :data:`~gouache.mini.scenes.SHAPES`
  drawn by the generator's own drawing code at the region's centroid, over :data:`TEMPLATE_SCALES` (refined
  by :data:`SCALE_REFINE`) of an estimated radius; best intersection-over-union with the region's mask
  (or with the mask plus an outline hugging it), and for hatched regions (sketch style, :func:`is_hatched`)
  soft IoU of 3x3-averaged coverage against the shape drawn by the generator's sketch code. In a count
  scene the shape is right when at least half the colour's regions classify as it.
* ``relation``: the centroids of the two named objects' regions satisfy the relation with a tolerant margin
  (:data:`RELATION_TOLERANT_MARGIN` along the axis, off-axis at most :data:`RELATION_TOLERANT_RATIO` times
  that; "next to" also needs the gap between the regions' bounding circles to be at most
  :data:`NEXT_TO_TOLERANT_GAP`). A sign is found as its colour's largest region when the caption names
  that colour, else as the largest region of any other colour than the companion's.
* ``count``: the number of regions of the named colour (each at least :data:`COUNT_MIN_SHARE` of the
  largest one and of a plausible size) equals the count.
* ``position`` (single scenes that name one): the region's centroid lies in the named 3x3 cell.
* ``text``: OCR (``rapidocr-onnxruntime``: ONNX weights shipped inside the package, nothing downloaded) of
  the image resized to :data:`OCR_SIZE` px (:func:`read_text`); exact when a read line, or all lines
  joined, equals the word (case-insensitive, letters and digits only, the digit 0 read as O).
  ``text_cer`` is the mean character error rate (edit distance / word length, capped at 1).
* ``determinism``: the first :data:`DETERMINISM_CHECKS` prompts are generated a second time with the same
  seed; identical pixels count as correct.

Not scored: size, background, style and text colour (the caption may mention them; the report leaves them
out).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import random
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from gouache.mini.scenes.generator import generate_scene
from gouache.mini.scenes.rendering import draw_sketch
from gouache.mini.scenes.shapes import fill_shape
from gouache.mini.scenes.truth import ObjectTruth, Scene, position_name
from gouache.mini.scenes.vocabulary import COLOUR_WORDS, COLOURS, KINDS, SHAPES, SIGN

if TYPE_CHECKING:
    from rich.table import Table

    from gouache.settings import Settings

HELD_OUT_BASE = 10**9  # trainers draw generator seeds below this; evaluation draws at or above it
HELD_OUT_STRIDE = 10**6  # scenes per evaluation seed
EVAL_SIZE = 64  # analysis size: gouache-mini's working resolution
OCR_SIZE = 256  # images are resized to this for OCR

BACKGROUND_EXCLUSION = 60.0  # named colours this close (RGB) to a background colour are not foreground
COVERAGE_MIN = 0.25  # a pixel belongs to an object's region when this much of it is the object's colour
SOLID_COVERAGE = 0.5  # and to its shape mask when half of it is (sketch hatching: see shape_masks)
HATCHED_GROWTH = 1.2  # closing grows a hatched (sketch) region's mask by more than this factor
SKETCH_SHRINK = 0.93  # the sketch style draws a shape at this fraction of its radius
RESIDUAL_MAX = 48.0  # RGB distance a pixel may be from its best background/colour mix
PURITY_PREFERENCE = (
    20.0  # RGB units a half-and-half mix pays: pure explanations win ties (gray vs white/black)
)
CONFIDENT_COVERAGE = 0.7  # pixels this pure vote for their colour among their neighbours
AMBIGUITY_SLACK = 15.0  # explanations this close in cost to the best are decided by the neighbours' vote
SPECK_AREA = 6  # regions smaller than this many pixels (at 64 px) are dropped
OUTLINE_SHARE = 0.8  # a region this much within 2 px of another is that one's outline
MIN_AREA_FRACTION = 0.25  # a detected object covers at least this share of its expected area
COUNT_MIN_SHARE = 0.25  # for counting, a region is at least this share of its colour's largest region
SHADOW_DARKEN = (1.0, 0.92, 0.84, 0.76)  # soft shadows darken the background to about 0.75
RELATION_TOLERANT_MARGIN = 0.05
RELATION_TOLERANT_RATIO = 1.0
NEXT_TO_TOLERANT_GAP = 0.2
TEMPLATE_SCALES = (0.84, 0.92, 1.0, 1.08, 1.16)  # template radii tried, as factors of the estimated one
SCALE_REFINE = (0.04, 0.02)  # then steps around the best
DETERMINISM_CHECKS = 3
METRICS = ("colour", "shape", "relation", "count", "position", "text", "determinism")

_NAMES: tuple[str, ...] = tuple(COLOURS)
_PALETTE = np.array([COLOURS[n] for n in _NAMES], dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------
# Held-out scenes
# ----------------------------------------------------------------------------------------------------------


def held_out_seed(index: int, seed: int = 0) -> int:
    """Generator seed of scene ``index`` of the evaluation run ``seed`` (always >= :data:`HELD_OUT_BASE`)."""
    if not 0 <= index < HELD_OUT_STRIDE:
        raise ValueError(f"index must be in [0, {HELD_OUT_STRIDE})")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    return HELD_OUT_BASE + seed * HELD_OUT_STRIDE + index


def held_out_scenes(
    n: int, seed: int = 0, kinds: Sequence[str] | None = None, size: int = EVAL_SIZE
) -> list[Scene]:
    """``n`` evaluation scenes with paraphrased captions, cycling through ``kinds`` (default all
    :data:`~gouache.mini.scenes.KINDS`). Seeds follow :func:`held_out_seed`; trainers never draw them."""
    chosen = tuple(kinds or KINDS)
    for kind in chosen:
        if kind not in KINDS:
            raise ValueError(f"unknown scene kind {kind!r}; expected one of {KINDS}")
    return [
        generate_scene(held_out_seed(i, seed), size, chosen[i % len(chosen)], paraphrase=True)
        for i in range(n)
    ]


# ----------------------------------------------------------------------------------------------------------
# Image analysis
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """A connected region of one named colour. Coordinates in canvas units (x right, y down)."""

    colour: str
    area: int  # pixels
    cx: float
    cy: float
    radius: float  # bounding-circle radius around the centroid
    ys: np.ndarray = field(repr=False)
    xs: np.ndarray = field(repr=False)
    coverage: np.ndarray = field(repr=False)  # mix fraction of the colour at each pixel


@dataclass
class Analysis:
    """What an image shows: background colours, per-pixel colour labels and the regions."""

    size: int
    background: np.ndarray  # (k, 3) background cluster colours
    labels: np.ndarray  # (size, size) colour index into the names of COLOURS, -1 for background/unknown
    coverage: np.ndarray  # (size, size) mix fraction of the label's colour
    regions: list[Region]  # largest first

    def of_colour(self, colour: str) -> list[Region]:
        return [r for r in self.regions if r.colour == colour]

    @property
    def largest(self) -> Region | None:
        return self.regions[0] if self.regions else None


def _to_array(image: Image.Image, size: int) -> np.ndarray:
    img = image.convert("RGB")
    if img.size != (size, size):
        resample = Image.Resampling.BOX if img.width >= size else Image.Resampling.BILINEAR
        img = img.resize((size, size), resample)
    return np.asarray(img, dtype=np.float32)


def estimate_background(arr: np.ndarray, border: int = 2) -> np.ndarray:
    """Colour clusters of the image border, most common first: ``(k, 3)`` with ``1 <= k <= 3``."""
    edge = np.concatenate(
        [
            arr[:border].reshape(-1, 3),
            arr[-border:].reshape(-1, 3),
            arr[border:-border, :border].reshape(-1, 3),
            arr[border:-border, -border:].reshape(-1, 3),
        ]
    )
    total = len(edge)
    centres: list[np.ndarray] = []
    remaining = edge
    while len(remaining) > 0.1 * total and len(centres) < 3:
        q = (remaining // 24).astype(np.int32)
        keys = q[:, 0] * 4096 + q[:, 1] * 64 + q[:, 2]
        values, counts = np.unique(keys, return_counts=True)
        mode = values[np.argmax(counts)]
        seed_colour = (np.array([mode // 4096, (mode // 64) % 64, mode % 64]) + 0.5) * 24
        near = remaining[np.linalg.norm(remaining - seed_colour, axis=1) < 30]
        centre = np.median(near, axis=0) if len(near) else seed_colour
        centres.append(centre.astype(np.float32))
        remaining = remaining[np.linalg.norm(remaining - centre, axis=1) >= 30]
    return np.stack(centres)


def _background_anchors(centres: np.ndarray) -> np.ndarray:
    """Points of the background model: the centres, mixes of two centres, all darkened like a shadow."""
    points = [c for c in centres]
    for i in range(len(centres)):
        for j in range(i + 1, len(centres)):
            points += [centres[i] + t * (centres[j] - centres[i]) for t in (0.25, 0.5, 0.75)]
    return np.stack([p * t for p in points for t in SHADOW_DARKEN]).astype(np.float32)


def _box_sum(x: np.ndarray, r: int) -> np.ndarray:
    """Sum over the (2r+1) x (2r+1) neighbourhood of each pixel of an (H, W, C) array."""
    p = np.pad(x, ((r, r), (r, r), (0, 0)))
    h, w = x.shape[:2]
    out = np.zeros_like(x)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out += p[dy : dy + h, dx : dx + w]
    return out


def _components(labels: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """4-connected components of equal non-negative label: ``(label, ys, xs)`` per component."""
    h, w = labels.shape
    seen = np.zeros((h, w), dtype=bool)
    seen[labels < 0] = True
    flat = labels.tolist()
    seen_l = seen.tolist()
    out = []
    for y0, x0 in zip(*np.nonzero(~seen), strict=True):
        if seen_l[y0][x0]:
            continue
        lab = flat[y0][x0]
        seen_l[y0][x0] = True
        queue = deque([(int(y0), int(x0))])
        ys: list[int] = []
        xs: list[int] = []
        while queue:
            y, x = queue.popleft()
            ys.append(y)
            xs.append(x)
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and not seen_l[ny][nx] and flat[ny][nx] == lab:
                    seen_l[ny][nx] = True
                    queue.append((ny, nx))
        out.append((lab, np.array(ys), np.array(xs)))
    return out


def analyse(image: Image.Image, size: int = EVAL_SIZE) -> Analysis:
    """Segment ``image`` (any size; brought to ``size`` x ``size``) into named-colour regions."""
    arr = _to_array(image, size)
    centres = estimate_background(arr)
    anchors = _background_anchors(centres)  # (A, 3)
    dist_bg = np.linalg.norm(_PALETTE[None, :, :] - centres[:, None, :], axis=2).min(axis=0)
    candidates = np.nonzero(dist_bg >= BACKGROUND_EXCLUSION)[0]
    pixels = arr.reshape(-1, 3)
    labels = np.full(len(pixels), -1, dtype=np.int32)
    coverage = np.zeros(len(pixels), dtype=np.float32)
    if len(candidates):
        colours = _PALETTE[candidates]  # (K, 3)
        v = colours[None, :, :] - anchors[:, None, :]  # (A, K, 3)
        vv = np.maximum((v * v).sum(axis=2), 1e-6)  # (A, K)
        d = pixels[:, None, :] - anchors[None, :, :]  # (N, A, 3)
        dd = (d * d).sum(axis=2)  # (N, A)
        dv = np.einsum("nad,akd->nak", d, v)  # (N, A, K)
        a = np.clip(dv / vv[None], 0.0, 1.0)
        res2 = dd[:, :, None] - 2 * a * dv + a * a * vv[None]
        res = np.sqrt(np.maximum(res2, 0.0))
        cost = res + PURITY_PREFERENCE * 2.0 * np.minimum(a, 1.0 - a)
        anchor = cost.argmin(axis=1)[:, None, :]  # best background anchor per colour: (N, 1, K)
        cost_k = np.take_along_axis(cost, anchor, 1)[:, 0]  # (N, K)
        a_k = np.take_along_axis(a, anchor, 1)[:, 0]
        res_k = np.take_along_axis(res, anchor, 1)[:, 0]
        rows = np.arange(len(pixels))
        first = cost_k.argmin(axis=1)
        best_cost = cost_k[rows, first]
        # Ambiguous pixels (a light mix of gray looks like a lighter mix of black) take the colour that the
        # confidently coloured pixels around them have.
        confident = (a_k[rows, first] >= CONFIDENT_COVERAGE) & (res_k[rows, first] <= RESIDUAL_MAX)
        votes = np.zeros((len(pixels), len(candidates)), dtype=np.float32)
        votes[rows[confident], first[confident]] = 1.0
        support = _box_sum(votes.reshape(size, size, -1), 2).reshape(len(pixels), -1)
        eligible = cost_k <= best_cost[:, None] + AMBIGUITY_SLACK
        choice = np.where(eligible, support * 1000.0 - cost_k, -np.inf).argmax(axis=1)
        best_a, best_res = a_k[rows, choice], res_k[rows, choice]
        fg = (best_a >= COVERAGE_MIN) & (best_res <= RESIDUAL_MAX)
        labels[fg] = candidates[choice[fg]]
        coverage[fg] = best_a[fg]
    labels_2d = labels.reshape(size, size)
    coverage_2d = coverage.reshape(size, size)
    min_area = max(2, round(SPECK_AREA * (size / 64) ** 2))
    regions = []
    for lab, ys, xs in _components(labels_2d):
        if len(ys) < min_area:
            continue
        cov = coverage_2d[ys, xs]
        cx = float(((xs + 0.5) * cov).sum() / cov.sum()) / size  # coverage-weighted centroid
        cy = float(((ys + 0.5) * cov).sum() / cov.sum()) / size
        far = float((((xs + 0.5) / size - cx) ** 2 + ((ys + 0.5) / size - cy) ** 2).max())
        radius = math.sqrt(far) + 0.5 / size
        regions.append(Region(_NAMES[lab], len(ys), cx, cy, radius, ys, xs, cov))
    regions.sort(key=lambda r: -r.area)
    return Analysis(size, centres, labels_2d, coverage_2d, regions)


# ----------------------------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------------------------

_TEMPLATE_SS = 4


@cache
def _unit_area(shape: str) -> float:
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


_PLUS = ((0, 1), (1, 0), (1, 1), (1, 2), (2, 1))  # offsets of a 3x3 plus-shaped structuring element
_SQUARE = tuple((dy, dx) for dy in range(3) for dx in range(3))


def _dilate(m: np.ndarray, element: Sequence[tuple[int, int]] = _PLUS) -> np.ndarray:
    p = np.pad(m, 1, constant_values=0)
    h, w = m.shape
    return np.max([p[dy : dy + h, dx : dx + w] for dy, dx in element], axis=0)


def _erode(m: np.ndarray, element: Sequence[tuple[int, int]] = _PLUS) -> np.ndarray:
    p = np.pad(m, 1, mode="edge")
    h, w = m.shape
    return np.min([p[dy : dy + h, dx : dx + w] for dy, dx in element], axis=0)


def shape_masks(region: Region, analysis: Analysis, x0: int, y0: int, w: int, h: int) -> list[np.ndarray]:
    """Hypotheses of where a solid (not hatched) region's object is, as binary masks over a window of the
    analysis canvas: the pixels at least half covered by its colour, and, if other-coloured foreground hugs
    the region (within 2 pixels), the region with it: an outline drawn inside the shape's edge belongs to
    the shape."""
    solid = _coverage_window(region, x0, y0, w, h) >= SOLID_COVERAGE
    masks = [solid]
    window = _window(analysis.labels, x0, y0, w, h, -1)
    cover = _window(analysis.coverage, x0, y0, w, h, 0.0)
    other = (window >= 0) & (window != _NAMES.index(region.colour)) & (cover >= SOLID_COVERAGE)
    hug = other & _dilate(_dilate(solid.astype(np.uint8))).astype(bool)
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
    closed = int((_erode(_dilate(cov, _SQUARE), _SQUARE) >= SOLID_COVERAGE).sum())
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
    template (a pixel inside when at least half covered, like :func:`~gouache.mini.scenes.object_mask`),
    the radius being the one at which the template's area equals the mask's. A hatched region
    (:func:`is_hatched`): soft IoU of the 3x3-averaged coverage with that of the shape drawn in the sketch
    style, the radius from the region's bounding circle."""
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
        seen = _box_sum(cov[:, :, None], 1)[:, :, 0]
        closed = _erode(_dilate(cov, _SQUARE), _SQUARE) >= SOLID_COVERAGE
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
            r0 = math.sqrt(max(int(mask.sum()), 1) / _unit_area(shape))
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
    return _soft_iou(seen, _box_sum(t[:, :, None], 1)[:, :, 0])


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
    """The shape of :data:`~gouache.mini.scenes.SHAPES` that fits ``region`` best, and its IoU."""
    scores = shape_scores(region, analysis)
    best = max(scores, key=lambda s: scores[s])
    return best, scores[best]


# ----------------------------------------------------------------------------------------------------------
# OCR
# ----------------------------------------------------------------------------------------------------------

_OCR_LOCK = threading.Lock()
_OCR_ENGINE: Any = None


def ocr_engine() -> Any:
    """The shared RapidOCR engine (loaded once; its ONNX weights ship inside the package, nothing is
    downloaded)."""
    global _OCR_ENGINE
    with _OCR_LOCK:
        if _OCR_ENGINE is None:
            from rapidocr_onnxruntime import RapidOCR

            _OCR_ENGINE = RapidOCR()
        return _OCR_ENGINE


def read_text(image: Image.Image, analysis: Analysis | None = None) -> list[str]:
    """Text lines OCR reads in ``image`` (resized to :data:`OCR_SIZE`), top to bottom.

    The detector misses a lone letter that fills the picture, so when it finds nothing the picture is
    retried on a larger canvas of its border colour and then, given the ``analysis`` of the image, the
    recogniser alone reads the box around all foreground and the box around the largest region."""
    img = image.convert("RGB")
    if img.size != (OCR_SIZE, OCR_SIZE):
        img = img.resize((OCR_SIZE, OCR_SIZE), Image.Resampling.LANCZOS)
    engine = ocr_engine()
    result, _ = engine(img)
    if not result:
        border = tuple(int(v) for v in np.median(np.asarray(img)[[0, -1]].reshape(-1, 3), axis=0))
        result, _ = engine(ImageOps.expand(img, border=OCR_SIZE // 2, fill=border))
    if result:
        lines = sorted(result, key=lambda r: (min(p[1] for p in r[0]), min(p[0] for p in r[0])))
        return [str(line[1]) for line in lines]
    if analysis is None or not analysis.regions:
        return []
    scale = OCR_SIZE / analysis.size
    ys, xs = np.nonzero(analysis.labels >= 0)
    boxes = [(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)]
    largest = analysis.regions[0]
    boxes.append((largest.xs.min(), largest.ys.min(), largest.xs.max() + 1, largest.ys.max() + 1))
    lines = []
    for x0, y0, x1, y1 in boxes:
        margin = 2
        crop = img.crop(
            (
                max(0, round((x0 - margin) * scale)),
                max(0, round((y0 - margin) * scale)),
                min(OCR_SIZE, round((x1 + margin) * scale)),
                min(OCR_SIZE, round((y1 + margin) * scale)),
            )
        )
        found, _ = engine(crop, use_det=False, use_cls=False)
        lines += [str(line[0]) for line in found or [] if line[0].strip()]
    return lines


def _normalise(text: str) -> str:
    """Upper case, letters and digits only; the digit 0 reads as the letter O (the words have no digits and
    several fonts draw the two alike)."""
    return re.sub(r"[^A-Z0-9]", "", text.upper()).replace("0", "O")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def text_match(lines: Sequence[str], word: str) -> tuple[bool, float, str]:
    """Whether OCR ``lines`` read ``word`` exactly (one line or all joined), the best character error rate
    and the best-matching reading."""
    target = _normalise(word)
    candidates = [_normalise(line) for line in lines] + [_normalise("".join(lines))]
    candidates = [c for c in candidates if c] or [""]
    best = min(candidates, key=lambda c: edit_distance(c, target))
    cer = min(1.0, edit_distance(best, target) / max(1, len(target)))
    return best == target, cer, best


# ----------------------------------------------------------------------------------------------------------
# Scoring one scene
# ----------------------------------------------------------------------------------------------------------


def _expected_area(obj: ObjectTruth, size: int) -> float:
    if obj.shape == SIGN and obj.box is not None:
        x0, y0, x1, y1 = obj.box
        return (x1 - x0) * (y1 - y0) * size * size * 0.6  # the word covers part of the plate
    return _unit_area(obj.shape) * (obj.radius * size) ** 2


def outlines(outer: Region, inner: Region, size: int) -> bool:
    """Whether ``outer`` is an outline of ``inner``: at least :data:`OUTLINE_SHARE` of its pixels lie within
    2 pixels of ``inner``'s."""
    near = np.zeros((size, size), dtype=np.uint8)
    near[inner.ys, inner.xs] = 1
    near = _dilate(_dilate(near, _SQUARE), _SQUARE).astype(bool)
    return float(near[outer.ys, outer.xs].mean()) >= OUTLINE_SHARE


def is_dominant(region: Region, analysis: Analysis) -> bool:
    """Whether ``region`` is the largest foreground region, not counting its own outline."""
    return all(
        other is region or other.area <= region.area or outlines(other, region, analysis.size)
        for other in analysis.regions
    )


def _relation_holds(a: Region, relation: str, b: Region) -> bool:
    """Tolerant version of :func:`gouache.mini.scenes.relation_holds` on detected regions."""
    m, ratio = RELATION_TOLERANT_MARGIN, RELATION_TOLERANT_RATIO
    dx, dy = b.cx - a.cx, b.cy - a.cy
    if relation == "left of":
        return dx >= m and abs(dy) <= ratio * dx
    if relation == "right of":
        return -dx >= m and abs(dy) <= ratio * -dx
    if relation == "above":
        return dy >= m and abs(dx) <= ratio * dy
    if relation == "below":
        return -dy >= m and abs(dx) <= ratio * -dy
    if relation == "next to":
        gap = math.hypot(dx, dy) - a.radius - b.radius
        return abs(dx) >= m and abs(dy) <= ratio * abs(dx) and gap <= NEXT_TO_TOLERANT_GAP
    raise ValueError(f"unknown relation {relation!r}")


def _mentions_colour(caption: str, colour: str) -> bool:
    text = caption.lower()
    return any(re.search(rf"\b{re.escape(w)}\b", text) for w in COLOUR_WORDS[colour])


@dataclass
class SceneResult:
    """The verdicts for one scene: metric -> list of trial outcomes, plus what was detected."""

    index: int
    seed: int
    kind: str
    prompt: str
    trials: dict[str, list[bool]] = field(default_factory=dict)
    text_cer: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, metric: str, ok: bool) -> None:
        self.trials.setdefault(metric, []).append(bool(ok))


class _Matcher:
    """Finds the region of each truth object by its colour (and, among regions of one colour, its shape)."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.used: set[int] = set()
        self._scores: dict[int, dict[str, float]] = {}

    def scores(self, region: Region) -> dict[str, float]:
        key = id(region)
        if key not in self._scores:
            self._scores[key] = shape_scores(region, self.analysis)
        return self._scores[key]

    def is_used(self, region: Region) -> bool:
        return id(region) in self.used

    def find(self, obj: ObjectTruth, min_area: float, by_shape: bool = False) -> Region | None:
        """The largest unused region of ``obj``'s colour or, with ``by_shape`` (other objects share the
        colour), the one that fits its shape best."""
        pool = [r for r in self.analysis.of_colour(obj.colour) if not self.is_used(r) and r.area >= min_area]
        if not pool:
            return None
        chosen = pool[0]
        if by_shape and len(pool) > 1:
            chosen = max(pool, key=lambda r: (self.scores(r)[obj.shape], r.area))
        self.used.add(id(chosen))
        return chosen

    def shape_of(self, region: Region) -> str:
        scores = self.scores(region)
        return max(scores, key=lambda s: scores[s])


def score_scene(scene: Scene, image: Image.Image, index: int = 0, seed: int = 0) -> SceneResult:
    """Score ``image`` (generated from ``scene.caption``, any size) against ``scene``'s truth, for what the
    caption mentions only. The image is analysed at the scene's size."""
    truth = scene.truth
    analysis = analyse(image, scene.image.width)
    result = SceneResult(index, seed, truth.kind, scene.caption)
    result.details["regions"] = [
        {"colour": r.colour, "area": r.area, "cx": round(r.cx, 3), "cy": round(r.cy, 3)}
        for r in analysis.regions[:8]
    ]
    if truth.kind == "count" and truth.count is not None:
        _score_count(scene, analysis, result)
    else:
        _score_objects(scene, analysis, result)
    if "word" in scene.mentioned and truth.text is not None:
        lines = read_text(image, analysis)
        exact, cer, reading = text_match(lines, truth.text.word)
        result.add("text", exact)
        result.text_cer = cer
        result.details["ocr"] = {"lines": lines, "reading": reading}
    return result


def _min_area(obj: ObjectTruth, size: int) -> float:
    """The smallest region that counts as a detection of ``obj``."""
    return max(SPECK_AREA * (size / 64) ** 2, MIN_AREA_FRACTION * _expected_area(obj, size))


def _score_count(scene: Scene, analysis: Analysis, result: SceneResult) -> None:
    """Count scenes: the objects are alike, so they are one colour trial and one shape trial."""
    truth, mentioned, size = scene.truth, scene.mentioned, analysis.size
    count = truth.count or 0
    obj = truth.objects[0]
    regions = [r for r in analysis.of_colour(obj.colour) if r.area >= _min_area(obj, size)]
    if regions:
        regions = [r for r in regions if r.area >= COUNT_MIN_SHARE * regions[0].area]
    shapes = [classify_shape(r, analysis)[0] for r in regions[: max(count, 1)]]
    result.details["count"] = {"found": len(regions), "shapes": shapes}
    if "colour" in mentioned:
        result.add("colour", bool(regions))
    if "shape" in mentioned:
        result.add("shape", bool(shapes) and 2 * shapes.count(obj.shape) >= len(shapes))
    if "count" in mentioned:
        result.add("count", len(regions) == count)


def _score_objects(scene: Scene, analysis: Analysis, result: SceneResult) -> None:
    """Single, pair, mixed and text scenes: find each object's region, then score colour, shape, position
    and relation."""
    truth, mentioned, size = scene.truth, scene.mentioned, analysis.size
    matcher = _Matcher(analysis)
    found: dict[int, Region | None] = {}
    shaped = [i for i, o in enumerate(truth.objects) if o.shape != SIGN]
    signs = [i for i, o in enumerate(truth.objects) if o.shape == SIGN]
    for i in shaped:
        obj = truth.objects[i]
        shared = sum(o.colour == obj.colour for o in truth.objects) > 1
        region = found[i] = matcher.find(obj, _min_area(obj, size), by_shape=shared)
        if "colour" in mentioned:
            ok = region is not None
            if region is not None and truth.kind == "single":
                ok = is_dominant(region, analysis)
            result.add("colour", ok)
    for i in signs:  # after the shaped objects: a sign takes the largest region left
        obj = truth.objects[i]
        if _mentions_colour(scene.caption, obj.colour):
            found[i] = matcher.find(obj, _min_area(obj, size))
            result.add("colour", found[i] is not None)
        else:  # any colour will do, but not the companion object's
            taken = {truth.objects[j].colour for j in shaped}
            pool = [r for r in analysis.regions if r.colour not in taken and not matcher.is_used(r)]
            found[i] = pool[0] if pool and pool[0].area >= _min_area(obj, size) else None
    if "shape" in mentioned:
        for i in shaped:
            region = found[i]
            if region is None and truth.kind == "single":
                region = analysis.largest  # the shape is scored even when the colour is wrong
            shape = matcher.shape_of(region) if region is not None else None
            result.details.setdefault("shapes", []).append({"truth": truth.objects[i].shape, "found": shape})
            result.add("shape", shape == truth.objects[i].shape)
    if "position" in mentioned and truth.kind == "single":
        region = found[0] or analysis.largest
        where = position_name(region.cx, region.cy) if region is not None else None
        result.details["position"] = where
        result.add("position", where == truth.objects[0].position)
    if "relation" in mentioned and truth.relation is not None:
        a, relation, b = truth.relation
        ra, rb = found.get(a), found.get(b)
        result.add("relation", ra is not None and rb is not None and _relation_holds(ra, relation, rb))


# ----------------------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------------------


@dataclass
class MetricScore:
    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None

    def add(self, ok: bool) -> None:
        self.correct += int(ok)
        self.total += 1

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "correct": self.correct, "total": self.total}


@dataclass
class EvalReport:
    """Per-metric accuracy (with counts), a per-kind breakdown and every scene's verdicts."""

    n: int
    seed: int
    size: int
    model: str | None = None
    metrics: dict[str, MetricScore] = field(default_factory=dict)
    by_kind: dict[str, dict[str, MetricScore]] = field(default_factory=dict)
    text_cer: float | None = None
    seconds: float = 0.0
    scenes: list[SceneResult] = field(default_factory=list)

    def accuracy(self, metric: str, kind: str | None = None) -> float | None:
        table = self.metrics if kind is None else self.by_kind.get(kind, {})
        score = table.get(metric)
        return score.accuracy if score else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "n": self.n,
            "seed": self.seed,
            "size": self.size,
            "seconds": round(self.seconds, 2),
            "metrics": {m: s.to_dict() for m, s in self.metrics.items()},
            "text_cer": self.text_cer,
            "by_kind": {k: {m: s.to_dict() for m, s in v.items()} for k, v in self.by_kind.items()},
            "scenes": [asdict(s) for s in self.scenes],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=float)


def _aggregate(report: EvalReport) -> None:
    report.metrics = {}
    report.by_kind = {}
    cers = []
    for scene in report.scenes:
        for metric, outcomes in scene.trials.items():
            for ok in outcomes:
                report.metrics.setdefault(metric, MetricScore()).add(ok)
                report.by_kind.setdefault(scene.kind, {}).setdefault(metric, MetricScore()).add(ok)
        if scene.text_cer is not None:
            cers.append(scene.text_cer)
    report.text_cer = sum(cers) / len(cers) if cers else None
    report.metrics = {m: report.metrics[m] for m in METRICS if m in report.metrics}


def _fmt(score: MetricScore | None) -> str:
    if score is None or not score.total:
        return "-"
    return f"{100 * (score.accuracy or 0.0):.0f}% ({score.correct}/{score.total})"


def report_table(report: EvalReport) -> Table:
    """The report as a Rich table: one row per kind and an overall row, one column per metric."""
    from rich.table import Table

    title = f"gouache eval: {report.model or 'images'}, n={report.n}, seed={report.seed}"
    table = Table(title=title)
    table.add_column("kind")
    metrics = [m for m in METRICS if m in report.metrics]
    for metric in metrics:
        table.add_column(metric, justify="right")
    table.add_column("text CER", justify="right")
    for kind in KINDS:
        if kind in report.by_kind:
            row = report.by_kind[kind]
            cers = [s.text_cer for s in report.scenes if s.kind == kind and s.text_cer is not None]
            cer = f"{sum(cers) / len(cers):.2f}" if cers else "-"
            table.add_row(kind, *(_fmt(row.get(m)) for m in metrics), cer)
    overall_cer = "-" if report.text_cer is None else f"{report.text_cer:.2f}"
    table.add_row("all", *(_fmt(report.metrics.get(m)) for m in metrics), overall_cer, style="bold")
    return table


# ----------------------------------------------------------------------------------------------------------
# Runners
# ----------------------------------------------------------------------------------------------------------

GenerateFn = Callable[[str, int], Image.Image]


def evaluate(
    generate: GenerateFn,
    n: int = 200,
    seed: int = 0,
    kinds: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    size: int = EVAL_SIZE,
    determinism_checks: int = DETERMINISM_CHECKS,
) -> EvalReport:
    """Generate an image for each of ``n`` held-out prompts with ``generate(prompt, seed)`` (the seed passed
    is the scene's generator seed) and score it. The first ``determinism_checks`` prompts are generated a
    second time; identical pixels are a correct ``determinism`` trial. ``progress(done, total)`` is called
    after each generation."""
    started = time.perf_counter()
    scenes = held_out_scenes(n, seed, kinds, size)
    checks = min(determinism_checks, n)
    total = n + checks
    report = EvalReport(n=n, seed=seed, size=size)
    determinism = MetricScore()
    first: list[bytes] = []
    for i, scene in enumerate(scenes):
        scene_seed = held_out_seed(i, seed)
        image = generate(scene.caption, scene_seed)
        if i < checks:
            first.append(_fingerprint(image))
        report.scenes.append(score_scene(scene, image, i, scene_seed))
        if progress is not None:
            progress(i + 1, total)
    for i in range(checks):
        again = generate(scenes[i].caption, held_out_seed(i, seed))
        determinism.add(_fingerprint(again) == first[i])
        if progress is not None:
            progress(n + i + 1, total)
    _aggregate(report)
    if checks:
        report.metrics["determinism"] = determinism
    report.seconds = time.perf_counter() - started
    return report


def _fingerprint(image: Image.Image) -> bytes:
    return f"{image.mode}{image.size}".encode() + image.tobytes()


def evaluate_service(
    model: str,
    n: int = 200,
    seed: int = 0,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    kinds: Sequence[str] | None = None,
    quality: str = "medium",
    determinism_checks: int = DETERMINISM_CHECKS,
) -> EvalReport:
    """Evaluate ``model`` through Gouache's own image service, in-process: each prompt goes through
    ``ImageService.generate`` at 1024x1024 (PNG), exactly as an API request would."""
    from gouache.service.container import build_services
    from gouache.service.images import GenerateParams
    from gouache.settings import Settings as _Settings

    services = build_services(settings or _Settings())
    try:
        with asyncio.Runner() as runner:

            def generate(prompt: str, image_seed: int) -> Image.Image:
                # cache=False: the determinism check must render again, not read the result cache.
                params = GenerateParams(
                    prompt=prompt,
                    model=model,
                    seed=image_seed,
                    size="1024x1024",
                    quality=quality,
                    cache=False,
                )
                result = runner.run(services.images.generate(params))
                with Image.open(io.BytesIO(result.images[0].data)) as img:
                    return img.convert("RGB")

            report = evaluate(
                generate,
                n=n,
                seed=seed,
                kinds=kinds,
                progress=progress,
                determinism_checks=determinism_checks,
            )
    finally:
        services.close()
    report.model = model
    return report


def main(model: str, n: int, seed: int, out: Path | None) -> None:
    """``gouache eval``: evaluate ``model`` on ``n`` held-out scenes, print the table, write the JSON report
    to ``out`` (default ``eval.json``). Generations are recorded in a throwaway data directory."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gouache.settings import Settings as _Settings

    console = Console()
    with tempfile.TemporaryDirectory(prefix="gouache-eval-") as tmp:
        settings = _Settings(data_dir=Path(tmp), database_url=None)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"Evaluating {model}", total=None)

            def on_progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = evaluate_service(model, n, seed, settings, progress=on_progress)
    console.print(report_table(report))
    path = out or Path("eval.json")
    path.write_text(report.to_json())
    console.print(f"[green]Wrote[/] {path}  ({report.seconds:.1f} s)")
