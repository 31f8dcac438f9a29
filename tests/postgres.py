"""A throwaway PostgreSQL server for the tests: `initdb` in a temporary directory, loopback only, fsync off.

As root, initdb refuses to run, so the server runs as the `postgres` user (Debian's package creates it)."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, make_url

from gouache.store import Store
from tests.live import free_port


def pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in p.split("/")[4].split(".")]
    )
    return Path(candidates[-1]) if candidates else None


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "stop"],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    bin_dir = pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb) not found; install Debian's postgresql")
    root = Path(tempfile.mkdtemp(prefix="gouache-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8",
         "--locale=C.UTF-8", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run(
        [*as_user, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-o", options,
         "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    return PostgresServer(bin_dir, root, port, as_user)


@contextmanager
def private_schema_store(url: str, blobs_dir: Path, prefix: str = "gouache_test") -> Iterator[Store]:
    """A Store (not migrated) on a fresh schema of the test server at `url`, dropped afterwards, so tests
    sharing one server never see each other's rows."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    store = Store(scoped.render_as_string(hide_password=False), blobs_dir)
    try:
        yield store
    finally:
        store.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
