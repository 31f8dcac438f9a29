"""The edit stages on tiny pipelines of every family: inpaint, outpaint, image-to-image, several references,
determinism, progress/cancellation and the latent-blending fallback."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from gouache.engine.canvas import edit_mode, feather_mask, prepare_edit_canvas
from gouache.engine.catalog import SamplingPlan, spec_for_directory
from gouache.engine.edits import effective_steps
from gouache.engine.jobs import EditInputs
from gouache.engine.pipelines import LoadedModel, load_pipeline
from gouache.engine.tiny import FAMILIES, build_tiny_pipeline
from tests.helpers_edits import measure_seam, run_edit

PLAN = SamplingPlan(steps=3, guidance=2.0)
PROMPT = "a red fox in the snow"


@pytest.fixture(scope="session")
def edit_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoadedModel]:
    """One tiny model per family, rendering at a working resolution of 64 px."""
    root = tmp_path_factory.mktemp("edit-models")
    models = {}
    for family in FAMILIES:
        path = build_tiny_pipeline(family, root / family)
        spec = dataclasses.replace(spec_for_directory(path), resolution=64)
        models[family] = LoadedModel(spec, load_pipeline(path))
    return models


def gradient(width: int = 64, height: int = 64) -> Image.Image:
    """A smooth RGB gradient: red grows to the right, green downwards."""
    x = np.broadcast_to(np.linspace(0, 255, width)[None, :], (height, width))
    y = np.broadcast_to(np.linspace(0, 255, height)[:, None], (height, width))
    blue = np.full((height, width), 128.0)
    return Image.fromarray(np.stack([x, y, blue], axis=-1).astype(np.uint8), "RGB")


def square_mask(size: int = 64, box: tuple[int, int, int, int] = (20, 20, 44, 44)) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, box)
    return mask


def far_from(mask: Image.Image, px: int) -> np.ndarray:
    """Pixels at least `px` pixels (Chebyshev) away from the mask."""
    grown = mask.filter(ImageFilter.MaxFilter(2 * (px - 1) + 1))
    return np.asarray(grown) == 0


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(np.int16)


def transparent_border(image: Image.Image, border: int) -> Image.Image:
    rgba = image.convert("RGBA")
    alpha = np.zeros((image.height, image.width), np.uint8)
    alpha[border:-border, border:-border] = 255
    rgba.putalpha(Image.fromarray(alpha, "L"))
    return rgba


def edit(
    model: LoadedModel,
    inputs: EditInputs,
    width: int = 64,
    height: int = 64,
    seed: int = 7,
    negative: str | None = None,
    step_callback: Callable[[int, int, Any], None] | None = None,
) -> Image.Image:
    return run_edit(model, PROMPT, negative, PLAN, width, height, seed, inputs, step_callback)


# --------------------------------------------------------------------------------------------------
# Per family
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_inpaint_keeps_outside_and_repaints_inside(edit_models: dict[str, LoadedModel], family: str) -> None:
    model = edit_models[family]
    image, mask = gradient(), square_mask()
    steps: list[tuple[int, int]] = []
    out = edit(
        model,
        EditInputs((image,), mask, 0.6),
        negative="blurry",
        step_callback=lambda s, t, _latents: steps.append((s, t)),
    )

    assert out.mode == "RGB" and out.size == (64, 64)
    diff = np.abs(pixels(out) - pixels(image)).max(axis=-1)
    assert diff[far_from(mask, 4)].max() <= 2
    assert diff[np.asarray(mask) > 0].mean() > 10
    total = steps[-1][1]
    assert steps == [(i, total) for i in range(1, total + 1)]
    assert total >= PLAN.steps  # inpainting repaints fully: every step runs (PNDM adds one)


@pytest.mark.parametrize("family", FAMILIES)
def test_outpaint_transparent_border(edit_models: dict[str, LoadedModel], family: str) -> None:
    image = gradient()
    rgba = transparent_border(image, 12)
    inputs = EditInputs((rgba,), None, 0.6)
    assert edit_mode(inputs) == "outpaint"
    out = edit(edit_models[family], inputs)

    assert out.mode == "RGB" and out.size == (64, 64)
    _, mask = prepare_edit_canvas(rgba, None)
    assert mask is not None
    diff = np.abs(pixels(out) - pixels(image)).max(axis=-1)
    assert diff[far_from(mask, 4)].max() <= 2  # the opaque centre is kept
    assert diff[np.asarray(mask) > 0].mean() > 10  # the border is repainted
    seam = measure_seam(out, mask)
    # The feathered seam is no harsher than the texture on either side (a hard paste: ~2.3x the border).
    assert seam.border <= 1.5 * max(seam.kept, seam.repainted) + 4, seam


@pytest.mark.parametrize("family", FAMILIES)
def test_image_to_image_size_and_strength(edit_models: dict[str, LoadedModel], family: str) -> None:
    model = edit_models[family]
    image = gradient()
    assert edit_mode(EditInputs((image,), None, 0.3)) == "image-to-image"
    steps: list[tuple[int, int]] = []
    weak = edit(
        model,
        EditInputs((image,), None, 0.3),
        96,
        64,
        step_callback=lambda s, t, _latents: steps.append((s, t)),
    )
    strong = edit(model, EditInputs((image,), None, 0.9), 96, 64)

    assert weak.mode == strong.mode == "RGB"
    assert weak.size == strong.size == (96, 64)
    assert np.abs(pixels(weak) - pixels(strong)).mean() > 1
    assert steps and steps[-1][0] == steps[-1][1] >= 1  # 3 steps at strength 0.3: raised to at least one


@pytest.mark.parametrize("family", FAMILIES)
def test_several_references(edit_models: dict[str, LoadedModel], family: str) -> None:
    model = edit_models[family]
    image = gradient()
    red = Image.new("RGB", (32, 64), (255, 0, 0))  # portrait: letterboxed
    blue = Image.new("RGB", (80, 40), (0, 0, 255))  # landscape: letterboxed
    single = edit(model, EditInputs((image,), None, 0.6))
    two = edit(model, EditInputs((image, red), None, 0.6))
    three = edit(model, EditInputs((image, red, blue), None, 0.6))
    low = edit(model, EditInputs((image, red, blue), None, 0.6, input_fidelity="low"))

    for out in (two, three, low):
        assert out.size == (64, 64)
        assert np.abs(pixels(out) - pixels(single)).mean() > 0.3
    assert np.abs(pixels(low) - pixels(three)).mean() > 0.3

    # References also steer an inpaint (inside the mask only).
    mask = square_mask()
    painted = edit(model, EditInputs((image, red), mask, 0.6))
    diff = np.abs(pixels(painted) - pixels(image)).max(axis=-1)
    assert diff[far_from(mask, 4)].max() <= 2


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic(edit_models: dict[str, LoadedModel], family: str) -> None:
    model = edit_models[family]
    image, mask = gradient(), square_mask()
    red = Image.new("RGB", (32, 64), (255, 0, 0))
    for inputs in (EditInputs((image,), mask, 0.6), EditInputs((image, red), None, 0.5)):
        first, second = edit(model, inputs), edit(model, inputs)
        assert np.array_equal(pixels(first), pixels(second))
        assert not np.array_equal(pixels(first), pixels(edit(model, inputs, seed=8)))


# --------------------------------------------------------------------------------------------------
# Shared behaviour (one family is enough)
# --------------------------------------------------------------------------------------------------


def test_edits_leave_text_to_image_unchanged(edit_models: dict[str, LoadedModel]) -> None:
    """from_pipe shares components; the base pipeline still renders the same pixels afterwards."""
    model = edit_models["sdxl"]

    def render() -> np.ndarray:
        model.use_scheduler("default")
        gen = torch.Generator("cpu").manual_seed(3)
        out = model.pipeline(PROMPT, num_inference_steps=2, height=64, width=64, generator=gen)
        return np.asarray(out.images[0])

    before = render()
    edit(model, EditInputs((gradient(),), square_mask(), 0.6))
    edit(model, EditInputs((gradient(),), None, 0.6))
    assert np.array_equal(before, render())


def test_scheduler_choice_reaches_the_edit_pipeline(edit_models: dict[str, LoadedModel]) -> None:
    model = edit_models["sd1"]
    image = gradient()
    plans = [dataclasses.replace(PLAN, scheduler=name) for name in ("default", "euler", "dpm++")]
    outs = [run_edit(model, PROMPT, None, plan, 64, 64, 1, EditInputs((image,), None, 0.6)) for plan in plans]
    assert not np.array_equal(pixels(outs[0]), pixels(outs[1]))
    assert not np.array_equal(pixels(outs[1]), pixels(outs[2]))


def test_output_size_differs_from_input_size(edit_models: dict[str, LoadedModel]) -> None:
    image, mask = gradient(), square_mask()
    out = edit(edit_models["sd3"], EditInputs((image,), mask, 0.6), 96, 96)
    assert out.size == (96, 96)
    big = image.resize((96, 96), Image.Resampling.LANCZOS)
    big_mask = mask.resize((96, 96), Image.Resampling.NEAREST)
    diff = np.abs(pixels(out) - pixels(big)).max(axis=-1)
    assert diff[far_from(big_mask, 4)].max() <= 2


def test_step_callback_can_cancel(edit_models: dict[str, LoadedModel]) -> None:
    class Stop(Exception):
        pass

    def cancel(step: int, total: int, latents: Any) -> None:
        raise Stop

    with pytest.raises(Stop):
        edit(edit_models["flux"], EditInputs((gradient(),), square_mask(), 0.6), step_callback=cancel)


def test_fallback_without_inpainting_pipeline(
    edit_models: dict[str, LoadedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline with no inpainting counterpart: image-to-image plus latent-mask blending, then compositing."""

    def no_inpaint(cls: object, pipeline: object, **kwargs: object) -> object:
        raise ValueError("no inpainting pipeline")

    monkeypatch.setattr(diffusers.AutoPipelineForInpainting, "from_pipe", classmethod(no_inpaint))
    base = edit_models["sd1"]
    model = LoadedModel(base.spec, base.pipeline)  # a fresh cache of derived pipelines
    image, mask = gradient(), square_mask()
    out = edit(model, EditInputs((image,), mask, 0.6))
    diff = np.abs(pixels(out) - pixels(image)).max(axis=-1)
    assert diff[far_from(mask, 4)].max() <= 2
    assert diff[np.asarray(mask) > 0].mean() > 10
    assert np.array_equal(pixels(out), pixels(edit(model, EditInputs((image,), mask, 0.6))))


