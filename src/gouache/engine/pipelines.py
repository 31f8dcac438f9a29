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
from collections.abc import Callable
from dataclasses import dataclass, field
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

from gouache.engine import devices
from gouache.engine.backend import BackendOptions, apply_backend, backend_of
from gouache.engine.catalog import CatalogError, ModelSpec, detect_family
from gouache.engine.devices import Accelerators, MemoryStrategy
from gouache.engine.lora import LoraError, load_adapters
from gouache.engine.single_file import is_single_file, load_single_file
from gouache.quiet import quiet_loading

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


@dataclass(frozen=True)
class Placement:
    """Where one model runs and how it saves memory, resolved when it loads (see gouache.engine.devices)."""

    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    memory: MemoryStrategy = field(default_factory=MemoryStrategy)

    @property
    def on_accelerator(self) -> bool:
        return not devices.is_cpu(self.device)

    @property
    def in_main_memory(self) -> bool:
        """Whether the weights live in main memory, hence in the model memory budget: on the CPU, on Apple
        MPS (unified memory) or offloaded; a CUDA GPU's own memory is budgeted by its free memory instead."""
        return not self.device.startswith("cuda") or self.memory.offload


class LoadedModel:
    """A pipeline plus the schedulers its plans ask for (built once from the pipeline's own config)."""

    def __init__(
        self, spec: ModelSpec, pipeline: Any, backend: str = "pytorch", placement: Placement | None = None
    ) -> None:
        self.spec = spec
        self.pipeline = pipeline
        #: The backend the denoiser was put on ("pytorch" or "openvino"; see gouache.engine.backend).
        self.backend = backend
        #: Device, dtype and memory strategy it was loaded with.
        self.placement = placement or Placement()
        self._default_scheduler = pipeline.scheduler
        self._schedulers: dict[str, Any] = {"default": pipeline.scheduler}
        self.lock = threading.Lock()

    def use_vae_tiling(self, width: int, height: int) -> tuple[str, ...]:
        """Turn VAE tiling on or off for decodes at this working size, as the memory strategy says; returns
        the measures a render at this size uses (recorded with the request)."""
        vae = getattr(self.pipeline, "vae", None)
        tiles = self.placement.memory.tiles(width, height) and hasattr(vae, "enable_tiling")
        if vae is not None and bool(getattr(vae, "use_tiling", False)) != tiles:
            vae.enable_tiling() if tiles else vae.disable_tiling()
        return tuple(m for m in self.placement.memory.names(width, height) if m != "vae_tiling" or tiles)

    def use_scheduler(self, name: str) -> None:
        if name not in self._schedulers:
            cls = _SCHEDULER_CLASSES[name]
            self._schedulers[name] = cls.from_config(self._default_scheduler.config)
        self.pipeline.scheduler = self._schedulers[name]


