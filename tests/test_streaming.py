"""Streamed partial images (SSE) on generations and edits, through the official SDK."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import numpy as np
import pytest
from openai import OpenAI
from PIL import Image

from tests.live import LiveServer


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("model", ["gpt-image-2", "tiny-sdxl", "tiny-sd3", "tiny-flux"])
def test_generation_stream_sends_partials_then_completed(client: OpenAI, model: str) -> None:
    stream = client.images.generate(
        model=model, prompt="a red circle", size="1024x1024", quality="high", stream=True, partial_images=2,
        extra_body={"seed": 5, "steps": 6},
    )  # fmt: skip
    events: list[Any] = list(stream)
    types = [e.type for e in events]
    assert types == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    final = decode(events[-1].b64_json)
    assert final.size == (1024, 1024) and final.format == "PNG"
    partials = [decode(e.b64_json) for e in events[:2]]
    assert all(p.size == (1024, 1024) for p in partials)
    # Previews are real intermediate states, not copies of the final image.
    final_px = np.asarray(final.convert("RGB"), dtype=np.int16)
    assert all(np.abs(np.asarray(p.convert("RGB"), dtype=np.int16) - final_px).mean() > 1 for p in partials)
    assert events[0].size == "1024x1024" and events[0].quality == "high"
    usage = events[-1].usage
    assert usage.output_tokens == 4160 + 200  # high at 1024x1024, plus 100 per partial


def test_stream_is_deterministic_and_matches_non_streamed(client: OpenAI) -> None:
    body = {"model": "gpt-image-2", "prompt": "a fox", "size": "1024x1024", "quality": "low"}
    streamed = [e for e in client.images.generate(**body, stream=True, extra_body={"seed": 8})]
    plain = client.images.generate(**body, extra_body={"seed": 8})
    assert streamed[-1].b64_json == plain.data[0].b64_json


def test_zero_partials_and_n_two(client: OpenAI) -> None:
    events = list(
        client.images.generate(
            model="gpt-image-2",
            prompt="x",
            size="1024x1024",
            quality="low",
            n=2,
            stream=True,
            partial_images=0,
        )
    )
    assert [e.type for e in events] == ["image_generation.completed"] * 2
    assert events[0].b64_json != events[1].b64_json
    total = sum(e.usage.output_tokens for e in events)
    assert total == 2 * 272


def test_edit_stream(client: OpenAI) -> None:
    source = Image.new("RGB", (1024, 1024), (30, 90, 160))
    mask = Image.new("RGBA", (1024, 1024), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (300, 300, 700, 700))
    stream = client.images.edit(
        model="gpt-image-2", image=("a.png", png(source), "image/png"), mask=("m.png", png(mask), "image/png"),
        prompt="a star", size="1024x1024", quality="high", stream=True, partial_images=1,
    )  # fmt: skip
    events = list(stream)
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    final = decode(events[-1].b64_json).convert("RGB")
    assert final.getpixel((10, 10)) == (30, 90, 160)


def test_raw_sse_framing(server: LiveServer) -> None:
    with httpx.stream(
        "POST", f"{server.base_url}/images/generations", timeout=120,
        json={"prompt": "x", "stream": True, "partial_images": 1, "quality": "medium", "size": "1024x640"},
    ) as response:  # fmt: skip
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    frames = [f for f in text.split("\n\n") if f.strip()]
    assert frames[0].startswith("event: image_generation.partial_image\ndata: {")
    assert frames[-1].startswith("event: image_generation.completed\ndata: {")


def test_disconnect_cancels_the_job(server: LiveServer) -> None:
    import time

    from gouache.store import Store

    body = {"prompt": "cancel-me", "stream": True, "partial_images": 3, "quality": "high", "steps": 60,
            "size": "1024x1024"}  # fmt: skip
    with httpx.stream("POST", f"{server.base_url}/images/generations", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                break  # the first partial arrived: hang up mid-denoising
    store = Store(f"sqlite:///{server.data_dir / 'gouache.db'}", server.data_dir / "blobs")
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            records = [r for r in store.list_requests(limit=50) if r.params.get("prompt") == "cancel-me"]
            status = records[0].status if records else None
            if status in ("cancelled", "succeeded", "failed"):
                break
            time.sleep(0.2)
        assert status == "cancelled", server.log()[-3000:]
    finally:
        store.close()
