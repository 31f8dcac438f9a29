"""Tests of the persistence layer against real databases: a SQLite file, and PostgreSQL when
GOUACHE_TEST_POSTGRES_URL is set (e.g. postgresql+psycopg://user:pw@localhost:5432/gouache_test)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from gouache.store import (
    Base,
    BlobNotFound,
    DirectoryBlobStore,
    RecordNotFound,
    RequestView,
    Store,
    StoreError,
    head_revision,
)
from tests.postgres import private_schema_store

PNG_A = b"\x89PNG\r\n\x1a\n" + b"image-a" * 100
PNG_B = b"\x89PNG\r\n\x1a\n" + b"image-b" * 100

PARAMS = {
    "prompt": "a lighthouse in gouache, ünïcode ✓",
    "n": 2,
    "size": "1024x1024",
    "quality": "auto",
    "output_format": "png",
    "extra": {"nested": [1, 2.5, None, True]},
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'db' / 'gouache.db'}", tmp_path / "blobs")
    s.migrate()
    yield s
    s.close()


def _round_trip(store: Store) -> None:
    """The life of one request, shared by the SQLite and PostgreSQL tests."""
    big_seed = 2**63 - 1
    rid = store.create_request("images.generations", "gpt-image-1", PARAMS, "user-1")
    assert rid.startswith("req_") and len(rid) == 4 + 24

    queued = store.get_request(rid)
    assert queued is not None
    assert queued.status == "queued"
    assert queued.params == PARAMS
    assert queued.user == "user-1"
    assert queued.resolved_model is None and queued.seed is None
    assert queued.error is None and queued.timings is None and queued.usage is None
    assert queued.started_at is None and queued.finished_at is None
    assert queued.created_at.tzinfo is not None and queued.created_at.utcoffset() == UTC.utcoffset(None)
    assert not queued.finished

    store.mark_running(rid, resolved_model="gouache-mini", seed=big_seed)
    running = store.get_request(rid)
    assert running is not None
    assert (running.status, running.resolved_model, running.seed) == ("running", "gouache-mini", big_seed)
    assert running.started_at is not None and running.started_at >= running.created_at

    id0 = store.add_image(rid, 0, PNG_A, "png", 1024, 1024, big_seed)
    id1 = store.add_image(rid, 1, PNG_B, "png", 1024, 1024, 7)
    assert id0.startswith("img_") and id0 != id1

    timings = {"queue_s": 0.01, "run_s": 1.5, "total_s": 1.51}
    usage = {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0}
    store.finish_request(rid, "succeeded", timings=timings, usage=usage)

    done = store.get_request(rid)
    assert done is not None
    assert done.status == "succeeded" and done.finished
    assert done.timings == timings and done.usage == usage and done.error is None
    assert done.seed == big_seed  # finish_request(seed=None) leaves it alone
    assert done.finished_at is not None and done.started_at is not None
    assert done.finished_at >= done.started_at
    assert [i.index for i in done.images] == [0, 1]
    assert [i.id for i in done.images] == [id0, id1]
    assert done.images[0].byte_size == len(PNG_A) and done.images[0].format == "png"
    assert (done.images[0].width, done.images[0].height, done.images[0].seed) == (1024, 1024, big_seed)

    assert store.read_image_bytes(id0) == PNG_A
    assert store.read_image_bytes(id1) == PNG_B
    view = store.get_image(id1)
    assert view is not None and view.request_id == rid and view.seed == 7

    failed = store.create_request("images.edits", "gpt-image-1", {"prompt": "x"}, None)
    error = {"message": "boom", "type": "server_error", "param": None, "code": None}
    store.finish_request(failed, "failed", error=error)
    failed_view = store.get_request(failed)
    assert failed_view is not None
    assert failed_view.error == error and failed_view.started_at is None and failed_view.images == ()


# --- migrations -------------------------------------------------------------------------------------------


def test_migrate_twice_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "gouache.db"  # the parent directory does not exist yet
    with Store(f"sqlite:///{db}", tmp_path / "blobs") as store:
        store.migrate()
        rid = store.create_request("images.generations", "gpt-image-1", {"prompt": "a"}, None)
        store.migrate()
        assert store.schema_is_current()
        assert store.get_request(rid) is not None
    # And from a fresh Store on the same file, as at the next start-up.
    with Store(f"sqlite:///{db}", tmp_path / "blobs") as store:
        store.migrate()
        assert store.get_request(rid) is not None

    engine = create_engine(f"sqlite:///{db}")
    try:
        insp = inspect(engine)
        assert {"requests", "images", "alembic_version"} <= set(insp.get_table_names())
        assert "ix_requests_created_at" in {ix["name"] for ix in insp.get_indexes("requests")}
        assert "ix_images_request_id" in {ix["name"] for ix in insp.get_indexes("images")}
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()
    finally:
        engine.dispose()


def test_migrations_match_models(store: Store) -> None:
    """Autogenerate finds nothing to do: the hand-written migrations and the models agree."""
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


def test_sqlite_connection_settings(store: Store, tmp_path: Path) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    raw = sqlite3.connect(tmp_path / "db" / "gouache.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # persisted in the file
    finally:
        raw.close()


# --- requests and images ----------------------------------------------------------------------------------


def test_round_trip_sqlite(store: Store) -> None:
    _round_trip(store)


def test_views_are_detached_snapshots(store: Store) -> None:
    params = {"prompt": "p", "list": [1]}
    rid = store.create_request("images.generations", "m", params, None)
    params["list"].append(2)  # the caller mutating its dict later does not change what was stored
    view = store.get_request(rid)
    assert isinstance(view, RequestView) and view.params == {"prompt": "p", "list": [1]}
    with pytest.raises(AttributeError):
        view.status = "failed"  # type: ignore[misc]
    store.close()
    assert view.params["prompt"] == "p" and view.images == ()  # readable with no database at all


def test_invalid_arguments(store: Store) -> None:
    rid = store.create_request("images.generations", "m", {"prompt": "p"}, None)
    with pytest.raises(ValueError, match="terminal"):
        store.finish_request(rid, "running")
    with pytest.raises(ValueError, match="64-bit"):
        store.mark_running(rid, seed=2**64 - 1)
    with pytest.raises(ValueError, match="JSON"):
        store.create_request("images.generations", "m", {"prompt": object()}, None)
    with pytest.raises(ValueError, match="negative"):
        store.list_requests(limit=-1)


def test_missing_records(store: Store) -> None:
    assert store.get_request("req_missing") is None
    assert store.get_image("img_missing") is None
    with pytest.raises(RecordNotFound):
        store.mark_running("req_missing")
    with pytest.raises(RecordNotFound):
        store.finish_request("req_missing", "failed")
    with pytest.raises(KeyError):  # RecordNotFound is a KeyError too
        store.read_image_bytes("img_missing")
    with pytest.raises(RecordNotFound):
        store.add_image("req_missing", 0, PNG_A, "png", 8, 8, None)
    assert not any(store.blobs.root.rglob("*.png"))  # checked before the blob was written


def test_duplicate_image_index_is_rejected(store: Store) -> None:
    rid = store.create_request("images.generations", "m", {"prompt": "p"}, None)
    store.add_image(rid, 0, PNG_A, "png", 8, 8, None)
    with pytest.raises(StoreError, match="index 0"):
        store.add_image(rid, 0, PNG_B, "png", 8, 8, None)


def test_identical_bytes_share_one_blob(store: Store) -> None:
    r1 = store.create_request("images.generations", "m", {"prompt": "p"}, None)
    r2 = store.create_request("images.generations", "m", {"prompt": "p"}, None)
    i1 = store.add_image(r1, 0, PNG_A, "png", 8, 8, 1)
    i2 = store.add_image(r2, 0, PNG_A, "png", 8, 8, 1)
    v1, v2 = store.get_image(i1), store.get_image(i2)
    assert v1 is not None and v2 is not None
    assert i1 != i2 and v1.blob_key == v2.blob_key
    files = [p for p in store.blobs.root.rglob("*") if p.is_file()]
    assert files == [store.blobs.path(v1.blob_key)]
    assert store.read_image_bytes(i1) == store.read_image_bytes(i2) == PNG_A


def test_missing_blob_file(store: Store) -> None:
    rid = store.create_request("images.generations", "m", {"prompt": "p"}, None)
    iid = store.add_image(rid, 0, PNG_A, "png", 8, 8, None)
    view = store.get_image(iid)
    assert view is not None
    store.blobs.path(view.blob_key).unlink()
    with pytest.raises(BlobNotFound):
        store.read_image_bytes(iid)


def test_fail_unfinished(store: Store) -> None:
    queued = store.create_request("images.generations", "m", {"prompt": "q"}, None)
    running = store.create_request("images.generations", "m", {"prompt": "r"}, None)
    store.mark_running(running, "gouache-mini", 5)
    done = store.create_request("images.generations", "m", {"prompt": "d"}, None)
    store.finish_request(done, "succeeded")
    cancelled = store.create_request("images.generations", "m", {"prompt": "c"}, None)
    store.finish_request(cancelled, "cancelled")

    assert store.fail_unfinished("server restarted") == 2
    expected_error = {
        "message": "server restarted",
        "type": "server_error",
        "param": None,
        "code": "interrupted",
    }
    for rid in (queued, running):
        view = store.get_request(rid)
        assert view is not None
        assert view.status == "failed" and view.error == expected_error and view.finished_at is not None
    done_view, cancelled_view = store.get_request(done), store.get_request(cancelled)
    assert done_view is not None and done_view.status == "succeeded" and done_view.error is None
    assert cancelled_view is not None and cancelled_view.status == "cancelled"
    assert store.fail_unfinished("again") == 0


def test_list_requests_newest_first(store: Store) -> None:
    ids = [store.create_request("images.generations", "m", {"prompt": str(i)}, None) for i in range(5)]
    store.add_image(ids[2], 0, PNG_A, "png", 8, 8, None)
    listed = store.list_requests()
    assert [r.id for r in listed] == ids[::-1]
    assert [len(r.images) for r in listed] == [0, 0, 1, 0, 0]
    assert [r.id for r in store.list_requests(limit=2)] == ids[4:2:-1]
    assert [r.id for r in store.list_requests(limit=2, offset=2)] == ids[2:0:-1]
    assert store.list_requests(offset=10) == []
    created = [r.created_at for r in listed]
    assert created == sorted(created, reverse=True)
    assert all(isinstance(c, datetime) and c.tzinfo is not None for c in created)


def test_concurrent_writers(store: Store) -> None:
    """8 worker threads each drive requests through their whole life at once: no 'database is locked'."""
    n_threads, per_thread = 8, 5
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []
    created: list[str] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                rid = store.create_request("images.generations", "m", {"prompt": f"{t}-{i}"}, None)
                store.mark_running(rid, "gouache-mini", t * 100 + i)
                store.add_image(rid, 0, f"{t}-{i}".encode() * 50, "png", 8, 8, t * 100 + i)
                store.finish_request(rid, "succeeded", timings={"run_s": 0.0})
                assert store.get_request(rid) is not None
                store.list_requests(limit=5)
                with lock:
                    created.append(rid)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert errors == []
    assert len(set(created)) == n_threads * per_thread
    listed = store.list_requests(limit=1000)
    assert len(listed) == n_threads * per_thread
    assert all(r.status == "succeeded" and len(r.images) == 1 for r in listed)


# --- blobs ------------------------------------------------------------------------------------------------


def test_blob_store(tmp_path: Path) -> None:
    blobs = DirectoryBlobStore(tmp_path / "b")
    key = blobs.put(b"hello", "PNG")
    assert key == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.png"
    path = blobs.path(key)
    assert path == tmp_path / "b" / "2c" / "f2" / key
    assert path.read_bytes() == b"hello" and blobs.get(key) == b"hello"
    mtime = path.stat().st_mtime_ns
    assert blobs.put(b"hello", "png") == key and path.stat().st_mtime_ns == mtime  # not rewritten
    assert [p.name for p in path.parent.iterdir()] == [key]  # no temp files left behind
    assert blobs.delete(key) and not blobs.exists(key) and not blobs.delete(key)
    with pytest.raises(BlobNotFound):
        blobs.get(key)
    for bad in ("../../etc/passwd", key.upper(), key.replace(".png", "/x"), "abc.png"):
        with pytest.raises(ValueError):
            blobs.path(bad)
    with pytest.raises(ValueError):
        blobs.put(b"x", "p/ng")


# --- PostgreSQL -------------------------------------------------------------------------------------------


@pytest.fixture
def pg_store(tmp_path: Path, postgres_url: str) -> Iterator[Store]:
    """A Store on a fresh, private schema of the test server, dropped afterwards."""
    with private_schema_store(postgres_url, tmp_path / "blobs") as store:
        yield store


def test_round_trip_postgres(pg_store: Store) -> None:
    assert pg_store.engine.dialect.name == "postgresql"
    pg_store.migrate()
    pg_store.migrate()
    assert pg_store.schema_is_current()
    _round_trip(pg_store)
    assert pg_store.fail_unfinished("restart") == 0
    with pg_store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
