"""Edits on a diffusers pipeline: inpainting, outpainting, image-to-image and multi-reference edits.

The runner's stages call two functions here: :func:`prepare_edit` (stage 2: the canvas, mask and init image
from :mod:`gouache.engine.canvas`, the strength, the derived pipeline) and :func:`denoise_edit` (stage 3: one
pipeline call for one image). Pixel work without a model is in :mod:`gouache.engine.canvas`; blending the
result back into the input is the finish stage's (:func:`gouache.engine.finish.finish_image`). Nothing here
knows about HTTP or the OpenAI API. The mode follows from the :class:`~gouache.engine.jobs.EditInputs`
(:func:`~gouache.engine.canvas.edit_mode`):

``inpaint`` (a mask is given; 255 = repaint, 0 = keep)
    The family's inpainting pipeline renders at the working size (:func:`~gouache.engine.geometry.
    working_size` of the *output* size) with ``strength=1.0``: the masked region is repainted from pure
    noise, whatever ``EditInputs.strength`` says. The pipeline's mask is snapped outwards to the VAE's 8-px
    latent grid. The finish stage resizes the result to the output size and composites it back over the
    input (itself resized to the output size) through a feathered mask, so every pixel 4 px or more
    (Chebyshev) from the mask is *exactly* the resized input.

``outpaint`` (no mask, and the first image has pixels with alpha < 128)
    The transparent pixels become the mask and the image is flattened onto an edge-extended fill
    (:func:`~gouache.engine.canvas.prepare_edit_canvas`). Then it is an inpaint with ``strength``
    :data:`OUTPAINT_STRENGTH` (0.95) instead of 1.0, so that a trace of the fill's colours survives the noise
    and the new content continues the picture across the seam; compositing is as for inpainting.

``image-to-image`` (no mask, no transparency)
    The family's image-to-image pipeline with ``EditInputs.strength`` (clamped to [0.01, 1]; the caller picks
    the default, 0.6 is sensible). The input is resized (stretched, not cropped) to the working size and the
    output resized to the requested ``width x height``.

Per-family pipelines (all derived with ``diffusers.AutoPipelineFor{Inpainting,Image2Image}.from_pipe``,
which shares every component with the text-to-image pipeline, so memory is not doubled; they are cached per
LoadedModel in a WeakKeyDictionary):

=======  ==================================  ================================
family   inpaint / outpaint                  image-to-image
=======  ==================================  ================================
sd1/sd2  StableDiffusionInpaintPipeline      StableDiffusionImg2ImgPipeline
sdxl     StableDiffusionXLInpaintPipeline    StableDiffusionXLImg2ImgPipeline
sd3      StableDiffusion3InpaintPipeline     StableDiffusion3Img2ImgPipeline
flux     FluxInpaintPipeline                 FluxImg2ImgPipeline
=======  ==================================  ================================

With a text-to-image checkpoint (4 latent channels for SD, no "Fill" transformer for FLUX) these inpainting
pipelines work by latent-mask blending: after every step the unmasked latents are reset to the input's
latents noised to the next timestep. A pipeline class with no inpainting counterpart (``from_pipe`` raises)
falls back to the image-to-image pipeline plus the same latent-mask blending done here in the step callback
(:class:`_LatentBlend`, for 4-D latents; packed FLUX-style latents get pixel compositing only). Either way,
the final pixel compositing guarantees the unmasked pixels.

Several reference images (``len(images) > 1``). None of our families has an image adapter, so extra
references are *composited into the init image* in pixel space before denoising
(:func:`~gouache.engine.canvas.blend_references`). In inpaint/outpaint modes the blend only applies inside
the repaint mask, and denoising uses a strength below 1 so the references show through. ``input_fidelity``
sets how faithfully the first image is kept against the references:

=====================  ============================  ==========================================
input_fidelity         weights                       strength
=====================  ============================  ==========================================
``"high"`` (default)   first 0.75, rest share 0.25   image-to-image: ``strength`` as given;
                                                     inpaint/outpaint: 0.9
``"low"``              all images equal (1/n)        image-to-image: ``min(1, strength + 0.15)``;
                                                     inpaint/outpaint: 0.8
=====================  ============================  ==========================================

With a single image ``input_fidelity`` changes nothing (``strength`` is the knob).

Every call: the plan's scheduler (set on the model by the runner's prepare stage) set on the derived pipeline
too (``from_pipe`` pipelines keep their own reference), the image's own ``torch.Generator("cpu")
.manual_seed(seed)``, one image per call (SD3 img2img breaks with ``num_images_per_prompt > 1``), explicit
``height``/``width`` where the pipeline accepts them (SD3/FLUX need them; SD/SDXL img2img take the init
image's size, which is the working size), ``guidance_scale=plan.guidance``, the negative prompt when given
(for guidance-distilled FLUX only with ``true_cfg_scale = max(1.5, guidance)``, as for text-to-image), inside
``torch.inference_mode()``. Image-to-image pipelines run only about ``steps * strength`` of the
``num_inference_steps`` they are given; ``num_inference_steps`` starts at ``plan.steps`` and is raised until
at least one step runs, and ``step_callback(step, total, latents)`` reports the real count (the pipeline's own
``num_timesteps``; PNDM adds one). Same inputs and seed give identical pixels.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from gouache.engine.canvas import (
    blend_references,
    edit_mode,
    fill_region,
    latent_grid_mask,
    mask_region,
    prepare_edit_canvas,
)
from gouache.engine.catalog import SamplingPlan
from gouache.engine.finish import Backdrop
from gouache.engine.jobs import EditInputs
from gouache.engine.pipelines import LoadedModel

#: Strength of an outpaint: nearly full repaint, keeping a trace of the edge-extended fill's colours.
OUTPAINT_STRENGTH = 0.95
MIN_STRENGTH = 0.01

#: Called after each denoising step with (step, total, latents); may raise to cancel.
StepCallback = Callable[[int, int, Any], None]


@dataclass(frozen=True)
class _Fidelity:
    first_weight: float | None  # None: every image weighs the same
    strength_boost: float  # added to the image-to-image strength
    masked_strength: float  # inpaint/outpaint strength when references are blended in


_FIDELITY = {
    "high": _Fidelity(first_weight=0.75, strength_boost=0.0, masked_strength=0.9),
    "low": _Fidelity(first_weight=None, strength_boost=0.15, masked_strength=0.8),
}


@dataclass(frozen=True)
class PreparedEdit:
    """An edit made ready to denoise (the runner's prepare stage), the same for every image of the job.

    ``pipe``: the derived image-to-image or inpainting pipeline. ``init``: the init image at the working size
    (references blended in). ``mask``: the repaint mask at the working size, snapped to the latent grid; None
    for image-to-image. ``latent_blend``: an image-to-image pipeline inpaints through :class:`_LatentBlend`
    (the fallback) instead of taking the mask itself. ``backdrop``: what the finish stage blends back outside
    the mask; None for image-to-image."""

    mode: str
    pipe: Any
    init: Image.Image
    strength: float
    mask: Image.Image | None
    latent_blend: bool
    backdrop: Backdrop | None

    @property
    def region(self) -> tuple[float, float, float, float] | None:
        """The repaint mask's bounds in canvas units (None for image-to-image): gouache-mini lays the prompt's
        scene out inside them, and letters its words there."""
        return mask_bounds(self.mask)


def mask_bounds(mask: Image.Image | None) -> tuple[float, float, float, float] | None:
    """The bounds of a mask's repainted pixels as fractions of its width and height, or None."""
    box = mask.getbbox() if mask is not None else None
    if box is None or mask is None:
        return None
    w, h = mask.size
    return (box[0] / w, box[1] / h, box[2] / w, box[3] / h)


def prepare_edit(model: LoadedModel, inputs: EditInputs, size: tuple[int, int]) -> PreparedEdit:
    """Canvas, mask, init image (at the working `size`), strength and pipeline for an edit of
    ``inputs.images[0]`` (see the module docstring for the modes)."""
    mode = edit_mode(inputs)
    canvas, mask = prepare_edit_canvas(inputs.images[0], inputs.mask)
    if mask is not None and not np.asarray(mask).any():
        raise ValueError("the mask marks nothing to repaint (255 = repaint, 0 = keep)")
    refs = inputs.images[1:]
    fidelity = _FIDELITY[inputs.input_fidelity]

    with torch.inference_mode():
        if mask is None:
            strength = inputs.strength
            init = canvas
            if refs:
                init = blend_references(canvas, refs, fidelity.first_weight, None)
                strength = min(1.0, strength + fidelity.strength_boost)
            strength = max(MIN_STRENGTH, strength)
            pipe = _derived(model, "img2img")
            work = init.resize(size, Image.Resampling.LANCZOS)
            return PreparedEdit(mode, pipe, work, strength, None, False, None)

        strength = OUTPAINT_STRENGTH if mode == "outpaint" else 1.0
        init = canvas
        if refs:
            region = mask_region(mask)
            init = blend_references(fill_region(canvas, region), refs, fidelity.first_weight, region)
            strength = min(strength, fidelity.masked_strength)
        work = init.resize(size, Image.Resampling.LANCZOS)
        pipe = _derived(model, "inpaint")
        fallback = pipe is None
        if fallback:
            pipe = _derived(model, "img2img")
        work_mask = latent_grid_mask(mask, size, int(getattr(pipe, "vae_scale_factor", 8)))
    return PreparedEdit(mode, pipe, work, strength, work_mask, fallback, Backdrop(canvas, mask))


def denoise_edit(
    model: LoadedModel,
    edit: PreparedEdit,
    prompt: str,
    negative_prompt: str | None,
    plan: SamplingPlan,
    size: tuple[int, int],
    seed: int,
    generator: torch.Generator,
    step_callback: StepCallback | None = None,
) -> Image.Image:
    """One image of a prepared edit: one pipeline call, the RGB result at the working `size`.
    ``step_callback(step, total, latents)`` is called after each denoising step and may raise (e.g. to
    cancel)."""
    pipe = edit.pipe
    with torch.inference_mode():
        blend = None
        if edit.latent_blend and edit.mask is not None:
            blend = _LatentBlend(pipe, edit.init, edit.mask, seed)
        steps = effective_steps(plan.steps, edit.strength)
        estimate = steps - int(max(steps - steps * edit.strength, 0))

        def step_end(p: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if blend is not None and "latents" in kwargs:
                kwargs["latents"] = blend(p, step, kwargs["latents"])
            if step_callback is not None:
                total = int(getattr(p, "num_timesteps", 0) or estimate)
                step_callback(step + 1, total, kwargs.get("latents"))
            return kwargs

        pipe.scheduler = model.pipeline.scheduler
        kwargs: dict[str, Any] = {
            "prompt": prompt,
            "image": edit.init,
            "strength": edit.strength,
            "width": size[0],
            "height": size[1],
            "num_inference_steps": steps,
            "guidance_scale": plan.guidance,
            "num_images_per_prompt": 1,
            "generator": generator,
            "callback_on_step_end": step_end,
            "output_type": "pil",
        }
        if edit.mask is not None and not edit.latent_blend:
            kwargs["mask_image"] = edit.mask
        if negative_prompt:
            kwargs["negative_prompt"] = negative_prompt
            if not model.spec.cfg:
                # Guidance-distilled models (FLUX) embed guidance; a negative prompt needs true CFG on top.
                kwargs["true_cfg_scale"] = max(1.5, plan.guidance)
        with _seeded_layout(pipe, seed, edit.mask):
            output = pipe(**_supported(pipe, kwargs))
    return output.images[0].convert("RGB")


def effective_steps(steps: int, strength: float) -> int:
    """`num_inference_steps` for a pipeline that runs about `steps * strength` of them: `steps`, raised
    until at least one step runs (SD/SDXL run int(n * strength), SD3/FLUX n - int(n - n * strength))."""
    n = max(1, steps)
    while min(int(n * strength), n) < 1:
        n += 1
    return n


# --------------------------------------------------------------------------------------------------
# Derived pipelines
# --------------------------------------------------------------------------------------------------

_DERIVED: weakref.WeakKeyDictionary[LoadedModel, dict[str, Any]] = weakref.WeakKeyDictionary()
_DERIVED_LOCK = threading.Lock()


def _derived(model: LoadedModel, kind: str) -> Any:
    """The model's inpainting ("inpaint") or image-to-image ("img2img") pipeline, or None when its class
    has none. Built once per LoadedModel with from_pipe (components shared, not copied)."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

    with _DERIVED_LOCK:
        cache = _DERIVED.setdefault(model, {})
        if kind not in cache:
            auto = AutoPipelineForInpainting if kind == "inpaint" else AutoPipelineForImage2Image
            try:
                pipe = auto.from_pipe(model.pipeline)
            except (ValueError, KeyError, TypeError, AttributeError):
                pipe = None
            unet = getattr(model.pipeline, "unet", None)
            if kind == "inpaint" and unet is not None and unet.config.in_channels not in (4, 9):
                # SD's inpainting pipeline only runs 4-channel (blend) or 9-channel (inpainting) UNets; others
                # (the embedded model's 48-channel pixel-space UNet) use the img2img latent-blend fallback.
                pipe = None
            if pipe is not None:
                pipe.set_progress_bar_config(disable=True)
            cache[kind] = pipe
        pipe = cache[kind]
    if pipe is None and kind == "img2img":
        raise ValueError(f"{type(model.pipeline).__name__} has no image-to-image pipeline; it cannot edit")
    return pipe


def _supported(pipe: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(pipe.__call__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


# --------------------------------------------------------------------------------------------------
# Step hooks
# --------------------------------------------------------------------------------------------------


class _LatentBlend:
    """Latent-mask blending for an image-to-image pipeline used as an inpainter (the fallback): after each
    step, the latents outside the mask are reset to the init image's latents noised to the next timestep,
    exactly as the diffusers inpainting pipelines do for non-inpainting checkpoints."""

    def __init__(self, pipe: Any, image: Image.Image, mask: Image.Image, seed: int) -> None:
        vae = pipe.vae
        scale = int(getattr(pipe, "vae_scale_factor", 8))
        pixels = pipe.image_processor.preprocess(image, height=image.height, width=image.width)
        latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        self.init = (latents - shift) * vae.config.scaling_factor
        keep = torch.from_numpy(np.asarray(mask) >= 128).float()[None, None]
        self.mask = torch.nn.functional.max_pool2d(keep, scale).to(self.init.device, self.init.dtype)
        gen = torch.Generator("cpu").manual_seed(seed + 1)
        # Noise from a CPU generator, then moved: the same on every device.
        self.noise = torch.randn(self.init.shape, generator=gen, dtype=self.init.dtype).to(self.init.device)

    def __call__(self, pipe: Any, step: int, latents: torch.Tensor) -> torch.Tensor:
        if latents.dim() != 4 or latents.shape[-2:] != self.init.shape[-2:]:
            return latents  # packed latents (FLUX-like): pixel compositing only
        total = int(getattr(pipe, "num_timesteps", 0) or 0)
        timesteps = pipe.scheduler.timesteps[len(pipe.scheduler.timesteps) - total :] if total else []
        proper = self.init
        if step + 1 < len(timesteps):
            t = timesteps[step + 1].reshape(1)
            if hasattr(pipe.scheduler, "scale_noise"):
                proper = pipe.scheduler.scale_noise(self.init, t, self.noise)
            else:
                proper = pipe.scheduler.add_noise(self.init, self.noise, t)
        mask = self.mask.to(latents.device, latents.dtype)
        return (1.0 - mask) * proper.to(latents.device, latents.dtype) + mask * latents


def _seeded_layout(pipe: Any, seed: int, mask: Image.Image | None) -> contextlib.AbstractContextManager[Any]:
    """For a text encoder that lays out a scene (gouache-mini): lay it out for this seed and, when inpainting,
    inside the mask's bounds, so that what the prompt asks for lands where the mask is."""
    encoder = getattr(pipe, "text_encoder", None)
    seeded = getattr(encoder, "layout_seed", None)
    fitted = getattr(encoder, "layout_region", None)
    if seeded is None or fitted is None:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(seeded(seed))
    region = mask_bounds(mask)
    if region is not None:
        stack.enter_context(fitted(region))
    return stack
