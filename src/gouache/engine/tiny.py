"""Tiny random-weight diffusers pipelines of every supported model family, built without downloads.

Tests and benchmarks need real ``diffusers`` pipelines (the same classes, the same ``model_index.json``,
the same loading path through ``DiffusionPipeline.from_pretrained``) but cannot fetch multi-gigabyte
checkpoints, and there is no network in CI.  :func:`build_tiny_pipeline` assembles a pipeline of one
family entirely from configs in code -- random weights, hidden sizes around 32, one or two layers,
and tokenizers built in memory -- and saves it with ``save_pretrained``.  The result is a directory of
well under 5 MB that loads offline and renders 2 steps at 64x64 on a CPU in a fraction of a second.

The images are noise, of course; only shapes, plumbing and determinism are meaningful.  Every
component is initialised right after ``torch.manual_seed(seed)``, so the same ``seed`` gives the same
weights (and so the same pixels for the same generator).

Families and their standard pipeline classes:

* ``sd1``  -- ``StableDiffusionPipeline`` (epsilon prediction, PNDM scheduler, quick-gelu CLIP).
* ``sd2``  -- ``StableDiffusionPipeline`` with SD 2.x settings (v-prediction DDIM, linear projections,
  per-block ``attention_head_dim``, gelu CLIP).
* ``sdxl`` -- ``StableDiffusionXLPipeline`` (two CLIP encoders, ``text_time`` additional embeddings).
* ``sd3``  -- ``StableDiffusion3Pipeline`` (MMDiT, two projected CLIP encoders plus T5, flow matching).
* ``flux`` -- ``FluxPipeline`` (guidance-distilled transformer like FLUX.1-dev, CLIP plus T5,
  flow matching with dynamic shifting).  It has no classic CFG: ``guidance_scale`` feeds the guidance
  embedding, and real CFG with a ``negative_prompt`` needs ``true_cfg_scale > 1``.

Image sizes must be multiples of ``SIZE_MULTIPLE[family]`` pixels; ``VAE_SCALE[family]`` is the
VAE's spatial downsampling factor (8 everywhere, as in the real models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    PNDMScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

__all__ = ["FAMILIES", "SIZE_MULTIPLE", "VAE_SCALE", "build_tiny_pipeline"]

FAMILIES = ("sd1", "sd2", "sdxl", "sd3", "flux")

# Spatial downsampling of each family's VAE (2 ** (len(vae.block_out_channels) - 1)).
VAE_SCALE = {"sd1": 8, "sd2": 8, "sdxl": 8, "sd3": 8, "flux": 8}

# Height and width must be multiples of this many pixels.  UNet families only need whole latents (the
# UNet copes with odd latent sizes); SD3 patchifies latents 2x2 and Flux packs them 2x2, so both need
# 2 * VAE_SCALE.
SIZE_MULTIPLE = {"sd1": 8, "sd2": 8, "sdxl": 8, "sd3": 16, "flux": 16}

CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 77

_CLIP_HIDDEN = 32
_BOS = "<|startoftext|>"
_EOS = "<|endoftext|>"


# --------------------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------------------


def _bytes_to_unicode() -> list[str]:
    """The GPT-2/CLIP byte-level alphabet: one printable unicode character per byte value."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _clip_vocab() -> dict[str, int]:
    alphabet = _bytes_to_unicode()
    tokens = alphabet + [c + "</w>" for c in alphabet] + [_BOS, _EOS]
    return {tok: i for i, tok in enumerate(tokens)}


def _clip_tokenizer(pad_token: str = _EOS) -> CLIPTokenizer:
    """A byte-level CLIP BPE tokenizer with no merges: every byte of a word is one token."""
    return CLIPTokenizer(
        vocab=_clip_vocab(),
        merges=[],
        unk_token=_EOS,
        bos_token=_BOS,
        eos_token=_EOS,
        pad_token=pad_token,
        model_max_length=CLIP_MAX_LENGTH,
    )


def _t5_vocab() -> list[tuple[str, float]]:
    """Unigram pieces: T5's specials (<pad>=0, </s>=1, <unk>=2), the word boundary, printable ASCII."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(chr(c), -3.0) for c in range(ord("!"), ord("~") + 1)]
    pieces += [("\u2581" + chr(c), -2.5) for c in range(ord("!"), ord("~") + 1)]
    return pieces


def _t5_tokenizer() -> T5Tokenizer:
    """A character-level T5 tokenizer (Unigram model over ASCII characters), built in memory.

    In transformers 5 ``T5TokenizerFast`` is an alias of this tokenizers-backed ``T5Tokenizer``.
    """
    return T5Tokenizer(vocab=_t5_vocab(), extra_ids=0, model_max_length=T5_MAX_LENGTH)


# --------------------------------------------------------------------------------------------------
# Text encoders
# --------------------------------------------------------------------------------------------------


def _clip_config(hidden_act: str = "quick_gelu", projection_dim: int = _CLIP_HIDDEN) -> CLIPTextConfig:
    vocab = _clip_vocab()
    return CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=_CLIP_HIDDEN,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=CLIP_MAX_LENGTH,
        hidden_act=hidden_act,
        projection_dim=projection_dim,
        bos_token_id=vocab[_BOS],
        eos_token_id=vocab[_EOS],
        pad_token_id=vocab[_EOS],
    )


def _clip_text(seed: int, hidden_act: str = "quick_gelu") -> CLIPTextModel:
    torch.manual_seed(seed)
    return CLIPTextModel(_clip_config(hidden_act)).eval()


def _clip_text_proj(seed: int, hidden_act: str = "gelu") -> CLIPTextModelWithProjection:
    torch.manual_seed(seed)
    return CLIPTextModelWithProjection(_clip_config(hidden_act)).eval()


def _t5_encoder(seed: int, d_model: int) -> T5EncoderModel:
    config = T5Config(
        vocab_size=len(_t5_vocab()),
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        dropout_rate=0.0,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=True,
        pad_token_id=0,
        eos_token_id=1,
    )
    torch.manual_seed(seed)
    return T5EncoderModel(config).eval()


# --------------------------------------------------------------------------------------------------
# VAEs
# --------------------------------------------------------------------------------------------------


def _vae(seed: int, latent_channels: int, **extra: Any) -> Any:
    """Four blocks, hence a spatial factor of 8 like the real models; channels are tiny."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=64,
        **extra,
    )


