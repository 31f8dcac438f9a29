"""The pieces of the Ray scale-out that need no cluster (issue 21): rate limits shared through the database,
the engine boundary's types crossing processes (pickling), per-replica metric labels and the blob setting.
The cluster itself is tested in tests/test_ray_cluster.py."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from gouache.engine.client import QueueFull
from gouache.engine.jobs import EditInputs, Progress, RenderedImage, RenderJob, RenderResult
from gouache.service.access import Caller
from gouache.service.container import build_catalog
from gouache.service.errors import InvalidRequest
from gouache.service.leases import MEMBER_FORGET_S, Lease, Member, Membership
from gouache.service.metrics import Metrics, label_samples
from gouache.service.operations import Admission, Operations
from gouache.service.policies.budgets import BudgetExceeded
from gouache.service.policies.rate_limits import RateLimited, SharedRateLimiter
from gouache.settings import Settings
from gouache.store import Store
from tests.live import LiveServer
from tests.postgres import private_schema_store


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database: what two gateway processes of a cluster have."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        first, second = Store(url, tmp_path / "blobs"), Store(url, tmp_path / "blobs")
        first.migrate()
        yield first, second
        first.close()
        second.close()
        return
    with private_schema_store(request.getfixturevalue("postgres_url"), tmp_path / "blobs") as first:
        first.migrate()
        second = Store(first.url.render_as_string(hide_password=False), tmp_path / "blobs")
        try:
            yield first, second
        finally:
            second.close()


def test_shared_rate_limits_count_across_processes(stores: tuple[Store, Store]) -> None:
    a, b = (SharedRateLimiter(store, window_s=60) for store in stores)
    assert a.take("key_1", "requests", 3) is not None
    assert b.take("key_1", "requests", 3) is not None
    state = a.take("key_1", "requests", 3)
    assert state is not None and state.remaining == 0
    with pytest.raises(RateLimited) as refused:
        b.take("key_1", "requests", 3)
    assert 1 <= int(refused.value.headers["retry-after"]) <= 60
    assert refused.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert b.take("key_2", "requests", 3) is not None  # another key has its own window
    with pytest.raises(InvalidRequest):
        a.take("key_3", "images", 3, amount=4)  # can never fit: 400, not 429


def test_shared_rate_limits_admit_exactly_the_limit_under_concurrency(stores: tuple[Store, Store]) -> None:
    limiters = [SharedRateLimiter(store, window_s=60) for store in stores]
    admitted: list[bool] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            limiters[i % 2].take("busy", "images", 10, amount=2)
            ok = True
        except RateLimited:
            ok = False
        with lock:
            admitted.append(ok)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(admitted) == [False] * 7 + [True] * 5  # 5 x 2 images = the limit of 10, never more


def test_shared_rate_limit_window_expires(stores: tuple[Store, Store]) -> None:
    now = [1_000.0]
    limiter = SharedRateLimiter(stores[0], window_s=60, clock=lambda: now[0])
    limiter.take("key", "requests", 1)
    now[0] += 59
    with pytest.raises(RateLimited):
        limiter.take("key", "requests", 1)
    now[0] += 1.5  # the first admission is now outside the window
    assert limiter.take("key", "requests", 1) is not None


def test_engine_boundary_types_cross_processes(tmp_path: Path) -> None:
    """Jobs go to engine replicas and results come back pickled: every type at the boundary survives it."""
    _, default = build_catalog(Settings(catalog_file=None, default_model="gouache-mini"))  # type: ignore[call-arg]
    image = Image.new("RGB", (64, 64), (10, 20, 30))
    edit = EditInputs((image,), Image.new("L", (64, 64), 255), strength=1.0)
    job = RenderJob(default, "a red circle", default.plan("low"), 64, 64, (1, 2), edit=edit, previews=1)
    back = pickle.loads(pickle.dumps(job))
    assert back == job and back.edit is not None
    assert back.edit.images[0].tobytes() == image.tobytes()
    progress = pickle.loads(pickle.dumps(Progress(0, 1, 2, preview=image)))
    assert progress.preview is not None and progress.preview.tobytes() == image.tobytes()
    result = RenderResult([RenderedImage(b"png", "png", 64, 64, 1)], (64, 64), placement={"node": "n1"})
    assert pickle.loads(pickle.dumps(result)).placement == {"node": "n1"}
    full = pickle.loads(pickle.dumps(QueueFull("The queue is full.", 7)))
    assert full.retry_after == 7 and str(full) == "The queue is full."


def test_metrics_are_labelled_with_the_replica() -> None:
    metrics = Metrics()
    metrics.images.labels("m", "low").inc(2)
    metrics.queue_depth.set(3)
    metrics.instance = {"replica": "r1", "node": "n1"}
    metrics.extra = lambda: 'gouache_engine_queue_depth{engine_replica="e1"} 1.0\n'
    text = metrics.exposition().decode()
    assert 'gouache_images_total{replica="r1",node="n1",model="m",quality="low"} 2.0' in text
    assert 'gouache_queue_depth{replica="r1",node="n1"} 3.0' in text
    assert 'gouache_engine_queue_depth{engine_replica="e1"} 1.0' in text
    assert label_samples(b"# HELP x y\nx{} 1.0\n", {"a": 'q"'}) == b'# HELP x y\nx{a="q\\""} 1.0\n'


def test_blob_url_is_a_directory_a_file_url_or_a_bucket(tmp_path: Path) -> None:
    assert Settings(blob_url=f"file://{tmp_path}/shared").blob_dir == tmp_path / "shared"  # type: ignore[call-arg]
    assert Settings(blob_url=str(tmp_path / "plain")).blob_dir == tmp_path / "plain"  # type: ignore[call-arg]
    assert Settings(data_dir=tmp_path).blob_dir == tmp_path / "blobs"  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="is a bucket, not a directory"):  # tests/test_s3_blobs.py
        _ = Settings(blob_url="s3://bucket/images").blob_dir  # type: ignore[call-arg]


def test_serve_ray_without_the_extra_is_one_red_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from typer.testing import CliRunner

    from gouache.cli import app

    monkeypatch.setitem(sys.modules, "gouache.cluster.launch", None)  # as if Ray Serve were not installed
    result = CliRunner().invoke(app, ["serve", "--ray"])
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 1, text
    assert "pip install 'gouache[ray]'" in text and "Traceback" not in text


def _operations(store: Store, shared: bool, **settings: object) -> Operations:
    return Operations.from_settings(Settings(**settings), store, shared=shared)  # type: ignore[arg-type]


def _admit_concurrently(ops: list[Operations], caller: Caller, attempts: int) -> list[Admission]:
    """`attempts` one-image admissions at once, alternating between the services; the admitted ones."""
    admitted: list[Admission] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            admission = ops[i % len(ops)].admit(caller, 0.01, 1)
        except BudgetExceeded:
            return
        with lock:
            admitted.append(admission)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return admitted


def test_budget_holds_are_counted_in_the_shared_database(stores: tuple[Store, Store]) -> None:
    """Two gateways' services on one database: what one holds between admission and its ledger row, the other
    counts, so together they admit exactly the budget (global and per key), and a release frees it."""
    ops = [_operations(store, shared=True, budget_images=3) for store in stores]
    anonymous = Caller(key_id=None)
    admitted = _admit_concurrently(ops, anonymous, 8)
    assert len(admitted) == 3  # 3 images of a global budget of 3, never more
    with pytest.raises(BudgetExceeded):
        ops[1].admit(anonymous, 0.01, 1)
    admitted[0].release()  # the request did not go ahead after all
    ops[1].admit(anonymous, 0.01, 1).release()
    keyed = Caller(key_id="key_k", budget_usd=0.05)
    per_key = [_operations(store, shared=True) for store in stores]
    assert len(_admit_concurrently(per_key, keyed, 8)) == 5  # $0.05 at $0.01 each


def test_budget_holds_in_memory_are_per_process(stores: tuple[Store, Store]) -> None:
    """The control: holds kept in each process's memory let two gateways spend the last of a budget twice."""
    ops = [_operations(store, shared=False, budget_images=3) for store in stores]
    assert len(_admit_concurrently(ops, Caller(key_id=None), 8)) == 6


