"""Backdrops named by a setting: "in the snow", "on the grass", "at night", "on the beach", "in the sky",
"under the sea", "on the water", "in the forest", "in the desert", "in space", "at sunset", "on a table".

A setting is planned like a background colour: the reader takes the phrase out of the caption
(:func:`take_backdrop`) and plans the backdrop's main colour (snow: white, grass: green, ...), which the
UNet paints as it paints any solid background. At the output size the finish stage replaces the pixels of
that colour with the backdrop's colour field (:func:`apply_backdrop`): sky above ground, a horizon, a few
stars at night. Shapes the model painted in other colours stay; concept drawings are drawn on top.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from gouache.mini.scenes.vocabulary import COLOURS, RGB

__all__ = ["BACKDROPS", "Backdrop", "apply_backdrop", "backdrop_field", "take_backdrop"]


@dataclass(frozen=True)
class Backdrop:
    """A setting: the phrases that name it, the colour the model paints for it, how it is said back, and
    its colour field as bands ``(top, bottom, top colour, bottom colour)`` in fractions of the height."""

    name: str
    pattern: str
    colour: str
    said: str
    bands: tuple[tuple[float, float, RGB, RGB], ...]
    #: Whether things stand on a ground (a soft shadow under each drawing).
    ground: bool = True
    stars: bool = False


_SKY: RGB = (150, 200, 240)
_SKY_LOW: RGB = (205, 230, 248)
BACKDROPS: dict[str, Backdrop] = {
    b.name: b
    for b in (
        Backdrop(
            "snow",
            r"\b(?:in|on|through|across|into)\s+(?:the\s+|a\s+)?(?:deep\s+|fresh\s+)?snow\b|\bsnowy\b|"
            r"\bon\s+(?:the\s+|a\s+|an\s+)?(?:ice|iceberg|ice\s+floe|glacier)\b|\bicy\b|"
            r"\bin\s+(?:the\s+)?winter\b|\bsnow[- ]covered\b",
            "white",
            "in the snow",
            ((0.0, 0.5, (170, 200, 230), (215, 228, 242)), (0.5, 1.0, (246, 248, 252), (226, 234, 246))),
        ),
        Backdrop(
            "grass",
            r"\b(?:on|in|across|over)\s+(?:the\s+|a\s+)?(?:[a-z]+\s+)?(?:grass|lawn|meadow|field)\b|\bgrassy\b|"
            r"\b(?:in|at|through)\s+(?:the\s+|a\s+)?(?:park|garden|countryside)\b|"
            r"\b(?:on|over|across|up|down)\s+(?:the\s+|a\s+)?(?:green\s+|grassy\s+|rolling\s+)?hills?(?:side)?\b|"
            r"\b(?:in|on|across)\s+(?:the\s+|a\s+)?(?:savannah?|prairie|pasture|farm)\b|\ba\s+field\s+of\b",
            "green",
            "on the grass",
            ((0.0, 0.45, _SKY, _SKY_LOW), (0.45, 1.0, (110, 190, 80), (60, 140, 50))),
        ),
        Backdrop(
            "night",
            r"\bat\s+night\b|\b(?:in|under)\s+the\s+night(?:\s+sky)?\b|\bnight[- ]?time\b|\bstarry\s+night\b|"
            r"\bin\s+the\s+dark\b|\bunder\s+the\s+stars\b",
            "black",
            "at night",
            ((0.0, 0.7, (10, 14, 40), (35, 40, 85)), (0.7, 1.0, (25, 30, 50), (15, 18, 30))),
            stars=True,
        ),
        Backdrop(
            "beach",
            r"\b(?:on|at)\s+(?:the\s+|a\s+)?(?:sandy\s+)?beach\b|\bby\s+the\s+seaside\b|\bon\s+the\s+sand\b|"
            r"\b(?:on|at|along|by)\s+(?:the\s+|a\s+)?(?:rocky\s+|sandy\s+)?(?:coast|coastline|shore|seashore)\b",
            "yellow",
            "on the beach",
            (
                (0.0, 0.38, _SKY, _SKY_LOW),
                (0.38, 0.52, (40, 130, 200), (70, 165, 215)),
                (0.52, 1.0, (245, 222, 165), (232, 200, 140)),
            ),
        ),
        Backdrop(
            "sky",
            r"\bin\s+the\s+(?:blue\s+)?(?:sky|air|clouds)\b|\bacross\s+the\s+sky\b|\babove\s+the\s+clouds\b|"
            r"\b(?:in|into|under|against|beneath)\s+(?:a\s+|the\s+)?(?:[a-z]+\s+){0,2}sky\b(?!-)|"
            r"^\s*(?:a|the)\s+(?:[a-z]+\s+){0,2}sky\b(?!-)",
            "cyan",
            "in the sky",
            ((0.0, 1.0, (90, 160, 230), (200, 228, 250)),),
            ground=False,
        ),
        Backdrop(
            "sea",
            r"\b(?:under|beneath|below)\s+(?:the\s+)?(?:sea|ocean|water|waves)\b|\bunder\s*water\b|"
            r"\bin\s+the\s+(?:[a-z]+\s+){0,2}(?:sea|ocean)\b|\bon\s+the\s+sea\s*floor\b",
            "blue",
            "under the sea",
            ((0.0, 0.85, (40, 130, 200), (15, 60, 130)), (0.85, 1.0, (200, 180, 130), (170, 150, 105))),
            ground=False,
        ),
        Backdrop(
            "water",
            r"\b(?:on|across|over|out\s+of|by|near|along)\s+(?:the\s+|a\s+)?(?:[a-z]+\s+)?"
            r"(?:lake|pond|river|water|ocean|seas?|waves)\b|"
            r"\b(?:in|into)\s+(?:the\s+|a\s+)?(?:[a-z]+\s+)?(?:lake|pond|river|water)\b",
            "blue",
            "on the water",
            ((0.0, 0.45, _SKY, _SKY_LOW), (0.45, 1.0, (70, 150, 210), (25, 85, 160))),
            ground=False,
        ),
        Backdrop(
            "forest",
            r"\b(?:in|through|into)\s+(?:the\s+|a\s+)?(?:[a-z]+\s+)?(?:woods|forest|jungle|rainforest)\b",
            "green",
            "in the forest",
            (
                (0.0, 0.3, _SKY, _SKY_LOW),
                (0.3, 0.5, (45, 105, 55), (30, 80, 40)),
                (0.5, 1.0, (95, 150, 65), (55, 110, 45)),
            ),
        ),
        Backdrop(
            "desert",
            r"\b(?:in|across|through|over)\s+(?:the\s+|a\s+)?(?:[a-z]+\s+)?desert\b|\bin\s+the\s+outback\b|"
            r"\b(?:among|through|across|over|on)\s+(?:the\s+)?(?:sand\s+)?dunes\b",
            "yellow",
            "in the desert",
            ((0.0, 0.45, _SKY, _SKY_LOW), (0.45, 1.0, (238, 205, 140), (215, 170, 105))),
        ),
        Backdrop(
            "space",
            r"\b(?:in|into|through|across|to)\s+(?:outer\s+)?space\b|\bouter\s+space\b",
            "black",
            "in space",
            ((0.0, 1.0, (6, 8, 28), (22, 18, 52)),),
            ground=False,
            stars=True,
        ),
        Backdrop(
            "sunset",
            r"\b(?:at|during|in\s+the|against\s+the|against\s+a|under\s+the)\s+(?:[a-z]+\s+)?"
            r"(?:sunset|sundown|dusk|twilight|sunrise|dawn|golden\s+hour)\b",
            "orange",
            "at sunset",
            (
                (0.0, 0.62, (245, 110, 85), (255, 195, 110)),
                (0.62, 1.0, (95, 62, 78), (48, 34, 50)),
            ),
        ),
        Backdrop(
            "table",
            r"\bon\s+(?:a|the)\s+(?:wooden\s+|kitchen\s+|dining\s+)?(?:table|desk|counter|tabletop)\b|"
            r"\b(?:a|the)\s+(?:wooden\s+|kitchen\s+|dining\s+)?(?:table|desk)\s+(?:with|holding)\b|"
            r"\bin\s+(?:a|the)\s+kitchen\b",
            "brown",
            "on a table",
            ((0.0, 0.5, (238, 230, 215), (225, 214, 196)), (0.5, 1.0, (170, 115, 70), (135, 88, 50))),
        ),
    )
}
_PATTERNS = [(re.compile(b.pattern, re.I), b.name) for b in BACKDROPS.values()]


def take_backdrop(caption: str) -> tuple[str, str | None]:
    """``caption`` without the setting phrases it names, and the first one's setting (or None)."""
    best: tuple[int, re.Match[str], str] | None = None
    for pattern, name in _PATTERNS:
        m = pattern.search(caption)
        if m is not None and (best is None or m.start() < best[0]):
            best = (m.start(), m, name)
    if best is None:
        return caption, None
    for pattern, _ in _PATTERNS:  # the first setting is drawn; the others are taken out too, not read as
        caption = " ".join(pattern.sub(" ", caption).split())  # things ("under a clear blue sky")
    return caption, best[2]


