"""Upscalers for the finish stage: from the working resolution to the exact requested size.

``lanczos`` is the plain high-quality resample every model gets by default. ``flat`` is for models that paint
flat-colour artwork at a low working resolution (the embedded gouache-mini renders 64 px): a 16x Lanczos or
bicubic enlargement turns each edge into a ramp 20-50 output pixels wide, which looks out of focus.

How ``flat`` works. The image is enlarged with bicubic interpolation, which puts every edge at the right
sub-pixel place (circles stay round, star points keep their length) but spreads it. Then, for each source
cell (2x2 pixels), the :data:`WINDOW` x :data:`WINDOW` source pixels around it give the two colours ``A`` and
``B`` furthest apart: the flat colours on either side of an edge, even when the painted edge is a ramp two or
three source pixels wide. When they are close (flat areas, gradients, faint noise) the bicubic value stays.
Otherwise each output pixel of the cell lies on an edge between ``A`` and ``B``: its bicubic colour is
projected onto the segment ``A``-``B`` (position ``t``), and ``t - 0.5`` divided by the slope of ``t`` across
the cell is the pixel's distance to the edge in output pixels. A logistic of that distance gives the pixel
``A + t' (B - A)``: every edge, however soft in the source, becomes a ramp about :data:`EDGE_WIDTH` output
pixels wide (anti-aliased, not blocky) along the 0.5 contour of the bicubic image, so the geometry is that of
the painted shape. Colours never overshoot or halo, since the result lies between two colours of the source,
and a pixel far from the segment (where three colours meet) keeps its bicubic colour.

Nothing is decided at the source resolution: snapping source pixels to the nearer colour (this module's first
design) made the contours jagged and clipped the points of small stars and the corners of hexagons, which
cost gouache-mini ten points of shape accuracy in ``gouache eval``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

UPSCALERS = ("lanczos", "flat")

#: Output pixels over which a sharpened edge goes from 12 % to 88 % of the way between its two colours.
EDGE_WIDTH = 1.5
#: Two source colours this far apart (RGB Euclidean) make an edge; closer ones are a gradient or noise.
EDGE_CONTRAST = 24.0
#: Source pixels per side of the neighbourhood of a 2x2 cell whose two most different colours an edge joins.
WINDOW = 4
#: The softest source edge the slope estimate assumes: a ramp this many source pixels wide.
MAX_RAMP = 4.0
#: A pixel is on the edge between two colours when it is this close (RGB) to the segment between them.
MIX_TOLERANCE = 20.0
#: Logistic slope that takes 12 % to 88 % over EDGE_WIDTH: 2 ln(0.88 / 0.12) / EDGE_WIDTH.
_STEEPNESS = 2.0 * float(np.log(0.88 / 0.12)) / EDGE_WIDTH


def upscale(image: Image.Image, width: int, height: int, method: str = "lanczos") -> Image.Image:
    """Resize ``image`` to exactly ``width x height`` with ``method`` (see :data:`UPSCALERS`). ``flat`` only
    changes enlargements; reductions always use the box-filtered Lanczos resample."""
    if image.size == (width, height):
        return image
    enlarging = image.width < width or image.height < height
    if method == "flat" and enlarging and image.mode in ("RGB", "RGBA", "L"):
        return flat_upscale(image, width, height)
    if method not in UPSCALERS:
        raise ValueError(f"unknown upscaler {method!r}; expected one of {', '.join(UPSCALERS)}")
    if enlarging:
        return image.resize((width, height), Image.Resampling.LANCZOS)
    return image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)


def flat_upscale(image: Image.Image, width: int, height: int) -> Image.Image:
    """Enlarge flat-colour artwork with crisp, anti-aliased edges (``flat``; see the module doc)."""
    mode = image.mode
    rgb = image.convert("RGB")
    src = np.asarray(rgb, dtype=np.float32)
    h, w = src.shape[:2]
    out = np.array(rgb.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    corners = _corners(src)
    a_cell, b_cell, strength = _cell_pairs(src)
    slope_cell = _cell_slopes(corners, a_cell, b_cell) * max(h / height, w / width)
    # Per-cell fields are interpolated between cell centres, so nothing changes abruptly at a cell's border.
    strength_out = _enlarge_cells(strength, width, height)
    rows, cols = np.nonzero(strength_out > 0)
    fields = np.concatenate([a_cell, b_cell, slope_cell[..., None]], axis=-1)
    at = np.stack([_enlarge_cells(fields[..., k], width, height)[rows, cols] for k in range(7)], axis=-1)
    a, span, slope, weight = at[:, :3], at[:, 3:6] - at[:, :3], at[:, 6], strength_out[rows, cols]
    # Bicubic overshoots next to edges; no pixel leaves the colour range of the source pixels around it.
    cell = (_cell_index(height, h)[rows], _cell_index(width, w)[cols])
    colour = np.clip(out[rows, cols], corners.min(axis=2)[cell], corners.max(axis=2)[cell])
    length2 = np.maximum(np.sum(span * span, axis=-1), 1e-6)
    t = np.clip(np.sum((colour - a) * span, axis=-1) / length2, 0.0, 1.0)
    residual = np.sqrt(np.sum((colour - a - t[:, None] * span) ** 2, axis=-1))
    # Distance to the edge in output pixels: (t - 0.5) over the slope of t.
    sharp = 1.0 / (1.0 + np.exp(-np.clip(_STEEPNESS * (t - 0.5) / slope, -30.0, 30.0)))
    # Weak edges are sharpened partly; a pixel off the segment (where three colours meet) keeps its colour.
    weight = weight * np.clip(2.0 - residual / MIX_TOLERANCE, 0.0, 1.0)
    target = a + sharp[:, None] * span
    out[rows, cols] = colour + weight[:, None] * (target - colour)
    result = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")
    if mode == "RGBA":
        alpha = image.getchannel("A").resize((width, height), Image.Resampling.LANCZOS)
        result.putalpha(alpha)
    elif mode == "L":
        result = result.convert("L")
    return result


def _enlarge_cells(field: np.ndarray, width: int, height: int) -> np.ndarray:
    """A per-cell field [h, w] (cell ``i`` centred between source pixels ``i`` and ``i + 1``) interpolated
    bilinearly at every output pixel, clamped at the borders: [height, width] float32."""
    h, w = field.shape
    padded = Image.fromarray(np.pad(field.astype(np.float32), 1, mode="edge"), "F")
    box = (0.5, 0.5, w + 0.5, h + 0.5)  # output pixel centre u maps to cell coordinate u * w / width - 1
    return np.asarray(padded.resize((width, height), Image.Resampling.BILINEAR, box=box))


def _neighbourhoods(src: np.ndarray) -> np.ndarray:
    """For each 2x2 cell (by its top-left pixel), the WINDOW x WINDOW source colours around it, clamped at
    the borders: [h, w, WINDOW**2, 3]."""
    h, w = src.shape[:2]
    before = (WINDOW - 2) // 2
    pad = np.pad(src, ((before, WINDOW - 1 - before), (before, WINDOW - 1 - before), (0, 0)), mode="edge")
    return np.stack([pad[dy : dy + h, dx : dx + w] for dy in range(WINDOW) for dx in range(WINDOW)], axis=2)


def _cell_pairs(src: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: its two most different colours ``A`` and ``B`` [h, w, 3] (the darker first, so that
    neighbouring cells agree and can be interpolated), and how strongly it is sharpened: 0 below
    :data:`EDGE_CONTRAST`, 1 from twice that."""
    near = _neighbourhoods(src)
    first, second = np.triu_indices(near.shape[2], 1)
    spread = np.sum((near[:, :, first] - near[:, :, second]) ** 2, axis=-1)  # [h, w, pairs]
    best = np.argmax(spread, axis=-1)
    a = np.take_along_axis(near, first[best][..., None, None], axis=2)[:, :, 0]
    b = np.take_along_axis(near, second[best][..., None, None], axis=2)[:, :, 0]
    swap = (a.sum(axis=-1) > b.sum(axis=-1))[..., None]
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    contrast = np.sqrt(np.take_along_axis(spread, best[..., None], axis=2)[..., 0])
    strength = np.clip(contrast / EDGE_CONTRAST - 1.0, 0.0, 1.0).astype(np.float32)
    return a, b, strength


