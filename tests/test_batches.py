"""The Batch API through the official SDK against real server processes: a batch of generations or edits runs
to its output and error files (each body what a direct request answers), bad files and transitions get
OpenAI's error shapes, keys are isolated, cancelling stops and keeps the partial output, the webhook is
signed as OpenAI signs, and a batch survives SIGKILL and SIGTERM without rendering a line twice. In-process:
the input file rules, and the engine's batch lane yielding to interactive jobs."""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import InvalidWebhookSignatureError, OpenAI
from openai.types import Batch
from openai.types.responses import Response
from PIL import Image
from sqlalchemy import select

from gouache.engine.catalog import SamplingPlan, spec_for_directory
from gouache.engine.jobs import RenderJob, RenderResult
from gouache.engine.queue import JobQueue
from gouache.service.batches.validation import read_batch_file
from gouache.store import Store
from gouache.store.models import RequestRecord
from tests.live import LiveServer, start_server
from tests.test_edits import gradient, png

GEN = "/v1/images/generations"
RESP = "/v1/responses"
BODY: dict[str, Any] = {"model": "tiny-sd1", "size": "1024x640", "quality": "low", "cache": False}
SECRET = "whsec_" + base64.b64encode(b"gouache-test-webhook-key").decode()


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def line(custom_id: str, body: dict[str, Any], url: str = GEN) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def gen_lines(count: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [
        line(f"{prefix}{i}", {**BODY, "prompt": f"a red circle {i}", "seed": 100 + i}) for i in range(count)
    ]


def create_key(data_dir: Path, name: str) -> str:
    env = {**os.environ, "GOUACHE_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "gouache.cli", "keys", "create", name],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1].strip()


def wait_for(client: OpenAI, batch_id: str, statuses: tuple[str, ...], timeout: float = 180) -> Batch:
    end = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        assert time.monotonic() < end, f"batch stuck in {batch.status}"
        time.sleep(0.2)


def read_jsonl(client: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(raw) for raw in client.files.content(file_id).content.splitlines()]


def submit(client: OpenAI, items: list[dict[str, Any]], endpoint: str = GEN, **extra: Any) -> Batch:
    file = client.files.create(file=("in.jsonl", jsonl(items), "application/jsonl"), purpose="batch")
    return client.batches.create(
        input_file_id=file.id,
        endpoint=endpoint,
        completion_window="24h",
        **extra,  # type: ignore[arg-type]
    )


@dataclass
class Hooks:
    """A loopback webhook receiver."""

    url: str = ""
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)


@dataclass
class BatchServer:
    server: LiveServer
    secrets: dict[str, str]
    hooks: Hooks

    def client(self, name: str = "alice") -> OpenAI:
        return OpenAI(base_url=self.server.base_url, api_key=self.secrets[name], max_retries=0, timeout=120)

    def store(self) -> Store:
        data = self.server.data_dir
        return Store(f"sqlite:///{data / 'gouache.db'}", data / "blobs")


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    received = Hooks()

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    received.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    yield received
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def batch_server(
    tmp_path_factory: pytest.TempPathFactory, catalog_file: Path, hooks: Hooks
) -> Iterator[BatchServer]:
    data_dir = tmp_path_factory.mktemp("batches")
    secrets = {name: create_key(data_dir, name) for name in ("alice", "bob")}
    env = {
        "GOUACHE_CATALOG_FILE": str(catalog_file), "GOUACHE_BATCH_WEBHOOK_URL": hooks.url,
        "GOUACHE_WEBHOOK_SECRET": SECRET, "GOUACHE_PRELOAD": "false",
    }  # fmt: skip
    server = start_server(data_dir, env)
    yield BatchServer(server, secrets, hooks)
    server.stop()


def test_a_batch_of_generations_runs_to_its_output_and_error_files(batch_server: BatchServer) -> None:
    client = batch_server.client()
    items = [
        *gen_lines(3),
        line("bad", {**BODY, "prompt": "x", "quality": "ultra"}),
        line("gory", {**BODY, "prompt": "a gory battle"}),  # moderation applies to every line
    ]
    batch = submit(client, items, metadata={"job": "thumbnails"})
    assert batch.status == "validating" and batch.endpoint == GEN and batch.metadata == {"job": "thumbnails"}
    done = wait_for(client, batch.id, ("completed", "failed"))
    assert done.status == "completed", done.errors
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (5, 3, 2)
    for stamp in ("in_progress_at", "finalizing_at", "completed_at", "expires_at"):
        assert getattr(done, stamp) is not None, stamp
    assert done.usage is not None and done.usage.total_tokens > 0 and done.model == "tiny-sd1"

    output = read_jsonl(client, done.output_file_id)
    assert sorted(o["custom_id"] for o in output) == ["r0", "r1", "r2"]
    direct = client.images.generate(prompt="a red circle 1", **{k: v for k, v in BODY.items() if k != "cache"},
                                    extra_body={"seed": 101, "cache": False})  # fmt: skip
    r1 = next(o for o in output if o["custom_id"] == "r1")
    assert r1["response"]["status_code"] == 200 and r1["error"] is None
    assert r1["response"]["body"]["data"][0]["b64_json"] == direct.data[0].b64_json
    assert set(r1["response"]["body"]) >= {"created", "data", "usage", "size", "quality", "output_format"}

    errors = read_jsonl(client, done.error_file_id)
    assert [e["custom_id"] for e in errors] == ["bad", "gory"]
    assert errors[0]["response"]["status_code"] == 400
    assert errors[0]["response"]["body"]["error"]["param"] == "quality"
    assert errors[1]["response"]["body"]["error"]["code"] == "moderation_blocked"
    assert client.files.retrieve(done.output_file_id or "").purpose == "batch_output"

    # the ledger: each line's row names the batch and costs half the direct request
    store = batch_server.store()
    with store._read_sessions() as session:
        lines = session.scalars(select(RequestRecord).where(RequestRecord.batch_id == batch.id)).all()
        alone = session.scalars(
            select(RequestRecord).where(
                RequestRecord.batch_id.is_(None), RequestRecord.endpoint.contains("generat")
            )
        ).all()
    store.close()
    direct_cost = next(r.cost_usd for r in alone if r.params.get("prompt") == "a red circle 1")
    succeeded = [r for r in lines if r.status == "succeeded"]
    assert len(succeeded) == 3
    assert all(abs(r.cost_usd - direct_cost / 2) < 1e-9 for r in succeeded)

    events = [json.loads(body) for body, _ in batch_server.hooks.received]
    assert {"type": "batch.completed", "data": {"id": batch.id}}.items() <= next(
        e for e in events if e["data"]["id"] == batch.id
    ).items()


def test_webhooks_are_signed_as_openai_signs(batch_server: BatchServer) -> None:
    assert batch_server.hooks.received, "no webhook arrived"
    body, headers = batch_server.hooks.received[0]
    event = batch_server.client().webhooks.unwrap(body, headers, secret=SECRET)
    assert event.type.startswith("batch.")
    with pytest.raises(InvalidWebhookSignatureError):
        batch_server.client().webhooks.unwrap(
            body, headers, secret="whsec_" + base64.b64encode(b"wrong").decode()
        )


def test_a_batch_of_json_edits_references_uploaded_files(batch_server: BatchServer) -> None:
    client = batch_server.client()
    image = client.files.create(file=("in.png", png(gradient(128, 128)), "image/png"), purpose="vision")
    body = {**BODY, "prompt": "make it red", "seed": 3, "images": [{"file_id": image.id}]}
    items = [
        line("e0", body, "/v1/images/edits"),
        line("e1", {**body, "images": [{"file_id": "file-nope"}]}, "/v1/images/edits"),
    ]
    done = wait_for(client, submit(client, items, "/v1/images/edits").id, ("completed", "failed"))
    assert done.status == "completed"
    [ok] = read_jsonl(client, done.output_file_id)
    direct = client.post("/images/edits", body=body, cast_to=dict)  # type: ignore[type-var]
    assert ok["response"]["body"]["data"][0]["b64_json"] == direct["data"][0]["b64_json"]
    [bad] = read_jsonl(client, done.error_file_id)
    assert bad["custom_id"] == "e1" and bad["response"]["body"]["error"]["param"] == "images[0].file_id"


def test_a_batch_of_responses_answers_response_objects(batch_server: BatchServer) -> None:
    client = batch_server.client()
    tool = {"type": "image_generation", "model": "tiny-sd1", "size": "1024x640", "quality": "low", "seed": 5}
    body: dict[str, Any] = {"model": "gpt-5", "input": "a red circle on white", "tools": [tool]}
    items = [
        line("t0", body, RESP),
        line("t1", {**body, "tools": [{"type": "web_search"}]}, RESP),  # what a direct call refuses
        line("t2", {**body, "stream": True}, RESP),
    ]
    done = wait_for(client, submit(client, items, RESP).id, ("completed", "failed"))
    assert done.status == "completed" and done.endpoint == RESP, done.errors
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 1, 2)
    assert done.usage is not None and done.usage.input_tokens > 0 and done.usage.output_tokens > 0

    [ok] = read_jsonl(client, done.output_file_id)
    assert ok["custom_id"] == "t0" and ok["response"]["status_code"] == 200 and ok["error"] is None
    answer = Response.model_validate(ok["response"]["body"])  # the SDK's own type reads it
    assert answer.status == "completed" and answer.object == "response"
    call = answer.output[0]
    assert call.type == "image_generation_call" and call.status == "completed" and call.result
    assert Image.open(io.BytesIO(base64.b64decode(call.result))).size == (1024, 640)
    # the same turn sent directly renders the same image; the batch's turn is stored like a direct one
    direct = client.responses.create(**body)
    assert direct.output[0].type == "image_generation_call" and direct.output[0].result == call.result
    assert client.responses.retrieve(answer.id).status == "completed"

    errors = read_jsonl(client, done.error_file_id)
    assert [e["custom_id"] for e in errors] == ["t1", "t2"]
    assert [e["response"]["status_code"] for e in errors] == [400, 400]
    assert [e["response"]["body"]["error"]["param"] for e in errors] == ["tools[0].type", "stream"]

    # the ledger: the turn's text row and its image row both name the batch, at the batch price
    store = batch_server.store()
    with store._read_sessions() as session:
        rows = session.scalars(select(RequestRecord).where(RequestRecord.batch_id == done.id)).all()
    store.close()
    assert sorted(r.endpoint for r in rows if r.status == "succeeded") == ["images.generations", "responses"]


