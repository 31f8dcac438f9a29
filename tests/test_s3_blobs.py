"""Image bytes in an S3-compatible bucket (`GOUACHE_BLOB_URL=s3://bucket/prefix`, issue 21 item 3), tested for real
against an S3 server on 127.0.0.1 (moto's `ThreadedMotoServer`, started and stopped here): the store itself, the
start-up refusals (one red line naming the setting), and a live Gouache server whose every blob lives in the
bucket."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from gouache.settings import Settings
from gouache.store import BlobNotFound
from tests.live import LiveServer, free_port, start_server

boto3 = pytest.importorskip("boto3", reason="the S3 blob store needs gouache[s3] (`make test` installs it)")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")

BUCKET = "gouache-test"
KEYS = {"GOUACHE_S3_ACCESS_KEY_ID": "testing", "GOUACHE_S3_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """An S3 server on a free loopback port, with one bucket; stopped after the module."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    _s3(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def _s3(endpoint: str) -> Any:
    """A plain boto3 client, to look into the bucket behind Gouache's back."""
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def _settings(endpoint: str, tmp_path: Path, url: str = f"s3://{BUCKET}/unit") -> Settings:
    return Settings(
        data_dir=tmp_path, blob_url=url, s3_endpoint_url=endpoint, s3_region="us-east-1",
        s3_access_key_id="testing", s3_secret_access_key="testing",
    )  # type: ignore[call-arg]  # fmt: skip


def _objects(endpoint: str, prefix: str) -> dict[str, bytes]:
    s3 = _s3(endpoint)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


# --- the store ---------------------------------------------------------------------------------------------


def test_s3_blob_store_puts_gets_and_deletes_by_key(s3_endpoint: str, tmp_path: Path) -> None:
    from gouache.service.stores import open_blob_store

    blobs = open_blob_store(_settings(s3_endpoint, tmp_path), check=True)
    try:
        key = blobs.put(b"hello", "PNG")
        assert key == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.png"
        assert _objects(s3_endpoint, "unit/") == {f"unit/{key}": b"hello"}
        assert blobs.get(key) == b"hello" and blobs.exists(key)
        assert blobs.put(b"hello", "png") == key  # idempotent: one object
        assert len(_objects(s3_endpoint, "unit/")) == 1
        assert blobs.delete(key) and not blobs.exists(key) and not blobs.delete(key)
        assert _objects(s3_endpoint, "unit/") == {}
        with pytest.raises(BlobNotFound):
            blobs.get(key)
        for bad in ("../../etc/passwd", key.upper(), "abc.png"):
            with pytest.raises(ValueError):
                blobs.get(bad)
    finally:
        blobs.close()
    assert not (tmp_path / "blobs").exists()


def test_blob_url_names_a_directory_or_a_bucket(tmp_path: Path) -> None:
    assert Settings(blob_url=f"s3://{BUCKET}/a/b/").blob_bucket == (BUCKET, "a/b")  # type: ignore[call-arg]
    assert Settings(blob_url=f"s3://{BUCKET}").blob_bucket == (BUCKET, "")  # type: ignore[call-arg]
    assert Settings(blob_url=str(tmp_path)).blob_bucket is None  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="name the bucket"):
        _ = Settings(blob_url="s3:///images").blob_bucket  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        _ = Settings(blob_url="gs://bucket/images").blob_dir  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("problem", "named"),
    [
        ("no bucket", "GOUACHE_BLOB_URL"),
        ("no credentials", "GOUACHE_S3_ACCESS_KEY_ID"),
        ("no endpoint", "GOUACHE_S3_ENDPOINT_URL"),
        ("bad url", "GOUACHE_BLOB_URL"),
    ],
)
def test_serve_refuses_an_unusable_bucket_in_one_red_line(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str, named: str
) -> None:
    from typer.testing import CliRunner

    from gouache.cli import app

    # Settings reads these (and the AWS names); boto3's own chain must find nothing either (no instance role).
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "GOUACHE_S3_ACCESS_KEY_ID",
                 "GOUACHE_S3_SECRET_ACCESS_KEY"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    env = {"GOUACHE_DATA_DIR": str(tmp_path), "GOUACHE_S3_REGION": "us-east-1",
           "GOUACHE_BLOB_URL": f"s3://{BUCKET}/x", "GOUACHE_S3_ENDPOINT_URL": s3_endpoint, **KEYS}  # fmt: skip
    if problem == "no bucket":
        env["GOUACHE_BLOB_URL"] = "s3://no-such-bucket/x"
    elif problem == "no credentials":
        del env["GOUACHE_S3_ACCESS_KEY_ID"], env["GOUACHE_S3_SECRET_ACCESS_KEY"]
    elif problem == "no endpoint":
        env["GOUACHE_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    else:
        env["GOUACHE_BLOB_URL"] = "s3:///x"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["serve"])
    text = result.output  # stdout and stderr together
    assert result.exit_code == 1, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Cannot start:") and named in lines[0], text
    assert "Traceback" not in text and not (tmp_path / "blobs").exists()


