"""The model catalog: API model names -> diffusers pipeline directories, their family and sampling plans.

The shipped `catalog.toml` is merged with the pulled models' catalog (`gouache pull`, see `pulled.py`) and an
optional user file. A model entry looks like::

    [models.my-sdxl]
    path = "/models/sdxl-base"      # a diffusers pipeline directory ("builtin:NAME" = shipped package data),
                                    # or a single-file checkpoint (.safetensors/.ckpt, see engine.single_file)
    family = "sdxl"                 # optional: read from model_index.json (or a checkpoint's keys)
    config = "/models/sdxl-config"  # single files only, optional: a diffusers folder giving component configs
                                    # and tokenizers (default: the published architecture's configs, shipped)
    resolution = 1024               # working resolution (side of the square of the same area)
    aliases = ["sdxl"]
    upscaler = "lanczos"            # or "flat": crisp edges for flat-colour artwork (gouache-mini)
    fallback = "gouache-mini"       # optional: retried once on this model if this one fails to load or run
    backend = "openvino"            # optional: "pytorch", "openvino" or "auto", over GOUACHE_BACKEND
    loras = [{ path = "/loras/ink.safetensors", name = "ink", scale = 0.8 }]
                                    # optional LoRA adapters (see engine.lora); `name` defaults to the
                                    # file's stem, `scale` (the default when a request names none) to 1.0
    device = "cuda:1"               # optional: "auto", "cpu", "cuda", "cuda:N", "mps", over GOUACHE_DEVICE
    dtype = "float16"               # optional: "auto", "float32", "float16", "bfloat16", over GOUACHE_DTYPE
    memory = ["offload"]            # optional: "auto" (default) or a list of "offload", "attention_slicing",
                                    # "vae_tiling" (see engine.devices)
    compile = true                  # optional: torch.compile the denoiser (GPUs only)
    [models.my-sdxl.plans.low]
    steps = 8
    guidance = 5.0
    scheduler = "dpm++"             # or "default", "euler", "euler_a", "ddim", "unipc"

Plans left out fall back to the family's defaults, so `path` alone is a valid entry.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gouache.engine.devices import DeviceError, parse_device, parse_dtype, parse_memory
from gouache.engine.lora import LoraError, LoraSpec, specs_from_entry
from gouache.engine.upscale import UPSCALERS

BACKENDS = ("auto", "pytorch", "openvino")
QUALITIES = ("low", "medium", "high", "xhigh", "max")
SCHEDULERS = ("default", "ddim", "dpm++", "euler", "euler_a", "unipc")


class CatalogError(ValueError):
    """The catalog file or a model directory is not usable; the message names the file or path and the fix."""


@dataclass(frozen=True)
class SamplingPlan:
    """How one quality tier is rendered: denoising steps, guidance, scheduler and working resolution."""

    steps: int
    guidance: float
    scheduler: str = "default"
    resolution: int | None = None


@dataclass(frozen=True)
class FamilyTraits:
    """What differs between model families, as data rather than branches."""

    resolution: int
    multiple: int
    plans: Mapping[str, SamplingPlan]
    #: Whether classifier-free guidance (and so a negative prompt) applies.
    cfg: bool = True


def _plans(low: tuple[int, float], medium: tuple[int, float], high: tuple[int, float], sched: str) -> dict:
    return {
        "low": SamplingPlan(low[0], low[1], sched),
        "medium": SamplingPlan(medium[0], medium[1], sched),
        "high": SamplingPlan(high[0], high[1], sched),
    }


FAMILIES: dict[str, FamilyTraits] = {
    "sd1": FamilyTraits(512, 8, _plans((10, 6.0), (20, 7.0), (30, 7.5), "dpm++")),
    "sd2": FamilyTraits(768, 8, _plans((10, 6.0), (20, 7.0), (30, 7.5), "dpm++")),
    "sdxl": FamilyTraits(1024, 8, _plans((10, 5.0), (20, 6.0), (30, 7.0), "dpm++")),
    "sd3": FamilyTraits(1024, 16, _plans((12, 5.0), (24, 6.0), (36, 7.0), "default")),
    "flux": FamilyTraits(1024, 16, _plans((4, 3.5), (20, 3.5), (30, 3.5), "default"), cfg=False),
}

#: diffusers pipeline class name -> family.
PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd1",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
    "FluxPipeline": "flux",
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path
    family: str
    resolution: int
    multiple: int
    plans: Mapping[str, SamplingPlan]
    aliases: tuple[str, ...] = ()
    description: str = ""
    cfg: bool = True
    #: How the finish stage enlarges working-size renders: "lanczos" or "flat" (crisp edges for flat artwork).
    upscaler: str = "lanczos"
    #: Catalog name of the model an engine failure of this one is retried on, once.
    fallback: str | None = None
    #: Denoiser backend for this model ("pytorch", "openvino", "auto"); None follows GOUACHE_BACKEND.
    backend: str | None = None
    #: For a single-file checkpoint: a diffusers folder with component configs and tokenizers (None: shipped).
    config: Path | None = None
    #: LoRA adapters loaded with the model and switched per request (see gouache.engine.lora).
    loras: tuple[LoraSpec, ...] = ()
    #: Device and dtype choices (see gouache.engine.devices); None follows GOUACHE_DEVICE / GOUACHE_DTYPE.
    device: str | None = None
    dtype: str | None = None
    #: Memory-saving measures: "auto" (chosen from sizes and free memory) or the ones listed.
    memory: str | tuple[str, ...] = "auto"
    #: torch.compile the denoiser (accelerators only; OpenVINO is the CPU's optimised path).
    compile: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def qualities(self) -> tuple[str, ...]:
        return tuple(q for q in QUALITIES if q in self.plans)

    def plan(self, quality: str) -> SamplingPlan:
        return self.plans[quality]


def builtin_path(name: str) -> Path:
    """Directory of a model shipped as package data (`gouache/mini/weights/NAME`)."""
    return Path(str(resources.files("gouache.mini").joinpath("weights", name)))


def _resolve_path(raw: str, base: Path | None) -> Path:
    if raw.startswith("builtin:"):
        return builtin_path(raw.removeprefix("builtin:"))
    path = Path(raw).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def detect_family(path: Path) -> str:
    """Read a diffusers directory's `model_index.json` to find its family; SD 2.x is told by v-prediction."""
    index = path / "model_index.json"
    if not path.is_dir():
        raise CatalogError(
            f"Model directory {path} does not exist. Point the catalog at a diffusers pipeline folder."
        )
    if not index.is_file():
        raise CatalogError(f"{path} is not a diffusers pipeline directory: {index} is missing.")
    try:
        cls = json.loads(index.read_text())["_class_name"]
    except (ValueError, KeyError) as exc:
        raise CatalogError(f"{index} is not a valid model_index.json: {exc}") from exc
    family = PIPELINE_FAMILIES.get(cls)
    if family is None:
        custom = _custom_family(cls)
        if custom is None:
            known = ", ".join(sorted(PIPELINE_FAMILIES))
            raise CatalogError(f"{path}: pipeline class {cls} is not supported (supported: {known}).")
        return custom
    if family == "sd1":
        sched = path / "scheduler" / "scheduler_config.json"
        if sched.is_file() and json.loads(sched.read_text()).get("prediction_type") == "v_prediction":
            return "sd2"
    return family


