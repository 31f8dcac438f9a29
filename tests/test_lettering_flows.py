"""gouache-mini's lettering on every way an image leaves the server, through the official SDK on the live
session server: streamed previews show the words, a position for the words alone is honoured (also through
the Responses API), an inpainting edit fits the words it adds into the mask, an edit keeps the lettering, and
a result-cache hit says what was understood (``revised_prompt``) as the render did."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from openai import OpenAI
from PIL import Image

from gouache.mini.evaluation.ocr import read_boxes, read_text, text_match

MINI: dict[str, Any] = {"model": "gouache-mini", "size": "1024x1024", "quality": "low"}
TOOL: dict[str, Any] = {
    "type": "image_generation",
    "model": "gouache-mini",
    "quality": "low",
    "size": "1024x1024",
}


def decode(b64: str | None) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64 or ""))).convert("RGB")


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def where(image: Image.Image, text: str) -> tuple[float, float, float, float]:
    """The OCR box (fractions of the image) of the line that reads ``text`` exactly."""
    lines = read_boxes(image)
    hits = [box for line, box in lines if text_match([line], text)[0]]
    assert hits, (text, lines)
    return hits[0]


def test_stream_previews_show_the_lettering(client: OpenAI) -> None:
    events = list(
        client.images.generate(
            **MINI, prompt='a sign that says "OPEN"', stream=True, partial_images=2, extra_body={"seed": 3}
        )
    )
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    for event in events:  # every preview reads the words, as the final image does
        assert text_match(read_text(decode(event.b64_json)), "OPEN")[0], event.type


def test_the_word_alone_goes_where_it_is_asked(client: OpenAI) -> None:
    result = client.images.generate(**MINI, prompt="the word SALE at the bottom", extra_body={"seed": 4})
    x0, y0, x1, y1 = where(decode(result.data[0].b64_json), "SALE")
    assert y0 > 0.6 and (y0 + y1) / 2 > 2 / 3, (x0, y0, x1, y1)
    assert result.data[0].revised_prompt == 'the word "SALE" at the bottom'


def test_responses_api_tagline_at_the_bottom(client: OpenAI) -> None:
    response = client.responses.create(
        model="gpt-5", input='add the tagline "fresh every day" at the bottom', tools=[{**TOOL, "seed": 6}]
    )  # type: ignore[list-item]
    call = response.output[0]
    assert call.type == "image_generation_call" and call.action == "generate"
    x0, y0, x1, y1 = where(decode(call.result), "fresh every day")
    assert (y0 + y1) / 2 > 2 / 3, (x0, y0, x1, y1)
    assert call.revised_prompt.endswith('(understood as: the word "fresh every day" at the bottom)')


def test_an_inpainting_edit_fits_the_words_into_the_mask(client: OpenAI) -> None:
    canvas = Image.new("RGB", (1024, 1024), (30, 90, 200))
    mask = Image.new("RGBA", (1024, 1024), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 512, 1024, 1024))  # transparent = repaint: the bottom half
    result = client.images.edit(
        **MINI,
        image=("in.png", png(canvas), "image/png"),
        mask=("mask.png", png(mask), "image/png"),
        prompt='a yellow sign that says "SALE"',
        extra_body={"seed": 2},
    )
    out = decode(result.data[0].b64_json)
    x0, y0, x1, y1 = where(out, "SALE")
    assert y0 >= 0.5 - 0.01, (x0, y0, x1, y1)  # inside the repainted half
    top = np.asarray(out, dtype=np.int16)[:480]
    assert np.abs(top - np.array([30, 90, 200])).max() <= 3  # the kept half is untouched


def test_an_edit_keeps_the_lettering(client: OpenAI) -> None:
    first = client.responses.create(
        model="gpt-5", input='a green sign that says "OPEN"', tools=[{**TOOL, "seed": 9}]
    )  # type: ignore[list-item]
    assert text_match(read_text(decode(first.output[0].result)), "OPEN")[0]
    darker = client.responses.create(
        model="gpt-5", input="make it darker", previous_response_id=first.id, tools=[TOOL]
    )  # type: ignore[list-item]
    call = darker.output[0]
    assert call.action == "edit" and call.result != first.output[0].result
    assert text_match(read_text(decode(call.result)), "OPEN")[0]
    # An inpainting turn that adds other words letters those, in the repainted bottom
    tagline = client.responses.create(
        model="gpt-5",
        input='add the tagline "fresh daily" at the bottom',
        previous_response_id=first.id,
        tools=[TOOL],
    )  # type: ignore[list-item]
    image = decode(tagline.output[0].result)
    x0, y0, x1, y1 = where(image, "fresh daily")
    assert y0 >= 0.45, (x0, y0, x1, y1)


def test_a_cache_hit_says_what_was_understood(client: OpenAI) -> None:
    body = {**MINI, "prompt": 'a purple star next to a sign that says "HI"', "extra_body": {"seed": 21}}
    first = client.images.with_raw_response.generate(**body)
    again = client.images.with_raw_response.generate(**body)
    assert first.headers["x-gouache-cache"] == "miss" and again.headers["x-gouache-cache"] == "hit"
    revised = first.parse().data[0].revised_prompt
    assert revised and '"HI"' in revised
    assert again.parse().data[0].revised_prompt == revised
    assert again.parse().data[0].b64_json == first.parse().data[0].b64_json
