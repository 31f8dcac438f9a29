"""What gouache-mini does to its render after denoising, at the working resolution: light and dark shades.

The grounding tokens carry a colour as a one-hot over the twelve :data:`~gouache.mini.scenes.vocabulary.
COLOURS`, so the UNet paints "light grey" as grey. Rather than retrain it on more colours, the reader keeps
the shade asked for (:attr:`~gouache.mini.scenes.request.ObjectRequest.shade`,
:attr:`~gouache.mini.scenes.request.SceneRequest.background_shade`) and :func:`tint` moves the pixels painted
in the base colour to the shade's RGB, in proportion to how close they are to the base colour (anti-aliased
edges move part of the way). The engine calls it through the text encoder's ``finish_render`` hook, before
the image is brought to the requested size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from gouache.mini.scenes.request import SceneRequest
from gouache.mini.scenes.vocabulary import COLOURS, SHADES

__all__ = ["TINT_RADIUS", "shades_of", "tint"]

#: RGB distance from a base colour within which a pixel is (partly) that colour: half the distance (97)
#: between the closest two base colours (orange, yellow), so a tint never reaches a neighbouring colour.
TINT_RADIUS = 48.0


def shades_of(request: SceneRequest) -> dict[str, str]:
    """{base colour: shade} for what ``request`` asks to be tinted (the background's shade first)."""
    out: dict[str, str] = {}
    if request.background_shade and request.background_colour:
        out[request.background_colour] = request.background_shade
    for o in request.objects:
        if o.shade and o.colour:
            out.setdefault(o.colour, o.shade)
    return out


def tint(image: Image.Image, request: SceneRequest) -> Image.Image:
    """``image`` with every base colour of :func:`shades_of` moved to its shade (unchanged when none)."""
    shades = shades_of(request)
    if not shades:
        return image
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    out = rgb.copy()
    for base, shade in shades.items():
        src = np.array(COLOURS[base], dtype=np.float32)
        dst = np.array(SHADES[shade][1], dtype=np.float32)
        weight = np.clip(1.0 - np.linalg.norm(rgb - src, axis=2) / TINT_RADIUS, 0.0, 1.0)
        weight = np.minimum(1.0, 2.0 * weight)  # within half the radius: fully the shade
        out += weight[..., None] * (dst - src)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")
