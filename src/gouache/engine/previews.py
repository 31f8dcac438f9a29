"""Cheap previews of a denoising in progress, for streamed partial images.

SD 1.x/2.x and SDXL latents map to RGB almost linearly, so their previews are one small matrix product (the
well-known "cheap approximation" factors). Other families (SD3, FLUX, our pixel-space codec) are decoded with
their own VAE from the current latents, at the working size, then resized to the output size (a preview is
not finished: no blending back, and the service encodes it fast). A model with its own finishing
(gouache-mini: shades and typeset words) gets it on previews too, so a stream shows the lettering."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from gouache.engine.finish import Region, finish_hook, touched_preview
from gouache.engine.jobs import RenderJob
from gouache.engine.pipelines import LoadedModel

_LINEAR_FACTORS = {
    "sd1": [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]],
    "sdxl": [[0.3448, 0.4168, 0.4395], [-0.1953, -0.0290, 0.0250], [0.1074, 0.0886, -0.0163],
             [-0.3730, -0.2499, -0.2088]],
}  # fmt: skip
_LINEAR_FACTORS["sd2"] = _LINEAR_FACTORS["sd1"]


def preview_steps(total: int, count: int) -> set[int]:
    """`count` steps spread evenly over a denoising of `total` steps, never the last (that is the final)."""
    if count <= 0 or total <= 1:
        return set()
    return {s for s in (round(total * (i + 1) / (count + 1)) for i in range(count)) if 1 <= s < total}


def preview_image(
    model: LoadedModel,
    job: RenderJob,
    index: int,
    step: int,
    total: int,
    latents: Any,
    size: tuple[int, int],
    region: Region | None = None,
    kept: object = None,
) -> Image.Image | None:
    """A preview of the job's first image at the output size, at the steps chosen for `job.previews`; None
    at the other steps and for the other images. `size` is the working size; `region` an inpainting edit's
    mask bounds and `kept` what a whole-image edit keeps of its input (for the model's own finishing)."""
    if index != 0 or latents is None or step not in preview_steps(total, job.previews):
        return None
    image = decode_preview(model, latents, size)
    hook = finish_hook(model.pipeline)
    seed = job.seeds[index] if index < len(job.seeds) else 0
    return touched_preview(
        image, hook, job.prompt, seed, region, job.width, job.height, job.model.upscaler, kept
    )


def _to_image(rgb: torch.Tensor) -> Image.Image:
    """[-1, 1] CHW tensor -> RGB image."""
    array = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


@torch.inference_mode()
def decode_preview(model: LoadedModel, latents: Any, size: tuple[int, int]) -> Image.Image:
    """An RGB preview of `latents` (the first of the batch) at `size` (the working size)."""
    pipe = model.pipeline
    lat = latents[:1].float()
    factors = _LINEAR_FACTORS.get(model.spec.family)
    if factors is not None and lat.ndim == 4 and lat.shape[1] == len(factors):
        rgb = torch.einsum("bchw,cr->brhw", lat, torch.tensor(factors, dtype=lat.dtype, device=lat.device))[0]
        return _to_image(rgb).resize(size, Image.Resampling.BILINEAR)
    vae = pipe.vae
    if lat.ndim == 3 and hasattr(pipe, "_unpack_latents"):  # FLUX packs 2x2 latent patches into tokens
        lat = pipe._unpack_latents(lat, size[1], size[0], pipe.vae_scale_factor)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    lat = lat / getattr(vae.config, "scaling_factor", 1.0) + shift
    decoded = vae.decode(lat.to(vae.dtype)).sample[0].float()
    return _to_image(decoded).resize(size, Image.Resampling.BILINEAR)
