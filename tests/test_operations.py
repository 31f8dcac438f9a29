"""Operations against a live server, through the official SDK and httpx: keys (401), per-key isolation,
the usage ledger and cost figures after a scripted set of calls, moderation, soft and hard budgets with a
webhook receiver on loopback, rate limits (429 and the SDK's retries), organization usage/costs pages, and a
Prometheus scrape."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from gouache.store import ALL_OWNERS, Store
from tests.live import LiveServer, start_server

FAST = {"steps": 1}  # one denoising step: these tests are about accounting, not pictures
# The rate-limit window: short so that retries are quick, long enough that a loaded machine answers the first
# request of a test inside it (at 2 s, `n=2` on a busy CI runner outlived the window).
WINDOW_S = 5


@dataclass
class Webhook:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    #: Per event: its raw body and headers (to check the signature).
    raw: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


#: Signs the budget alerts (the same secret and scheme as the batch events).
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"gouache-ops-webhook-key").decode()


@dataclass
class Ops:
    server: LiveServer
    webhook: Webhook
    keys: dict[str, tuple[str, str]]  # name -> (key id, secret)

    def client(self, name: str | None, **kwargs: Any) -> OpenAI:
        secret = self.keys[name][1] if name else "no-such-key"
        options: dict[str, Any] = {"max_retries": 0, "timeout": 120, **kwargs}
        return OpenAI(base_url=self.server.base_url, api_key=secret, **options)

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name][1]}"}

    def key_id(self, name: str) -> str:
        return self.keys[name][0]

    def store(self) -> Store:
        return Store(f"sqlite:///{self.server.data_dir / 'gouache.db'}", self.server.data_dir / "blobs")


def gouache(data_dir: Path, *args: str) -> str:
    """Run the CLI on the server's data directory (as an operator would, beside the running server)."""
    env = {**os.environ, "GOUACHE_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "gouache.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def create_key(data_dir: Path, name: str, *options: str) -> tuple[str, str]:
    out = gouache(data_dir, "keys", "create", name, *options).splitlines()
    key_id = out[0].split()[1]
    return key_id, out[-1].strip()


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook("")

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.raw.append((body, {k.lower(): v for k, v in self.headers.items()}))
            hook.received.append(json.loads(body))
            hook.arrived.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    hook.url = f"http://127.0.0.1:{httpd.server_address[1]}/alerts"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield hook
    httpd.shutdown()


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory, webhook: Webhook) -> Iterator[Ops]:
    data_dir = tmp_path_factory.mktemp("ops")
    env = {
        "GOUACHE_RATE_LIMIT_WINDOW_S": str(WINDOW_S),
        "GOUACHE_BUDGET_WEBHOOK_URL": webhook.url,
        "GOUACHE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GOUACHE_BUDGET_SOFT_FRACTION": "0.8",
    }
    server = start_server(data_dir, env)
    try:
        # Open on loopback while no key exists.
        assert httpx.get(f"{server.base_url}/models").status_code == 200
        keys = {
            "alice": create_key(data_dir, "alice"),
            "bob": create_key(data_dir, "bob"),
            "admin": create_key(data_dir, "admin", "--admin"),
            "carol": create_key(data_dir, "carol", "--budget-usd", "0.05"),
            "frank": create_key(data_dir, "frank", "--budget-images", "3"),
            "dave": create_key(data_dir, "dave", "--rpm", "2"),
            "gina": create_key(data_dir, "gina", "--ipm", "2"),
        }
        yield Ops(server, webhook, keys)
    finally:
        server.stop()


def png(size: tuple[int, int] = (1024, 1024)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buf, format="PNG")
    return buf.getvalue()


# --- keys -------------------------------------------------------------------------------------------------