def test_the_batch_lease_passes_to_another_gateway_when_its_holder_dies(stores: tuple[Store, Store]) -> None:
    """One gateway runs the batches while it renews its lease; when it stops renewing (dead), another takes
    the lease once it expires; a holder that stops cleanly hands it over at once. A fake clock: no sleeps."""
    now = [1000.0]
    first, second = (
        Lease(store, "batch-runner", f"gateway {i}", ttl_s=30, renew_s=10, clock=lambda: now[0])
        for i, store in enumerate(stores)
    )
    assert first.held() and not second.held()
    now[0] += 25
    assert first.held() and not second.held()  # renewed at 1025: the first's until 1055
    assert stores[1].lease_holder("batch-runner") == ("gateway 0", 1055.0)
    now[0] += 29
    assert not second.held()  # not expired yet
    now[0] += 2  # 1056: the first is dead (it renewed no more) and its lease has expired
    assert second.held()
    assert not first.held()  # back from the dead, it no longer runs batches
    second.release()
    assert first.held()  # a clean stop hands over at once


def _gateway(i: int) -> Member:
    return Member(f"replica-{i}", "gateway", f"node-{i}", f"10.0.0.{i}", 100 + i)


def _live(membership: Membership) -> list[tuple[str, str]]:
    return [(m.replica, m.node_id) for m in membership.roster().live]


