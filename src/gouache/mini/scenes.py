"""Procedural, captioned scenes with exact ground truth: the training data and the test set of gouache-mini.

Why this exists
---------------
``gouache-mini`` is the small latent-diffusion model embedded in Gouache as its default. It is trained from
scratch on a CPU, so it cannot learn from web images: it learns from a closed little world that we generate
ourselves. Every scene is drawn with Pillow from a seed and comes with the caption it was drawn from and the
exact truth behind it (each object's shape, colour, centre, radius, size band, style, the background, the
relation between two objects, the count, the word on a sign). Because the world is closed, an evaluator can
score a generated image *exactly*: is there a red thing where the prompt said, is it left of the blue one,
are there three of them, does the sign say STOP. :func:`object_mask`, :func:`probe_point`,
:func:`dominant_colour_name`, :func:`position_name` and :func:`relation_holds` are the shared definitions
that the evaluator uses, so training data and scoring can never drift apart.

Design decisions
----------------
* The vocabulary is small and unambiguous: :data:`SHAPES`, :data:`COLOURS` (fixed RGB values at least ~97
  apart in RGB), three size bands with gaps between them, a 3x3 position grid and five relations whose
  geometric definitions (:func:`relation_holds`) include a clear margin. A background is never within
  :data:`BACKGROUND_MIN_DISTANCE` of any object colour, and its texture is a low-contrast shade of one
  named colour, so the background keeps a single name.
* Scene kinds (:data:`KINDS`) let training and evaluation be balanced: ``single``, ``pair``, ``count``,
  ``text`` and ``mixed``.
* Captions vary (templates, synonyms, word order, digits vs number words, optional background and style
  phrases), so the text encoder learns meaning rather than one sentence pattern. ``paraphrase=True`` uses
  held-out leading phrases (:data:`PARAPHRASE_LEADS`) and a few held-out sentence structures that never occur
  in training captions, so an evaluator can test unseen wording.
* The layout is drawn from ``random.Random(seed)``, rendering noise (sketch jitter, texture period) from a
  second stream and caption wording from a third, all derived from the seed: the same seed gives the same
  picture whether ``paraphrase`` is on or off, and :func:`caption_for` can draw many captions for one truth.
* Scenes are rendered at ``size * supersample`` and box-downsampled (exact area coverage, no ringing) for
  clean anti-aliased edges, fast enough (about 0.5 ms at 64 px) to generate training data on the fly.

Coordinates in the truth are canvas units in ``[0, 1]``; x grows to the right and y grows *downwards*.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeAlias

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

RGB = tuple[int, int, int]
Box = tuple[float, float, float, float]
_FontT: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont

# ----------------------------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------------------------

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "heart",
    "hexagon",
    "ring",
    "cross",
    "diamond",
    "pentagon",
)
SIGN = "sign"  # the shape name of a sign plate in "text" scenes; deliberately not in SHAPES

COLOURS: dict[str, RGB] = {
    "red": (220, 30, 40),
    "orange": (245, 125, 20),
    "yellow": (250, 220, 40),
    "green": (40, 150, 60),
    "blue": (35, 75, 215),
    "purple": (140, 50, 190),
    "pink": (240, 140, 195),
    "brown": (125, 70, 30),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "gray": (135, 135, 135),
    "cyan": (40, 200, 215),
}

SIZES: tuple[str, ...] = ("small", "medium", "large")
# Radius bands in canvas units, with gaps between them so that a radius names exactly one size.
SIZE_BANDS: dict[str, tuple[float, float]] = {
    "small": (0.085, 0.11),
    "medium": (0.14, 0.18),
    "large": (0.22, 0.27),
}

POSITIONS: tuple[str, ...] = (
    "top left",
    "top",
    "top right",
    "left",
    "centre",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "next to")
INVERSE_RELATION: dict[str, str] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
    "next to": "next to",
}
KINDS: tuple[str, ...] = ("single", "pair", "count", "text", "mixed")
DEFAULT_KIND_WEIGHTS: dict[str, float] = {
    "single": 0.25,
    "pair": 0.2,
    "count": 0.2,
    "text": 0.15,
    "mixed": 0.2,
}
STYLES: tuple[str, ...] = ("flat", "outlined", "shadow", "sketch")
STYLE_WEIGHTS: dict[str, float] = {"flat": 0.4, "outlined": 0.2, "shadow": 0.2, "sketch": 0.2}
BACKGROUNDS: tuple[str, ...] = (
    "solid",
    "gradient_vertical",
    "gradient_horizontal",
    "split",
    "stripes",
    "dots",
    "checker",
)
BACKGROUND_WEIGHTS: dict[str, float] = {
    "solid": 0.34,
    "gradient_vertical": 0.11,
    "gradient_horizontal": 0.11,
    "split": 0.11,
    "stripes": 0.11,
    "dots": 0.11,
    "checker": 0.11,
}
# How often each named colour is picked as a background (neutral backgrounds are commoner).
BACKGROUND_COLOUR_WEIGHTS: dict[str, float] = {name: 1.0 for name in COLOURS} | {
    "white": 3.0,
    "gray": 2.0,
    "black": 1.5,
}

# Geometry constants shared with the evaluator.
PAD = 0.02  # every object stays this far inside the canvas
MIN_GAP = 0.03  # minimum distance between the bounding circles (or sign boxes) of two objects
RELATION_MARGIN = 0.15  # centres differ by at least this much along the relation's axis
RELATION_AXIS_RATIO = 0.5  # the off-axis offset is at most this fraction of the on-axis offset
NEXT_TO_MAX_GAP = 0.12  # "next to": gap between bounding circles at most this
BACKGROUND_MIN_DISTANCE = 120.0  # RGB distance between the background colour and any object colour
TEXT_MIN_CONTRAST = 160.0  # RGB distance between ink and whatever it is written on
TEXT_MIN_LUMA_CONTRAST = 90.0  # and their luma (0-255) difference, so words stay legible
RING_INNER = 0.45  # inner radius of a ring, as a fraction of its radius

WORDS: tuple[str, ...] = (
    # single letters
    "B", "E", "K", "M", "R", "S", "X", "Z",
    # two to six letters; none is a colour, shape, size or position word, so captions stay unambiguous
    "GO", "NO", "OK", "HI", "UP", "ZIP", "OFF", "YES", "CAT", "DOG", "SUN", "SKY", "BUS", "KEY", "JAZZ",
    "ART", "MAP", "BOX", "ZOO", "FUN", "JOY", "WOW", "STOP", "OPEN", "EXIT", "SALE", "CAFE", "SHOP", "BOOK",
    "FISH", "BIRD", "TREE", "MOON", "MILK", "RAIN", "SNOW", "FIRE", "GOLD", "LOVE", "HOME", "PARK", "WEST",
    "EAST", "HELLO", "MUSIC", "PIZZA", "HOTEL", "LEMON", "APPLE", "RIVER", "HAPPY", "SMILE", "TAXI", "BANK",
    "NORTH", "SOUTH", "DANCE", "LIGHT", "PAINT", "OCEAN", "TIGER", "ROBOT", "GARDEN", "BAKERY", "CLOUD",
    "SUMMER", "WINTER", "PLANET", "CASTLE", "DRAGON", "RABBIT", "SILVER", "FOREST", "ISLAND",
)  # fmt: skip

_FONT_FILES: dict[str, str] = {
    "sans-bold": "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "serif-bold": "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
    "mono-bold": "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "condensed-bold": "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
}
# Fonts available on this machine; Pillow's built-in scalable font when DejaVu is missing.
FONTS: tuple[str, ...] = tuple(n for n, p in _FONT_FILES.items() if Path(p).is_file()) or ("default",)

# ----------------------------------------------------------------------------------------------------------
# Caption vocabulary (synonyms a person would actually type)
# ----------------------------------------------------------------------------------------------------------

SHAPE_WORDS: dict[str, tuple[tuple[str, str], ...]] = {  # (singular, plural) pairs, first is canonical
    "circle": (("circle", "circles"), ("disc", "discs")),
    "square": (("square", "squares"),),
    "triangle": (("triangle", "triangles"),),
    "star": (("star", "stars"), ("five-pointed star", "five-pointed stars")),
    "heart": (("heart", "hearts"), ("heart shape", "heart shapes")),
    "hexagon": (("hexagon", "hexagons"),),
    "ring": (("ring", "rings"), ("hollow circle", "hollow circles")),
    "cross": (("cross", "crosses"), ("plus sign", "plus signs")),
    "diamond": (("diamond", "diamonds"), ("rhombus", "rhombuses")),
    "pentagon": (("pentagon", "pentagons"),),
}
COLOUR_WORDS: dict[str, tuple[str, ...]] = {name: (name,) for name in COLOURS} | {
    "purple": ("purple", "violet"),
    "gray": ("gray", "grey"),
    "cyan": ("cyan", "turquoise"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little"),
    "medium": ("medium", "medium-sized"),
    "large": ("large", "big"),
}
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "top left": ("in the top left", "in the top left corner", "at the top left", "in the upper left"),
    "top": ("at the top", "near the top", "at the top of the image"),
    "top right": ("in the top right", "in the top right corner", "at the top right", "in the upper right"),
    "left": ("on the left", "on the left side", "at the left"),
    "centre": ("in the centre", "in the center", "in the middle"),
    "right": ("on the right", "on the right side", "at the right"),
    "bottom left": (
        "in the bottom left",
        "in the bottom left corner",
        "at the bottom left",
        "in the lower left",
    ),
    "bottom": ("at the bottom", "near the bottom", "at the bottom of the image"),
    "bottom right": (
        "in the bottom right",
        "in the bottom right corner",
        "at the bottom right",
        "in the lower right",
    ),
}
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above",),
    "below": ("below", "under", "beneath"),
    "next to": ("next to", "beside"),
}
NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four"}
STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "flat": ("in a flat style", "with flat colours", "in flat colours"),
    "outlined": ("with a thick outline", "in an outlined style", "with bold outlines"),
    "shadow": ("with a soft shadow", "with a drop shadow", "in a soft shadow style"),
    "sketch": ("in a sketch style", "as a rough sketch", "in a hand-drawn style"),
}
BACKGROUND_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "solid": ("plain", "solid"),
    "gradient_vertical": ("gradient",),
    "gradient_horizontal": ("gradient",),
    "split": ("two-tone",),
    "stripes": ("striped",),
    "dots": ("dotted", "polka-dot"),
    "checker": ("checkered", "checkerboard"),
}

# Leading phrases. Training captions start with one of TRAIN_LEADS (or with the noun phrase itself); held-out
# evaluation captions (paraphrase=True) always start with one of PARAPHRASE_LEADS, none of which is ever
# used in training.
TRAIN_LEADS: tuple[str, ...] = ("an image of ", "a picture of ", "a scene with ", "there is ", "there are ")
PARAPHRASE_LEADS: tuple[str, ...] = (
    "Draw ",
    "I'd like an image of ",
    "Picture: ",
    "Please render ",
    "Show me ",
    "Could you make ",
    "Generate ",
    "Paint ",
    "Create ",
    "Make me ",
)
_TRAIN_PLAIN_LEADS = ("", "", "", "an image of ", "a picture of ", "a scene with ")

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
        _fill_shape(
            draw, truth_obj.shape, truth_obj.cx * scale, truth_obj.cy * scale, truth_obj.radius * scale, 255
        )
    return canvas.reduce(ss).point(lambda v: 255 if v >= 128 else 0)


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


def _points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    unit = _UNIT_CIRCLE if shape in ("circle", "ring") else _UNIT_POLYGONS[shape]
    return [(cx + x * r, cy + y * r) for x, y in unit]


def _fill_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: int | RGB
) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "ring":
        width = max(1, round(r * (1 - RING_INNER)))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=width)
    else:
        draw.polygon(_points(shape, cx, cy, r), fill=fill)


def _outline_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, colour: RGB, w: int
) -> None:
    if shape in ("circle", "ring"):
        if shape == "ring":  # outer edge only, thin: most of the narrow band keeps the fill colour
            w = max(1, min(w, round(r * (1 - RING_INNER) * 0.2)))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=w)
    else:
        draw.polygon(_points(shape, cx, cy, r), outline=colour, width=w)


# ----------------------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Spec:
    shape: str
    colour: str
    size: str
    r: float
    cx: float = 0.5
    cy: float = 0.5
    box: Box | None = None
    word: str | None = None


class _LayoutError(Exception):
    pass


def _weighted(rng: random.Random, weights: Mapping[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def _radius(rng: random.Random, size: str) -> float:
    lo, hi = SIZE_BANDS[size]
    return rng.uniform(lo, hi)


def _inside(cx: float, cy: float, r: float) -> bool:
    return r + PAD <= cx <= 1 - r - PAD and r + PAD <= cy <= 1 - r - PAD


def _clear(spec: _Spec, placed: Sequence[_Spec]) -> bool:
    for other in placed:
        if other.box is not None:
            x0, y0, x1, y1 = other.box
            nx, ny = min(max(spec.cx, x0), x1), min(max(spec.cy, y0), y1)
            if math.hypot(spec.cx - nx, spec.cy - ny) < spec.r + MIN_GAP:
                return False
        elif math.hypot(spec.cx - other.cx, spec.cy - other.cy) < spec.r + other.r + MIN_GAP:
            return False
    return True


def _scatter(rng: random.Random, specs: Sequence[_Spec], placed: list[_Spec], tries: int = 200) -> None:
    """Rejection-sample positions for ``specs`` that are inside the canvas and clear of everything placed."""
    for spec in specs:
        for _ in range(tries):
            spec.cx = rng.uniform(spec.r + PAD, 1 - spec.r - PAD)
            spec.cy = rng.uniform(spec.r + PAD, 1 - spec.r - PAD)
            if _clear(spec, placed):
                placed.append(spec)
                break
        else:
            raise _LayoutError("no room")


def _place_pair(rng: random.Random, a: _Spec, b: _Spec, relation: str) -> None:
    """Place ``a`` and ``b`` so that ``a <relation> b`` holds with margin, both inside the canvas."""
    for _ in range(100):
        if relation == "next to":
            gap = rng.uniform(MIN_GAP + 0.005, NEXT_TO_MAX_GAP - 0.02)
            angle = rng.uniform(-20, 20) + rng.choice((0, 180))
        else:
            gap = rng.uniform(MIN_GAP + 0.03, 0.3)
            base = {"left of": 0, "right of": 180, "above": 90, "below": 270}[relation]
            angle = base + rng.uniform(-24, 24)
        d = a.r + b.r + gap
        dx, dy = d * math.cos(math.radians(angle)), d * math.sin(math.radians(angle))
        lo_x, hi_x = max(a.r, b.r - dx) + PAD, min(1 - a.r, 1 - b.r - dx) - PAD
        lo_y, hi_y = max(a.r, b.r - dy) + PAD, min(1 - a.r, 1 - b.r - dy) - PAD
        if lo_x > hi_x or lo_y > hi_y:
            continue
        a.cx, a.cy = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
        b.cx, b.cy = a.cx + dx, a.cy + dy
        ta, tb = _spec_truth(a, "flat"), _spec_truth(b, "flat")
        if relation_holds(ta, relation, tb) and _inside(b.cx, b.cy, b.r) and _clear(b, [a]):
            return
    raise _LayoutError("relation does not fit")


def _spec_truth(s: _Spec, style: str) -> ObjectTruth:
    rgb = COLOURS[s.colour]
    return ObjectTruth(s.shape, s.colour, rgb, s.cx, s.cy, s.r, s.size, style, s.word, s.box)


def _pick_colours(rng: random.Random, n: int, distinct: bool) -> list[str]:
    names = list(COLOURS)
    return rng.sample(names, n) if distinct else [rng.choice(names)] * n


def _background_colour(rng: random.Random, avoid: Sequence[RGB]) -> str:
    ok = {
        n: w
        for n, w in BACKGROUND_COLOUR_WEIGHTS.items()
        if all(colour_distance(COLOURS[n], c) >= BACKGROUND_MIN_DISTANCE for c in avoid)
    }
    if not ok:
        raise _LayoutError("no background colour is far from every object colour")
    return _weighted(rng, ok)


def _sizes_for(rng: random.Random, n: int) -> list[str]:
    if n <= 2:
        return [rng.choice(SIZES) for _ in range(n)]
    sizes = [rng.choices(SIZES, weights=(0.5, 0.4, 0.1))[0] for _ in range(n)]
    while sizes.count("large") > 1:
        sizes[sizes.index("large")] = "medium"
    return sizes


def _layout_single(rng: random.Random) -> tuple[list[_Spec], tuple[int, str, int] | None]:
    size = rng.choice(SIZES)
    spec = _Spec(rng.choice(SHAPES), rng.choice(list(COLOURS)), size, _radius(rng, size))
    _place_in_cell(rng, spec, POSITIONS[rng.randrange(9)])
    return [spec], None


def _layout_pair(rng: random.Random) -> tuple[list[_Spec], tuple[int, str, int] | None]:
    relation = rng.choice(RELATIONS)
    shapes = [rng.choice(SHAPES), rng.choice(SHAPES)]
    colours = _pick_colours(rng, 2, distinct=shapes[0] == shapes[1] or rng.random() < 0.8)
    sizes = _sizes_for(rng, 2)
    a, b = (_Spec(shapes[i], colours[i], sizes[i], _radius(rng, sizes[i])) for i in range(2))
    _place_pair(rng, a, b, relation)
    return [a, b], (0, relation, 1)


def _layout_count(rng: random.Random) -> tuple[list[_Spec], tuple[int, str, int] | None]:
    n = rng.choice((1, 2, 3, 4))
    size = rng.choice(SIZES if n <= 2 else ("small", "small", "medium"))
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    specs = [_Spec(shape, colour, size, _radius(rng, size)) for _ in range(n)]
    _scatter(rng, specs, [])
    return specs, None


def _layout_mixed(rng: random.Random) -> tuple[list[_Spec], tuple[int, str, int] | None]:
    n = rng.choice((3, 4))
    combos: set[tuple[str, str]] = set()
    while len(combos) < n:  # distinct (shape, colour) so "the red circle" names exactly one object
        combos.add((rng.choice(SHAPES), rng.choice(list(COLOURS))))
    ordered = sorted(combos)
    rng.shuffle(ordered)
    sizes = _sizes_for(rng, n)
    specs = [_Spec(s, c, z, _radius(rng, z)) for (s, c), z in zip(ordered, sizes, strict=True)]
    relation = None
    placed: list[_Spec] = []
    if rng.random() < 0.6:
        rel = rng.choice(RELATIONS)
        _place_pair(rng, specs[0], specs[1], rel)
        placed = specs[:2]
        relation = (0, rel, 1)
    _scatter(rng, specs[len(placed) :], placed)
    return specs, relation


def _fit_font_px(font: str, word: str, max_w: float, max_h: float) -> int:
    """Largest font pixel size whose ink box fits in ``max_w`` x ``max_h`` pixels."""
    x0, y0, x1, y1 = _ink_bbox(font, word, 100)
    scale = min(max_w / max(1, x1 - x0), max_h / max(1, y1 - y0))
    return max(4, int(100 * scale))


def fit_font_px(font: str, word: str, max_w: float, max_h: float) -> int:
    """Largest pixel size of ``font`` at which ``word``'s ink fits in ``max_w`` x ``max_h`` pixels."""
    return _fit_font_px(font, word, max_w, max_h)


