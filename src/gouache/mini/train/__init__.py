"""Training gouache-mini from scratch on procedurally generated scenes (``gouache train-mini``).

One room per job: :mod:`.data` (which scenes a step trains on, and the seed contract with the evaluator),
:mod:`.objective` (the loss, and the fixed validation loss), :mod:`.schedule` (the learning rate by step) and
:mod:`.loop` (the trainer, its checkpoints and the ``train-mini`` entry point).

* Data: scenes from :func:`gouache.mini.scenes.generator.generate_scene`, generated on the fly in the main
  process (about 0.5 ms each). Sample ``i`` of step ``s`` is scene seed :func:`scene_seed`
  ``(seed, s * B + i)`` = ``seed * 10**8 + s * B + i``, always below ``TRAIN_SEED_LIMIT`` (10**9), the
  contract with :mod:`gouache.mini.evaluation`, whose held-out scenes are drawn at or above 10**9, so it
  never scores a training scene. Captions almost never repeat (19,760 unique in 20,000), so text embeddings
  are computed per batch under ``no_grad`` (~0.14 s per 32 captions) rather than cached.
* Objective (:class:`Objective`): the UNet predicts the clean pixel-unshuffled image (x0; v-prediction is a
  config option), loss ``min(SNR + 1, 5) * MSE(x0)``, cosine noise schedule, AdamW with linear warm-up then
  a constant rate, gradient clipping, an EMA of the weights (what is shipped), 10 % caption dropout to the
  empty prompt (exactly what the pipeline encodes for guidance).
* Determinism: everything random in step ``s`` (timesteps, noise, caption dropout) comes from a generator
  seeded by ``(seed, s)``, so a run resumed from a checkpoint takes exactly the steps an uninterrupted run
  takes. Where a run *stops* depends on the wall-clock budget, so its number of steps is not fixed.
* Budget: ``minutes`` is the total training wall time across resumes. ``checkpoint.pt`` (model, EMA,
  optimizer, step, RNG state, elapsed time, loss curve) is written atomically every
  ``config.checkpoint_minutes``, together with the shippable ``pipeline/`` folder (EMA weights, fp16) and
  ``training.json``. Time after the last checkpoint of an interrupted run is lost, not counted.
"""

from gouache.mini.train.data import (
    TRAIN_SEED_LIMIT,
    VALIDATION_SEED_BASE,
    make_batch,
    scene_seed,
    validation_batch,
)
from gouache.mini.train.loop import CHECKPOINT_FILE, LOG_FILE, PIPELINE_DIR, TrainResult, main, train
from gouache.mini.train.objective import Objective, validation_loss
from gouache.mini.train.schedule import lr_factor, schedule_rewarm

__all__ = [
    "CHECKPOINT_FILE",
    "LOG_FILE",
    "PIPELINE_DIR",
    "TRAIN_SEED_LIMIT",
    "VALIDATION_SEED_BASE",
    "Objective",
    "TrainResult",
    "lr_factor",
    "main",
    "make_batch",
    "scene_seed",
    "schedule_rewarm",
    "train",
    "validation_batch",
    "validation_loss",
]
