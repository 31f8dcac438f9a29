"""Write a diffusers pipeline folder back as one original-layout checkpoint (the inverse of diffusers'
single-file conversion in ``diffusers.loaders.single_file_utils``), so that the tests and ``gouache bench
--only single_file`` can make tiny single files.

Layouts: LDM (``model.diffusion_model.input_blocks...``, ``first_stage_model.``, ``cond_stage_model.`` /
``conditioner.embedders.N.``) for SD 1.x/2.x/SDXL; MMDiT (``joint_blocks``) plus
``text_encoders.clip_l/clip_g/t5xxl`` for SD3; BFL (``double_blocks``/``single_blocks``) plus the same text
encoder prefixes and ``vae.`` for FLUX. Only renames, concatenations and transposes: the values are
bit-identical to the folder's.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

UNET = "model.diffusion_model."

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}


def _component(folder: Path, name: str) -> tuple[dict[str, torch.Tensor], dict]:
    sub = folder / name
    state: dict[str, torch.Tensor] = {}
    for file in sorted(sub.glob("*.safetensors")):
        state.update(load_file(str(file)))
    return state, json.loads((sub / "config.json").read_text())


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{_RESNET.get(head, head)}.{tail}"


def unet_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    per = config["layers_per_block"] + 1
    out: dict[str, torch.Tensor] = {}
    fixed = {
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        "conv_in.": "input_blocks.0.0.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
        "add_embedding.linear_1.": "label_emb.0.0.",
        "add_embedding.linear_2.": "label_emb.0.2.",
    }
    up_has_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    for key, value in state.items():
        new = None
        for old, ldm in fixed.items():
            if key.startswith(old):
                new = ldm + key[len(old) :]
        p = key.split(".")
        if new is None and p[0] == "down_blocks":
            b, kind, j, rest = int(p[1]), p[2], int(p[3]), ".".join(p[4:])
            if kind == "resnets":
                new = f"input_blocks.{1 + b * per + j}.0.{_resnet(rest)}"
            elif kind == "attentions":
                new = f"input_blocks.{1 + b * per + j}.1.{rest}"
            else:  # downsamplers.0.conv.*
                new = f"input_blocks.{1 + b * per + per - 1}.0.op.{p[-1]}"
        elif new is None and p[0] == "up_blocks":
            b, kind, j, rest = int(p[1]), p[2], int(p[3]), ".".join(p[4:])
            if kind == "resnets":
                new = f"output_blocks.{b * per + j}.0.{_resnet(rest)}"
            elif kind == "attentions":
                new = f"output_blocks.{b * per + j}.1.{rest}"
            else:  # upsamplers.0.conv.*: after the attention when the block has one
                new = f"output_blocks.{b * per + per - 1}.{2 if up_has_attn[b] else 1}.conv.{p[-1]}"
        elif new is None and p[0] == "mid_block":
            kind, j, rest = p[1], int(p[2]), ".".join(p[3:])
            new = f"middle_block.{2 * j}.{_resnet(rest)}" if kind == "resnets" else f"middle_block.1.{rest}"
        if new is None:
            raise KeyError(f"no LDM name for UNet tensor {key}")
        out[UNET + new] = value
    return out


def vae_to_ldm(state: dict[str, torch.Tensor], config: dict, prefix: str) -> dict[str, torch.Tensor]:
    n = len(config["up_block_types"])
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        p = key.split(".")
        side = p[0]
        if p[1] in ("conv_in", "conv_out") or side in ("quant_conv", "post_quant_conv"):
            new = key
        elif p[1] == "conv_norm_out":
            new = f"{side}.norm_out.{p[-1]}"
        elif p[1] in ("down_blocks", "up_blocks"):
            i = int(p[2]) if side == "encoder" else n - 1 - int(p[2])
            level = f"{side}.{'down' if side == 'encoder' else 'up'}.{i}"
            if p[3] == "resnets":
                rest = ".".join(p[5:]).replace("conv_shortcut", "nin_shortcut")
                new = f"{level}.block.{p[4]}.{rest}"
            else:  # downsamplers/upsamplers.0.conv.*
                new = f"{level}.{'downsample' if side == 'encoder' else 'upsample'}.conv.{p[-1]}"
        elif p[1] == "mid_block" and p[2] == "resnets":
            rest = ".".join(p[4:]).replace("conv_shortcut", "nin_shortcut")
            new = f"{side}.mid.block_{int(p[3]) + 1}.{rest}"
        elif p[1] == "mid_block":
            rest = ".".join(p[4:])
            for old, ldm in attn.items():
                if rest.startswith(old + "."):
                    rest = ldm + rest[len(old) :]
            new = f"{side}.mid.attn_1.{rest}"
            if value.ndim == 2:  # the original attention is 1x1 convolutions
                value = value[:, :, None, None]
        else:
            raise KeyError(f"no LDM name for VAE tensor {key}")
        out[prefix + new] = value
    return out


def _text_model_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers >= 5.6 flattens CLIPTextModel (no `text_model.`); the original layout keeps it."""
    return {
        (k if k.startswith("text_model.") or k == "text_projection.weight" else "text_model." + k): v
        for k, v in state.items()
    }


