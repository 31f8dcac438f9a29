"""A GIF's frames after the first: an image-to-image chain from the rendered key frame (see
:mod:`.animation`). It needs the model, so the runner calls it at the end of denoising, under the lock."""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image

from gouache.engine.catalog import SamplingPlan
from gouache.engine.edits import denoise_edit, prepare_edit
from gouache.engine.jobs import EditInputs
from gouache.engine.pipelines import LoadedModel


def chain_frames(
    model: LoadedModel,
    key: Image.Image,
    count: int,
    motion: float,
    prompt: str,
    negative_prompt: str | None,
    plan: SamplingPlan,
    size: tuple[int, int],
    seed: int,
    check_stop: Callable[[], None] | None = None,
) -> list[Image.Image]:
    """`count - 1` frames after `key`, each an image-to-image step from the one before (at the working
    `size`). Returns all `count` frames, the key first."""
    frames = [key]
    for k in range(1, count):
        if check_stop is not None:
            check_stop()
        inputs = EditInputs(images=(frames[-1],), mask=None, strength=motion)
        prepared = prepare_edit(model, inputs, size)
        frame_seed = (seed + 7919 * k) % 2**63
        generator = torch.Generator("cpu").manual_seed(frame_seed)
        # The noise is the frame's own; the layout seed stays the key frame's, so a model that plans a layout
        # per seed (gouache-mini) keeps the same scene and background in every frame.
        frames.append(denoise_edit(model, prepared, prompt, negative_prompt, plan, size, seed, generator))
    return frames
