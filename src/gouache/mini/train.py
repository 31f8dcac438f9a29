"""Training gouache-mini from scratch on procedurally generated scenes (``gouache train-mini``).

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

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from gouache.mini.grounding import empty_tokens, scene_tokens
from gouache.mini.model import LATENT_CHANNELS, LATENT_SIZE, MiniConfig, encode_captions
from gouache.mini.pipeline import (
    build_mini_pipeline,
    folder_size,
    save_mini_pipeline,
    training_noise_scheduler,
)
from gouache.mini.scenes.generator import generate_scene
from gouache.mini.scenes.truth import Scene, SceneTruth

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
    "train",
    "validation_batch",
    "validation_loss",
]

#: Training scene seeds stay below this; gouache.mini.evaluation draws its held-out scenes at or above it.
TRAIN_SEED_LIMIT = 10**9
#: Scene seeds per training seed: run ``seed`` (0-8) draws ``seed * 10**8 + index``.
RUN_STRIDE = 10**8
MAX_RUN_SEED = 8
#: The validation scenes (never trained on: training seed 9 does not exist).
VALIDATION_SEED_BASE = (MAX_RUN_SEED + 1) * RUN_STRIDE
#: Held-out scenes in the validation loss logged at every checkpoint.
VALIDATION_SIZE = 32
CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "training.json"
PIPELINE_DIR = "pipeline"
_FORMAT = 1


def scene_seed(seed: int, index: int) -> int:
    """The scene seed of training sample ``index`` (counted over the whole run) for run ``seed``."""
    if not 0 <= seed <= MAX_RUN_SEED:
        raise ValueError(f"the training seed must be within 0-{MAX_RUN_SEED}, not {seed}")
    if not 0 <= index < RUN_STRIDE:
        raise ValueError(f"a training run draws at most {RUN_STRIDE} scenes")
    return seed * RUN_STRIDE + index


def _step_seed(seed: int, step: int) -> int:
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


@dataclass
class TrainResult:
    steps: int
    elapsed_s: float
    #: Per-step losses of the steps run in this call, in order.
    losses: list[float] = field(default_factory=list)
    pipeline_dir: Path | None = None


@dataclass
class _State:
    step: int = 0
    elapsed_s: float = 0.0
    curve: list[list[float]] = field(default_factory=list)  # [step, elapsed_s, mean training loss]
    validation: list[list[float]] = field(default_factory=list)  # [step, elapsed_s, EMA validation loss]
    sessions: list[dict[str, Any]] = field(default_factory=list)


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


class _Trainer:
    def __init__(self, pipe: Any, config: MiniConfig, seed: int) -> None:
        self.pipe = pipe
        self.config = config
        self.seed = seed
        self.objective = Objective(pipe, config)
        self.unet: Any = pipe.unet
        self.unet.train()
        self.ema: Any = copy.deepcopy(self.unet).eval().requires_grad_(False)
        self.params = [p for p in self.unet.parameters() if p.requires_grad]
        self.ema_params = list(self.ema.parameters())
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.learning_rate, weight_decay=config.weight_decay, betas=(0.9, 0.999)
        )

    def lr_at(self, step: int) -> float:
        """Linear warm-up, constant, then a linear decay (:class:`MiniConfig`): a schedule of the step alone,
        not of the wall-clock budget (which would make the run's trajectory depend on the machine's speed)."""
        return self.config.learning_rate * lr_factor(self.config, step)

    def step(self, step: int) -> float:
        """One optimisation step; everything random comes from the generator of ``(seed, step)``."""
        config = self.config
        images, captions, truths = make_batch(self.seed, step, config)
        gen = torch.Generator("cpu").manual_seed(_step_seed(self.seed, step))
        batch = images.shape[0]
        timesteps = torch.randint(0, self.objective.noise.config.num_train_timesteps, (batch,), generator=gen)
        drop = torch.rand(batch, generator=gen) < config.caption_dropout
        noise = torch.randn((batch, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE), generator=gen)
        # A dropped caption is the empty prompt, encoded as the pipeline encodes its unconditional half.
        dropped = drop.tolist()
        captions = ["" if d else c for c, d in zip(captions, dropped, strict=True)]
        kept: list[SceneTruth | None] = [None if d else t for t, d in zip(truths, dropped, strict=True)]
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(step)
        loss = self.objective.x0_loss(self.unet, images, captions, kept, timesteps, noise).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, config.grad_clip)
        self.optimizer.step()
        self._update_ema(step)
        return float(loss.detach())

    @torch.no_grad()
    def _update_ema(self, step: int) -> None:
        decay = min(self.config.ema_decay, (1.0 + step) / (10.0 + step))
        torch._foreach_lerp_(self.ema_params, [p.detach() for p in self.params], 1.0 - decay)

    def shippable(self) -> Any:
        components = {**self.pipe.components, "unet": self.ema}
        return StableDiffusionPipeline(**components, requires_safety_checker=False)

    def checkpoint(self, state: _State) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "config": asdict(self.config),
            "seed": self.seed,
            "step": state.step,
            "elapsed_s": state.elapsed_s,
            "unet": self.unet.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "curve": state.curve,
            "validation": state.validation,
            "sessions": state.sessions,
        }

    def restore(self, ckpt: dict[str, Any]) -> _State:
        self.unet.load_state_dict(ckpt["unet"])
        self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng"])
        return _State(
            step=int(ckpt["step"]),
            elapsed_s=float(ckpt["elapsed_s"]),
            curve=[list(row) for row in ckpt["curve"]],
            validation=[list(row) for row in ckpt["validation"]],
            sessions=list(ckpt["sessions"]),
        )


def validation_loss(pipe: Any, config: MiniConfig | None = None) -> float:
    """The validation loss (as logged in ``training.json``) of ``pipe.unet``, e.g. of a saved pipeline."""
    return Objective(pipe, config or MiniConfig()).validation_loss()


def lr_factor(config: MiniConfig, step: int) -> float:
    """The multiplier of ``config.learning_rate`` at ``step``."""
    rewarms = [r for r in config.lr_rewarms if r[0] <= step]
    if rewarms:
        return _rewarm_factor(config, step, *rewarms[-1])
    warm = config.warmup_steps
    factor = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
    start, end = config.lr_decay_start, config.lr_decay_end
    if step >= end:
        return factor * config.lr_final_fraction
    if step > start:
        return factor * (1.0 - (1.0 - config.lr_final_fraction) * (step - start) / (end - start))
    return factor


def _rewarm_factor(config: MiniConfig, step: int, start: int, end: int, peak: float) -> float:
    final = config.lr_final_fraction
    warm_end = start + max(config.warmup_steps, 1)
    if step < warm_end:
        return final + (peak - final) * (step - start + 1) / (warm_end - start)
    if step >= end:
        return final
    return peak - (peak - final) * (step - warm_end) / max(end - warm_end, 1)


def schedule_rewarm(
    config: MiniConfig,
    step: int,
    sessions: list[dict[str, Any]],
    budget_s: float,
    elapsed_s: float,
    peak: float,
) -> MiniConfig:
    """``config`` with a re-warm of the rate to ``peak`` from ``step``, decaying to the final rate where the
    remaining budget should run out at the speed of the last session (its steps per wall second)."""
    if not 0.0 < peak <= 1.0:
        raise ValueError(f"--rewarm is a fraction of the learning rate in (0, 1], not {peak}")
    timed = [s for s in sessions if s.get("wall_s", 0) > 0 and s["end_step"] > s["start_step"]]
    if not timed:
        raise ValueError("--rewarm needs a checkpoint from an earlier session, to know this machine's speed")
    last = timed[-1]
    rate = (last["end_step"] - last["start_step"]) / last["wall_s"]
    remaining = int(max(0.0, budget_s - elapsed_s) * rate)
    if remaining <= config.warmup_steps:
        raise ValueError(
            f"--rewarm needs a budget left for more than {config.warmup_steps} steps; raise --minutes"
        )
    return replace(config, lr_rewarms=(*config.lr_rewarms, (step, step + remaining, peak)))


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def _config_from(raw: dict[str, Any]) -> MiniConfig:
    return MiniConfig(**{k: _tuples(v) for k, v in raw.items()})


def _atomic_write_bytes(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _save(out_dir: Path, trainer: _Trainer, state: _State, minutes: float, session: dict[str, Any]) -> Path:
    """Validation loss of the EMA weights, then checkpoint, shippable pipeline and log, each written
    atomically."""
    if not state.validation or state.validation[-1][0] != state.step:
        state.validation.append(
            [state.step, round(state.elapsed_s, 2), trainer.objective.validation_loss(trainer.ema)]
        )
    ckpt = trainer.checkpoint(state)
    _atomic_write_bytes(out_dir / CHECKPOINT_FILE, lambda p: torch.save(ckpt, p))
    pipeline_dir = save_mini_pipeline(trainer.shippable(), out_dir / PIPELINE_DIR, fp16=True)
    sps = session["samples"] / session["wall_s"] if session["wall_s"] > 0 else 0.0
    samples = state.step * trainer.config.batch_size
    log = {
        "seed": trainer.seed,
        "config": asdict(trainer.config),
        "steps": state.step,
        "samples": samples,
        "elapsed_s": round(state.elapsed_s, 2),
        "elapsed_minutes": round(state.elapsed_s / 60.0, 2),
        "budget_minutes": minutes,
        "samples_per_s_this_session": round(sps, 2),
        "sessions": state.sessions,
        "loss_curve": state.curve,
        "validation_loss_ema": state.validation,
        "pipeline": str(pipeline_dir),
        "pipeline_mb": round(folder_size(pipeline_dir) / 2**20, 2),
        # First and last scene seed trained on (all below TRAIN_SEED_LIMIT, the evaluator's held-out base).
        "scene_seeds": [trainer.seed * RUN_STRIDE, trainer.seed * RUN_STRIDE + samples - 1],
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _atomic_write_bytes(out_dir / LOG_FILE, lambda p: p.write_text(json.dumps(log, indent=2) + "\n"))
    return pipeline_dir


def train(
    out_dir: Path,
    minutes: float,
    resume: bool = False,
    seed: int = 0,
    config: MiniConfig | None = None,
    batch_size: int | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    console: Console | None = None,
    threads: int | None = None,
    rewarm: float | None = None,
) -> TrainResult:
    """Train (or, with ``resume``, continue) gouache-mini in ``out_dir`` until ``minutes`` of training wall
    time in total (or ``max_steps`` steps in total) have passed; write ``checkpoint.pt``, ``pipeline/`` and
    ``training.json`` there. With ``resume`` and no checkpoint, starts afresh. The checkpoint's config and
    seed win on resume; a different ``config``/``seed``/``batch_size`` given explicitly is an error.
    ``threads``: torch intra-op threads while training (default: every core); restored afterwards.
    ``rewarm``: on resume, raise the learning rate again to this fraction of the configured one and let it
    decay over what is left of the budget (:func:`schedule_rewarm`)."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    try:
        return _train(
            out_dir, minutes, resume, seed, config, batch_size, max_steps, progress, console, rewarm
        )
    finally:
        torch.set_num_threads(previous_threads)