def clip_to_hf_layout(state: dict[str, torch.Tensor], prefix: str, projection: bool = True) -> dict:
    return {
        prefix + k: v
        for k, v in _text_model_keys(state).items()
        if projection or k != "text_projection.weight"
    }


def clip_to_open_clip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    state = _text_model_keys(state)
    out: dict[str, torch.Tensor] = {}
    hidden = state["text_model.embeddings.token_embedding.weight"].shape[1]
    layer_names = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
        "self_attn.out_proj": "attn.out_proj",
    }
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key == "text_model.embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = value
        elif key == "text_model.embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = value
        elif key.startswith("text_model.final_layer_norm."):
            out[prefix + "ln_final." + key.rsplit(".", 1)[1]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        elif key.startswith("text_model.encoder.layers."):
            rest = key[len("text_model.encoder.layers.") :]
            i, _, rest = rest.partition(".")
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                kind = rest.rsplit(".", 1)[1]
                qkv.setdefault(f"{i}.{kind}", {})[rest.split(".")[1]] = value
                continue
            for old, new in layer_names.items():
                if rest.startswith(old + "."):
                    rest = new + rest[len(old) :]
            out[f"{prefix}transformer.resblocks.{i}.{rest}"] = value
        elif not key.endswith("position_ids"):
            raise KeyError(f"no OpenCLIP name for {key}")
    for name, parts in qkv.items():
        i, kind = name.split(".")
        out[f"{prefix}transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat(
            [parts["q_proj"], parts["k_proj"], parts["v_proj"]]
        )
    if prefix + "text_projection" not in out:  # SD 2.x: OpenCLIP keeps one, diffusers drops it
        out[prefix + "text_projection"] = torch.eye(hidden)
    return out


def _swap(w: torch.Tensor) -> torch.Tensor:
    a, b = w.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def sd3_to_mmdit(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    last = config["num_layers"] - 1
    fixed = {
        "pos_embed.pos_embed": "pos_embed",
        "pos_embed.proj.": "x_embedder.proj.",
        "time_text_embed.timestep_embedder.linear_1.": "t_embedder.mlp.0.",
        "time_text_embed.timestep_embedder.linear_2.": "t_embedder.mlp.2.",
        "time_text_embed.text_embedder.linear_1.": "y_embedder.mlp.0.",
        "time_text_embed.text_embedder.linear_2.": "y_embedder.mlp.2.",
        "context_embedder.": "context_embedder.",
        "proj_out.": "final_layer.linear.",
    }
    block = {
        "attn.to_out.0.": "x_block.attn.proj.",
        "attn.to_add_out.": "context_block.attn.proj.",
        "attn.norm_q.": "x_block.attn.ln_q.",
        "attn.norm_k.": "x_block.attn.ln_k.",
        "attn.norm_added_q.": "context_block.attn.ln_q.",
        "attn.norm_added_k.": "context_block.attn.ln_k.",
        "norm1.linear.": "x_block.adaLN_modulation.1.",
        "norm1_context.linear.": "context_block.adaLN_modulation.1.",
        "ff.net.0.proj.": "x_block.mlp.fc1.",
        "ff.net.2.": "x_block.mlp.fc2.",
        "ff_context.net.0.proj.": "context_block.mlp.fc1.",
        "ff_context.net.2.": "context_block.mlp.fc2.",
    }
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith("norm_out.linear."):
            out[UNET + "final_layer.adaLN_modulation.1." + key.rsplit(".", 1)[1]] = _swap(value)
            continue
        new = next((v + key[len(k) :] for k, v in fixed.items() if key.startswith(k)), None)
        if new is None and key.startswith("transformer_blocks."):
            _, i, rest = key.split(".", 2)
            sub = rest.split(".")[1] if rest.startswith("attn.") else ""
            if sub in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj"):
                side = "x_block" if sub.startswith("to_") else "context_block"
                qkv.setdefault(f"{i}.{side}.{rest.rsplit('.', 1)[1]}", {})[
                    sub[-1] if side == "x_block" else sub[4]
                ] = value
                continue
            for old, ldm in block.items():
                if rest.startswith(old):
                    new = f"joint_blocks.{i}.{ldm}{rest[len(old) :]}"
                    if int(i) == last and old == "norm1_context.linear.":
                        value = _swap(value)
                    break
        if new is None:
            raise KeyError(f"no MMDiT name for SD3 tensor {key}")
        out[UNET + new] = value
    for name, parts in qkv.items():
        i, side, kind = name.split(".")
        out[f"{UNET}joint_blocks.{i}.{side}.attn.qkv.{kind}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]]
        )
    return out


def flux_to_bfl(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from gouache.engine.flux_layout import _FLUX_DOUBLE, _FLUX_RENAMES, _FLUX_SINGLE

    out: dict[str, torch.Tensor] = {}
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith("norm_out.linear."):
            out[UNET + "final_layer.adaLN_modulation.1." + key.rsplit(".", 1)[1]] = _swap(value)
            continue
        new = next((old + key[len(n) :] for old, n in _FLUX_RENAMES.items() if key.startswith(n)), None)
        if new is None and key.startswith(("transformer_blocks.", "single_transformer_blocks.")):
            blk, i, rest = key.split(".", 2)
            double = blk == "transformer_blocks"
            kind = rest.rsplit(".", 1)[1]
            part = rest.rsplit(".", 1)[0]
            if double and part in ("attn.to_q", "attn.to_k", "attn.to_v"):
                groups.setdefault(f"double_blocks.{i}.img_attn.qkv.{kind}", {})[part[-1]] = value
                continue
            if double and part in ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"):
                groups.setdefault(f"double_blocks.{i}.txt_attn.qkv.{kind}", {})[part[-6]] = value
                continue
            if not double and part in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"):
                groups.setdefault(f"single_blocks.{i}.linear1.{kind}", {})[part[-1]] = value
                continue
            table = _FLUX_DOUBLE if double else _FLUX_SINGLE
            for old, n in table.items():
                if rest.startswith(n):
                    new = f"{'double_blocks' if double else 'single_blocks'}.{i}.{old}{rest[len(n) :]}"
                    break
        if new is None:
            raise KeyError(f"no BFL name for FLUX tensor {key}")
        out[UNET + new] = value
    for name, parts in groups.items():
        order = ["q", "k", "v", "p"] if "linear1" in name else ["q", "k", "v"]
        out[UNET + name] = torch.cat([parts[o] for o in order])
    return out


def write_single_file(
    folder: Path, family: str, out: Path, *, vae_prefix: str = "first_stage_model."
) -> Path:
    """Convert the tiny diffusers pipeline at `folder` into one original-layout `.safetensors` at `out`."""
    folder = Path(folder)
    ckpt: dict[str, torch.Tensor] = {}
    vae, vae_config = _component(folder, "vae")
    ckpt.update(vae_to_ldm(vae, vae_config, vae_prefix))
    if family in ("sd1", "sd2", "sdxl"):
        unet, unet_config = _component(folder, "unet")
        ckpt.update(unet_to_ldm(unet, unet_config))
    te, _ = _component(folder, "text_encoder")
    if family == "sd1":
        ckpt.update(clip_to_hf_layout(te, "cond_stage_model.transformer."))
    elif family == "sd2":
        ckpt.update(clip_to_open_clip(te, "cond_stage_model.model."))
    elif family == "sdxl":
        ckpt.update(clip_to_hf_layout(te, "conditioner.embedders.0.transformer."))
        ckpt.update(
            clip_to_open_clip(_component(folder, "text_encoder_2")[0], "conditioner.embedders.1.model.")
        )
    elif family == "sd3":
        transformer, config = _component(folder, "transformer")
        ckpt.update(sd3_to_mmdit(transformer, config))
        ckpt.update(clip_to_hf_layout(te, "text_encoders.clip_l.transformer.", projection=False))
        ckpt.update(
            clip_to_hf_layout(_component(folder, "text_encoder_2")[0], "text_encoders.clip_g.transformer.")
        )
        t5 = _component(folder, "text_encoder_3")[0]
        ckpt.update({"text_encoders.t5xxl.transformer." + k: v for k, v in t5.items()})
    elif family == "flux":
        ckpt.update(flux_to_bfl(_component(folder, "transformer")[0]))
        ckpt.update(clip_to_hf_layout(te, "text_encoders.clip_l.transformer.", projection=False))
        t5 = _component(folder, "text_encoder_2")[0]
        ckpt.update({"text_encoders.t5xxl.transformer." + k: v for k, v in t5.items()})
    else:
        raise ValueError(family)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().clone() for k, v in ckpt.items()}, str(out))
    return out
