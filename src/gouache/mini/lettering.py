"""Exact lettering for gouache-mini: the words a prompt asks for, typeset at the output resolution.

At 64 px a letter is a few pixels, and the UNet's letter-like marks are read by OCR one time in ten. So the
model paints the scene (the sign, the backdrop, where the words go: its layout keeps the text's box but no
glyph tokens), and the finish stage typesets the words asked for (:func:`requested_text`, exactly as typed,
1-3 words up to 20 characters) into that box at the output size, in the planned ink colour: the seed's own
recommended workaround ("add typography in post-processing"), as part of the model's plan. The font is
Pillow's built-in scalable font (Aileron, shipped inside the Pillow package: no system font assumed); it
covers Latin text, so other scripts are left out and said so in ``revised_prompt``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

__all__ = ["MAX_CHARS", "MAX_WORDS", "is_latin", "requested_text", "typeset"]

MAX_WORDS = 3
MAX_CHARS = 20
_QUOTED = re.compile(r"[\"“”]([^\"“”]{1,60})[\"“”]")
_SAID = re.compile(
    r"\b(?:says|saying|reads|reading|the words?|the text|titled|the title|the tagline|labelled|labeled)"
    r"\s+([^\s,.;:!?\"]+)",
    re.I,
)


def requested_text(prompt: str) -> str | None:
    """The words ``prompt`` asks to be written, as typed: the first quoted phrase, else the word after "says",
    "the word", "titled" ... (None when there is none, or it is longer than 3 words or 20 characters)."""
    m = _QUOTED.search(prompt)
    if m is None or not m.group(1).strip():
        m = _SAID.search(prompt)
    if m is None:
        return None
    text = " ".join(m.group(1).split())
    if not text or len(text) > MAX_CHARS or len(text.split()) > MAX_WORDS:
        return None
    return text


def is_latin(text: str) -> bool:
    """Whether the built-in font has every character of ``text`` (printable Latin-1)."""
    return all(" " <= ch <= "~" or "\u00a0" <= ch <= "\u00ff" for ch in text)


@lru_cache(maxsize=256)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


def typeset(
    image: Image.Image,
    text: str,
    box: tuple[float, float, float, float],
    rgb: tuple[int, int, int],
) -> Image.Image:
    """``image`` with ``text`` set in ``rgb``, centred in ``box`` (canvas units), as large as fits 90 % of
    its width and 80 % of its height (with a margin of the box around short words)."""
    w, h = image.size
    x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    # A word box planned for a few letters at 64 px: let longer text use more of the width around it.
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bw = max(x1 - x0, min(w * 0.9, (x1 - x0) * max(1.0, len(text) / 4)))
    bh = y1 - y0
    probe = _font(100)
    left, top, right, bottom = probe.getbbox(text)
    px = max(6, int(100 * min(0.9 * bw / max(1, right - left), 0.8 * bh / max(1, bottom - top))))
    font = _font(px)
    left, top, right, bottom = font.getbbox(text)
    out = image.convert("RGB").copy()
    at = (cx - (left + right) / 2, cy - (top + bottom) / 2)
    ImageDraw.Draw(out).text(at, text, font=font, fill=rgb)
    return out
