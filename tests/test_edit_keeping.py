"""What gouache-mini draws at the output size (typeset words, concept drawings) survives the ways an image
is edited and streamed, through the official SDK on the live session server (issue 18 item 4, issue 22
item 5): a whole-image edit whose prompt does not repeat the words keeps them (from the file's generation
parameters, and by OCR when the file has none), one that replaces them letters the new ones; it keeps the
input's concepts; an inpainting edit fits a concept into the mask; stream previews show the concepts.
Pure logic (reading parameters back, swaps, finding words by OCR) is tested in-process at the end."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
from openai import OpenAI
from PIL import Image, ImageDraw

from gouache.benchmarks.live import LiveServer
from gouache.engine.outputs import GenerationParameters, encode_raster
from gouache.engine.outputs.metadata import read_parameters
from gouache.mini.evaluation.ocr import read_text, text_match
from gouache.mini.keeping import Kept, KeptWords, new_words, replacements, words_by_ocr
from gouache.mini.lettering import typeset

MINI: dict[str, Any] = {"model": "gouache-mini", "size": "1024x1024", "quality": "low"}


def decode(b64: str | None) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64 or ""))).convert("RGB")


def without_parameters(b64: str | None) -> bytes:
    """The image's pixels in a PNG with no text chunks (as any other tool would save it)."""
    buf = io.BytesIO()
    decode(b64).save(buf, format="PNG")
    return buf.getvalue()


def fox(image: Image.Image) -> np.ndarray:
    """Where the fox drawing's own orange is (Fluent's fox: about (255, 135, 55))."""
    px = np.asarray(image, dtype=np.int16)
    return (px[..., 0] > 220) & (px[..., 1] > 100) & (px[..., 1] < 170) & (px[..., 2] < 100)


@pytest.fixture(scope="module")
def sign(server: LiveServer) -> str:
    """A generated sign that says OPEN (base64 PNG, with its generation parameters)."""
    client = OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0, timeout=120)
    b64 = (
        client.images.generate(**MINI, prompt='a sign that says "OPEN"', extra_body={"seed": 3})
        .data[0]
        .b64_json
    )
    assert b64 and text_match(read_text(decode(b64)), "OPEN")[0]
    return b64


def test_an_edit_keeps_the_words_it_does_not_name(client: OpenAI, sign: str) -> None:
    for data in (base64.b64decode(sign), without_parameters(sign)):  # exact from the parameters; by OCR
        result = client.images.edit(
            **MINI,
            image=("in.png", data, "image/png"),
            prompt="make the background blue",
            extra_body={"seed": 4},
        )
        out = decode(result.data[0].b64_json)
        assert text_match(read_text(out), "OPEN")[0], read_text(out)
        assert (
            result.data[0].revised_prompt == 'a blue background; kept from the input image: the words "OPEN"'
        )
        px = np.asarray(out, dtype=np.int16).reshape(-1, 3)
        assert np.median(px[:, 2]) > np.median(px[:, 0]) + 60  # and the edit happened: it is blue


def test_an_edit_that_replaces_the_words_letters_the_new_ones(client: OpenAI, sign: str) -> None:
    for prompt, word in (("replace the word OPEN with CLOSED", "CLOSED"), ('make it say "SALE"', "SALE")):
        result = client.images.edit(
            **MINI,
            image=("in.png", base64.b64decode(sign), "image/png"),
            prompt=prompt,
            extra_body={"seed": 5},
        )
        lines = read_text(decode(result.data[0].b64_json))
        assert text_match(lines, word)[0] and not any("OPEN" in line.upper() for line in lines), lines
        assert f'the words "{word}" in place of "OPEN"' in (result.data[0].revised_prompt or "")


def test_an_edit_keeps_the_concepts(client: OpenAI) -> None:
    first = client.images.generate(**MINI, prompt="a red fox in the snow", extra_body={"seed": 7}).data[0]
    before = fox(decode(first.b64_json))
    assert before.mean() > 0.01
    result = client.images.edit(
        **MINI,
        image=("in.png", base64.b64decode(first.b64_json or ""), "image/png"),
        prompt="make the background blue",
        extra_body={"seed": 8},
    )
    after = fox(decode(result.data[0].b64_json))
    # The drawing is set again in its place: its orange pixels are where they were.
    assert (before & after).sum() >= 0.9 * before.sum(), ((before & after).sum(), before.sum())
    assert "kept from the input image: the fox" in (result.data[0].revised_prompt or "")