# --- a live server on the bucket ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server(
    s3_endpoint: str, catalog_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = {"GOUACHE_CATALOG_FILE": str(catalog_file), "GOUACHE_BLOB_URL": f"s3://{BUCKET}/live",
           "GOUACHE_S3_ENDPOINT_URL": s3_endpoint, "GOUACHE_S3_REGION": "us-east-1", **KEYS}  # fmt: skip
    live = start_server(tmp_path_factory.mktemp("s3-server"), env)
    yield live
    live.stop()


def test_a_server_on_s3_keeps_every_blob_in_the_bucket(s3_endpoint: str, s3_server: LiveServer) -> None:
    client = OpenAI(base_url=s3_server.base_url, api_key="local", max_retries=0, timeout=120)
    body = {"model": "tiny-sd1", "prompt": "a red circle", "size": "1024x1024", "quality": "low"}
    plain = client.images.generate(**body, extra_body={"seed": 5})  # type: ignore[arg-type]
    image = base64.b64decode(plain.data[0].b64_json or "")
    key = f"live/{hashlib.sha256(image).hexdigest()}.png"
    assert _objects(s3_endpoint, "live/")[key] == image  # the image's bytes are the object's

    linked = client.images.generate(**body, response_format="url", extra_body={"seed": 6})  # type: ignore[arg-type]
    served = httpx.get(linked.data[0].url or "", timeout=30)  # the link streams the object's bytes
    linked_key = f"live/{hashlib.sha256(served.content).hexdigest()}.png"
    assert served.status_code == 200 and _objects(s3_endpoint, "live/")[linked_key] == served.content
    newest = httpx.get(f"{s3_server.base_url}/gouache/history", params={"limit": 1}, timeout=30).json()
    gone = httpx.delete(f"{s3_server.base_url}/gouache/history/{newest['data'][0]['id']}", timeout=30)
    assert gone.status_code == 200
    objects = _objects(s3_endpoint, "live/")
    assert linked_key not in objects and key in objects  # a deleted request's image goes, others stay

    data = b'{"hello": "bucket"}\n' * 3
    created = client.files.create(file=("notes.jsonl", data, "application/jsonl"), purpose="user_data")
    file_key = f"live/{hashlib.sha256(data).hexdigest()}.file"  # uploads keep no extension of their own
    assert _objects(s3_endpoint, "live/")[file_key] == data
    assert client.files.content(created.id).read() == data  # the Files API reads it back from the bucket
    assert client.files.delete(created.id).deleted
    assert file_key not in _objects(s3_endpoint, "live/")  # deleting the file deleted the object
    assert httpx.get(f"{s3_server.base_url}/files/{created.id}/content", timeout=30).status_code == 404

    assert not (s3_server.data_dir / "blobs").exists()  # nothing under the local blob directory
