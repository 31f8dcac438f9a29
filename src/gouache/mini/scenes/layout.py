"""Where things go in a scene: placing objects, pairs in a relation and words, as the generator lays out.

Every placement keeps objects inside the canvas (:data:`~gouache.mini.scenes.vocabulary.PAD`) and apart
(:data:`~gouache.mini.scenes.vocabulary.MIN_GAP`), and a pair is placed so that its relation holds by the
evaluator's own definition (:func:`~gouache.mini.scenes.truth.relation_holds`). A :class:`Spec` is an object
being placed (mutable); :func:`spec_truth` freezes it into an
:class:`~gouache.mini.scenes.truth.ObjectTruth`. When a placement cannot succeed it raises
:class:`LayoutError` and the caller draws again from the same random stream, so the same seed always ends in
the same layout. The generator (:mod:`gouache.mini.scenes.generator`) and the layouts of requested scenes
(:mod:`gouache.mini.scenes.request`) share these functions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gouache.mini.scenes.fonts import fit_font_px, ink_bbox
from gouache.mini.scenes.truth import ObjectTruth, colour_distance, relation_holds
from gouache.mini.scenes.vocabulary import (
    BACKGROUND_COLOUR_WEIGHTS,
    BACKGROUND_MIN_DISTANCE,
    COLOURS,
    MIN_GAP,
    NEXT_TO_MAX_GAP,
    PAD,
    POSITIONS,
    RELATIONS,
    RGB,
    SHAPES,
    SIGN,
    SIZE_BANDS,
    SIZES,
    WORDS,
    Box,
)

# ----------------------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Spec:
    shape: str
    colour: str
    size: str
    r: float
    cx: float = 0.5
    cy: float = 0.5
    box: Box | None = None
    word: str | None = None
    concept: str | None = None


class LayoutError(Exception):
    pass


def weighted_choice(rng: random.Random, weights: Mapping[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def sample_radius(rng: random.Random, size: str) -> float:
    lo, hi = SIZE_BANDS[size]
    return rng.uniform(lo, hi)


def _inside(cx: float, cy: float, r: float) -> bool:
    return r + PAD <= cx <= 1 - r - PAD and r + PAD <= cy <= 1 - r - PAD


def _clear(spec: Spec, placed: Sequence[Spec]) -> bool:
    for other in placed:
        if other.box is not None:
            x0, y0, x1, y1 = other.box
            nx, ny = min(max(spec.cx, x0), x1), min(max(spec.cy, y0), y1)
            if math.hypot(spec.cx - nx, spec.cy - ny) < spec.r + MIN_GAP:
                return False
        elif math.hypot(spec.cx - other.cx, spec.cy - other.cy) < spec.r + other.r + MIN_GAP:
            return False
    return True


def scatter(rng: random.Random, specs: Sequence[Spec], placed: list[Spec], tries: int = 200) -> None:
    """Rejection-sample positions for ``specs`` that are inside the canvas and clear of everything placed."""
    for spec in specs:
        for _ in range(tries):
            spec.cx = rng.uniform(spec.r + PAD, 1 - spec.r - PAD)
            spec.cy = rng.uniform(spec.r + PAD, 1 - spec.r - PAD)
            if _clear(spec, placed):
                placed.append(spec)
                break
        else:
            raise LayoutError("no room")


def place_pair(rng: random.Random, a: Spec, b: Spec, relation: str) -> None:
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
        ta, tb = spec_truth(a, "flat"), spec_truth(b, "flat")
        if relation_holds(ta, relation, tb) and _inside(b.cx, b.cy, b.r) and _clear(b, [a]):
            return
    raise LayoutError("relation does not fit")


def place_in_cell(rng: random.Random, spec: Spec, position: str) -> None:
    """Place ``spec`` at random inside the grid cell ``position`` (one of :data:`POSITIONS`)."""
    row, col = divmod(POSITIONS.index(position), 3)
    inner = 0.035  # keep clear of the grid lines so the position name is unambiguous

    def span(i: int) -> tuple[float, float]:
        lo = i / 3 + (inner if i > 0 else 0.0)
        hi = (i + 1) / 3 - (inner if i < 2 else 0.0)
        return max(lo, spec.r + PAD), min(hi, 1 - spec.r - PAD)

    (x0, x1), (y0, y1) = span(col), span(row)
    if x0 > x1 or y0 > y1:
        raise LayoutError("object too big for its cell")
    spec.cx, spec.cy = rng.uniform(x0, x1), rng.uniform(y0, y1)


def spec_truth(s: Spec, style: str) -> ObjectTruth:
    rgb = COLOURS[s.colour]
    return ObjectTruth(s.shape, s.colour, rgb, s.cx, s.cy, s.r, s.size, style, s.word, s.box, s.concept)


def _pick_colours(rng: random.Random, n: int, distinct: bool) -> list[str]:
    names = list(COLOURS)
    return rng.sample(names, n) if distinct else [rng.choice(names)] * n


def pick_background_colour(rng: random.Random, avoid: Sequence[RGB]) -> str:
    ok = {
        n: w
        for n, w in BACKGROUND_COLOUR_WEIGHTS.items()
        if all(colour_distance(COLOURS[n], c) >= BACKGROUND_MIN_DISTANCE for c in avoid)
    }
    if not ok:
        raise LayoutError("no background colour is far from every object colour")
    return weighted_choice(rng, ok)


def _sizes_for(rng: random.Random, n: int) -> list[str]:
    if n <= 2:
        return [rng.choice(SIZES) for _ in range(n)]
    sizes = [rng.choices(SIZES, weights=(0.5, 0.4, 0.1))[0] for _ in range(n)]
    while sizes.count("large") > 1:
        sizes[sizes.index("large")] = "medium"
    return sizes


def layout_single(rng: random.Random) -> tuple[list[Spec], tuple[int, str, int] | None]:
    size = rng.choice(SIZES)
    spec = Spec(rng.choice(SHAPES), rng.choice(list(COLOURS)), size, sample_radius(rng, size))
    place_in_cell(rng, spec, POSITIONS[rng.randrange(9)])
    return [spec], None


def layout_pair(rng: random.Random) -> tuple[list[Spec], tuple[int, str, int] | None]:
    relation = rng.choice(RELATIONS)
    shapes = [rng.choice(SHAPES), rng.choice(SHAPES)]
    colours = _pick_colours(rng, 2, distinct=shapes[0] == shapes[1] or rng.random() < 0.8)
    sizes = _sizes_for(rng, 2)
    a, b = (Spec(shapes[i], colours[i], sizes[i], sample_radius(rng, sizes[i])) for i in range(2))
    place_pair(rng, a, b, relation)
    return [a, b], (0, relation, 1)


def layout_count(rng: random.Random) -> tuple[list[Spec], tuple[int, str, int] | None]:
    n = rng.choice((1, 2, 3, 4))
    size = rng.choice(SIZES if n <= 2 else ("small", "small", "medium"))
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    specs = [Spec(shape, colour, size, sample_radius(rng, size)) for _ in range(n)]
    scatter(rng, specs, [])
    return specs, None


def layout_mixed(rng: random.Random) -> tuple[list[Spec], tuple[int, str, int] | None]:
    n = rng.choice((3, 4))
    combos: set[tuple[str, str]] = set()
    while len(combos) < n:  # distinct (shape, colour) so "the red circle" names exactly one object
        combos.add((rng.choice(SHAPES), rng.choice(list(COLOURS))))
    ordered = sorted(combos)
    rng.shuffle(ordered)
    sizes = _sizes_for(rng, n)
    specs = [Spec(s, c, z, sample_radius(rng, z)) for (s, c), z in zip(ordered, sizes, strict=True)]
    relation = None
    placed: list[Spec] = []
    if rng.random() < 0.6:
        rel = rng.choice(RELATIONS)
        place_pair(rng, specs[0], specs[1], rel)
        placed = specs[:2]
        relation = (0, rel, 1)
    scatter(rng, specs[len(placed) :], placed)
    return specs, relation


_TEXT_REF_SCALE = 256  # text is laid out at this canvas size, so the truth does not depend on size


def layout_text(
    rng: random.Random,
    font: str,
    word: str | None = None,
    on_sign: bool | None = None,
    companion_spec: Spec | None = None,
    text_top: bool | None = None,
) -> tuple[list[Spec], tuple[int, str, int] | None, tuple[str, Box, bool]]:
    """A sign with a word (sometimes with a small object above or below it), or a word painted on the
    background. Returns the specs, the relation and ``(word, ink box in canvas units, on_sign)``.

    A requested scene (:func:`~gouache.mini.scenes.request.layout_scene`) fixes the word, the holder, the
    companion object and which of the two is on top; the generator leaves them to ``rng`` (drawing exactly as
    it always has)."""
    scale = _TEXT_REF_SCALE
    drawn_word = rng.choice(WORDS)
    word = word or drawn_word
    if on_sign is None:
        on_sign = rng.random() < 0.55
        companion = on_sign and rng.random() < 0.5  # a bare word has no holder object to relate to
    else:
        companion = companion_spec is not None
    specs: list[Spec] = []
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
    px = fit_font_px(font, word, ink_w * scale, ink_h * scale)
    bx0, by0, bx1, by1 = ink_bbox(font, word, px)
    w, h = (bx1 - bx0) / scale, (by1 - by0) / scale
    slack = max(0.0, 0.5 - w / 2 - pad_x - PAD - 0.005)
    band_cx = 0.5 + rng.uniform(-1, 1) * min(0.05, slack)
    ink = (band_cx - w / 2, band_cy - h / 2, band_cx + w / 2, band_cy + h / 2)
    holder = (ink[0] - pad_x, ink[1] - pad_y, ink[2] + pad_x, ink[3] + pad_y)
    if holder[0] < PAD or holder[2] > 1 - PAD or holder[1] < PAD or holder[3] > 1 - PAD:
        raise LayoutError("text does not fit")
    text_spec = Spec(SIGN, "white", "large", math.hypot(holder[2] - holder[0], holder[3] - holder[1]) / 2)
    text_spec.cx, text_spec.cy = band_cx, band_cy
    text_spec.box = holder
    relation = None
    if on_sign:
        text_spec.word = word
        specs.append(text_spec)
    if companion:
        size = rng.choice(("small", "medium"))
        obj = Spec(rng.choice(SHAPES), rng.choice(list(COLOURS)), size, sample_radius(rng, size))
        if companion_spec is not None:
            obj = companion_spec
        for _ in range(100):
            obj.cx = rng.uniform(0.5 - 0.08, 0.5 + 0.08)
            obj.cy = rng.uniform(0.5, 1 - obj.r - PAD) if text_top else rng.uniform(obj.r + PAD, 0.5)
            if _inside(obj.cx, obj.cy, obj.r) and _clear(obj, [text_spec]):
                break
        else:
            raise LayoutError("no room for the companion object")
        if not relation_holds(
            spec_truth(obj, "flat"), "below" if text_top else "above", spec_truth(text_spec, "flat")
        ):
            raise LayoutError("companion relation does not hold")
        specs.append(obj)
        if on_sign:
            relation = (0, "above" if text_top else "below", 1)  # the sign is the subject
    return specs, relation, (word, ink, on_sign)
