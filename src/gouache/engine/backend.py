"""The optimised CPU backend: a pipeline's UNet runs as an OpenVINO model, everything else stays PyTorch.

OpenVINO won the measurement against ONNX Runtime and ``torch.compile`` (docs/design-notes.md). Only the
denoiser is swapped -- it is nearly all of a render's time -- and it is swapped by replacing the UNet's
``forward`` on the instance, so the module keeps its class, ``config``, ``dtype``, ``device`` and weights:
every pipeline built on it (text-to-image, img2img and inpainting via ``from_pipe``, callbacks, previews)
keeps working unchanged.

The UNet is converted once per model (TorchScript trace -> OpenVINO IR with dynamic shapes) and the IR is
written under the cache directory, keyed by the model's weight files and the library versions, so a restart
reads it instead of converting again. Each input shape (batch, latent size, prompt length) is compiled
statically -- fastest on OpenVINO's CPU plugin -- and kept in memory; OpenVINO's own ``CACHE_DIR`` keeps the
compiled blobs on disk. Calls the IR cannot express (ControlNet residuals, IP-Adapter embeddings, attention
masks, LoRA scales...) run the original PyTorch forward, and a model whose denoiser is not a
``UNet2DConditionModel`` (SD3's and FLUX's transformers) or fails to convert stays on PyTorch, logged once.

Once OpenVINO has compiled the UNet, its PyTorch weights are needed only by those fallback calls, so they move
to a file beside the IR that is mapped into memory (``torch.load(mmap=True)``): they cost no resident memory
until such a call reads them, and then only the pages it reads (design note 33).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gouache.engine import catalog
from gouache.engine import openvino_build as build
from gouache.engine.devices import runs_on_cpu
from gouache.engine.lora import has_adapters

log = logging.getLogger(__name__)

#: Values of ``GOUACHE_BACKEND`` and of a catalog entry's ``backend`` key.
BACKENDS = catalog.BACKENDS
#: Compiled input shapes kept per model (each costs about three times the UNet's weights in memory).
MAX_COMPILED_SHAPES = 3
#: OpenVINO inference precisions offered (``bf16`` is faster where the CPU has AVX512-BF16/AMX, less exact).
PRECISIONS = ("f32", "bf16")

#: UNet keyword arguments the IR takes as inputs; any other non-empty one sends the call to PyTorch.
_ADDED_KEYS = build.ADDED_KEYS


@dataclass(frozen=True)
class BackendOptions:
    """How models are run: the ``GOUACHE_BACKEND`` choice, OpenVINO's threads and precision, the IR cache."""

    backend: str = "pytorch"
    threads: int | None = None
    precision: str = "f32"
    cache_dir: Path | None = None


def resolve(options: BackendOptions, override: str | None) -> str:
    """The backend to try for one model: its catalog ``backend`` key, else the setting; ``auto`` is OpenVINO
    (it falls back to PyTorch by itself where it cannot run a model)."""
    choice = override or options.backend
    if choice not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {choice!r}")
    return "pytorch" if choice == "pytorch" else "openvino"


def apply_backend(pipeline: Any, options: BackendOptions, *, override: str | None, key: str) -> str:
    """Put the pipeline's denoiser on the chosen backend; returns the backend it runs on ("pytorch" or
    "openvino"). ``key`` names the model (for the IR cache and the logs)."""
    if resolve(options, override) == "pytorch":
        return "pytorch"
    reason = unsupported_reason(pipeline)
    if reason is not None:
        log.info("model %s stays on PyTorch: %s", key, reason)
        return "pytorch"
    try:
        import openvino  # noqa: F401
    except ImportError as exc:  # pragma: no cover - openvino is a dependency
        log.warning("model %s stays on PyTorch: openvino cannot be imported (%s)", key, exc)
        return "pytorch"
    OpenVINOUNet(pipeline.unet, options, key).install()
    return "openvino"


