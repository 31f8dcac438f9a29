"""The procedural scene generator behind gouache-mini: determinism, exact truth, captions, and speed."""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest

from gouache.mini.scenes.captions import PARAPHRASE_LEADS, TRAIN_LEADS, caption_for
from gouache.mini.scenes.generator import generate_scene
from gouache.mini.scenes.shapes import object_mask
from gouache.mini.scenes.truth import (
    ObjectTruth,
    Scene,
    colour_distance,
    dominant_colour_name,
    position_name,
    probe_point,
    relation_holds,
)
from gouache.mini.scenes.vocabulary import (
    BACKGROUND_MIN_DISTANCE,
    BACKGROUNDS,
    COLOUR_WORDS,
    COLOURS,
    KINDS,
    MIN_GAP,
    PAD,
    POSITIONS,
    RELATIONS,
    SHAPE_WORDS,
    SHAPES,
    SIGN,
    SIZE_BANDS,
    STYLES,
)

N_PER_KIND = 60


@pytest.fixture(scope="module")
def scenes() -> dict[str, list[Scene]]:
    return {kind: [generate_scene(seed, kind=kind) for seed in range(N_PER_KIND)] for kind in KINDS}


def _all(scenes: dict[str, list[Scene]]) -> list[Scene]:
    return [s for group in scenes.values() for s in group]


def test_vocabulary_is_rich_and_colours_far_apart() -> None:
    assert len(SHAPES) >= 8 and len(COLOURS) >= 10 and len(STYLES) >= 4 and len(BACKGROUNDS) >= 5
    assert set(RELATIONS) == {"left of", "right of", "above", "below", "next to"}
    assert len(POSITIONS) == 9
    names = list(COLOURS)
    for i, a in enumerate(names):
        assert dominant_colour_name(COLOURS[a]) == a
        for b in names[i + 1 :]:
            assert colour_distance(COLOURS[a], COLOURS[b]) > 90, (a, b)
    assert set(SHAPE_WORDS) == set(SHAPES) and set(COLOUR_WORDS) == set(COLOURS)


def test_same_seed_same_scene_and_paraphrase_keeps_the_picture() -> None:
    for seed in (0, 7, 12345, -3):
        a, b = generate_scene(seed), generate_scene(seed)
        assert a.image.tobytes() == b.image.tobytes()
        assert a.caption == b.caption and a.truth == b.truth and a.mentioned == b.mentioned
        p = generate_scene(seed, paraphrase=True)
        assert p.image.tobytes() == a.image.tobytes() and p.truth == a.truth
    rng1, rng2 = random.Random(5), random.Random(5)
    truth = generate_scene(5).truth
    assert [caption_for(truth, rng1) for _ in range(5)] == [caption_for(truth, rng2) for _ in range(5)]


def test_different_seeds_differ() -> None:
    images = {generate_scene(seed).image.tobytes() for seed in range(40)}
    captions = {generate_scene(seed).caption for seed in range(40)}
    assert len(images) == 40 and len(captions) >= 38


def test_image_size_and_mode() -> None:
    for size, ss in ((64, 4), (128, 3), (32, 1)):
        img = generate_scene(3, size=size, supersample=ss).image
        assert img.size == (size, size) and img.mode == "RGB"
    with pytest.raises(ValueError):
        generate_scene(0, kind="nonsense")


def test_kinds_have_the_right_objects(scenes: dict[str, list[Scene]]) -> None:
    for kind, group in scenes.items():
        for s in group:
            t = s.truth
            assert t.kind == kind and t.background in BACKGROUNDS and t.style in STYLES
            assert all(o.style == t.style for o in t.objects)
            n = len(t.objects)
            if kind == "single":
                assert n == 1 and t.relation is None and t.count is None
            elif kind == "pair":
                assert n == 2 and t.relation is not None
            elif kind == "count":
                assert t.count == n and 1 <= n <= 4
            elif kind == "mixed":
                assert n in (3, 4)
                assert len({(o.shape, o.colour) for o in t.objects}) == n
            else:
                assert t.word is not None and t.text is not None and t.text.word == t.word
                assert re.fullmatch(r"[A-Z]{1,6}", t.word)
                signs = [o for o in t.objects if o.shape == SIGN]
                assert (t.text.sign is not None) == bool(signs) and n <= 2
                if signs:
                    assert signs[0].word == t.word and t.text.sign == t.objects.index(signs[0])
            for o in t.objects:
                assert o.shape in (*SHAPES, SIGN) and o.colour in COLOURS and o.rgb == COLOURS[o.colour]
                if o.shape != SIGN:
                    lo, hi = SIZE_BANDS[o.size]
                    assert lo <= o.radius <= hi