def _load_checkpoint(
    path: Path, seed: int, config: MiniConfig | None, batch_size: int | None
) -> tuple[dict[str, Any], MiniConfig]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("format") != _FORMAT:
        raise ValueError(f"{path} has checkpoint format {ckpt.get('format')}, expected {_FORMAT}")
    saved = _config_from(ckpt["config"])
    # Re-warms are added on resume, so a config given without them still matches the run it continues.
    if config is not None and replace(config, lr_rewarms=saved.lr_rewarms) != saved:
        raise ValueError(f"{path} was trained with another config; resume with the same one or start afresh")
    if batch_size is not None and batch_size != saved.batch_size:
        raise ValueError(f"{path} was trained with batch size {saved.batch_size}, not {batch_size}")
    if seed != ckpt["seed"]:
        raise ValueError(f"{path} was trained with seed {ckpt['seed']}, not {seed}")
    return ckpt, saved


def _train(
    out_dir: Path,
    minutes: float,
    resume: bool,
    seed: int,
    config: MiniConfig | None,
    batch_size: int | None,
    max_steps: int | None,
    progress: bool,
    console: Console | None,
    rewarm: float | None = None,
) -> TrainResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / CHECKPOINT_FILE
    ckpt: dict[str, Any] | None = None
    if resume and ckpt_path.is_file():
        ckpt, config = _load_checkpoint(ckpt_path, seed, config, batch_size)
    elif not resume and ckpt_path.exists():
        raise FileExistsError(f"{ckpt_path} exists: pass resume=True (--resume) or choose another directory")
    if rewarm is not None and ckpt is None:
        raise ValueError(f"--rewarm continues a run: pass --resume, with a checkpoint in {out_dir}")
    config = config or MiniConfig()
    if batch_size is not None and batch_size != config.batch_size:
        config = replace(config, batch_size=batch_size)

    trainer = _Trainer(build_mini_pipeline(config, seed), config, seed)
    state = trainer.restore(ckpt) if ckpt is not None else _State()
    budget_s = max(0.0, minutes * 60.0)
    if rewarm is not None:
        config = trainer.config = schedule_rewarm(
            config, state.step, state.sessions, budget_s, state.elapsed_s, rewarm
        )
        start, end, peak = config.lr_rewarms[-1]
        (console or Console()).print(
            f"re-warm: rate {peak:g} x {config.learning_rate:g} from step {start}, down by step {end}"
        )
    session: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "start_step": state.step,
        "end_step": state.step,
        "wall_s": 0.0,
        "samples": 0,
        "threads": torch.get_num_threads(),
    }
    state.sessions.append(session)

    def spend(seconds: float) -> None:
        state.elapsed_s += seconds
        session["wall_s"] += seconds

    columns = (
        TextColumn("[bold]gouache-mini[/]"),
        BarColumn(),
        TextColumn("step {task.fields[step]}"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[sps]:.1f} samples/s"),
        TextColumn("{task.fields[clock]}"),
        TimeElapsedColumn(),
    )
    losses: list[float] = []
    window: list[float] = []
    last_ckpt = state.elapsed_s
    step_s = save_s = 0.0  # the last step's and checkpoint's durations: the loop stops before the budget
    with Progress(*columns, console=console or Console(), disable=not progress) as bar:
        task = bar.add_task(
            "train",
            total=budget_s,
            completed=int(state.elapsed_s),
            step=state.step,
            loss=0.0,
            sps=0.0,
            clock=_clock(state.elapsed_s, budget_s),
        )
        while state.elapsed_s + step_s + save_s < budget_s and (max_steps is None or state.step < max_steps):
            t0 = time.perf_counter()
            loss = trainer.step(state.step)
            step_s = time.perf_counter() - t0
            spend(step_s)
            state.step += 1
            session["end_step"] = state.step
            session["samples"] += config.batch_size
            losses.append(loss)
            window.append(loss)
            if len(window) >= config.log_every:
                state.curve.append([state.step, round(state.elapsed_s, 2), sum(window) / len(window)])
                window.clear()
            if state.elapsed_s - last_ckpt >= config.checkpoint_minutes * 60.0:
                t1 = time.perf_counter()
                _save(out_dir, trainer, state, minutes, session)
                save_s = time.perf_counter() - t1
                spend(save_s)
                last_ckpt = state.elapsed_s
            bar.update(
                task,
                completed=min(state.elapsed_s, budget_s),
                step=state.step,
                loss=loss,
                sps=session["samples"] / session["wall_s"],
                clock=_clock(state.elapsed_s, budget_s),
            )
    if window:
        state.curve.append([state.step, round(state.elapsed_s, 2), sum(window) / len(window)])
    t1 = time.perf_counter()
    pipeline_dir = _save(out_dir, trainer, state, minutes, session)
    spend(time.perf_counter() - t1)  # not in the checkpoint just written: a resumed run loses these seconds
    return TrainResult(steps=state.step, elapsed_s=state.elapsed_s, losses=losses, pipeline_dir=pipeline_dir)


def _clock(elapsed_s: float, budget_s: float) -> str:
    return f"{elapsed_s / 60.0:.1f} / {budget_s / 60.0:.1f} min"


def main(minutes: float, out: Path, resume: bool, seed: int, tiny: bool, rewarm: float | None = None) -> None:
    """Entry point for ``gouache train-mini [--minutes N] [--out DIR] [--resume [--rewarm F]]``."""
    console = Console()
    config = MiniConfig.tiny() if tiny else MiniConfig()
    try:
        result = train(
            Path(out), minutes, resume=resume, seed=seed, config=config, console=console, rewarm=rewarm
        )
    except (ValueError, FileExistsError) as error:  # a wrong combination of options: say which, no traceback
        console.print(f"[red]error:[/] {error}")
        raise SystemExit(2) from None
    console.print(
        f"gouache-mini: {result.steps} steps, {result.elapsed_s / 60.0:.1f} min of training in total; "
        f"pipeline in {result.pipeline_dir} (copy it to src/gouache/mini/weights/gouache-mini to ship it)"
    )
