"""The Responses API with the image_generation tool, through the official SDK against live servers."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.live import LiveServer, start_server

TOOL = {"type": "image_generation", "quality": "low"}


def pixels(b64: str | None) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64 or ""))).convert("RGB"), dtype=np.int16)


def data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_multi_turn_refinement_chain(client: OpenAI) -> None:
    first = client.responses.create(
        model="gpt-5", input="a red fox in the snow", tools=[{**TOOL, "seed": 11}]
    )
    call = first.output[0]
    assert first.status == "completed" and call.type == "image_generation_call"
    assert call.action == "generate" and call.revised_prompt.startswith(
        "a red fox in the snow (understood as: "
    )
    # gouache-mini says what it understood: a fox (its concept atlas, issue 22), in the snow
    assert call.revised_prompt.endswith("(understood as: a fox, in the snow)")
    assert first.output[1].type == "message" and first.output_text
    assert first.usage is not None and first.usage.input_tokens > 0
    assert pixels(call.result).shape == (1024, 1024, 3)

    warmer = client.responses.create(
        model="gpt-5", input="make the colours warmer", previous_response_id=first.id, tools=[TOOL]
    )
    call2 = warmer.output[0]
    assert call2.action == "edit"
    assert call2.revised_prompt.startswith("a red fox in the snow, warmer colours (understood as: ")
    assert warmer.previous_response_id == first.id
    assert call2.result != call.result

    second_fox = client.responses.create(
        model="gpt-5", input="add a second fox on the left", previous_response_id=warmer.id, tools=[TOOL]
    )
    call3 = second_fox.output[0]
    assert call3.action == "edit"
    assert call3.revised_prompt.split(" (understood as: ")[0].endswith("with a second fox on the left")
    before, after = pixels(call2.result), pixels(call3.result)
    # Only the left of the image was repainted: the right keeps the previous turn's pixels.
    assert np.abs(after[:, 600:] - before[:, 600:]).max() <= 3
    assert np.abs(after[:, :400] - before[:, :400]).mean() > 3

    poster = client.responses.create(
        model="gpt-5", input="turn it into a poster that says WINTER", previous_response_id=second_fox.id,
        tools=[TOOL],
    )  # fmt: skip
    assert poster.output[0].action == "edit"
    assert poster.output[0].revised_prompt.startswith("a poster that says WINTER, showing a red fox")


def test_new_subject_starts_a_new_image(client: OpenAI) -> None:
    first = client.responses.create(model="gpt-5", input="a lighthouse at dusk", tools=[TOOL])
    other = client.responses.create(
        model="gpt-5", input="a bowl of ramen", previous_response_id=first.id, tools=[TOOL]
    )
    assert other.output[0].action == "generate"
    forced = client.responses.create(
        model="gpt-5", input="a bowl of ramen", previous_response_id=first.id,
        tools=[{**TOOL, "action": "edit"}],
    )  # fmt: skip
    assert forced.output[0].action == "edit"


def test_input_image_is_edited_and_items_listed(client: OpenAI) -> None:
    source = Image.new("RGB", (768, 512), (20, 160, 90))
    response = client.responses.create(
        model="gpt-5",
        input=[{"role": "user", "content": [
            {"type": "input_text", "text": "make it brighter"},
            {"type": "input_image", "image_url": data_url(source)},
        ]}],
        tools=[TOOL],
    )  # fmt: skip
    call = response.output[0]
    assert call.action == "edit" and call.size == "1536x1024"
    items = client.responses.input_items.list(response.id)
    assert items.data[0].type == "message"
    parts = items.data[0].content
    assert parts[0].type == "input_text" and parts[1].type == "input_image"
    stored = Image.open(io.BytesIO(base64.b64decode(parts[1].image_url.split(",", 1)[1])))
    assert stored.size == (768, 512)


def test_earlier_image_by_call_id(client: OpenAI) -> None:
    first = client.responses.create(model="gpt-5", input="a blue square", tools=[TOOL])
    again = client.responses.create(
        model="gpt-5",
        input=[{"type": "image_generation_call", "id": first.output[0].id},
               {"role": "user", "content": "make it darker"}],
        tools=[TOOL],
    )  # fmt: skip
    assert again.output[0].action == "edit"


def test_retrieve_delete_and_store_false(client: OpenAI) -> None:
    response = client.responses.create(model="gpt-5", input="a tree", tools=[TOOL])
    fetched = client.responses.retrieve(response.id)
    assert fetched.output[0].result == response.output[0].result
    assert fetched.model == "gpt-5"
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    unstored = client.responses.create(model="gpt-5", input="a tree", tools=[TOOL], store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_streamed_turn_event_order(client: OpenAI) -> None:
    stream = client.responses.create(
        model="gpt-5", input="a cat", stream=True,
        tools=[{"type": "image_generation", "quality": "medium", "partial_images": 2}],
    )  # fmt: skip
    events: list[Any] = list(stream)
    types = [e.type for e in events]
    assert types[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
    ]
    partials = [e for e in events if e.type == "response.image_generation_call.partial_image"]
    assert [p.partial_image_index for p in partials] == [0, 1]
    assert all(pixels(p.partial_image_b64).shape == (1024, 1024, 3) for p in partials)
    assert types.index("response.image_generation_call.completed") > types.index(
        "response.image_generation_call.partial_image"
    )
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.status == "completed" and pixels(final.output[0].result).shape == (1024, 1024, 3)
    done = [e for e in events if e.type == "response.output_item.done"]
    assert done[0].item.result == final.output[0].result


BAD: list[tuple[str, dict[str, Any], int, str | None, str | None]] = [
    ("unknown previous", {"previous_response_id": "resp_nope"}, 404, "previous_response_id", None),
    (
        "bad quality",
        {"tools": [{"type": "image_generation", "quality": "ultra"}]},
        400,
        "tools[0].quality",
        "invalid_value",
    ),
    (
        "unknown option",
        {"tools": [{"type": "image_generation", "colour": 1}]},
        400,
        "tools[0].colour",
        "unknown_parameter",
    ),
    (
        "bad size",
        {"tools": [{"type": "image_generation", "size": "1000x1000"}]},
        400,
        "size",
        "invalid_value",
    ),
    ("web search", {"tools": [{"type": "web_search"}]}, 400, "tools[0].type", "unsupported_tool"),
    ("no tools", {"tools": []}, 400, "tools", None),
    ("forced other tool", {"tool_choice": {"type": "function", "name": "f"}}, 400, "tool_choice", None),
    (
        "edit without image",
        {"tools": [{"type": "image_generation", "action": "edit"}]},
        400,
        "tools[0].action",
        None,
    ),
    (
        "not an image",
        {
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "data:image/png;base64,aGVsbG8="}],
                }
            ]
        },
        400,
        "input[0].content[0].image_url",
        "invalid_image",
    ),
    (
        "remote url",
        {
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}],
                }
            ]
        },
        400,
        "input[0].content[0].image_url",
        "invalid_image_url",
    ),
    (
        "gif with partial images",
        {"tools": [{"type": "image_generation", "output_format": "gif", "partial_images": 1}]},
        400,
        "tools[0].partial_images",
        "unsupported_parameter",
    ),
    (
        "svg with a mask",
        {
            "tools": [
                {"type": "image_generation", "output_format": "svg", "input_image_mask": {"file_id": "x"}}
            ]
        },
        400,
        "tools[0].input_image_mask",
        "unsupported_parameter",
    ),
    (
        "frames without gif",
        {"tools": [{"type": "image_generation", "frame_count": 3}]},
        400,
        "frame_count",
        "unsupported_parameter",
    ),
    (
        "too many frames",
        {"tools": [{"type": "image_generation", "output_format": "gif", "frame_count": 17}]},
        400,
        "tools[0].frame_count",
        None,
    ),
    (
        "transparent jpeg",
        {"tools": [{"type": "image_generation", "output_format": "jpeg", "background": "transparent"}]},
        400,
        "background",
        None,
    ),
    ("missing model", {"model": None}, 400, "model", None),
]


def test_tool_makes_transparent_gif_and_svg_outputs(client: OpenAI) -> None:
    """The tool's background, output_format gif (with its frame options) and svg, as the Images API has them."""
    tool: dict[str, Any] = {"type": "image_generation", "model": "gouache-mini", "quality": "low", "seed": 3}
    clear = client.responses.create(
        model="gpt-5", input="a big red circle in the center",
        tools=[{**tool, "background": "transparent"}],  # type: ignore[list-item]
    )  # fmt: skip
    call = clear.output[0]
    assert call.type == "image_generation_call" and call.background == "transparent"
    alpha = np.asarray(Image.open(io.BytesIO(base64.b64decode(call.result or ""))))[..., 3]
    assert alpha[512, 512] == 255 and alpha[10, 10] == 0
    gif = client.responses.create(
        model="gpt-5", input="a yellow heart",
        tools=[{**tool, "output_format": "gif", "frame_count": 3, "frame_duration_ms": 120}],  # type: ignore[list-item]
    ).output[0]  # fmt: skip
    assert gif.type == "image_generation_call" and gif.output_format == "gif"
    frames = Image.open(io.BytesIO(base64.b64decode(gif.result or "")))
    assert frames.format == "GIF" and frames.n_frames == 3 and frames.info["duration"] == 120  # type: ignore[attr-defined]
    svg = client.responses.create(
        model="gpt-5", input="a blue square", tools=[{**tool, "output_format": "svg"}],  # type: ignore[list-item]
    ).output[0]  # fmt: skip
    assert svg.type == "image_generation_call" and svg.output_format == "svg"
    assert b"<path" in base64.b64decode(svg.result or "") and svg.svg_usage is not None
    assert svg.svg_usage.model == "vtracer"