def _custom_family(cls: str) -> str | None:
    """Families registered by Gouache's own pipelines (the embedded model) live beside the standard ones."""
    return "sd1" if cls in ("GouacheMiniPipeline",) else None


def _plan_from(raw: Mapping[str, Any], where: str) -> SamplingPlan:
    unknown = set(raw) - {"steps", "guidance", "scheduler", "resolution"}
    if unknown:
        raise CatalogError(f"{where}: unknown plan keys {sorted(unknown)}")
    try:
        plan = SamplingPlan(
            steps=int(raw["steps"]),
            guidance=float(raw.get("guidance", 1.0)),
            scheduler=str(raw.get("scheduler", "default")),
            resolution=int(raw["resolution"]) if "resolution" in raw else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"{where}: a plan needs integer 'steps' and numeric 'guidance' ({exc})") from exc
    if plan.steps < 1 or plan.steps > 500:
        raise CatalogError(f"{where}: steps must be within 1-500")
    if plan.scheduler not in SCHEDULERS:
        raise CatalogError(f"{where}: scheduler must be one of {', '.join(SCHEDULERS)}")
    return plan


def spec_from_entry(name: str, entry: Mapping[str, Any], *, base: Path | None, source: str) -> ModelSpec:
    where = f"{source} [models.{name}]"
    if "path" not in entry:
        raise CatalogError(f"{where}: 'path' is required")
    path = _resolve_path(str(entry["path"]), base)
    config = _resolve_path(str(entry["config"]), base) if "config" in entry else None
    family = entry.get("family")
    from gouache.engine.single_file import detect_file_family, is_single_file

    if is_single_file(path):
        if config is not None and not config.is_dir():
            raise CatalogError(
                f"{where}: config folder {config} does not exist (a diffusers pipeline folder)."
            )
        if family is None:
            family = detect_file_family(path)
    elif config is not None:
        raise CatalogError(
            f"{where}: 'config' applies only to a single-file checkpoint path (.safetensors/.ckpt)"
        )
    elif family is None:
        family = detect_family(path)
    if family not in FAMILIES:
        raise CatalogError(f"{where}: family must be one of {', '.join(FAMILIES)}")
    traits = FAMILIES[family]
    plans = dict(traits.plans)
    for quality, raw in dict(entry.get("plans", {})).items():
        if quality not in QUALITIES:
            raise CatalogError(
                f"{where}: quality tier must be one of {', '.join(QUALITIES)}, not {quality!r}"
            )
        plans[quality] = _plan_from(raw, f"{where} plans.{quality}")
    upscaler = str(entry.get("upscaler", "lanczos"))
    if upscaler not in UPSCALERS:
        raise CatalogError(f"{where}: upscaler must be one of {', '.join(UPSCALERS)}")
    fallback = entry.get("fallback")
    if fallback is not None and (not isinstance(fallback, str) or not fallback or fallback == name):
        raise CatalogError(f"{where}: 'fallback' must name another model of the catalog")
    backend = entry.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise CatalogError(f"{where}: backend must be one of {', '.join(BACKENDS)}")
    try:
        loras = specs_from_entry(entry["loras"], base, where) if "loras" in entry else ()
    except LoraError as exc:
        raise CatalogError(str(exc)) from exc
    placement = _placement(entry, where)
    known = {
        "loras",
        "backend",
        "device",
        "dtype",
        "memory",
        "compile",
        "config",
        "path",
        "family",
        "resolution",
        "multiple",
        "plans",
        "aliases",
        "description",
        "cfg",
        "upscaler",
        "fallback",
    }
    return ModelSpec(
        name=name,
        path=path,
        family=family,
        resolution=int(entry.get("resolution", traits.resolution)),
        multiple=int(entry.get("multiple", traits.multiple)),
        plans=plans,
        aliases=tuple(entry.get("aliases", ())),
        description=str(entry.get("description", "")),
        cfg=bool(entry.get("cfg", traits.cfg)),
        upscaler=upscaler,
        fallback=fallback,
        backend=backend,
        config=config,
        loras=loras,
        **placement,
        extra={k: v for k, v in entry.items() if k not in known},
    )


