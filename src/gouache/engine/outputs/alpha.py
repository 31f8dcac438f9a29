"""Transparent backgrounds for models that cannot paint alpha: render on a flat key colour, then matte.

The key colour is whatever the model painted at the border (the prompt asked for a flat background, see
:func:`keyed_prompt`); a border that is not one flat colour raises :class:`KeyNotUniform` (the service
re-renders once with another seed, then refuses). The matte is the known-background projection (measured in
``docs/design-notes.md``; better on thin lines than a chroma-key ramp or a closed-form matte with an automatic
trimap): pixels far from the key are foreground, pixels within the border's noise are background, and every
pixel between is projected onto the line from the key ``B`` to its nearest foreground colour ``F``:
``alpha = <I - B, F - B> / |F - B|^2``. Its colour becomes ``F`` (no key colour spills into the edges).

gouache-mini needs none of this: it knows its own layout (:func:`gouache.mini.alpha.layout_alpha`)."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

#: What the prompt of a keyed render asks for: a colour rarely found in subjects, painted flat.
KEY_PHRASE = "isolated on a plain flat solid bright green background, no shadow"
#: Words that ask for a transparent background; `background="auto"` picks transparent when one appears.
TRANSPARENCY_WORDS = re.compile(
    r"\b(?:(?:on |with |against )?(?:an? )?transparent background|transparent png|stickers?|"
    r"isolated|cut-?outs?|no background)\b",
    re.IGNORECASE,
)
#: The border is one flat colour when 95 % of its pixels lie this close (RGB Euclidean) to its median.
BORDER_TOLERANCE = 40.0
#: Border noise below this never widens the background band beyond it (RGB Euclidean).
MIN_BAND = 10.0
#: A pixel is foreground when it is at least this far from the key (RGB) and nearly as far as the farthest
#: pixel around it (:data:`CORE_FRACTION` of it, within :data:`CORE_WINDOW` of the shorter side): the core of
#: a shape, not the ramp of its edge.
FOREGROUND_DISTANCE = 60.0
CORE_FRACTION = 0.92
CORE_WINDOW = 0.03


class KeyNotUniform(Exception):
    """The border of a keyed render is not one flat colour, so no key colour can be read from it."""


def asks_for_transparency(prompt: str) -> bool:
    """The prompt asks for a transparent background ("transparent background", "sticker", "isolated",
    "cut-out")."""
    return TRANSPARENCY_WORDS.search(prompt) is not None


#: How the transparency words sit in a sentence, removed in this order (each with the glue it needs):
#: "a sticker of a red star" -> "a red star" (the noun and its "of": the subject brings its own article);
#: "a red star sticker" -> "a red star" (a trailing noun); "an isolated apple" -> "an apple" (an adjective:
#: the article is made to agree again, "an isolated red star" -> "a red star"); "a cat on a transparent
#: background", "a cat, no background", "a star, isolated" -> the subject alone (a phrase with its glue).
_AS_NOUN_OF = re.compile(
    r"\b(?:(?:an?|the)\s+)?(?:stickers?|cut-?outs?|transparent png)\s+(?:of|showing|with)\s+", re.IGNORECASE
)
_AS_TRAILING_NOUN = re.compile(r"(?<=\w)\s+(?:stickers?|cut-?outs?)\b", re.IGNORECASE)
_AS_ADJECTIVE = re.compile(r"\b(?:(an?)\s+)?(?:isolated|cut-?out|sticker)\s+(?=(\w))", re.IGNORECASE)
_AS_PHRASE = re.compile(
    r"[,;]?\s*\b(?:(?:on|with|against|over)\s+)?(?:an?\s+)?(?:transparent background|transparent png|"
    r"no background|isolated|stickers?|cut-?outs?)\b",
    re.IGNORECASE,
)


def _agreeing_article(match: re.Match[str]) -> str:
    article, next_letter = match.group(1), match.group(2)
    if article is None:
        return ""
    agreed = "an" if next_letter.lower() in "aeiou" else "a"
    return (agreed.capitalize() if article[0].isupper() else agreed) + " "


def without_transparency_words(prompt: str) -> str:
    """The prompt with its requests for transparency removed, as a sentence still (the model paints the
    subject, the finish stage removes the background); the prompt itself when nothing else is left."""
    cleaned = _AS_NOUN_OF.sub("", prompt)
    cleaned = _AS_TRAILING_NOUN.sub("", cleaned)
    cleaned = _AS_ADJECTIVE.sub(_agreeing_article, cleaned)
    cleaned = _AS_PHRASE.sub("", cleaned)
    cleaned = re.sub(r"\s+([,.;])", r"\1", re.sub(r"\s+", " ", cleaned))
    cleaned = re.sub(r"([,;])(?:\s*[,;])+", r"\1", cleaned).strip(" ,;")
    return cleaned or prompt


def keyed_prompt(prompt: str) -> str:
    return f"{prompt}, {KEY_PHRASE}"


def border_pixels(rgb: np.ndarray) -> np.ndarray:
    """The outer ring (2 % of the shorter side, at least 2 px) as an N x 3 float array."""
    h, w = rgb.shape[:2]
    ring = max(2, round(min(h, w) * 0.02))
    mask = np.ones((h, w), bool)
    mask[ring:-ring, ring:-ring] = False
    return rgb[mask].astype(np.float32)


def key_colour(image: Image.Image) -> tuple[np.ndarray, float]:
    """The key colour read from the border and the border's noise (95th percentile distance to it); raises
    `KeyNotUniform` when the border is not one flat colour."""
    border = border_pixels(np.asarray(image.convert("RGB")))
    key = np.median(border, axis=0)
    spread = float(np.percentile(np.linalg.norm(border - key, axis=1), 95))
    if spread > BORDER_TOLERANCE:
        raise KeyNotUniform(
            f"the background is not one flat colour (border spread {spread:.0f} > {BORDER_TOLERANCE:.0f})"
        )
    return key, spread


def matte(image: Image.Image, key: np.ndarray | None = None, noise: float = 0.0) -> Image.Image:
    """RGBA: `image` (rendered on a flat key colour) with the key removed. `key` defaults to the border's
    colour (:func:`key_colour`, which may raise `KeyNotUniform`)."""
    from scipy import ndimage  # only transparent backgrounds of non-mini models need it: ~40 MB of imports

    if key is None:
        key, noise = key_colour(image)
    rgb = np.asarray(image.convert("RGB")).astype(np.float32)
    diff = rgb - key
    dist = np.linalg.norm(diff, axis=2)
    band = max(MIN_BAND, noise * 1.5)
    background = dist <= band
    window = max(5, round(min(dist.shape) * CORE_WINDOW) | 1)
    core = dist >= CORE_FRACTION * ndimage.maximum_filter(dist, size=window)
    foreground = core & (dist >= max(FOREGROUND_DISTANCE, band * 3))
    if not foreground.any():  # nothing but key: all transparent
        alpha = np.where(background, 0.0, 1.0)
        colour = rgb
    else:
        # Each pixel's nearest foreground colour F (an exact Euclidean distance transform).
        _, (iy, ix) = ndimage.distance_transform_edt(~foreground, return_indices=True)
        fg = rgb[iy, ix]
        direction = fg - key
        alpha = np.einsum("hwc,hwc->hw", diff, direction) / np.maximum(
            np.einsum("hwc,hwc->hw", direction, direction), 1e-6
        )
        alpha = np.clip(alpha, 0.0, 1.0)
        alpha[background] = 0.0
        alpha[foreground] = 1.0
        colour = np.where(foreground[..., None], rgb, fg)  # edges take their foreground's colour: no spill
    out = np.dstack([np.clip(colour, 0, 255), np.round(alpha * 255)]).astype(np.uint8)
    return Image.fromarray(out, "RGBA")


def with_alpha(
    image: Image.Image, alpha: Image.Image, background: tuple[int, int, int] | None
) -> Image.Image:
    """RGBA from an image and its alpha (mode L). Where `background` (the painted background colour) is
    known, edge pixels are un-mixed from it: colour = (I - (1 - a) B) / a, so no background bleeds into
    anti-aliased edges."""
    rgb = np.asarray(image.convert("RGB")).astype(np.float32)
    a = np.asarray(alpha.convert("L")).astype(np.float32) / 255.0
    if background is not None:
        b = np.asarray(background, np.float32)
        edge = (a > 0.05) & (a < 0.95)
        unmixed = (rgb - (1.0 - a[..., None]) * b) / np.maximum(a[..., None], 1e-3)
        rgb = np.where(edge[..., None], np.clip(unmixed, 0, 255), rgb)
    out = np.dstack([rgb, a * 255]).round().astype(np.uint8)
    return Image.fromarray(out, "RGBA")
