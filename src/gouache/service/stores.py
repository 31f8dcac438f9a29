"""Opening the configured store without building the engine (no torch import), for CLI commands."""

from __future__ import annotations

from gouache.settings import Settings
from gouache.store import Store


def open_store(settings: Settings) -> Store:
    """The store, migrated."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_url, settings.blob_dir)
    store.migrate()
    return store
