"""The operations pieces on their own, against real stores (SQLite, PostgreSQL): the price table and
calculator, moderation policy, token counting, rate-limit windows, budgets and alerts, keys, ledger pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gouache.cli import app
from gouache.service.access import ANONYMOUS, Caller, KeyService, Unauthorized
from gouache.service.ledger import PageQuery, costs_page, parse_since, usage_images_page, usage_summary
from gouache.service.policies.budgets import BudgetExceeded, Budgets, month_start
from gouache.service.policies.moderation import ModerationBlocked, ModerationPolicy, ModerationPolicyError
from gouache.service.policies.pricing import (
    LocalRates,
    PriceTable,
    estimate,
    format_usd,
    images_cost,
    text_cost,
)
from gouache.service.policies.rate_limits import RateLimited, RateLimiter, format_duration
from gouache.service.usage import count_text_tokens
from gouache.store import ALL_OWNERS, Store
from tests.postgres import private_schema_store

#: gpt-image-2's published per-image prices (the issue's table).
PUBLISHED = [
    ("low", "1024x1024", 0.02),
    ("low", "2048x2048", 0.06),
    ("medium", "1024x1024", 0.04),
    ("medium", "2048x2048", 0.10),
    ("medium", "3840x2160", 0.20),
    ("high", "1024x1024", 0.08),
    ("high", "2048x2048", 0.18),
    ("high", "3840x2160", 0.35),
]


def _size(size: str) -> tuple[int, int]:
    w, h = size.split("x")
    return int(w), int(h)


@pytest.mark.parametrize(("quality", "size", "price"), PUBLISHED)
def test_calculator_matches_the_published_prices(quality: str, size: str, price: float) -> None:
    prices = PriceTable.load()
    assert prices.image_price(quality, *_size(size)) == pytest.approx(price)
    assert images_cost(prices, quality, *_size(size), n=3) == pytest.approx(3 * price)
    assert estimate(prices, size, quality, n=3).total_usd == pytest.approx(3 * price)


def test_calculator_between_and_beyond_the_listed_sizes(tmp_path: Path) -> None:
    prices = PriceTable.load()
    # Linear in pixels between listed sizes: 1536x1024 is 1/6 of the way from 1024^2 to 2048^2.
    assert prices.image_price("medium", 1536, 1024) == pytest.approx(0.05)
    assert prices.image_price("low", 512, 512) == pytest.approx(0.02)  # the smallest listed price is a floor
    assert prices.image_price("low", 3840, 2160) == pytest.approx(0.06 * 3840 * 2160 / 2048**2)
    # Edits pay their input image tokens, streams their partial images (100 output tokens each).
    assert images_cost(prices, "low", 1024, 1024, 1, input_image_tokens=765) == pytest.approx(
        0.02 + 765 * 8e-6
    )
    assert images_cost(prices, "low", 1024, 1024, 1, partial_images=2) == pytest.approx(0.02 + 200 * 30e-6)
    assert text_cost(prices, 1000, 100) == pytest.approx(1000 * 1.25e-6 + 100 * 10e-6)
    # A turn-based estimate adds the text model's tokens.
    turns = estimate(prices, "1024x1024", "low", n=1, turns=3, input_tokens=200, output_tokens=50)
    assert turns.total_usd == pytest.approx(3 * 0.02 + 600 * 1.25e-6 + 150 * 10e-6)
    # Overrides merge over the shipped table.
    override = tmp_path / "prices.toml"
    override.write_text('[images.low]\n"1024x1024" = 0.01\n[tokens]\ntext_input = 2.0\n')
    custom = PriceTable.load(override)
    assert custom.image_price("low", 1024, 1024) == 0.01
    assert custom.image_price("low", 2048, 2048) == 0.06
    assert custom.per_token("text_input") == pytest.approx(2e-6)
    assert format_usd(0.1 + 0.2) == "0.3" and format_usd(0) == "0" and format_usd(0.02666667) == "0.02666667"


def test_local_cost_from_cpu_time_and_energy() -> None:
    rates = LocalRates(cpu_hour_usd=0.36, watts=100, kwh_usd=0.5)
    # 10 CPU-seconds at $0.36/h = $0.001; 36 s at 100 W = 0.001 kWh = $0.0005.
    assert rates.cost(wall_s=36, cpu_s=10) == pytest.approx(0.0015)


def test_cost_estimate_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOUACHE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "160")
    result = CliRunner().invoke(
        app, ["cost", "estimate", "--size", "3840x2160", "--quality", "high", "--n", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "$0.35" in result.output and "$0.7" in result.output
    for bad in (["--size", "12x"], ["--quality", "ultra"], ["--n", "0"]):
        result = CliRunner().invoke(app, ["cost", "estimate", *bad])
        assert result.exit_code == 2, bad


def test_text_tokens_are_o200k() -> None:
    assert count_text_tokens("hello world") == 2  # o200k_base ids [24912, 2375]
    assert count_text_tokens("") == 0
    assert count_text_tokens("<|endoftext|>") > 1  # special-token text is plain text here


def test_moderation_policy(tmp_path: Path) -> None:
    policy = ModerationPolicy.load()
    assert policy.violations("a red fox in the snow") == []
    assert policy.violations("a nude figure") == ["sexual"]
    assert policy.violations("a nude figure", "low") == []
    assert "sexual/minors" in policy.violations("naked kids", "low")
    with pytest.raises(ModerationBlocked) as info:
        policy.screen("a gory battle")
    error = info.value.to_error()
    assert error["code"] == "moderation_blocked" and error["type"] == "image_generation_user_error"
    assert error["moderation_details"] == {"moderation_stage": "input", "categories": ["violence/graphic"]}
    custom = tmp_path / "policy.toml"
    custom.write_text('[categories.custom]\nlevels = ["auto", "low"]\nwords = ["forbidden fruit"]\n')
    assert ModerationPolicy.load(custom).violations("the Forbidden  Fruit", "low") == ["custom"]
    custom.write_text(f'classifier = "{__name__}:shouting_classifier"\n' + custom.read_text())
    with_classifier = ModerationPolicy.load(custom)
    assert with_classifier.violations("A CALM LAKE") == ["harassment"]
    assert with_classifier.violations("a calm lake") == []
    custom.write_text('classifier = "no.such.module:f"\n')
    with pytest.raises(ModerationPolicyError):
        ModerationPolicy.load(custom)


def shouting_classifier(text: str, level: str) -> list[str]:
    """A stand-in classifier for the policy hook: all-capitals prompts count as harassment."""
    return ["harassment"] if text.isupper() else []


def test_rate_limiter_window() -> None:
    limiter = RateLimiter(window_s=30)
    assert limiter.take("k", "requests", None) is None
    assert limiter.take("k", "requests", 2).remaining == 1  # type: ignore[union-attr]
    assert limiter.take("k", "requests", 2).remaining == 0  # type: ignore[union-attr]
    with pytest.raises(RateLimited) as info:
        limiter.take("k", "requests", 2)
    assert info.value.status == 429 and info.value.code == "rate_limit_exceeded"
    assert 1 <= int(info.value.headers["retry-after"]) <= 30
    assert info.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert limiter.take("other", "requests", 2) is not None  # per key
    assert (
        format_duration(0.02) == "20ms" and format_duration(1.5) == "1.5s" and format_duration(360) == "6m0s"
    )


# --- with a real store -------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'gouache.db'}", tmp_path / "blobs")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def pg_store(tmp_path: Path, postgres_url: str) -> Iterator[Store]:
    with private_schema_store(postgres_url, tmp_path / "blobs", "gouache_ops") as s:
        s.migrate()
        yield s


def _ledger_round_trip(store: Store) -> None:
    """Keys, ledger rows, spend and the OpenAI-shaped pages; the same on SQLite and PostgreSQL."""
    keys = KeyService(store)
    alice, secret = keys.create("alice", budget_usd=1.0, rate_limit_images=5)
    bob, _ = keys.create("bob")
    assert secret.startswith("sk-gouache-") and secret not in repr(store.list_api_keys())
    assert keys.authenticate(secret, "127.0.0.1") == Caller.of(alice)
    usage = {"input_tokens": 5, "output_tokens": 272, "total_tokens": 277}
    for owner, n, cost in ((alice.id, 2, 0.04), (alice.id, 1, 0.05), (bob.id, 1, 0.02)):
        rid = store.create_request(
            "images.generations", "gpt-image-2", {"prompt": "x"}, api_key_id=owner, size="1024x1024",
            quality="low", image_count=n, cost_usd=cost,
        )  # fmt: skip
        store.finish_request(rid, "succeeded", usage=usage, local_cost_usd=0.001, wall_s=1.0, cpu_s=2.0)
    since = month_start()
    assert store.spend_since(since, alice.id) == (pytest.approx(0.09), 3)
    assert store.spend_since(since, ALL_OWNERS) == (pytest.approx(0.11), 4)
    summary = usage_summary(store, since, by="key")
    assert summary.rows[alice.id].images == 3 and summary.total.hosted_usd == pytest.approx(0.11)
    start = int((datetime.now(UTC) - timedelta(days=1)).timestamp())
    query = PageQuery(start, None, "1d", None, None, ("api_key_id", "size"))
    page = usage_images_page(store, query, alice.id)
    results = [r for bucket in page["data"] for r in bucket["results"]]
    assert results == [
        {"object": "organization.usage.images.result", "images": 3, "num_model_requests": 2, "project_id": None,
         "user_id": None, "api_key_id": alice.id, "model": None, "size": "1024x1024", "source": None}
    ]  # fmt: skip
    costs = costs_page(store, PageQuery(start, None, "1d", None, None, ()), ALL_OWNERS)
    assert page["object"] == costs["object"] == "page"
    values = [r["amount"]["value"] for bucket in costs["data"] for r in bucket["results"]]
    assert sum(values) == pytest.approx(0.11)
    assert keys.revoke(bob.id) and not keys.revoke(bob.id)
    with pytest.raises(Unauthorized):
        keys.authenticate("sk-gouache-wrong", "127.0.0.1")


def test_ledger_and_keys_sqlite(store: Store) -> None:
    _ledger_round_trip(store)


def test_ledger_and_keys_postgres(pg_store: Store) -> None:
    assert pg_store.engine.dialect.name == "postgresql"
    _ledger_round_trip(pg_store)


def test_open_server_answers_loopback_only(store: Store) -> None:
    keys = KeyService(store)
    assert keys.authenticate(None, "127.0.0.1") is ANONYMOUS
    assert keys.authenticate("anything", "::1") is ANONYMOUS
    with pytest.raises(Unauthorized):
        keys.authenticate(None, "192.0.2.7")
    with pytest.raises(Unauthorized):
        KeyService(store, require_auth=True).authenticate(None, "127.0.0.1")


def test_organization_pages_paginate(store: Store) -> None:
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    query = PageQuery(start, start + 10 * 86400, "1d", 4, None, ())
    first = usage_images_page(store, query, ALL_OWNERS)
    assert len(first["data"]) == 4 and first["has_more"] and first["next_page"]
    assert first["data"][0] == {
        "object": "bucket",
        "start_time": start,
        "end_time": start + 86400,
        "results": [],
    }
    rest = usage_images_page(
        store, PageQuery(start, start + 10 * 86400, "1d", 31, first["next_page"], ()), ALL_OWNERS
    )
    assert len(rest["data"]) == 6 and not rest["has_more"] and rest["next_page"] is None


def test_global_budget_soft_alert_once_then_hard_limit(store: Store) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    budgets = Budgets(
        store,
        images=5,
        soft_fraction=0.6,
        webhook_url="http://hook",
        notify=lambda u, p, _: sent.append((u, p)),
    )
    assert budgets.check(ANONYMOUS, 0.02, 2) == []
    store.create_request("images.generations", "m", {}, image_count=2, cost_usd=0.04)
    warnings = budgets.check(ANONYMOUS, 0.02, 1)
    assert warnings and "60%" in warnings[0]
    assert budgets.check(ANONYMOUS, 0.02, 1) == warnings  # warned again, alerted once
    assert len(sent) == 1 and sent[0][1]["scope"] == "global" and sent[0][1]["kind"] == "images"
    with pytest.raises(BudgetExceeded) as info:
        budgets.check(ANONYMOUS, 0.08, 4)
    assert info.value.status == 429 and info.value.code == info.value.type == "insufficient_quota"


def test_admitted_requests_hold_their_cost_until_recorded(store: Store) -> None:
    """Concurrent requests cannot all pass the same remaining budget: each admission holds its cost."""
    key = Caller(key_id="key_x", budget_usd=0.05)
    budgets = Budgets(store)
    _, first = budgets.admit(key, 0.02, 1)
    _, second = budgets.admit(key, 0.02, 1)
    with pytest.raises(BudgetExceeded):
        budgets.admit(key, 0.02, 1)  # 0.06 held or spent
    assert budgets.admit(ANONYMOUS, 0.02, 1) == ([], None)  # no budget applies: nothing held
    assert first is not None and second is not None
    store.create_request("images.generations", "m", {}, api_key_id="key_x", image_count=1, cost_usd=0.02)
    first.release()  # its row now counts instead
    with pytest.raises(BudgetExceeded):
        budgets.admit(key, 0.02, 1)
    second.release()  # never started
    assert budgets.admit(key, 0.02, 1)[1] is not None


def test_parse_since() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_since("yesterday", now)
