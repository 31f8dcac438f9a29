"""The fonts that words in scenes are written in, and how a word's ink is fitted into a box.

Kept apart from the renderer because laying out a word (training scenes, and the caption reader's layouts at
serving time) only measures text: it needs a font's metrics, never a canvas.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TypeAlias

from PIL import ImageFont

_FontT: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont

_FONT_FILES: dict[str, str] = {
    "sans-bold": "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "serif-bold": "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
    "mono-bold": "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "condensed-bold": "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
}
# Fonts available on this machine; Pillow's built-in scalable font when DejaVu is missing.
FONTS: tuple[str, ...] = tuple(n for n, p in _FONT_FILES.items() if Path(p).is_file()) or ("default",)


@lru_cache(maxsize=512)
def load_font(name: str, px: int) -> _FontT:
    """One of :data:`FONTS` at ``px`` pixels (Pillow's built-in font for ``"default"``)."""
    if name in _FONT_FILES and Path(_FONT_FILES[name]).is_file():
        return ImageFont.truetype(_FONT_FILES[name], px)
    return ImageFont.load_default(size=px)


@lru_cache(maxsize=4096)
def ink_bbox(name: str, word: str, px: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = load_font(name, px).getbbox(word)
    return float(x0), float(y0), float(x1), float(y1)


def fit_font_px(font: str, word: str, max_w: float, max_h: float) -> int:
    """Largest font pixel size whose ink box fits in ``max_w`` x ``max_h`` pixels."""
    x0, y0, x1, y1 = ink_bbox(font, word, 100)
    scale = min(max_w / max(1, x1 - x0), max_h / max(1, y1 - y0))
    return max(4, int(100 * scale))
