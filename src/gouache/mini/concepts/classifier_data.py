"""What the evaluator's classifier learns from: each concept's drawing in every style at hand, and crops of
them as the evaluator will see them, made afresh for every training batch.

Styles: Fluent flat (the drawings the model ships), Noto and Twemoji (64 px PNGs from the emoji-datasource
packages). Fluent's colour ("3D") set would be a fourth; it is not fetched yet (note 49). Every drawing is
cut to its opaque bounds and fitted, aspect kept, into a square, as
:func:`~gouache.mini.concepts.drawing.render_concept` fits the drawing the finish stage draws into its
box; the evaluator's crop is that box.

Augmentation (:func:`augment`) runs on whole batches in torch: the drawing scaled 70-105 % and shifted up to
12 % of the box, sometimes with a neighbour's drawing behind it (objects overlap in scenes), on a random
background (a solid colour, two tones, a vertical gradient, or a window of one of the scene backdrops'
colour fields: snow, grass, night, beach, sky, sea, table), then brightness, per-channel and contrast jitter
and a little noise; drawn at twice the output size and averaged down, so edges are anti-aliased as the
evaluator's resized crops are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gouache.mini.concepts.atlas import Concept

__all__ = ["BASE", "Drawings", "augment", "backdrop_tiles", "fit_square", "style_drawings"]

BASE = 64  # pixels of each stored drawing


@dataclass
class Drawings:
    """RGBA drawings ``[n, 4, BASE, BASE]`` (uint8), the concept index of each and its style's name."""

    rgba: torch.Tensor
    labels: torch.Tensor
    styles: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def fit_square(img: Image.Image, side: int = BASE) -> Image.Image:
    """``img`` (RGBA) cut to its opaque bounds and fitted, aspect kept and centred, into a transparent
    ``side`` square (as the finish stage fits a drawing into its box)."""
    img = img.convert("RGBA")
    box = img.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    if box is not None:
        img = img.crop(box)
    scale = side / max(img.width, img.height)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    out = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    out.paste(img.resize((w, h), Image.Resampling.LANCZOS), ((side - w) // 2, (side - h) // 2))
    return out


def _png_table(folder: Path, subdir: str) -> dict[str, Path]:
    table: dict[str, Path] = {}
    for e in json.loads((folder / "emoji.json").read_text()):
        path = folder / "img" / subdir / "64" / e["image"]
        for code in (e.get("unified"), e.get("non_qualified")):
            if code:
                table[code.lower()] = path
    return table


def style_drawings(concepts: Sequence[Concept], sources: dict[str, Path]) -> Drawings:
    """Every concept in Fluent flat, and in each other style of ``sources`` (``noto``, ``twemoji``: the
    unpacked emoji-datasource packages) that has it, joined on the emoji's code points."""
    from gouache.mini.concepts.drawing import render_concept

    pngs = {
        k: _png_table(sources[k], sub)
        for k, sub in (("noto", "google"), ("twemoji", "twitter"))
        if k in sources
    }
    images, labels, styles = [], [], []
    for i, c in enumerate(concepts):
        found: list[tuple[str, Image.Image]] = [("fluent", render_concept(c, BASE))]
        for key, table in pngs.items():
            path = table.get(c.hexcode) or table.get(c.hexcode.replace("-fe0f", ""))
            if path is not None and path.exists():
                found.append((key, fit_square(Image.open(path))))
        for style, img in found:
            images.append(np.asarray(img.convert("RGBA"), np.uint8))
            labels.append(i)
            styles.append(style)
    rgba = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Drawings(rgba, torch.tensor(labels, dtype=torch.int64), styles)


def backdrop_tiles(side: int = BASE) -> torch.Tensor:
    """``[n, 3, side, side]`` in [0, 1]: windows of every scene backdrop's colour field (at a few picture
    sizes and heights), backgrounds a concept's box may stand on."""
    from gouache.mini.concepts.backdrops import BACKDROPS, backdrop_field

    tiles = []
    for name in BACKDROPS:
        for scale in (3, 6):
            field = backdrop_field(name, side * scale, side * scale)
            for row in range(0, side * scale - side + 1, side // 2):
                for col in (0, side * scale // 2):
                    tiles.append(field[row : row + side, col : col + side])
    return torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).float() / 255


def _backgrounds(n: int, side: int, tiles: torch.Tensor | None, g: torch.Generator) -> torch.Tensor:
    """``[n, 3, side, side]``: a solid colour, two tones split at a random row, a vertical gradient, or a
    backdrop tile, in equal parts (no tiles: their share goes to solid colours)."""
    c0, c1 = torch.rand(n, 3, 1, 1, generator=g), torch.rand(n, 3, 1, 1, generator=g)
    rows = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    kind = torch.randint(0, 4, (n,), generator=g)
    cut = torch.rand(n, 1, 1, 1, generator=g)
    split = (rows.view(1, 1, side, 1) >= cut).float()
    t = rows.view(1, 1, side, 1).expand(n, 1, side, 1)
    bg = torch.where((kind == 1).view(n, 1, 1, 1), c0 * (1 - split) + c1 * split, c0.expand(n, 3, side, 1))
    bg = torch.where((kind == 2).view(n, 1, 1, 1), c0 * (1 - t) + c1 * t, bg).expand(n, 3, side, side).clone()
    if tiles is not None and len(tiles):
        pick = torch.randint(0, len(tiles), (n,), generator=g)
        tile = F.interpolate(tiles[pick], size=(side, side), mode="bilinear", align_corners=False)
        bg = torch.where((kind == 3).view(n, 1, 1, 1), tile, bg)
    return bg


def _place(rgba: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, side: int) -> torch.Tensor:
    """The drawings scaled by ``scale`` and shifted by ``shift`` (fractions of the box), resampled to
    ``side``, transparent outside."""
    n = rgba.shape[0]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = -2 * shift / scale[:, None]
    grid = F.affine_grid(theta, [n, 4, side, side], align_corners=False)
    return F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment(
    rgba: torch.Tensor, size: int, g: torch.Generator, tiles: torch.Tensor | None = None
) -> torch.Tensor:
    """Crops as the evaluator sees them: ``[n, 3, size, size]`` in [0, 1] from RGBA drawings ``[n, 4, s, s]``
    (uint8), each on its own random background, scaled, shifted, sometimes in front of another drawing of
    the batch, colour-jittered (see the module's docstring)."""
    n, side = rgba.shape[0], 2 * size
    x = rgba.float() / 255
    out = _backgrounds(n, side, tiles, g)
    # a neighbour: another drawing of the batch, mostly off to one side, behind this one
    behind = torch.rand(n, generator=g) < 0.3
    if behind.any():
        other = x[torch.randperm(n, generator=g)]
        angle = torch.rand(n, generator=g) * 2 * torch.pi
        far = 0.55 + 0.3 * torch.rand(n, generator=g)
        shift = torch.stack([far * torch.cos(angle), far * torch.sin(angle)], 1)
        placed = _place(other, 0.6 + 0.4 * torch.rand(n, generator=g), shift, side)
        alpha = placed[:, 3:] * behind.view(n, 1, 1, 1)
        out = out * (1 - alpha) + placed[:, :3] * alpha
    scale = 0.7 + 0.35 * torch.rand(n, generator=g)
    shift = (torch.rand(n, 2, generator=g) - 0.5) * 0.24
    placed = _place(x, scale, shift, side)
    alpha = placed[:, 3:]
    out = out * (1 - alpha) + placed[:, :3] * alpha
    out = F.avg_pool2d(out, 2)
    brightness = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    gain = brightness * (0.9 + 0.2 * torch.rand(n, 3, 1, 1, generator=g))
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    out = (out - mean) * contrast + mean
    out = out * gain + 0.02 * torch.randn(out.shape, generator=g)
    return out.clamp(0, 1)