def _placement(entry: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An entry's `device`, `dtype`, `memory` and `compile` keys, checked; errors name the entry and key."""
    out: dict[str, Any] = {}
    for key, parse in (("device", parse_device), ("dtype", parse_dtype), ("memory", parse_memory)):
        if key in entry:
            try:
                out[key] = parse(entry[key])
            except DeviceError as exc:
                raise CatalogError(f"{where}: {key}: {exc}") from None
    if "compile" in entry:
        if not isinstance(entry["compile"], bool):
            raise CatalogError(f"{where}: compile must be true or false, not {entry['compile']!r}")
        out["compile"] = entry["compile"]
    return out


class Catalog:
    """Model specs by API name, with aliases."""

    def __init__(self, specs: Iterable[ModelSpec]) -> None:
        self._specs: dict[str, ModelSpec] = {}
        self._aliases: dict[str, str] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ModelSpec) -> None:
        self._specs[spec.name] = spec
        for alias in spec.aliases:
            self._aliases[alias] = spec.name

    def alias(self, alias: str, target: str) -> None:
        if target not in self._specs:
            raise CatalogError(f"Alias {alias!r} points at {target!r}, which is not in the catalog.")
        if alias not in self._specs:
            self._aliases[alias] = target

    def resolve(self, name: str) -> ModelSpec | None:
        """The spec served under `name` (a model name or an alias), or None."""
        if name in self._specs:
            return self._specs[name]
        target = self._aliases.get(name)
        return self._specs.get(target) if target else None

    def names(self) -> list[str]:
        """Every API name: models first, then aliases."""
        return [*self._specs, *(a for a in self._aliases if a not in self._specs)]

    def models(self) -> list[ModelSpec]:
        return list(self._specs.values())

    @classmethod
    def load(cls, user_file: Path | None = None, pulled_file: Path | None = None) -> Catalog:
        """The shipped catalog, then the pulled models' catalog (`gouache pull`; skipped while it does not
        exist), then the user's file on top: later layers replace entries of the same name."""
        shipped = resources.files("gouache.engine").joinpath("catalog.toml").read_text()
        entries = _entries(tomllib.loads(shipped), "catalog.toml")
        specs = {
            name: spec_from_entry(name, e, base=None, source="catalog.toml") for name, e in entries.items()
        }
        layers: list[Path] = []
        if pulled_file is not None and Path(pulled_file).expanduser().is_file():
            layers.append(Path(pulled_file).expanduser())
        if user_file is not None:
            user_file = Path(user_file).expanduser()
            if not user_file.is_file():
                raise CatalogError(f"Catalog file {user_file} does not exist (GOUACHE_CATALOG_FILE).")
            layers.append(user_file)
        for layer in layers:
            for name, entry in read_entries(layer).items():
                specs[name] = spec_from_entry(name, entry, base=layer.parent, source=str(layer))
        catalog = cls(specs.values())
        for spec in specs.values():
            if spec.fallback is not None and catalog.resolve(spec.fallback) is None:
                raise CatalogError(
                    f"[models.{spec.name}]: fallback {spec.fallback!r} is not a model of the catalog "
                    f"({', '.join(catalog.names())})."
                )
        return catalog


def read_entries(path: Path) -> dict[str, Mapping[str, Any]]:
    """The `[models.*]` tables of a catalog file, by name."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path} is not valid TOML: {exc}") from exc
    return _entries(data, str(path))


def _entries(data: Mapping[str, Any], source: str) -> dict[str, Mapping[str, Any]]:
    models = data.get("models", {})
    if not isinstance(models, Mapping):
        raise CatalogError(f"{source}: [models] must be a table")
    return {str(k): v for k, v in models.items()}


def spec_for_directory(path: Path, name: str | None = None) -> ModelSpec:
    """A spec for a bare diffusers directory (e.g. `gouache serve --model /models/sdxl`)."""
    path = Path(path).expanduser().resolve()
    return spec_from_entry(name or path.name, {"path": str(path)}, base=None, source=str(path))
