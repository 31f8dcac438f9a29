"""Hostile and odd input against a live server with small limits (1 MB bodies, 0.5 MB files, a 64 MB render
budget): every case is a clear 4xx naming the problem, or, for odd but valid images and text, a 200."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from gouache.service.uploads import decode_image
from tests.live import LiveServer, start_server
from tests.test_reliability import assert_openai_error


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, catalog_file: Path) -> Iterator[LiveServer]:
    env = {
        "GOUACHE_CATALOG_FILE": str(catalog_file),
        "GOUACHE_DEFAULT_MODEL": "tiny-sd1",
        "GOUACHE_MAX_BODY_MB": "1",
        "GOUACHE_MAX_UPLOAD_MB": "0.5",
        "GOUACHE_RENDER_MEMORY_MB": "64",
    }
    live = start_server(tmp_path_factory.mktemp("limited"), env)
    yield live
    live.stop()


def generate(server: LiveServer, **body: Any) -> httpx.Response:
    body = {"model": "tiny-sd1", "size": "1024x1024", "quality": "low", **body}
    return httpx.post(f"{server.base_url}/images/generations", json=body, timeout=120)


def edit(server: LiveServer, files: list[tuple[str, tuple[str, bytes, str]]], **data: Any) -> httpx.Response:
    fields = {"prompt": "a lighthouse", "model": "tiny-sd1", "quality": "low", **data}
    return httpx.post(f"{server.base_url}/images/edits", data=fields, files=files, timeout=120)


def encoded(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def photo(width: int = 320, height: int = 200) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    return Image.fromarray(np.stack([x, x[::-1], np.full_like(x, 90)], -1).astype(np.uint8))


# --- bodies -----------------------------------------------------------------------------------------------


def test_body_over_the_limit_is_413(limited: LiveServer) -> None:
    response = generate(limited, prompt="x" * (1_200_000))
    error = assert_openai_error(response, 413, "request_too_large")
    assert "GOUACHE_MAX_BODY_MB" in error["message"]


def test_chunked_body_over_the_limit_is_413(limited: LiveServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(20):
            yield b"y" * 100_000
        yield b'"}'

    response = httpx.post(
        f"{limited.base_url}/images/generations",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert_openai_error(response, 413, "request_too_large")


def test_chunked_multipart_over_the_limit_is_413(limited: LiveServer) -> None:
    boundary = "gouacheboundary"

    def chunks() -> Iterator[bytes]:
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
        for _ in range(15):
            yield b"\0" * 100_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        f"{limited.base_url}/images/edits",
        content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )
    assert_openai_error(response, 413, "request_too_large")


@pytest.mark.parametrize("depth", [80, 200_000])
def test_deeply_nested_json_is_400(limited: LiveServer, depth: int) -> None:
    body = '{"prompt": "x", "metadata": ' + "[" * depth + "]" * depth + "}"
    response = httpx.post(
        f"{limited.base_url}/responses",
        content=body,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    error = assert_openai_error(response, 400, "invalid_json")
    assert "nested" in error["message"] and "64" in error["message"]


def test_lone_surrogate_and_invalid_utf8_are_400(limited: LiveServer) -> None:
    headers = {"content-type": "application/json"}
    url = f"{limited.base_url}/images/generations"
    lone = httpx.post(url, content=b'{"prompt": "a \\ud800 fox"}', headers=headers, timeout=30)
    assert "surrogate" in assert_openai_error(lone, 400, "invalid_json")["message"]
    paired = generate(limited, prompt="a fox \U0001f98a")  # sent as the escape pair \ud83e\udd8a: fine
    assert paired.status_code == 200, paired.text
    bad = httpx.post(url, content=b'{"prompt": "caf\xe9"}', headers=headers, timeout=30)
    assert "UTF-8" in assert_openai_error(bad, 400, "invalid_json")["message"]


# --- text -------------------------------------------------------------------------------------------------


def test_nul_and_control_characters_are_refused_by_name(limited: LiveServer) -> None:
    error = assert_openai_error(generate(limited, prompt="a red\x00fox"), 400, "invalid_characters")
    assert error["param"] == "prompt" and "NUL" in error["message"] and "position 5" in error["message"]
    error = assert_openai_error(
        generate(limited, prompt="fox", negative_prompt="blur\x1b"), 400, "invalid_characters"
    )
    assert error["param"] == "negative_prompt"


@pytest.mark.parametrize(
    "prompt",
    [
        "🦊🌨️ a fox in the snow 👩🏽‍🎨",
        "ثعلب أحمر في الثلج",  # Arabic, right to left
        "שועל אדום בשלג with mixed direction",  # Hebrew and English
        "é" * 32_000,  # the longest prompt accepted
    ],
    ids=["emoji", "arabic", "bidi", "32k"],
)
def test_unusual_but_valid_prompts_render(limited: LiveServer, prompt: str) -> None:
    response = generate(limited, prompt=prompt)
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["b64_json"]


def test_prompt_over_32k_characters_is_400(limited: LiveServer) -> None:
    error = assert_openai_error(generate(limited, prompt="é" * 32_001), 400, "string_above_max_length")
    assert error["param"] == "prompt"


def test_n_times_size_beyond_the_render_budget_is_400(limited: LiveServer) -> None:
    error = assert_openai_error(
        generate(limited, prompt="x", n=10, size="3840x2160"), 400, "request_too_large"
    )
    assert error["param"] == "n" and "GOUACHE_RENDER_MEMORY_MB" in error["message"]
    assert "n=10 images of 3840x2160" in error["message"]


# --- uploads ----------------------------------------------------------------------------------------------


def test_too_many_files_is_400(limited: LiveServer) -> None:
    small = encoded(photo(16, 16))
    files = [("image[]", (f"{i}.png", small, "image/png")) for i in range(21)]
    error = assert_openai_error(edit(limited, files), 400, "invalid_multipart")
    assert "Too many files" in error["message"]


def test_file_over_the_upload_limit_is_400(limited: LiveServer) -> None:
    big = np.random.default_rng(0).integers(0, 255, (420, 420, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(big))  # noise does not compress: ~0.53 MB
    assert 0.5 * 2**20 < len(data) < 2**20
    error = assert_openai_error(
        edit(limited, [("image", ("big.png", data, "image/png"))]), 400, "image_file_too_large"
    )
    assert error["param"] == "image" and "GOUACHE_MAX_UPLOAD_MB" in error["message"]


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width x height` (a decompression bomb's opening move)."""
    data = bytearray(encoded(Image.new("L", (1, 1))))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_decompression_bomb_is_400(limited: LiveServer) -> None:
    error = assert_openai_error(
        edit(limited, [("image", ("bomb.png", png_claiming(60_000, 60_000), "image/png"))]),
        400,
        "image_too_large",
    )
    assert error["param"] == "image" and "3,600,000,000 pixels" in error["message"]


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue")]
    return encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_images_are_400(limited: LiveServer, fmt: str) -> None:
    data = animated(fmt)
    error = assert_openai_error(
        edit(limited, [("image", (f"a.{fmt.lower()}", data, f"image/{fmt.lower()}"))]),
        400,
        "animated_image_not_supported",
    )
    assert "3 frames" in error["message"]


