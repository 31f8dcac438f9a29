"""Exact lettering for gouache-mini: the words a prompt asks for, typeset at the output resolution.

At 64 px a letter is a few pixels, and the UNet's letter-like marks are read by OCR one time in ten. So the
model paints the scene (the sign, the backdrop, where the words go: its layout keeps the text's box but no
glyph tokens), and the finish stage typesets the words asked for (:func:`requested_text`, exactly as typed,
1-3 words up to 20 characters) into that box at the output size, in the planned ink colour: the seed's own
recommended workaround ("add typography in post-processing"), as part of the model's plan. The font is
Pillow's built-in scalable font (Aileron, shipped inside the Pillow package: no system font assumed); it
covers Latin text: a prompt that asks for words in another script is refused before anything is drawn
(:func:`unwritable`, a 400 naming the prompt), rather than drawn without them.

The same typesetting serves every way an image leaves the model: the final image, the streamed previews
(:func:`gouache.engine.previews.preview_image` calls the same hook), and edits: an inpainting edit fits the
text box into the mask's bounds (:func:`fit_box`, the same mapping the layout tokens get), and a whole-image
edit finds the input's words (from its generation parameters, else by OCR: :mod:`gouache.mini.keeping`) and
sets them again, so the lettering survives the repaint at 64 px even when the edit's prompt does not name it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

__all__ = ["MAX_CHARS", "MAX_WORDS", "fit_box", "is_latin", "requested_text", "typeset", "unwritable"]

MAX_WORDS = 3
MAX_CHARS = 20
_QUOTED = re.compile(r"[\"“”]([^\"“”]{1,60})[\"“”]")
_SAID = re.compile(
    r"\b(?:says|saying|reads|reading|the words?|the text|titled|the title|the tagline|labelled|labeled)"
    r"\s+([^\s,.;:!?\"]+)",
    re.I,
)


def requested_text(prompt: str, last: bool = False) -> str | None:
    """The words ``prompt`` asks to be written, as typed: the first quoted phrase (the ``last`` one for an
    inpainting edit, whose prompt ends with what the edit adds: "..., with the tagline "fresh every day" at
    the bottom"), else the word after "says", "the word", "titled" ... (None when there is none, or it is
    longer than 3 words or 20 characters)."""
    found = [m for m in _QUOTED.finditer(prompt) if m.group(1).strip()]
    if not found:
        found = list(_SAID.finditer(prompt))
    if not found:
        return None
    text = " ".join(found[-1 if last else 0].group(1).split())
    if not text or len(text) > MAX_CHARS or len(text.split()) > MAX_WORDS:
        return None
    return text


def is_latin(text: str) -> bool:
    """Whether the built-in font has every character of ``text`` (printable Latin-1)."""
    return all(" " <= ch <= "~" or "\u00a0" <= ch <= "\u00ff" for ch in text)


def unwritable(prompt: str) -> str | None:
    """Why gouache-mini cannot letter what ``prompt`` asks for, or None when it can (or asks for no text):
    the quoted words are in a script the shipped font does not have."""
    quoted = [m.group(1).strip() for m in _QUOTED.finditer(prompt) if m.group(1).strip()]
    for text in quoted or [requested_text(prompt) or ""]:
        if text and not is_latin(text):
            return (
                f"gouache-mini letters Latin text only; the prompt asks for '{text}'. Write the words in "
                "Latin letters, or ask a model that writes this script."
            )
    return None


def fit_box(
    box: tuple[float, float, float, float], region: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """``box`` (canvas units) moved into ``region`` as the layout tokens are when inpainting
    (:func:`gouache.mini.grounding.fit_to_region`): its centre maps linearly into the region and its size
    shrinks by the region's shorter side, so the words land on the sign the model paints in the mask."""
    x0, y0, x1, y1 = region
    w, h = max(1e-3, x1 - x0), max(1e-3, y1 - y0)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hx, hy = (box[2] - box[0]) / 2 * min(w, h), (box[3] - box[1]) / 2 * min(w, h)
    ncx, ncy = x0 + cx * w, y0 + cy * h
    return (ncx - hx, ncy - hy, ncx + hx, ncy + hy)


@lru_cache(maxsize=256)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


def typeset(
    image: Image.Image,
    text: str,
    box: tuple[float, float, float, float],
    rgb: tuple[int, int, int],
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
) -> Image.Image:
    """``image`` with ``text`` set in ``rgb``, centred in ``box`` (canvas units), as large as fits 90 % of
    its width and 80 % of its height (with a margin of the box around short words). Longer text may widen
    the box, but never past ``bounds`` (an inpainting edit's mask)."""
    w, h = image.size
    x0, y0, x1, y1 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    lo, hi = bounds[0] * w, bounds[2] * w
    # A word box planned for a few letters at 64 px: let longer text use more of the width around it.
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bw = max(x1 - x0, min((hi - lo) * 0.9, (x1 - x0) * max(1.0, len(text) / 4)))
    cx = min(max(cx, lo + bw / 2), hi - bw / 2) if hi - lo >= bw else (lo + hi) / 2
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
