"""`gouache pull`: download a diffusers pipeline from a model hub with huggingface_hub into
GOUACHE_HOME/models/NAME and add it to the pulled catalog; `gouache models rm`: remove one again.

A pull resolves the revision and lists the repository's files (`model_info`), reads `model_index.json`
(`hf_hub_download`), computes what to fetch (`patterns.select_files`) and fetches it with
`snapshot_download` into `models/.partial/NAME/`. That folder survives a failed or interrupted pull, and the
next pull of the same name continues from it (huggingface_hub keeps per-file metadata and resumes partial
files). Only a complete, verified download is moved to `models/NAME`, and the catalog entry is written last,
so the catalog never names a half-downloaded model. Every failure is a `PullError` with one line that names
the repository or the model."""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from rich.progress import Progress, TaskID
from tqdm import tqdm

from gouache.engine import pulled
from gouache.engine.catalog import Catalog, CatalogError, detect_family, read_entries
from gouache.models.patterns import (
    INDEX,
    DownloadSelection,
    Ref,
    SelectionError,
    check_name,
    default_name,
    parse_ref,
    select_files,
)
from gouache.settings import Settings

PARTIAL = ".partial"


class PullError(Exception):
    """A pull or a removal that cannot go ahead; the message is one line naming the repository or model."""


@dataclass(frozen=True)
class Pulled:
    name: str
    path: Path
    ref: Ref
    sha: str
    family: str
    files: int
    size: int


