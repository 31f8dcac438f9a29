"""Loading diffusers pipelines from directories, with clear errors and a small cache."""

from __future__ import annotations

import importlib
import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from gouache.engine.catalog import CatalogError, ModelSpec, detect_family

log = logging.getLogger(__name__)

_SCHEDULER_CLASSES: dict[str, Any] = {
    "ddim": DDIMScheduler,
    "dpm++": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "unipc": UniPCMultistepScheduler,
}


class ModelLoadError(RuntimeError):
    """A model directory is missing or broken; the message names the path."""


class LoadedModel:
    """A pipeline plus the schedulers its plans ask for (built once from the pipeline's own config)."""

    def __init__(self, spec: ModelSpec, pipeline: Any) -> None:
        self.spec = spec
        self.pipeline = pipeline
        self._default_scheduler = pipeline.scheduler
        self._schedulers: dict[str, Any] = {"default": pipeline.scheduler}

    def use_scheduler(self, name: str) -> None:
        if name not in self._schedulers:
            cls = _SCHEDULER_CLASSES[name]
            self._schedulers[name] = cls.from_config(self._default_scheduler.config)
        self.pipeline.scheduler = self._schedulers[name]


def load_pipeline(path: Path) -> Any:
    """Load a diffusers pipeline directory on the CPU, offline, in float32."""
    path = Path(path)
    try:
        detect_family(path)
    except CatalogError as exc:
        raise ModelLoadError(str(exc)) from exc
    _import_component_libraries(path)
    try:
        pipe = DiffusionPipeline.from_pretrained(str(path), torch_dtype=torch.float32, local_files_only=True)
    except Exception as exc:  # diffusers raises many types for a broken folder
        raise ModelLoadError(f"Could not load the diffusers pipeline at {path}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _import_component_libraries(path: Path) -> None:
    """diffusers loads a component from a library other than its own or transformers only if that module is
    already imported; import the Gouache modules a `model_index.json` names (the embedded model's codec and
    text encoder live there)."""
    try:
        index = json.loads((path / "model_index.json").read_text())
    except (OSError, ValueError):
        return
    for value in index.values():
        if (
            isinstance(value, list)
            and value
            and isinstance(value[0], str)
            and value[0].startswith("gouache.")
        ):
            try:
                importlib.import_module(value[0])
            except ImportError as exc:
                raise ModelLoadError(
                    f"{path}: component library {value[0]} cannot be imported: {exc}"
                ) from exc


class ModelCache:
    """Loaded models by name; keeps at most `capacity`, dropping the least recently used."""

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = capacity
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: ModelSpec) -> LoadedModel:
        with self._lock:
            model = self._models.get(spec.name)
            if model is not None and model.spec.path == spec.path:
                self._models.move_to_end(spec.name)
                return model
            log.info("loading model %s from %s", spec.name, spec.path)
            model = LoadedModel(spec, load_pipeline(spec.path))
            self._models[spec.name] = model
            while len(self._models) > self.capacity:
                name, _ = self._models.popitem(last=False)
                log.info("unloaded model %s", name)
            return model

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)
