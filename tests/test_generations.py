"""`POST /v1/images/generations` through the official SDK and httpx against a live server."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image

from gouache.engine.tiny import FAMILIES
from gouache.settings import GPT_IMAGE_MODEL_NAMES
from gouache.store import Store
from tests.live import LiveServer


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def test_default_request_returns_png_of_requested_size(client: OpenAI) -> None:
    result = client.images.generate(model="gpt-image-2", prompt="a red circle on white", size="1024x1024")
    assert len(result.data) == 1
    image = decode(result.data[0].b64_json or "")
    assert image.format == "PNG"
    assert image.size == (1024, 1024)
    assert image.mode == "RGB"
    assert result.output_format == "png"
    assert result.background == "opaque"
    assert result.size == "1024x1024"
    assert result.quality in ("low", "medium", "high")
    assert result.data[0].url is None
    usage = result.usage
    assert usage is not None
    assert usage.input_tokens_details.text_tokens == usage.input_tokens > 0
    assert usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    # The pixels are not constant: something was rendered.
    assert len(set(image.getdata())) > 100


@pytest.mark.parametrize(
    ("size", "fmt", "compression", "pil_format"),
    [
        ("1536x1024", "jpeg", 60, "JPEG"),
        ("1024x1536", "webp", 80, "WEBP"),
        ("1024x640", "png", None, "PNG"),
        ("2880x960", "jpeg", None, "JPEG"),
        ("3840x2160", "jpeg", 90, "JPEG"),
    ],
)
def test_sizes_and_formats(
    client: OpenAI, size: str, fmt: str, compression: int | None, pil_format: str
) -> None:
    kwargs = {} if compression is None else {"output_compression": compression}
    result = client.images.generate(
        model="gpt-image-2", prompt="a blue square", size=size, output_format=fmt, quality="low", **kwargs
    )
    image = decode(result.data[0].b64_json or "")
    width, height = (int(v) for v in size.split("x"))
    assert image.size == (width, height)
    assert image.format == pil_format
    assert result.size == size
    assert result.output_format == fmt
    assert result.quality == "low"


def test_jpeg_compression_changes_bytes(client: OpenAI) -> None:
    sizes = []
    for compression in (10, 95):
        result = client.images.generate(
            model="gpt-image-2", prompt="stripes", size="1024x1024", output_format="jpeg",
            output_compression=compression, quality="low", extra_body={"seed": 5},
        )  # fmt: skip
        sizes.append(len(base64.b64decode(result.data[0].b64_json or "")))
    assert sizes[0] < sizes[1]


def test_auto_size_and_quality_resolve(client: OpenAI) -> None:
    result = client.images.generate(model="gpt-image-2", prompt="a poster that says 'HELLO'")
    assert result.size == "1024x1024"
    assert result.quality == "high"
    assert decode(result.data[0].b64_json or "").size == (1024, 1024)


def test_model_defaults_to_gpt_image_2(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.base_url}/images/generations", json={"prompt": "x", "quality": "low"}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert decode(response.json()["data"][0]["b64_json"]).size == (1024, 1024)
    assert response.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_serves_exact_sizes(client: OpenAI, family: str) -> None:
    result = client.images.generate(
        model=f"tiny-{family}", prompt="a green triangle", size="1536x1024", quality="low",
        extra_body={"seed": 3, "negative_prompt": "blurry"},
    )  # fmt: skip
    image = decode(result.data[0].b64_json or "")
    assert image.size == (1536, 1024)
    assert len(set(image.getdata())) > 50


def test_same_seed_same_bytes_and_different_seed_differs(client: OpenAI) -> None:
    def make(seed: int) -> str:
        result = client.images.generate(
            model="gpt-image-2", prompt="a fox", size="1024x1024", quality="low", extra_body={"seed": seed}
        )
        return result.data[0].b64_json or ""

    first, again, other = make(42), make(42), make(43)
    assert first == again
    assert first != other


def test_seed_is_drawn_and_reported_and_reproduces(client: OpenAI) -> None:
    result = client.images.generate(model="gpt-image-2", prompt="a fox", size="1024x1024", quality="low", n=2)
    seeds = [d.model_extra["seed"] for d in result.data if d.model_extra]
    assert len(seeds) == 2 and seeds[1] == seeds[0] + 1
    again = client.images.generate(
        model="gpt-image-2", prompt="a fox", size="1024x1024", quality="low", extra_body={"seed": seeds[1]}
    )
    assert again.data[0].b64_json == result.data[1].b64_json


def test_n_gives_distinct_images(client: OpenAI) -> None:
    result = client.images.generate(model="gpt-image-2", prompt="dots", size="1024x1024", quality="low", n=3)
    assert len(result.data) == 3
    assert len({d.b64_json for d in result.data}) == 3
    assert result.usage is not None
    single = client.images.generate(model="gpt-image-2", prompt="dots", size="1024x1024", quality="low")
    assert single.usage is not None
    assert result.usage.output_tokens == 3 * single.usage.output_tokens


def test_extensions_steps_and_guidance_change_the_image(client: OpenAI) -> None:
    def make(**extra: object) -> str:
        body = {"seed": 9, **extra}
        result = client.images.generate(
            model="gpt-image-2", prompt="a red circle", size="1024x1024", quality="low", extra_body=body
        )
        return result.data[0].b64_json or ""

    base = make()
    assert make(steps=2) != base
    assert make(guidance_scale=9.0) != base


def test_safety_identifier_wins_over_user(client: OpenAI) -> None:
    result = client.images.generate(
        model="gpt-image-2", prompt="x", quality="low", user="u1", safety_identifier="s1", moderation="low"
    )
    assert result.safety_identifier == "s1"
    result = client.images.generate(
        model="gpt-image-2", prompt="x", quality="low", user="u1", safety_identifier=""
    )
    assert result.safety_identifier == "u1"


@pytest.mark.parametrize("name", GPT_IMAGE_MODEL_NAMES)
def test_every_gpt_image_name_is_an_alias(server: LiveServer, name: str) -> None:
    response = httpx.get(f"{server.base_url}/models/{name}")
    assert response.status_code == 200
    assert response.json()["id"] == name
    assert response.json()["root"] == "gouache-mini"


def test_gpt_image_alias_generates(client: OpenAI) -> None:
    result = client.images.generate(model="gpt-image-1.5", prompt="x", size="1024x1024", quality="low")
    assert decode(result.data[0].b64_json or "").size == (1024, 1024)


def test_models_list_and_health(client: OpenAI, server: LiveServer) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"gouache-mini", "gpt-image-2", *(f"tiny-{f}" for f in FAMILIES)} <= ids
    model = client.models.retrieve("gouache-mini")
    assert model.owned_by == "gouache"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok"
    assert "gouache-mini" in health["models_loaded"]


def test_requests_and_images_are_recorded(client: OpenAI, server: LiveServer) -> None:
    raw = client.images.with_raw_response.generate(
        model="gpt-image-2", prompt="recorded", size="1024x640", quality="low", n=2, extra_body={"seed": 77}
    )
    result = raw.parse()
    request_id = raw.headers["x-gouache-request-id"]
    store = Store(f"sqlite:///{server.data_dir / 'gouache.db'}", server.data_dir / "blobs")
    try:
        record = store.get_request(request_id)
        assert record is not None
        assert record.status == "succeeded"
        assert record.endpoint == "images.generations"
        assert record.model == "gpt-image-2"
        assert record.resolved_model == "gouache-mini"
        assert record.seed == 77
        assert record.params["prompt"] == "recorded"
        assert record.params["resolved"]["seeds"] == [77, 78]
        assert record.timings is not None and record.timings["total_s"] > 0
        assert record.usage is not None and record.usage["output_tokens"] > 0
        assert [img.seed for img in record.images] == [77, 78]
        for img, data in zip(record.images, result.data, strict=True):
            assert store.read_image_bytes(img.id) == base64.b64decode(data.b64_json or "")
            assert (img.width, img.height, img.format) == (1024, 640, "png")
    finally:
        store.close()


def test_rejected_requests_are_recorded_with_their_error(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.base_url}/images/generations", json={"prompt": "rejected-one", "size": "1000x1000"}
    )
    assert response.status_code == 400
    store = Store(f"sqlite:///{server.data_dir / 'gouache.db'}", server.data_dir / "blobs")
    try:
        records = [r for r in store.list_requests(limit=500) if r.params.get("prompt") == "rejected-one"]
        assert len(records) == 1
        assert records[0].status == "failed"
        assert records[0].error is not None and records[0].error["param"] == "size"
    finally:
        store.close()