def unsupported_reason(pipeline: Any) -> str | None:
    """Why the pipeline's denoiser cannot run on OpenVINO, or None when it can."""
    from diffusers import UNet2DConditionModel

    unet: Any = getattr(pipeline, "unet", None)
    if unet is None:
        denoiser = getattr(pipeline, "transformer", None)
        name = type(denoiser).__name__ if denoiser is not None else "no denoiser"
        return f"its denoiser ({name}) is not a UNet2DConditionModel"
    if not isinstance(unet, UNet2DConditionModel):
        return f"its UNet is a {type(unet).__name__}, not a UNet2DConditionModel"
    if has_adapters(unet):
        return "it has LoRA adapters, which are switched per request on the PyTorch UNet"
    if not runs_on_cpu(pipeline):
        return "it runs on an accelerator; OpenVINO is the CPU's backend"
    config: Any = getattr(unet, "config", {})
    dtype = getattr(unet, "dtype", None)
    if dtype != torch.float32:
        return f"its UNet is in {dtype}, not float32"
    if config.get("time_cond_proj_dim") is not None:
        return "its UNet takes a guidance embedding (timestep_cond)"
    if config.get("class_embed_type") is not None or config.get("num_class_embeds"):
        return "its UNet takes class labels"
    if config.get("addition_embed_type") not in (None, "text", "text_time"):
        return f"its UNet's addition_embed_type {config.get('addition_embed_type')!r} is not supported"
    return None


def backend_of(pipeline: Any) -> str:
    """The backend a loaded pipeline's denoiser runs on."""
    unet = getattr(pipeline, "unet", None)
    forward = getattr(unet, "__dict__", {}).get("forward") if unet is not None else None
    return "openvino" if isinstance(forward, OpenVINOUNet) and not forward.failed else "pytorch"


