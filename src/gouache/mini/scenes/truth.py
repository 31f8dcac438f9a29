"""What is true about a scene, and the colour and geometry rules that decide it.

A :class:`SceneTruth` is the exact record of a scene: each object's shape, colour, centre, radius, size band
and style, the background, the relation, the count and the word. The generator draws it, the caption reader's
layouts produce it, the grounding turns it into tokens and the evaluator scores against it, so the rules
below (:func:`colour_distance`, :func:`dominant_colour_name`, :func:`position_name`, :func:`relation_holds`,
:func:`probe_point`, when ink is :func:`legible`) are the single definition all of them share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gouache.mini.scenes.vocabulary import (
    COLOURS,
    NEXT_TO_MAX_GAP,
    RELATION_AXIS_RATIO,
    RELATION_MARGIN,
    RGB,
    RING_INNER,
    SIGN,
    SIZE_BANDS,
    SIZES,
    TEXT_MIN_CONTRAST,
    TEXT_MIN_LUMA_CONTRAST,
    Box,
)

if TYPE_CHECKING:
    from PIL import Image

# ----------------------------------------------------------------------------------------------------------
# Truth
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectTruth:
    """One object. Centre and radius (of the bounding circle) are in canvas units, y downwards.

    For a ``"sign"`` (text scenes only) ``box`` is the plate rectangle ``(x0, y0, x1, y1)`` and ``radius``
    its half-diagonal; its size is reported as ``"large"`` and is not a size band.
    """

    shape: str
    colour: str
    rgb: RGB
    cx: float
    cy: float
    radius: float
    size: str
    style: str
    word: str | None = None
    box: Box | None = None
    #: A concept drawn in this object's place at the finish (:mod:`gouache.mini.concepts`); the UNet is
    #: not given it (it paints the scene around it).
    concept: str | None = None

    @property
    def position(self) -> str:
        return position_name(self.cx, self.cy)


@dataclass(frozen=True)
class TextTruth:
    """A word drawn in a scene: its ink colour, ink bounding box (canvas units) and font."""

    word: str
    colour: str
    rgb: RGB
    box: Box
    font: str
    sign: int | None  # index of the sign object it is written on, None if painted on the background


@dataclass(frozen=True)
class SceneTruth:
    """Everything that is true about a scene. ``background`` is one of :data:`BACKGROUNDS` (the pattern);
    ``background_rgb`` is its base colour and :attr:`background_colour` that colour's name."""

    kind: str
    objects: tuple[ObjectTruth, ...]
    background: str
    background_rgb: RGB
    relation: tuple[int, str, int] | None  # (subject index, relation, object index)
    count: int | None
    word: str | None
    style: str
    text: TextTruth | None = None

    @property
    def background_colour(self) -> str:
        return dominant_colour_name(self.background_rgb)


@dataclass(frozen=True)
class Scene:
    """A rendered scene. ``mentioned`` lists what the caption asserts, from ``colour``, ``shape``, ``size``,
    ``position``, ``relation``, ``count``, ``word``, ``text_colour``, ``background``, ``background_pattern``
    and ``style``; an evaluator should score only those."""

    image: Image.Image
    caption: str
    truth: SceneTruth
    mentioned: frozenset[str] = frozenset()


# ----------------------------------------------------------------------------------------------------------
# Shared definitions for the evaluator
# ----------------------------------------------------------------------------------------------------------


def colour_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Euclidean RGB distance, the metric every colour rule in this module uses."""
    return math.sqrt((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2)


def dominant_colour_name(rgb: Sequence[float]) -> str:
    """Name of the nearest colour in :data:`COLOURS`."""
    return min(COLOURS, key=lambda name: colour_distance(COLOURS[name], rgb))


def position_name(cx: float, cy: float) -> str:
    """The 3x3-grid cell of a point in canvas units: one of :data:`POSITIONS`."""
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else ""
    return f"{row} {col}".strip() or "centre"


def size_name(radius: float) -> str:
    """Nearest size band of a radius (canvas units)."""
    return min(SIZES, key=lambda s: abs(radius - sum(SIZE_BANDS[s]) / 2))


def relation_holds(
    a: ObjectTruth,
    relation: str,
    b: ObjectTruth,
    margin: float = RELATION_MARGIN,
    ratio: float = RELATION_AXIS_RATIO,
) -> bool:
    """Whether ``a <relation> b`` holds: centres differ by ``margin`` along the relation's axis and the
    off-axis offset is at most ``ratio`` times that. "next to" is side by side with a gap between the
    bounding circles of at most :data:`NEXT_TO_MAX_GAP`."""
    dx, dy = b.cx - a.cx, b.cy - a.cy
    if relation == "left of":
        return dx >= margin and abs(dy) <= ratio * dx
    if relation == "right of":
        return -dx >= margin and abs(dy) <= ratio * -dx
    if relation == "above":
        return dy >= margin and abs(dx) <= ratio * dy
    if relation == "below":
        return -dy >= margin and abs(dx) <= ratio * -dy
    if relation == "next to":
        gap = math.hypot(dx, dy) - a.radius - b.radius
        return abs(dx) >= margin and abs(dy) <= ratio * abs(dx) and gap <= NEXT_TO_MAX_GAP
    raise ValueError(f"unknown relation {relation!r}")


def probe_point(obj: ObjectTruth) -> tuple[float, float]:
    """A point (canvas units) that is painted in the object's colour for filled styles (flat, outlined,
    shadow): the centre, a point on the band of a ring, or a point on a sign plate left of its text.

    Sample the pixel whose centre is nearest, ``(round(x * size - 0.5), round(y * size - 0.5))``; in the
    sketch style only the hatching is in the object's colour, so compare colours over the mask instead."""
    if obj.shape == "ring":  # middle of the band, nudged inwards, away from an outline on the outer edge
        return obj.cx + obj.radius * (0.9 + RING_INNER) / 2, obj.cy
    if obj.shape == SIGN and obj.box is not None:
        return obj.box[0] + 0.03, obj.cy
    return obj.cx, obj.cy


def luma(rgb: Sequence[float]) -> float:
    """Perceived brightness (0-255, ITU-R 601 weights)."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def legible(ink: RGB, paper: RGB) -> bool:
    """Whether ``ink`` on ``paper`` reads: far enough apart in colour and in brightness."""
    return (
        colour_distance(ink, paper) >= TEXT_MIN_CONTRAST
        and abs(luma(ink) - luma(paper)) >= TEXT_MIN_LUMA_CONTRAST
    )


def ink_for(rgb: RGB) -> str:
    """Black or white, whichever stands out more on ``rgb``."""
    return max(("black", "white"), key=lambda n: abs(luma(COLOURS[n]) - luma(rgb)))
