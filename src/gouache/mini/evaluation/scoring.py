"""One scene's verdicts: each metric the caption mentions, scored against the truth as yes/no trials.

Objects are found in the image's :class:`~gouache.mini.evaluation.analysis.Analysis` by colour (and, among
regions of one colour, by shape), never by where the truth says they are; relations use a tolerant version
of the generator's own :func:`~gouache.mini.scenes.truth.relation_holds`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from gouache.mini.evaluation.analysis import SPECK_AREA, SQUARE, Analysis, Region, analyse, dilate
from gouache.mini.evaluation.ocr import read_text, text_match
from gouache.mini.evaluation.shape_fit import classify_shape, shape_scores, unit_area
from gouache.mini.scenes.truth import ObjectTruth, Scene, colour_distance, position_name
from gouache.mini.scenes.vocabulary import COLOUR_WORDS, NAMED_COLOURS, SIGN

OUTLINE_SHARE = 0.8  # a region this much within 2 px of another is that one's outline
MIN_AREA_FRACTION = 0.25  # a detected object covers at least this share of its expected area
COUNT_MIN_SHARE = 0.25  # for counting, a region is at least this share of its colour's largest region
RELATION_TOLERANT_MARGIN = 0.05
RELATION_TOLERANT_RATIO = 1.0
NEXT_TO_TOLERANT_GAP = 0.2


def _expected_area(obj: ObjectTruth, size: int) -> float:
    if obj.shape == SIGN and obj.box is not None:
        x0, y0, x1, y1 = obj.box
        return (x1 - x0) * (y1 - y0) * size * size * 0.6  # the word covers part of the plate
    return unit_area(obj.shape) * (obj.radius * size) ** 2


def outlines(outer: Region, inner: Region, size: int) -> bool:
    """Whether ``outer`` is an outline of ``inner``: at least :data:`OUTLINE_SHARE` of its pixels lie within
    2 pixels of ``inner``'s."""
    near = np.zeros((size, size), dtype=np.uint8)
    near[inner.ys, inner.xs] = 1
    near = dilate(dilate(near, SQUARE), SQUARE).astype(bool)
    return float(near[outer.ys, outer.xs].mean()) >= OUTLINE_SHARE


def is_dominant(region: Region, analysis: Analysis) -> bool:
    """Whether ``region`` is the largest foreground region, not counting its own outline."""
    return all(
        other is region or other.area <= region.area or outlines(other, region, analysis.size)
        for other in analysis.regions
    )


def _relation_holds(a: Region, relation: str, b: Region) -> bool:
    """Tolerant version of :func:`gouache.mini.scenes.truth.relation_holds` on detected regions."""
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


def named_colour(rgb: Sequence[float]) -> str:
    """The nearest colour of :data:`~gouache.mini.scenes.vocabulary.NAMED_COLOURS`: light and dark shades
    ("light gray") are colours of their own, as a person tells them apart."""
    return min(NAMED_COLOURS, key=lambda name: colour_distance(NAMED_COLOURS[name], rgb))


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
    if "background" in scene.mentioned and truth.background == "solid" and len(analysis.background):
        found = named_colour(analysis.background[0])
        result.details["background"] = found
        result.add("background", found == named_colour(truth.background_rgb))
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
