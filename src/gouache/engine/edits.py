"""The edit stages: inpainting, outpainting, image-to-image and multi-reference edits over a LoadedModel.

Pure functions over a :class:`~gouache.engine.pipelines.LoadedModel`; nothing here knows about HTTP or the
OpenAI API. :func:`run_edit` picks the mode from its :class:`EditInputs`:

``inpaint`` (a mask is given; 255 = repaint, 0 = keep)
    The family's inpainting pipeline renders at the working size (:func:`~gouache.engine.geometry.
    working_size` of the *output* size) with ``strength=1.0``: the masked region is repainted from pure
    noise, whatever ``EditInputs.strength`` says. The pipeline's mask is snapped outwards to the VAE's 8-px
    latent grid, so a thin mask cannot vanish when the pipeline downsamples it to the latents. The result
    is resized to the output size and composited back in pixel space over the input (itself resized to the
    output size) through a feathered mask: the binary mask, dilated by 1 px, Gaussian-blurred (sigma
    0.75 px), raised back to 255 everywhere inside the mask and cut to 0 beyond 3 px from it. So the masked
    region is entirely new, the next 3 px are a soft blend, and every pixel 4 px or more (Chebyshev) from
    the mask is *exactly* the resized input.

``outpaint`` (no mask, and the first image has pixels with alpha < 128)
    :func:`prepare_edit_canvas` turns the transparent pixels into the mask and flattens the image onto an
    edge-extended fill (a push-pull pyramid: the visible pixels' colours spread smoothly outwards, so the
    fill continues the image's low frequencies instead of showing a black or grey frame; partially
    transparent pixels are alpha-blended onto that fill). Then it is an inpaint with ``strength``
    :data:`OUTPAINT_STRENGTH` (0.95) instead of 1.0, so that a trace of the fill's colours survives the
    noise and the new content continues the picture across the seam; compositing is as for inpainting.

``image-to-image`` (no mask, no transparency)
    The family's image-to-image pipeline with ``EditInputs.strength`` (clamped to [0.01, 1]; the caller
    picks the default, 0.6 is sensible). The input is resized (stretched, not cropped) to the working size
    and the output resized to the requested ``width x height``.

Per-family pipelines (all derived with ``diffusers.AutoPipelineFor{Inpainting,Image2Image}.from_pipe``,
which shares every component with the text-to-image pipeline, so memory is not doubled; they are cached
per LoadedModel in a WeakKeyDictionary):

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
latents noised to the next timestep. A pipeline class with no inpainting counterpart (``from_pipe``
raises) falls back to the image-to-image pipeline plus the same latent-mask blending done here in the
step callback (for 4-D latents; packed FLUX-style latents get pixel compositing only). Either way, the
final pixel compositing guarantees the unmasked pixels.

Several reference images (``len(images) > 1``). None of our families has an image adapter, so extra
references are *composited into the init image* in pixel space before denoising. Each extra reference is
letterboxed (fitted inside, aspect kept, centred) into the first image's frame; its coverage (the
letterbox area times its own alpha) weights it, so bars and transparent areas add nothing. The init image
is the per-pixel weighted average of the first image (weight ``w0``) and the covering references (sharing
``1 - w0`` equally). In inpaint/outpaint modes the blend only applies inside the repaint mask, whose
content is first replaced by the edge-extended fill of its surroundings (the first image's masked content
is what the user wants gone), and denoising uses a strength below 1 so the references show through.
``input_fidelity`` sets how faithfully the first image is kept against the references:

=====================  ============================  ==========================================
input_fidelity         weights                       strength
=====================  ============================  ==========================================
``"high"`` (default)   first 0.75, rest share 0.25   image-to-image: ``strength`` as given;
                                                     inpaint/outpaint: 0.9
``"low"``              all images equal (1/n)        image-to-image: ``min(1, strength + 0.15)``;
                                                     inpaint/outpaint: 0.8
=====================  ============================  ==========================================

With a single image ``input_fidelity`` changes nothing (``strength`` is the knob).

Every call: ``model.use_scheduler(plan.scheduler)`` and the same scheduler object set on the derived
pipeline (``from_pipe`` pipelines keep their own reference), ``generator=torch.Generator("cpu")
.manual_seed(seed)``, one image per call (SD3 img2img breaks with ``num_images_per_prompt > 1``), explicit
``height``/``width`` where the pipeline accepts them (SD3/FLUX need them; SD/SDXL img2img take the init
image's size, which is the working size), ``guidance_scale=plan.guidance``, the negative prompt when given
(for guidance-distilled FLUX only with ``true_cfg_scale = max(1.5, guidance)``, as in the runner), inside
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
from PIL import Image, ImageChops, ImageFilter

from gouache.engine.catalog import SamplingPlan
from gouache.engine.finish import to_exact_size
from gouache.engine.geometry import working_size
from gouache.engine.pipelines import LoadedModel

__all__ = [
    "FIDELITIES",
    "MAX_IMAGES",
    "OUTPAINT_STRENGTH",
    "EditInputs",
    "SeamStats",
    "edit_mode",
    "effective_steps",
    "feather_mask",
    "measure_seam",
    "prepare_edit_canvas",
    "run_edit",
]

MAX_IMAGES = 16
FIDELITIES = ("high", "low")
#: Strength of an outpaint: nearly full repaint, keeping a trace of the edge-extended fill's colours.
OUTPAINT_STRENGTH = 0.95
MIN_STRENGTH = 0.01
#: Pixels with alpha below this are "transparent" (repainted when outpainting).
ALPHA_THRESHOLD = 128

_GROW = 1  # px the mask is dilated before blurring
_FEATHER_SIGMA = 0.75  # px, Gaussian blur of the dilated mask
_REACH = 3  # px beyond the mask where the feather is cut to exactly 0


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
class EditInputs:
    """What an edit starts from.

    ``images``: 1-16 RGB(A) images; the first is the one edited, the rest are references.
    ``mask``: mode "L" (255 = repaint, 0 = keep; binarised at 128), the size of ``images[0]``; a mask with an
    alpha channel is read OpenAI-style (transparent = repaint). ``strength``: 0..1 for image-to-image only.
    ``input_fidelity``: "high" | "low", how strongly the first image dominates the extra references (see the
    module docstring)."""

    images: tuple[Image.Image, ...]
    mask: Image.Image | None
    strength: float
    input_fidelity: str = "high"

    def __post_init__(self) -> None:
        if not 1 <= len(self.images) <= MAX_IMAGES:
            raise ValueError(f"an edit takes 1 to {MAX_IMAGES} images, got {len(self.images)}")
        if self.input_fidelity not in FIDELITIES:
            raise ValueError(f"input_fidelity must be one of {', '.join(FIDELITIES)}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError("strength must be within 0 and 1")
        if self.mask is not None and self.mask.size != self.images[0].size:
            raise ValueError(
                f"the mask is {self.mask.size[0]}x{self.mask.size[1]} but the image is "
                f"{self.images[0].size[0]}x{self.images[0].size[1]}; they must be the same size"
            )


@dataclass(frozen=True)
class SeamStats:
    """Mean absolute step between pixel pairs straddling the mask border, next to the mean step between
    neighbouring pixels on either side of it (the image's own texture)."""

    border: float
    kept: float
    repainted: float


# --------------------------------------------------------------------------------------------------
# Masks and canvases
# --------------------------------------------------------------------------------------------------


#: Called after each denoising step with (step, total, latents); may raise to cancel.
StepCallback = Callable[[int, int, Any], None]


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def _binary_mask(mask: Image.Image) -> Image.Image:
    """255 where the pixel is repainted, else 0 (mode L)."""
    if _has_alpha(mask):
        values = 255 - np.asarray(mask.convert("RGBA"))[..., 3].astype(np.int16)
    else:
        values = np.asarray(mask.convert("L")).astype(np.int16)
    return Image.fromarray(np.where(values >= 128, 255, 0).astype(np.uint8), "L")


def _dilate(mask: Image.Image, px: int) -> Image.Image:
    """Chebyshev dilation by `px` pixels (3x3 max filters, cheaper than one large rank filter)."""
    for _ in range(px):
        mask = mask.filter(ImageFilter.MaxFilter(3))
    return mask


def feather_mask(mask: Image.Image) -> Image.Image:
    """The compositing weight of a binary mask: 255 on the mask, a soft blend over the next 3 px, and exactly
    0 from 4 px (Chebyshev) away."""
    hard = _binary_mask(mask)
    soft = _dilate(hard, _GROW).filter(ImageFilter.GaussianBlur(_FEATHER_SIGMA))
    soft = ImageChops.lighter(soft, hard)
    return ImageChops.multiply(soft, _dilate(hard, _REACH))


def _extend_fill(rgb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill where `weight` (0..1) is low from the weighted pixels around it (push-pull pyramid).

    Returns a float image in which every pixel holds a smooth extension of the known colours."""
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    color = rgb.astype(np.float32) * weight[..., None]
    w = weight.astype(np.float32)
    while True:
        levels.append((color, w))
        h, wd = w.shape
        if (h == 1 and wd == 1) or w.min() > 0:
            break
        ph, pw = h % 2, wd % 2
        if ph or pw:
            color = np.pad(color, ((0, ph), (0, pw), (0, 0)))
            w = np.pad(w, ((0, ph), (0, pw)))
        h2, w2 = color.shape[0] // 2, color.shape[1] // 2
        color = color.reshape(h2, 2, w2, 2, 3).sum(axis=(1, 3))
        w = w.reshape(h2, 2, w2, 2).sum(axis=(1, 3))
        clamp = np.minimum(w, 1.0)
        color = color * (clamp / np.maximum(w, 1e-8))[..., None]
        w = clamp
    color, w = levels[-1]
    fill = np.where(w[..., None] > 0, color / np.maximum(w, 1e-8)[..., None], 127.5)
    for color, w in reversed(levels[:-1]):
        up = _resize_float(fill, (w.shape[1], w.shape[0]))
        known = color / np.maximum(w, 1e-8)[..., None]
        fill = known * w[..., None] + up * (1.0 - w[..., None])
    return np.asarray(fill, dtype=np.float32)


def _resize_float(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(array[..., c]), "F").resize(size, Image.Resampling.BILINEAR)
        )
        for c in range(array.shape[2])
    ]
    return np.stack(channels, axis=-1)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def prepare_edit_canvas(
    first: Image.Image, mask: Image.Image | None
) -> tuple[Image.Image, Image.Image | None]:
    """The RGB canvas to edit and the binary repaint mask (mode L, 255 = repaint), or None.

    Outpainting support: when ``first`` has transparency and no explicit mask is given, the pixels with
    alpha < 128 become the mask. Transparent and partially transparent pixels are flattened onto an
    edge-extended fill of the visible ones (never onto black). An explicit mask wins over the alpha channel;
    it may be mode L (255 = repaint) or carry alpha (OpenAI-style: transparent = repaint)."""
    if mask is not None and mask.size != first.size:
        raise ValueError("the mask must be the same size as the image")
    if not _has_alpha(first):
        return first.convert("RGB"), (_binary_mask(mask) if mask is not None else None)
    rgba = np.asarray(first.convert("RGBA"))
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    if alpha.min() < 1.0:
        fill = _extend_fill(rgb, alpha)
        rgb = rgb * alpha[..., None] + fill * (1.0 - alpha[..., None])
    canvas = Image.fromarray(_to_uint8(rgb), "RGB")
    if mask is not None:
        return canvas, _binary_mask(mask)
    transparent = rgba[..., 3] < ALPHA_THRESHOLD
    if not transparent.any():
        return canvas, None
    return canvas, Image.fromarray(np.where(transparent, 255, 0).astype(np.uint8), "L")


def edit_mode(inputs: EditInputs) -> str:
    """The mode :func:`run_edit` picks for these inputs: "inpaint", "outpaint" or "image-to-image"."""
    if inputs.mask is not None:
        return "inpaint"
    first = inputs.images[0]
    if _has_alpha(first) and (np.asarray(first.convert("RGBA"))[..., 3] < ALPHA_THRESHOLD).any():
        return "outpaint"
    return "image-to-image"


def measure_seam(image: Image.Image, mask: Image.Image) -> SeamStats:
    """How visible the mask border is in ``image``: the mean absolute RGB step across it, against the mean
    step between neighbours entirely on the kept side and entirely on the repainted side."""
    arr = np.asarray(image.convert("RGB")).astype(np.float32)
    inside = np.asarray(_binary_mask(mask.resize(image.size, Image.Resampling.NEAREST))) > 0
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


# --------------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------------


def _letterbox(ref: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`ref` fitted inside `size` (aspect kept, centred): its RGB and its coverage (0..1, alpha included)."""
    width, height = size
    scale = min(width / ref.width, height / ref.height)
    fit = (max(1, round(ref.width * scale)), max(1, round(ref.height * scale)))
    fitted = ref.convert("RGBA").resize(fit, Image.Resampling.LANCZOS)
    frame = Image.new("RGBA", size, (0, 0, 0, 0))
    frame.paste(fitted, ((width - fit[0]) // 2, (height - fit[1]) // 2))
    arr = np.asarray(frame).astype(np.float32)
    return arr[..., :3], arr[..., 3] / 255.0


def _blend_references(
    canvas: Image.Image, refs: tuple[Image.Image, ...], fidelity: _Fidelity, region: np.ndarray | None
) -> Image.Image:
    """The init image: the canvas and the letterboxed references, averaged with the fidelity's weights;
    only inside `region` (0..1 weights) when given."""
    base = np.asarray(canvas).astype(np.float32)
    n = len(refs) + 1
    w0 = fidelity.first_weight if fidelity.first_weight is not None else 1.0 / n
    wr = (1.0 - w0) / len(refs)
    acc = base * w0
    total = np.full(base.shape[:2], w0, dtype=np.float32)
    for ref in refs:
        rgb, coverage = _letterbox(ref, canvas.size)
        acc += rgb * (wr * coverage)[..., None]
        total += wr * coverage
    blend = acc / total[..., None]
    if region is not None:
        blend = base * (1.0 - region[..., None]) + blend * region[..., None]
    return Image.fromarray(_to_uint8(blend), "RGB")


# --------------------------------------------------------------------------------------------------
# Pipelines
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


def effective_steps(steps: int, strength: float) -> int:
    """`num_inference_steps` for a pipeline that runs about `steps * strength` of them: `steps`, raised
    until at least one step runs (SD/SDXL run int(n * strength), SD3/FLUX n - int(n - n * strength))."""
    n = max(1, steps)
    while min(int(n * strength), n) < 1:
        n += 1
    return n


class _LatentBlend:
    """Latent-mask blending for an image-to-image pipeline used as an inpainter (the fallback): after each
    step, the latents outside the mask are reset to the init image's latents noised to the next timestep,
    exactly as the diffusers inpainting pipelines do for non-inpainting checkpoints."""

    def __init__(self, pipe: Any, image: Image.Image, mask: Image.Image, seed: int) -> None:
        vae = pipe.vae
        scale = int(getattr(pipe, "vae_scale_factor", 8))
        pixels = pipe.image_processor.preprocess(image, height=image.height, width=image.width)
        latents = vae.encode(pixels.to(vae.dtype)).latent_dist.mode()
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        self.init = (latents - shift) * vae.config.scaling_factor
        keep = torch.from_numpy(np.asarray(mask) >= 128).float()[None, None]
        self.mask = torch.nn.functional.max_pool2d(keep, scale).to(self.init.dtype)
        gen = torch.Generator("cpu").manual_seed(seed + 1)
        self.noise = torch.randn(self.init.shape, generator=gen, dtype=self.init.dtype)

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
        mask = self.mask.to(latents.dtype)
        return (1.0 - mask) * proper.to(latents.dtype) + mask * latents


def _supported(pipe: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(pipe.__call__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _render(
    model: LoadedModel,
    pipe: Any,
    prompt: str,
    negative_prompt: str | None,
    plan: SamplingPlan,
    size: tuple[int, int],
    seed: int,
    image: Image.Image,
    mask: Image.Image | None,
    strength: float,
    step_callback: StepCallback | None,
    blend: _LatentBlend | None = None,
    region: Image.Image | None = None,
) -> Image.Image:
    steps = effective_steps(plan.steps, strength)
    estimate = steps - int(max(steps - steps * strength, 0))

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
        "image": image,
        "strength": strength,
        "width": size[0],
        "height": size[1],
        "num_inference_steps": steps,
        "guidance_scale": plan.guidance,
        "num_images_per_prompt": 1,
        "generator": torch.Generator("cpu").manual_seed(seed),
        "callback_on_step_end": step_end,
        "output_type": "pil",
    }
    if mask is not None:
        kwargs["mask_image"] = mask
    if negative_prompt:
        kwargs["negative_prompt"] = negative_prompt
        if not model.spec.cfg:
            # Guidance-distilled models (FLUX) embed guidance; a negative prompt needs true CFG on top.
            kwargs["true_cfg_scale"] = max(1.5, plan.guidance)
    with _planned_layout(pipe, seed, region):
        output = pipe(**_supported(pipe, kwargs))
    return output.images[0].convert("RGB")


def _planned_layout(pipe: Any, seed: int, mask: Image.Image | None) -> contextlib.AbstractContextManager[Any]:
    """For a text encoder that plans a layout (gouache-mini): plan it for this seed and, when inpainting,
    inside the mask's bounds, so that what the prompt asks for lands where the mask is."""
    encoder = getattr(pipe, "text_encoder", None)
    seeded = getattr(encoder, "layout_seed", None)
    fitted = getattr(encoder, "layout_region", None)
    if seeded is None or fitted is None:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(seeded(seed))
    box = mask.getbbox() if mask is not None else None
    if box is not None and mask is not None:
        w, h = mask.size
        stack.enter_context(fitted((box[0] / w, box[1] / h, box[2] / w, box[3] / h)))
    return stack


def _latent_grid_mask(mask: Image.Image, size: tuple[int, int], grid: int) -> Image.Image:
    """The mask at `size`, grown outwards to whole `grid` x `grid` blocks (any touched block is repainted)."""
    small = np.asarray(mask.resize(size, Image.Resampling.BOX)) > 0
    h, w = small.shape
    hb, wb = -(-h // grid), -(-w // grid)
    padded = np.zeros((hb * grid, wb * grid), dtype=bool)
    padded[:h, :w] = small
    blocks = padded.reshape(hb, grid, wb, grid).any(axis=(1, 3))
    full = np.repeat(np.repeat(blocks, grid, axis=0), grid, axis=1)[:h, :w]
    return Image.fromarray(np.where(full, 255, 0).astype(np.uint8), "L")


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
    """Edit ``inputs.images[0]`` (see the module docstring for the modes) and return an RGB image of exactly
    ``width x height``. ``step_callback(step, total, latents)`` is called after each denoising step and may
    raise (e.g. to cancel)."""
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    spec = model.spec
    mode = edit_mode(inputs)
    canvas, mask = prepare_edit_canvas(inputs.images[0], inputs.mask)
    if mask is not None and not np.asarray(mask).any():
        raise ValueError("the mask marks nothing to repaint (255 = repaint, 0 = keep)")
    refs = inputs.images[1:]
    fidelity = _FIDELITY[inputs.input_fidelity]
    size = working_size(width, height, plan.resolution or spec.resolution, spec.multiple)
    model.use_scheduler(plan.scheduler)

    with torch.inference_mode():
        if mask is None:
            strength = inputs.strength
            init = canvas
            if refs:
                init = _blend_references(canvas, refs, fidelity, None)
                strength = min(1.0, strength + fidelity.strength_boost)
            strength = max(MIN_STRENGTH, strength)
            pipe = _derived(model, "img2img")
            work = init.resize(size, Image.Resampling.LANCZOS)
            out = _render(
                model, pipe, prompt, negative_prompt, plan, size, seed, work, None, strength, step_callback
            )
            return to_exact_size(out, width, height, model.spec.upscaler).convert("RGB")

        strength = OUTPAINT_STRENGTH if mode == "outpaint" else 1.0
        init = canvas
        if refs:
            region = np.asarray(mask).astype(np.float32) / 255.0
            filled = _extend_fill(np.asarray(canvas).astype(np.float32), 1.0 - region)
            base = np.asarray(canvas).astype(np.float32) * (1.0 - region[..., None])
            init = Image.fromarray(_to_uint8(base + filled * region[..., None]), "RGB")
            init = _blend_references(init, refs, fidelity, region)
            strength = min(strength, fidelity.masked_strength)
        work = init.resize(size, Image.Resampling.LANCZOS)
        pipe = _derived(model, "inpaint")
        fallback = pipe is None
        if fallback:
            pipe = _derived(model, "img2img")
        work_mask = _latent_grid_mask(mask, size, int(getattr(pipe, "vae_scale_factor", 8)))
        blend = _LatentBlend(pipe, work, work_mask, seed) if fallback else None
        out = _render(
            model,
            pipe,
            prompt,
            negative_prompt,
            plan,
            size,
            seed,
            work,
            None if fallback else work_mask,
            strength,
            step_callback,
            blend,
            work_mask,
        )

    out = to_exact_size(out, width, height, model.spec.upscaler).convert("RGB")
    base_image = to_exact_size(canvas, width, height).convert("RGB")
    out_mask = mask if mask.size == (width, height) else _resized_mask(mask, (width, height))
    return Image.composite(out, base_image, feather_mask(out_mask))


def _resized_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The binary mask at another size; any pixel that the mask touches at least half is repainted."""
    return mask.resize(size, Image.Resampling.BILINEAR).point(lambda v: 255 if v >= 128 else 0)
