"""Opening the configured store without building the engine (no torch import), for CLI commands."""

from __future__ import annotations

from gouache.settings import Settings
from gouache.store import Store


def open_store(settings: Settings, migrate: bool = True) -> Store:
    """The store, migrated. `migrate=False` (a Ray gateway replica: the launcher migrated once) only checks
    that the schema is current, and fails naming the fix if not."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_url, settings.blob_dir)
    if migrate:
        store.migrate()
    elif not store.schema_is_current():
        store.close()
        raise RuntimeError(
            "The database schema is not current; the launcher (`gouache serve --ray`) migrates it before "
            "the replicas start."
        )
    return store
