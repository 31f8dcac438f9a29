"""Where a model runs and how it saves memory: device and dtype choice, and the memory strategy.

Every decision here is a pure function of plain facts (what the machine offers, a model's size, free memory,
the working size), so it is tested exhaustively on a CPU-only machine by passing the facts in; the few lines
that read them from torch (:func:`probe`, :func:`free_bytes`) are kept thin.

- **Devices**: ``auto`` (CUDA if torch sees one, else Apple ``mps``, else the CPU), ``cpu``, ``cuda``,
  ``cuda:N``, ``mps``. Asking for one that is not there is a :class:`DeviceError` naming it.
- **Dtypes**: ``auto`` (float16 on CUDA/MPS, float32 on the CPU), ``float32``, ``float16``, ``bfloat16``.
  Generators stay on the CPU whatever the device, so a seed means the same noise everywhere (diffusers'
  convention); the CPU in float32 is exactly the path Gouache always ran (OpenVINO, batch invariance).
- **Memory strategy** (:class:`MemoryStrategy`; "plan" is taken: it means the catalog's sampling plan):
  ``offload`` (accelerate's model CPU offload: one component on the GPU at a time), ``attention_slicing``
  and ``vae_tiling`` (decode large latents tile by tile). A catalog entry lists the ones it wants, or leaves
  ``memory = "auto"``: then they are chosen from the model's size, the device's free memory and the size of
  each decode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

#: Values of a catalog entry's ``dtype`` key and of ``GOUACHE_DTYPE``.
DTYPES = ("auto", "float32", "float16", "bfloat16")
#: The memory-saving measures a catalog entry's ``memory`` list may name.
MEMORY_MEASURES = ("offload", "attention_slicing", "vae_tiling")
#: Under ``memory = "auto"``, a decode whose working size has an edge above this is tiled: a 3840x2160 decode
#: then needs less memory than an untiled 2048x2048 one (docs/design-notes.md).
TILE_ABOVE_PX = 2048
#: Under ``memory = "auto"`` on an accelerator: weights above this share of the free memory slice attention
#: (the activations need the rest) ...
SLICE_ABOVE = 0.5
#: ... and weights above this share are offloaded (they would not fit beside the activations at all).
OFFLOAD_ABOVE = 0.8

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class DeviceError(ValueError):
    """A device or dtype that is malformed or not on this machine; the message names it and the choices."""


@dataclass(frozen=True)
class Accelerators:
    """What the machine offers besides its CPU (read by :func:`probe`; passed in by tests)."""

    cuda_devices: int = 0
    mps: bool = False


def probe() -> Accelerators:
    """The accelerators torch sees on this machine."""
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    backend = getattr(torch.backends, "mps", None)
    mps = bool(backend is not None and backend.is_available())
    return Accelerators(cuda_devices=cuda, mps=mps)


def parse_device(text: str) -> str:
    """The canonical spelling of a device choice (``auto``, ``cpu``, ``mps``, ``cuda``, ``cuda:N``)."""
    raw = str(text).strip().lower()
    match = _DEVICE.match(raw)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise DeviceError(f"Unknown device {text!r}: use auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps.")
    return raw


def resolve_device(text: str, available: Accelerators) -> str:
    """The device to run on: ``cpu``, ``cuda:N`` or ``mps``. ``auto`` takes the first CUDA device, else MPS,
    else the CPU; asking for an accelerator that is not there raises :class:`DeviceError`."""
    choice = parse_device(text)
    if choice == "auto":
        if available.cuda_devices:
            return "cuda:0"
        return "mps" if available.mps else "cpu"
    if choice == "cpu":
        return "cpu"
    if choice == "mps":
        if not available.mps:
            raise DeviceError(f"Device {text!r} is not available: torch sees no Apple MPS device here.")
        return "mps"
    index = int(choice.partition(":")[2] or 0)
    if available.cuda_devices == 0:
        raise DeviceError(
            f"Device {text!r} is not available: torch sees no CUDA device here "
            f"(torch {torch.__version__}, built {'with' if torch.version.cuda else 'without'} CUDA)."
        )
    if index >= available.cuda_devices:
        raise DeviceError(
            f"Device {text!r} is not available: torch sees {available.cuda_devices} CUDA device(s), "
            f"cuda:0 to cuda:{available.cuda_devices - 1}."
        )
    return f"cuda:{index}"


def parse_dtype(text: str) -> str:
    """The canonical spelling of a dtype choice (one of :data:`DTYPES`)."""
    raw = str(text).strip().lower()
    if raw not in DTYPES:
        raise DeviceError(f"Unknown dtype {text!r}: use {', '.join(DTYPES)}.")
    return raw


def resolve_dtype(text: str, device: str) -> torch.dtype:
    """The dtype weights are loaded in on `device` (a resolved device): ``auto`` is float16 on an
    accelerator, float32 on the CPU."""
    choice = parse_dtype(text)
    if choice == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    return _TORCH_DTYPES[choice]


def dtype_name(dtype: torch.dtype) -> str:
    """``float32``, ``float16`` or ``bfloat16``: the spelling the catalog and the API use."""
    return str(dtype).removeprefix("torch.")


def is_cpu(device: str) -> bool:
    return device == "cpu"


def runs_on_cpu(pipeline: object) -> bool:
    """Whether a loaded pipeline computes on the CPU (an offloaded one computes on its accelerator, though
    its weights rest in main memory): where OpenVINO and the batch-invariance patches apply."""
    try:
        device = getattr(pipeline, "_execution_device", None) or getattr(pipeline, "device", None)
    except Exception:  # a pipeline without torch modules has no device: it computes nowhere else
        return True
    return device is None or torch.device(device).type == "cpu"


def parse_memory(value: object) -> str | tuple[str, ...]:
    """A catalog entry's ``memory`` value: ``"auto"`` or a list of :data:`MEMORY_MEASURES` (empty: none)."""
    if value == "auto":
        return "auto"
    if isinstance(value, Sequence) and not isinstance(value, str):
        names = tuple(str(v) for v in value)
        unknown = [n for n in names if n not in MEMORY_MEASURES]
        if not unknown:
            return tuple(m for m in MEMORY_MEASURES if m in names)
    raise DeviceError(f'memory must be "auto" or a list of {", ".join(MEMORY_MEASURES)}, not {value!r}')