class OpenVINOUNet:
    """Stands in for a ``UNet2DConditionModel.forward``: OpenVINO for the calls it covers, the original
    forward for the rest (and for every call once conversion has failed)."""

    def __init__(self, unet: Any, options: BackendOptions, key: str) -> None:
        self.unet = unet
        self.original = unet.forward
        self.options = options
        self.key = key
        self.failed = False
        #: Infer requests by input shapes, least recently used first (``()``: the dynamic-shape one).
        self._compiled: OrderedDict[tuple[tuple[int, ...], ...], Any] = OrderedDict()
        #: Shapes whose trial compilation passed (a recompilation after eviction skips the child).
        self._probed: dict[tuple[tuple[int, ...], ...], bool] = {}
        self._ir_paths: dict[bool, Path] = {}
        self._lock = threading.Lock()
        self._weights_mapped = False
        self._warned: set[str] = set()

    def install(self) -> None:
        self.unet.forward = self

    def uninstall(self) -> None:
        self.unet.__dict__.pop("forward", None)

    def __call__(
        self,
        sample: torch.Tensor,
        timestep: Any,
        encoder_hidden_states: torch.Tensor,
        class_labels: Any = None,
        timestep_cond: Any = None,
        attention_mask: Any = None,
        cross_attention_kwargs: Any = None,
        added_cond_kwargs: dict[str, Any] | None = None,
        down_block_additional_residuals: Any = None,
        mid_block_additional_residual: Any = None,
        down_intrablock_additional_residuals: Any = None,
        encoder_attention_mask: Any = None,
        return_dict: bool = True,
    ) -> Any:
        extras = {
            "class_labels": class_labels,
            "timestep_cond": timestep_cond,
            "attention_mask": attention_mask,
            "cross_attention_kwargs": cross_attention_kwargs or None,
            "down_block_additional_residuals": down_block_additional_residuals,
            "mid_block_additional_residual": mid_block_additional_residual,
            "down_intrablock_additional_residuals": down_intrablock_additional_residuals,
            "encoder_attention_mask": encoder_attention_mask,
        }
        unusual = [name for name, value in extras.items() if value is not None]
        added = dict(added_cond_kwargs or {})
        if set(added) - set(_ADDED_KEYS) or (added and set(added) != set(_ADDED_KEYS)):
            unusual.append("added_cond_kwargs[" + ",".join(sorted(added)) + "]")
        if self.failed or unusual or (torch.is_grad_enabled() and sample.requires_grad):
            if unusual:
                self._warn_once(f"{self.key}: UNet call with {', '.join(unusual)} runs on PyTorch")
            return self.original(
                sample,
                timestep,
                encoder_hidden_states,
                added_cond_kwargs=added_cond_kwargs,
                return_dict=return_dict,
                **extras,
            )
        # A UNet that widens its own input (gouache-mini's layout map) is converted without that step.
        widen = getattr(self.unet, "layout_input", None)
        wide = widen(sample, encoder_hidden_states) if widen is not None else sample
        inputs = self._inputs(wide, timestep, encoder_hidden_states, added)
        try:
            request = self._request(inputs, bool(added))
            with self._lock:
                result = request.infer([t.numpy() for t in inputs], share_inputs=True)
                out = torch.from_numpy(np.array(result[0], copy=True))
        except Exception as exc:  # OpenVINO raises many types; the API must keep working
            self.failed = True
            log.warning("model %s stays on PyTorch: %s", self.key, exc)
            return self.original(
                sample, timestep, encoder_hidden_states, added_cond_kwargs=added_cond_kwargs,
                return_dict=return_dict, **extras,
            )  # fmt: skip
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=out)
        return (out,)

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.info(message)

    @staticmethod
    def _inputs(
        sample: torch.Tensor, timestep: Any, hidden: torch.Tensor, added: dict[str, Any]
    ) -> list[torch.Tensor]:
        batch = sample.shape[0]
        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1)
        t = t.expand(batch) if t.numel() == 1 else t
        tensors = [sample, t, hidden, *(added[k] for k in _ADDED_KEYS if added)]
        return [x.detach().to(torch.float32).contiguous() for x in tensors]

    def _request(self, inputs: list[torch.Tensor], added: bool) -> Any:
        shapes = tuple(tuple(x.shape) for x in inputs)
        with self._lock:
            key = shapes if shapes in self._compiled else ()
            request = self._compiled.get(key)
            if request is None:
                request, dynamic = self._compile(inputs, added)
                key = () if dynamic else shapes
                self._compiled[key] = request
                # Each compiled shape holds its own weights and buffers (~3x the UNet's size): keep a few.
                while len(self._compiled) > MAX_COMPILED_SHAPES:
                    evicted, _ = self._compiled.popitem(last=False)
                    log.info("model %s: OpenVINO compilation for %s released", self.key, evicted)
            self._compiled.move_to_end(key)
            return request

    def _compile(self, inputs: list[torch.Tensor], added: bool) -> tuple[Any, bool]:
        """An infer request for these shapes, and whether it is the dynamic-shape one (used for every shape).
        Each compilation is first tried in a child process: OpenVINO's CPU plugin can crash outright on some
        graphs, which must not take the server down. Static shapes are tried first, then dynamic ones."""
        import openvino as ov

        ir = self._ir(inputs, added)
        config = compile_config(self.options)
        cache_dir = self._cache_dir()
        shapes = [list(x.shape) for x in inputs]
        # A model whose static compilation failed once goes straight to dynamic shapes (also after a restart).
        dynamic_only = ir.with_suffix(".dynamic")
        key = tuple(tuple(shape) for shape in shapes)
        for dynamic in (False, True) if not dynamic_only.is_file() else (True,):
            if self._probed.get(key) is dynamic:
                break
            failure = build.run_child(
                ["probe", str(ir), json.dumps(shapes), json.dumps(config), str(cache_dir), str(int(dynamic))]
            )
            if failure is None:
                self._probed[key] = dynamic
                break
            log.info("model %s: OpenVINO %s compilation failed: %s", self.key, _mode(dynamic), failure)
            dynamic_only.write_text(f"{failure}\n")
        else:
            _mark_failed(ir, "compilation failed in both static and dynamic mode")
            raise BackendUnavailable("OpenVINO could not compile the UNet (static or dynamic shapes)")
        model = _core(cache_dir).read_model(str(ir))
        if not dynamic:
            model.reshape(
                {port: ov.PartialShape(shape) for port, shape in zip(model.inputs, shapes, strict=True)}
            )
        compiled = _core(cache_dir).compile_model(model, "CPU", config)
        log.info("model %s: OpenVINO compiled (%s) for shapes %s", self.key, _mode(dynamic), shapes)
        self._map_weights(ir)
        return compiled.create_infer_request(), dynamic

    def _map_weights(self, ir: Path) -> None:
        """Swap the UNet's PyTorch weights for the same tensors mapped from a file beside the IR (written once
        per IR): OpenVINO holds its own copy, and only the calls that fall back to PyTorch read these."""
        if self._weights_mapped:
            return
        path = ir.with_suffix(".torch.pt")
        if not path.is_file():
            partial = path.with_suffix(".partial")
            torch.save(self.unet.state_dict(), partial)
            partial.replace(path)
        self.unet.load_state_dict(torch.load(path, mmap=True, weights_only=True), assign=True)
        self._weights_mapped = True
        log.info("model %s: PyTorch UNet weights now mapped from %s", self.key, path)

    def _ir(self, inputs: list[torch.Tensor], added: bool) -> Path:
        """The converted (dynamic-shape) IR on disk, converted now in a child process if not there yet."""
        known = self._ir_paths.get(added)
        if known is not None and known.is_file():
            return known
        self._ir_paths[added] = ir = self._new_ir(inputs, added)
        return ir

    def _new_ir(self, inputs: list[torch.Tensor], added: bool) -> Path:
        digest = hashlib.sha256(f"{fingerprint(self.unet)}|{added}|{versions()}".encode()).hexdigest()[:20]
        ir = self._cache_dir() / f"unet-{digest}.xml"
        failed = ir.with_suffix(".failed")
        if failed.is_file():
            raise BackendUnavailable(
                f"an earlier attempt failed ({failed.read_text().strip()}); see {failed}"
            )
        if ir.is_file():
            return ir
        with tempfile.TemporaryDirectory(dir=self._cache_dir(), prefix="convert-") as tmp:
            self.unet.save_pretrained(tmp, safe_serialization=True)
            shapes = [list(x.shape) for x in inputs]
            cls = f"{type(self.unet).__module__}:{type(self.unet).__qualname__}"
            failure = build.run_child(["convert", tmp, str(ir), json.dumps(shapes), cls])
        if failure is not None or not ir.is_file():
            _mark_failed(ir, f"conversion failed: {failure}")
            raise BackendUnavailable(f"OpenVINO could not convert the UNet: {failure}")
        log.info("model %s: OpenVINO IR written to %s", self.key, ir)
        return ir

    def _cache_dir(self) -> Path:
        root = self.options.cache_dir or Path(tempfile.gettempdir()) / "gouache-cache"
        path = Path(root) / "openvino"
        path.mkdir(parents=True, exist_ok=True)
        return path


