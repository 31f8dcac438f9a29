"""The image codec of gouache-mini: a weightless, exactly invertible pixel-unshuffle instead of a learned VAE.

A learned autoencoder would eat much of the 150-minute CPU training budget (about 6 samples/s against 35 for
pixel space, measured in issue 4), and at 64x64 px the image is small enough to diffuse directly. Folding
each 4x4 pixel block into channels (3x64x64 -> 48x16x16) gives the UNet a 16x16 grid, like a latent
diffusion model, with an exact round trip: ``decode(encode(x).latent_dist.mode()) == x`` bit for bit.

:class:`PixelUnshuffleCodec` has the interface that the Stable Diffusion pipelines use of an
``AutoencoderKL`` (text-to-image, image-to-image and inpainting): ``encode(x).latent_dist.sample()/.mode()``,
``decode(z, return_dict=False)[0]``, ``config.scaling_factor``, ``config.latent_channels``,
``config.block_out_channels`` (only its length is read: ``vae_scale_factor = 2 ** (len - 1)`` = 4),
``config.force_upcast`` and ``config.shift_factor``. Images are in ``[-1, 1]``, as for any SD VAE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput

__all__ = ["ExactLatents", "ModelMixin", "PixelUnshuffleCodec"]


@dataclass
class ExactLatents:
    """A point-mass "latent distribution": sampling returns the latents themselves, whatever the generator
    (so image-to-image and inpainting start from exactly the input)."""

    mean: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return torch.zeros_like(self.mean)

    @property
    def var(self) -> torch.Tensor:
        return torch.zeros_like(self.mean)

    def sample(self, generator: torch.Generator | list[torch.Generator] | None = None) -> torch.Tensor:
        return self.mean

    def mode(self) -> torch.Tensor:
        return self.mean


class PixelUnshuffleCodec(ModelMixin, ConfigMixin):
    """``encode``: [B, 3, H, W] in [-1, 1] -> [B, 3*f*f, H/f, W/f] (times ``scaling_factor``, applied by the
    pipeline); ``decode`` is the exact inverse. H and W must be multiples of ``factor``."""

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        factor: int = 4,
        in_channels: int = 3,
        latent_channels: int = 48,
        block_out_channels: tuple[int, ...] = (48, 48, 48),
        scaling_factor: float = 1.0,
        shift_factor: float | None = None,
        force_upcast: bool = False,
        sample_size: int = 64,
    ) -> None:
        super().__init__()
        if latent_channels != in_channels * factor * factor:
            raise ValueError(
                f"latent_channels must be in_channels * factor**2 = {in_channels * factor * factor}, "
                f"not {latent_channels}"
            )
        if 2 ** (len(block_out_channels) - 1) != factor:
            raise ValueError(
                f"block_out_channels must have {factor.bit_length()} entries so that the pipelines' "
                f"vae_scale_factor (2 ** (len - 1)) equals factor={factor}"
            )
        self.factor = factor
        self.in_channels = in_channels
        self.latent_channels = latent_channels
        # No weights; a non-persistent buffer gives the module a dtype and a device for the pipelines to read.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> PixelUnshuffleCodec:
        """Build from ``config.json`` alone: there are no weights (``save_pretrained`` writes none)."""
        config = cls.load_config(
            pretrained_model_name_or_path,
            subfolder=kwargs.get("subfolder"),
            local_files_only=kwargs.get("local_files_only", False),
        )
        model = cls.from_config(config)
        dtype = kwargs.get("torch_dtype") or kwargs.get("dtype")
        if isinstance(dtype, torch.dtype) and dtype != model.dtype:
            torch.nn.Module.to(model, dtype)  # ModelMixin.to warns about fp32 modules this codec has none of
        return model.eval()

    def _check(self, x: torch.Tensor, channels: int, what: str) -> None:
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(f"{what} must be [B, {channels}, H, W], got {list(x.shape)}")

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple[ExactLatents]:
        self._check(x, self.in_channels, "images")
        f = self.factor
        if x.shape[-2] % f or x.shape[-1] % f:
            raise ValueError(
                f"image height and width must be multiples of {f}, got {x.shape[-2]}x{x.shape[-1]}"
            )
        dist = ExactLatents(F.pixel_unshuffle(x, f))
        if not return_dict:
            return (dist,)
        return AutoencoderKLOutput(latent_dist=dist)  # type: ignore[arg-type]

    def decode(
        self, z: torch.Tensor, return_dict: bool = True, generator: Any = None, **kwargs: Any
    ) -> DecoderOutput | tuple[torch.Tensor]:
        self._check(z, self.latent_channels, "latents")
        image = F.pixel_shuffle(z, self.factor)
        if not return_dict:
            return (image,)
        return DecoderOutput(sample=image)

    def forward(self, sample: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple[torch.Tensor]:
        latents = self.encode(sample, return_dict=False)[0]
        assert isinstance(latents, ExactLatents)
        return self.decode(latents.mode(), return_dict=return_dict)
