"""Upscalers for the finish stage: from the working resolution to the exact requested size.

``lanczos`` is the plain high-quality resample every model gets by default. ``flat`` is for models that paint
flat-colour artwork at a low working resolution (the embedded gouache-mini renders 64 px): a 16x Lanczos or
bicubic enlargement turns each edge into a ramp 20-30 output pixels wide, which looks out of focus.

How ``flat`` works. First, soft edges of the small image (ramps a few pixels wide, as a small diffusion
model paints them) become one-pixel steps (:func:`steepen_edges`). Then the image is enlarged with bicubic
interpolation, which puts every edge at the right sub-pixel place (circles stay round) but spreads it. Then,
per output pixel, the source pixels around it (the 2x2 neighbourhood of its position in the small image) give
the two colours ``A`` and ``B`` furthest apart. When they are close (flat areas, gradients, faint noise) the
bicubic value stays. Otherwise the pixel lies on an edge between ``A`` and ``B``: its bicubic colour is
projected onto the segment ``A``-``B`` (position ``t``), ``t`` goes through a steep logistic curve centred on
0.5, and the pixel becomes ``A + t' (B - A)``. The edge keeps its position and shape, its ramp shrinks to
about :data:`EDGE_WIDTH` output pixels (anti-aliased, not blocky), and colours never overshoot or halo since
the result always lies between two colours present in the source. Pixels far from that segment (where three
colours meet) keep their bicubic colour.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

UPSCALERS = ("lanczos", "flat")

#: Output pixels over which a sharpened edge goes from 12 % to 88 % of the way between its two colours.
EDGE_WIDTH = 1.5
#: Two source colours this far apart (RGB Euclidean) make an edge; closer ones are a gradient or noise.
EDGE_CONTRAST = 24.0
#: 3x3 neighbourhoods this contrasted (RGB) in the small image are edges for :func:`steepen_edges`.
EDGE_CONTRAST_SOURCE = 56.0
STEEPEN_ROUNDS = 2
#: A pixel is on the edge between two colours when it is this close (RGB) to the segment between them.
MIX_TOLERANCE = 20.0


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
    src = steepen_edges(np.asarray(image.convert("RGB"), dtype=np.float32))
    rgb = Image.fromarray(np.clip(src + 0.5, 0, 255).astype(np.uint8), "RGB")
    out = np.array(rgb.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    h, w = src.shape[:2]
    scale = max(width / w, height / h)
    # Logistic slope: t crosses an edge over about two source pixels, i.e. 2 * scale output pixels.
    steepness = 2.0 * 2.0 * scale / EDGE_WIDTH
    is_edge, corners = _cells(src)
    # The source cell (its top-left pixel) around every output pixel; only edge cells are sharpened.
    y0 = _cell_index(height, h)
    x0 = _cell_index(width, w)
    # Bicubic overshoots next to edges; no pixel leaves the colour range of the source pixels around it.
    cell = np.ix_(y0, x0)
    np.clip(out, corners.min(axis=2)[cell], corners.max(axis=2)[cell], out=out)
    rows, cols = np.nonzero(is_edge[cell])
    quad = corners[y0[rows], x0[cols]]  # [n, 4, 3]
    colour = out[rows, cols]  # [n, 3]
    # The two corner colours furthest apart, and where the bicubic colour lies between them.
    distances = np.sum((quad[:, _FIRST] - quad[:, _SECOND]) ** 2, axis=-1)  # [n, 6]
    best = np.argmax(distances, axis=-1)
    a = quad[np.arange(len(best)), _FIRST[best]]
    span = quad[np.arange(len(best)), _SECOND[best]] - a
    length2 = np.maximum(np.sum(span * span, axis=-1), 1e-6)
    t = np.clip(np.sum((colour - a) * span, axis=-1) / length2, 0.0, 1.0)
    residual = np.sum((colour - a - t[:, None] * span) ** 2, axis=-1)
    # A pixel off that segment (where three colours meet) keeps its bicubic colour: no sawtooth.
    keep = residual <= MIX_TOLERANCE**2
    lo = 1.0 / (1.0 + np.exp(steepness * 0.5))
    sharp = (1.0 / (1.0 + np.exp(-steepness * (t[keep] - 0.5))) - lo) / (1.0 - 2.0 * lo)
    out[rows[keep], cols[keep]] = a[keep] + sharp[:, None] * span[keep]
    result = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")
    if mode == "RGBA":
        alpha = image.getchannel("A").resize((width, height), Image.Resampling.LANCZOS)
        result.putalpha(alpha)
    elif mode == "L":
        result = result.convert("L")
    return result


def steepen_edges(src: np.ndarray, rounds: int = STEEPEN_ROUNDS) -> np.ndarray:
    """Turn soft edges (ramps a few pixels wide, as a small diffusion model paints them) into one-pixel steps
    at the source resolution: a pixel that lies between the two most different colours of its 3x3
    neighbourhood takes the nearer of them (a colour "toggle" filter). Flat areas and gradients, whose
    neighbourhoods differ by less than :data:`EDGE_CONTRAST_SOURCE`, are left alone."""
    h, w = src.shape[:2]
    first, second = np.triu_indices(9, 1)
    for _ in range(rounds):
        pad = np.pad(src, ((1, 1), (1, 1), (0, 0)), mode="edge")
        near = np.stack([pad[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)], axis=2)
        spread = np.sum((near[:, :, first] - near[:, :, second]) ** 2, axis=-1)  # [h, w, 36]
        best = np.argmax(spread, axis=-1)
        a = np.take_along_axis(near, first[best][..., None, None], axis=2)[:, :, 0]
        b = np.take_along_axis(near, second[best][..., None, None], axis=2)[:, :, 0]
        span = b - a
        length2 = np.maximum(np.sum(span * span, axis=-1), 1e-6)
        t = np.clip(np.sum((src - a) * span, axis=-1) / length2, 0.0, 1.0)
        residual = np.sum((src - a - t[..., None] * span) ** 2, axis=-1)
        snap = (length2 >= EDGE_CONTRAST_SOURCE**2) & (residual <= MIX_TOLERANCE**2)
        src = np.where(snap[..., None], np.where((t < 0.5)[..., None], a, b), src)
    return src


def _cell_index(out_size: int, src_size: int) -> np.ndarray:
    """For each output coordinate, the source pixel at or before its centre (clamped to the image)."""
    centres = (np.arange(out_size, dtype=np.float64) + 0.5) * (src_size / out_size) - 0.5
    return np.clip(np.floor(centres).astype(np.int64), 0, src_size - 1)


_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
_FIRST = np.array([p[0] for p in _PAIRS])
_SECOND = np.array([p[1] for p in _PAIRS])


def _cells(src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each 2x2 source cell (by its top-left pixel; clamped at the borders): whether two of its colours
    are far enough apart to make an edge, and its four colours [h, w, 4, 3]."""
    right = np.concatenate([src[:, 1:], src[:, -1:]], axis=1)
    down = np.concatenate([src[1:], src[-1:]], axis=0)
    diagonal = np.concatenate([right[1:], right[-1:]], axis=0)
    corners = np.stack([src, right, down, diagonal], axis=2)
    spread = np.sum((corners[:, :, _FIRST] - corners[:, :, _SECOND]) ** 2, axis=-1).max(axis=-1)
    return spread >= EDGE_CONTRAST**2, corners