@pytest.mark.parametrize(("change", "status", "param", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_requests(
    server: LiveServer, change: dict[str, Any], status: int, param: str, code: str | None
) -> None:
    body: dict[str, Any] = {"model": "gpt-5", "input": "a fox", "tools": [TOOL]}
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    response = httpx.post(f"{server.base_url}/responses", json=body, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    if code:
        assert error["code"] == code


def test_chain_survives_restart(tmp_path: Path, catalog_file: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, {"GOUACHE_CATALOG_FILE": str(catalog_file)})
    try:
        client = OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=120)
        first = client.responses.create(model="gpt-5", input="a red fox in the snow", tools=[TOOL])
    finally:
        server.stop()
    server = start_server(data, {"GOUACHE_CATALOG_FILE": str(catalog_file)})
    try:
        client = OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=120)
        assert client.responses.retrieve(first.id).output[0].result == first.output[0].result
        second = client.responses.create(
            model="gpt-5", input="add a tree on the right", previous_response_id=first.id, tools=[TOOL]
        )
        assert second.output[0].action == "edit"
        assert second.output[0].revised_prompt.startswith("a red fox in the snow, with a tree on the right (")
        before, after = pixels(first.output[0].result), pixels(second.output[0].result)
        assert np.abs(after[:, :400] - before[:, :400]).max() <= 3
    finally:
        server.stop()


def test_chat_model_writes_the_revised_prompt(tmp_path: Path, catalog_file: Path) -> None:
    """GOUACHE_PLANNER_URL: an OpenAI-compatible chat endpoint (here a stub on loopback) writes the prompt."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen: list[dict[str, Any]] = []

    class Chat(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            seen.append(body)
            reply = {
                "choices": [{"message": {"role": "assistant", "content": "a snowy fox portrait, warm light"}}]
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    chat = HTTPServer(("127.0.0.1", 0), Chat)
    threading.Thread(target=chat.serve_forever, daemon=True).start()
    env = {
        "GOUACHE_CATALOG_FILE": str(catalog_file),
        "GOUACHE_PLANNER_URL": f"http://127.0.0.1:{chat.server_port}/v1",
    }
    server = start_server(tmp_path / "data", env)
    try:
        client = OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=120)
        response = client.responses.create(model="gpt-5", input="a fox", tools=[TOOL])
        assert response.output[0].revised_prompt.startswith(
            "a snowy fox portrait, warm light (understood as: "
        )
        assert seen and seen[0]["messages"][-1]["content"].endswith("User message: a fox")
    finally:
        server.stop()
        chat.shutdown()