class BackendUnavailable(RuntimeError):
    """OpenVINO cannot run this model; it stays on PyTorch."""


def _mode(dynamic: bool) -> str:
    return "dynamic shapes" if dynamic else "static shapes"


def _mark_failed(ir: Path, reason: str) -> None:
    """Remember the failure beside the IR (same versions, same key), so a restart does not retry it."""
    ir.with_suffix(".failed").write_text(reason[-2000:] + "\n")


def compile_config(options: BackendOptions) -> dict[str, Any]:
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": options.precision,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        # Workers and the PyTorch parts share the cores: no pinning, no more threads than given.
        "ENABLE_CPU_PINNING": False,
    }
    if options.threads:
        config["INFERENCE_NUM_THREADS"] = options.threads
    return config


_CORES: dict[str, Any] = {}
_CORES_LOCK = threading.Lock()


def _core(cache_dir: Path | None) -> Any:
    """One OpenVINO Core per cache directory (its CACHE_DIR keeps compiled blobs across restarts)."""
    import openvino as ov

    key = str(cache_dir or "")
    with _CORES_LOCK:
        core = _CORES.get(key)
        if core is None:
            core = ov.Core()
            if cache_dir is not None:
                core.set_property({"CACHE_DIR": str(Path(cache_dir) / "blobs")})
            _CORES[key] = core
        return core


def versions() -> str:
    import diffusers
    import openvino as ov

    return f"openvino {ov.__version__}, torch {torch.__version__}, diffusers {diffusers.__version__}"


def fingerprint(module: torch.nn.Module) -> str:
    """A digest of a module's class, config and weights (a strided sample of every tensor: cheap even for
    multi-gigabyte UNets, and any retraining changes it)."""
    digest = hashlib.sha256(type(module).__qualname__.encode())
    config = getattr(module, "config", None)
    if config is not None:
        digest.update(repr(sorted(dict(config).items())).encode())
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // 64)
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(flat[::step].to(torch.float32).numpy().tobytes())
    return digest.hexdigest()