@dataclass(frozen=True)
class MemoryStrategy:
    """The memory-saving measures a loaded model uses. ``offload`` and ``attention_slicing`` are set when it
    loads; VAE tiling is decided per decode (:meth:`tiles`): always, never, or above ``tile_above_px``."""

    offload: bool = False
    attention_slicing: bool = False
    #: A decode is tiled when an edge of its working size is above this (0: always; None: never).
    tile_above_px: int | None = TILE_ABOVE_PX

    def tiles(self, width: int, height: int) -> bool:
        return self.tile_above_px is not None and max(width, height) > self.tile_above_px

    def names(self, width: int, height: int) -> tuple[str, ...]:
        """The measures one render at this working size uses, as recorded with the request."""
        used = {
            "offload": self.offload,
            "attention_slicing": self.attention_slicing,
            "vae_tiling": self.tiles(width, height),
        }
        return tuple(name for name in MEMORY_MEASURES if used[name])

    def describe(self) -> dict[str, object]:
        """What `/health` and `/v1/models/{id}` show."""
        tiling = {None: "never", 0: "always"}.get(self.tile_above_px, f"above {self.tile_above_px} px")
        return {"offload": self.offload, "attention_slicing": self.attention_slicing, "vae_tiling": tiling}


def choose_memory(
    requested: str | tuple[str, ...], device: str, model_bytes: int, free_bytes: int | None
) -> MemoryStrategy:
    """The strategy for a model about to load on `device` (resolved).

    A list is taken as asked, except that ``offload`` needs an accelerator to offload *from* (on the CPU the
    weights are already in main memory), so it is dropped there. ``"auto"``: on the CPU, nothing but tiling
    of decodes above :data:`TILE_ABOVE_PX` (the CPU path stays as it always was); on an accelerator, also
    attention slicing when the weights take more than :data:`SLICE_ABOVE` of the free memory, and offload
    (with slicing) above :data:`OFFLOAD_ABOVE`. `free_bytes` None is unknown (MPS): nothing is offloaded."""
    accelerator = not is_cpu(device)
    if requested != "auto":
        return MemoryStrategy(
            offload="offload" in requested and accelerator,
            attention_slicing="attention_slicing" in requested,
            tile_above_px=0 if "vae_tiling" in requested else None,
        )
    if not accelerator or free_bytes is None:
        return MemoryStrategy()
    share = model_bytes / max(1, free_bytes)
    return MemoryStrategy(offload=share > OFFLOAD_ABOVE, attention_slicing=share > SLICE_ABOVE)


def free_bytes(device: str) -> int | None:
    """Free memory on an accelerator (None on the CPU and MPS, where the model budget is main memory)."""
    if not device.startswith("cuda"):
        return None
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def weight_bytes(float32_bytes: int, dtype: torch.dtype) -> int:
    """A model's size in `dtype`, from its size in float32."""
    return float32_bytes * torch.empty((), dtype=dtype).element_size() // 4
