"""Drawing a scene's truth with Pillow: backgrounds, soft shadows, sketch hatching, words on signs.

Only training data and evaluation draw scenes (serving paints with the UNet), so nothing on the serving path
imports this module. A scene is drawn at ``size * supersample`` and box-downsampled (exact area coverage, no
ringing) for clean anti-aliased edges. Its randomness (texture period, sketch jitter) comes from the ``rng``
passed in, a stream of its own, so the layout and the caption of a seed do not depend on it.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from gouache.mini.scenes.fonts import fit_font_px, ink_bbox, load_font
from gouache.mini.scenes.shapes import fill_shape, outline_shape, shape_points
from gouache.mini.scenes.truth import ObjectTruth, SceneTruth, TextTruth, luma
from gouache.mini.scenes.vocabulary import COLOURS, RGB, RING_INNER, SIGN

# ----------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------


def _shade(rgb: RGB, amount: float) -> RGB:
    """Mix towards black (light colours) or white (dark colours): a low-contrast variant of ``rgb``."""
    target = 0 if luma(rgb) > 110 else 255
    r, g, b = (round(c + (target - c) * amount) for c in rgb)
    return r, g, b


@lru_cache(maxsize=64)
def _gradient_mask(side: int, horizontal: bool) -> Image.Image:
    mask = Image.linear_gradient("L").resize((side, side), Image.Resampling.BILINEAR)
    return mask.transpose(Image.Transpose.ROTATE_90) if horizontal else mask


@lru_cache(maxsize=256)
def _pattern_mask(kind: str, side: int, period: int, variant: int) -> Image.Image:
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    half = period / 2
    if kind == "stripes":
        if variant == 0:  # horizontal
            for y in range(0, side, period):
                draw.rectangle((0, y, side, y + half - 1), fill=255)
        elif variant == 1:  # vertical
            for x in range(0, side, period):
                draw.rectangle((x, 0, x + half - 1, side), fill=255)
        else:  # diagonal
            for x in range(-side, side, period):
                draw.polygon([(x, 0), (x + half, 0), (x + half + side, side), (x + side, side)], fill=255)
    elif kind == "dots":
        rad = period * 0.22
        for j, y in enumerate(range(period // 2, side + period, period)):
            off = half if variant and j % 2 else 0
            for x in range(period // 2, side + period, period):
                draw.ellipse((x + off - rad, y - rad, x + off + rad, y + rad), fill=255)
    else:  # checker
        for j, y in enumerate(range(0, side, period)):
            for i, x in enumerate(range(0, side, period)):
                if (i + j) % 2:
                    draw.rectangle((x, y, x + period - 1, y + period - 1), fill=255)
    return mask


def _background(kind: str, rgb: RGB, side: int, unit: float, rng: random.Random) -> Image.Image:
    """The background at the supersampled resolution; ``unit`` is supersampled pixels per output pixel
    of a 64 px canvas (patterns scale with the canvas)."""
    alt = _shade(rgb, rng.uniform(0.09, 0.16))
    img = Image.new("RGB", (side, side), rgb)
    if kind in ("gradient_vertical", "gradient_horizontal"):
        return Image.composite(
            Image.new("RGB", (side, side), alt), img, _gradient_mask(side, kind.endswith("l"))
        )
    if kind == "split":
        cut = round(side * rng.uniform(0.35, 0.65))
        img.paste(alt, (0, 0, side, cut) if rng.random() < 0.5 else (0, 0, cut, side))
        return img
    if kind == "solid":
        return img
    period = max(2, round(unit * rng.choice((6, 8, 10, 12)))) // 2 * 2
    variant = rng.randrange(3) if kind == "stripes" else rng.randrange(2)
    img.paste(alt, (0, 0, side, side), _pattern_mask(kind, side, period, variant))
    return img


_SHADOW_ALPHA = [round(v * 0.55) for v in range(256)]


def _draw_shadows(img: Image.Image, truth: SceneTruth, size: int) -> None:
    layer = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(layer)
    off = 0.035 * size
    for o in truth.objects:
        if o.shape == SIGN and o.box is not None:
            x0, y0, x1, y1 = (v * size + off for v in o.box)
            draw.rounded_rectangle((x0, y0, x1, y1), radius=(y1 - y0) * 0.2, fill=255)
        else:
            fill_shape(draw, o.shape, o.cx * size + off, o.cy * size + off, o.radius * size, 255)
    layer = layer.filter(ImageFilter.GaussianBlur(max(0.6, size / 60))).point(_SHADOW_ALPHA)
    layer = layer.resize(img.size, Image.Resampling.BILINEAR)
    r, g, b = (round(c * 0.55) for c in truth.background_rgb)
    img.paste((r, g, b), (0, 0, *img.size), layer)


def draw_sketch(img: Image.Image, o: ObjectTruth, scale: float, rng: random.Random) -> None:
    cx, cy, r = o.cx * scale, o.cy * scale, o.radius * scale * 0.93
    x0, y0 = math.floor(cx - r - 2), math.floor(cy - r - 2)
    w = h = math.ceil(2 * r + 5)
    fill = Image.new("L", (w, h), 0)
    fill_shape(ImageDraw.Draw(fill), o.shape, cx - x0, cy - y0, r, 255)
    hatch = Image.new("L", (w, h), 0)
    hd = ImageDraw.Draw(hatch)
    step = max(3.0, scale / 64 * 3.2)
    lw = max(1, round(scale / 64 * 1.1))
    slope = rng.choice((1, -1))
    k = -float(w)
    while k < w:
        a = k + rng.uniform(-0.3, 0.3) * step
        hd.line([(a, 0), (a + slope * h, h)] if slope > 0 else [(a + h, 0), (a, h)], fill=255, width=lw)
        k += step
    img.paste(o.rgb, (x0, y0, x0 + w, y0 + h), ImageChops.darker(fill, hatch))
    draw = ImageDraw.Draw(img)
    stroke = max(1, round(scale / 64 * 1.3))
    for rr in (r, r * RING_INNER) if o.shape == "ring" else (r,):
        for _ in range(2):
            jit = rr * 0.05
            pts = [
                (x + rng.uniform(-jit, jit), y + rng.uniform(-jit, jit))
                for x, y in shape_points(o.shape, cx, cy, rr)
            ]
            draw.line([*pts, pts[0]], fill=o.rgb, width=stroke, joint="curve")


def _draw_text(img: Image.Image, text: TextTruth, scale: int) -> None:
    """Draw the word at the largest font size that fits its truth box, centred in it."""
    x0, y0, x1, y1 = (v * scale for v in text.box)
    px = fit_font_px(text.font, text.word, (x1 - x0) * 1.002, (y1 - y0) * 1.002)
    bx0, by0, bx1, by1 = ink_bbox(text.font, text.word, px)
    left = x0 + ((x1 - x0) - (bx1 - bx0)) / 2 - bx0
    top = y0 + ((y1 - y0) - (by1 - by0)) / 2 - by0
    ImageDraw.Draw(img).text((left, top), text.word, font=load_font(text.font, px), fill=text.rgb)


def render(truth: SceneTruth, size: int, ss: int, rng: random.Random) -> Image.Image:
    side = size * ss
    img = _background(truth.background, truth.background_rgb, side, side / 64, rng)
    if truth.style == "shadow":
        _draw_shadows(img, truth, size)
    draw = ImageDraw.Draw(img)
    for o in truth.objects:
        cx, cy, r = o.cx * side, o.cy * side, o.radius * side
        edge = COLOURS["white" if sum(o.rgb) < 200 else "black"]
        if o.shape == SIGN and o.box is not None:
            x0, y0, x1, y1 = (v * side for v in o.box)
            outline = edge if truth.style == "outlined" else None
            draw.rounded_rectangle(
                (x0, y0, x1, y1), radius=(y1 - y0) * 0.2, fill=o.rgb, outline=outline, width=max(1, ss * 1)
            )
        elif o.style == "sketch":
            draw_sketch(img, o, side, rng)
        else:
            fill_shape(draw, o.shape, cx, cy, r, o.rgb)
            if o.style == "outlined":
                outline_shape(draw, o.shape, cx, cy, r, edge, max(1, round(min(r * 0.16, side * 0.025))))
    if truth.text is not None:
        _draw_text(img, truth.text, side)
    return img.reduce(ss) if ss > 1 else img


def render_truth(truth: SceneTruth, size: int = 64, seed: int = 0, supersample: int = 4) -> Image.Image:
    """Draw a truth (e.g. one laid out from a caption) exactly as the generator draws its scenes."""
    return render(truth, size, supersample, random.Random(f"gouache-mini/{seed}/render"))