def test_a_bad_input_file_fails_the_batch_with_line_numbers(batch_server: BatchServer) -> None:
    client = batch_server.client()
    raw = (
        jsonl(gen_lines(1, "a"))
        + b"{not json\n"
        + jsonl([line("a0", {"prompt": "dup"}), line("z", {"prompt": "x"}, "/v1/images/edits")])
    )
    file = client.files.create(file=("bad.jsonl", raw, "application/jsonl"), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint=GEN, completion_window="24h")
    failed = wait_for(client, batch.id, ("failed", "completed"))
    assert failed.status == "failed" and failed.failed_at is not None and failed.output_file_id is None
    assert failed.errors is not None and failed.errors.data is not None
    found = [(e.line, e.code) for e in failed.errors.data]
    assert found == [(2, "invalid_json_line"), (3, "duplicate_custom_id"), (4, "mismatched_endpoint")]


def test_bad_requests_and_transitions(batch_server: BatchServer) -> None:
    client, bob = batch_server.client(), batch_server.client("bob")
    file = client.files.create(file=("in.jsonl", jsonl(gen_lines(1)), "application/jsonl"), purpose="batch")
    image = client.files.create(file=("x.png", png(gradient(64, 64)), "image/png"), purpose="vision")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"input_file_id": "file-nope"}, 404, "input_file_id"),
        ({"input_file_id": image.id}, 400, "input_file_id"),
        ({"endpoint": "/v1/chat/completions"}, 400, "endpoint"),
        ({"completion_window": "48h"}, 400, "completion_window"),
        ({"metadata": {"k": 1}}, 400, "metadata.k"),
        (
            {"output_expires_after": {"anchor": "created_at", "seconds": 5}},
            400,
            "output_expires_after.seconds",
        ),
        ({"colour": "red"}, 400, "colour"),
    ]
    headers = {"authorization": f"Bearer {batch_server.secrets['alice']}"}
    for change, status, param in cases:
        body = {"input_file_id": file.id, "endpoint": GEN, "completion_window": "24h", **change}
        response = httpx.post(f"{batch_server.server.base_url}/batches", json=body, headers=headers)
        assert response.status_code == status, (change, response.text)
        assert response.json()["error"]["param"] == param, change
    for path in ("/batches/batch_nope", "/batches/batch_nope/cancel"):
        method = "POST" if path.endswith("cancel") else "GET"
        response = httpx.request(method, f"{batch_server.server.base_url}{path}", headers=headers)
        assert response.status_code == 404 and response.json()["error"]["param"] == "batch_id"
    deleted = client.files.create(
        file=("in.jsonl", jsonl(gen_lines(1)), "application/jsonl"), purpose="batch"
    )
    client.files.delete(deleted.id)
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id=deleted.id, endpoint=GEN, completion_window="24h")
    del bob


