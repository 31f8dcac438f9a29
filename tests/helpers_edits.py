"""Edit helpers only tests need: one edit on a loaded model, returned as pixels rather than encoded bytes, and
a measure of how visible the seam around a mask is.

:func:`run_edit` composes the engine's own edit stages (prepare, denoise, finish; the runner adds loading,
progress, cancellation and encoding), so a test of it is a test of what the runner renders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from gouache.engine.canvas import binary_mask
from gouache.engine.catalog import SamplingPlan
from gouache.engine.edits import StepCallback, denoise_edit, prepare_edit
from gouache.engine.finish import finish_image
from gouache.engine.geometry import working_size
from gouache.engine.jobs import EditInputs
from gouache.engine.pipelines import LoadedModel


def run_edit(
    model: LoadedModel,
    prompt: str,
    negative_prompt: str | None,
    plan: SamplingPlan,
    width: int,
    height: int,
    seed: int,
    inputs: EditInputs,
    step_callback: StepCallback | None = None,
) -> Image.Image:
    """Edit ``inputs.images[0]`` (see :mod:`gouache.engine.edits` for the modes) and return an RGB image of
    exactly ``width x height``. ``step_callback(step, total, latents)`` is called after each denoising step and
    may raise (e.g. to cancel)."""
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    spec = model.spec
    size = working_size(width, height, plan.resolution or spec.resolution, spec.multiple)
    # 2. prepare (the runner's: the plan's scheduler, then the edit's canvas and pipeline)
    model.use_scheduler(plan.scheduler)
    edit = prepare_edit(model, inputs, size)
    # 3. denoise
    generator = torch.Generator("cpu").manual_seed(seed)
    out = denoise_edit(model, edit, prompt, negative_prompt, plan, size, seed, generator, step_callback)
    # 4. finish (without encoding)
    return finish_image(out, width, height, spec.upscaler, edit.backdrop)


@dataclass(frozen=True)
class SeamStats:
    """Mean absolute step between pixel pairs straddling the mask border, next to the mean step between
    neighbouring pixels on either side of it (the image's own texture)."""

    border: float
    kept: float
    repainted: float


def measure_seam(image: Image.Image, mask: Image.Image) -> SeamStats:
    """How visible the mask border is in ``image``: the mean absolute RGB step across it, against the mean
    step between neighbours entirely on the kept side and entirely on the repainted side."""
    arr = np.asarray(image.convert("RGB")).astype(np.float32)
    inside = np.asarray(binary_mask(mask.resize(image.size, Image.Resampling.NEAREST))) > 0
    border: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    new: list[np.ndarray] = []
    for axis in (0, 1):
        a = np.moveaxis(arr, axis, 0)
        m = np.moveaxis(inside, axis, 0)
        step = np.abs(a[1:] - a[:-1]).mean(axis=-1)
        cross = m[1:] != m[:-1]
        border.append(step[cross])
        kept.append(step[~m[1:] & ~m[:-1]])
        new.append(step[m[1:] & m[:-1]])

    def mean(parts: list[np.ndarray]) -> float:
        values = np.concatenate(parts)
        return float(values.mean()) if values.size else 0.0

    return SeamStats(border=mean(border), kept=mean(kept), repainted=mean(new))