def test_gateways_list_each_other_and_one_that_stops_renewing_is_gone_after_the_ttl(
    stores: tuple[Store, Store],
) -> None:
    """Two gateways on one database, a fake clock: each lists both with their nodes; one that stops renewing
    (dead) is gone once the TTL has passed, counted but not listed; a clean stop removes its row at once."""
    now = [1000.0]
    first, second = (
        Membership(store, _gateway(i), ttl_s=30, renew_s=10, clock=lambda: now[0])
        for i, store in enumerate(stores)
    )
    first.renew()
    second.renew()
    both = [("replica-0", "node-0"), ("replica-1", "node-1")]
    assert _live(first) == _live(second) == both
    row = first.roster().live[1]
    assert (row.role, row.node_address, row.pid, row.started_at, row.seen_at) == (
        "gateway", "10.0.0.1", 101, 1000.0, 1000.0,
    )  # fmt: skip
    now[0] += 25
    first.renew()  # the second renews no more
    assert _live(first) == both  # seen 25 s ago: not yet gone
    now[0] += 6  # 1031: the second was last seen 31 s ago
    first.renew()  # not due (6 s since the last): no write
    assert stores[1].members()[0].seen_at == 1025.0
    assert _live(first) == [("replica-0", "node-0")] and first.roster().gone == 1
    second.renew()  # back (a long pause, not a death): listed again, with its first start
    assert _live(first) == both and first.roster().live[1].started_at == 1000.0
    second.leave()  # a clean stop: gone from the list at once, and not counted as gone
    assert _live(first) == [("replica-0", "node-0")] and first.roster().gone == 0
    third = Membership(stores[1], _gateway(2), ttl_s=30, renew_s=10, clock=lambda: now[0])
    third.renew()  # then dies without stopping: counted as gone until forgotten
    now[0] += 31
    first.renew()
    assert first.roster().gone == 1
    now[0] += MEMBER_FORGET_S
    first.renew()  # a renewal deletes the rows of members unseen for MEMBER_FORGET_S
    assert [m.replica for m in stores[0].members()] == ["replica-0"] and first.roster().gone == 0


def test_the_batch_runners_loop_writes_the_membership_at_start_and_deletes_it_on_a_clean_stop(
    tmp_path: Path,
) -> None:
    """The heartbeat rides the batch runner's loop (one timer per gateway): its row exists as soon as the loop
    runs, and is gone once the loop has stopped."""
    import asyncio
    import time

    from gouache.service.batches import BatchRunner

    store = Store(f"sqlite:///{tmp_path / 'one.db'}", tmp_path / "blobs")
    store.migrate()

    async def never(*_: object) -> Any:
        raise AssertionError("no batch lines here")

    async def run() -> tuple[list[str], list[str]]:
        runner = BatchRunner(store, never, membership=Membership(store, _gateway(0)))
        task = asyncio.create_task(runner.run_forever())
        deadline = time.monotonic() + 60
        while not store.members() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        running = [m.replica for m in store.members()]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return running, [m.replica for m in store.members()]

    try:
        assert asyncio.run(run()) == (["replica-0"], [])
    finally:
        store.close()