def test_keys_see_only_their_own_batches_and_files(batch_server: BatchServer) -> None:
    alice, bob = batch_server.client(), batch_server.client("bob")
    batch = submit(alice, gen_lines(1, "k"))
    with pytest.raises(openai.NotFoundError):
        bob.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        bob.batches.cancel(batch.id)
    assert batch.id not in [b.id for b in bob.batches.list()]
    assert batch.id in [b.id for b in alice.batches.list()]
    with pytest.raises(openai.NotFoundError) as err:
        bob.batches.create(input_file_id=batch.input_file_id, endpoint=GEN, completion_window="24h")
    assert err.value.body["param"] == "input_file_id"  # type: ignore[index]
    done = wait_for(alice, batch.id, ("completed",))
    with pytest.raises(openai.ConflictError):
        alice.batches.cancel(done.id)
    with pytest.raises(openai.NotFoundError):
        bob.files.content(done.output_file_id or "")


def test_cancelling_stops_and_keeps_the_partial_output(batch_server: BatchServer) -> None:
    client = batch_server.client()
    items = [line(f"c{i}", {**BODY, "prompt": f"slow {i}", "seed": i, "steps": 40}) for i in range(24)]
    batch = submit(client, items)
    wait_for(client, batch.id, ("in_progress",))
    while (client.batches.retrieve(batch.id).request_counts or Batch).completed < 1:  # type: ignore[union-attr]
        time.sleep(0.1)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at is not None
    started = time.monotonic()
    done = wait_for(client, batch.id, ("cancelled",), timeout=60)
    assert time.monotonic() - started < 30
    output, errors = read_jsonl(client, done.output_file_id), read_jsonl(client, done.error_file_id)
    ids = [o["custom_id"] for o in output + errors]
    assert sorted(ids) == sorted(i["custom_id"] for i in items)  # every line once: done, or not run
    assert 1 <= len(output) < 24
    assert {e["error"]["code"] for e in errors if e["response"] is None} == {"batch_cancelled"}


