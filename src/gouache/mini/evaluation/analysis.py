"""Reading objects back from a generated image: its background, each pixel's colour, the regions.

Image analysis (never uses the truth's positions)
-------------------------------------------------
The model may draw an object anywhere, so detection works from the image alone (plain numpy, no scipy); the
scorer (:mod:`gouache.mini.evaluation.scoring`) then compares what it finds with the truth:

1. The image is brought to the scene size (area averaging) as float RGB.
2. **Background**: the pixels of a 2-pixel border are clustered greedily (mode of coarsely quantised
   colours, then the median of the pixels near it, repeated while a tenth of the border is unexplained).
   The background model is every mix of two of those colours (gradients, two-tone, textures) and every
   such colour darkened by up to a quarter (soft shadows).
3. **Unmixing**: each pixel is explained as ``(1 - a) * background + a * C`` for each named colour ``C`` of
   :data:`~gouache.mini.scenes.vocabulary.COLOURS` (colours within :data:`BACKGROUND_EXCLUSION` of the
   background are not candidates: scenes never draw objects that close to the background). The cost of an
   explanation is its RGB residual plus :data:`PURITY_PREFERENCE` times ``2 * min(a, 1 - a)``, so a pure
   colour beats an equally good mix (gray is not "half black on white"). Explanations within
   :data:`AMBIGUITY_SLACK` of the best are decided by the confident (``a >= CONFIDENT_COVERAGE``) pixels in
   the 5x5 neighbourhood. Anti-aliased edges and sketch hatching thus keep their true colour name instead of a
   blend's. A pixel is *foreground of colour C* when ``a >= COVERAGE_MIN`` and the residual is at most
   :data:`RESIDUAL_MAX`.
4. **Regions**: 4-connected components of equal colour (a breadth-first flood fill; no scipy), less specks
   smaller than :data:`SPECK_AREA` pixels at 64 px (scaled with the area); centroids are coverage-weighted.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from gouache.mini.scenes.vocabulary import COLOURS

EVAL_SIZE = 64  # analysis size: gouache-mini's working resolution
BACKGROUND_EXCLUSION = 60.0  # named colours this close (RGB) to a background colour are not foreground
COVERAGE_MIN = 0.25  # a pixel belongs to an object's region when this much of it is the object's colour
RESIDUAL_MAX = 48.0  # RGB distance a pixel may be from its best background/colour mix
PURITY_PREFERENCE = (
    20.0  # RGB units a half-and-half mix pays: pure explanations win ties (gray vs white/black)
)
CONFIDENT_COVERAGE = 0.7  # pixels this pure vote for their colour among their neighbours
AMBIGUITY_SLACK = 15.0  # explanations this close in cost to the best are decided by the neighbours' vote
SPECK_AREA = 6  # regions smaller than this many pixels (at 64 px) are dropped
SHADOW_DARKEN = (1.0, 0.92, 0.84, 0.76)  # soft shadows darken the background to about 0.75

COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
_PALETTE = np.array([COLOURS[n] for n in COLOUR_NAMES], dtype=np.float32)
PLUS = ((0, 1), (1, 0), (1, 1), (1, 2), (2, 1))  # offsets of a 3x3 plus-shaped structuring element
SQUARE = tuple((dy, dx) for dy in range(3) for dx in range(3))


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


def box_sum(x: np.ndarray, r: int) -> np.ndarray:
    """Sum over the (2r+1) x (2r+1) neighbourhood of each pixel of an (H, W, C) array."""
    p = np.pad(x, ((r, r), (r, r), (0, 0)))
    h, w = x.shape[:2]
    out = np.zeros_like(x)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out += p[dy : dy + h, dx : dx + w]
    return out


def dilate(m: np.ndarray, element: Sequence[tuple[int, int]] = PLUS) -> np.ndarray:
    p = np.pad(m, 1, constant_values=0)
    h, w = m.shape
    return np.max([p[dy : dy + h, dx : dx + w] for dy, dx in element], axis=0)


def erode(m: np.ndarray, element: Sequence[tuple[int, int]] = PLUS) -> np.ndarray:
    p = np.pad(m, 1, mode="edge")
    h, w = m.shape
    return np.min([p[dy : dy + h, dx : dx + w] for dy, dx in element], axis=0)


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
        support = box_sum(votes.reshape(size, size, -1), 2).reshape(len(pixels), -1)
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
        regions.append(Region(COLOUR_NAMES[lab], len(ys), cx, cy, radius, ys, xs, cov))
    regions.sort(key=lambda r: -r.area)
    return Analysis(size, centres, labels_2d, coverage_2d, regions)
