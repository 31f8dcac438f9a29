"""Drawing a concept at the output size: the retrieved vector drawing, fitted to the box the planner laid out.

gouache-mini's UNet was trained on shapes; it has never seen a fox. Rather than paint a 64 px smear and
enlarge it, the finish stage draws the concept's own vector drawing (Fluent Emoji, MIT) with ``resvg`` at the
output resolution, in the place and size the planner chose, so it is crisp at any size. This is retrieval,
not generation, and the model card says so. A colour word recolours things ("a blue car": the drawing's main
hue becomes blue, its shading kept) but not animals, plants, food or people, which keep their own colours.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

from gouache.mini.concepts.atlas import Concept
from gouache.mini.scenes.vocabulary import RGB

__all__ = ["draw_concepts", "render_concept"]

_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="{}">{}</svg>'


def _render(svg: str, viewbox: str, w: int, h: int) -> Image.Image:
    import resvg_py

    png = resvg_py.svg_to_bytes(
        svg_string=_SVG.format(viewbox, svg), width=w, height=h, skip_system_fonts=True
    )
    return Image.open(io.BytesIO(bytes(png))).convert("RGBA")


@lru_cache(maxsize=2048)
def _bounds(svg: str) -> tuple[float, float, float, float]:
    """The drawing's opaque bounds in its 32x32 canvas (measured on a 128 px render)."""
    alpha = np.asarray(_render(svg, "0 0 32 32", 128, 128))[..., 3]
    ys, xs = np.nonzero(alpha > 8)
    if len(xs) == 0:
        return 0.0, 0.0, 32.0, 32.0
    return xs.min() / 4, ys.min() / 4, (xs.max() + 1) / 4, (ys.max() + 1) / 4


def _recolour(img: Image.Image, rgb: RGB) -> Image.Image:
    """The drawing with its dominant hue moved to ``rgb``: pixels of that hue (within 30 degrees, saturated)
    take ``rgb`` scaled by their brightness relative to the hue's median, so shading and highlights stay."""
    arr = np.asarray(img, dtype=np.float32)
    hsv = np.asarray(img.convert("RGB").convert("HSV"), dtype=np.float32)
    hue, sat, val = hsv[..., 0] * (360 / 255), hsv[..., 1] / 255, hsv[..., 2] / 255
    coloured = (arr[..., 3] > 0) & (sat > 0.25) & (val > 0.15)
    if coloured.sum() < 8:
        return img
    counts = np.bincount((hue[coloured] // 15).astype(np.int64) % 24, minlength=24)
    main = (int(counts.argmax()) + 0.5) * 15
    near = coloured & (np.abs((hue - main + 180) % 360 - 180) <= 30)
    ref = float(np.median(val[near])) or 1.0
    scale = np.clip(val / ref, 0.35, 1.6)[..., None]
    out = arr.copy()
    out[..., :3] = np.where(near[..., None], np.clip(np.array(rgb, np.float32) * scale, 0, 255), arr[..., :3])
    return Image.fromarray(out.astype(np.uint8), "RGBA")


@lru_cache(maxsize=256)
def render_concept(concept: Concept, side: int, rgb: RGB | None = None) -> Image.Image:
    """``concept`` drawn to fit a ``side`` x ``side`` square (RGBA, centred, aspect kept), recoloured to
    ``rgb`` when given."""
    x0, y0, x1, y1 = _bounds(concept.svg)
    w, h = x1 - x0, y1 - y0
    scale = side / max(w, h)
    pw, ph = max(1, round(w * scale)), max(1, round(h * scale))
    img = _render(concept.svg, f"{x0} {y0} {w} {h}", pw, ph)
    if rgb is not None:
        img = _recolour(img, rgb)
    out = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    out.paste(img, ((side - pw) // 2, (side - ph) // 2))
    return out


def draw_concepts(
    image: Image.Image,
    placed: list[tuple[Concept, float, float, float, RGB | None]],
    shadow: bool = False,
) -> Image.Image:
    """``image`` with each ``(concept, cx, cy, radius, colour)`` drawn: centre in canvas fractions of the
    width and height, radius in fractions of the shorter side (as the layout map reads boxes), recoloured
    to ``colour`` when given. With ``shadow``, each stands on a soft ground shadow."""
    out = image.convert("RGB").copy()
    w, h = out.size
    short = min(w, h)
    for concept, cx, cy, radius, rgb in placed:
        side = max(4, round(2 * radius * short))
        drawing = render_concept(concept, side, rgb)
        left, top = round(cx * w - side / 2), round(cy * h - side / 2)
        if shadow:
            _shadow(out, drawing, left, top)
        out.paste(drawing, (left, top), drawing)
    return out


def _shadow(out: Image.Image, drawing: Image.Image, left: int, top: int) -> None:
    """A soft elliptical shadow under the drawing's lowest opaque row (things stand on the ground)."""
    from PIL import ImageDraw, ImageFilter

    box = drawing.getchannel("A").getbbox()
    if box is None:
        return
    x0, _, x1, y1 = box
    width = x1 - x0
    ew, eh = width * 0.9, max(2.0, width * 0.12)
    pad = int(eh) + 2
    patch_w, patch_h = int(ew) + 2 * pad, int(eh) + 2 * pad
    mask = Image.new("L", (patch_w, patch_h), 0)
    ImageDraw.Draw(mask).ellipse((pad, pad, pad + ew, pad + eh), fill=90)
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, eh / 3)))
    at = (round(left + (x0 + x1) / 2 - patch_w / 2), round(top + y1 - eh * 0.8 - pad))
    out.paste(Image.new("RGB", mask.size, (40, 40, 50)), at, mask)
