"""gouache-mini as a standard diffusers ``StableDiffusionPipeline``: build, save (the shippable folder), load.

Components: ``unet`` a ``UNet2DConditionModel`` on 48x16x16 "latents" (predicting x0), ``vae`` the exact
:class:`~gouache.mini.codec.PixelUnshuffleCodec`, ``text_encoder``/``tokenizer`` MiniLM from the installed
package (:mod:`gouache.mini.model`), ``scheduler`` DPM-Solver++. ``model_index.json`` keeps
``_class_name: StableDiffusionPipeline``, so the engine treats it as any SD checkpoint (vae_scale_factor 4:
txt2img sizes must still be multiples of 8, which the SD pipeline checks; 64 px is the native size).

Importing this module imports :mod:`gouache.mini.codec` and :mod:`gouache.mini.model`, which diffusers 0.42
needs in ``sys.modules`` to load the custom components.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline

from gouache.mini.codec import PixelUnshuffleCodec
from gouache.mini.model import (
    CODEC_FACTOR,
    IMAGE_SIZE,
    LAYOUT_MAX_TOKENS,
    MAX_TOKENS,
    MiniConfig,
    build_unet,
    load_text_encoder,
    load_tokenizer,
)
from gouache.quiet import quiet_loading

__all__ = [
    "MAX_SHIPPED_BYTES",
    "SCHEDULE",
    "build_codec",
    "build_mini_pipeline",
    "build_scheduler",
    "folder_size",
    "load_mini_pipeline",
    "save_mini_pipeline",
    "training_noise_scheduler",
]

MAX_SHIPPED_BYTES = 50 * 1024 * 1024

#: The noise schedule shared by training and sampling. Cosine betas reach alpha-bar ~2e-9 at t=999, i.e.
#: (nearly) zero terminal SNR, so trailing spacing starts sampling from what training saw as pure noise.
#: The prediction type comes from the config (x0 or v; epsilon blew up the x0 estimate there, issue 4).
#: ``clip_sample``/``thresholding`` are off and recorded in the config so that schedulers built from it (the
#: engine's DDIM, Euler, UniPC) inherit them: clipping the x0 estimate broke guidance (issue 4).
SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "timestep_spacing": "trailing",
    "steps_offset": 1,
    "clip_sample": False,
    "thresholding": False,
    "set_alpha_to_one": True,
    "rescale_betas_zero_snr": False,
}


def build_scheduler(prediction_type: str) -> DPMSolverMultistepScheduler:
    """DPM-Solver++ (2nd order), the pipeline's default sampler (20 steps ~ DDIM 20, issue 4)."""
    return DPMSolverMultistepScheduler.from_config(
        {
            **SCHEDULE,
            "prediction_type": prediction_type,
            "algorithm_type": "dpmsolver++",
            "solver_order": 2,
            "lower_order_final": True,
            "final_sigmas_type": "zero",
            "use_karras_sigmas": False,
        }
    )


def training_noise_scheduler(prediction_type: str) -> Any:
    """The forward process for training (``add_noise``, ``get_velocity``), with the same betas."""
    return DDPMScheduler.from_config({**SCHEDULE, "prediction_type": prediction_type})


def build_codec() -> PixelUnshuffleCodec:
    levels = CODEC_FACTOR.bit_length()
    return PixelUnshuffleCodec(
        factor=CODEC_FACTOR,
        latent_channels=3 * CODEC_FACTOR**2,
        block_out_channels=(3 * CODEC_FACTOR**2,) * levels,
        sample_size=IMAGE_SIZE,
    )


def build_mini_pipeline(config: MiniConfig, seed: int) -> StableDiffusionPipeline:
    """A gouache-mini pipeline with a randomly initialised UNet (same ``seed``, same weights)."""
    grounded = config.conditioning == "layout"
    pipe: Any = StableDiffusionPipeline(
        vae=build_codec(),
        text_encoder=load_text_encoder(grounded),
        tokenizer=load_tokenizer(LAYOUT_MAX_TOKENS if grounded else MAX_TOKENS),
        unet=build_unet(config, seed),
        scheduler=build_scheduler(config.prediction_type),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def save_mini_pipeline(pipe: Any, out_dir: Path, fp16: bool = True) -> Path:
    """Write the shippable folder: ``model_index.json``, the UNet (fp16 safetensors by default), the codec's
    config and scheduler config, and marker files for the text encoder and tokenizer (loaded from the
    installed package). Written to a sibling temp folder first, then swapped in, so a reader never sees a
    half-written pipeline. Raises if the result exceeds 50 MB."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    old = out_dir.with_name(out_dir.name + ".old")
    for stale in (tmp, old):
        if stale.exists():
            shutil.rmtree(stale)
    unet = pipe.unet
    shipped_unet = unet
    if fp16:
        # nn.Module.to: ModelMixin.to warns about fp32-only modules, which this UNet has none of.
        shipped_unet = torch.nn.Module.to(copy.deepcopy(unet), torch.float16)
    components = {**pipe.components, "unet": shipped_unet}
    shipped: Any = StableDiffusionPipeline(**components, requires_safety_checker=False)
    shipped.save_pretrained(tmp, safe_serialization=True)
    _check_index(tmp)
    for file in tmp.rglob("*"):
        file.chmod(0o755 if file.is_dir() else 0o644)  # package data must be readable by every user
    size = folder_size(tmp)
    if size > MAX_SHIPPED_BYTES:
        shutil.rmtree(tmp)
        raise ValueError(f"the pipeline is {size / 2**20:.1f} MB, over the 50 MB budget")
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old.exists():
        shutil.rmtree(old)
    return out_dir


def _check_index(folder: Path) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    expected = {
        "vae": [["gouache.mini.codec", "PixelUnshuffleCodec"]],
        "text_encoder": [
            ["gouache.mini.model", "GroundedTextEncoder"],
            ["gouache.mini.model", "MiniLMTextEncoder"],
        ],
        "tokenizer": [["gouache.mini.model", "MiniLMTokenizer"]],
        "unet": [["gouache.mini.grounding", "LayoutUNet"], ["diffusers", "UNet2DConditionModel"]],
    }
    for name, entries in expected.items():
        if index.get(name) not in entries:
            raise RuntimeError(f"model_index.json has {name}={index.get(name)}, expected one of {entries}")


def load_mini_pipeline(path: Path) -> StableDiffusionPipeline:
    """Load a saved gouache-mini folder in float32, offline (what ``DiffusionPipeline.from_pretrained`` does
    once this module is imported)."""
    quiet_loading()
    pipe = StableDiffusionPipeline.from_pretrained(str(path), dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe
