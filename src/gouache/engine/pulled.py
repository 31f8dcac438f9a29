"""The pulled models' catalog file (`GOUACHE_HOME/models/catalog.toml`): entries written by `gouache pull`
and removed by `gouache models rm`, in the same format as every other catalog file.

Every change re-reads the file under an exclusive lock and replaces it atomically, so concurrent pulls
never lose each other's entries and a crash never leaves half a file."""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gouache.engine.catalog import CatalogError, read_entries

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
HEADER = (
    "# Models pulled with `gouache pull`; `gouache models rm NAME` removes one. Paths are relative to this\n"
    "# folder. Same format as GOUACHE_CATALOG_FILE, whose entries replace these.\n"
)


@contextmanager
def locked(catalog_file: Path) -> Iterator[None]:
    """Hold the exclusive lock of `catalog_file` (a hidden `.lock` file beside it)."""
    catalog_file.parent.mkdir(parents=True, exist_ok=True)
    with (catalog_file.parent / f".{catalog_file.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def entries(catalog_file: Path) -> dict[str, Mapping[str, Any]]:
    """The pulled entries by name (empty while the file does not exist)."""
    return read_entries(catalog_file) if catalog_file.is_file() else {}


def add_entry(catalog_file: Path, name: str, entry: Mapping[str, Any]) -> None:
    """Write `[models.NAME]`; refuses a name the file already has."""
    with locked(catalog_file):
        current = entries(catalog_file)
        if name in current:
            raise CatalogError(f"{catalog_file} already has a model named {name!r}.")
        _write(catalog_file, {**current, name: entry})


def remove_entry(catalog_file: Path, name: str) -> bool:
    """Drop `[models.NAME]`; False when there was none."""
    with locked(catalog_file):
        current = entries(catalog_file)
        if current.pop(name, None) is None:
            return False
        _write(catalog_file, current)
        return True


def _write(catalog_file: Path, models: Mapping[str, Mapping[str, Any]]) -> None:
    text = HEADER + "".join(_table(("models", name), entry) for name, entry in models.items())
    fd, tmp = tempfile.mkstemp(dir=catalog_file.parent, prefix=".catalog-", suffix=".toml")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, catalog_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _table(keys: tuple[str, ...], table: Mapping[str, Any]) -> str:
    """One TOML table: its scalar keys, then its sub-tables (enough for catalog entries)."""
    scalars = [f"{_key(k)} = {_value(v)}" for k, v in table.items() if not isinstance(v, Mapping)]
    tables = any(isinstance(v, Mapping) for v in table.values())
    header = f"\n[{'.'.join(_key(k) for k in keys)}]"
    text = "" if tables and not scalars else "\n".join([header, *scalars]) + "\n"
    for key, sub in table.items():
        if isinstance(sub, Mapping):
            text += _table((*keys, key), sub)
    return text


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        # JSON's string escapes and numbers are valid TOML.
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to a catalog file")