def _cell_slopes(corners: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per cell: how fast ``t`` (the position between the cell's ``A`` and ``B``) changes across it, per
    source pixel, from its 2x2 ``corners`` [h, w, 4, 3] (top-left, top-right, bottom-left, bottom-right);
    never below that of a ramp :data:`MAX_RAMP` pixels wide."""
    span = b - a
    length2 = np.maximum(np.sum(span * span, axis=-1), 1e-6)
    t = np.sum((corners - a[:, :, None]) * span[:, :, None], axis=-1) / length2[:, :, None]
    gx = 0.5 * ((t[..., 1] - t[..., 0]) + (t[..., 3] - t[..., 2]))
    gy = 0.5 * ((t[..., 2] - t[..., 0]) + (t[..., 3] - t[..., 1]))
    return np.maximum(np.hypot(gx, gy), 1.0 / MAX_RAMP)


def _cell_index(out_size: int, src_size: int) -> np.ndarray:
    """For each output coordinate, the source pixel at or before its centre (clamped to the image)."""
    centres = (np.arange(out_size, dtype=np.float64) + 0.5) * (src_size / out_size) - 0.5
    return np.clip(np.floor(centres).astype(np.int64), 0, src_size - 1)


def _corners(src: np.ndarray) -> np.ndarray:
    """For each 2x2 source cell (by its top-left pixel; clamped at the borders) its four colours
    [h, w, 4, 3]: top-left, top-right, bottom-left, bottom-right."""
    right = np.concatenate([src[:, 1:], src[:, -1:]], axis=1)
    down = np.concatenate([src[1:], src[-1:]], axis=0)
    diagonal = np.concatenate([right[1:], right[-1:]], axis=0)
    return np.stack([src, right, down, diagonal], axis=2)