# --------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------


def test_prepare_edit_canvas() -> None:
    image = gradient()
    canvas, mask = prepare_edit_canvas(image, None)
    assert canvas.mode == "RGB" and mask is None
    canvas, mask = prepare_edit_canvas(image.convert("RGBA"), None)  # opaque alpha: not an outpaint
    assert mask is None and np.array_equal(pixels(canvas), pixels(image))

    rgba = transparent_border(image, 12)
    canvas, mask = prepare_edit_canvas(rgba, None)
    assert canvas.mode == "RGB" and canvas.size == (64, 64)
    assert mask is not None and mask.mode == "L"
    assert np.array_equal(np.asarray(mask) > 0, np.asarray(rgba)[..., 3] == 0)
    assert np.array_equal(pixels(canvas)[12:-12, 12:-12], pixels(image)[12:-12, 12:-12])
    # The fill continues the picture: a step at the border near the gradient's own (a black fill: ~127).
    seam = measure_seam(canvas, mask)
    assert seam.border <= 2 * seam.kept + 1.5, seam

    explicit = square_mask()
    canvas, mask = prepare_edit_canvas(rgba, explicit)  # an explicit mask wins over the alpha channel
    assert mask is not None and np.array_equal(np.asarray(mask), np.asarray(explicit))

    openai_style = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    openai_style.paste((0, 0, 0, 0), (20, 20, 44, 44))
    _, mask = prepare_edit_canvas(image, openai_style)  # alpha masks: transparent = repaint
    assert mask is not None and np.array_equal(np.asarray(mask), np.asarray(explicit))


