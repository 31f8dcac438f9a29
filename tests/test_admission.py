"""Admission in process: `Operations.admit` (the monthly budgets, then the per-key images limit, releasing
what was held when the limit refuses) and `ImageService.prepare` in front of it (queue, moderation, rules,
price), against a real SQLite store. No server and no model load: the engine's queue is real but never
started, so nothing renders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gouache.engine.catalog import Catalog
from gouache.engine.pipelines import ModelCache
from gouache.engine.queue import JobQueue
from gouache.engine.runner import Runner
from gouache.service.access import ANONYMOUS, Caller
from gouache.service.container import build_catalog
from gouache.service.errors import InvalidRequest, QueueFullError, ServiceError
from gouache.service.images import GenerateParams, ImageService
from gouache.service.images.rules import build_job
from gouache.service.operations import Admission, Operations
from gouache.service.policies.budgets import BudgetExceeded
from gouache.service.policies.moderation import ModerationBlocked
from gouache.service.policies.rate_limits import RateLimited
from gouache.settings import GPT_IMAGE_MODEL_NAMES, Settings
from gouache.store import ALL_OWNERS, Store

LOW = GenerateParams(prompt="a dot", size="1024x1024", quality="low")  # $0.02 an image


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'gouache.db'}", tmp_path / "blobs")
    s.migrate()
    yield s
    s.close()


def settings(tmp_path: Path, **fields: object) -> Settings:
    """The server's settings with no budget or limit unless given (whatever the environment says)."""
    defaults: dict[str, object] = {
        "catalog_file": None,
        "default_model": "gouache-mini",
        "model_aliases": list(GPT_IMAGE_MODEL_NAMES),
        "budget_usd": None,
        "budget_images": None,
        "budget_soft_fraction": 0.8,
        "budget_webhook_url": None,
        "rate_limit_requests": None,
        "rate_limit_images": None,
        "rate_limit_window_s": 60.0,
    }
    return Settings(data_dir=tmp_path, **{**defaults, **fields})  # type: ignore[arg-type]


@pytest.fixture
def ops(tmp_path: Path, store: Store) -> Operations:
    return Operations.from_settings(settings(tmp_path), store)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return build_catalog(settings(tmp_path_factory.mktemp("catalog")))[0]


# --- Operations.admit -------------------------------------------------------------------------------------


def test_admission_holds_the_cost_until_released(ops: Operations) -> None:
    carol = Caller(key_id="key_carol", budget_usd=0.05)
    first = ops.admit(carol, 0.02, 1)
    assert first.warnings == () and first.reservation is not None
    second = ops.admit(carol, 0.02, 1)
    assert second.warnings == ("key key_carol: 80% of the monthly budget of $0.05 used",)
    with pytest.raises(BudgetExceeded) as info:
        ops.admit(carol, 0.02, 1)
    assert (info.value.status, info.value.code) == (429, "insufficient_quota")
    assert info.value.message == (
        "You exceeded your current quota: the key key_carol monthly budget is $0.05, $0.04 is spent this "
        "month and this request needs $0.02."
    )
    assert info.value.headers == {"x-should-retry": "false"}
    second.release()
    second.release()  # twice is harmless
    assert ops.admit(carol, 0.02, 1).reservation is not None
    with pytest.raises(BudgetExceeded):
        ops.admit(carol, 0.02, 1)  # the first and the third hold $0.04


def test_no_budget_holds_nothing(ops: Operations) -> None:
    admission = ops.admit(ANONYMOUS, 0.02, 1)
    assert admission == Admission((), None)
    admission.release()


def test_the_images_limit_refuses_and_releases_the_budget_hold(ops: Operations) -> None:
    gina = Caller(key_id="key_gina", budget_usd=0.08, rate_limit_images=2)
    kept = ops.admit(gina, 0.04, 2)
    with pytest.raises(RateLimited) as info:
        ops.admit(gina, 0.02, 1)
    assert (info.value.status, info.value.type, info.value.code) == (429, "images", "rate_limit_exceeded")
    assert info.value.headers["x-ratelimit-limit-images"] == "2"
    assert info.value.headers["x-ratelimit-remaining-images"] == "0"
    assert 1 <= int(info.value.headers["retry-after"]) <= 60
    assert info.value.message.startswith(
        "Rate limit reached for images on this key: limit 2 per 60s, used 2."
    )
    with pytest.raises(InvalidRequest) as too_many:
        ops.admit(gina, 0.03, 3)  # more than the limit at once can never pass
    assert (too_many.value.status, too_many.value.param) == (400, "n")
    assert too_many.value.message == (
        "This request needs 3 images but the limit is 2 images per 60s window; ask for fewer."
    )
    # Only the admitted $0.04 is held: the refused requests' holds were released.
    ops.budgets.check(gina, 0.04, 0)
    with pytest.raises(BudgetExceeded):
        ops.budgets.check(gina, 0.05, 0)
    kept.release()
    ops.budgets.check(gina, 0.08, 0)


def test_the_budget_refuses_before_the_images_limit_counts(ops: Operations) -> None:
    frank = Caller(key_id="key_frank", budget_images=1, rate_limit_images=5)
    with pytest.raises(BudgetExceeded) as info:
        ops.admit(frank, 0.04, 2)
    assert "the key key_frank monthly budget is 1 images" in info.value.message
    assert ops.limit_headers(frank)["x-ratelimit-remaining-images"] == "5"  # nothing taken


