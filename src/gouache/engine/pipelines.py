"""Loading diffusers pipelines from directories, with clear errors, and a cache under a memory budget."""

from __future__ import annotations

import gc
import importlib
import json
import logging
import struct
import sys
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

from gouache.engine.backend import BackendOptions, apply_backend, backend_of
from gouache.engine.catalog import CatalogError, ModelSpec, detect_family
from gouache.engine.single_file import is_single_file, load_single_file

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

    def __init__(self, spec: ModelSpec, pipeline: Any, backend: str = "pytorch") -> None:
        self.spec = spec
        self.pipeline = pipeline
        #: The backend the denoiser was put on ("pytorch" or "openvino"; see gouache.engine.backend).
        self.backend = backend
        self._default_scheduler = pipeline.scheduler
        self._schedulers: dict[str, Any] = {"default": pipeline.scheduler}
        self.lock = threading.Lock()

    def use_scheduler(self, name: str) -> None:
        if name not in self._schedulers:
            cls = _SCHEDULER_CLASSES[name]
            self._schedulers[name] = cls.from_config(self._default_scheduler.config)
        self.pipeline.scheduler = self._schedulers[name]


def load_pipeline(path: Path, family: str | None = None, config: Path | None = None) -> Any:
    """Load a diffusers pipeline directory, or a single-file checkpoint (`family` and `config` as in its
    catalog entry; see gouache.engine.single_file), on the CPU, offline, in float32."""
    path = Path(path)
    if is_single_file(path):
        try:
            pipe = load_single_file(path, family, config)
        except (CatalogError, ValueError) as exc:
            raise ModelLoadError(str(exc)) from exc
        except Exception as exc:  # diffusers and transformers raise many types for a broken file
            raise ModelLoadError(f"Could not load the checkpoint {path}: {exc}") from exc
        pipe.set_progress_bar_config(disable=True)
        return pipe
    try:
        detect_family(path)
    except CatalogError as exc:
        raise ModelLoadError(str(exc)) from exc
    _import_component_libraries(path)
    _keep_onnx_runtime_unloaded()
    try:
        pipe = DiffusionPipeline.from_pretrained(str(path), torch_dtype=torch.float32, local_files_only=True)
    except Exception as exc:  # diffusers raises many types for a broken folder
        raise ModelLoadError(f"Could not load the diffusers pipeline at {path}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _keep_onnx_runtime_unloaded() -> None:
    """diffusers asks ``issubclass(component, diffusers.OnnxRuntimeModel)`` of every component it loads, and
    resolving that lazy name imports onnxruntime: 18 MB resident for ONNX pipelines that Gouache never loads
    (design note 33). Give the name a stand-in first, unless onnxruntime is in use already."""
    import diffusers

    if "onnxruntime" not in sys.modules and "OnnxRuntimeModel" not in vars(diffusers):
        stand_in = type("OnnxRuntimeModel", (), {"__doc__": "A stand-in: see gouache.engine.pipelines."})
        setattr(diffusers, "OnnxRuntimeModel", stand_in)  # noqa: B010


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


class ModelTooLarge(ModelLoadError):
    """A model needs more memory than the whole model budget."""


def estimate_model_bytes(path: Path) -> int:
    """Memory a pipeline will take once loaded in float32: its weight files (or its single checkpoint file),
    doubled when they are stored in half precision (read from the safetensors headers)."""
    total = 0
    files = [Path(path)] if Path(path).is_file() else Path(path).rglob("*")
    for file in files:
        if file.suffix not in _WEIGHT_SUFFIXES or not file.is_file():
            continue
        size = file.stat().st_size
        total += size * 2 if file.suffix == ".safetensors" and _is_half(file) else size
    return total


def _is_half(file: Path) -> bool:
    try:
        with file.open("rb") as fh:
            length = struct.unpack("<Q", fh.read(8))[0]
            if length > 100 * 2**20:
                return False
            header = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error):
        return False
    dtypes = {v.get("dtype") for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    return bool(dtypes) and dtypes <= {"F16", "BF16"}


def loaded_bytes(pipeline: Any) -> int:
    """Bytes held by a loaded pipeline's torch modules (parameters and buffers)."""
    seen: set[int] = set()
    total = 0
    for component in getattr(pipeline, "components", {}).values():
        if not isinstance(component, torch.nn.Module):
            continue
        for tensor in [*component.parameters(), *component.buffers()]:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx"}


class ModelCache:
    """Loaded models by name, kept under a memory budget: loading a model first unloads the least recently
    used ones until the new model's estimated size fits. A model larger than the whole budget is refused
    (`ModelTooLarge`), so the service can fall back to another model. A model still rendering when it is
    unloaded is freed when its job ends."""

    def __init__(self, budget_bytes: int | None = None, backend: BackendOptions | None = None) -> None:
        self.budget_bytes = budget_bytes
        self.backend = backend or BackendOptions()
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, spec: ModelSpec) -> LoadedModel:
        with self._lock:
            model = self._models.get(spec.name)
            if model is not None and model.spec.path == spec.path:
                self._models.move_to_end(spec.name)
                return model
            if model is not None:
                self._unload(spec.name)
            estimate = estimate_model_bytes(spec.path) if Path(spec.path).exists() else 0
            if self.budget_bytes is not None:
                if estimate > self.budget_bytes:
                    raise ModelTooLarge(
                        f"Model {spec.name} needs about {estimate / 2**20:.0f} MB, more than the model "
                        f"memory budget of {self.budget_bytes / 2**20:.0f} MB (GOUACHE_MODEL_MEMORY_MB)."
                    )
                while self._models and self.used_bytes + estimate > self.budget_bytes:
                    self._unload(next(iter(self._models)))
            log.info("loading model %s from %s (~%.0f MB)", spec.name, spec.path, estimate / 2**20)
            pipeline = load_pipeline(spec.path, spec.family, spec.config)
            backend = apply_backend(pipeline, self.backend, override=spec.backend, key=spec.name)
            model = LoadedModel(spec, pipeline, backend)
            self._models[spec.name] = model
            self._sizes[spec.name] = loaded_bytes(model.pipeline) or estimate
            return model

    def _unload(self, name: str) -> None:
        self._models.pop(name, None)
        size = self._sizes.pop(name, 0)
        gc.collect()
        log.info("unloaded model %s (%.0f MB)", name, size / 2**20)

    @property
    def used_bytes(self) -> int:
        """Memory held by the loaded models, as measured after loading."""
        return sum(self._sizes.values())

    # The three readers below take no lock: `get` holds it for as long as a load takes (minutes for a large
    # model), and /health must answer meanwhile. Copying a dict is one step under the GIL.

    def loaded(self) -> list[str]:
        return list(self._models.copy())

    def backends(self) -> dict[str, str]:
        """The backend each loaded model's denoiser runs on now ("openvino" until a conversion fails)."""
        return {name: backend_of(model.pipeline) for name, model in self._models.copy().items()}

    def sizes(self) -> dict[str, int]:
        return self._sizes.copy()
