"""What gouache-mini trains on: the scene seeds of each step, generated on the fly, and the validation set.

Sample ``i`` of step ``s`` of run ``seed`` is scene seed ``seed * 10**8 + s * B + i``, always below
:data:`TRAIN_SEED_LIMIT` (10**9): the evaluator (:mod:`gouache.mini.evaluation`) draws its held-out scenes at
or above it, so it never scores a training scene. Everything random in a step besides the scenes comes from
:func:`step_seed`, so a resumed run takes exactly the steps an uninterrupted run takes.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from gouache.mini.model import LATENT_CHANNELS, LATENT_SIZE, MiniConfig
from gouache.mini.scenes.generator import generate_scene
from gouache.mini.scenes.truth import Scene, SceneTruth

#: Training scene seeds stay below this; gouache.mini.evaluation draws its held-out scenes at or above it.
TRAIN_SEED_LIMIT = 10**9
#: Scene seeds per training seed: run ``seed`` (0-8) draws ``seed * 10**8 + index``.
RUN_STRIDE = 10**8
MAX_RUN_SEED = 8
#: The validation scenes (never trained on: training seed 9 does not exist).
VALIDATION_SEED_BASE = (MAX_RUN_SEED + 1) * RUN_STRIDE


def scene_seed(seed: int, index: int) -> int:
    """The scene seed of training sample ``index`` (counted over the whole run) for run ``seed``."""
    if not 0 <= seed <= MAX_RUN_SEED:
        raise ValueError(f"the training seed must be within 0-{MAX_RUN_SEED}, not {seed}")
    if not 0 <= index < RUN_STRIDE:
        raise ValueError(f"a training run draws at most {RUN_STRIDE} scenes")
    return seed * RUN_STRIDE + index


def step_seed(seed: int, step: int) -> int:
    digest = hashlib.sha256(f"gouache-mini/train/{seed}/{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _images(scenes: list[Scene]) -> torch.Tensor:
    pixels = np.stack([np.asarray(s.image.convert("RGB")) for s in scenes])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def make_batch(seed: int, step: int, config: MiniConfig) -> tuple[torch.Tensor, list[str], list[SceneTruth]]:
    """Images [B, 3, 64, 64] in [-1, 1], their captions and truths for ``step``."""
    weights = dict(config.kind_weights)
    start = step * config.batch_size
    scenes = [
        generate_scene(scene_seed(seed, start + i), size=64, kind_weights=weights)
        for i in range(config.batch_size)
    ]
    return _images(scenes), [s.caption for s in scenes], [s.truth for s in scenes]


def validation_batch(n: int) -> tuple[torch.Tensor, list[str], list[SceneTruth], torch.Tensor, torch.Tensor]:
    """``n`` held-out scenes (seeds from :data:`VALIDATION_SEED_BASE`, default kind mix) with
    timesteps evenly spread over the schedule and fixed noise."""
    scenes = [generate_scene(VALIDATION_SEED_BASE + i, size=64) for i in range(n)]
    images = _images(scenes)
    timesteps = torch.linspace(0, 999, n).round().long()
    gen = torch.Generator("cpu").manual_seed(20240601)
    noise = torch.randn((n, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE), generator=gen)
    return images, [s.caption for s in scenes], [s.truth for s in scenes], timesteps, noise