def test_server_wide_defaults_apply_to_keys_without_their_own(tmp_path: Path, store: Store) -> None:
    ops = Operations.from_settings(settings(tmp_path, budget_usd=0.03, rate_limit_images=1), store)
    assert ops.admit(ANONYMOUS, 0.025, 1).warnings == ("global: 83% of the monthly budget of $0.03 used",)
    with pytest.raises(BudgetExceeded):
        ops.admit(Caller(key_id="key_y"), 0.02, 1)  # $0.025 held + $0.02 > $0.03, whoever asks
    ops.admit(Caller(key_id="key_x"), 0.0, 1)
    with pytest.raises(RateLimited):
        ops.admit(Caller(key_id="key_x"), 0.0, 1)  # the server's images limit, per key
    assert ops.admit(Caller(key_id="key_z", rate_limit_images=2), 0.0, 2).reservation is not None


# --- ImageService.prepare ---------------------------------------------------------------------------------


def service(catalog: Catalog, store: Store, ops: Operations, max_queue: int = 4) -> ImageService:
    return ImageService(catalog, JobQueue(Runner(ModelCache()), max_queue=max_queue), store, ops)


def rows(store: Store) -> list[tuple[str, str, float, int, str | None]]:
    """(endpoint, status, cost, images, error code) of every ledger row, oldest first."""
    out = []
    for row in store.ledger(datetime(2000, 1, 1, tzinfo=UTC), owner=ALL_OWNERS):
        view = store.get_request(row.id)
        assert view is not None
        out.append((row.endpoint, row.status, row.cost_usd, row.image_count, (view.error or {}).get("code")))
    return out


def test_prepare_prices_and_admits_before_any_compute(
    catalog: Catalog, store: Store, ops: Operations
) -> None:
    images = service(catalog, store, ops)
    carol = Caller(key_id="key_carol", budget_usd=0.05)
    prepared = asyncio.run(images.prepare(GenerateParams(**{**LOW.__dict__, "seed": 3}), caller=carol))
    assert (prepared.endpoint, prepared.quality, prepared.cost_usd) == ("images.generations", "low", 0.02)
    assert prepared.caller is carol and prepared.deadline is None and prepared.partials_sent == 0
    assert prepared.admission.warnings == () and prepared.admission.reservation is not None
    assert prepared.cache_key is not None and prepared.job.previews == 0
    streamed = asyncio.run(images.prepare(LOW, previews=2, caller=carol))
    # + 2 partial images of 100 output tokens at $30/1M; never served from the cache.
    assert streamed.cost_usd == pytest.approx(0.026) and streamed.job.previews == 2
    assert streamed.cache_key is None
    assert streamed.admission.warnings == ("key key_carol: 92% of the monthly budget of $0.05 used",)
    assert rows(store) == []  # admitted requests get their row when they run


def test_the_cache_key_follows_where_the_model_renders(
    catalog: Catalog, store: Store, ops: Operations
) -> None:
    """The service keys the result cache on the device and dtype the engine resolves for the model: a model
    moved to a GPU (or to bfloat16) renders anew instead of answering with the CPU's bytes."""
    seeded = GenerateParams(**{**LOW.__dict__, "seed": 3})
    on_cpu = asyncio.run(service(catalog, store, ops).prepare(seeded)).cache_key
    queue = JobQueue(Runner(ModelCache()), max_queue=4)
    on_gpu = ImageService(catalog, queue, store, ops, placement=lambda spec: ("cuda:0", "float16"))
    moved = asyncio.run(on_gpu.prepare(seeded)).cache_key
    assert on_cpu is not None and moved is not None and on_cpu != moved


def test_refusals_are_ledger_rows_at_zero_cost(catalog: Catalog, store: Store, ops: Operations) -> None:
    images = service(catalog, store, ops)
    frank = Caller(key_id="key_frank", budget_images=1)
    refusals: list[ServiceError] = []
    for params, caller in (
        (GenerateParams(prompt="a nude figure", size="10x10"), ANONYMOUS),  # moderation before the rules
        (GenerateParams(prompt="x", size="10x10"), ANONYMOUS),
        (GenerateParams(**{**LOW.__dict__, "n": 2}), frank),
    ):
        with pytest.raises(ServiceError) as info:
            asyncio.run(images.prepare(params, caller=caller))
        refusals.append(info.value)
    assert isinstance(refusals[0], ModerationBlocked) and isinstance(refusals[2], BudgetExceeded)
    assert [e.code for e in refusals] == ["moderation_blocked", "invalid_value", "insufficient_quota"]
    assert rows(store) == [
        ("images.generations", "failed", 0.0, 0, "moderation_blocked"),
        ("images.generations", "failed", 0.0, 0, "invalid_value"),
        ("images.generations", "failed", 0.0, 0, "insufficient_quota"),
    ]
    counted = [
        ops.metrics.registry.get_sample_value("gouache_refusals_total", {"code": code})
        for code in ("moderation_blocked", "invalid_value", "insufficient_quota")
    ]
    assert counted == [1, 1, 1]


def test_a_full_queue_refuses_at_once(catalog: Catalog, store: Store, ops: Operations) -> None:
    images = service(catalog, store, ops, max_queue=1)
    waiting = images.engine.queue.submit(build_job(catalog, LOW)[0])  # never started: it stays queued

    async def refused() -> QueueFullError:
        with pytest.raises(QueueFullError) as info:
            await images.prepare(LOW)
        deadline = time.monotonic() + 10
        while not await asyncio.to_thread(rows, store) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the refusal is recorded in the background
        return info.value

    try:
        error = asyncio.run(refused())
    finally:
        images.engine.queue.stop(timeout=0)
    assert waiting.cancelled
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    assert error.message == "The queue is full (1 jobs waiting or running); retry shortly."
    assert int(error.headers["retry-after"]) >= 1
    assert rows(store) == [("images.generations", "failed", 0.0, 0, "rate_limit_exceeded")]