def load_pipeline(
    path: Path, family: str | None = None, config: Path | None = None, dtype: torch.dtype = torch.float32
) -> Any:
    """Load a diffusers pipeline directory, or a single-file checkpoint (`family` and `config` as in its
    catalog entry; see gouache.engine.single_file), on the CPU, offline, in `dtype`."""
    path = Path(path)
    if is_single_file(path):
        try:
            pipe = load_single_file(path, family, config)
            if dtype != torch.float32:
                pipe.to(dtype=dtype)
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
    quiet_loading()
    try:
        pipe = DiffusionPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    except Exception as exc:  # diffusers raises many types for a broken folder
        raise ModelLoadError(f"Could not load the diffusers pipeline at {path}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def place(pipeline: Any, placement: Placement, compile_denoiser: bool = False) -> None:
    """Apply a placement to a pipeline loaded on the CPU: attention slicing, then the device (directly, or
    through accelerate's model CPU offload), then ``torch.compile`` of the denoiser where asked. On the CPU
    without slicing this does nothing: the path Gouache always ran."""
    if placement.memory.attention_slicing and hasattr(pipeline, "enable_attention_slicing"):
        pipeline.enable_attention_slicing()
    if not placement.on_accelerator:
        if compile_denoiser:
            log.info("compile is ignored on the CPU (the optimised CPU path is GOUACHE_BACKEND=openvino)")
        return
    # Accelerator-only lines: tests/test_gpu.py runs them (scripts/gpu-check.sh).
    if placement.memory.offload:
        pipeline.enable_model_cpu_offload(device=placement.device)
    else:
        pipeline.to(placement.device)
    if compile_denoiser:
        denoiser = getattr(pipeline, "unet", None) or getattr(pipeline, "transformer", None)
        if denoiser is not None:
            denoiser.compile()  # in place: the module keeps its class and config


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

    def __init__(
        self,
        budget_bytes: int | None = None,
        backend: BackendOptions | None = None,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        accelerators: Accelerators | None = None,
        free_memory: Callable[[str], int | None] = devices.free_bytes,
    ) -> None:
        self.budget_bytes = budget_bytes
        self.backend = backend or BackendOptions()
        #: GOUACHE_DEVICE / GOUACHE_DTYPE: each catalog entry's own `device` / `dtype` goes first.
        self.device = device
        self.dtype = dtype
        self.accelerators = accelerators if accelerators is not None else devices.probe()
        self.free_memory = free_memory
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
            device, dtype = self._device_and_dtype(spec)
            estimate = estimate_model_bytes(spec.path) if Path(spec.path).exists() else 0
            estimate = devices.weight_bytes(estimate, dtype)
            free = None if devices.is_cpu(device) else self._room_on(device, estimate)
            memory = devices.choose_memory(spec.memory, device, estimate, free)
            placement = Placement(device, dtype, memory)
            if placement.in_main_memory:
                self._room_in_main_memory(spec, estimate)
            log.info(
                "loading model %s from %s (~%.0f MB) on %s in %s, memory %s",
                spec.name, spec.path, estimate / 2**20, device, devices.dtype_name(dtype),
                memory.describe(),
            )  # fmt: skip
            pipeline = load_pipeline(spec.path, spec.family, spec.config, dtype)
            try:  # before placing and the backend: a model with adapters stays on PyTorch (engine.backend)
                load_adapters(pipeline, spec.loras, spec.name)
            except LoraError as exc:  # the half-loaded pipeline is dropped here, never cached
                raise ModelLoadError(str(exc)) from exc
            place(pipeline, placement, spec.compile)
            backend = apply_backend(pipeline, self.backend, override=spec.backend, key=spec.name)
            model = LoadedModel(spec, pipeline, backend, placement)
            self._models[spec.name] = model
            self._sizes[spec.name] = loaded_bytes(model.pipeline) or estimate
            return model

    def _device_and_dtype(self, spec: ModelSpec) -> tuple[str, torch.dtype]:
        device = devices.resolve_device(spec.device or self.device, self.accelerators)
        return device, devices.resolve_dtype(spec.dtype or self.dtype, device)

    def device_and_dtype(self, spec: ModelSpec) -> tuple[str, str]:
        """Where `spec` renders and in which dtype ("cuda:0", "float16"), resolved as loading it would,
        without loading it: the result cache keys on them, so that an image rendered on the CPU never
        answers a request once the model runs on a GPU (or in another dtype)."""
        device, dtype = self._device_and_dtype(spec)
        return device, devices.dtype_name(dtype)

    def _room_in_main_memory(self, spec: ModelSpec, estimate: int) -> None:
        """Unload the least recently used models held in main memory until `estimate` more bytes fit the
        budget; a model larger than the whole budget is refused."""
        if self.budget_bytes is None:
            return
        if estimate > self.budget_bytes:
            raise ModelTooLarge(
                f"Model {spec.name} needs about {estimate / 2**20:.0f} MB, more than the model "
                f"memory budget of {self.budget_bytes / 2**20:.0f} MB (GOUACHE_MODEL_MEMORY_MB)."
            )
        while self.used_bytes + estimate > self.budget_bytes:
            held = [n for n, m in self._models.items() if m.placement.in_main_memory]
            if not held:
                return
            self._unload(held[0])

    def _room_on(self, device: str, estimate: int) -> int | None:
        """Unload the least recently used models resident on an accelerator until `estimate` bytes fit its
        free memory (as the driver reports it) beside the activations; returns the free memory then."""
        free = self.free_memory(device)
        while free is not None and estimate > free * devices.OFFLOAD_ABOVE:
            resident = [
                name
                for name, model in self._models.items()
                if model.placement.device == device and not model.placement.in_main_memory
            ]
            if not resident:
                break
            self._unload(resident[0])
            torch.cuda.empty_cache()
            free = self.free_memory(device)
        return free

    def _unload(self, name: str) -> None:
        self._models.pop(name, None)
        size = self._sizes.pop(name, 0)
        gc.collect()
        log.info("unloaded model %s (%.0f MB)", name, size / 2**20)

    @property
    def used_bytes(self) -> int:
        """Main memory held by the loaded models (measured after loading): those on an accelerator, unless
        offloaded, hold theirs there instead."""
        return sum(size for name, size in self._sizes.items() if self._models[name].placement.in_main_memory)

    # The three readers below take no lock: `get` holds it for as long as a load takes (minutes for a large
    # model), and /health must answer meanwhile. Copying a dict is one step under the GIL.

    def loaded(self) -> list[str]:
        return list(self._models.copy())

    def backends(self) -> dict[str, str]:
        """The backend each loaded model's denoiser runs on now ("openvino" until a conversion fails)."""
        return {name: backend_of(model.pipeline) for name, model in self._models.copy().items()}

    def default_device(self) -> str:
        """Where a catalog entry without its own `device` loads (GOUACHE_DEVICE, resolved)."""
        return devices.resolve_device(self.device, self.accelerators)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Per loaded model: device, dtype, backend, memory strategy and size (for `/health` and
        `GET /v1/models/{id}`). No lock, like the readers above: /health must answer while a model loads."""
        sizes = self._sizes.copy()
        return {
            name: {
                "device": model.placement.device,
                "dtype": devices.dtype_name(model.placement.dtype),
                "backend": backend_of(model.pipeline),
                "memory": model.placement.memory.describe(),
                "memory_mb": round(sizes.get(name, 0) / 2**20, 1),
            }
            for name, model in self._models.copy().items()
        }

    def sizes(self) -> dict[str, int]:
        return self._sizes.copy()