def pull(
    settings: Settings,
    reference: str,
    *,
    name: str | None = None,
    variant: str | None = None,
    progress: Progress | None = None,
) -> Pulled:
    """Download `reference` (`owner/name[@revision]`) and add it to the pulled catalog as `name`."""
    try:
        ref = parse_ref(reference)
        name = check_name(name or default_name(ref.repo))
    except SelectionError as exc:
        raise PullError(str(exc)) from None
    _refuse_clash(settings, name)
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    hub: dict[str, Any] = {"endpoint": settings.hf_endpoint, "token": token}
    with _hub_errors(ref, settings):
        info = HfApi(**hub).model_info(ref.repo, revision=ref.revision or "main")
    repo_files = [s.rfilename for s in info.siblings or []]
    not_diffusers = f"{ref} is not a diffusers model: it has no {INDEX}."
    if repo_files and INDEX not in repo_files:
        raise PullError(not_diffusers)
    sha = str(info.sha)
    models_dir = settings.pulled_models_dir
    partial = models_dir / PARTIAL / name
    fresh = not partial.exists()
    partial.mkdir(parents=True, exist_ok=True)
    with _exclusive(partial, name):
        try:
            with _hub_errors(ref, settings, missing=not_diffusers):
                hf_hub_download(ref.repo, INDEX, revision=sha, local_dir=partial, tqdm_class=_Silent, **hub)
            _check_pipeline(ref, partial)
            selection = select_files(json.loads((partial / INDEX).read_text()), repo_files, variant)
        except (PullError, SelectionError, ValueError) as exc:
            if fresh:
                _discard(partial)
            raise PullError(f"{ref}: {exc}" if not isinstance(exc, PullError) else str(exc)) from None
        with _hub_errors(ref, settings, resumable=True):
            snapshot_download(
                ref.repo,
                revision=sha,
                local_dir=partial,
                allow_patterns=selection.allow_patterns,
                ignore_patterns=selection.ignore_patterns,
                tqdm_class=_rich_tqdm(progress, name) if progress is not None else _Silent,
                **hub,
            )
        _finish(partial, selection)
        family = _check_pipeline(ref, partial)
        _refuse_clash(settings, name)  # another pull may have taken the name meanwhile
        final = models_dir / name
        os.replace(partial, final)
    _discard_if_empty(models_dir / PARTIAL)
    entry = {
        "path": name,
        "family": family,
        "description": f"Pulled from {ref.repo}@{ref.revision or 'main'}",
        "repo": ref.repo,
        "revision": ref.revision or "main",
        "sha": sha,
        **({"variant": variant} if variant else {}),
        "pulled_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        pulled.add_entry(settings.pulled_catalog_file, name, entry)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    files = [p for p in final.rglob("*") if p.is_file()]
    return Pulled(name, final, ref, sha, family, len(files), sum(p.stat().st_size for p in files))


def remove(settings: Settings, name: str) -> Path:
    """Remove a pulled model: its catalog entry first (nothing serves a half-deleted folder), then its folder.
    Shipped models and those of GOUACHE_CATALOG_FILE are refused."""
    catalog_file = settings.pulled_catalog_file
    try:
        entry = pulled.entries(catalog_file).get(name)
        if entry is None:
            user = settings.catalog_file
            if user is not None and user.is_file() and name in read_entries(user):
                raise PullError(f"{name} comes from your catalog file {user}; edit that file to remove it.")
            if Catalog.load().resolve(name) is not None:
                raise PullError(f"{name} is shipped with Gouache and cannot be removed.")
            raise PullError(f"No pulled model named {name!r} (`gouache models` lists them).")
        pulled.remove_entry(catalog_file, name)
    except CatalogError as exc:
        raise PullError(str(exc)) from None
    folder = (catalog_file.parent / str(entry.get("path", name))).resolve()
    if folder.parent == catalog_file.parent.resolve() and folder.is_dir():
        shutil.rmtree(folder)
    return folder


def _refuse_clash(settings: Settings, name: str) -> None:
    try:
        catalog = Catalog.load(settings.catalog_file, settings.pulled_catalog_file)
    except CatalogError as exc:
        raise PullError(str(exc)) from None
    spec = catalog.resolve(name)
    if spec is not None:
        entry = pulled.entries(settings.pulled_catalog_file).get(spec.name)
        what = f"an alias of {spec.name}" if spec.name != name else "a model"
        origin = f", pulled from {entry.get('repo')} (`gouache models rm {spec.name}`)" if entry else ""
        raise PullError(f"{name!r} is already {what} of the catalog{origin}: choose another --name.")
    if name in settings.model_aliases:
        raise PullError(f"{name!r} is a GPT image model name served by the default model: use --name.")
    if (settings.pulled_models_dir / name).exists():
        raise PullError(f"{settings.pulled_models_dir / name} already exists: choose another --name.")


def _check_pipeline(ref: Ref, folder: Path) -> str:
    """The family of the pipeline in `folder`, or a PullError when Gouache cannot serve it."""
    try:
        return detect_family(folder)
    except CatalogError as exc:
        raise PullError(f"{ref} cannot be served: {exc}") from None


def _finish(partial: Path, selection: DownloadSelection) -> None:
    """Make the download exactly the selection: drop files an earlier pull left that it no longer selects and
    huggingface_hub's metadata, rename variant files to their plain names, then check nothing is missing."""
    keep = {partial / f for f in selection.files}
    for path in [p for p in partial.rglob("*") if p.is_file() and p not in keep]:
        path.unlink()
    shutil.rmtree(partial / ".cache", ignore_errors=True)
    shards = {Path(old).name: Path(new).name for old, new in selection.renames.items()}
    for old, new in selection.renames.items():
        os.replace(partial / old, partial / new)
        if new.endswith(".index.json"):
            index = json.loads((partial / new).read_text())
            index["weight_map"] = {k: shards.get(v, v) for k, v in index.get("weight_map", {}).items()}
            (partial / new).write_text(json.dumps(index, indent=2))
    missing = [f for f in selection.files if not (partial / selection.renames.get(f, f)).is_file()]
    if missing:
        raise PullError(f"The download is incomplete ({', '.join(missing[:3])} missing); pull again.")


@contextmanager
def _exclusive(partial: Path, name: str) -> Iterator[None]:
    """One pull per name at a time: an exclusive lock on the partial folder."""
    fd = os.open(partial, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PullError(f"Another `gouache pull` is downloading {name!r} right now.") from None
        yield
    finally:
        os.close(fd)


@contextmanager
def _hub_errors(
    ref: Ref, settings: Settings, resumable: bool = False, missing: str | None = None
) -> Iterator[None]:
    """huggingface_hub's exceptions as one-line PullErrors naming the repository."""
    where = settings.hf_endpoint or "the Hugging Face Hub"
    again = "; run the same pull again to resume" if resumable else ""
    try:
        yield
    except GatedRepoError:
        raise PullError(f"{ref.repo} is gated: accept its terms on the hub and set HF_TOKEN.") from None
    except RepositoryNotFoundError:
        raise PullError(
            f"Repository {ref.repo} was not found on {where} (if it is private, set HF_TOKEN)."
        ) from None
    except RevisionNotFoundError:
        raise PullError(f"Revision {ref.revision!r} of {ref.repo} does not exist.") from None
    except OfflineModeIsEnabled:
        raise PullError(f"HF_HUB_OFFLINE is set: unset it to pull {ref}.") from None
    except EntryNotFoundError as exc:
        if isinstance(exc, LocalEntryNotFoundError):  # the connection failed mid-way
            raise PullError(f"Download of {ref} failed: {where} cannot be reached{again}.") from None
        raise PullError(missing or f"{ref}: a file it lists is missing on {where}{again}.") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise PullError(f"Download of {ref} failed: HTTP {status} from {where}{again}.") from None
    except (httpx2.HTTPError, OSError) as exc:
        raise PullError(f"Download of {ref} failed: {type(exc).__name__}: {exc}{again}.") from None


def _discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    _discard_if_empty(folder.parent)


def _discard_if_empty(folder: Path) -> None:
    with suppress(OSError):
        folder.rmdir()


class _Silent(tqdm):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("name", None)
        super().__init__(*args, **{**kwargs, "disable": True})


def _rich_tqdm(progress: Progress, name: str) -> type[tqdm]:
    """A tqdm class for `snapshot_download` that draws one Rich bar: the bytes it downloads, with the count
    of files done in the description. Its other byte bar (reconstruction) is not drawn."""
    state: dict[str, Any] = {"bytes": None, "files": "", "task": None}

    def task() -> TaskID:
        if state["task"] is None:
            state["task"] = progress.add_task(name, total=None)
        return state["task"]

    class RichTqdm(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            self._role = "files" if kwargs.get("unit", "it") != "B" else None
            if self._role is None and state["bytes"] is None:
                state["bytes"] = self._role = "bytes"
            super().__init__(*args, **{**kwargs, "file": io.StringIO(), "disable": False, "miniters": 1})

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            if self._role == "bytes":
                progress.update(task(), completed=self.n, total=self.total or None)
            elif self._role == "files":
                progress.update(task(), description=f"{name}  {self.n}/{self.total} files")
            return True

        def update(self, n: float | None = 1) -> bool | None:
            result = super().update(n)
            self.display()
            return result

    return RichTqdm
