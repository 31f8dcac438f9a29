"""Grounded conditioning of gouache-mini: a scene layout as a few tokens, and the UNet that paints from them.

Small diffusion models bind attributes to objects and place objects badly (GenEval scores SD 1.5 at 4 % on
position and 35 % on counting); what fixes both in the literature is to lay out the scene first and ground
the denoiser in it (GLIGEN, "LLM-grounded Diffusion"). gouache-mini does the same at its own scale: its text
encoder reads the caption into a laid-out scene (:mod:`gouache.mini.reading`) and hands the UNet one token per
object, sign, letter and one for the scene, instead of word embeddings:

* a token is a :data:`TOKEN_DIM`-wide vector: a validity flag, its kind, a box in canvas units and one-hot
  attributes (colour, shape, style, letter, font, background pattern), see :func:`scene_tokens`;
* :class:`LayoutUNet` cross-attends to the tokens (what is in the scene) and rasterises them into a map at the
  latent resolution (where each thing is): every cell holds the attributes of the object it lies on and the
  coordinates of its 4x4 pixels in that object's frame. The UNet still has to learn what a star, a letter R, a
  sketch hatching or a dotted background looks like; the layout tells it where and how big.

The empty caption (classifier-free guidance's unconditional half, and training's caption dropout) is all-zero
tokens: no layout.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from diffusers import ModelMixin, UNet2DConditionModel

from gouache.mini.scenes.fonts import fit_font_px, load_font
from gouache.mini.scenes.truth import SceneTruth, TextTruth, dominant_colour_name
from gouache.mini.scenes.vocabulary import BACKGROUNDS, COLOURS, SHAPES, SIGN, STYLES

__all__ = [
    "LAYOUT_CHANNELS",
    "LAYOUT_TOKENS",
    "TOKEN_DIM",
    "LayoutUNet",
    # diffusers picks a component's load/save methods by looking its base classes up in its module.
    "ModelMixin",
    "empty_tokens",
    "fit_to_region",
    "glyph_boxes",
    "rasterize",
    "scene_tokens",
]

TOKEN_DIM = 128
#: Tokens per scene: the scene, up to 4 objects (6 from the caption reader), a sign and up to 8 letters.
LAYOUT_TOKENS = 16
FONT_NAMES: tuple[str, ...] = ("sans-bold", "serif-bold", "mono-bold", "condensed-bold", "default")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
KINDS = ("object", "sign", "glyph", "scene")
#: Drawing order where things overlap: letters lie on signs.
_PRIORITY = {"object": 2.0, "sign": 1.0, "glyph": 3.0, "scene": 0.0}
_COLOUR_NAMES = tuple(COLOURS)


def _slots() -> dict[str, slice]:
    sizes = {
        "valid": 1,
        "kind": len(KINDS),
        "box": 4,
        "colour": len(_COLOUR_NAMES),
        "shape": len(SHAPES),
        "style": len(STYLES),
        "letter": len(LETTERS),
        "font": len(FONT_NAMES),
        "pattern": len(BACKGROUNDS),
    }
    out, start = {}, 0
    for name, n in sizes.items():
        out[name] = slice(start, start + n)
        start += n
    assert start <= TOKEN_DIM
    return out


SLOTS = _slots()
#: Per-object attributes painted into the map (kind without "scene", colour ... font).
_ATTRS = slice(SLOTS["kind"].start, SLOTS["kind"].start + 3)
_ONE_HOT = slice(SLOTS["colour"].start, SLOTS["font"].stop)
_SCENE = (SLOTS["colour"], SLOTS["pattern"], SLOTS["style"])
#: Map channels: covered, box half-size (2), kind (3), colour ... font, scene colour/pattern/style, the
#: cell's canvas coordinates (2), and each pixel's coordinates in its object's frame (2 per pixel of a cell).
_PER_CELL = 1 + 2 + 3 + (SLOTS["font"].stop - SLOTS["colour"].start)
_PER_SCENE = len(_COLOUR_NAMES) + len(BACKGROUNDS) + len(STYLES)
CODEC_FACTOR = 4
LAYOUT_CHANNELS = _PER_CELL + _PER_SCENE + 2 + 2 * CODEC_FACTOR * CODEC_FACTOR
#: Cells up to this far outside a box (in half-sizes) still belong to it: outlines, shadows, anti-aliasing.
COVER = 1.3


def empty_tokens(n: int = 1) -> torch.Tensor:
    return torch.zeros(n, LAYOUT_TOKENS, TOKEN_DIM)


def _token(
    kind: str, box: tuple[float, float, float, float] | None = None, **attrs: str | None
) -> torch.Tensor:
    t = torch.zeros(TOKEN_DIM)
    t[SLOTS["valid"].start] = 1.0
    t[SLOTS["kind"].start + KINDS.index(kind)] = 1.0
    if box is not None:
        t[SLOTS["box"]] = torch.tensor(box, dtype=torch.float32)
    tables = {
        "colour": _COLOUR_NAMES,
        "shape": SHAPES,
        "style": STYLES,
        "letter": tuple(LETTERS),
        "font": FONT_NAMES,
        "pattern": BACKGROUNDS,
    }
    for name, value in attrs.items():
        if value is not None and value in tables[name]:
            t[SLOTS[name].start + tables[name].index(value)] = 1.0
    return t


@functools.lru_cache(maxsize=4096)
def glyph_boxes(
    word: str, font: str, box: tuple[float, float, float, float]
) -> tuple[tuple[float, ...], ...]:
    """The box of each letter of ``word`` drawn (as the scene generator draws it) to fill ``box``."""
    x0, y0, x1, y1 = box
    ref = 256
    px = fit_font_px(font, word, (x1 - x0) * ref * 1.002, (y1 - y0) * ref * 1.002)
    face: Any = load_font(font, px)
    bx0, _, bx1, _ = face.getbbox(word)
    scale = (x1 - x0) / max(1e-6, (bx1 - bx0) / ref)
    out = []
    for i, ch in enumerate(word):
        left = face.getlength(word[:i]) if i else 0.0
        cb = face.getbbox(ch)
        gx0 = (left + cb[0] - bx0) / ref * scale + x0
        gx1 = (left + cb[2] - bx0) / ref * scale + x0
        out.append((max(x0, gx0), y0, min(x1, max(gx1, gx0 + 1e-3)), y1))
    return tuple(out)


def _text_tokens(text: TextTruth) -> list[torch.Tensor]:
    font = text.font if text.font in FONT_NAMES else "default"
    boxes = glyph_boxes(text.word, text.font, tuple(text.box))  # type: ignore[arg-type]
    return [
        _token("glyph", b, colour=text.colour, letter=ch.upper(), font=font)  # type: ignore[arg-type]
        for ch, b in zip(text.word, boxes, strict=True)
        if ch.upper() in LETTERS
    ]


def scene_tokens(truth: SceneTruth) -> torch.Tensor:
    """[LAYOUT_TOKENS, TOKEN_DIM]: the scene token, then objects and signs, then letters (unused: zeros)."""
    tokens = [
        _token(
            "scene",
            colour=dominant_colour_name(truth.background_rgb),
            pattern=truth.background,
            style=truth.style,
        )
    ]
    for o in truth.objects:
        if o.concept is not None:  # drawn at the finish (gouache.mini.concepts), not painted
            continue
        if o.shape == SIGN and o.box is not None:
            tokens.append(_token("sign", o.box, colour=o.colour, style=o.style))
        else:
            box = (o.cx - o.radius, o.cy - o.radius, o.cx + o.radius, o.cy + o.radius)
            tokens.append(_token("object", box, colour=o.colour, shape=o.shape, style=o.style))
    if truth.text is not None:
        tokens.extend(_text_tokens(truth.text))
    out = empty_tokens(1)[0]
    for i, t in enumerate(tokens[:LAYOUT_TOKENS]):
        out[i] = t
    return out


def fit_to_region(tokens: torch.Tensor, region: tuple[float, float, float, float]) -> torch.Tensor:
    """The layout moved into ``region`` (x0, y0, x1, y1 in canvas units), e.g. the masked part of an image
    being inpainted: centres map linearly into the region, sizes shrink by its shorter side, so shapes stay
    round."""
    x0, y0, x1, y1 = region
    w, h = max(1e-3, x1 - x0), max(1e-3, y1 - y0)
    out = tokens.clone()
    placed = (out[..., SLOTS["valid"].start] > 0.5) & (
        out[..., SLOTS["kind"].start + KINDS.index("scene")] < 0.5
    )
    box = out[..., SLOTS["box"]]
    cx, cy = (box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2
    hx, hy = (box[..., 2] - box[..., 0]) / 2 * min(w, h), (box[..., 3] - box[..., 1]) / 2 * min(w, h)
    ncx, ncy = x0 + cx * w, y0 + cy * h
    moved = torch.stack([ncx - hx, ncy - hy, ncx + hx, ncy + hy], dim=-1)
    out[..., SLOTS["box"]] = torch.where(placed[..., None], moved, box)
    return out


def rasterize(tokens: torch.Tensor, height: int, width: int, factor: int = CODEC_FACTOR) -> torch.Tensor:
    """[B, LAYOUT_CHANNELS, height, width]: the layout map of ``tokens`` ([B, K, TOKEN_DIM]) at the latent
    resolution. Positions are fractions of the width and height; sizes are fractions of the shorter side, so
    shapes stay round at any aspect ratio."""
    tokens = tokens.float()
    b = tokens.shape[0]
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    side = float(min(height, width))
    box = tokens[..., SLOTS["box"]]
    cx, cy = (box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2
    hx = ((box[..., 2] - box[..., 0]) / 2).clamp(min=1e-3)
    hy = ((box[..., 3] - box[..., 1]) / 2).clamp(min=1e-3)
    # Cell-centre coordinates in each token's frame: [B, K, H, W].
    u = (xs.view(1, 1, 1, width) - cx[..., None, None]) * width / (hx[..., None, None] * side)
    v = (ys.view(1, 1, height, 1) - cy[..., None, None]) * height / (hy[..., None, None] * side)
    kind = tokens[..., SLOTS["kind"]]
    priority = kind @ torch.tensor([_PRIORITY[name] for name in KINDS])
    placed = (tokens[..., SLOTS["valid"].start] > 0.5) & (kind[..., KINDS.index("scene")] < 0.5)
    covered = (u.abs() <= COVER) & (v.abs() <= COVER) & placed[..., None, None]
    # A cell belongs to the covering token of the highest priority and, among those, to the one whose box
    # it is deepest inside (neighbouring letters, objects close together).
    depth = COVER - torch.maximum(u.abs(), v.abs())  # in [0, COVER] where covered
    score = torch.where(covered, priority[..., None, None] * 4.0 + depth + 1.0, torch.zeros_like(u))
    best, index = score.max(dim=1)  # [B, H, W]
    hit = (best > 0).float()

    def pick(values: torch.Tensor) -> torch.Tensor:  # [B, K, C] -> [B, C, H, W] of each cell's token
        c = values.shape[-1]
        gathered = torch.gather(values, 1, index.view(b, height * width, 1).expand(b, height * width, c))
        return gathered.view(b, height, width, c).permute(0, 3, 1, 2) * hit[:, None]

    attrs = torch.cat([tokens[..., _ATTRS], tokens[..., _ONE_HOT]], dim=-1)
    geometry = torch.stack([cx, cy, hx, hy], dim=-1)
    g = pick(geometry)
    # Each pixel's offset inside its cell, in cells: pixel_unshuffle order (row-major within the cell).
    offsets = (torch.arange(factor, dtype=torch.float32) + 0.5) / factor - 0.5
    oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
    px = (xs.view(1, 1, 1, width) + ox.reshape(1, -1, 1, 1) / width - g[:, 0:1]) * width
    py = (ys.view(1, 1, height, 1) + oy.reshape(1, -1, 1, 1) / height - g[:, 1:2]) * height
    pu = px / (g[:, 2:3] * side).clamp(min=1e-3) * hit[:, None]
    pv = py / (g[:, 3:4] * side).clamp(min=1e-3) * hit[:, None]
    scene_mask = (kind[..., KINDS.index("scene")] > 0.5).float()  # [B, K]
    scene = torch.cat([torch.einsum("bk,bkc->bc", scene_mask, tokens[..., s]) for s in _SCENE], dim=-1)
    coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1])  # (x, y)
    return torch.cat(
        [
            hit[:, None],
            g[:, 2:4] * (side / 16.0),
            pick(attrs),
            scene[..., None, None].expand(b, scene.shape[-1], height, width),
            coords[None].expand(b, 2, height, width),
            pu.clamp(-4, 4),
            pv.clamp(-4, 4),
        ],
        dim=1,
    )


class LayoutUNet(UNet2DConditionModel):
    """A ``UNet2DConditionModel`` whose ``encoder_hidden_states`` are layout tokens: it cross-attends to them
    and also reads their rasterised map (:func:`rasterize`), concatenated to its input by a wider first
    convolution. ``config.in_channels`` stays the latent's channel count, so every Stable Diffusion pipeline
    (text-to-image, image-to-image, inpainting) drives it like any UNet."""

    # diffusers reads the config keys from the signature of __init__: the wrapped one is the parent's.
    @functools.wraps(UNet2DConditionModel.__init__)  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conv: Any = getattr(self, "conv_in")  # noqa: B009 (mypy cannot type the parent's attribute)
        self.conv_in = torch.nn.Conv2d(
            conv.in_channels + LAYOUT_CHANNELS,
            conv.out_channels,
            kernel_size=conv.kernel_size,
            padding=conv.padding,
        )

    def layout_input(self, sample: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """The input of the wrapped ``UNet2DConditionModel.forward``: the latents and the layout map. (The
        OpenVINO backend converts that forward and calls this first.)"""
        layout = rasterize(encoder_hidden_states, sample.shape[-2], sample.shape[-1])
        return torch.cat([sample, layout.to(sample.dtype)], dim=1)

    def forward(  # type: ignore[override]
        self,
        sample: torch.Tensor,
        timestep: Any,
        encoder_hidden_states: torch.Tensor,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        sample = self.layout_input(sample, encoder_hidden_states)
        return super().forward(sample, timestep, encoder_hidden_states, *args, **kwargs)  # type: ignore[misc]


def token_count(tokens: torch.Tensor) -> int:
    """How many tokens of one scene ([K, TOKEN_DIM]) are in use."""
    return int((tokens[:, SLOTS["valid"].start] > 0.5).sum())