def load_font(name: str, px: int) -> _FontT:
    """One of :data:`FONTS` at ``px`` pixels (Pillow's built-in font for ``"default"``)."""
    return _font(name, px)


_TEXT_REF_SCALE = 256  # text is laid out at this canvas size, so the truth does not depend on size


def _layout_text(
    rng: random.Random,
    font: str,
    word: str | None = None,
    on_sign: bool | None = None,
    companion_spec: _Spec | None = None,
    text_top: bool | None = None,
) -> tuple[list[_Spec], tuple[int, str, int] | None, tuple[str, Box, bool]]:
    """A sign with a word (sometimes with a small object above or below it), or a word painted on the
    background. Returns the specs, the relation and ``(word, ink box in canvas units, on_sign)``.

    The planner (:func:`plan_scene`) fixes the word, the holder, the companion object and which of the two
    is on top; the generator leaves them to ``rng`` (drawing exactly as it always has)."""
    scale = _TEXT_REF_SCALE
    drawn_word = rng.choice(WORDS)
    word = word or drawn_word
    if on_sign is None:
        on_sign = rng.random() < 0.55
        companion = on_sign and rng.random() < 0.5  # a bare word has no holder object to relate to
    else:
        companion = companion_spec is not None
    specs: list[_Spec] = []
    if companion:
        drawn_top = rng.random() < 0.5
        text_top = drawn_top if text_top is None else text_top
        band_h = rng.uniform(0.26, 0.34)
        band_cy = rng.uniform(0.2, 0.26) if text_top else rng.uniform(0.74, 0.8)
        max_w = rng.uniform(0.76, 0.9)
    else:
        band_h = rng.uniform(0.36, 0.46)
        band_cy = rng.uniform(0.42, 0.58)
        max_w = rng.uniform(0.8, 0.94)
    pad_x, pad_y = (0.05, 0.045) if on_sign else (0.0, 0.0)
    ink_w, ink_h = max_w - 2 * pad_x, band_h - 2 * pad_y
    px = _fit_font_px(font, word, ink_w * scale, ink_h * scale)
    bx0, by0, bx1, by1 = _ink_bbox(font, word, px)
    w, h = (bx1 - bx0) / scale, (by1 - by0) / scale
    slack = max(0.0, 0.5 - w / 2 - pad_x - PAD - 0.005)
    band_cx = 0.5 + rng.uniform(-1, 1) * min(0.05, slack)
    ink = (band_cx - w / 2, band_cy - h / 2, band_cx + w / 2, band_cy + h / 2)
    holder = (ink[0] - pad_x, ink[1] - pad_y, ink[2] + pad_x, ink[3] + pad_y)
    if holder[0] < PAD or holder[2] > 1 - PAD or holder[1] < PAD or holder[3] > 1 - PAD:
        raise _LayoutError("text does not fit")
    text_spec = _Spec(SIGN, "white", "large", math.hypot(holder[2] - holder[0], holder[3] - holder[1]) / 2)
    text_spec.cx, text_spec.cy = band_cx, band_cy
    text_spec.box = holder
    relation = None
    if on_sign:
        text_spec.word = word
        specs.append(text_spec)
    if companion:
        size = rng.choice(("small", "medium"))
        obj = _Spec(rng.choice(SHAPES), rng.choice(list(COLOURS)), size, _radius(rng, size))
        if companion_spec is not None:
            obj = companion_spec
        for _ in range(100):
            obj.cx = rng.uniform(0.5 - 0.08, 0.5 + 0.08)
            obj.cy = rng.uniform(0.5, 1 - obj.r - PAD) if text_top else rng.uniform(obj.r + PAD, 0.5)
            if _inside(obj.cx, obj.cy, obj.r) and _clear(obj, [text_spec]):
                break
        else:
            raise _LayoutError("no room for the companion object")
        if not relation_holds(
            _spec_truth(obj, "flat"), "below" if text_top else "above", _spec_truth(text_spec, "flat")
        ):
            raise _LayoutError("companion relation does not hold")
        specs.append(obj)
        if on_sign:
            relation = (0, "above" if text_top else "below", 1)  # the sign is the subject
    return specs, relation, (word, ink, on_sign)