def exif_rotated() -> bytes:
    """A landscape JPEG whose EXIF says: turn me 90 degrees (orientation 6), so it is upright portrait."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(photo(320, 200), "JPEG", exif=exif.tobytes())


def sixteen_bit() -> bytes:
    values = (np.linspace(0, 65535, 256)[None, :].repeat(64, 0)).astype(np.uint16)
    return encoded(Image.fromarray(values))


ODD_IMAGES = {
    "cmyk": lambda: encoded(photo().convert("CMYK"), "JPEG"),
    "16-bit": sixteen_bit,
    "palette": lambda: encoded(photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)),
    "palette-transparent": lambda: encoded(
        photo().convert("P", palette=Image.Palette.ADAPTIVE), transparency=0
    ),
    "1-bit": lambda: encoded(photo().convert("1")),
    "exif-rotated": exif_rotated,
}


@pytest.mark.parametrize("kind", ODD_IMAGES)
def test_odd_image_modes_are_normalised(kind: str) -> None:
    image = decode_image(ODD_IMAGES[kind](), "image")
    assert image.mode in ("RGB", "RGBA")
    if kind == "exif-rotated":
        assert image.size == (200, 320)  # upright
    if kind == "16-bit":
        row = np.asarray(image.convert("L"))[0]
        assert row[0] == 0 and row[-1] == 255 and 120 <= row[128] <= 135  # scaled, not clipped to white


@pytest.mark.parametrize("kind", ["cmyk", "16-bit", "palette-transparent", "exif-rotated"])
def test_odd_image_modes_edit_over_http(limited: LiveServer, kind: str) -> None:
    response = edit(
        limited, [("image", ("odd", ODD_IMAGES[kind](), "application/octet-stream"))], size="auto"
    )
    assert response.status_code == 200, response.text
    width, height = map(int, response.json()["size"].split("x"))
    if kind == "exif-rotated":
        assert height > width  # the upright aspect is kept


def test_non_ascii_link_signature_is_404(limited: LiveServer) -> None:
    """Found by fuzzing: a forged signature with non-ASCII characters made the comparison raise."""
    response = httpx.get(
        f"{limited.base_url}/images/files/img_x?expires=4398046511105&signature=%C2%BF%1E", timeout=30
    )
    assert_openai_error(response, 404, "not_found")
