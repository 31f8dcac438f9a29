"""LoRA adapters: catalog entries, loading them once onto a base pipeline, switching them per job.

A catalog model may list adapters (diffusers or kohya ``.safetensors`` files)::

    [models.my-sd15]
    path = "/models/sd15"
    loras = [
        { path = "/loras/ink.safetensors", scale = 0.8 },
        { path = "watercolour.safetensors", name = "wc", scale = 0.0 },  # loaded, off unless asked for
    ]

Each gets a name (``name``, default the file's stem) and a default scale (``scale``, default 1.0). They are
loaded into the pipeline with diffusers' own ``load_lora_weights`` (PEFT underneath) right after the base
model, *before* it is cached: a file that does not fit the model fails the whole load with a message naming
the file, so a half-loaded pipeline is never kept (diffusers leaves injected layers behind on a shape
mismatch). Per job, :func:`activate` sets the job's adapters and scales with ``set_adapters`` -- no reload
of the base model -- or disables LoRA entirely when the job has none with a non-zero scale, so "no adapter"
and "scale 0" run exactly the base model's computation.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Scales a catalog entry or a request may give an adapter (beyond this, images are noise).
MAX_SCALE = 4.0


class LoraError(ValueError):
    """A LoRA file is missing, not a LoRA, or does not fit its base model; the message names the file."""


@dataclass(frozen=True)
class LoraSpec:
    """One adapter of a catalog model: the name requests use, the file, the scale used when a request names
    no adapters."""

    name: str
    path: Path
    scale: float = 1.0


@dataclass(frozen=True)
class LoraChoice:
    """One adapter a job runs with, at its scale (plain data on :class:`gouache.engine.jobs.RenderJob`)."""

    name: str
    scale: float


def check_scale(value: Any, where: str) -> float:
    """A finite number within ``-MAX_SCALE..MAX_SCALE`` (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LoraError(f"{where}: scale must be a number, not {value!r}")
    scale = float(value)
    if not math.isfinite(scale) or abs(scale) > MAX_SCALE:
        raise LoraError(f"{where}: scale must be within {-MAX_SCALE:g} and {MAX_SCALE:g}, not {value!r}")
    return scale


def specs_from_entry(raw: Any, base: Path | None, where: str) -> tuple[LoraSpec, ...]:
    """The ``loras`` key of a catalog entry: a list of ``{path, name?, scale?}`` tables. Each file must
    exist and hold LoRA weights (checked from its header, cheaply, at start-up)."""
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise LoraError(f"{where}: 'loras' must be a list of tables like {{ path = \"x.safetensors\" }}")
    specs: list[LoraSpec] = []
    for i, item in enumerate(raw):
        at = f"{where} loras[{i}]"
        if not isinstance(item, Mapping) or "path" not in item:
            raise LoraError(f"{at}: each adapter is a table with a 'path'")
        unknown = set(item) - {"path", "name", "scale"}
        if unknown:
            raise LoraError(f"{at}: unknown keys {sorted(unknown)} (allowed: path, name, scale)")
        path = Path(str(item["path"])).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        name = str(item.get("name", path.stem))
        if not name:
            raise LoraError(f"{at}: 'name' must not be empty")
        scale = check_scale(item.get("scale", 1.0), at)
        try:
            check_file(path)
        except LoraError as exc:
            raise LoraError(f"{at}: {exc}") from exc
        specs.append(LoraSpec(name, path, scale))
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise LoraError(f"{where}: adapter names must be unique; {duplicates} given twice (set 'name')")
    return tuple(specs)


def check_file(path: Path) -> None:
    """The file exists and is a ``.safetensors`` file whose tensors are LoRA weights (diffusers' ``lora_A``/
    ``lora.down`` or kohya's ``lora_down``)."""
    if not path.is_file():
        raise LoraError(f"LoRA file {path} does not exist.")
    if path.suffix != ".safetensors":
        raise LoraError(f"LoRA file {path}: only .safetensors adapters are supported.")
    keys = _safetensors_keys(path)
    if not any("lora" in key for key in keys):
        raise LoraError(
            f"LoRA file {path} holds no LoRA weights (no 'lora' tensors among {len(keys)}); is it a full "
            "checkpoint? Point 'path' of the model, not 'loras', at it."
        )


def _safetensors_keys(path: Path) -> list[str]:
    try:
        with path.open("rb") as fh:
            length = struct.unpack("<Q", fh.read(8))[0]
            if length > 100 * 2**20:
                raise ValueError("header too large")
            header = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise LoraError(f"LoRA file {path} is not a readable .safetensors file: {exc}") from exc
    return [k for k in header if k != "__metadata__"]


def load_adapters(pipeline: Any, specs: Sequence[LoraSpec], model: str) -> None:
    """Load every adapter into the (not yet shared) pipeline under its name, then switch them off. Raises
    :class:`LoraError` naming the file when one does not fit: the caller drops the pipeline."""
    for spec in specs:
        check_file(spec.path)
        try:
            pipeline.load_lora_weights(str(spec.path), adapter_name=spec.name)
        except Exception as exc:  # diffusers/PEFT raise RuntimeError, ValueError, KeyError... for a misfit
            first = str(exc).strip().splitlines()[:2]
            raise LoraError(
                f"LoRA file {spec.path} does not fit model {model}: {' '.join(first)[:400]} "
                "(an adapter trained for another model family?)"
            ) from exc
        loaded = {name for names in pipeline.get_list_adapters().values() for name in names}
        if spec.name not in loaded:
            raise LoraError(
                f"LoRA file {spec.path} has no weights for any part of model {model} "
                "(an adapter trained for another model family?)"
            )
    if specs:
        pipeline.disable_lora()


def activate(pipeline: Any, choices: Sequence[LoraChoice]) -> None:
    """Run the next pipeline call with exactly these adapters at these scales (none: the base model).
    Adapters at scale 0 are left out rather than weighted 0, so they cost nothing."""
    if not hasattr(pipeline, "get_list_adapters") or not pipeline.get_list_adapters():
        if any(c.scale for c in choices):
            raise LoraError("this model has no LoRA adapters loaded")
        return
    active = [c for c in choices if c.scale != 0.0]
    if not active:
        pipeline.disable_lora()
        return
    pipeline.enable_lora()
    pipeline.set_adapters([c.name for c in active], [c.scale for c in active])


def has_adapters(module: Any) -> bool:
    """Whether PEFT adapters were injected into a torch module (a UNet or transformer)."""
    return bool(getattr(module, "peft_config", None))


def label(choices: Sequence[LoraChoice]) -> str:
    """A short stable text for a job's adapters (``ink:0.8,wc:1``), '' for none."""
    return ",".join(f"{c.name}:{c.scale:g}" for c in choices)
