"""Restarts of a real server process: SIGTERM drains gracefully and exits 0; SIGKILL mid-job loses nothing
that was finished, and the interrupted job is recorded as failed when the server starts again."""

from __future__ import annotations

import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI

from gouache.store import Store
from tests.live import LiveServer, start_server
from tests.test_reliability import LONG_JOB, health, wait_for

#: A job of a few seconds on a tiny model (more on a busy machine: the grace period below allows for that).
MEDIUM_JOB = {"model": "tiny-sd1", "n": 1, "steps": 8, "size": "1024x1024", "quality": "low"}


def post_in_background(server: LiveServer, body: dict[str, Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["response"] = httpx.post(f"{server.base_url}/images/generations", json=body, timeout=120)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def open_store(server: LiveServer) -> Store:
    return Store(f"sqlite:///{server.data_dir / 'gouache.db'}", server.data_dir / "blobs")


def test_sigterm_finishes_running_jobs_then_exits_0(tmp_path: Path, catalog_file: Path) -> None:
    env = {
        "GOUACHE_CATALOG_FILE": str(catalog_file),
        "GOUACHE_DEFAULT_MODEL": "tiny-sd1",
        "GOUACHE_GRACE_PERIOD_S": "300",
    }
    server = start_server(tmp_path / "term", env)
    try:
        thread, outcome = post_in_background(server, {**MEDIUM_JOB, "prompt": "finish me"})
        wait_for(lambda: health(server)["queue"]["running"] == 1, message="job running")
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: not _accepts(server), timeout=10, message="stops accepting connections")
        thread.join(120)
        response = outcome.get("response")
        assert response is not None and response.status_code == 200, outcome
        assert len(response.json()["data"]) == 1
        assert server.process.wait(60) == 0, server.log()[-3000:]
    finally:
        server.stop(signal.SIGKILL)
    with open_store(server) as store:
        (record,) = [r for r in store.list_requests() if r.params.get("prompt") == "finish me"]
        assert record.status == "succeeded" and len(record.images) == 1


def test_sigterm_past_the_grace_period_cancels_and_exits_0(tmp_path: Path, catalog_file: Path) -> None:
    env = {
        "GOUACHE_CATALOG_FILE": str(catalog_file),
        "GOUACHE_DEFAULT_MODEL": "tiny-sd1",
        "GOUACHE_GRACE_PERIOD_S": "1",
    }
    server = start_server(tmp_path / "grace", env)
    try:
        thread, outcome = post_in_background(server, {**LONG_JOB, "prompt": "too long to wait for"})
        wait_for(lambda: health(server)["queue"]["running"] == 1, message="job running")
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(90) == 0, server.log()[-3000:]
        thread.join(30)
        response = outcome["response"]  # the client still gets an answer, in OpenAI's shape
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "shutting_down"
    finally:
        server.stop(signal.SIGKILL)
    with open_store(server) as store:
        (record,) = [r for r in store.list_requests() if r.params.get("prompt") == "too long to wait for"]
        assert record.status in ("cancelled", "failed"), record  # recorded, never left "running"


def test_sigkill_mid_job_then_restart_keeps_everything_finished(tmp_path: Path, catalog_file: Path) -> None:
    env = {"GOUACHE_CATALOG_FILE": str(catalog_file), "GOUACHE_DEFAULT_MODEL": "tiny-sd1"}
    data = tmp_path / "kill"
    first = start_server(data, env)
    try:
        client = OpenAI(base_url=first.base_url, api_key="x", max_retries=0, timeout=120)
        image = client.images.generate(
            model="tiny-sd1", prompt="keep me", response_format="url", extra_body={"seed": 5}
        )
        assert image.data[0].url is not None
        kept_bytes = httpx.get(image.data[0].url, timeout=30).content
        tool: Any = {"type": "image_generation", "quality": "low", "model": "tiny-sd1"}
        turn1 = client.responses.create(model="gpt-5", input="a red fox", tools=[tool])
        turn2 = client.responses.create(
            model="gpt-5", input="make it brighter", tools=[tool], previous_response_id=turn1.id
        )
        thread, _ = post_in_background(first, {**LONG_JOB, "prompt": "interrupted"})
        wait_for(lambda: health(first)["queue"]["running"] == 1, message="job running")
        first.stop(signal.SIGKILL)
        thread.join(30)
    finally:
        first.stop(signal.SIGKILL)

    with sqlite3.connect(data / "gouache.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    second = start_server(data, env)
    try:
        client = OpenAI(base_url=second.base_url, api_key="x", max_retries=0, timeout=120)
        link = image.data[0].url.replace(first.url, second.url)
        assert httpx.get(link, timeout=30).content == kept_bytes  # the signed link survives the restart
        again = client.responses.retrieve(turn2.id)
        assert again.status == "completed" and again.previous_response_id == turn1.id
        assert again.output[0].result == turn2.output[0].result  # type: ignore[union-attr]
        turn3 = client.responses.create(
            model="gpt-5", input="add a moon on the left", tools=[tool], previous_response_id=turn2.id
        )
        assert turn3.status == "completed"
        with open_store(second) as store:
            (record,) = [r for r in store.list_requests() if r.params.get("prompt") == "interrupted"]
            assert record.status == "failed" and record.error is not None
            assert record.error["code"] == "interrupted"
            kept = next(r for r in store.list_requests() if r.params.get("prompt") == "keep me")
            assert kept.status == "succeeded" and len(kept.images) == 1
    finally:
        second.stop()


def _accepts(server: LiveServer) -> bool:
    try:
        httpx.get(f"{server.url}/health", timeout=2)
    except httpx.HTTPError:
        return False
    return True
