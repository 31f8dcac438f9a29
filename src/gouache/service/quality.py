"""Quality tiers: `auto` is resolved from the prompt and size; explicit tiers must exist in the
model's plans."""

from __future__ import annotations

import re

from gouache.engine.catalog import ModelSpec
from gouache.service.errors import InvalidRequest
from gouache.service.sizes import Size

_QUOTES = "\"'\u201c\u201d\u2018\u2019"
_TEXT_HINTS = re.compile(
    rf"[{_QUOTES}].{{1,40}}[{_QUOTES}]|\b(says?|saying|text|sign|label|poster|logo|typograph\w*)\b", re.I
)
_DETAIL_HINTS = re.compile(r"\b(detailed|intricate|photorealistic|highly detailed|ultra|sharp)\b", re.I)


def resolve_quality(quality: str, prompt: str, size: Size, model: ModelSpec) -> str:
    """The tier a request runs at. `auto` picks `high` for prompts that ask for lettering or fine detail and
    `medium` otherwise; very large outputs (over 2560x1440, OpenAI's experimental range) stay at `medium`."""
    if quality != "auto":
        if quality not in model.plans:
            supported = ", ".join([*model.qualities, "auto"])
            raise InvalidRequest(
                f"Invalid value: '{quality}'. Quality '{quality}' is not supported by model '{model.name}'. "
                f"Supported values are: {supported}.",
                param="quality",
            )
        return quality
    wants_detail = bool(_TEXT_HINTS.search(prompt) or _DETAIL_HINTS.search(prompt))
    if wants_detail and size.pixels <= 2560 * 1440 and "high" in model.plans:
        return "high"
    return "medium" if "medium" in model.plans else model.qualities[0]