def test_health_lists_the_answering_gateway_first_then_every_live_one() -> None:
    pytest.importorskip("ray", reason="the cluster's topology needs gouache[ray]")
    from gouache.cluster.topology import gateway_replicas
    from gouache.store.members import ClusterMember

    me = _gateway(1)
    other = ClusterMember("replica-0", "gateway", "node-0", "10.0.0.0", 100, 900.0, 990.0)
    mine = ClusterMember("replica-1", "gateway", "node-1", "10.0.0.1", 101, 950.0, 995.0)
    listed = gateway_replicas(me, [other, mine])
    assert [(r["replica"], r["node_id"], r["started_at"]) for r in listed] == [
        ("replica-1", "node-1", 950.0),
        ("replica-0", "node-0", 900.0),
    ]
    assert listed[1] == {
        "deployment": "gateway", "replica": "replica-0", "node_id": "node-0", "node_address": "10.0.0.0",
        "pid": 100, "started_at": 900.0, "seen_at": 990.0,
    }  # fmt: skip
    alone = gateway_replicas(me, [])  # its own row not written yet (or the database unreadable): still listed
    assert [(r["replica"], r["node_id"], r["seen_at"]) for r in alone] == [("replica-1", "node-1", None)]


def test_one_process_writes_no_membership_and_health_has_no_cluster(server: LiveServer) -> None:
    import httpx
    from sqlalchemy import create_engine, text

    health = httpx.get(f"{server.url}/health", timeout=60).json()
    assert "cluster" not in health
    engine = create_engine(f"sqlite:///{server.data_dir / 'gouache.db'}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM cluster_members")).scalar_one() == 0
    finally:
        engine.dispose()


class _FakeStream:
    """What `handle.options(stream=True).render.remote(...)` gives: the replica's events, here scripted."""

    def __init__(self, warm_s: float, result: RenderResult) -> None:
        self.warm_s, self.result = warm_s, result

    def __aiter__(self) -> Any:
        return self._events()

    async def _events(self) -> Any:
        import asyncio

        yield ("queued", {"warming": self.warm_s > 0})
        await asyncio.sleep(self.warm_s or 2.5)  # the replica's warm-up, or a job ahead of this one
        yield ("started", {"replica": "r1", "node": "n1", "warm_wait_s": self.warm_s})
        yield ("result", self.result)

    def cancel(self) -> None:
        pass


class _FakeHandle:
    def __init__(self, warm_s: float, result: RenderResult) -> None:
        self.render = SimpleNamespace(remote=lambda *args: _FakeStream(warm_s, result))

    def options(self, **_: object) -> _FakeHandle:
        return self


@pytest.mark.parametrize("warm_s", [2.5, 0.0])
def test_a_replicas_warm_up_does_not_count_against_the_gateways_deadline(warm_s: float) -> None:
    """A job the engine replica holds behind its warm-up keeps its whole deadline at the gateway (the replica
    says so, and by how much its own deadline moved); any other wait counts (the control)."""
    pytest.importorskip("ray", reason="the cluster's engine client needs gouache[ray]")
    import asyncio
    import time
    from concurrent.futures import ThreadPoolExecutor

    from gouache.cluster.client import RayEngineClient
    from gouache.engine.runner import DeadlineExceeded
    from gouache.service.images.dispatch import _wait

    _, default = build_catalog(Settings(catalog_file=None, default_model="gouache-mini"))  # type: ignore[call-arg]
    job = RenderJob(default, "a red circle", default.plan("low"), 64, 64, (1,))
    result = RenderResult([RenderedImage(b"png", "png", 64, 64, 1)], (64, 64))

    async def render() -> RenderResult:
        client = RayEngineClient({default.name: _FakeHandle(warm_s, result)}, default.name, max_queue=4)  # type: ignore[dict-item]
        deadline = time.monotonic() + 1.0  # far shorter than the warm-up
        return await _wait(client.submit(job, deadline=deadline), deadline)

    with ThreadPoolExecutor(1) as pool:  # a loop of its own (the main thread may hold one: Playwright)
        if warm_s:
            assert pool.submit(asyncio.run, render()).result(60) is result
        else:
            with pytest.raises(DeadlineExceeded):
                pool.submit(asyncio.run, render()).result(60)