def test_input_file_rules() -> None:
    lines, errors = read_batch_file(jsonl(gen_lines(3)), GEN)
    assert [x.custom_id for x in lines] == ["r0", "r1", "r2"] and errors == []
    assert read_batch_file(b"", GEN)[1][0]["code"] == "empty_file"
    assert read_batch_file(b"\xff\n", GEN)[1][0]["code"] == "invalid_encoding"
    too_many = b"".join(json.dumps(line(f"i{i}", {})).encode() + b"\n" for i in range(50_001))
    assert read_batch_file(too_many, GEN)[1][0]["code"] == "too_many_requests"
    bad = [
        b'["a"]', b'{"custom_id": "", "method": "POST", "url": "%s", "body": {}}' % GEN.encode(),
        b'{"custom_id": "x", "method": "GET", "url": "%s", "body": {}}' % GEN.encode(),
        b'{"custom_id": "x", "method": "POST", "url": "%s", "body": []}' % GEN.encode(),
    ]  # fmt: skip
    errors = read_batch_file(b"\n".join(bad), GEN)[1]
    assert [(e["line"], e["code"]) for e in errors] == [
        (1, "invalid_request"), (2, "missing_custom_id"), (3, "invalid_method"), (4, "invalid_body"),
    ]  # fmt: skip


