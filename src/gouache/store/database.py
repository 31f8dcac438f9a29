"""The database under every repository: engines and sessions for SQLite or PostgreSQL, schema migration, and
the SQLite locking rules (WAL, busy timeout, BEGIN IMMEDIATE for writers) that let worker threads and several
processes share one file.

Every repository method is synchronous and opens its own short `Session`, so a store can be shared by any
number of worker threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from gouache.store.blobs import BlobStore, DirectoryBlobStore
from gouache.store.migrate import current_revision, head_revision, upgrade_to_head

#: How long a SQLite connection waits for another writer before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Execution option read by the SQLite "begin" hook: the kind of BEGIN to emit.
_SQLITE_BEGIN_OPTION = "gouache_sqlite_begin"


class Database:
    """The connection to the database and the blob store, shared by the repositories (`store/requests.py`,
    `images.py`, `responses.py`, `ledger.py`, `keys.py`) that `Store` combines.

    `database_url` is a SQLAlchemy URL; a bare ``postgresql://`` URL is taken to mean the psycopg 3 driver.
    `blobs` is a `BlobStore`, or a directory for a `DirectoryBlobStore`.
    """

    def __init__(self, database_url: str, blobs: BlobStore | Path) -> None:
        self.url: URL = _normalize_url(database_url)
        self.blobs: BlobStore = DirectoryBlobStore(Path(blobs)) if isinstance(blobs, str | Path) else blobs
        self.engine: Engine = _create_engine(self.url)
        # On SQLite, sessions that write start with BEGIN IMMEDIATE: they take the write lock up front
        # (waiting on busy_timeout) instead of failing when a read transaction later tries to write.
        self._write_engine = (
            self.engine.execution_options(**{_SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            if self.is_sqlite
            else self.engine
        )
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)

    def __repr__(self) -> str:
        url = self.url.render_as_string(hide_password=True)
        return f"{type(self).__name__}({url!r}, {self.blobs.location!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    # --- schema -----------------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision. Idempotent; safe if several processes start at once."""
        upgrade_to_head(self._write_engine)

    def schema_is_current(self) -> bool:
        return current_revision(self.engine) == head_revision()

    def close(self) -> None:
        """Close every pooled connection. The store must not be used afterwards."""
        self.engine.dispose()
        self.blobs.close()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A session in a transaction, committed on success and rolled back on error."""
        with self._write_sessions() as session, session.begin():
            yield session


def _normalize_url(database_url: str) -> URL:
    url = make_url(database_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False})
    _install_sqlite_hooks(engine)
    return engine


def _install_sqlite_hooks(engine: Engine) -> None:
    """WAL, busy timeout and foreign keys on every connection; SQLAlchemy (not sqlite3) in charge of BEGIN.

    sqlite3's implicit BEGIN is deferred and happens only before DML; taking it over lets writers use
    BEGIN IMMEDIATE (see `Database.__init__`) and makes DDL transactional for migrations.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
