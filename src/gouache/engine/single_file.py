"""Single-file checkpoints (`.safetensors`/`.ckpt`, original SD/SDXL/SD3/FLUX key layouts), loaded offline.

A catalog entry whose `path` is a file, e.g. ``path = "/models/sd_xl_base_1.0.safetensors"``, is read here:

* the family comes from the tensors' key names (:func:`detect_checkpoint_family`, headers only) unless the
  entry gives ``family = "..."``;
* each component's config comes from the entry's ``config = "/models/sdxl-config"`` folder (a diffusers
  pipeline folder: ``model_index.json`` plus one subfolder per component) where it has that component, else
  from the published architecture's configs shipped in ``gouache/engine/configs/<name>/`` (SD 1.5, SD 2.1
  768-v, SDXL base 1.0, SD3 medium, FLUX.1-dev/schnell). Nothing is fetched from a hub.
* the denoiser and VAE are converted by diffusers' own single-file code (``from_single_file`` with the
  ``config`` folder); the text encoders are taken from the checkpoint by their known prefixes (diffusers
  tells them apart by width, which fails for models whose two encoders are equally wide); FLUX transformers
  are converted here because diffusers' converter assumes FLUX.1's width of 3072.
* a component whose weights the file lacks (FLUX files from BFL hold only the transformer, SD3 files may
  lack T5) is loaded from the ``config`` folder when that folder holds its weights; SD3 runs without T5
  otherwise; anything else is one clear error.

Tokenizers: CLIP's vocabulary ships with the package (``configs/clip-vocab/``, 0.5 MB gzipped, derived from
OpenAI CLIP's BPE file by ``scripts/make_clip_vocab.py``; MIT, see its NOTICE), so the CLIP tokenizers of
every family load with no ``config`` folder, each with its release's settings (``tokenizer_config.json``:
SD 1.x pads with ``<|endoftext|>``, SD 2.x and SDXL's second encoder with ``!``). A ``config`` folder's own
``vocab.json`` + ``merges.txt`` (or ``tokenizer.json``) go first. T5's SentencePiece model has no offline
source here: SD3 runs without T5 unless the file or the ``config`` folder holds it, and FLUX needs
``tokenizer_2/spiece.model`` in its ``config`` folder (a missing one is an error naming the file and where).
"""

from __future__ import annotations

import contextlib
import json
import logging
import zipfile
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from gouache.engine.catalog import PIPELINE_FAMILIES, CatalogError
from gouache.engine.clip_vocab import shipped_clip_tokenizer
from gouache.engine.flux_layout import convert_flux_transformer

log = logging.getLogger(__name__)

#: File suffixes read as single-file checkpoints.
SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")

_UNET = "model.diffusion_model."
_VAE_PREFIXES = ("first_stage_model.", "vae.")

#: Per family: pipeline component -> (layout, key prefix) of each text encoder in the original checkpoints.
TEXT_ENCODERS: dict[str, dict[str, tuple[str, str]]] = {
    "sd1": {"text_encoder": ("clip", "cond_stage_model.transformer.")},
    "sd2": {"text_encoder": ("open_clip", "cond_stage_model.model.")},
    "sdxl": {
        "text_encoder": ("clip", "conditioner.embedders.0.transformer."),
        "text_encoder_2": ("open_clip", "conditioner.embedders.1.model."),
    },
    "sd3": {
        "text_encoder": ("clip", "text_encoders.clip_l.transformer."),
        "text_encoder_2": ("clip", "text_encoders.clip_g.transformer."),
        "text_encoder_3": ("t5", "text_encoders.t5xxl.transformer."),
    },
    "flux": {
        "text_encoder": ("clip", "text_encoders.clip_l.transformer."),
        "text_encoder_2": ("t5", "text_encoders.t5xxl.transformer."),
    },
}

#: What to put in a tokenizer folder, by tokenizer class; any one of the alternatives is enough.
_TOKENIZER_FILES = {
    "CLIPTokenizer": (("vocab.json", "merges.txt"), ("tokenizer.json",)),
    "T5Tokenizer": (("spiece.model",), ("tokenizer.json",)),
    "T5TokenizerFast": (("spiece.model",), ("tokenizer.json",)),
}


