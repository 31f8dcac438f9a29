"""History: the store's listing and deletion on SQLite and PostgreSQL, and `/v1/gouache/history` on the live
server (plus how the playground is mounted)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from gouache.api.app import create_app
from gouache.api.routers.playground import WEB_DIR
from gouache.settings import Settings
from gouache.store import Store
from tests.live import LiveServer
from tests.postgres import private_schema_store

PNG_A = b"\x89PNG\r\n\x1a\n" + b"a" * 64
PNG_B = b"\x89PNG\r\n\x1a\n" + b"b" * 64


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'gouache.db'}", tmp_path / "blobs")
        s.migrate()
        yield s
        s.close()
        return
    with private_schema_store(
        request.getfixturevalue("postgres_url"), tmp_path / "blobs", "gouache_history"
    ) as s:
        s.migrate()
        yield s


def _request(store: Store, endpoint: str, status: str, *images: bytes, **params: object) -> str:
    rid = store.create_request(endpoint, "gouache-mini", {"prompt": "p", **params})
    for i, data in enumerate(images):
        store.add_image(rid, i, data, "png", 8, 8, i)
    store.finish_request(rid, status)
    return rid


def test_list_requests_filters(store: Store) -> None:
    gen = _request(store, "images.generations", "succeeded", PNG_A)
    edit = _request(store, "images.edits", "succeeded", PNG_B)
    failed = _request(store, "images.generations", "failed")
    assert [v.id for v in store.list_requests()] == [failed, edit, gen]
    assert [v.id for v in store.list_requests(status="succeeded")] == [edit, gen]
    assert [v.id for v in store.list_requests(endpoints=("images.edits",))] == [edit]
    assert [v.id for v in store.list_requests(1, 1)] == [edit]
    # Requests carry no API key yet: a per-key listing shows nothing rather than everyone's.
    assert store.list_requests(owner="key_1") == []


def test_delete_request_removes_rows_and_unshared_blobs(store: Store) -> None:
    upload_key = store.blobs.put(b"uploaded photo", "bin")
    shared_upload = store.blobs.put(b"shared upload", "bin")
    mine = _request(
        store, "images.edits", "succeeded", PNG_A, PNG_B, input_images=[upload_key, shared_upload]
    )
    other = _request(store, "images.edits", "succeeded", PNG_B, input_images=[shared_upload])
    a_key, b_key = (image.blob_key for image in store.get_request(mine).images)  # type: ignore[union-attr]

    assert not store.delete_request(mine, owner="key_1")  # not that key's
    assert store.delete_request(mine)
    assert store.get_request(mine) is None
    assert not store.blobs.exists(a_key)  # only this request had it
    assert not store.blobs.exists(upload_key)
    assert store.blobs.exists(b_key)  # the other request's image has the same bytes
    assert store.blobs.exists(shared_upload)
    assert store.get_request(other) is not None
    assert not store.delete_request(mine)


def test_delete_keeps_blobs_that_stored_turns_mention(store: Store) -> None:
    key = store.blobs.put(b"chat upload", "bin")
    rid = _request(store, "images.edits", "succeeded", input_images=[key])
    store.save_response(
        "resp_1",
        model="m",
        status="completed",
        previous_response_id=None,
        request={},
        input_items=[{"type": "message", "content": [{"type": "input_image", "blob": key}]}],
        output=[],
    )
    assert store.delete_request(rid)
    assert store.blobs.exists(key)


# --- the live API -----------------------------------------------------------------------------------


def _generate(server: LiveServer, prompt: str, seed: int, **extra: object) -> httpx.Response:
    body = {"prompt": prompt, "size": "1024x1024", "quality": "low", "seed": seed, **extra}
    response = httpx.post(f"{server.base_url}/images/generations", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response


def _history(server: LiveServer, **params: object) -> httpx.Response:
    return httpx.get(f"{server.base_url}/gouache/history", params=params, timeout=30)


def test_history_lists_newest_first_with_parameters_and_links(server: LiveServer) -> None:
    first = _generate(server, "history api: two dots", 31, n=2)
    second = _generate(server, "history api: one dot", 32, negative_prompt="blur")
    page = _history(server, limit=2)
    assert page.status_code == 200
    body = page.json()
    assert body["object"] == "list"
    assert _history(server, limit=1).json()["has_more"] is True
    newest, older = body["data"]
    assert newest["id"] == second.headers["x-gouache-request-id"]
    assert older["id"] == first.headers["x-gouache-request-id"]
    assert newest["object"] == "gouache.history.entry" and newest["kind"] == "generation"
    assert newest["status"] == "succeeded" and newest["prompt"] == "history api: one dot"
    assert newest["params"]["negative_prompt"] == "blur" and newest["params"]["seed"] == 32
    assert newest["resolved"]["model"] == "gouache-mini" and newest["resolved"]["size"] == "1024x1024"
    assert newest["seed"] == 32 and newest["timings"]["total_s"] > 0 and newest["usage"]["total_tokens"] > 0
    assert newest["created_at"] <= newest["finished_at"]
    assert [img["seed"] for img in older["images"]] == [31, 32]
    image = older["images"][1]
    assert (image["width"], image["height"], image["format"]) == (1024, 1024, "png")
    fetched = httpx.get(image["url"], timeout=30)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert fetched.content == base64.b64decode(first.json()["data"][1]["b64_json"])
    assert len(fetched.content) == image["byte_size"]

    offset = _history(server, limit=1, offset=1).json()["data"]
    assert [e["id"] for e in offset] == [older["id"]]


def test_history_filters_and_refuses_bad_parameters(server: LiveServer) -> None:
    bad = httpx.post(
        f"{server.base_url}/images/generations", json={"prompt": "x", "size": "10x10"}, timeout=30
    )
    assert bad.status_code == 400
    failed = _history(server, status="failed").json()["data"]
    assert failed and all(e["status"] == "failed" for e in failed)
    assert failed[0]["error"]["param"] == "size" and failed[0]["images"] == []
    edits = _history(server, kind="edit").json()["data"]
    assert all(e["kind"] == "edit" for e in edits)
    for params, param in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**64}, "offset"),  # fuzzing found a 500: past 64 bits no database binds it
        ({"status": "done"}, "status"),
        ({"kind": "photo"}, "kind"),
        ({"limit": "many"}, "limit"),
    ):
        response = _history(server, **params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"]["param"] == param


def test_delete_history_entry(server: LiveServer) -> None:
    made = _generate(server, "history api: to delete", 41)
    rid = made.headers["x-gouache-request-id"]
    entry = next(e for e in _history(server, limit=20).json()["data"] if e["id"] == rid)
    url = entry["images"][0]["url"]
    deleted = httpx.delete(f"{server.base_url}/gouache/history/{rid}", timeout=30)
    assert deleted.status_code == 200
    assert deleted.json() == {"id": rid, "object": "gouache.history.entry.deleted", "deleted": True}
    assert rid not in {e["id"] for e in _history(server, limit=100).json()["data"]}
    assert httpx.get(url, timeout=30).status_code == 404
    again = httpx.delete(f"{server.base_url}/gouache/history/{rid}", timeout=30)
    assert again.status_code == 404 and again.json()["error"]["param"] == "request_id"


def test_deleting_a_turns_image_is_a_clear_error_not_a_crash(server: LiveServer) -> None:
    tool = {"type": "image_generation", "quality": "low", "size": "1024x1024", "seed": 3}
    body = {"model": "m", "input": "a red circle", "tools": [tool]}
    turn = httpx.post(f"{server.base_url}/responses", json=body, timeout=120).json()
    rid = _history(server, limit=1).json()["data"][0]["id"]
    assert httpx.delete(f"{server.base_url}/gouache/history/{rid}", timeout=30).status_code == 200
    stored = httpx.get(f"{server.base_url}/responses/{turn['id']}", timeout=30)
    assert stored.status_code == 200 and stored.json()["output"][0]["result"] is None
    follow = {"model": "m", "input": "make it brighter", "tools": [tool], "previous_response_id": turn["id"]}
    refused = httpx.post(f"{server.base_url}/responses", json=follow, timeout=30)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "image_deleted"


# --- the playground's mount -------------------------------------------------------------------------


def test_playground_is_served_without_external_resources(server: LiveServer) -> None:
    page = httpx.get(server.url + "/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/js/main.js">' in page.text
    assert (
        httpx.get(server.url + "/web/js/main.js", timeout=30)
        .headers["content-type"]
        .startswith("text/javascript")
    )
    for path in WEB_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not a fetch
            assert "http://" not in text and "https://" not in text and "//cdn" not in text, path
    # Only `/` and `/web/` are the playground's: other paths keep the API's error shape.
    for method, path in (("GET", "/nope"), ("POST", "/v1/nope"), ("GET", "/web/missing.js")):
        response = httpx.request(method, server.url + path, timeout=30)
        assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url"


def test_playground_can_be_switched_off(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, playground=False))
    # No lifespan: routing only. The Host must be one the server answers to (TestClient's is `testserver`).
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    assert client.get("/").status_code == 404
    assert client.get("/web/js/main.js").status_code == 404
