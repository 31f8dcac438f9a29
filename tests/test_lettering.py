"""gouache-mini's exact lettering: the words a prompt asks for are found as typed, typeset at the output size
in the planned box and colour, and read back exactly by OCR; text the font cannot set is said, not drawn."""

from __future__ import annotations

import base64
import io

import pytest
from openai import OpenAI
from PIL import Image

from gouache.mini.evaluation.ocr import read_text, text_match
from gouache.mini.lettering import is_latin, requested_text, typeset


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


def test_the_images_api_letters_the_words_exactly(client: OpenAI) -> None:
    result = client.images.generate(
        model="gouache-mini", prompt='a green sign that says "Fresh Bread"', size="1024x1024", quality="low"
    )
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json or ""))).convert("RGB")
    assert text_match(read_text(image), "Fresh Bread")[0], read_text(image)
    assert result.data[0].revised_prompt == 'the word "Fresh Bread" on a green sign'


def test_text_the_font_cannot_set_is_said_not_drawn(client: OpenAI) -> None:
    result = client.images.generate(
        model="gouache-mini", prompt='a sign that says "日本"', size="1024x1024", quality="low"
    )
    assert "(this model letters Latin text only)" in (result.data[0].revised_prompt or "")
