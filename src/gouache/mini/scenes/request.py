"""A scene asked for in part, laid out in full: what gouache-mini's caption reader hands to the grounding.

The caption reader (:mod:`gouache.mini.reading`) turns a caption into a :class:`SceneRequest`: the objects it
names, a relation, a grid cell, a count, a word and where it is written, the background and the style.
:func:`layout_scene` completes it into a :class:`~gouache.mini.scenes.truth.SceneTruth` with the generator's
own placement code (:mod:`gouache.mini.scenes.layout`), so relations and grid cells hold by the same
definitions the evaluator uses; whatever the request leaves open is drawn as the generator would draw it.
This module is on the serving path, so it imports no rendering and no caption generation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gouache.mini.scenes.fonts import FONTS
from gouache.mini.scenes.layout import (
    LayoutError,
    Spec,
    layout_text,
    pick_background_colour,
    place_in_cell,
    place_pair,
    sample_radius,
    scatter,
    spec_truth,
    weighted_choice,
)
from gouache.mini.scenes.truth import SceneTruth, TextTruth, ink_for, legible
from gouache.mini.scenes.vocabulary import (
    BACKGROUND_WEIGHTS,
    COLOURS,
    PAD,
    POSITIONS,
    SIGN,
    SIZES,
    STYLE_WEIGHTS,
    Box,
)

#: The most objects a requested scene holds (the generator draws at most 4; a prompt may ask for a few more).
MAX_REQUESTED_OBJECTS = 6
#: How a concept (:mod:`gouache.mini.concepts`) is laid out: as a circle of its size, whose place, size,
#: count and relation the planner decides as for any shape; the finish stage draws the concept there.
CONCEPT_SHAPE = "circle"


@dataclass(frozen=True)
class ObjectRequest:
    """One object a caption asks for; what it leaves out (None) is chosen like the generator would."""

    shape: str
    colour: str | None = None
    size: str | None = None
    #: The light or dark shade of ``colour`` asked for (a name of ``SHADES``): laid out and painted as
    #: ``colour``, tinted after denoising (:mod:`gouache.mini.finishing`).
    shade: str | None = None
    #: The concept drawn here (an atlas id, :mod:`gouache.mini.concepts`), laid out as ``shape``; ``colour``
    #: is then the colour asked for (None: the drawing's own colours).
    concept: str | None = None


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
    #: The shade of ``background_colour`` asked for (as :attr:`ObjectRequest.shade`).
    background_shade: str | None = None
    #: Words the caption reader could not place (nouns it has no concept for): left out of the scene.
    ignored: tuple[str, ...] = ()
    #: The setting named ("snow", "grass", ...: :data:`gouache.mini.concepts.backdrops.BACKDROPS`): planned
    #: as its main colour in ``background_colour``, drawn as a colour field at the finish.
    backdrop: str | None = None


def _request_specs(rng: random.Random, request: SceneRequest, shrink: int) -> list[Spec]:
    """Specs for the requested objects: missing colours differ from the named ones; ``shrink`` steps every
    size down (when the layout does not fit). A size the caption leaves open is the largest that stays
    legible and placeable (:func:`_legible_size`): at 64 px a small star or hexagon barely reads as one."""
    objects = list(request.objects[:MAX_REQUESTED_OBJECTS])
    named = {o.colour for o in objects if o.colour}
    free = [c for c in COLOURS if c not in named] or list(COLOURS)
    default = _legible_size(request, len(objects))
    specs = []
    for o in objects:
        colour = o.colour or _concept_colour(o) or free.pop(rng.randrange(len(free)) if len(free) > 1 else 0)
        size = SIZES[max(0, SIZES.index(o.size or default) - shrink)]
        specs.append(Spec(o.shape, colour, size, sample_radius(rng, size), concept=o.concept))
    if request.count is not None:  # the same object n times: one colour
        for s in specs[1:]:
            s.colour = specs[0].colour
    return specs


def _concept_colour(o: ObjectRequest) -> str | None:
    """A concept's own dominant colour (so the background is chosen far from it), None for shapes."""
    if o.concept is None:
        return None
    from gouache.mini.concepts.atlas import default_atlas

    atlas = default_atlas()
    concept = atlas.by_id.get(o.concept) if atlas is not None else None
    return concept.colour if concept is not None else None


def _legible_size(request: SceneRequest, n: int) -> str:
    """The size of an object whose size the caption leaves open: large for one or two objects,
    medium for more, for counted objects and for one object in a named grid cell (a large one hardly fits a
    cell). Measured on 200 held-out scenes (the shipped weights, 64 px): shape 81 % -> 84 % and relation
    83 % -> 90 % against sizes drawn like the training scenes'."""
    if n > 2 or request.count is not None or (n == 1 and request.position in POSITIONS):
        return "medium"
    return "large"


def _place_requested(rng: random.Random, request: SceneRequest, shrink: int) -> list[Spec]:
    specs = _request_specs(rng, request, shrink)
    if len(specs) == 1 and request.position in POSITIONS:
        place_in_cell(rng, specs[0], request.position)
        return specs
    placed: list[Spec] = []
    if request.relation is not None:
        a, name, b = request.relation
        if a != b and max(a, b) < len(specs):
            place_pair(rng, specs[a], specs[b], name)
            placed = [specs[a], specs[b]]
    scatter(rng, [s for s in specs if all(s is not p for p in placed)], placed)
    return specs


