"""The learning rate of gouache-mini's training as a function of the step alone.

Linear warm-up, constant, then a linear decay, plus re-warms added when a finished run is resumed with a
larger budget (``train-mini --resume --rewarm``). A schedule of the step, not of the wall-clock budget, so a
run's trajectory does not depend on the machine's speed; re-warms are recorded in the run's config.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gouache.mini.model import MiniConfig


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
