"""Tiny random LoRA adapters for the tiny pipelines (:mod:`gouache.engine.tiny`), made with PEFT: tests and
benchmarks need real adapter files and no downloads.

:func:`build_tiny_lora` puts a PEFT ``LoraConfig`` on the denoiser's attention projections (the UNet's or the
transformer's ``to_q``, ``to_k``, ``to_v``, ``to_out.0``), gives ``lora_B`` random non-zero values (PEFT
starts it at zero, which would change nothing) and saves the adapter with the pipeline class's own
``save_lora_weights``: the diffusers layout. ``kohya=True`` rewrites the keys to kohya's layout
(``lora_unet_<module_path>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``), as community SD 1.x
adapters are shipped -- UNet families only. ``text_encoder=True`` adapts the (first) text encoder's attention
instead of the denoiser (injected with PEFT directly: transformers 5's ``add_adapter`` wants a newer PEFT)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def build_tiny_lora(
    pipeline_dir: Path,
    out_file: Path,
    seed: int = 1,
    rank: int = 4,
    std: float = 0.5,
    kohya: bool = False,
    text_encoder: bool = False,
) -> Path:
    """Write a random LoRA for the pipeline at `pipeline_dir` to `out_file` (.safetensors); returns it. The
    same seed gives the same weights."""
    pipe = DiffusionPipeline.from_pretrained(str(pipeline_dir), dtype=torch.float32, local_files_only=True)
    unet = getattr(pipe, "unet", None)
    denoiser = unet if unet is not None else pipe.transformer
    adapted = pipe.text_encoder if text_encoder else denoiser
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        targets = ["q_proj", "v_proj"] if text_encoder else TARGETS
        config = LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights="gaussian")
        if text_encoder:
            inject_adapter_in_model(config, adapted)
        else:
            denoiser.add_adapter(config)
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=std)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(adapted))
    key = "unet_lora_layers" if unet is not None else "transformer_lora_layers"
    if text_encoder:
        key = "text_encoder_lora_layers"
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        type(pipe).save_lora_weights(tmp, **{key: layers}, weight_name="lora.safetensors")
        tensors = load_file(str(Path(tmp) / "lora.safetensors"))
    if kohya:
        if unet is None or text_encoder:
            raise ValueError("kohya-format adapters are written for UNet families only")
        tensors = to_kohya(tensors)
    save_file(tensors, str(out_file))
    return out_file


def to_kohya(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' ``unet.<path>.lora.down.weight`` keys -> kohya's ``lora_unet_<path_with_underscores>``
    keys, with an ``alpha`` equal to the rank (a scale of 1, as in the diffusers file)."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        module, kind = key.removeprefix("unet.").split(".lora.")
        name = "lora_unet_" + module.replace(".", "_")
        direction = kind.split(".")[0]  # "down" or "up"
        out[f"{name}.lora_{direction}.weight"] = tensor
        if direction == "down":
            out[f"{name}.alpha"] = torch.tensor(float(tensor.shape[0]))
    return out
