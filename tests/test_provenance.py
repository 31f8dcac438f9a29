"""C2PA provenance through the live server: every image is signed, and the SDK's provenance check tells
trusted, tampered (invalid) and stripped (not_present) files apart."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import c2pa
import numpy as np
import pytest
from openai import OpenAI
from PIL import Image

from tests.live import LiveServer, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, catalog_file: Path) -> Iterator[LiveServer]:
    """A server that signs (the default): the shared one runs with provenance off, see conftest."""
    live = start_server(
        tmp_path_factory.mktemp("signed"),
        {"GOUACHE_CATALOG_FILE": str(catalog_file), "GOUACHE_PROVENANCE": "true"},
    )
    yield live
    live.stop()


@pytest.fixture()
def client(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0, timeout=120)


def _signed(client: OpenAI, **kwargs: object) -> bytes:
    result = client.images.generate(
        model="gouache-mini",
        prompt="a red circle",
        size="1024x1024",
        quality="low",
        **kwargs,  # type: ignore[arg-type]
    )
    assert result.data[0].b64_json is not None
    return base64.b64decode(result.data[0].b64_json)


def _manifest(data: bytes, mime: str) -> dict:
    reader = c2pa.Reader(mime, io.BytesIO(data))
    try:
        store = json.loads(reader.json())
    finally:
        reader.close()
    return store["manifests"][store["active_manifest"]]


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp"), ("gif", "image/gif")],
)
def test_every_format_carries_a_created_manifest(client: OpenAI, fmt: str, mime: str) -> None:
    extra = {"frame_count": 2} if fmt == "gif" else {}
    data = _signed(client, output_format=fmt, **extra)
    manifest = _manifest(data, mime)
    actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))["data"][
        "actions"
    ]
    assert actions[0]["action"] == "c2pa.created"
    assert actions[0]["digitalSourceType"].endswith("/trainedAlgorithmicMedia")
    assert actions[0]["softwareAgent"]["name"] == "Gouache/gouache-mini"


def test_edits_record_their_parent(client: OpenAI) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (20, 120, 220)).save(buf, format="PNG")
    result = client.images.edit(
        model="gouache-mini", image=("in.png", buf.getvalue()), prompt="a star", size="1024x1024"
    )
    assert result.data[0].b64_json is not None
    manifest = _manifest(base64.b64decode(result.data[0].b64_json), "image/png")
    actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))["data"][
        "actions"
    ]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
    assert actions[1]["digitalSourceType"].endswith("/compositeWithTrainedAlgorithmicMedia")
    assert manifest["ingredients"][0]["relationship"] == "parentOf"


def test_provenance_check_through_the_sdk(client: OpenAI) -> None:
    data = _signed(client)
    check = client.content_provenance_checks.create(file=("a.png", data, "image/png"))
    result = check.results[0]
    assert check.object == "content_provenance_check"
    assert result.type == "c2pa" and result.outcome == "detected"
    assert result.validation_state == "trusted"
    assert result.model == "gouache-mini" and result.issuer == "Gouache" and result.generated_at
    tampered = bytearray(data)
    mid = len(tampered) // 2
    tampered[mid : mid + 16] = bytes(16)
    bad = client.content_provenance_checks.create(file=("a.png", bytes(tampered), "image/png")).results[0]
    assert bad.outcome == "detected" and bad.validation_state == "invalid"
    stripped = io.BytesIO()
    Image.open(io.BytesIO(data)).save(stripped, format="PNG")
    none = client.content_provenance_checks.create(file=("a.png", stripped.getvalue(), "image/png")).results[
        0
    ]
    assert none.outcome == "not_detected" and none.validation_state == "not_present"


def _generate(client: OpenAI, **extra: object) -> tuple[bytes, str]:
    raw = client.images.with_raw_response.generate(
        model="gouache-mini", prompt="a blue square", size="1024x1024", quality="low", extra_body=extra
    )
    data = raw.parse().data
    assert data is not None and data[0].b64_json is not None
    return base64.b64decode(data[0].b64_json), raw.headers["x-gouache-cache"]


def test_same_seed_same_pixels_and_parameters_and_a_cache_hit_is_the_same_signed_file(client: OpenAI) -> None:
    """Determinism with provenance on: each signing is unique (c2pa-rs salts every assertion), so two renders
    differ in their manifests only; a result-cache hit is served from the store, byte for byte."""
    first, state = _generate(client, seed=5, cache=False)
    second, again = _generate(client, seed=5, cache=False)
    assert state == again == "off"
    assert first != second  # two signings
    a, b = Image.open(io.BytesIO(first)), Image.open(io.BytesIO(second))
    assert np.array_equal(np.asarray(a.convert("RGBA")), np.asarray(b.convert("RGBA")))
    assert a.text["parameters"] == b.text["parameters"]  # type: ignore[attr-defined]
    assert a.text["invokeai_metadata"] == b.text["invokeai_metadata"]  # type: ignore[attr-defined]
    assert "Seed: 5" in a.text["parameters"]  # type: ignore[attr-defined]
    assert _manifest(first, "image/png")["title"] == _manifest(second, "image/png")["title"]
    miss, state = _generate(client, seed=6)
    hit, state2 = _generate(client, seed=6)
    assert (state, state2) == ("miss", "hit") and hit == miss
    assert client.content_provenance_checks.create(file=("a.png", hit, "image/png")).results[
        0
    ].validation_state == ("trusted")


def test_not_an_image_is_a_400_naming_file(server: LiveServer) -> None:
    import httpx

    response = httpx.post(
        f"{server.base_url}/content_provenance_checks", files={"file": ("a.txt", b"hello")}, timeout=30
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "file"


def test_signing_key_is_private(server: LiveServer) -> None:
    key = server.data_dir / "provenance" / "signer.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in server.log()
