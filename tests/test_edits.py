"""`POST /v1/images/edits` and `/v1/images/variations` through the official SDK against a live server."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.live import LiveServer


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    rgb = np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def centre_mask(width: int, height: int, frac: float = 0.4) -> Image.Image:
    """Opaque everywhere except a transparent centre square (alpha 0 = repaint)."""
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    w, h = int(width * frac), int(height * frac)
    x0, y0 = (width - w) // 2, (height - h) // 2
    mask.paste((0, 0, 0, 0), (x0, y0, x0 + w, y0 + h))
    return mask


def decode(b64: str | None) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64 or ""))).convert("RGB")).astype(np.int16)


@pytest.mark.parametrize("model", ["gpt-image-2", "tiny-sd1", "tiny-sdxl", "tiny-flux", "tiny-sd3"])
def test_inpainting_keeps_pixels_outside_the_mask(client: OpenAI, model: str) -> None:
    source = gradient(1024, 1024)
    result = client.images.edit(
        model=model, image=("in.png", png(source), "image/png"), mask=("mask.png", png(centre_mask(1024, 1024)), "image/png"),
        prompt="a red circle", size="1024x1024", quality="low", extra_body={"seed": 1},
    )  # fmt: skip
    out = decode(result.data[0].b64_json)
    src = np.asarray(source).astype(np.int16)
    assert out.shape == (1024, 1024, 3)
    keep = np.ones((1024, 1024), bool)
    keep[280:744, 280:744] = False  # the masked square (307..716) plus a margin for the feathered seam
    assert np.abs(out[keep] - src[keep]).max() <= 3
    inside = slice(350, 674)
    assert np.abs(out[inside, inside] - src[inside, inside]).mean() > 5


def test_outpainting_transparent_border_extends_image(client: OpenAI) -> None:
    canvas = Image.new("RGBA", (1024, 1024), (0, 0, 0, 0))
    inner = gradient(640, 640).convert("RGBA")
    canvas.paste(inner, (192, 192))
    result = client.images.edit(
        model="gpt-image-2", image=("canvas.png", png(canvas), "image/png"), prompt="continue the scene",
        size="1024x1024", quality="low", extra_body={"seed": 2},
    )  # fmt: skip
    out = decode(result.data[0].b64_json)
    assert out.shape == (1024, 1024, 3)
    src_inner = np.asarray(inner.convert("RGB")).astype(np.int16)
    assert np.abs(out[232:792, 232:792] - src_inner[40:600, 40:600]).max() <= 3
    # The border was painted: not the black of fully transparent pixels.
    assert out[:100].mean() > 5


def test_image_to_image_keeps_aspect_and_strength_matters(client: OpenAI) -> None:
    source = png(gradient(768, 512))

    def edit(strength: float) -> Any:
        return client.images.edit(
            model="gpt-image-2", image=("in.png", source, "image/png"), prompt="warmer colours", quality="low",
            extra_body={"seed": 3, "strength": strength},
        )  # fmt: skip

    weak, strong = edit(0.3), edit(0.95)
    assert weak.size == "1536x1024"
    assert decode(weak.data[0].b64_json).shape == (1024, 1536, 3)
    assert weak.data[0].b64_json != strong.data[0].b64_json
    assert weak.usage is not None and weak.usage.input_tokens_details.image_tokens > 0


def test_several_reference_images_and_file_objects(client: OpenAI, tmp_path: Any) -> None:
    first = tmp_path / "a.png"
    first.write_bytes(png(gradient(1024, 1024)))
    second = png(Image.new("RGB", (512, 512), (200, 30, 30)))
    with first.open("rb") as fh:
        single = client.images.edit(
            model="gpt-image-1.5", image=fh, prompt="combine", size="1024x1024", quality="low",
            input_fidelity="high", extra_body={"seed": 4},
        )  # fmt: skip
    with first.open("rb") as fh:
        both = client.images.edit(
            model="gpt-image-1.5", image=[fh, ("b.png", second, "image/png")], prompt="combine",
            size="1024x1024", quality="low", input_fidelity="high", extra_body={"seed": 4},
        )  # fmt: skip
    assert decode(both.data[0].b64_json).shape == (1024, 1024, 3)
    assert single.data[0].b64_json != both.data[0].b64_json


def test_n_and_formats_on_edits(client: OpenAI) -> None:
    result = client.images.edit(
        model="gpt-image-2", image=("in.png", png(gradient(1024, 1024)), "image/png"), prompt="x", n=2,
        size="1024x1536", output_format="webp", output_compression=70, quality="low",
    )  # fmt: skip
    assert len(result.data) == 2 and result.data[0].b64_json != result.data[1].b64_json
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json or "")))
    assert image.format == "WEBP" and image.size == (1024, 1536)


def test_variations_b64_and_url(client: OpenAI, server: LiveServer) -> None:
    source = ("in.png", png(gradient(512, 512)), "image/png")
    result = client.images.create_variation(image=source, n=2, size="512x512", response_format="b64_json")
    assert [decode(d.b64_json).shape for d in result.data] == [(512, 512, 3)] * 2
    linked = client.images.create_variation(image=source, size="256x256")
    url = linked.data[0].url or ""
    assert url.startswith(server.url) and "signature=" in url
    response = httpx.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (256, 256)
    forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    bad = httpx.get(forged)
    assert bad.status_code == 404 and bad.json()["error"]["type"] == "invalid_request_error"
    image_id = url.split("/files/")[1].split("?")[0]
    expired = httpx.get(
        f"{server.base_url}/images/files/{image_id}?expires={int(time.time()) - 10}&signature=ab"
    )
    assert expired.status_code == 404
    assert httpx.get(f"{server.base_url}/images/files/img_unknown").status_code == 404


def test_generation_url_extension(client: OpenAI) -> None:
    result = client.images.generate(model="gpt-image-2", prompt="x", quality="low", response_format="url")
    response = httpx.get(result.data[0].url or "")
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (1024, 1024)


@pytest.mark.parametrize(
    ("model", "fidelity", "ok"),
    [("gpt-image-2", "high", False), ("gpt-image-2", "low", False), ("gpt-image-1.5", "low", True),
     ("gpt-image-1-mini", "low", True), ("gpt-image-1-mini", "high", False), ("gouache-mini", "high", True)],
)  # fmt: skip
def test_input_fidelity_per_model(client: OpenAI, model: str, fidelity: str, ok: bool) -> None:
    def call() -> Any:
        return client.images.edit(
            model=model, image=("in.png", png(gradient(64, 64)), "image/png"), prompt="x", quality="low",
            size="1024x1024", input_fidelity=fidelity,  # type: ignore[arg-type]
        )  # fmt: skip

    if ok:
        assert call().data
    else:
        with pytest.raises(openai.BadRequestError) as info:
            call()
        assert info.value.param == "input_fidelity"


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buf, format="PNG")
    return buf.getvalue()


def _truncated() -> bytes:
    data = png(gradient(256, 256))
    return data[: len(data) // 2]


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, format="GIF")
    return buf.getvalue()


BAD_EDITS: list[tuple[str, dict[str, Any], str, str]] = [
    ("mask size", {"mask": png(centre_mask(512, 512))}, "mask", "invalid_value"),
    ("mask no alpha", {"mask": png(Image.new("RGB", (1024, 1024)))}, "mask", "invalid_image_mode"),
    ("not an image", {"image": b"this is not an image"}, "image", "invalid_image_format"),
    ("truncated png", {"image": _truncated()}, "image", "image_parse_error"),
    ("bomb", {"image": _bomb()}, "image", "image_too_large"),
    ("gif", {"image": _gif()}, "image", "unsupported_image_media_type"),
    ("empty file", {"image": b""}, "image", "empty_image_file"),
    ("missing prompt", {"prompt": None}, "prompt", "missing_required_parameter"),
    ("empty prompt", {"prompt": ""}, "prompt", "empty_string"),
    ("bad n", {"n": "zero"}, "n", "invalid_type"),
    ("bad size", {"size": "1000x1000"}, "size", "invalid_value"),
    ("stream type", {"stream": "maybe"}, "stream", "invalid_type"),
    ("moderation not an edit field", {"moderation": "low"}, "moderation", "unknown_parameter"),
    ("strength", {"strength": "2"}, "strength", "integer_above_max_value"),
]


@pytest.mark.parametrize(
    ("change", "param", "code"), [c[1:] for c in BAD_EDITS], ids=[c[0] for c in BAD_EDITS]
)
def test_bad_edit_input(server: LiveServer, change: dict[str, Any], param: str, code: str) -> None:
    fields: dict[str, Any] = {"prompt": "x", "model": "gpt-image-2", "quality": "low"}
    files: dict[str, bytes] = {"image": png(gradient(1024, 1024))}
    for key, value in change.items():
        if key in ("image", "mask"):
            files[key] = value
        elif value is None:
            fields.pop(key)
        else:
            fields[key] = value
    response = httpx.post(
        f"{server.base_url}/images/edits", data=fields,
        files={k: (f"{k}.png", v, "image/png") for k, v in files.items()}, timeout=120,
    )  # fmt: skip
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error") or (
        param == "size" and error["param"] == "size"
    )


def test_too_many_images_and_missing_image(server: LiveServer) -> None:
    tiny = png(gradient(16, 16))
    files = [("image[]", (f"{i}.png", tiny, "image/png")) for i in range(17)]
    response = httpx.post(f"{server.base_url}/images/edits", data={"prompt": "x"}, files=files)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "image"
    response = httpx.post(
        f"{server.base_url}/images/edits", data={"prompt": "x"}, files={"mask": ("m.png", tiny, "image/png")}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_required_parameter"
    # JSON edits take image references (tests/test_json_edits.py): without `images` the field is named
    response = httpx.post(f"{server.base_url}/images/edits", json={"prompt": "x"})
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (
        "missing_required_parameter",
        "images",
    )
    response = httpx.post(
        f"{server.base_url}/images/edits", content=b"prompt=x", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_content_type"