# --------------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------------

_SD_BETAS: dict[str, Any] = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
_FLOW_VAE: dict[str, Any] = {"use_quant_conv": False, "use_post_quant_conv": False}


def _sd1(seed: int) -> Any:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=_CLIP_HIDDEN,
        attention_head_dim=2,
    )
    scheduler = PNDMScheduler(
        **_SD_BETAS, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1, num_train_timesteps=1000
    )
    return StableDiffusionPipeline(
        vae=_vae(seed, 4, scaling_factor=0.18215),
        text_encoder=_clip_text(seed),
        tokenizer=_clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sd2(seed: int) -> Any:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=_CLIP_HIDDEN,
        attention_head_dim=[2, 4],
        use_linear_projection=True,
    )
    scheduler = DDIMScheduler(
        **_SD_BETAS,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="v_prediction",
        num_train_timesteps=1000,
    )
    return StableDiffusionPipeline(
        vae=_vae(seed, 4, scaling_factor=0.18215),
        text_encoder=_clip_text(seed, hidden_act="gelu"),
        tokenizer=_clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl(seed: int) -> Any:
    time_dim = 8
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 1),
        cross_attention_dim=2 * _CLIP_HIDDEN,  # both encoders' hidden states, concatenated
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        # 6 micro-conditioning numbers (original size, crop top-left, target size) + pooled projection
        projection_class_embeddings_input_dim=6 * time_dim + _CLIP_HIDDEN,
    )
    scheduler = EulerDiscreteScheduler(
        **_SD_BETAS,
        timestep_spacing="leading",
        steps_offset=1,
        prediction_type="epsilon",
        num_train_timesteps=1000,
    )
    return StableDiffusionXLPipeline(
        vae=_vae(seed, 4, scaling_factor=0.13025),
        text_encoder=_clip_text(seed),
        text_encoder_2=_clip_text_proj(seed + 1),
        tokenizer=_clip_tokenizer(),
        tokenizer_2=_clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


def _sd3(seed: int) -> Any:
    t5_dim = 2 * _CLIP_HIDDEN  # CLIP states (both encoders concatenated) are zero-padded up to T5's width
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=t5_dim,
        caption_projection_dim=32,
        pooled_projection_dim=2 * _CLIP_HIDDEN,  # both encoders' pooled projections, concatenated
        pos_embed_max_size=32,  # latents up to 64x64, i.e. images up to 512x512
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        vae=_vae(seed, 16, **_FLOW_VAE, shift_factor=0.0609, scaling_factor=1.5035),
        text_encoder=_clip_text_proj(seed),
        tokenizer=_clip_tokenizer(),
        text_encoder_2=_clip_text_proj(seed + 1),
        tokenizer_2=_clip_tokenizer(),
        text_encoder_3=_t5_encoder(seed, t5_dim),
        tokenizer_3=_t5_tokenizer(),
    )


def _flux(seed: int) -> Any:
    t5_dim = 32
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,  # 16 latent channels packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=t5_dim,
        pooled_projection_dim=_CLIP_HIDDEN,
        guidance_embeds=True,
        axes_dims_rope=(4, 4, 8),
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    return FluxPipeline(
        scheduler=scheduler,
        vae=_vae(seed, 16, **_FLOW_VAE, shift_factor=0.1159, scaling_factor=0.3611),
        text_encoder=_clip_text(seed),
        tokenizer=_clip_tokenizer(),
        text_encoder_2=_t5_encoder(seed, t5_dim),
        tokenizer_2=_t5_tokenizer(),
        transformer=transformer,
    )


_BUILDERS = {"sd1": _sd1, "sd2": _sd2, "sdxl": _sdxl, "sd3": _sd3, "flux": _flux}


def build_tiny_pipeline(family: str, out_dir: Path, seed: int = 0) -> Path:
    """Build a tiny random pipeline of `family`, save it to out_dir (created), return out_dir."""
    try:
        builder = _BUILDERS[family]
    except KeyError:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Seeding touches torch's global RNG; fork it so that callers' random streams are left alone.
    with torch.random.fork_rng(devices=[]):
        pipe = builder(seed)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    return out_dir
