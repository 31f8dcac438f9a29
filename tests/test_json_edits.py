"""`POST /v1/images/edits` with `application/json` (OpenAI's `EditImageBodyJsonParam`): image references by
`file_id` or `image_url`, through the official SDK against the shared live server; remote URL fetching
(off by default) in-process against a loopback HTTP server."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types import ImagesResponse

from gouache.service.errors import InvalidRequest
from gouache.service.image_refs import ImageRefResolver, RemoteImagePolicy
from gouache.store import ALL_OWNERS, Store
from tests.live import LiveServer
from tests.test_edits import centre_mask, gradient, png

EDIT: dict[str, Any] = {
    "model": "tiny-sd1", "prompt": "a red circle", "size": "1024x1024", "quality": "low", "seed": 5,
    "cache": False,
}  # fmt: skip
SOURCE = png(gradient(256, 256))
MASK = png(centre_mask(256, 256))


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def json_edit(client: OpenAI, body: dict[str, Any]) -> ImagesResponse:
    return client.post("/images/edits", body={**EDIT, **body}, cast_to=ImagesResponse)


def test_json_edit_by_file_id_equals_the_multipart_edit(client: OpenAI) -> None:
    image = client.files.create(file=("in.png", SOURCE, "image/png"), purpose="vision")
    mask = client.files.create(file=("mask.png", MASK, "image/png"), purpose="user_data")
    by_json = json_edit(client, {"images": [{"file_id": image.id}], "mask": {"file_id": mask.id}})
    by_data_url = json_edit(
        client, {"images": [{"image_url": data_url(SOURCE)}], "mask": {"image_url": data_url(MASK)}}
    )
    multipart = client.images.edit(
        image=("in.png", SOURCE, "image/png"), mask=("mask.png", MASK, "image/png"),
        **{k: v for k, v in EDIT.items() if k in ("model", "prompt", "size", "quality")},  # type: ignore[arg-type]
        extra_body={"seed": 5, "cache": False},
    )  # fmt: skip
    assert by_json.data[0].b64_json == multipart.data[0].b64_json == by_data_url.data[0].b64_json
    assert by_json.size == "1024x1024" and by_json.usage is not None


def test_json_edit_streams(server: LiveServer, client: OpenAI) -> None:
    body = {**EDIT, "images": [{"image_url": data_url(SOURCE)}], "stream": True, "partial_images": 1}
    with httpx.stream("POST", f"{server.base_url}/images/edits", json=body, timeout=120) as response:
        assert response.status_code == 200
        events = [
            line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")
        ]
    assert events[-1] == "image_edit.completed" and "image_edit.partial_image" in events


def test_responses_input_image_by_file_id(client: OpenAI) -> None:
    image = client.files.create(file=("in.png", SOURCE, "image/png"), purpose="vision")
    response = client.responses.create(
        model="gpt-5",
        input=[{"role": "user", "content": [
            {"type": "input_text", "text": "make it red"}, {"type": "input_image", "file_id": image.id},
        ]}],
        tools=[{"type": "image_generation", "model": "tiny-sd1", "size": "1024x1024", "quality": "low"}],  # type: ignore[list-item]
    )  # fmt: skip
    calls = [item for item in response.output if item.type == "image_generation_call"]
    assert calls and calls[0].result


@pytest.mark.parametrize(
    ("images", "param", "code"),
    [
        ([{"file_id": "file-unknown"}], "images[0].file_id", "image_file_not_found"),
        ([{"image_url": "data:image/png;base64,aGVsbG8="}], "images[0].image_url", "invalid_image"),
        ([{"image_url": "data:image/png;base64,!!"}], "images[0].image_url", "invalid_base64_image"),
        ([{"image_url": "https://example.com/cat.png"}], "images[0].image_url", "invalid_image_url"),
        ([{"file_id": "file-x", "image_url": "data:,"}], "images[0]", "invalid_image_reference"),
        ([{}], "images[0]", "invalid_image_reference"),
        ([], "images", None),
        ([{"image_url": data_url(SOURCE)}] * 17, "images", None),
        ([{"url": "x"}], "images[0].url", "unknown_parameter"),
        ("file-x", "images", "invalid_type"),
    ],
)
def test_bad_references_name_the_field(server: LiveServer, images: Any, param: str, code: str | None) -> None:
    response = httpx.post(f"{server.base_url}/images/edits", json={**EDIT, "images": images}, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def test_a_file_that_is_not_an_image(client: OpenAI, server: LiveServer) -> None:
    text = client.files.create(file=("notes.jsonl", b'{"a": 1}\n', "application/jsonl"), purpose="user_data")
    with pytest.raises(openai.BadRequestError) as err:
        json_edit(client, {"images": [{"file_id": text.id}]})
    assert err.value.body["param"] == "images[0].file_id"  # type: ignore[index]
    assert err.value.body["code"] == "invalid_image_file"  # type: ignore[index]
    bad_mask = httpx.post(
        f"{server.base_url}/images/edits",
        json={**EDIT, "images": [{"image_url": data_url(SOURCE)}], "mask": {"file_id": text.id}},
    )
    assert bad_mask.status_code == 400 and bad_mask.json()["error"]["param"] == "mask.file_id"
    malformed = httpx.post(
        f"{server.base_url}/images/edits", content=b"{", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_json"


class _Images(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/cat.png":
            self.send_response(200)
            self.send_header("content-length", str(len(SOURCE)))
            self.end_headers()
            self.wfile.write(SOURCE)
        elif self.path == "/big.png":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(SOURCE * 100)
        else:  # a redirect back into this machine
            self.send_response(302)
            self.send_header("location", f"http://127.0.0.1:{self.server.server_address[1]}/cat.png")
            self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def image_host() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_remote_urls_when_allowed(tmp_path: Path, image_host: str) -> None:
    store = Store(f"sqlite:///{tmp_path / 'g.db'}", tmp_path / "blobs")
    store.migrate()
    off = ImageRefResolver(store, RemoteImagePolicy())
    with pytest.raises(InvalidRequest) as err:
        off.resolve({"image_url": f"{image_host}/cat.png"}, "images[0]", ALL_OWNERS)
    assert err.value.param == "images[0].image_url"
    on = ImageRefResolver(store, RemoteImagePolicy(True, max_bytes=len(SOURCE) * 2, timeout_s=5))
    assert on.resolve({"image_url": f"{image_host}/cat.png"}, "images[0]", ALL_OWNERS) == SOURCE
    with pytest.raises(InvalidRequest) as err:
        on.resolve({"image_url": f"{image_host}/redirect"}, "images[0]", ALL_OWNERS)
    assert "private or loopback" in err.value.message
    with pytest.raises(InvalidRequest) as err:
        on.resolve({"image_url": f"{image_host}/big.png"}, "mask", ALL_OWNERS)
    assert err.value.code == "image_file_too_large" and err.value.param == "mask.image_url"
