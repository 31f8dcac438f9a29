"""The result cache and cross-request batching over a live server, through the official SDK: a repeated
request with an explicit seed is served from the store (same bytes, `x-gouache-cache: hit`, a ledger row at
zero local cost), per key, for generations and edits; `"cache": false` and seedless requests render.
Concurrent requests batch together, and each image is byte-identical to the same request rendered alone."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from PIL import Image

from gouache.store import Store
from tests.live import LiveServer, start_server

BODY: dict[str, Any] = {"model": "tiny-sd1", "prompt": "a red circle", "size": "1024x1024", "quality": "low"}


@dataclass
class CacheServer:
    server: LiveServer
    secrets: dict[str, str]

    def client(self, name: str) -> OpenAI:
        return OpenAI(base_url=self.server.base_url, api_key=self.secrets[name], max_retries=0, timeout=120)

    def store(self) -> Store:
        data = self.server.data_dir
        return Store(f"sqlite:///{data / 'gouache.db'}", data / "blobs")


def _create_key(data_dir: Path, name: str) -> str:
    env = {**os.environ, "GOUACHE_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "gouache.cli", "keys", "create", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1].strip()


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory, catalog_file: Path) -> Iterator[CacheServer]:
    data_dir = tmp_path_factory.mktemp("cache")
    # A long batch window, so that the concurrent requests below surely meet in one batch.
    # Provenance off: the tests compare bytes of separate renders, and every C2PA signing is unique by design.
    env = {
        "GOUACHE_CATALOG_FILE": str(catalog_file),
        "GOUACHE_BATCH_WINDOW_MS": "700",
        "GOUACHE_PROVENANCE": "false",
    }
    server = start_server(data_dir, env)
    try:
        secrets = {name: _create_key(data_dir, name) for name in ("alice", "bob")}
        yield CacheServer(server, secrets)
    finally:
        server.stop()


def _generate(client: OpenAI, **extra: Any) -> tuple[bytes, str, str]:
    raw = client.images.with_raw_response.generate(**BODY, extra_body=extra)
    image = raw.parse().data
    assert image is not None and image[0].b64_json is not None
    return (
        base64.b64decode(image[0].b64_json),
        raw.headers["x-gouache-cache"],
        raw.headers["x-gouache-request-id"],
    )


def test_a_repeated_seeded_request_is_a_hit_with_the_same_bytes(cached: CacheServer) -> None:
    alice = cached.client("alice")
    first, state, first_id = _generate(alice, seed=11)
    assert state == "miss"
    again, state, hit_id = _generate(alice, seed=11)
    assert state == "hit" and again == first and hit_id != first_id
    with cached.store() as store:
        row = store.get_request(hit_id)
        assert row is not None and row.status == "succeeded"
        assert row.local_cost_usd == 0.0 and row.cost_usd > 0 and row.image_count == 1
        assert row.params["cache_hit_of"] == first_id and row.timings and row.timings["cache_hit"] == 1
    # Opting out renders again (and, being deterministic, gives the same bytes).
    fresh, state, _ = _generate(alice, seed=11, cache=False)
    assert state == "off" and fresh == first
    # Any input that changes the pixels is a miss.
    assert _generate(alice, seed=12)[1] == "miss"
    assert _generate(alice, seed=11, steps=1)[1] == "miss"
    assert _generate(alice)[1] == "off"  # no seed: a random one, nothing to reuse


def test_the_cache_is_per_key(cached: CacheServer) -> None:
    alice, bob = cached.client("alice"), cached.client("bob")
    mine, state, _ = _generate(alice, seed=21)
    assert state == "miss"
    theirs, state, _ = _generate(bob, seed=21)
    assert state == "miss" and theirs == mine
    assert _generate(bob, seed=21)[1] == "hit"


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1024, 1024), colour).save(buf, format="PNG")
    return buf.getvalue()


def test_edits_are_cached_by_their_uploads(cached: CacheServer) -> None:
    alice = cached.client("alice")

    def edit(image: bytes) -> tuple[bytes, str]:
        raw = alice.images.with_raw_response.edit(
            model="tiny-sd1", image=("in.png", image, "image/png"), prompt="blue", size="1024x1024",
            extra_body={"seed": 5},
        )  # fmt: skip
        data = raw.parse().data
        assert data is not None and data[0].b64_json is not None
        return base64.b64decode(data[0].b64_json), raw.headers["x-gouache-cache"]

    red, state = edit(_png((200, 30, 30)))
    assert state == "miss"
    assert edit(_png((200, 30, 30))) == (red, "hit")
    assert edit(_png((30, 200, 30)))[1] == "miss"


def test_concurrent_requests_batch_and_match_lone_renders(cached: CacheServer) -> None:
    alice = cached.client("alice")
    requests = [{"prompt": f"shape {i}", "seed": 100 + i, "n": 1 + i % 2, "cache": False} for i in range(4)]

    def run(extra: dict[str, Any]) -> tuple[list[bytes], str]:
        body = {**BODY, "prompt": extra["prompt"], "n": extra["n"]}
        raw = alice.images.with_raw_response.generate(
            **body, extra_body={"seed": extra["seed"], "cache": False}
        )
        data = raw.parse().data or []
        return [base64.b64decode(d.b64_json or "") for d in data], raw.headers["x-gouache-request-id"]

    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(run, requests))
    alone = [run(extra) for extra in requests]  # one at a time: each a batch of its own
    assert [images for images, _ in together] == [images for images, _ in alone]
    with cached.store() as store:
        batched = [store.get_request(request_id) for _, request_id in together]
        sizes = [row.timings["batch_images"] for row in batched if row is not None and row.timings]
        single = [store.get_request(request_id) for _, request_id in alone]
        lone = [row.timings["batch_images"] for row in single if row is not None and row.timings]
    assert max(sizes) > 2  # at least two requests met in one batch
    assert lone == [1, 2, 1, 2]


def test_concurrent_streams_batch_and_each_gets_its_partials(cached: CacheServer) -> None:
    alice = cached.client("alice")

    def stream(i: int) -> tuple[int, bytes]:
        partials, final = 0, b""
        for event in alice.images.generate(
            **{**BODY, "prompt": f"stream {i}"}, stream=True, partial_images=1, extra_body={"seed": 300 + i}
        ):
            if event.type == "image_generation.partial_image":
                partials += 1
            elif event.type == "image_generation.completed":
                final = base64.b64decode(event.b64_json)
        return partials, final

    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(stream, range(2)))
    alone = [stream(i) for i in range(2)]
    assert together == alone and all(partials == 1 and final for partials, final in together)