# --------------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------------


def is_single_file(path: Path) -> bool:
    """Whether a catalog path names a checkpoint file rather than a diffusers folder."""
    return Path(path).suffix.lower() in SUFFIXES and not Path(path).is_dir()


def detect_checkpoint_family(keys: Iterable[str]) -> str:
    """The model family ("sd1", "sd2", "sdxl", "sd3", "flux") of an original-layout checkpoint, from its
    tensor names alone. Raises ValueError when the keys match no supported family."""
    keys = set(keys)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    def has_any(*prefixes: str) -> bool:
        return any(has(p) for p in prefixes)

    if has_any("double_blocks.", _UNET + "double_blocks.") and has_any("img_in.", _UNET + "img_in."):
        if has_any("single_stream_modulation.", _UNET + "single_stream_modulation."):
            raise ValueError("FLUX.2 checkpoints are not supported (FLUX.1 dev/schnell are)")
        return "flux"
    if has_any("joint_blocks.", _UNET + "joint_blocks."):
        return "sd3"
    if has(_UNET + "input_blocks."):
        if has("conditioner.embedders.1.") or (
            _UNET + "label_emb.0.0.weight" in keys and not has("conditioner.")
        ):
            return "sdxl"
        if has("conditioner.embedders."):
            raise ValueError("SDXL refiner checkpoints are not supported (it only refines; use SDXL base)")
        if has("cond_stage_model.model."):
            return "sd2"
        if has("cond_stage_model.transformer."):
            return "sd1"
        raise ValueError(
            "a UNet without a text encoder: SD 1.x and 2.x cannot be told apart by key names; "
            'give family = "sd1" or "sd2" in the catalog entry'
        )
    raise ValueError(
        "its tensor names match no supported family (SD 1.x, SD 2.x, SDXL, SD3, FLUX.1 in their original "
        "single-file layouts: model.diffusion_model.input_blocks / joint_blocks / double_blocks)"
    )


def checkpoint_keys(path: Path) -> list[str]:
    """Tensor names of a checkpoint, reading only the safetensors header (a `.ckpt` is memory-mapped).
    Raises CatalogError naming the file when it is missing or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"Checkpoint file {path} does not exist.")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                return list(fh.keys())
        return list(_torch_load(path))
    except CatalogError:
        raise
    except Exception as exc:  # safetensors and torch.load raise many types for a bad file
        raise CatalogError(f"{path} is not a readable {path.suffix} checkpoint: {_short(exc)}") from exc


def detect_file_family(path: Path) -> str:
    """The family of the checkpoint file at `path`; CatalogError naming the file otherwise."""
    try:
        return detect_checkpoint_family(checkpoint_keys(path))
    except ValueError as exc:
        if isinstance(exc, CatalogError):
            raise
        raise CatalogError(f"{path}: cannot tell the model family: {exc}.") from exc


def _torch_load(path: Path) -> dict[str, Any]:
    mmap = zipfile.is_zipfile(path)
    data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    while isinstance(data, Mapping) and "state_dict" in data:
        data = data["state_dict"]
    if not isinstance(data, Mapping):
        raise CatalogError(f"{path} holds a {type(data).__name__}, not a state dict of tensors.")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint file (safetensors loaded, `.ckpt` memory-mapped and weights-only)."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        return _torch_load(path)
    except CatalogError:
        raise
    except Exception as exc:
        raise CatalogError(f"{path} is not a readable {path.suffix} checkpoint: {_short(exc)}") from exc


# --------------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------------


def shipped_config_dir(name: str) -> Path:
    """A config folder shipped with the package (`gouache/engine/configs/NAME`)."""
    return Path(str(resources.files("gouache.engine").joinpath("configs", name)))


def shipped_config_name(family: str, keys: Iterable[str]) -> str:
    """The shipped architecture of a `family` checkpoint: FLUX.1-dev has a guidance embedding, schnell not."""
    if family == "flux":
        return "flux-dev" if any("guidance_in." in k for k in keys) else "flux-schnell"
    return family


class _Configs:
    """Component configs: the entry's folder where it has the component, else the shipped architecture."""

    def __init__(self, user: Path | None, shipped: Path) -> None:
        self.user = user
        self.shipped = shipped
        base = user if user is not None and (user / "model_index.json").is_file() else shipped
        self.index_file = base / "model_index.json"
        self.index: dict[str, Any] = json.loads(self.index_file.read_text())

    def folder(self, component: str) -> Path:
        if self.user is not None and (self.user / component).is_dir():
            return self.user
        return self.shipped

    def user_weights(self, component: str) -> bool:
        sub = self.user / component if self.user is not None else None
        return (
            sub is not None
            and sub.is_dir()
            and any(f.suffix in (".safetensors", ".bin") for f in sub.iterdir())
        )


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


