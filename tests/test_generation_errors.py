"""Every invalid generation request gets OpenAI's error shape with the right status, type, param and code."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.live import LiveServer

INVALID = "invalid_request_error"
SIZE_ERR = "image_generation_user_error"

CASES: list[tuple[str, dict[str, Any], int, str, str | None, str | None]] = [
    # name, body, status, type, param, code
    ("missing prompt", {"model": "gpt-image-2"}, 400, INVALID, "prompt", "missing_required_parameter"),
    ("empty prompt", {"prompt": ""}, 400, INVALID, "prompt", "empty_string"),
    ("prompt too long", {"prompt": "a" * 32001}, 400, INVALID, "prompt", "string_above_max_length"),
    ("prompt not a string", {"prompt": 5}, 400, INVALID, "prompt", "invalid_type"),
    ("prompt null", {"prompt": None}, 400, INVALID, "prompt", "invalid_type"),
    ("n zero", {"prompt": "x", "n": 0}, 400, INVALID, "n", "integer_below_min_value"),
    ("n eleven", {"prompt": "x", "n": 11}, 400, INVALID, "n", "integer_above_max_value"),
    ("n as string", {"prompt": "x", "n": "2"}, 400, INVALID, "n", "invalid_type"),
    ("n as float", {"prompt": "x", "n": 1.5}, 400, INVALID, "n", "invalid_type"),
    ("n as bool", {"prompt": "x", "n": True}, 400, INVALID, "n", "invalid_type"),
    ("size not 16", {"prompt": "x", "size": "1000x1000"}, 400, SIZE_ERR, "size", "invalid_value"),
    ("size ratio", {"prompt": "x", "size": "3072x1008"}, 400, SIZE_ERR, "size", "invalid_value"),
    ("size too big", {"prompt": "x", "size": "3840x3840"}, 400, SIZE_ERR, "size", "invalid_value"),
    ("size too small", {"prompt": "x", "size": "512x512"}, 400, SIZE_ERR, "size", "invalid_value"),
    ("size edge", {"prompt": "x", "size": "4096x2048"}, 400, SIZE_ERR, "size", "invalid_value"),
    ("size ratio text", {"prompt": "x", "size": "16:9"}, 400, SIZE_ERR, "size", "invalid_value"),
    ("size type", {"prompt": "x", "size": 1024}, 400, INVALID, "size", "invalid_type"),
    ("quality", {"prompt": "x", "quality": "ultra"}, 400, INVALID, "quality", "invalid_value"),
    ("quality hd", {"prompt": "x", "quality": "hd"}, 400, INVALID, "quality", "invalid_value"),
    ("quality xhigh", {"prompt": "x", "quality": "xhigh"}, 400, INVALID, "quality", "invalid_value"),
    ("format", {"prompt": "x", "output_format": "bmp"}, 400, INVALID, "output_format", "invalid_value"),
    (
        "compression high",
        {"prompt": "x", "output_format": "jpeg", "output_compression": 101},
        400,
        INVALID,
        "output_compression",
        "integer_above_max_value",
    ),
    (
        "compression low",
        {"prompt": "x", "output_format": "jpeg", "output_compression": -1},
        400,
        INVALID,
        "output_compression",
        "integer_below_min_value",
    ),
    (
        "compression png",
        {"prompt": "x", "output_compression": 50},
        400,
        INVALID,
        "output_compression",
        "invalid_value",
    ),
    ("background", {"prompt": "x", "background": "blue"}, 400, INVALID, "background", "invalid_value"),
    (
        "transparent jpeg",
        {"prompt": "x", "background": "transparent", "output_format": "jpeg"},
        400,
        INVALID,
        "background",
        "invalid_value",
    ),
    ("moderation", {"prompt": "x", "moderation": "high"}, 400, INVALID, "moderation", "invalid_value"),
    (
        "response_format",
        {"prompt": "x", "response_format": "png"},
        400,
        INVALID,
        "response_format",
        "invalid_value",
    ),
    ("style", {"prompt": "x", "style": "vivid"}, 400, INVALID, "style", "unknown_parameter"),
    ("user type", {"prompt": "x", "user": 3}, 400, INVALID, "user", "invalid_type"),
    (
        "stream gif",
        {"prompt": "x", "stream": True, "output_format": "gif"},
        400,
        INVALID,
        "stream",
        "unsupported_parameter",
    ),
    (
        "stream bad size",
        {"prompt": "x", "stream": True, "size": "10x10"},
        400,
        SIZE_ERR,
        "size",
        "invalid_value",
    ),
    ("stream type", {"prompt": "x", "stream": "yes"}, 400, INVALID, "stream", "invalid_type"),
    (
        "partial_images",
        {"prompt": "x", "partial_images": 4},
        400,
        INVALID,
        "partial_images",
        "integer_above_max_value",
    ),
    (
        "complexity",
        {"prompt": "x", "complexity": "high"},
        400,
        INVALID,
        "complexity",
        "unsupported_parameter",
    ),
    ("complexity value", {"prompt": "x", "complexity": "huge"}, 400, INVALID, "complexity", "invalid_value"),
    ("frame_count", {"prompt": "x", "frame_count": 4}, 400, INVALID, "frame_count", "unsupported_parameter"),
    (
        "frame_count range",
        {"prompt": "x", "frame_count": 40},
        400,
        INVALID,
        "frame_count",
        "integer_above_max_value",
    ),
    (
        "frame_duration",
        {"prompt": "x", "frame_duration_ms": 100},
        400,
        INVALID,
        "frame_duration_ms",
        "unsupported_parameter",
    ),
    ("svg", {"prompt": "x", "svg": {"model": "gpt-5"}}, 400, INVALID, "svg", "unsupported_parameter"),
    (
        "svg shape",
        {"prompt": "x", "svg": {"model": "m", "bogus": 1}},
        400,
        INVALID,
        "svg.bogus",
        "unknown_parameter",
    ),
    ("unknown field", {"prompt": "x", "colour": "red"}, 400, INVALID, "colour", "unknown_parameter"),
    ("seed negative", {"prompt": "x", "seed": -1}, 400, INVALID, "seed", "integer_below_min_value"),
    ("seed type", {"prompt": "x", "seed": "1"}, 400, INVALID, "seed", "invalid_type"),
    ("steps", {"prompt": "x", "steps": 0}, 400, INVALID, "steps", "integer_below_min_value"),
    (
        "guidance",
        {"prompt": "x", "guidance_scale": 99},
        400,
        INVALID,
        "guidance_scale",
        "integer_above_max_value",
    ),
    ("unknown model", {"prompt": "x", "model": "no-such-model"}, 404, INVALID, "model", "model_not_found"),
    ("retired model", {"prompt": "x", "model": "dall-e-3"}, 404, INVALID, "model", "model_not_found"),
    ("model type", {"prompt": "x", "model": 2}, 400, INVALID, "model", "invalid_type"),
]


@pytest.mark.parametrize(
    ("body", "status", "type_", "param", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_bodies(
    server: LiveServer, body: dict[str, Any], status: int, type_: str, param: str | None, code: str | None
) -> None:
    response = httpx.post(f"{server.base_url}/images/generations", json=body, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["type"] == type_
    assert error["param"] == param
    assert error["code"] == code
    assert error["message"]
    assert "Traceback" not in error["message"]
    if param:
        assert param.split(".")[0] in error["message"] or status == 404 or code == "invalid_value"


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"{not json", {"content-type": "application/json"}),
        (b"", {"content-type": "application/json"}),
        (b"[1, 2]", {"content-type": "application/json"}),
        (b'"just a string"', {"content-type": "application/json"}),
        (b"prompt=x", {"content-type": "application/x-www-form-urlencoded"}),
        (b"\xff\xfe\x00garbage", {"content-type": "application/json"}),
    ],
)
def test_malformed_bodies(server: LiveServer, content: bytes, headers: dict[str, str]) -> None:
    response = httpx.post(f"{server.base_url}/images/generations", content=content, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] is None


def test_unknown_route_and_method(server: LiveServer) -> None:
    response = httpx.get(f"{server.base_url}/images/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"
    response = httpx.get(f"{server.base_url}/images/generations")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_sdk_raises_typed_errors_with_fields(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(model="gpt-image-2", prompt="x", size="1666x2514")
    assert info.value.status_code == 400
    assert info.value.param == "size"
    assert info.value.code == "invalid_value"
    assert info.value.type == "image_generation_user_error"
    assert "divisible by 16" in str(info.value)
    assert info.value.request_id and info.value.request_id.startswith("req_")
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(model="gpt-image-2", prompt="x", stream=True, size="1x1")
    assert info.value.param == "size"
    with pytest.raises(openai.NotFoundError) as nf:
        client.images.generate(model="dall-e-2", prompt="x")
    assert "retired" in str(nf.value)
