"""The held-out scenes of an evaluation run, and the seed contract with the trainer.

Scene ``i`` of evaluation run ``seed`` is drawn from generator seed
``HELD_OUT_BASE + seed * HELD_OUT_STRIDE + i``, at or above 10**9, where training
(:data:`gouache.mini.train.TRAIN_SEED_LIMIT`) never draws: no evaluation scene is ever a training image.
Captions use held-out wording (``paraphrase=True``).
"""

from __future__ import annotations

from collections.abc import Sequence

from gouache.mini.evaluation.analysis import EVAL_SIZE
from gouache.mini.scenes.generator import generate_scene
from gouache.mini.scenes.truth import Scene
from gouache.mini.scenes.vocabulary import KINDS

HELD_OUT_BASE = 10**9  # trainers draw generator seeds below this; evaluation draws at or above it
HELD_OUT_STRIDE = 10**6  # scenes per evaluation seed


def held_out_seed(index: int, seed: int = 0) -> int:
    """Generator seed of scene ``index`` of the evaluation run ``seed`` (always >= :data:`HELD_OUT_BASE`)."""
    if not 0 <= index < HELD_OUT_STRIDE:
        raise ValueError(f"index must be in [0, {HELD_OUT_STRIDE})")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    return HELD_OUT_BASE + seed * HELD_OUT_STRIDE + index


def held_out_scenes(
    n: int, seed: int = 0, kinds: Sequence[str] | None = None, size: int = EVAL_SIZE
) -> list[Scene]:
    """``n`` evaluation scenes with paraphrased captions, cycling through ``kinds`` (default all
    :data:`~gouache.mini.scenes.vocabulary.KINDS`). Seeds follow :func:`held_out_seed`; trainers never draw
    them."""
    chosen = tuple(kinds or KINDS)
    for kind in chosen:
        if kind not in KINDS:
            raise ValueError(f"unknown scene kind {kind!r}; expected one of {KINDS}")
    return [
        generate_scene(held_out_seed(i, seed), size, chosen[i % len(chosen)], paraphrase=True)
        for i in range(n)
    ]