def test_relations_hold_in_the_truth(scenes: dict[str, list[Scene]]) -> None:
    seen = set()
    for s in _all(scenes):
        if s.truth.relation is None:
            continue
        a, rel, b = s.truth.relation
        seen.add(rel)
        oa, ob = s.truth.objects[a], s.truth.objects[b]
        assert relation_holds(oa, rel, ob), (s.caption, oa, ob)
        if rel in ("left of", "right of"):
            assert abs(oa.cx - ob.cx) >= 0.15
        if rel in ("above", "below"):
            assert abs(oa.cy - ob.cy) >= 0.15
            assert (oa.cy < ob.cy) == (rel == "above")
    assert seen == set(RELATIONS)


def test_counts_are_identical_objects(scenes: dict[str, list[Scene]]) -> None:
    counts = set()
    for s in scenes["count"]:
        objs = s.truth.objects
        counts.add(s.truth.count)
        assert len({(o.shape, o.colour, o.size) for o in objs}) == 1
    assert counts == {1, 2, 3, 4}


def test_objects_inside_canvas_and_not_overlapping(scenes: dict[str, list[Scene]]) -> None:
    eps = 1e-9
    for s in _all(scenes):
        objs = s.truth.objects
        for o in objs:
            if o.box is not None:
                x0, y0, x1, y1 = o.box
                assert PAD - eps <= x0 < x1 <= 1 - PAD + eps and PAD - eps <= y0 < y1 <= 1 - PAD + eps
            else:
                assert o.radius + PAD - eps <= o.cx <= 1 - o.radius - PAD + eps
                assert o.radius + PAD - eps <= o.cy <= 1 - o.radius - PAD + eps
        for i, a in enumerate(objs):
            for b in objs[i + 1 :]:
                if a.box is None and b.box is None:
                    assert math.dist((a.cx, a.cy), (b.cx, b.cy)) >= a.radius + b.radius + MIN_GAP - eps
                else:
                    circle, sign = (a, b) if b.box is not None else (b, a)
                    assert sign.box is not None
                    x0, y0, x1, y1 = sign.box
                    nx, ny = min(max(circle.cx, x0), x1), min(max(circle.cy, y0), y1)
                    assert math.dist((circle.cx, circle.cy), (nx, ny)) >= circle.radius + MIN_GAP - eps


def test_single_objects_sit_in_their_grid_cell(scenes: dict[str, list[Scene]]) -> None:
    cells = set()
    for s in scenes["single"]:
        o = s.truth.objects[0]
        cells.add(o.position)
        # a clear margin from the grid lines, so the name does not flip under small errors
        for dx, dy in ((0.02, 0), (-0.02, 0), (0, 0.02), (0, -0.02)):
            assert position_name(o.cx + dx, o.cy + dy) == o.position
    assert len(cells) >= 7


def _pixel(s: Scene, x: float, y: float) -> tuple[int, int, int]:
    size = s.image.width
    px = s.image.getpixel((round(x * size - 0.5), round(y * size - 0.5)))  # the nearest pixel centre
    assert isinstance(px, tuple)
    return px[0], px[1], px[2]


def test_colour_at_each_object_is_its_named_colour(scenes: dict[str, list[Scene]]) -> None:
    checked = 0
    for s in _all(scenes):
        if s.truth.style == "sketch":
            continue
        for o in s.truth.objects:
            px = _pixel(s, *probe_point(o))
            assert colour_distance(px, o.rgb) < 40, (s.truth.kind, o.shape, o.style, px, o.rgb)
            assert dominant_colour_name(px) == o.colour
            checked += 1
    assert checked > 150


