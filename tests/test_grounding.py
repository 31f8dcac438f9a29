"""gouache-mini's grounding: scene tokens, their rasterised layout map, and the UNet that reads both."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from gouache.mini.grounding import (
    LAYOUT_CHANNELS,
    LAYOUT_TOKENS,
    SLOTS,
    TOKEN_DIM,
    LayoutUNet,
    empty_tokens,
    fit_to_region,
    glyph_boxes,
    rasterize,
    scene_tokens,
    token_count,
)
from gouache.mini.model import MiniConfig, build_unet
from gouache.mini.scenes.generator import generate_scene
from gouache.mini.scenes.request import ObjectRequest, SceneRequest, layout_scene


def _circle_tokens(cx: float, cy: float, r: float) -> torch.Tensor:
    """A laid-out red circle (token 1), moved to ``(cx, cy)`` with radius ``r``."""
    truth = layout_scene(SceneRequest(objects=(ObjectRequest("circle", "red", "large"),)), random.Random(0))
    tokens = scene_tokens(truth)
    tokens[1, SLOTS["box"]] = torch.tensor([cx - r, cy - r, cx + r, cy + r])
    return tokens


def test_tokens_describe_the_scene() -> None:
    scene = generate_scene(5, kind="text")
    tokens = scene_tokens(scene.truth)
    assert tokens.shape == (LAYOUT_TOKENS, TOKEN_DIM)
    assert scene.truth.text is not None
    letters = len(scene.truth.text.word)
    assert token_count(tokens) == 1 + len(scene.truth.objects) + letters
    assert token_count(empty_tokens(1)[0]) == 0


def test_letter_boxes_split_the_word_in_order() -> None:
    box = (0.2, 0.4, 0.8, 0.6)
    boxes = glyph_boxes("HELLO", "sans-bold", box)
    assert len(boxes) == 5
    lefts = [b[0] for b in boxes]
    assert lefts == sorted(lefts)
    for x0, y0, x1, y1 in boxes:
        assert box[0] - 1e-6 <= x0 < x1 <= box[2] + 1e-6 and (y0, y1) == (box[1], box[3])


def test_the_map_puts_each_object_where_its_box_is() -> None:
    tokens = _circle_tokens(0.25, 0.5, 0.125)[None]
    layout = rasterize(tokens, 16, 16)
    assert layout.shape == (1, LAYOUT_CHANNELS, 16, 16)
    covered = layout[0, 0]
    ys, xs = torch.nonzero(covered, as_tuple=True)
    assert int(xs.min()) >= 1 and int(xs.max()) <= 6  # 0.25 +- 0.125*1.3 of 16 cells
    assert int(ys.min()) >= 5 and int(ys.max()) <= 10
    assert covered[:, 10:].sum() == 0  # nothing on the right half
    # No layout: only the coordinate channels are non-zero.
    blank = rasterize(empty_tokens(1), 16, 16)
    nonzero = [c for c in range(LAYOUT_CHANNELS) if blank[0, c].abs().sum() > 0]
    assert len(nonzero) == 2


def test_shapes_stay_round_at_other_aspect_ratios() -> None:
    tokens = _circle_tokens(0.5, 0.5, 0.2)[None]
    layout = rasterize(tokens, 12, 22)
    ys, xs = torch.nonzero(layout[0, 0], as_tuple=True)
    width, height = int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
    assert abs(width - height) <= 1


def test_layout_unet_saves_loads_and_keeps_the_latent_width(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    unet: Any = build_unet(MiniConfig.tiny(), seed=0)
    unet.eval()
    assert isinstance(unet, LayoutUNet) and unet.config.in_channels == 48
    assert unet.conv_in.in_channels == 48 + LAYOUT_CHANNELS
    unet.save_pretrained(tmp_path / "unet")
    loaded = LayoutUNet.from_pretrained(tmp_path / "unet").eval()
    sample = torch.randn(2, 48, 16, 16, generator=torch.Generator().manual_seed(0))
    hidden = torch.stack([scene_tokens(generate_scene(i).truth) for i in range(2)])
    with torch.no_grad():
        a = unet(sample, torch.tensor([10, 900]), hidden).sample
        b = loaded(sample, torch.tensor([10, 900]), hidden).sample
        c = unet(sample, torch.tensor([10, 900]), empty_tokens(2)).sample
    assert a.shape == sample.shape and torch.equal(a, b)
    assert not torch.allclose(a, c)  # the layout changes the prediction


@pytest.mark.parametrize("size", [(16, 16), (8, 24)])
def test_layout_unet_runs_at_any_latent_size(size: tuple[int, int]) -> None:
    unet: Any = build_unet(MiniConfig.tiny(), seed=0)
    unet.eval()
    sample = torch.randn(1, 48, *size)
    with torch.no_grad():
        out = unet(sample, torch.tensor([500]), scene_tokens(generate_scene(1).truth)[None]).sample
    assert out.shape == sample.shape


def test_layouts_fit_into_a_region() -> None:
    tokens = _circle_tokens(0.5, 0.5, 0.2)
    fitted = fit_to_region(tokens, (0.5, 0.25, 1.0, 0.75))
    x0, y0, x1, y1 = fitted[1, SLOTS["box"]].tolist()
    assert (x0 + x1) / 2 == pytest.approx(0.75) and (y0 + y1) / 2 == pytest.approx(0.5)
    assert x1 - x0 == pytest.approx(0.2) and y1 - y0 == pytest.approx(0.2)  # 0.4 x the region's 0.5 side
    assert torch.equal(fitted[0], tokens[0])  # the scene token has no box to move