def test_batch_results_read_images_and_responses_bodies() -> None:
    """`gouache batch results` finds the images of an Images API body and of a Responses body."""
    from gouache.batch_cli import _images_of

    images_body = {"data": [{"b64_json": "QQ=="}, {"b64_json": "Qg=="}], "output_format": "webp"}
    assert _images_of(images_body) == [("QQ==", "webp"), ("Qg==", "webp")]
    response_body = {
        "object": "response",
        "output": [
            {"type": "image_generation_call", "result": "Qw==", "output_format": "jpeg"},
            {"type": "message", "content": [{"type": "output_text", "text": "Here it is."}]},
        ],
    }
    assert _images_of(response_body) == [("Qw==", "jpeg")]


class _GatedRunner:
    """Stands in for the engine's runner: records the order jobs run in; the first job waits for a gate."""

    def __init__(self) -> None:
        self.order: list[list[str]] = []
        self.gate = threading.Event()

    def render(self, job: RenderJob, on_progress: Any = None, should_stop: Any = None) -> RenderResult:
        if not self.order:
            self.order.append([job.prompt])
            self.gate.wait(10)
        else:
            self.order.append([job.prompt])
        return RenderResult(images=[], working_size=(64, 64))

    def render_batch(self, entries: list[Any]) -> list[RenderResult]:
        self.order.append([entry.job.prompt for entry in entries])
        return [RenderResult(images=[], working_size=(64, 64)) for _ in entries]


def test_interactive_jobs_overtake_the_batch_lane(tiny_models: dict[str, Path]) -> None:
    spec = spec_for_directory(tiny_models["sd1"])
    plan = SamplingPlan(steps=2, guidance=2.0)

    def job(prompt: str) -> RenderJob:
        return RenderJob(spec, prompt, plan, 64, 64, (1,))

    runner = _GatedRunner()
    queue = JobQueue(runner, workers=1, batch_window_s=0.0, max_batch_images=8)  # type: ignore[arg-type]
    queue.start()
    try:
        first = queue.submit(job("batch-0"), lane="batch")
        while not runner.order:
            time.sleep(0.01)
        later = [queue.submit(job(f"batch-{i}"), lane="batch") for i in range(1, 4)]
        interactive = queue.submit(job("interactive"))
        runner.gate.set()
        for handle in (first, interactive, *later):
            handle.future.result(10)
    finally:
        queue.stop(5)
    # the interactive job waited for the one batch job running, not for the three queued before it,
    # and the queued batch jobs then rendered together
    assert runner.order == [["batch-0"], ["interactive"], ["batch-1", "batch-2", "batch-3"]]


def _recorded(data_dir: Path, batch_id: str) -> dict[str, str]:
    """custom_id -> the recorded output line's id, straight from the database."""
    store = Store(f"sqlite:///{data_dir / 'gouache.db'}", data_dir / "blobs")
    try:
        return {
            row.custom_id: json.loads(store.blobs.get(row.result_blob))["id"]
            for row in store.batch_lines(batch_id)
        }
    finally:
        store.close()