def test_an_inpainting_edit_fits_a_concept_into_the_mask(client: OpenAI) -> None:
    canvas = Image.new("RGB", (1024, 1024), (30, 90, 200))
    mask = Image.new("RGBA", (1024, 1024), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (512, 0, 1024, 1024))  # transparent = repaint: the right half
    result = client.images.edit(
        **MINI,
        image=("in.png", encode_raster(canvas, "png", 100, None), "image/png"),
        mask=("mask.png", encode_raster(mask, "png", 100, None), "image/png"),
        prompt="a red fox",
        extra_body={"seed": 0},  # unfitted, this seed's layout puts the fox in the left (kept) half
    )
    out = decode(result.data[0].b64_json)
    where = fox(out)
    _, xs = np.nonzero(where)
    assert where.mean() > 0.01 and xs.min() >= 512, (where.mean(), xs.min() if len(xs) else None)
    left = np.asarray(out, dtype=np.int16)[:, : 512 - 8]
    assert np.abs(left - np.array([30, 90, 200])).max() <= 3  # the kept half is untouched


def test_stream_previews_show_the_concepts(client: OpenAI) -> None:
    events = list(
        client.images.generate(
            **MINI, prompt="a red fox in the snow", stream=True, partial_images=1, extra_body={"seed": 11}
        )
    )
    assert [e.type for e in events] == ["image_generation.partial_image", "image_generation.completed"]
    preview, final = fox(decode(events[0].b64_json)), fox(decode(events[1].b64_json))
    assert preview.mean() > 0.01  # the preview shows the fox's own colours, where the final has them
    assert (preview & final).sum() >= 0.8 * (preview | final).sum()


# ------------------------------------------------------------------------------------------------------
# In-process: the pure parts
# ------------------------------------------------------------------------------------------------------


def test_parameters_are_read_back_from_every_raster_format() -> None:
    p = GenerationParameters('a sign that says "OPEN"\nsecond line', "blurry", 4, "dpm", 1.5, 5, 64, 64, "m")
    for fmt in ("png", "jpeg", "webp"):
        with Image.open(io.BytesIO(encode_raster(Image.new("RGB", (64, 64)), fmt, 90, p))) as im:
            assert read_parameters(im.convert("RGB")) == p, fmt
    assert read_parameters(Image.new("RGB", (8, 8))) is None


def test_swaps_and_new_words_in_an_edit_prompt() -> None:
    assert replacements("replace the word SALE with OPEN")[0][:3] == ("SALE", "OPEN", True)
    assert replacements('change "SALE" to "Big Sale"')[0][:3] == ("SALE", "Big Sale", True)
    assert replacements("change the circle to a square")[0][:3] == ("the circle", "a square", False)
    assert new_words("make it say SALE") == "SALE"
    assert new_words('a sign that says "OPEN", make it darker') == "OPEN"
    assert new_words("make the text bigger") is None
    kept = Kept((KeptWords("OPEN", (0.2, 0.4, 0.8, 0.6), (0, 0, 0)),), source="ocr")
    # A shape swap is not a word swap: the kept words stay.
    assert kept.asked("change the circle to a square")[0] == kept
    swapped, note, scene = kept.asked("replace the word OPEN with CLOSED")
    assert swapped.words[0].text == "CLOSED" and swapped.words[0].erase
    assert note == '; kept from the input image: the words "CLOSED" in place of "OPEN"'
    assert scene == 'the word "CLOSED"'
    assert kept.asked('a sign that says "OPEN", darker')[0] == kept  # the same words: nothing changes


def test_ocr_finds_the_words_their_box_and_ink() -> None:
    image = Image.new("RGB", (1024, 768), (200, 40, 40))
    ImageDraw.Draw(image).rectangle((100, 250, 900, 520), fill=(250, 220, 40))
    image = typeset(image, "Hot Tea", (0.15, 0.35, 0.85, 0.65), (20, 30, 120))
    (words,) = words_by_ocr(image)
    assert words.text == "Hot Tea"
    assert max(abs(a - b) for a, b in zip(words.rgb, (20, 30, 120), strict=True)) <= 25
    again = typeset(Image.new("RGB", image.size, (250, 220, 40)), words.text, words.box, words.rgb)
    (read,) = words_by_ocr(again)  # set again in its box, it reads the same at the same place
    assert read.text == "Hot Tea"
    assert max(abs(a - b) for a, b in zip(read.box, words.box, strict=True)) <= 0.03
