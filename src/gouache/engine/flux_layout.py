"""FLUX transformers in Black Forest Labs' single-file layout -> diffusers' `FluxTransformer2DModel` keys, for
any width. diffusers' own converter assumes FLUX.1's width (3072); this one reads the width from the config,
so the tiny test models convert as the real ones do. The tables are public so that the tests' writer can run
them backwards."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

#: ComfyUI-style files put the transformer under the UNet's prefix.
_UNET = "model.diffusion_model."

_FLUX_RENAMES = {
    "time_in.in_layer.": "time_text_embed.timestep_embedder.linear_1.",
    "time_in.out_layer.": "time_text_embed.timestep_embedder.linear_2.",
    "vector_in.in_layer.": "time_text_embed.text_embedder.linear_1.",
    "vector_in.out_layer.": "time_text_embed.text_embedder.linear_2.",
    "guidance_in.in_layer.": "time_text_embed.guidance_embedder.linear_1.",
    "guidance_in.out_layer.": "time_text_embed.guidance_embedder.linear_2.",
    "txt_in.": "context_embedder.",
    "img_in.": "x_embedder.",
    "final_layer.linear.": "proj_out.",
}
_FLUX_DOUBLE = {
    "img_mod.lin.": "norm1.linear.",
    "txt_mod.lin.": "norm1_context.linear.",
    "img_attn.norm.query_norm.scale": "attn.norm_q.weight",
    "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
    "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
    "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
    "img_mlp.0.": "ff.net.0.proj.",
    "img_mlp.2.": "ff.net.2.",
    "txt_mlp.0.": "ff_context.net.0.proj.",
    "txt_mlp.2.": "ff_context.net.2.",
    "img_attn.proj.": "attn.to_out.0.",
    "txt_attn.proj.": "attn.to_add_out.",
}
_FLUX_SINGLE = {
    "modulation.lin.": "norm.linear.",
    "norm.query_norm.scale": "attn.norm_q.weight",
    "norm.key_norm.scale": "attn.norm_k.weight",
    "linear2.": "proj_out.",
}


def convert_flux_transformer(
    checkpoint: Mapping[str, torch.Tensor], config: Mapping[str, Any], **_: Any
) -> dict:
    """BFL's FLUX.1 transformer layout -> diffusers', like diffusers' converter but with the width taken from
    the config (diffusers' assumes 3072) and the MLP width from the tensors."""
    inner = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    src = {
        k.removeprefix(_UNET): v
        for k, v in checkpoint.items()
        if not k.startswith(("vae.", "text_encoders."))
    }
    out: dict[str, torch.Tensor] = {}

    def swap(w: torch.Tensor) -> torch.Tensor:  # BFL: shift, scale; diffusers: scale, shift
        shift, scale = w.chunk(2, dim=0)
        return torch.cat([scale, shift], dim=0)

    for key, value in src.items():
        if key.startswith("final_layer.adaLN_modulation.1."):
            out["norm_out.linear." + key.rsplit(".", 1)[1]] = swap(value)
            continue
        for old, new in _FLUX_RENAMES.items():
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            parts = key.split(".", 2)
            if len(parts) < 3 or parts[0] not in ("double_blocks", "single_blocks"):
                continue
            block, index, rest = parts
            suffix = rest.rsplit(".", 1)[1]
            if block == "double_blocks":
                base = f"transformer_blocks.{index}."
                if rest.startswith(("img_attn.qkv.", "txt_attn.qkv.")):
                    names = ("to_q", "to_k", "to_v") if rest.startswith("img") else (
                        "add_q_proj", "add_k_proj", "add_v_proj"
                    )  # fmt: skip
                    for n, part in zip(names, value.chunk(3, dim=0), strict=True):
                        out[f"{base}attn.{n}.{suffix}"] = part
                    continue
                table = _FLUX_DOUBLE
            else:
                base = f"single_transformer_blocks.{index}."
                if rest.startswith("linear1."):
                    mlp = value.shape[0] - 3 * inner
                    q, k, v, m = torch.split(value, [inner, inner, inner, mlp], dim=0)
                    for n, part in (("attn.to_q", q), ("attn.to_k", k), ("attn.to_v", v), ("proj_mlp", m)):
                        out[f"{base}{n}.{suffix}"] = part
                    continue
                table = _FLUX_SINGLE
            for old, new in table.items():
                if rest.startswith(old):
                    out[base + new + rest[len(old) :]] = value
                    break
    return out