def test_feather_mask_profile() -> None:
    mask = square_mask()
    soft = np.asarray(feather_mask(mask))
    assert (soft[np.asarray(mask) > 0] == 255).all()
    assert (soft[far_from(mask, 4)] == 0).all()
    row = soft[32, 14:21]  # mask starts at x=20
    assert list(row) == sorted(row) and 0 < row[-2] < 255


def test_effective_steps() -> None:
    assert effective_steps(10, 0.6) == 10
    for steps in (1, 2, 3):
        for strength in (0.01, 0.05, 0.3, 0.5, 1.0):
            n = effective_steps(steps, strength)
            assert n >= steps and int(n * strength) >= 1


def test_invalid_inputs(edit_models: dict[str, LoadedModel]) -> None:
    image = gradient()
    with pytest.raises(ValueError, match="1 to 16"):
        EditInputs((), None, 0.5)
    with pytest.raises(ValueError, match="1 to 16"):
        EditInputs((image,) * 17, None, 0.5)
    with pytest.raises(ValueError, match="input_fidelity"):
        EditInputs((image,), None, 0.5, input_fidelity="medium")
    with pytest.raises(ValueError, match="strength"):
        EditInputs((image,), None, 1.5)
    with pytest.raises(ValueError, match="same size"):
        EditInputs((image,), Image.new("L", (32, 32)), 0.5)
    with pytest.raises(ValueError, match="nothing to repaint"):
        edit(edit_models["sd1"], EditInputs((image,), Image.new("L", (64, 64), 0), 0.5))