def test_missing_wrong_and_revoked_keys_get_401(ops: Ops) -> None:
    base = ops.server.base_url
    for headers in (
        {},
        {"Authorization": "Bearer sk-gouache-not-a-real-key-123456"},
        {"Authorization": "Basic x"},
    ):
        response = httpx.post(f"{base}/images/generations", json={"prompt": "x"}, headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
        assert error["param"] is None and error["message"]
        assert response.headers["x-request-id"].startswith("req_")
    wrong = httpx.get(f"{base}/models", headers={"Authorization": "Bearer sk-gouache-not-a-real-key-123456"})
    assert "not-a-real-key" not in wrong.text and "sk-gou...3456" in wrong.text  # redacted, never echoed
    with pytest.raises(openai.AuthenticationError) as info:
        ops.client(None).models.list()
    assert info.value.code == "invalid_api_key"
    assert ops.client("alice").models.list().data
    # Health, metrics and the API description stay open.
    for path in ("/health", "/metrics"):
        assert httpx.get(f"{ops.server.url}{path}").status_code == 200
    # A revoked key is refused at once.
    key_id, secret = create_key(ops.server.data_dir, "eve")
    assert httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    gouache(ops.server.data_dir, "keys", "revoke", key_id)
    revoked = httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {secret}"})
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
    listing = gouache(ops.server.data_dir, "keys", "list", "--all")
    assert key_id in listing and "revoked" in listing and secret not in listing
    assert secret not in ops.server.log()


# --- ledger and costs -------------------------------------------------------------------------------------


def test_ledger_and_costs_after_sdk_calls(ops: Ops) -> None:
    client = ops.client("alice")
    calls = [
        client.images.with_raw_response.generate(
            model="gpt-image-2", prompt="a red circle", size="1024x1024", quality="low", n=2, extra_body=FAST
        ),
        client.images.with_raw_response.generate(
            model="gpt-image-2", prompt="a blue square", size="1536x1024", quality="medium", extra_body=FAST
        ),
        client.images.with_raw_response.edit(
            model="gpt-image-2", image=("in.png", png(), "image/png"), prompt="make it green", size="1024x1024",
            quality="low", extra_body=FAST,
        ),
    ]  # fmt: skip
    # 2 x $0.02; $0.04 + 1/6 of ($0.10 - $0.04); $0.02 + 765 input image tokens at $8/1M.
    expected = [0.04, 0.05, 0.02 + 765 * 8e-6]
    assert [float(c.headers["x-gouache-cost-usd"]) for c in calls] == pytest.approx(expected)
    with client.images.with_streaming_response.generate(
        model="gpt-image-2", prompt="a star", size="1024x1024", quality="low", stream=True, partial_images=1,
        extra_body=FAST,
    ) as streamed:  # fmt: skip
        # Known before any compute, so it is a header of the stream too: + 100 partial-image tokens at $30/1M.
        assert float(streamed.headers["x-gouache-cost-usd"]) == pytest.approx(0.02 + 100 * 30e-6)
        assert b"image_generation.completed" in b"".join(streamed.iter_bytes())
    turn = client.responses.create(
        model="gpt-5", input="draw a yellow triangle", tools=[{"type": "image_generation", "quality": "low",
        "size": "1024x1024", "steps": 1}],  # type: ignore[list-item]
    )  # fmt: skip
    assert turn.usage is not None

    with ops.store() as store:
        rows = store.ledger(datetime_min(), owner=ops.key_id("alice"))
    images_rows = [r for r in rows if r.endpoint.startswith("images.")]
    assert [r.cost_usd for r in images_rows] == pytest.approx([*expected, 0.023, 0.02])
    assert [r.image_count for r in images_rows] == [2, 1, 1, 1, 1]
    assert [(r.size, r.quality) for r in images_rows][:2] == [("1024x1024", "low"), ("1536x1024", "medium")]
    for row in images_rows:
        assert row.status == "succeeded" and row.api_key_id == ops.key_id("alice")
        assert row.wall_s and row.wall_s > 0 and row.cpu_s and row.cpu_s > 0 and row.local_cost_usd > 0
        assert row.usage and row.usage["output_tokens"] > 0
    text_row = next(r for r in rows if r.endpoint == "responses")
    assert text_row.usage is not None
    assert text_row.usage["input_tokens"] == turn.usage.input_tokens > 0
    assert text_row.usage["output_tokens"] == turn.usage.output_tokens > 0
    assert text_row.cost_usd == pytest.approx(
        turn.usage.input_tokens * 1.25e-6 + turn.usage.output_tokens * 10e-6
    )
    total = sum(r.cost_usd for r in rows)

    # The same figures through OpenAI's organization endpoints and the CLI.
    start = int(rows[0].created_at.timestamp()) - 60
    costs = httpx.get(
        f"{ops.server.base_url}/organization/costs",
        params={"start_time": start},
        headers=ops.headers("alice"),
    ).json()
    assert costs["object"] == "page" and costs["data"][0]["object"] == "bucket"
    amounts = [r["amount"]["value"] for b in costs["data"] for r in b["results"]]
    assert sum(amounts) == pytest.approx(total, abs=1e-5)
    assert all(r["amount"]["currency"] == "usd" for b in costs["data"] for r in b["results"])
    images = httpx.get(
        f"{ops.server.base_url}/organization/usage/images",
        params={"start_time": start, "group_by": ["size", "source"], "bucket_width": "1h"},
        headers=ops.headers("alice"),
    ).json()
    results = {(r["size"], r["source"]): r for b in images["data"] for r in b["results"]}
    assert results[("1024x1024", "image.generation")]["images"] == 4  # n=2, the stream, the turn
    assert results[("1024x1024", "image.generation")]["num_model_requests"] == 3
    assert results[("1024x1024", "image.edit")]["images"] == 1
    assert results[("1536x1024", "image.generation")]["object"] == "organization.usage.images.result"
    bad = httpx.get(
        f"{ops.server.base_url}/organization/costs",
        params={"start_time": start, "bucket_width": "1h"},
        headers=ops.headers("alice"),
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "bucket_width"
    for params, param in (  # past any datetime: a 400 naming it, never a 500
        ({"start_time": 2**70}, "start_time"),
        ({"start_time": start, "end_time": 2**70}, "end_time"),
        ({"start_time": start, "page": f"page_{2**70}"}, "page"),
    ):
        far = httpx.get(
            f"{ops.server.base_url}/organization/usage/images", params=params, headers=ops.headers("alice")
        )
        assert far.status_code == 400 and far.json()["error"]["param"] == param, far.text
    out = gouache(ops.server.data_dir, "usage", "--key", ops.key_id("alice"), "--by", "model")
    assert "gpt-image-2" in out and "gpt-5" in out and f"${round(total, 6):g}"[:6] in out


def datetime_min() -> Any:
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC)


# --- isolation --------------------------------------------------------------------------------------------


def test_keys_cannot_read_each_others_data(ops: Ops) -> None:
    alice, bob, admin = ops.client("alice"), ops.client("bob"), ops.client("admin")
    turn = alice.responses.create(
        model="gpt-5", input="draw a green circle",
        tools=[{"type": "image_generation", "quality": "low", "size": "1024x1024", "steps": 1}],  # type: ignore[list-item]
    )  # fmt: skip
    call_id = turn.output[0].id
    link = (
        alice.images.generate(
            model="gpt-image-2",
            prompt="a cube",
            size="1024x1024",
            quality="low",
            extra_body={**FAST, "response_format": "url"},
        )
        .data[0]
        .url
    )
    assert link
    assert httpx.get(link, headers=ops.headers("alice")).status_code == 200
    assert httpx.get(link, headers=ops.headers("bob")).status_code == 404
    for call in (
        lambda: bob.responses.retrieve(turn.id),
        lambda: bob.responses.input_items.list(turn.id),
        lambda: bob.responses.delete(turn.id),
        lambda: bob.responses.create(
            model="gpt-5",
            input="make it red",
            previous_response_id=turn.id,
            tools=[{"type": "image_generation"}],
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    with pytest.raises(openai.BadRequestError) as info:  # another key's image is no input either
        bob.responses.create(
            model="gpt-5", input=[{"type": "image_generation_call", "id": call_id}],  # type: ignore[list-item]
            tools=[{"type": "image_generation"}],
        )  # fmt: skip
    assert info.value.code == "image_file_not_found"
    costs = httpx.get(
        f"{ops.server.base_url}/organization/costs",
        params={"start_time": int(time.time()) - 86400},
        headers=ops.headers("bob"),
    ).json()
    # Bob spent nothing yet (moderation comes later); alice's spend is not his. Admin sees it.
    assert costs["data"] and all(b["results"] == [] for b in costs["data"])
    everyone = httpx.get(
        f"{ops.server.base_url}/organization/costs",
        params={"start_time": int(time.time()) - 86400},
        headers=ops.headers("admin"),
    ).json()
    assert sum(r["amount"]["value"] for b in everyone["data"] for r in b["results"]) > 0.1
    # The owner and admin keys read it.
    assert alice.responses.retrieve(turn.id).id == turn.id
    assert admin.responses.retrieve(turn.id).id == turn.id
    alice.responses.delete(turn.id)
    with pytest.raises(openai.NotFoundError):
        admin.responses.retrieve(turn.id)


# --- moderation -------------------------------------------------------------------------------------------


def test_moderation_blocks_before_compute_and_is_recorded(ops: Ops) -> None:
    client = ops.client("bob")
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(model="gpt-image-2", prompt="a nude figure on a beach", extra_body=FAST)
    error = info.value.body
    assert isinstance(error, dict)
    assert error["code"] == "moderation_blocked" and error["type"] == "image_generation_user_error"
    assert error["param"] is None
    assert error["moderation_details"] == {"moderation_stage": "input", "categories": ["sexual"]}
    # moderation=low lets the milder category through, not the gravest.
    allowed = client.images.generate(
        model="gpt-image-2", prompt="a nude figure on a beach", moderation="low", size="1024x1024", quality="low",
        extra_body=FAST,
    )  # fmt: skip
    assert allowed.data[0].b64_json
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(model="gpt-image-2", prompt="naked kids", moderation="low", extra_body=FAST)
    assert info.value.code == "moderation_blocked"
    with pytest.raises(openai.BadRequestError) as info:
        client.images.edit(
            model="gpt-image-2", image=("in.png", png(), "image/png"), prompt="add gore everywhere"
        )
    assert info.value.code == "moderation_blocked"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(
            model="gpt-5", input="a decapitated statue", tools=[{"type": "image_generation"}]
        )
    assert info.value.code == "moderation_blocked"
    with ops.store() as store:
        rows = store.ledger(datetime_min(), owner=ops.key_id("bob"))
    blocked = [r for r in rows if r.status == "failed"]
    assert len(blocked) == 4
    assert {r.endpoint for r in blocked} == {"images.generations", "images.edits", "responses"}
    assert all(r.cost_usd == 0 and r.image_count == 0 and r.wall_s is None for r in blocked)
    with ops.store() as store:
        errors = [store.get_request(r.id).error for r in blocked]  # type: ignore[union-attr]
    assert all(e and e["code"] == "moderation_blocked" for e in errors)


# --- budgets ----------------------------------------------------------------------------------------------


def test_soft_budget_alerts_then_hard_budget_refuses(ops: Ops) -> None:
    client = ops.client("carol", max_retries=2)  # the SDK must not retry insufficient_quota
    low = {
        "model": "gpt-image-2",
        "prompt": "a dot",
        "size": "1024x1024",
        "quality": "low",
        "extra_body": FAST,
    }
    first = client.images.with_raw_response.generate(**low)  # $0.02 of $0.05: 40 %
    assert "x-gouache-budget-warning" not in first.headers
    assert not ops.webhook.arrived.is_set()
    second = client.images.with_raw_response.generate(**low)  # $0.04: 80 %, the soft threshold
    assert "80% of the monthly budget of $0.05" in second.headers["x-gouache-budget-warning"]
    assert ops.webhook.arrived.wait(10)
    alert = ops.webhook.received[0]
    assert alert["type"] == "gouache.budget.soft_limit" and alert["scope"] == "key"
    assert alert["object"] == "event" and alert["id"].startswith("evt_")
    # signed as the batch events are: the SDK's verifier accepts it, and refuses another secret
    body, headers = ops.webhook.raw[0]
    client.webhooks.verify_signature(body, headers, secret=WEBHOOK_SECRET)
    with pytest.raises(openai.InvalidWebhookSignatureError):
        other = "whsec_" + base64.b64encode(b"another key").decode()
        client.webhooks.verify_signature(body, headers, secret=other)
    assert alert["api_key_id"] == ops.key_id("carol") and alert["kind"] == "usd"
    assert alert["limit"] == 0.05 and alert["spent"] == pytest.approx(0.04)
    assert "budget alert" in ops.server.log()
    with pytest.raises(openai.RateLimitError) as info:  # $0.06 > $0.05
        client.images.generate(**low)
    assert info.value.status_code == 429
    assert info.value.code == "insufficient_quota" and info.value.type == "insufficient_quota"
    assert info.value.response.headers["x-should-retry"] == "false"
    with ops.store() as store:
        rows = store.ledger(datetime_min(), owner=ops.key_id("carol"))
    assert [r.status for r in rows] == ["succeeded", "succeeded", "failed"]  # one refusal: no retries
    assert len(ops.webhook.received) == 1  # one alert per budget and month
    # An image-count budget: 3 images a month.
    frank = ops.client("frank")
    assert frank.images.generate(**{**low, "n": 2}).data
    with pytest.raises(openai.RateLimitError) as info:
        frank.images.generate(**{**low, "n": 2})
    assert info.value.code == "insufficient_quota" and "3 images" in str(info.value)


# --- rate limits ------------------------------------------------------------------------------------------


def test_requests_limit_429_then_sdk_retries_succeed(ops: Ops) -> None:
    url = f"{ops.server.base_url}/models"
    first = httpx.get(url, headers=ops.headers("dave"))
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert httpx.get(url, headers=ops.headers("dave")).headers["x-ratelimit-remaining-requests"] == "0"
    refused = httpx.get(url, headers=ops.headers("dave"))
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert 1 <= int(refused.headers["retry-after"]) <= WINDOW_S
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    # The official SDK waits as told and retries; the call succeeds.
    assert ops.client("dave", max_retries=3).models.list().data


def test_images_limit_429_then_sdk_retries_succeed(ops: Ops) -> None:
    low = {
        "model": "gpt-image-2",
        "prompt": "a dot",
        "size": "1024x1024",
        "quality": "low",
        "extra_body": FAST,
    }
    raw = ops.client("gina").images.with_raw_response.generate(**{**low, "n": 2})
    assert raw.headers["x-ratelimit-limit-images"] == "2"
    assert raw.headers["x-ratelimit-remaining-images"] == "0"
    with pytest.raises(openai.RateLimitError) as info:
        ops.client("gina").images.generate(**low)
    assert info.value.code == "rate_limit_exceeded" and info.value.type == "images"
    assert int(info.value.response.headers["retry-after"]) <= WINDOW_S
    assert ops.client("gina", max_retries=3).images.generate(**low).data
    with pytest.raises(openai.BadRequestError):  # more than the limit at once can never pass
        ops.client("gina").images.generate(**{**low, "n": 3})


# --- metrics ----------------------------------------------------------------------------------------------


def test_metrics_scrape(ops: Ops) -> None:
    text = httpx.get(f"{ops.server.url}/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return sum(
            v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(dict(ls).items())
        )

    assert value("gouache_http_requests_total", endpoint="/v1/images/generations", status="200") >= 5
    assert value("gouache_http_requests_total", status="401") >= 3
    assert value("gouache_http_requests_total", endpoint="/v1/models", status="429") >= 1
    assert value("gouache_image_request_duration_seconds_count", model="gouache-mini", quality="low") >= 5
    assert value("gouache_image_request_duration_seconds_count", quality="medium") >= 1
    assert value("gouache_images_total") >= 10
    assert value("gouache_tokens_total", direction="output") > 0
    assert value("gouache_hosted_cost_usd_total") > 0.2
    assert value("gouache_refusals_total", code="moderation_blocked") >= 4
    assert value("gouache_refusals_total", code="insufficient_quota") >= 2
    assert ("gouache_queue_depth", ()) in samples
    with ops.store() as store:
        total = sum(
            r.cost_usd for r in store.ledger(datetime_min(), owner=ALL_OWNERS) if r.status == "succeeded"
        )
    assert value("gouache_hosted_cost_usd_total") == pytest.approx(total, abs=1e-6)