def backdrop_field(name: str, width: int, height: int) -> np.ndarray:
    """[height, width, 3] float32: the setting's colour field (bands of vertical gradients; stars at night,
    placed by a fixed generator so every render of a size is the same)."""
    b = BACKDROPS[name]
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height
    column = np.zeros((height, 3), np.float32)
    for top, bottom, c0, c1 in b.bands:
        rows = (ys >= top) & (ys < bottom) if bottom < 1.0 else ys >= top
        t = ((ys[rows] - top) / max(1e-6, bottom - top))[:, None]
        column[rows] = np.array(c0, np.float32) * (1 - t) + np.array(c1, np.float32) * t
    field = np.repeat(column[:, None, :], width, axis=1)
    if b.stars:
        rng = np.random.default_rng(22)
        n = max(12, width * height // 9000)
        sx = (rng.random(n) * width).astype(np.int64)
        sy = (rng.random(n) * height * b.bands[0][1]).astype(np.int64)
        r = max(1, min(width, height) // 400)
        for dx in range(-r + 1, r):
            for dy in range(-r + 1, r):
                field[np.clip(sy + dy, 0, height - 1), np.clip(sx + dx, 0, width - 1)] = (245, 240, 200)
    return field


#: RGB distance from the planned colour within which a pixel is the backdrop (as shades are tinted).
FIELD_RADIUS = 60.0


def apply_backdrop(image: Image.Image, name: str, planned: RGB | None = None) -> Image.Image:
    """``image`` (at the output size) with the pixels painted in the backdrop's planned colour replaced by
    its colour field, in proportion to how close they are (anti-aliased edges blend)."""
    b = BACKDROPS[name]
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    src = np.array(planned or COLOURS[b.colour], np.float32)
    weight = np.clip(1.0 - np.linalg.norm(rgb - src, axis=2) / FIELD_RADIUS, 0.0, 1.0)
    weight = np.minimum(1.0, 2.0 * weight)[..., None]
    field = backdrop_field(name, image.width, image.height)
    out = rgb * (1 - weight) + field * weight
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")