class _Missing(Exception):
    """A component's weights are not in the checkpoint."""


def load_single_file(path: Path, family: str | None = None, config: Path | None = None) -> Any:
    """Load a single-file checkpoint into a diffusers pipeline on the CPU in float32, offline.
    Raises ValueError/CatalogError with a message naming the file; the caller wraps it."""
    import diffusers

    path = Path(path)
    keys = checkpoint_keys(path)
    if family is None:
        family = detect_file_family(path)
    if family not in TEXT_ENCODERS:
        raise CatalogError(f"{path}: family {family!r} cannot be loaded from a single file.")
    if config is not None and not Path(config).is_dir():
        raise CatalogError(f"{path}: config folder {config} does not exist.")
    configs = _Configs(
        Path(config) if config is not None else None, shipped_config_dir(shipped_config_name(family, keys))
    )
    cls_name = configs.index.get("_class_name")
    if PIPELINE_FAMILIES.get(str(cls_name), "") != {"sd2": "sd1"}.get(family, family):
        raise CatalogError(
            f"{path} is a {family} checkpoint but {configs.index_file} describes a {cls_name}; "
            "point `config` at a folder of the same family."
        )
    _check_tokenizers(path, configs, keys)
    checkpoint = read_checkpoint(path)
    pipeline_cls = getattr(diffusers, str(cls_name))
    components: dict[str, Any] = {}
    init_kwargs: dict[str, Any] = {}
    for name, value in configs.index.items():
        if name.startswith("_"):
            continue
        if not (isinstance(value, list) and len(value) == 2):
            init_kwargs[name] = value
            continue
        library, class_name = value
        if library is None:
            components[name] = None
            continue
        try:
            components[name] = _component(path, family, configs, checkpoint, name, library, class_name)
        except CatalogError as exc:
            raise CatalogError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from exc
    if family == "sd3" and components.get("text_encoder_3") is None:
        components["tokenizer_3"] = None
    accepted = set(pipeline_cls._get_signature_keys(pipeline_cls)[1]) | set(
        pipeline_cls._get_signature_keys(pipeline_cls)[0]
    )
    pipe = pipeline_cls(
        **{k: v for k, v in components.items() if k in accepted},
        **{k: v for k, v in init_kwargs.items() if k in accepted},
    )
    _own_storage(pipe)
    return pipe


def _own_storage(pipe: Any) -> None:
    """Give every tensor its own freshly allocated storage. Converted checkpoint tensors can be views into
    one buffer at odd offsets, and the CPU kernels pick code paths by alignment: the same weights then give
    results a few ulps apart (measured: 8e-7 on a tiny SD 2 UNet's first step), so a checkpoint would not
    render the bytes its diffusers folder does. One tensor at a time, so the copy costs no more than the
    largest tensor."""
    import torch

    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        for tensor in [*component.parameters(), *component.buffers()]:
            tensor.data = tensor.data.clone()


