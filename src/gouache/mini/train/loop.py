"""The training loop of gouache-mini: steps within a wall-clock budget, EMA weights, atomic checkpoints.

``minutes`` is the total training wall time across resumes. ``checkpoint.pt`` (model, EMA, optimizer, step,
RNG state, elapsed time, loss curve) is written atomically every ``config.checkpoint_minutes``, together
with the shippable ``pipeline/`` folder (EMA weights, fp16) and ``training.json``. Time after the last
checkpoint of an interrupted run is lost, not counted. :func:`main` is ``gouache train-mini``.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from diffusers import StableDiffusionPipeline
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from gouache.mini.model import LATENT_CHANNELS, LATENT_SIZE, MiniConfig
from gouache.mini.pipeline import build_mini_pipeline, folder_size, save_mini_pipeline
from gouache.mini.scenes.truth import SceneTruth
from gouache.mini.train.data import RUN_STRIDE, make_batch, step_seed
from gouache.mini.train.objective import Objective
from gouache.mini.train.schedule import lr_factor, schedule_rewarm

CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "training.json"
PIPELINE_DIR = "pipeline"
_FORMAT = 1


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
        gen = torch.Generator("cpu").manual_seed(step_seed(self.seed, step))
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
