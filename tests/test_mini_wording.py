"""gouache-mini reads what people write: hand-written paraphrases (not the training caption generator's
wording) are read into the scene they ask for, and what could not be placed is said, not drawn."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from openai import OpenAI
from PIL import Image

from gouache.mini.evaluation.paraphrase import paraphrase_scenes
from gouache.mini.evaluation.scoring import named_colour, score_scene
from gouache.mini.phrases import correct, tidy
from gouache.mini.reading import read_caption
from gouache.mini.scenes.request import ObjectRequest
from gouache.mini.scenes.vocabulary import COLOURS, SHADES


def _objects(caption: str) -> list[tuple[str, str | None]]:
    return [(o.shape, o.colour) for o in read_caption(caption).objects]


@pytest.mark.parametrize(
    ("caption", "background", "shade"),
    [
        ("simple flat illustration of a purple star against white", "white", None),
        ("one black five-pointed star, centered, plain light grey backdrop", "gray", "light gray"),
        ("a blue circle to the left of a yellow square on white", "white", None),
        ("a green heart set on black", "black", None),
        ("a red square with a pale gray backdrop behind it", "gray", "light gray"),
        ("a red square with white behind it", "white", None),
        ("Orange triangle over dark blue, minimalist poster", "blue", "dark blue"),
        ("a pink ring on a white background", "white", None),
        ("a star, purple, large, against black", "black", None),
        ("a yellow diamond on top of a cyan circle, against grey", "gray", None),
        ("a brown hexagon, white", "white", None),
    ],
)
def test_backgrounds_named_as_people_name_them(caption: str, background: str, shade: str | None) -> None:
    request = read_caption(caption)
    assert request.background_colour == background, caption
    assert request.background_shade == shade, caption


def test_the_objects_keep_their_own_colours_beside_a_named_background() -> None:
    assert _objects("a blue circle to the left of a yellow square on white") == [
        ("circle", "blue"),
        ("square", "yellow"),
    ]
    request = read_caption("a blue circle to the left of a yellow square on white")
    assert request.relation == (0, "left of", 1)
    assert _objects("simple flat illustration of a purple star against white") == [("star", "purple")]


@pytest.mark.parametrize(
    "caption",
    [
        "one black five-pointed star, centered, plain light grey backdrop",
        "one black five - pointed star, centered",  # as MiniLM's tokenizer decodes it
        "a black 5-pointed star",
        "a black five pointed star on white",
        "a single black star-shaped sticker",
    ],
)
def test_a_five_pointed_star_is_one_star(caption: str) -> None:
    request = read_caption(caption)
    assert request.objects == (ObjectRequest("star", "black"),), caption
    assert request.count is None, caption


@pytest.mark.parametrize(
    ("caption", "count", "shape", "colour"),
    [
        ("2 green triangles", 2, "triangle", "green"),
        ("two green triangles", 2, "triangle", "green"),
        ("a pair of red hearts on white", 2, "heart", "red"),
        ("a couple of blue squares", 2, "square", "blue"),
        ("three little yellow circles", 3, "circle", "yellow"),
        ("4 Purple Stars, flat icon", 4, "star", "purple"),
        ("a trio of pink rings", 3, "ring", "pink"),
    ],
)
def test_counts_in_numerals_and_words(caption: str, count: int, shape: str, colour: str) -> None:
    request = read_caption(caption)
    assert request.count == count, caption
    assert {(o.shape, o.colour) for o in request.objects} == {(shape, colour)}, caption
    assert len(request.objects) == count


def test_one_object_is_not_a_count_scene() -> None:
    assert read_caption("one red circle").count is None
    assert read_caption("a single blue square").count is None


@pytest.mark.parametrize(
    ("caption", "shade", "base"),
    [
        ("a light blue circle", "light blue", "blue"),
        ("a pale blue circle", "light blue", "blue"),
        ("a dark green square", "dark green", "green"),
        ("a deep green square", "dark green", "green"),
        ("a dark grey heart", "dark gray", "gray"),
        ("a bright green square", None, "green"),
        ("a navy star", "dark blue", "blue"),
        ("a light red star", None, "red"),  # no lighter red in the palette: red
    ],
)
def test_light_and_dark_shades_are_distinct_colours(caption: str, shade: str | None, base: str) -> None:
    (obj,) = read_caption(caption).objects
    assert (obj.colour, obj.shade) == (base, shade), caption


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("a purpel star", [("star", "purple")]),
        ("a red trangle", [("triangle", "red")]),
        ("a bleu cirlce", [("circle", "blue")]),
        ("a green sqaure", [("square", "green")]),
        ("a red heart abvoe a blue square", [("heart", "red"), ("square", "blue")]),
    ],
)
def test_typos_within_one_edit(caption: str, expected: list[tuple[str, str]]) -> None:
    assert _objects(caption) == expected, caption


def test_typo_correction_leaves_known_and_written_words() -> None:
    assert correct("tree") is None  # a word written on signs, not a typo of "three"
    assert correct("with") is None
    assert correct("purpel") == "purple"
    for word in ("sofa", "beach", "clock", "side", "bird"):  # English words one edit from "soft", "peach",
        assert correct(word) is None, word  # "block", "size", "third": no typos
    assert correct("yelow") == "yellow" and correct("cirlce") == "circle"
    assert read_caption("a sign that says TREE").word == "TREE"


@pytest.mark.parametrize(
    "caption",
    [
        "a red star, flat illustration",
        "minimalist red star icon",
        "red star sticker",
        "a red star poster",
        "A RED STAR, vector clipart, simple, clean",
        "red-coloured star",
        "a star in red",
        "a star that is red",
    ],
)
def test_style_words_are_not_content(caption: str) -> None:
    request = read_caption(caption)
    assert request.objects == (ObjectRequest("star", "red"),), caption
    assert request.ignored == (), caption


def test_compound_modifiers_are_folded() -> None:
    assert tidy("five - pointed star") == "star"
    assert tidy("a two tone backdrop") == "a two-toned backdrop"
    assert read_caption("a red heart on a two-tone background").background == "split"
    assert read_caption("a top-left blue circle").position == "top left"


def test_relations_in_other_words() -> None:
    for caption, relation in [
        ("a red circle sitting atop a blue square", "above"),
        ("a red circle underneath a blue square", "below"),
        ("a red circle alongside a blue square", "next to"),
        ("a red circle on the left side of a blue square", "left of"),
        ("a red circle, and to its right a blue square", None),
    ]:
        request = read_caption(caption)
        if relation is not None:
            assert request.relation == (0, relation, 1), caption
        assert [o.colour for o in request.objects] == ["red", "blue"], caption


def test_unknown_nouns_are_left_out_and_said() -> None:
    # (a fox, a giraffe are drawn since issue 22: things the concept atlas has no drawing of are left out)
    request = read_caption("a red lemur on white")
    assert request.objects == ()
    assert request.ignored == ("lemur",)
    assert request.background_colour == "white"
    assert read_caption("a red lemur in the snow").ignored == ("lemur",)
    assert read_caption("a fluffy red lemur").ignored == ("lemur",)
    request = read_caption("a blue circle next to an orange gizmo")
    assert [o.shape for o in request.objects] == ["circle"]
    assert request.ignored == ("gizmo",)


# --- through the server: what was understood, and the shade painted ---------------------------------------


def test_images_api_says_what_gouache_mini_understood(client: OpenAI) -> None:
    prompt = "one black five-pointed star, centered, plain light grey backdrop, and a lemur"
    result = client.images.generate(
        model="gouache-mini", prompt=prompt, size="1024x1024", quality="low", extra_body={"seed": 3}
    )
    assert result.data[0].revised_prompt == (
        "a black five-pointed star, in the centre, on a plain light gray background; "
        "ignored: 'lemur' (not in this model's vocabulary)"
    )
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json or ""))).convert("RGB"))
    corners = np.concatenate([image[:40, :40], image[:40, -40:], image[-40:, :40], image[-40:, -40:]])
    border = np.median(corners.reshape(-1, 3), axis=0)
    # light grey (200), as asked, not the grey (135) the UNet paints
    assert np.abs(border - np.array(SHADES["light gray"][1])).max() <= 20, border


def test_other_models_omit_revised_prompt(client: OpenAI) -> None:
    result = client.images.generate(model="tiny-sd1", prompt="a light grey star", size="1024x1024")
    assert result.data[0].revised_prompt is None


# --- the paraphrase set ------------------------------------------------------------------------------------


def test_the_paraphrase_set_is_deterministic_and_large_enough() -> None:
    first = paraphrase_scenes(400)
    assert len({s.caption for s in first}) >= 390  # nearly all distinct
    again = paraphrase_scenes(8)
    assert [s.caption for s in again] == [s.caption for s in first[:8]]
    assert {s.truth.kind for s in first} == {"single", "pair", "count"}
    shades = [s for s in first if named_colour(s.truth.background_rgb) in SHADES]
    assert len(shades) >= 60  # light and dark backgrounds are well represented


def test_the_reader_meets_the_minimums_on_the_paraphrase_set() -> None:
    """Reading alone (no model): what the planner takes from each paraphrase matches its truth."""
    scenes = paraphrase_scenes(400)
    background = objects = relations = counts = 0
    for s in scenes:
        request, truth = read_caption(s.caption), s.truth
        background += (request.background_shade or request.background_colour) == named_colour(
            truth.background_rgb
        )
        objects += sorted((o.shape, str(o.colour)) for o in request.objects) == sorted(
            (o.shape, o.colour) for o in truth.objects
        )
        relations += truth.relation is not None and request.relation is not None
        counts += truth.count is not None and request.count == truth.count
    pairs = sum(s.truth.relation is not None for s in scenes)
    counted = sum(s.truth.count is not None for s in scenes)
    assert background / len(scenes) >= 0.95
    assert objects / len(scenes) >= 0.95
    assert relations / pairs >= 0.85 and counts / counted >= 0.85


def test_the_scorer_gives_the_truths_own_pictures_full_marks_and_tells_shades_apart() -> None:
    scenes = paraphrase_scenes(24)
    for i, s in enumerate(scenes):
        result = score_scene(s, s.image, i)
        assert all(all(v) for v in result.trials.values()), (s.caption, result.trials)
        assert result.trials["background"] == [True]
    light = next(s for s in paraphrase_scenes(200) if named_colour(s.truth.background_rgb) == "light gray")
    grey = Image.new("RGB", light.image.size, COLOURS["gray"])  # the UNet's grey, untinted
    assert score_scene(light, grey).trials["background"] == [False]


def test_the_caption_reading_bench_row() -> None:
    from gouache.benchmarks import BenchOptions
    from gouache.benchmarks.suite import run_one

    row, planner, keeping = run_one("reading", BenchOptions(quick=True, repeats=1))
    assert row.name == "mini caption reading time" and row.candidate_s > 0 and row.baseline_s > 0
    assert "ms per caption" in row.detail
    assert planner.name == "mini planner per image with words" and planner.candidate_s > 0
    assert "12 lettering prompts" in planner.detail
    assert keeping.name == "mini edit: finding the input's words" and keeping.candidate_s > 0