def _check_tokenizers(path: Path, configs: _Configs, keys: list[str]) -> None:
    for name, value in configs.index.items():
        if not (isinstance(value, list) and len(value) == 2 and value[0] == "transformers"):
            continue
        alternatives = _TOKENIZER_FILES.get(str(value[1]))
        if alternatives is None:
            continue
        folder = configs.folder(name) / name
        if value[1] == "CLIPTokenizer" or _has_vocabulary(folder, alternatives):
            continue  # CLIP's vocabulary ships with the package
        t5_in_file = any(k.startswith("text_encoders.t5xxl.") for k in keys)
        if name == "tokenizer_3" and not t5_in_file and not configs.user_weights("text_encoder_3"):
            continue  # SD3 without T5 needs no T5 tokenizer
        want = " + ".join(alternatives[0])
        where = f"{configs.user}/{name}/" if configs.user is not None else f"<config folder>/{name}/"
        raise CatalogError(
            f"{path}: the {value[1]} vocabulary for `{name}` is missing: Gouache ships CLIP's vocabulary "
            f"only (T5's has no offline source). Put {want} (or tokenizer.json) from this model's diffusers "
            f"release in {where}"
            + ("" if configs.user is not None else ' and set config = "<config folder>" in the catalog entry')
            + "."
        )


def _has_vocabulary(folder: Path, alternatives: tuple[tuple[str, ...], ...]) -> bool:
    return any(all((folder / f).is_file() for f in files) for files in alternatives)


def _component(
    path: Path,
    family: str,
    configs: _Configs,
    checkpoint: dict[str, torch.Tensor],
    name: str,
    library: str,
    class_name: str,
) -> Any:
    import importlib

    cls = getattr(importlib.import_module(library), class_name)
    folder = configs.folder(name)
    is_module = isinstance(cls, type) and issubclass(cls, torch.nn.Module)
    if not is_module:  # schedulers, tokenizers
        if class_name == "CLIPTokenizer" and not _has_vocabulary(folder / name, _TOKENIZER_FILES[class_name]):
            return shipped_clip_tokenizer(folder / name)
        return cls.from_pretrained(str(folder), subfolder=name, local_files_only=True)
    try:
        if name in TEXT_ENCODERS[family]:
            layout, prefix = TEXT_ENCODERS[family][name]
            return _text_encoder(cls, folder, name, checkpoint, layout, prefix, family)
        return _diffusers_model(cls, folder, name, checkpoint)
    except _Missing as exc:
        if name in ("unet", "transformer"):  # the file's reason to be: never taken from elsewhere
            raise CatalogError(f"{path} holds no {family} {name} ({exc}).") from None
        if configs.user_weights(name):
            log.info("%s: %s weights not in the checkpoint; loading them from %s", path, name, configs.user)
            return cls.from_pretrained(
                str(configs.user), subfolder=name, local_files_only=True, torch_dtype=torch.float32
            )
        if family == "sd3" and name == "text_encoder_3":
            log.warning("%s holds no T5 text encoder; SD3 runs without it", path)
            return None
        raise CatalogError(
            f"{path} holds no weights for `{name}` ({exc}). Give config = a diffusers folder of this model "
            f"whose {name}/ holds them (FLUX files from BFL hold only the transformer)."
        ) from None


#: Key prefixes whose presence says a denoiser or VAE is in the checkpoint at all.
_PRESENCE: dict[str, tuple[str, ...]] = {
    "UNet2DConditionModel": (_UNET + "input_blocks.",),
    "AutoencoderKL": _VAE_PREFIXES,
    "SD3Transformer2DModel": ("joint_blocks.", _UNET + "joint_blocks."),
    "FluxTransformer2DModel": ("double_blocks.", _UNET + "double_blocks."),
}


# diffusers' converter per model class (UNet, VAE, SD3 transformer); FLUX is converted here.
def _converter(cls: type) -> Any:
    from diffusers.loaders import single_file_utils as sfu

    by_name = {
        "UNet2DConditionModel": sfu.convert_ldm_unet_checkpoint,
        "AutoencoderKL": sfu.convert_ldm_vae_checkpoint,
        "SD3Transformer2DModel": sfu.convert_sd3_transformer_checkpoint_to_diffusers,
        "FluxTransformer2DModel": convert_flux_transformer,
    }
    for klass in cls.__mro__:
        if klass.__name__ in by_name:
            return by_name[klass.__name__]
    raise CatalogError(f"{cls.__name__} cannot be loaded from a single-file checkpoint.")