def _requested_truth(rng: random.Random, request: SceneRequest, shrink: int) -> SceneTruth:
    text: TextTruth | None = None
    relation: tuple[int, str, int] | None = None
    if request.word:
        font = rng.choice(FONTS)
        companion = None
        if request.objects:
            o = request.objects[0]
            size = SIZES[max(0, SIZES.index(o.size or "medium") - shrink)] if o.size != "large" else "medium"
            colour = o.colour or _concept_colour(o) or rng.choice(list(COLOURS))
            companion = Spec(o.shape, colour, size, sample_radius(rng, size), concept=o.concept)
        text_top = None if request.word_relation is None else request.word_relation == "above"
        specs, relation, (word, ink, on_sign) = layout_text(
            rng, font, request.word, request.on_sign, companion, text_top
        )
        if request.position in POSITIONS:
            ink = _move_text_group(specs, ink, request.position)
        style = request.style or rng.choice(("flat", "flat", "outlined", "shadow"))
        objects = [s for s in specs if s.shape != SIGN]
        avoid = [COLOURS[s.colour] for s in objects]
        ink_name = request.text_colour
        if on_sign:
            sign = specs[0]
            sign.colour = request.sign_colour or rng.choice([c for c in COLOURS if COLOURS[c] not in avoid])
            avoid.append(COLOURS[sign.colour])
            if ink_name is None or not legible(COLOURS[ink_name], COLOURS[sign.colour]):
                ink_name = ink_for(COLOURS[sign.colour])
        bg = request.background_colour or pick_background_colour(rng, avoid)
        if not on_sign and (ink_name is None or not legible(COLOURS[ink_name], COLOURS[bg])):
            inks = [c for c in COLOURS if legible(COLOURS[c], COLOURS[bg])] or ["black"]
            ink_name = rng.choice(inks)
        assert ink_name is not None
        text = TextTruth(word, ink_name, COLOURS[ink_name], ink, font, 0 if on_sign else None)
        kind = "text"
    else:
        specs = _place_requested(rng, request, shrink)
        relation = request.relation if request.relation and len(specs) > 1 else None
        style = request.style or weighted_choice(rng, STYLE_WEIGHTS)
        avoid = [COLOURS[s.colour] for s in specs]
        bg = request.background_colour or pick_background_colour(rng, avoid)
        count = len(specs) if request.count is not None else None
        kind = "count" if count else "single" if len(specs) == 1 else "pair" if len(specs) == 2 else "mixed"
    pattern = request.background or weighted_choice(rng, BACKGROUND_WEIGHTS)
    truths = tuple(spec_truth(s, style) for s in specs)
    count = len(specs) if request.count is not None and not request.word else None
    return SceneTruth(kind, truths, pattern, COLOURS[bg], relation, count, request.word, style, text)


def text_region(position: str) -> tuple[float, float, float, float]:
    """Where words asked to be at ``position`` go (canvas units): the row and column the position names,
    across the whole width or height for the one it leaves open ("at the bottom": the bottom third, full
    width; "top left": the top-left cell; "centre": anywhere)."""
    row = {"top": 0, "bottom": 2}.get(position.split()[0])
    col = {"left": 0, "right": 2}.get(position.split()[-1])
    x0, x1 = (col / 3, (col + 1) / 3) if col is not None else (0.0, 1.0)
    y0, y1 = (row / 3, (row + 1) / 3) if row is not None else (0.0, 1.0)
    return (max(x0, PAD), max(y0, PAD), min(x1, 1 - PAD), min(y1, 1 - PAD))


def _move_text_group(specs: list[Spec], ink: Box, position: str) -> Box:
    """Move the words, their sign and their companion object together into :func:`text_region`, shrunk
    (never enlarged) to fit it; their relation holds, as the move is a translation and a uniform scale.
    Returns the moved ink box (``specs`` are moved in place)."""
    rx0, ry0, rx1, ry1 = text_region(position)
    boxes = [ink] + [
        s.box if s.box is not None else (s.cx - s.r, s.cy - s.r, s.cx + s.r, s.cy + s.r) for s in specs
    ]
    gx0, gy0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    gx1, gy1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    scale = min(1.0, 0.96 * (rx1 - rx0) / (gx1 - gx0), 0.96 * (ry1 - ry0) / (gy1 - gy0))
    gcx, gcy, rcx, rcy = (gx0 + gx1) / 2, (gy0 + gy1) / 2, (rx0 + rx1) / 2, (ry0 + ry1) / 2

    def x(v: float) -> float:
        return rcx + (v - gcx) * scale

    def y(v: float) -> float:
        return rcy + (v - gcy) * scale

    for s in specs:
        s.cx, s.cy, s.r = x(s.cx), y(s.cy), s.r * scale
        if s.box is not None:
            s.box = (x(s.box[0]), y(s.box[1]), x(s.box[2]), y(s.box[3]))
    return (x(ink[0]), y(ink[1]), x(ink[2]), y(ink[3]))


def layout_scene(request: SceneRequest, rng: random.Random) -> SceneTruth:
    """A complete scene truth that honours ``request``, with everything else drawn as the generator draws
    it: positions that satisfy the relation (or the named grid cell), sizes, free colours, a background far
    from every object colour, a style. When the objects do not fit, sizes step down."""
    for shrink in range(len(SIZES)):
        for _ in range(60):
            try:
                return _requested_truth(rng, request, shrink)
            except LayoutError:
                continue
    # Nothing fits (e.g. six large objects with a relation): drop the relation and the position.
    relaxed = SceneRequest(
        objects=tuple(
            ObjectRequest(o.shape, o.colour, "small", concept=o.concept)
            for o in request.objects[:MAX_REQUESTED_OBJECTS]
        ),
        count=request.count,
        background_colour=request.background_colour,
        background=request.background,
        style=request.style,
    )
    for _ in range(200):
        try:
            return _requested_truth(rng, relaxed, 0)
        except LayoutError:
            continue
    raise RuntimeError("could not lay out the requested scene")
