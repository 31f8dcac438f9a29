"""What `gouache pull` downloads, as pure functions of a repository's file list and its `model_index.json`:
`snapshot_download`'s allow/ignore patterns, the files they select, and how variant files are renamed.

A diffusers pipeline needs `model_index.json` and the folder of each component it names. Inside a component
folder everything but weights is kept (configs, tokenizer files); of the weights, one set is kept: the
requested variant's (`--variant fp16`) where the component has it, else the plain one, in `.safetensors`
where there are any, else `.bin`. Other formats (Flax `.msgpack`, TF `.h5`, ONNX, `.ckpt`) never are.
Variant files are renamed to the plain names after the download (`model.fp16.safetensors` ->
`model.safetensors`), so the folder loads like any other diffusers directory."""

from __future__ import annotations

import fnmatch
import glob
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

INDEX = "model_index.json"
#: Weight formats a PyTorch diffusers pipeline loads, best first.
LOADABLE = ("safetensors", "bin")
_OTHER_WEIGHTS = {"ckpt", "pt", "pth", "msgpack", "h5", "onnx", "onnx_data", "pb", "ot", "gguf", "tflite"}
_INDEX_FILE = re.compile(r"(?P<stem>.+)\.(?P<fmt>safetensors|bin)\.index(?:\.(?P<variant>[\w-]+))?\.json")
_SHARD = re.compile(r"-\d+-of-\d+$")
_REPO = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class SelectionError(ValueError):
    """The reference, the name or the repository's files do not make a pipeline Gouache can pull."""


@dataclass(frozen=True)
class Ref:
    repo: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{self.repo}@{self.revision}" if self.revision else self.repo


def parse_ref(text: str) -> Ref:
    """`owner/name[@revision]` (a branch, tag or commit)."""
    repo, at, revision = text.strip().partition("@")
    if not _REPO.fullmatch(repo) or ".." in repo or repo.endswith((".", "-")):
        raise SelectionError(f"{text!r} is not a repository id: expected OWNER/NAME[@REVISION].")
    if at and not revision:
        raise SelectionError(f"{text!r} names no revision after '@'.")
    return Ref(repo, revision or None)


def default_name(repo: str) -> str:
    """The catalog name of a pulled repository: its last path part, lower-cased."""
    return repo.rsplit("/", 1)[-1].lower()


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise SelectionError(
            f"{name!r} cannot name a model: use letters, digits, '.', '_' and '-' (at most 64, "
            "starting with a letter or digit)."
        )
    return name


def components(index: Mapping[str, Any]) -> list[str]:
    """The component folders `model_index.json` names (`"unet": ["diffusers", "UNet2DConditionModel"]`);
    private keys, flags and empty components (`[null, null]`) are not folders."""
    return [
        key
        for key, value in index.items()
        if not key.startswith("_")
        and re.fullmatch(r"\w+", key)
        and isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, str) for v in value)
    ]


@dataclass(frozen=True)
class Weight:
    path: str
    #: "safetensors", "bin", or "other" (a format never downloaded).
    format: str
    variant: str | None


def weight(path: str) -> Weight | None:
    """What a file is if it holds weights (or a sharded checkpoint's index), else None."""
    base = path.rsplit("/", 1)[-1]
    if match := _INDEX_FILE.fullmatch(base):
        return Weight(path, match["fmt"], match["variant"])
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem or (ext not in LOADABLE and ext not in _OTHER_WEIGHTS):
        return None
    variant = _SHARD.sub("", stem.rpartition(".")[2]) if "." in stem else None
    return Weight(path, ext if ext in LOADABLE else "other", variant or None)


def plain_name(path: str, variant: str) -> str:
    """A variant file's plain diffusers name: `x.fp16.safetensors` -> `x.safetensors`,
    `x.fp16-00001-of-00002.safetensors` -> `x-00001-of-00002.safetensors`,
    `x.safetensors.index.fp16.json` -> `x.safetensors.index.json`."""
    folder, slash, base = path.rpartition("/")
    if base.endswith(f".index.{variant}.json"):
        base = base.removesuffix(f".{variant}.json") + ".json"
    else:
        stem, _, ext = base.rpartition(".")
        head, _, tail = stem.rpartition(".")
        base = f"{head}{tail.removeprefix(variant)}.{ext}"
    return folder + slash + base


@dataclass(frozen=True)
class DownloadSelection:
    allow_patterns: list[str]
    ignore_patterns: list[str]
    #: The repository files the patterns select (what a complete download holds).
    files: list[str]
    #: Downloaded variant file -> its plain name.
    renames: dict[str, str] = field(default_factory=dict)


def select_files(
    index: Mapping[str, Any], repo_files: Iterable[str], variant: str | None = None
) -> DownloadSelection:
    """The patterns that fetch exactly the files the pipeline in `index` needs from `repo_files`."""
    repo_files = sorted(repo_files)
    names = components(index)
    if not names:
        raise SelectionError(f"{INDEX} names no components.")
    allow = [INDEX, *(f"{name}/*" for name in names)]
    ignore: list[str] = []
    chosen: list[Weight] = []
    weights = [w for f in repo_files if (w := weight(f)) is not None]
    if variant and not any(w.variant == variant for w in weights):
        present = sorted({w.variant for w in weights if w.variant})
        raise SelectionError(
            f"no {variant!r} variant weights (variants here: {', '.join(present) or 'none'})."
        )
    for name in names:
        mine = [w for w in weights if w.path.startswith(f"{name}/")]
        keep = _choose(mine, variant)
        if mine and not keep:
            present = sorted({w.variant for w in mine if w.variant and w.format != "other"})
            hint = f" (only {', '.join(present)} ones: pass --variant {present[0]})" if present else ""
            raise SelectionError(f"component {name!r} has no .safetensors or .bin weights{hint}.")
        chosen += keep
        ignore += [glob.escape(w.path) for w in mine if w not in keep]
    files = [f for f in repo_files if _matches(f, allow) and not _matches(f, ignore)]
    renames = {w.path: plain_name(w.path, w.variant) for w in chosen if w.variant}
    return DownloadSelection(allow, ignore, files, renames)


def _choose(weights: list[Weight], variant: str | None) -> list[Weight]:
    """One set of weights: the variant's where there is one, else the plain one; safetensors before bin."""
    loadable = [w for w in weights if w.format != "other"]
    group = [w for w in loadable if variant and w.variant == variant]
    group = group or [w for w in loadable if w.variant is None]
    for fmt in LOADABLE:
        if keep := [w for w in group if w.format == fmt]:
            return keep
    return []


def _matches(path: str, patterns: list[str]) -> bool:
    # huggingface_hub filters with fnmatch too (`filter_repo_objects`).
    return any(fnmatch.fnmatch(path, p) for p in patterns)