def test_background_keeps_its_name_and_stays_far_from_objects(scenes: dict[str, list[Scene]]) -> None:
    for s in _all(scenes):
        t = s.truth
        assert t.background_colour in COLOURS
        for o in t.objects:
            if o.shape != SIGN:
                assert colour_distance(o.rgb, t.background_rgb) >= BACKGROUND_MIN_DISTANCE
        if t.style == "shadow":
            continue
        size = s.image.width
        covered = np.zeros((size, size), bool)
        for o in t.objects:
            covered |= np.asarray(object_mask(o, size)) > 0
        if t.text is not None:
            x0, y0, x1, y1 = (round(v * size) for v in t.text.box)
            covered[max(0, y0 - 1) : y1 + 2, max(0, x0 - 1) : x1 + 2] = True
        # dilate by two pixels to skip anti-aliased and sketched edges
        grown = covered.copy()
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                grown |= np.roll(np.roll(covered, dy, 0), dx, 1)
        pixels = np.asarray(s.image)[~grown]
        sample = pixels[:: max(1, len(pixels) // 200)]
        names = [dominant_colour_name(tuple(int(c) for c in p)) for p in sample]
        assert names.count(t.background_colour) >= 0.97 * len(names), (t.background, t.background_colour)


def test_object_mask_matches_the_truth() -> None:
    for shape in SHAPES:
        o = ObjectTruth(shape, "red", COLOURS["red"], 0.4, 0.6, 0.2, "large", "flat", None)
        mask = np.asarray(object_mask(o, 64)) > 0
        assert set(np.unique(np.asarray(object_mask(o, 64)))) <= {0, 255}
        ys, xs = np.nonzero(mask)
        assert len(xs) > 0.2 * math.pi * (0.2 * 64) ** 2
        assert abs((xs.mean() + 0.5) / 64 - o.cx) < 0.02 and abs((ys.mean() + 0.5) / 64 - o.cy) < 0.02, shape
        # inside the bounding circle
        d = np.hypot((xs + 0.5) / 64 - o.cx, (ys + 0.5) / 64 - o.cy)
        assert d.max() <= o.radius + 1.5 / 64, shape
        px, py = probe_point(o)
        assert mask[int(py * 64), int(px * 64)], shape


def _words(caption: str) -> str:
    return " " + re.sub(r"[^a-z\- ]", " ", caption.lower()) + " "


def test_captions_mention_colours_shapes_counts_and_words(scenes: dict[str, list[Scene]]) -> None:
    for s in _all(scenes):
        text = _words(s.caption)
        t = s.truth
        for o in t.objects:
            if o.shape == SIGN:
                continue
            assert any(f" {c} " in text for c in COLOUR_WORDS[o.colour]), (s.caption, o.colour)
            forms = [f for pair in SHAPE_WORDS[o.shape] for f in pair]
            assert any(f" {f} " in text for f in forms), (s.caption, o.shape)
        if t.count is not None and t.count > 1:
            n = str(t.count)
            assert n in s.caption or ["two", "three", "four"][t.count - 2] in text
        if t.word is not None:
            assert t.word in s.caption
        assert {"colour", "shape"} <= s.mentioned or t.kind == "text"


def test_paraphrase_captions_use_held_out_leads() -> None:
    train = [generate_scene(seed).caption for seed in range(400)]
    held_out = [generate_scene(seed, paraphrase=True).caption for seed in range(400)]
    train_first = {c.split()[0].lower() for c in train}
    para_leads = tuple(lead.lower() for lead in PARAPHRASE_LEADS)
    for c in held_out:
        assert c.startswith(PARAPHRASE_LEADS), c
        assert not c.lower().startswith(TRAIN_LEADS), c
        assert c.split()[0].lower() not in train_first, c
    for c in train:
        assert not c.lower().startswith(para_leads), c
    assert not set(held_out) & set(train)


def test_kind_weights_pick_kinds() -> None:
    kinds = {generate_scene(seed, kind_weights={"count": 1.0}).truth.kind for seed in range(20)}
    assert kinds == {"count"}
    default = {generate_scene(seed).truth.kind for seed in range(200)}
    assert default == set(KINDS)


def test_two_hundred_scenes_generate() -> None:
    images = [generate_scene(seed, size=64).image for seed in range(1000, 1200)]
    assert len(images) == 200 and all(img.size == (64, 64) for img in images)


def test_truth_does_not_depend_on_output_size() -> None:
    for kind in KINDS:
        for seed in range(8):
            base = generate_scene(seed, kind=kind).truth
            assert generate_scene(seed, kind=kind, size=128, supersample=3).truth == base
            assert generate_scene(seed, kind=kind, size=32, supersample=2).truth == base


def test_words_are_drawn_inside_their_box(scenes: dict[str, list[Scene]]) -> None:
    for s in scenes["text"]:
        text = s.truth.text
        assert text is not None
        size = s.image.width
        img = np.asarray(s.image).astype(float)
        ink = np.linalg.norm(img - np.array(text.rgb, float), axis=2) < 60
        x0, y0, x1, y1 = text.box
        inside = np.zeros_like(ink)
        inside[math.floor(y0 * size) : math.ceil(y1 * size), math.floor(x0 * size) : math.ceil(x1 * size)] = (
            True
        )
        assert ink[inside].mean() > 0.06, s.caption  # the box really holds ink-coloured strokes
        if text.sign is None:  # on a bare background nothing else has the ink's colour
            assert not ink[~inside].any(), s.caption
        else:
            sx0, sy0, sx1, sy1 = s.truth.objects[text.sign].box or (0, 0, 0, 0)
            assert sx0 < x0 < x1 < sx1 and sy0 < y0 < y1 < sy1
