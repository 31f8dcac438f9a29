"""gouache-mini's exact lettering: the words a prompt asks for are found as typed, typeset at the output size
in the planned box and colour (and place: "at the bottom"), and read back exactly by OCR; text the font cannot
set is refused with a 400 that names the prompt. Streams, edits and cache hits: tests/test_lettering_flows.py."""

from __future__ import annotations

import base64
import io

import pytest
from openai import BadRequestError, OpenAI
from PIL import Image

from gouache.mini.evaluation.ocr import read_text, text_match
from gouache.mini.lettering import fit_box, is_latin, requested_text, typeset, unwritable
from gouache.mini.reading import layout_caption
from gouache.mini.scenes.request import text_region


@pytest.mark.parametrize(
    ("prompt", "text"),
    [
        ('a sign that says "OPEN"', "OPEN"),
        ("the word SALE", "SALE"),
        ('a poster with the title "Summer Jazz Night"', "Summer Jazz Night"),
        ('add the tagline "fresh every day" at the bottom', "fresh every day"),
        ("a green sign saying BAKERY above a red star", "BAKERY"),
        ("a red circle", None),
        ("it's a cat's toy", None),  # apostrophes are not quotes
        ('a sign that says "this is far too long for a sign"', None),  # over 3 words / 20 characters
    ],
)
def test_requested_text_is_taken_as_typed(prompt: str, text: str | None) -> None:
    assert requested_text(prompt) == text


def test_non_latin_text_is_recognised() -> None:
    assert is_latin("Café Noël") and not is_latin("日本") and not is_latin("Привет")


@pytest.mark.parametrize("text", ["OPEN", "SALE", "Hi", "Summer Jazz Night", "fresh every day", "BAKERY 24"])
def test_typeset_words_are_read_back_exactly(text: str) -> None:
    canvas = Image.new("RGB", (1024, 1024), (40, 150, 60))
    out = typeset(canvas, text, (0.3, 0.42, 0.7, 0.58), (245, 245, 245))
    exact, cer, _ = text_match(read_text(out), text)
    assert exact, (text, read_text(out), cer)
    # in the planned place and colour: ink only inside the box's band, in the requested colour
    pixels = out.load()
    assert pixels is not None
    ink = [(x, y) for y in range(0, 1024, 4) for x in range(0, 1024, 4) if pixels[x, y] == (245, 245, 245)]
    assert ink and all(0.42 * 1024 - 4 <= y <= 0.58 * 1024 + 4 for _, y in ink)


def test_an_inpainting_edit_letters_the_words_it_adds() -> None:
    prompt = 'a sign that says "OPEN", with the tagline "fresh every day" at the bottom'
    assert requested_text(prompt) == "OPEN"
    assert requested_text(prompt, last=True) == "fresh every day"


def test_non_latin_text_is_refused_with_the_reason() -> None:
    reason = unwritable('a sign that says "Привет"')
    assert reason is not None and "Latin text only" in reason and "Привет" in reason
    assert unwritable('a sign that says "Café"') is None and unwritable("a red circle") is None


def test_a_box_fits_into_an_inpainting_region_like_the_layout() -> None:
    # centre maps linearly, size shrinks by the region's shorter side
    assert fit_box((0.25, 0.4, 0.75, 0.6), (0.0, 0.5, 1.0, 1.0)) == (0.375, 0.7, 0.625, 0.8)


@pytest.mark.parametrize(
    ("caption", "inside"),
    [
        ("the word SALE at the bottom", (0.0, 2 / 3, 1.0, 1.0)),
        ('add the tagline "fresh every day" at the bottom', (0.0, 2 / 3, 1.0, 1.0)),
        ("a red sign that says OPEN in the top left corner", (0.0, 0.0, 1 / 3, 1 / 3)),
        ("the word HI on the right", (2 / 3, 0.0, 1.0, 1.0)),
        ("a sign saying GO at the top above a blue circle", (0.0, 0.0, 1.0, 1 / 3)),
    ],
)
def test_a_position_for_the_words_alone_is_where_they_go(
    caption: str, inside: tuple[float, float, float, float]
) -> None:
    assert text_region("bottom") == (0.02, 2 / 3, 0.98, 0.98)
    for seed in range(8):
        truth = layout_caption(caption, None, seed)
        assert truth is not None and truth.text is not None
        x0, y0, x1, y1 = truth.text.box
        assert inside[0] - 1e-6 <= x0 < x1 <= inside[2] + 1e-6, (seed, truth.text.box)
        assert inside[1] - 1e-6 <= y0 < y1 <= inside[3] + 1e-6, (seed, truth.text.box)
        for o in truth.objects:  # the sign and the companion go along, inside the canvas
            x0, y0, x1, y1 = o.box or (o.cx - o.radius, o.cy - o.radius, o.cx + o.radius, o.cy + o.radius)
            assert min(x0, y0) >= 0 and max(x1, y1) <= 1, (seed, o)


def test_the_images_api_letters_the_words_exactly(client: OpenAI) -> None:
    result = client.images.generate(
        model="gouache-mini",
        prompt='a green sign that says "Fresh Bread"',
        size="1024x1024",
        quality="low",
        extra_body={"seed": 5},  # a fixed draw: OCR reads ~99 % of them, and CI must not depend on the rest
    )
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json or ""))).convert("RGB")
    assert text_match(read_text(image), "Fresh Bread")[0], read_text(image)
    assert result.data[0].revised_prompt == 'the word "Fresh Bread" on a green sign'


def test_text_the_font_cannot_set_is_refused_naming_the_prompt(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.images.generate(
            model="gouache-mini", prompt='a sign that says "日本"', size="1024x1024", quality="low"
        )
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == "prompt" and error["code"] == "unsupported_text"
    assert "Latin text only" in error["message"] and "日本" in error["message"]
    # Other models are not refused: the check is gouache-mini's own.
    other = client.images.generate(model="tiny-sd1", prompt='a sign that says "日本"', quality="low")
    assert other.data and other.data[0].b64_json