# ----------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _font(name: str, px: int) -> _FontT:
    if name in _FONT_FILES and Path(_FONT_FILES[name]).is_file():
        return ImageFont.truetype(_FONT_FILES[name], px)
    return ImageFont.load_default(size=px)


@lru_cache(maxsize=4096)
def _ink_bbox(name: str, word: str, px: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = _font(name, px).getbbox(word)
    return float(x0), float(y0), float(x1), float(y1)


def _luma(rgb: Sequence[float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _legible(ink: RGB, paper: RGB) -> bool:
    return (
        colour_distance(ink, paper) >= TEXT_MIN_CONTRAST
        and abs(_luma(ink) - _luma(paper)) >= TEXT_MIN_LUMA_CONTRAST
    )


def _shade(rgb: RGB, amount: float) -> RGB:
    """Mix towards black (light colours) or white (dark colours): a low-contrast variant of ``rgb``."""
    target = 0 if _luma(rgb) > 110 else 255
    r, g, b = (round(c + (target - c) * amount) for c in rgb)
    return r, g, b


def _ink_for(rgb: RGB) -> str:
    return max(("black", "white"), key=lambda n: abs(_luma(COLOURS[n]) - _luma(rgb)))


@lru_cache(maxsize=64)
def _gradient_mask(side: int, horizontal: bool) -> Image.Image:
    mask = Image.linear_gradient("L").resize((side, side), Image.Resampling.BILINEAR)
    return mask.transpose(Image.Transpose.ROTATE_90) if horizontal else mask


@lru_cache(maxsize=256)
def _pattern_mask(kind: str, side: int, period: int, variant: int) -> Image.Image:
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    half = period / 2
    if kind == "stripes":
        if variant == 0:  # horizontal
            for y in range(0, side, period):
                draw.rectangle((0, y, side, y + half - 1), fill=255)
        elif variant == 1:  # vertical
            for x in range(0, side, period):
                draw.rectangle((x, 0, x + half - 1, side), fill=255)
        else:  # diagonal
            for x in range(-side, side, period):
                draw.polygon([(x, 0), (x + half, 0), (x + half + side, side), (x + side, side)], fill=255)
    elif kind == "dots":
        rad = period * 0.22
        for j, y in enumerate(range(period // 2, side + period, period)):
            off = half if variant and j % 2 else 0
            for x in range(period // 2, side + period, period):
                draw.ellipse((x + off - rad, y - rad, x + off + rad, y + rad), fill=255)
    else:  # checker
        for j, y in enumerate(range(0, side, period)):
            for i, x in enumerate(range(0, side, period)):
                if (i + j) % 2:
                    draw.rectangle((x, y, x + period - 1, y + period - 1), fill=255)
    return mask


def _background(kind: str, rgb: RGB, side: int, unit: float, rng: random.Random) -> Image.Image:
    """The background at the supersampled resolution; ``unit`` is supersampled pixels per output pixel
    of a 64 px canvas (patterns scale with the canvas)."""
    alt = _shade(rgb, rng.uniform(0.09, 0.16))
    img = Image.new("RGB", (side, side), rgb)
    if kind in ("gradient_vertical", "gradient_horizontal"):
        return Image.composite(
            Image.new("RGB", (side, side), alt), img, _gradient_mask(side, kind.endswith("l"))
        )
    if kind == "split":
        cut = round(side * rng.uniform(0.35, 0.65))
        img.paste(alt, (0, 0, side, cut) if rng.random() < 0.5 else (0, 0, cut, side))
        return img
    if kind == "solid":
        return img
    period = max(2, round(unit * rng.choice((6, 8, 10, 12)))) // 2 * 2
    variant = rng.randrange(3) if kind == "stripes" else rng.randrange(2)
    img.paste(alt, (0, 0, side, side), _pattern_mask(kind, side, period, variant))
    return img


_SHADOW_ALPHA = [round(v * 0.55) for v in range(256)]


def _draw_shadows(img: Image.Image, truth: SceneTruth, size: int) -> None:
    layer = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(layer)
    off = 0.035 * size
    for o in truth.objects:
        if o.shape == SIGN and o.box is not None:
            x0, y0, x1, y1 = (v * size + off for v in o.box)
            draw.rounded_rectangle((x0, y0, x1, y1), radius=(y1 - y0) * 0.2, fill=255)
        else:
            _fill_shape(draw, o.shape, o.cx * size + off, o.cy * size + off, o.radius * size, 255)
    layer = layer.filter(ImageFilter.GaussianBlur(max(0.6, size / 60))).point(_SHADOW_ALPHA)
    layer = layer.resize(img.size, Image.Resampling.BILINEAR)
    r, g, b = (round(c * 0.55) for c in truth.background_rgb)
    img.paste((r, g, b), (0, 0, *img.size), layer)


def _draw_sketch(img: Image.Image, o: ObjectTruth, scale: float, rng: random.Random) -> None:
    cx, cy, r = o.cx * scale, o.cy * scale, o.radius * scale * 0.93
    x0, y0 = math.floor(cx - r - 2), math.floor(cy - r - 2)
    w = h = math.ceil(2 * r + 5)
    fill = Image.new("L", (w, h), 0)
    _fill_shape(ImageDraw.Draw(fill), o.shape, cx - x0, cy - y0, r, 255)
    hatch = Image.new("L", (w, h), 0)
    hd = ImageDraw.Draw(hatch)
    step = max(3.0, scale / 64 * 3.2)
    lw = max(1, round(scale / 64 * 1.1))
    slope = rng.choice((1, -1))
    k = -float(w)
    while k < w:
        a = k + rng.uniform(-0.3, 0.3) * step
        hd.line([(a, 0), (a + slope * h, h)] if slope > 0 else [(a + h, 0), (a, h)], fill=255, width=lw)
        k += step
    img.paste(o.rgb, (x0, y0, x0 + w, y0 + h), ImageChops.darker(fill, hatch))
    draw = ImageDraw.Draw(img)
    stroke = max(1, round(scale / 64 * 1.3))
    for rr in (r, r * RING_INNER) if o.shape == "ring" else (r,):
        for _ in range(2):
            jit = rr * 0.05
            pts = [
                (x + rng.uniform(-jit, jit), y + rng.uniform(-jit, jit))
                for x, y in _points(o.shape, cx, cy, rr)
            ]
            draw.line([*pts, pts[0]], fill=o.rgb, width=stroke, joint="curve")


def _draw_text(img: Image.Image, text: TextTruth, scale: int) -> None:
    """Draw the word at the largest font size that fits its truth box, centred in it."""
    x0, y0, x1, y1 = (v * scale for v in text.box)
    px = _fit_font_px(text.font, text.word, (x1 - x0) * 1.002, (y1 - y0) * 1.002)
    bx0, by0, bx1, by1 = _ink_bbox(text.font, text.word, px)
    left = x0 + ((x1 - x0) - (bx1 - bx0)) / 2 - bx0
    top = y0 + ((y1 - y0) - (by1 - by0)) / 2 - by0
    ImageDraw.Draw(img).text((left, top), text.word, font=_font(text.font, px), fill=text.rgb)


def _render(truth: SceneTruth, size: int, ss: int, rng: random.Random) -> Image.Image:
    side = size * ss
    img = _background(truth.background, truth.background_rgb, side, side / 64, rng)
    if truth.style == "shadow":
        _draw_shadows(img, truth, size)
    draw = ImageDraw.Draw(img)
    for o in truth.objects:
        cx, cy, r = o.cx * side, o.cy * side, o.radius * side
        edge = COLOURS["white" if sum(o.rgb) < 200 else "black"]
        if o.shape == SIGN and o.box is not None:
            x0, y0, x1, y1 = (v * side for v in o.box)
            outline = edge if truth.style == "outlined" else None
            draw.rounded_rectangle(
                (x0, y0, x1, y1), radius=(y1 - y0) * 0.2, fill=o.rgb, outline=outline, width=max(1, ss * 1)
            )
        elif o.style == "sketch":
            _draw_sketch(img, o, side, rng)
        else:
            _fill_shape(draw, o.shape, cx, cy, r, o.rgb)
            if o.style == "outlined":
                _outline_shape(draw, o.shape, cx, cy, r, edge, max(1, round(min(r * 0.16, side * 0.025))))
    if truth.text is not None:
        _draw_text(img, truth.text, side)
    return img.reduce(ss) if ss > 1 else img


# ----------------------------------------------------------------------------------------------------------
# Scene generation
# ----------------------------------------------------------------------------------------------------------


def _build_truth(rng: random.Random, kind: str) -> SceneTruth:
    """Sample a consistent truth (independent of the output size)."""
    text: TextTruth | None = None
    count: int | None = None
    if kind == "text":
        font = rng.choice(FONTS)
        specs, relation, (word, ink, on_sign) = _layout_text(rng, font)
        style = rng.choice(("flat", "flat", "outlined", "shadow"))  # sketch hatching would hide the word
        objects = [s for s in specs if s.shape != SIGN]
        avoid = [COLOURS[s.colour] for s in objects]
        if on_sign:
            sign = specs[0]
            sign.colour = rng.choice([c for c in COLOURS if COLOURS[c] not in avoid])
            avoid.append(COLOURS[sign.colour])
            ink_name = _ink_for(COLOURS[sign.colour])
            if not _legible(COLOURS[ink_name], COLOURS[sign.colour]):
                raise _LayoutError("no legible ink on this sign")
        bg = _background_colour(rng, avoid)
        if not on_sign:
            inks = [c for c in COLOURS if _legible(COLOURS[c], COLOURS[bg])]
            if not inks:
                raise _LayoutError("no legible ink on this background")
            ink_name = rng.choice(inks)
        text = TextTruth(word, ink_name, COLOURS[ink_name], ink, font, 0 if on_sign else None)
    else:
        layout = {
            "single": _layout_single,
            "pair": _layout_pair,
            "count": _layout_count,
            "mixed": _layout_mixed,
        }
        specs, relation = layout[kind](rng)
        style = _weighted(rng, STYLE_WEIGHTS)
        bg = _background_colour(rng, [COLOURS[s.colour] for s in specs])
        word = None
        if kind == "count":
            count = len(specs)
    pattern = _weighted(rng, BACKGROUND_WEIGHTS)
    truths = tuple(_spec_truth(s, style) for s in specs)
    return SceneTruth(kind, truths, pattern, COLOURS[bg], relation, count, word, style, text)


def generate_scene(
    seed: int,
    size: int = 64,
    kind: str | None = None,
    paraphrase: bool = False,
    supersample: int = 4,
    kind_weights: Mapping[str, float] | None = None,
) -> Scene:
    """Render the scene for ``seed``: an RGB ``size`` x ``size`` image, a caption and the exact truth.

    ``kind`` selects one of :data:`KINDS`; ``None`` picks one by ``kind_weights`` (default
    :data:`DEFAULT_KIND_WEIGHTS`). ``paraphrase=True`` words the caption with held-out templates (for
    evaluation prompts only); the image and truth for a seed do not depend on it.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; expected one of {KINDS}")
    if size < 16 or supersample < 1:
        raise ValueError("size must be at least 16 and supersample at least 1")
    rng = random.Random(seed)
    chosen = kind or _weighted(rng, kind_weights or DEFAULT_KIND_WEIGHTS)
    for _ in range(200):
        try:
            truth = _build_truth(rng, chosen)
            break
        except _LayoutError:
            continue
    else:  # pragma: no cover - layouts succeed within a handful of attempts
        raise RuntimeError(f"could not lay out a {chosen!r} scene for seed {seed}")
    image = _render(truth, size, supersample, random.Random(f"gouache-mini/{seed}/render"))
    caption, mentioned = compose_caption(truth, random.Random(f"gouache-mini/{seed}/caption"), paraphrase)
    return Scene(image, caption, truth, mentioned)


# ----------------------------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------------------------


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


class _Lexicon:
    """Synonym choices for one caption: a caption says "grey" or "gray", never both."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.chosen: dict[tuple[str, str], int] = {}

    def _pick(self, table: str, key: str, n: int) -> int:
        if (table, key) not in self.chosen:
            self.chosen[(table, key)] = self.rng.randrange(n)
        return self.chosen[(table, key)]

    def colour(self, name: str) -> str:
        words = COLOUR_WORDS[name]
        return words[self._pick("colour", name, len(words))]

    def shape(self, name: str, plural: bool = False) -> str:
        forms = SHAPE_WORDS[name]
        return forms[self._pick("shape", name, len(forms))][1 if plural else 0]

    def size(self, name: str) -> str:
        words = SIZE_WORDS[name]
        return words[self._pick("size", name, len(words))]


def _np(o: ObjectTruth, lex: _Lexicon, with_size: bool, determiner: str = "indefinite") -> str:
    """Noun phrase for one object: "a small red circle", "the violet star", "one big disc"."""
    words = [lex.size(o.size)] if with_size else []
    words += [lex.colour(o.colour), lex.shape(o.shape)]
    core = " ".join(words)
    if determiner in ("the", "one"):
        return f"{determiner} {core}"
    if determiner == "none":
        return core
    return _article(core)


def _number(n: int, rng: random.Random) -> str:
    if n == 1:
        return rng.choice(("one", "a single", "1"))
    return str(n) if rng.random() < 0.35 else NUMBER_WORDS[n]


def _bg_phrase(truth: SceneTruth, rng: random.Random, lex: _Lexicon, mentioned: set[str]) -> str:
    colour = lex.colour(truth.background_colour)
    if rng.random() < 0.4:
        adj = rng.choice(BACKGROUND_ADJECTIVES[truth.background])
        colour = f"{adj} {colour}"
        mentioned.add("background_pattern")
    mentioned.add("background")
    return rng.choice(("on ", "against ", "with ")) + _article(colour) + " background"


def _style_phrase(truth: SceneTruth, rng: random.Random, mentioned: set[str]) -> str:
    mentioned.add("style")
    return rng.choice(STYLE_PHRASES[truth.style])


def _join(items: Sequence[str], rng: random.Random) -> str:
    if len(items) == 1:
        return items[0]
    sep = rng.choice((" and ", ", and ")) if len(items) > 2 else " and "
    return ", ".join(items[:-1]) + sep + items[-1]


def _quoted(word: str, rng: random.Random) -> str:
    return f'"{word}"' if rng.random() < 0.5 else word


def compose_caption(
    truth: SceneTruth, rng: random.Random, paraphrase: bool = False
) -> tuple[str, frozenset[str]]:
    """A caption for ``truth`` and the set of attributes it asserts (see :class:`Scene`)."""
    mentioned: set[str] = set()
    lex = _Lexicon(rng)
    objs = truth.objects
    with_size = truth.kind != "text" and rng.random() < 0.45  # size words go on every object or none
    if with_size:
        mentioned.add("size")
    lead_ok = True  # whether a TRAIN lead may precede the body
    plural = False
    if truth.kind == "single":
        o = objs[0]
        mentioned |= {"colour", "shape"}
        np_ = _np(o, lex, with_size, rng.choice(("indefinite",) * 4 + ("one",)))
        with_pos = rng.random() < 0.6
        if with_pos:
            mentioned.add("position")
            pos = rng.choice(POSITION_PHRASES[o.position])
            if paraphrase and rng.random() < 0.4:
                body = f"{np_}, {rng.choice(('placed', 'positioned', 'sitting'))} {pos}"
            else:
                form = rng.randrange(3)
                if form == 0:
                    body = f"{np_} {pos}"
                elif form == 1:
                    body, lead_ok = f"{pos}, {np_}", False
                else:
                    body, lead_ok = f"{pos} is {np_}", False
        else:
            body = np_
    elif truth.kind == "count":
        o, n = objs[0], len(objs)
        mentioned |= {"colour", "shape", "count"}
        noun = lex.shape(o.shape, plural=n > 1)
        adj = (lex.size(o.size) + " " if with_size else "") + lex.colour(o.colour)
        num = _number(n, rng)
        form = rng.randrange(4) if n > 1 else 0
        plural = n > 1 and form != 1  # "there are three ..." but "there is a group of ..."
        if form == 0:
            body = f"{num} {adj} {noun}"
        elif form == 1:
            body = f"a group of {num} {adj} {noun}"
        elif form == 2:
            body = f"exactly {num} {adj} {noun}"
        else:
            body, lead_ok = f"{adj} {noun}, {num} of them", False
    elif truth.kind in ("pair", "mixed"):
        mentioned |= {"colour", "shape"}
        rel = truth.relation
        if truth.kind == "pair" and rel is not None:
            mentioned.add("relation")
            a, name, b = rel
            if rng.random() < 0.4:
                a, name, b = b, INVERSE_RELATION[name], a
            np_a, np_b = _np(objs[a], lex, with_size), _np(objs[b], lex, with_size)
            rel_words = rng.choice(RELATION_WORDS[name])
            if paraphrase and rng.random() < 0.5:
                tail = {
                    "left of": "to its right",
                    "right of": "to its left",
                    "above": "beneath it",
                    "below": "above it",
                    "next to": "beside it",
                }[name]
                body = f"{np_a} with {np_b} {tail}"
            elif rng.random() < 0.25:
                body, lead_ok = f"{rel_words} {np_b} is {np_a}", False
            else:
                body = f"{np_a} {rel_words} {np_b}"
        else:
            order = list(range(len(objs)))
            rng.shuffle(order)
            body = _join([_np(objs[i], lex, with_size) for i in order], rng)
            if rng.random() < 0.3 and not paraphrase:
                body = f"{NUMBER_WORDS[len(objs)]} shapes: {body}"
                lead_ok = False
            if rel is not None:
                mentioned.add("relation")
                a, name, b = rel
                np_a, np_b = _np(objs[a], lex, False, "the"), _np(objs[b], lex, False, "the")
                rel_words = rng.choice(RELATION_WORDS[name])
                if paraphrase:
                    body += f", where {np_a} sits {rel_words} {np_b}"
                elif rng.random() < 0.5:
                    body += f", with {np_a} {rel_words} {np_b}"
                else:
                    body += f"; {np_a} is {rel_words} {np_b}"
    else:  # text
        mentioned.add("word")
        text = truth.text
        word = truth.word or (text.word if text else "")
        w = _quoted(word, rng)
        if text is not None and text.sign is not None:
            sign = objs[text.sign]
            noun = rng.choice(("sign", "sign", "label"))
            if rng.random() < 0.7:
                mentioned.add("colour")
                noun = lex.colour(sign.colour) + " " + noun
            verb = rng.choice(("that says", "reading", "saying", "with the word", "with the text"))
            head = f"{_article(noun)} {verb} {w}"
            if rng.random() < 0.3:
                mentioned.add("text_colour")
                head += f" in {lex.colour(text.colour)} letters"
        else:
            ink = lex.colour(text.colour) if text else "black"
            form = rng.randrange(4)
            if form < 3:
                mentioned.add("text_colour")
            head = (
                f"the word {w} written in {ink}",
                f"the word {w} in {ink} letters",
                f"{ink} text that says {w}",
                f"the word {w}",
            )[form]
            if paraphrase and rng.random() < 0.5:
                head = f"the text {w} in {ink}" if form < 3 else f"the text {w}"
        body = head
        others = [i for i, o in enumerate(objs) if o.shape != SIGN]
        if others:
            mentioned |= {"colour", "shape", "relation"}
            obj = objs[others[0]]
            text_above = text is not None and text.box[1] < obj.cy
            if rng.random() < 0.5:
                rel_words = rng.choice(RELATION_WORDS["above" if text_above else "below"])
                body = f"{head} {rel_words} {_np(obj, lex, False)}"
            else:
                rel_words = rng.choice(RELATION_WORDS["below" if text_above else "above"])
                body = f"{_np(obj, lex, False)} {rel_words} {head}"
    tails = []
    if rng.random() < 0.35:
        tails.append(_bg_phrase(truth, rng, lex, mentioned))
    if rng.random() < (0.15 if truth.style == "flat" else 0.35):
        tails.append(_style_phrase(truth, rng, mentioned))
    rng.shuffle(tails)
    caption = body + "".join((", " if rng.random() < 0.3 else " ") + t for t in tails)
    if paraphrase:  # a body that cannot follow a verb ("in the top left, ...") gets "Picture: "
        caption = (rng.choice(PARAPHRASE_LEADS) if lead_ok else "Picture: ") + caption
    elif lead_ok:
        leads = [*_TRAIN_PLAIN_LEADS, "there are " if plural else "there is "]
        if truth.kind == "text":
            leads = [ld for ld in leads if not ld.startswith("there")]
        caption = rng.choice(leads) + caption
    return caption, frozenset(mentioned)


def caption_for(truth: SceneTruth, rng: random.Random, paraphrase: bool = False) -> str:
    """A caption for ``truth``; call repeatedly with one ``rng`` for many wordings of the same scene."""
    return compose_caption(truth, rng, paraphrase)[0]


# ----------------------------------------------------------------------------------------------------------
# Planning a scene from a partial description (the planner of gouache-mini's text encoder)
# ----------------------------------------------------------------------------------------------------------

#: The most objects a planned scene holds (the generator draws at most 4; a prompt may ask for a few more).
MAX_PLANNED_OBJECTS = 6


@dataclass(frozen=True)
class ObjectRequest:
    """One object a caption asks for; what it leaves out (None) is chosen like the generator would."""

    shape: str
    colour: str | None = None
    size: str | None = None


@dataclass(frozen=True)
class SceneRequest:
    """What a caption asks for. ``relation`` indexes ``objects``; a word goes on a sign (``on_sign``) or on
    the background, and ``word_relation`` says whether it is ``"above"`` or ``"below"`` ``objects[0]``."""

    objects: tuple[ObjectRequest, ...] = ()
    relation: tuple[int, str, int] | None = None
    position: str | None = None
    count: int | None = None
    word: str | None = None
    on_sign: bool = False
    sign_colour: str | None = None
    text_colour: str | None = None
    word_relation: str | None = None
    background_colour: str | None = None
    background: str | None = None
    style: str | None = None


def _place_in_cell(rng: random.Random, spec: _Spec, position: str) -> None:
    """Place ``spec`` at random inside the grid cell ``position`` (one of :data:`POSITIONS`)."""
    row, col = divmod(POSITIONS.index(position), 3)
    inner = 0.035  # keep clear of the grid lines so the position name is unambiguous

    def span(i: int) -> tuple[float, float]:
        lo = i / 3 + (inner if i > 0 else 0.0)
        hi = (i + 1) / 3 - (inner if i < 2 else 0.0)
        return max(lo, spec.r + PAD), min(hi, 1 - spec.r - PAD)

    (x0, x1), (y0, y1) = span(col), span(row)
    if x0 > x1 or y0 > y1:
        raise _LayoutError("object too big for its cell")
    spec.cx, spec.cy = rng.uniform(x0, x1), rng.uniform(y0, y1)


def _request_specs(rng: random.Random, request: SceneRequest, shrink: int) -> list[_Spec]:
    """Specs for the requested objects: missing colours differ from the named ones; ``shrink`` steps every
    size down (when the layout does not fit). A size the caption leaves open is the largest that stays
    legible and placeable (:func:`_legible_size`): at 64 px a small star or hexagon barely reads as one."""
    objects = list(request.objects[:MAX_PLANNED_OBJECTS])
    named = {o.colour for o in objects if o.colour}
    free = [c for c in COLOURS if c not in named] or list(COLOURS)
    default = _legible_size(request, len(objects))
    specs = []
    for o in objects:
        colour = o.colour or free.pop(rng.randrange(len(free)) if len(free) > 1 else 0)
        size = SIZES[max(0, SIZES.index(o.size or default) - shrink)]
        specs.append(_Spec(o.shape, colour, size, _radius(rng, size)))
    if request.count is not None:  # the same object n times: one colour
        for s in specs[1:]:
            s.colour = specs[0].colour
    return specs


def _legible_size(request: SceneRequest, n: int) -> str:
    """The planner's size for an object whose size the caption leaves open: large for one or two objects,
    medium for more, for counted objects and for one object in a named grid cell (a large one hardly fits a
    cell). Measured on 200 held-out scenes (the shipped weights, 64 px): shape 81 % -> 84 % and relation
    83 % -> 90 % against sizes drawn like the training scenes'."""
    if n > 2 or request.count is not None or (n == 1 and request.position in POSITIONS):
        return "medium"
    return "large"


def _plan_objects(rng: random.Random, request: SceneRequest, shrink: int) -> list[_Spec]:
    specs = _request_specs(rng, request, shrink)
    if len(specs) == 1 and request.position in POSITIONS:
        _place_in_cell(rng, specs[0], request.position)
        return specs
    placed: list[_Spec] = []
    if request.relation is not None:
        a, name, b = request.relation
        if a != b and max(a, b) < len(specs):
            _place_pair(rng, specs[a], specs[b], name)
            placed = [specs[a], specs[b]]
    _scatter(rng, [s for s in specs if all(s is not p for p in placed)], placed)
    return specs


def _plan_truth(rng: random.Random, request: SceneRequest, shrink: int) -> SceneTruth:
    text: TextTruth | None = None
    relation: tuple[int, str, int] | None = None
    if request.word:
        font = rng.choice(FONTS)
        companion = None
        if request.objects:
            o = request.objects[0]
            size = SIZES[max(0, SIZES.index(o.size or "small") - shrink)] if o.size != "large" else "medium"
            companion = _Spec(o.shape, o.colour or rng.choice(list(COLOURS)), size, _radius(rng, size))
        text_top = None if request.word_relation is None else request.word_relation == "above"
        specs, relation, (word, ink, on_sign) = _layout_text(
            rng, font, request.word, request.on_sign, companion, text_top
        )
        style = request.style or rng.choice(("flat", "flat", "outlined", "shadow"))
        objects = [s for s in specs if s.shape != SIGN]
        avoid = [COLOURS[s.colour] for s in objects]
        ink_name = request.text_colour
        if on_sign:
            sign = specs[0]
            sign.colour = request.sign_colour or rng.choice([c for c in COLOURS if COLOURS[c] not in avoid])
            avoid.append(COLOURS[sign.colour])
            if ink_name is None or not _legible(COLOURS[ink_name], COLOURS[sign.colour]):
                ink_name = _ink_for(COLOURS[sign.colour])
        bg = request.background_colour or _background_colour(rng, avoid)
        if not on_sign and (ink_name is None or not _legible(COLOURS[ink_name], COLOURS[bg])):
            inks = [c for c in COLOURS if _legible(COLOURS[c], COLOURS[bg])] or ["black"]
            ink_name = rng.choice(inks)
        assert ink_name is not None
        text = TextTruth(word, ink_name, COLOURS[ink_name], ink, font, 0 if on_sign else None)
        kind = "text"
    else:
        specs = _plan_objects(rng, request, shrink)
        relation = request.relation if request.relation and len(specs) > 1 else None
        style = request.style or _weighted(rng, STYLE_WEIGHTS)
        avoid = [COLOURS[s.colour] for s in specs]
        bg = request.background_colour or _background_colour(rng, avoid)
        count = len(specs) if request.count is not None else None
        kind = "count" if count else "single" if len(specs) == 1 else "pair" if len(specs) == 2 else "mixed"
    pattern = request.background or _weighted(rng, BACKGROUND_WEIGHTS)
    truths = tuple(_spec_truth(s, style) for s in specs)
    count = len(specs) if request.count is not None and not request.word else None
    return SceneTruth(kind, truths, pattern, COLOURS[bg], relation, count, request.word, style, text)


def plan_scene(request: SceneRequest, rng: random.Random) -> SceneTruth:
    """A complete scene truth that honours ``request``, with everything else drawn as the generator draws
    it: positions that satisfy the relation (or the named grid cell), sizes, free colours, a background far
    from every object colour, a style. When the objects do not fit, sizes step down."""
    for shrink in range(len(SIZES)):
        for _ in range(60):
            try:
                return _plan_truth(rng, request, shrink)
            except _LayoutError:
                continue
    # Nothing fits (e.g. six large objects with a relation): drop the relation and the position.
    relaxed = SceneRequest(
        objects=tuple(
            ObjectRequest(o.shape, o.colour, "small") for o in request.objects[:MAX_PLANNED_OBJECTS]
        ),
        count=request.count,
        background_colour=request.background_colour,
        background=request.background,
        style=request.style,
    )
    for _ in range(200):
        try:
            return _plan_truth(rng, relaxed, 0)
        except _LayoutError:
            continue
    raise RuntimeError("could not lay out the requested scene")


def render_truth(truth: SceneTruth, size: int = 64, seed: int = 0, supersample: int = 4) -> Image.Image:
    """Draw a truth (e.g. a planned one) exactly as the generator draws its scenes."""
    return _render(truth, size, supersample, random.Random(f"gouache-mini/{seed}/render"))