def test_a_batch_survives_sigkill_and_sigterm(tmp_path: Path, catalog_file: Path) -> None:
    env = {
        "GOUACHE_CATALOG_FILE": str(catalog_file),
        "GOUACHE_DEFAULT_MODEL": "tiny-sd1",
        "GOUACHE_PRELOAD": "false",
        "GOUACHE_BATCH_CONCURRENCY": "1",  # one line at a time: progress in small steps
    }
    data = tmp_path / "durable"
    items = [line(f"d{i}", {**BODY, "prompt": f"durable {i}", "seed": i}) for i in range(8)]
    server = start_server(data, env)
    try:
        client = OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=120)
        batch = submit(client, items)
        wait_for_count = lambda n: _wait(lambda: len(_recorded(data, batch.id)) >= n)  # noqa: E731
        wait_for_count(2)
        server.stop(signal.SIGKILL)
        before_kill = _recorded(data, batch.id)
        assert 2 <= len(before_kill) < 8

        server = start_server(data, env)
        wait_for_count(len(before_kill) + 2)
        assert server.stop(signal.SIGTERM) == 0
        before_term = _recorded(data, batch.id)
        assert len(before_term) < 8, "the batch finished before SIGTERM: make the lines slower"

        server = start_server(data, env)
        client = OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=120)
        done = wait_for(client, batch.id, ("completed", "failed"), timeout=300)
        assert done.status == "completed" and done.request_counts is not None
        assert done.request_counts.completed == 8
        output = read_jsonl(client, done.output_file_id)
        assert sorted(o["custom_id"] for o in output) == sorted(i["custom_id"] for i in items)
        ids = {o["custom_id"]: o["id"] for o in output}
        # lines recorded before each stop were not rendered again: the same output lines
        assert all(ids[cid] == rid for cid, rid in {**before_kill, **before_term}.items())
    finally:
        server.stop(signal.SIGKILL)


def _wait(check: Any, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


def _cli(server: BatchServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "OPENAI_API_KEY": server.secrets["alice"]}
    return subprocess.run(
        [sys.executable, "-m", "gouache.cli", "batch", *args, "--base-url", server.server.base_url],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_batch_cli(batch_server: BatchServer, tmp_path: Path) -> None:
    source = tmp_path / "thumbs.jsonl"
    source.write_bytes(jsonl([*gen_lines(2, "thumb/"), line("broken", {**BODY, "prompt": "x", "n": 99})]))
    submitted = _cli(batch_server, "submit", str(source), "--wait")
    assert submitted.returncode == 0, submitted.stderr
    batch_id = re.search(r"batch_[0-9a-f]+", submitted.stdout).group(0)  # type: ignore[union-attr]
    assert "completed, 2 completed, 1 failed of 3" in submitted.stdout
    fetched = _cli(batch_server, "results", batch_id, "-o", str(tmp_path / "out"))
    assert fetched.returncode == 0, fetched.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["errors.jsonl", "thumb_0.png", "thumb_1.png"]
    assert (tmp_path / "out" / "thumb_0.png").read_bytes().startswith(b"\x89PNG")
    listed = _cli(batch_server, "list")
    assert batch_id in listed.stdout
    refused = _cli(batch_server, "cancel", batch_id)
    assert refused.returncode == 1 and "Cannot cancel a batch with status 'completed'" in refused.stderr
    assert "Traceback" not in refused.stderr
    missing = _cli(batch_server, "submit", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_batch_lines_have_their_own_rate_limit_windows(tmp_path: Path) -> None:
    from gouache.service.access import Caller
    from gouache.service.operations import Operations
    from gouache.service.policies.rate_limits import RateLimited
    from gouache.settings import Settings

    store = Store(f"sqlite:///{tmp_path / 'g.db'}", tmp_path / "blobs")
    store.migrate()
    ops = Operations.from_settings(Settings(data_dir=tmp_path, rate_limit_images=2), store)
    caller = Caller("key_a")
    ops.admit(caller, 0.01, 2, batch=True)  # a batch line uses up the batch window...
    ops.admit(caller, 0.01, 2).release()  # ...and interactive requests still have theirs
    with pytest.raises(RateLimited):
        ops.admit(caller, 0.01, 1, batch=True)
    assert ops.prices.batch_discount == 0.5
    store.close()
