"""`gouache models`: every model the catalog serves, where it comes from (shipped, your catalog file, or
pulled from a hub repository at a commit), its size on disk, the device it renders on, and whether the
server on the configured host and port has it loaded."""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from gouache.engine import devices, pulled
from gouache.engine.catalog import Catalog, read_entries
from gouache.engine.devices import DeviceError
from gouache.service.container import build_catalog
from gouache.settings import Settings


@dataclass(frozen=True)
class ModelRow:
    name: str
    family: str
    source: str
    #: Bytes on disk; None when the folder is missing.
    size: int | None
    device: str
    #: Whether the running server has it loaded; None when no server answers.
    loaded: bool | None
    path: Path
    default: bool
    aliases: tuple[str, ...]


def inventory(settings: Settings) -> list[ModelRow]:
    catalog, default = build_catalog(settings)
    pulled_entries = pulled.entries(settings.pulled_catalog_file)
    user = settings.catalog_file
    user_names = set(read_entries(user)) if user is not None and user.is_file() else set()
    shipped = set(Catalog.load().names())
    loaded = loaded_models(settings)
    available = devices.probe()
    rows = []
    for spec in catalog.models():
        try:  # where it renders: its own `device`, else GOUACHE_DEVICE, resolved on this machine
            device = devices.resolve_device(spec.device or settings.device, available)
        except DeviceError as exc:
            device = f"unavailable ({exc})"
        if spec.name in user_names:
            source = "catalog file"
        elif spec.name in pulled_entries:
            entry = pulled_entries[spec.name]
            source = f"pulled {entry.get('repo', '?')}@{str(entry.get('sha', '?'))[:12]}"
        elif spec.name in shipped:
            source = "shipped"
        else:  # the default model given as a directory (GOUACHE_DEFAULT_MODEL, serve --model)
            source = "directory"
        aliases = tuple(n for n in catalog.names() if n != spec.name and catalog.resolve(n) is spec)
        state = None if loaded is None else spec.name in loaded
        size = size_on_disk(spec.path)
        rows.append(
            ModelRow(spec.name, spec.family, source, size, device, state, spec.path, spec is default, aliases)
        )
    return rows


def size_on_disk(path: Path) -> int | None:
    if not path.is_dir():
        return None
    total = 0
    for root, _dirs, files in os.walk(path):
        for file in files:
            with suppress(OSError):
                total += os.lstat(os.path.join(root, file)).st_size
    return total


def loaded_models(settings: Settings, timeout: float = 1.0) -> set[str] | None:
    """The models a Gouache server on the configured host and port has loaded, or None if none answers."""
    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
    host = f"[{host}]" if ":" in host else host
    try:
        response = httpx.get(f"http://{host}:{settings.port}/health", timeout=timeout)
        data = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    # 503: a server still warming up (or whose warm-up failed) answers with the same body.
    if response.status_code not in (200, 503) or not isinstance(data, dict) or "models_loaded" not in data:
        return None
    return {str(name) for name in data["models_loaded"]}