def _diffusers_model(cls: Any, folder: Path, name: str, checkpoint: dict[str, torch.Tensor]) -> Any:
    config = cls.load_config(str(folder), subfolder=name, local_files_only=True)
    prefixes = _PRESENCE.get(cls.__name__, ())
    if prefixes and not any(k.startswith(prefixes) for k in checkpoint):
        raise _Missing(f"no {' or '.join(p + '*' for p in prefixes)} tensors")
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in cls.from_config(config).state_dict().items()}
    expected = set(shapes)
    try:
        converted = _converter(cls)(checkpoint=dict(checkpoint), config=config)
    except (KeyError, IndexError) as exc:
        raise CatalogError(f"`{name}` is incomplete in the checkpoint: tensor {exc} is missing.") from None
    _check(name, folder, shapes, converted)
    # Already in diffusers' layout, so from_single_file loads it as is.
    return cls.from_single_file(
        {k: converted[k] for k in expected},
        config=str(folder),
        subfolder=name,
        local_files_only=True,
        torch_dtype=torch.float32,
    )


def _text_encoder(
    cls: Any,
    folder: Path,
    name: str,
    checkpoint: dict[str, torch.Tensor],
    layout: str,
    prefix: str,
    family: str,
) -> Any:
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

    if not any(k.startswith(prefix) for k in checkpoint):
        raise _Missing(f"no {prefix}* tensors")
    model_config = cls.config_class.from_pretrained(str(folder), subfolder=name, local_files_only=True)
    with torch.device("meta"):
        empty = cls(model_config)
    if layout == "open_clip":
        state = convert_open_clip_checkpoint(empty, checkpoint, prefix=prefix)
    else:
        state = {k[len(prefix) :]: v for k, v in checkpoint.items() if k.startswith(prefix)}
    if layout != "t5":
        wrapped = hasattr(empty, "text_model")
        state = {(k if wrapped else k.removeprefix("text_model.")): v for k, v in state.items()}
        if family == "sd3" and name == "text_encoder":
            # SD3 uses CLIP-L's pooled output unprojected (as diffusers and the reference code do).
            state["text_projection.weight"] = torch.eye(model_config.hidden_size)
    shapes = {k: tuple(v.shape) for k, v in empty.state_dict().items()}
    if layout == "t5" and "encoder.embed_tokens.weight" not in state:
        shapes.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight
    _check(name, folder, shapes, state)
    with _no_init():
        model = cls(model_config)
    model.load_state_dict({k: state[k].to(torch.float32) for k in shapes}, strict=False)
    if layout == "t5":
        model.encoder.embed_tokens.weight = model.shared.weight
    return model.eval()


def _check(name: str, folder: Path, shapes: Mapping[str, tuple[int, ...]], state: Mapping[str, Any]) -> None:
    """Every tensor the model has is in `state`, with the model's shape; nothing is loaded half."""
    missing = sorted(set(shapes) - set(state))
    wrong = [k for k in sorted(shapes) if k in state and tuple(state[k].shape) != shapes[k]]
    if missing or wrong:
        detail = (
            f"lacks {len(missing)} tensors that the config {folder / name} expects, e.g. {missing[0]}"
            if missing
            else f"has {wrong[0]} of shape {tuple(state[wrong[0]].shape)} where the config "
            f"{folder / name} expects {shapes[wrong[0]]}"
        )
        raise CatalogError(
            f"`{name}` of the checkpoint {detail}: the checkpoint and config are different architectures "
            "(or the file is incomplete)."
        )


def _no_init() -> Any:
    """Skip random initialisation of weights the checkpoint overwrites (transformers' own switch)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - older transformers
        return contextlib.nullcontext()
    return no_init_weights()
