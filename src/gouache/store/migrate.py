"""Run the packaged Alembic migrations from code; no alembic.ini is needed on disk."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Arbitrary constant naming the PostgreSQL advisory lock held while migrating.
_PG_MIGRATION_LOCK_ID = 0x600AC4E


def alembic_config(database_url: str, connection: Connection | None = None) -> Config:
    """An Alembic `Config` pointing at the migrations shipped inside the package.

    When `connection` is given, env.py runs the migrations on it (inside its transaction) instead of
    opening its own.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    # Config values go through ConfigParser interpolation: URL-encoded passwords contain '%'.
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest revision shipped with this version of gouache."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for a database never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database to the newest revision, in one transaction. Does nothing if it is already there.

    Concurrent callers are serialised (an advisory lock on PostgreSQL; the write lock taken by the store's
    ``BEGIN IMMEDIATE`` on SQLite), so several processes starting at once do not race to create tables.
    """
    url = engine.url.render_as_string(hide_password=False)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held until this transaction ends, i.e. until the upgrade is committed or rolled back.
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_MIGRATION_LOCK_ID})
        command.upgrade(alembic_config(url, conn), "head")
