"""The Files API: through the official SDK against the shared live server (upload, list, retrieve, content,
delete, OpenAI's error shapes), and in-process over a real SQLite store (expiry sweep, size limit, keys)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from gouache.service.access import Caller
from gouache.service.errors import InvalidRequest, NotFound
from gouache.service.files import FileService, Upload
from gouache.service.pages import ListQuery
from gouache.store import Store
from gouache.store.models import utcnow
from tests.live import LiveServer

LINES = b'{"custom_id": "a", "method": "POST", "url": "/v1/images/generations", "body": {"prompt": "x"}}\n'


def test_upload_retrieve_list_content_delete(client: OpenAI) -> None:
    created = client.files.create(file=("in.jsonl", LINES, "application/jsonl"), purpose="batch")
    assert created.object == "file" and created.purpose == "batch" and created.filename == "in.jsonl"
    assert created.bytes == len(LINES) and created.status == "processed"
    # batch files expire after 30 days unless told otherwise
    assert created.expires_at is not None
    assert abs(created.expires_at - created.created_at - 30 * 24 * 3600) <= 1

    assert client.files.retrieve(created.id).id == created.id
    assert client.files.content(created.id).content == LINES
    listed = [f.id for f in client.files.list(purpose="batch")]
    assert created.id in listed
    assert created.id not in [f.id for f in client.files.list(purpose="vision")]

    deleted = client.files.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError) as err:
        client.files.content(created.id)
    assert err.value.body["param"] == "file_id"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.files.delete(created.id)


def test_expires_after_and_pagination(client: OpenAI) -> None:
    first = client.files.create(
        file=("a.png", b"\x89PNG", "image/png"),
        purpose="user_data",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert first.expires_at == first.created_at + 3600
    time.sleep(0.01)
    second = client.files.create(file=("b.png", b"\x89PNG2", "image/png"), purpose="user_data")
    assert second.expires_at is None
    page = client.files.list(purpose="user_data", limit=1, order="asc")
    assert len(page.data) == 1
    after = client.files.list(purpose="user_data", limit=100, order="asc", after=page.data[0].id)
    assert page.data[0].id not in [f.id for f in after.data]
    assert {first.id, second.id} <= {page.data[0].id, *(f.id for f in after.data)}


@pytest.mark.parametrize(
    ("data", "param", "code"),
    [
        ({"purpose": "fine-tune"}, "purpose", "invalid_value"),
        ({"purpose": "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "10"},
         "expires_after.seconds", "invalid_value"),
        ({"purpose": "batch", "expires_after[anchor]": "now", "expires_after[seconds]": "7200"},
         "expires_after.anchor", "invalid_value"),
        ({"purpose": "batch", "colour": "red"}, "colour", "unknown_parameter"),
        ({}, "purpose", "missing_required_parameter"),
    ],
)  # fmt: skip
def test_bad_uploads_name_the_field(server: LiveServer, data: dict[str, str], param: str, code: str) -> None:
    response = httpx.post(f"{server.base_url}/files", data=data, files={"file": ("x.jsonl", LINES)})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code)


def test_missing_file_and_unknown_ids(server: LiveServer) -> None:
    response = httpx.post(f"{server.base_url}/files", data={"purpose": "batch"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "file"
    for path in ("/files/file-nope", "/files/file-nope/content", "/files/%00"):
        assert httpx.get(f"{server.base_url}{path}").status_code == 404


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'g.db'}", tmp_path / "blobs")
    store.migrate()
    return store


def test_files_belong_to_their_key(store: Store) -> None:
    files = FileService(store, 1024)
    alice, bob, admin = Caller("key_a"), Caller("key_b"), Caller("key_c", admin=True)
    mine = files.upload(Upload(b"hello", "a.jsonl", "batch"), alice)
    assert files.content(mine.id, alice)[1] == b"hello"
    with pytest.raises(NotFound):
        files.get(mine.id, bob)
    with pytest.raises(NotFound):
        files.delete(mine.id, bob)
    assert files.list(bob, ListQuery(limit=10))[0] == []
    assert files.get(mine.id, admin).id == mine.id


def test_size_limit_and_empty_file(store: Store) -> None:
    files = FileService(store, 4)
    with pytest.raises(InvalidRequest) as err:
        files.upload(Upload(b"12345", "a.jsonl", "batch"), Caller(None))
    assert err.value.param == "file" and err.value.code == "file_too_large"
    with pytest.raises(InvalidRequest):
        files.upload(Upload(b"", "a.jsonl", "batch"), Caller(None))


def test_sweep_removes_expired_files_and_their_bytes(store: Store) -> None:
    expired = store.add_file(
        b"old", purpose="batch", filename="a", api_key_id=None, expires_at=utcnow() - timedelta(seconds=1)
    )
    kept = store.add_file(b"new", purpose="batch", filename="b", api_key_id=None, expires_at=None)
    # a file sharing its bytes with a live one keeps the blob
    twin = store.add_file(b"new", purpose="batch", filename="c", api_key_id=None, expires_at=utcnow())
    assert store.get_file(expired.id) is None  # past its expiry it is gone already, before the sweep
    assert FileService(store, 1024).sweep() == 2
    assert not store.blobs.exists(expired.blob_key)
    assert store.blobs.exists(kept.blob_key) and twin.blob_key == kept.blob_key
    assert [f.id for f in store.list_files(None)] == [kept.id]
