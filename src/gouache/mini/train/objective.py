"""The training objective of gouache-mini's UNet, and the fixed validation loss that tracks progress.

``min(SNR + 1, cap) * |x0_pred - x0|^2`` on the codec's latents, conditioned on the caption's MiniLM
embeddings (``conditioning="text"``) or on the layout tokens of the scene's truth (``"layout"``).
"""

from __future__ import annotations

from typing import Any

import torch

from gouache.mini.grounding import empty_tokens, scene_tokens
from gouache.mini.model import MiniConfig, encode_captions
from gouache.mini.pipeline import training_noise_scheduler
from gouache.mini.scenes.truth import SceneTruth
from gouache.mini.train.data import validation_batch

#: Held-out scenes in the validation loss logged at every checkpoint.
VALIDATION_SIZE = 32


class Objective:
    """The training objective of a pipeline's UNet: ``min(SNR + 1, cap) * |x0_pred - x0|^2`` on the codec's
    latents, where ``x0_pred`` is the output itself ("sample") or derived from predicted v; uncapped with
    v-prediction this is exactly the v-prediction MSE. Also the fixed validation loss."""

    def __init__(self, pipe: Any, config: MiniConfig) -> None:
        self.pipe = pipe
        self.config = config
        self.noise: Any = training_noise_scheduler(config.prediction_type)
        alphas = self.noise.alphas_cumprod
        self.alphas = alphas
        self.snr = alphas / (1.0 - alphas)
        self.text_encoder = pipe.text_encoder.eval().requires_grad_(False)
        self.scaling = float(pipe.vae.config.scaling_factor)

    def weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        weight = self.snr[timesteps] + 1.0
        if self.config.loss_weight_cap is not None:
            weight = torch.clamp(weight, max=self.config.loss_weight_cap)
        return weight

    def x0_loss(
        self,
        unet: Any,
        images: torch.Tensor,
        captions: list[str],
        truths: list[SceneTruth | None],
        timesteps: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """Per-sample weighted loss of ``unet`` on ``images`` noised to ``timesteps`` with ``noise``,
        conditioned on ``captions`` (text) or ``truths`` (layout; None is the unconditional case)."""
        with torch.no_grad():
            latents = self.pipe.vae.encode(images).latent_dist.mode() * self.scaling
        embeddings = self.condition(captions, truths)
        noisy = self.noise.add_noise(latents, noise, timesteps)
        output = unet(noisy, timesteps, embeddings).sample.float()
        if self.config.prediction_type == "sample":
            x0 = output
        else:  # v = alpha * eps - sigma * x0  =>  x0 = alpha * x_t - sigma * v
            alpha = self.alphas[timesteps].sqrt().view(-1, 1, 1, 1)
            sigma = (1.0 - self.alphas[timesteps]).sqrt().view(-1, 1, 1, 1)
            x0 = alpha * noisy - sigma * output
        return self.weights(timesteps) * (x0 - latents).pow(2).mean(dim=(1, 2, 3))

    @torch.no_grad()
    def condition(self, captions: list[str], truths: list[SceneTruth | None]) -> torch.Tensor:
        """What the UNet is conditioned on: the caption's MiniLM embeddings, or the layout tokens of the
        scene's truth (what the caption reader would lay out for its caption, with the positions actually
        drawn)."""
        if self.config.conditioning == "text":
            return encode_captions(self.pipe.tokenizer, self.text_encoder, captions)
        return torch.stack([empty_tokens(1)[0] if t is None else scene_tokens(t) for t in truths])

    @torch.no_grad()
    def validation_loss(self, unet: Any | None = None) -> float:
        """Mean loss on fixed held-out scenes at evenly spaced timesteps with fixed noise: a far less noisy
        progress measure than the training loss (whose timesteps change every step)."""
        unet = self.pipe.unet if unet is None else unet
        images, captions, truths, timesteps, noise = validation_batch(VALIDATION_SIZE)
        was_training = unet.training
        unet.eval()
        loss = float(self.x0_loss(unet, images, captions, list(truths), timesteps, noise).mean())
        unet.train(was_training)
        return loss


def validation_loss(pipe: Any, config: MiniConfig | None = None) -> float:
    """The validation loss (as logged in ``training.json``) of ``pipe.unet``, e.g. of a saved pipeline."""
    return Objective(pipe, config or MiniConfig()).validation_loss()
