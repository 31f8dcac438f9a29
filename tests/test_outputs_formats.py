"""Every output the SDK can ask for, through the live server and the unchanged `openai` SDK: transparent
backgrounds, parameters in the file, animated GIF, SVG, markup edits, and each bad input's 400."""

from __future__ import annotations

import base64
import io
import uuid

import httpx
import numpy as np
import openai
import pytest
import resvg_py
from openai import OpenAI
from PIL import Image, ImageDraw, ImageFilter

from gouache.engine.outputs.alpha import matte
from gouache.engine.outputs.metadata import read_user_comment
from gouache.store import Store
from tests.live import LiveServer


def _decode(b64: str | None) -> bytes:
    assert b64 is not None
    return base64.b64decode(b64)


def _open(b64: str | None) -> Image.Image:
    return Image.open(io.BytesIO(_decode(b64)))


# --- transparency -------------------------------------------------------------------------------------------


def test_gouache_mini_alpha_is_its_layout(client: OpenAI) -> None:
    result = client.images.generate(
        model="gouache-mini", prompt="a big red circle in the center, transparent background",
        size="1024x1024", quality="low", background="auto", extra_body={"seed": 3},
    )  # fmt: skip
    assert result.background == "transparent"
    image = _open(result.data[0].b64_json)
    assert image.mode == "RGBA" and image.size == (1024, 1024)
    alpha = np.asarray(image)[..., 3]
    assert alpha[512, 512] == 255  # the object is opaque
    assert alpha[10, 10] == 0 and alpha[1010, 1010] == 0  # the background is gone
    edge = ((alpha > 0) & (alpha < 255)).sum()
    assert 0 < edge < 0.1 * alpha.size  # anti-aliased edges, not a hard key


def test_transparent_webp_keeps_alpha_and_jpeg_is_refused(client: OpenAI) -> None:
    result = client.images.generate(
        model="gouache-mini", prompt="a blue square", size="1024x1024", quality="low",
        background="transparent", output_format="webp",
    )  # fmt: skip
    assert _open(result.data[0].b64_json).mode == "RGBA"
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(
            model="gpt-image-2", prompt="x", background="transparent", output_format="jpeg"
        )
    assert err.value.body["param"] == "background"  # type: ignore[index]


def test_keyed_model_whose_background_is_not_flat_is_refused_clearly(client: OpenAI) -> None:
    # A random-weight model paints noise: no key colour can be read, even after a second seed.
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model="tiny-sd1", prompt="a cat", size="1024x1024", background="transparent")
    body = err.value.body
    assert body["param"] == "background" and body["code"] == "background_not_removable"  # type: ignore[index]


def _scene(kind: str, size: int = 256) -> np.ndarray:
    ss = 4
    a = Image.new("L", (size * ss, size * ss), 0)
    d = ImageDraw.Draw(a)
    if kind == "solid":
        d.ellipse((60 * ss, 60 * ss, 190 * ss, 190 * ss), fill=255)
    elif kind == "line":
        d.line((20 * ss, 30 * ss, 230 * ss, 200 * ss), fill=255, width=3 * ss)
    else:
        d.ellipse((90 * ss, 90 * ss, 160 * ss, 160 * ss), fill=255)
    a = a.reduce(ss)
    if kind == "glow":
        glow = np.asarray(a.filter(ImageFilter.GaussianBlur(8))) * 0.8
        a = Image.fromarray(np.maximum(np.asarray(a), glow).astype(np.uint8))
    return np.asarray(a).astype(np.float32) / 255


@pytest.mark.parametrize("kind", ["solid", "line", "glow"])
def test_key_matte_recovers_exact_alpha_on_edges(kind: str) -> None:
    alpha = _scene(kind)
    fg, key = np.array([200.0, 30.0, 40.0]), np.array([10.0, 240.0, 20.0])
    noise = np.random.default_rng(0).normal(0, 2, (*alpha.shape, 3))
    composite = alpha[..., None] * fg + (1 - alpha[..., None]) * key + noise
    out = np.asarray(matte(Image.fromarray(np.clip(composite, 0, 255).astype(np.uint8))))
    edge = (alpha > 0) & (alpha < 1)
    assert np.abs(out[..., 3][edge] - alpha[edge] * 255).mean() < 8  # 0-255 scale
    # no key colour spills into the edges: their colour is the foreground's
    assert np.abs(out[..., :3][edge].astype(float) - fg).mean() < 12


# --- parameters in the file ---------------------------------------------------------------------------------


def test_parameters_are_written_into_png_and_jpeg(client: OpenAI) -> None:
    png = client.images.generate(
        model="gouache-mini", prompt="a green star", size="1024x1024", quality="low",
        extra_body={"seed": 11, "negative_prompt": "blurry"},
    )  # fmt: skip
    image = _open(png.data[0].b64_json)
    text = image.text["parameters"]  # type: ignore[attr-defined]
    assert text.startswith("a green star\nNegative prompt: blurry\nSteps: 8, Sampler: dpm++")
    assert "Seed: 11, Size: 1024x1024, Model: gouache-mini" in text
    assert '"seed": 11' in image.text["invokeai_metadata"]  # type: ignore[attr-defined]
    jpeg = client.images.generate(
        model="gouache-mini", prompt="a green star", size="1024x1024", quality="low", output_format="jpeg",
        extra_body={"seed": 11},
    )  # fmt: skip
    comment = read_user_comment(_open(jpeg.data[0].b64_json))
    assert comment is not None and "Seed: 11" in comment


# --- GIF ----------------------------------------------------------------------------------------------------


def test_gif_has_frames_durations_and_loops(client: OpenAI) -> None:
    result = client.images.generate(
        model="gouache-mini", prompt="a yellow heart", size="1024x1024", quality="low", n=2,
        output_format="gif", frame_count=3, frame_duration_ms=205,
    )  # fmt: skip
    assert result.output_format == "gif" and len(result.data) == 2
    gif = _open(result.data[0].b64_json)
    assert gif.format == "GIF" and gif.n_frames == 3  # type: ignore[attr-defined]
    assert gif.info["loop"] == 0 and gif.info["duration"] == 210
    frames = []
    for k in range(3):
        gif.seek(k)
        frames.append(np.asarray(gif.convert("RGB")).astype(float))
    # frames belong together: the same picture with small changes
    assert np.abs(frames[1] - frames[0]).mean() < 40


def test_transparent_gif(client: OpenAI) -> None:
    result = client.images.generate(
        model="gouache-mini", prompt="a big red circle in the center", size="1024x1024", quality="low",
        output_format="gif", frame_count=2, background="transparent", extra_body={"seed": 3},
    )  # fmt: skip
    gif = _open(result.data[0].b64_json)
    rgba = np.asarray(gif.convert("RGBA"))
    # Without a seed the layout may put the circle anywhere; seed 3 centres it (as in the PNG test above).
    assert rgba[0, 0, 3] == 0 and rgba[512, 512, 3] == 255


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"output_format": "gif", "stream": True}, "stream"),
        ({"output_format": "gif", "partial_images": 1}, "partial_images"),
        ({"output_format": "gif", "output_compression": 50}, "output_compression"),
        ({"frame_count": 3}, "frame_count"),
        ({"frame_duration_ms": 100}, "frame_duration_ms"),
        ({"output_format": "gif", "frame_count": 17}, "frame_count"),
        ({"output_format": "svg", "n": 2}, "n"),
        ({"svg": {"model": "x"}}, "svg"),
    ],
)
def test_bad_gif_and_svg_requests_name_their_field(client: OpenAI, extra: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model="gouache-mini", prompt="a dot", size="1024x1024", **extra)
    assert err.value.body["param"] == param  # type: ignore[index]


# --- SVG ----------------------------------------------------------------------------------------------------


def test_svg_is_a_vector_file_that_renders_back(client: OpenAI) -> None:
    raster = client.images.generate(
        model="gouache-mini", prompt="a red circle", size="1024x1024", quality="low", extra_body={"seed": 4}
    )
    result = client.images.generate(
        model="gouache-mini", prompt="a red circle", size="1024x1024", quality="low", output_format="svg",
        extra_body={"seed": 4},
    )  # fmt: skip
    assert result.output_format == "svg" and result.svg_usage is not None
    svg = _decode(result.data[0].b64_json).decode()
    assert svg.lstrip().startswith("<?xml") and "<path" in svg
    png = bytes(resvg_py.svg_to_bytes(svg_string=svg))
    back = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)
    ref = np.asarray(_open(raster.data[0].b64_json).convert("RGB")).astype(float)
    psnr = 10 * np.log10(255**2 / np.mean((back - ref) ** 2))
    assert psnr > 24, psnr


# --- markup edits -------------------------------------------------------------------------------------------


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_markup_repaints_under_the_strokes_only(client: OpenAI) -> None:
    base = Image.new("RGB", (1024, 1024), (240, 240, 240))
    ImageDraw.Draw(base).rectangle((560, 560, 960, 960), fill=(20, 40, 200))
    markup = Image.new("RGBA", (1024, 1024), (0, 0, 0, 0))
    ImageDraw.Draw(markup).line((80, 240, 400, 240), fill=(255, 0, 0, 255), width=40)
    result = client.images.edit(
        model="gouache-mini", image=("in.png", _png(base)), markup=("m.png", _png(markup)),
        prompt="a green star", size="1024x1024", quality="low", extra_body={"seed": 1},
    )  # fmt: skip
    # A green star: with "a red star" (and no seed) the model may rightly paint red under the strokes.
    out = np.asarray(_open(result.data[0].b64_json).convert("RGB")).astype(int)
    ref = np.asarray(base).astype(int)
    far = np.ones((1024, 1024), bool)
    far[150:330, 0:500] = False  # the strokes, widened and snapped to the latent grid, and the feather
    assert np.abs(out[far] - ref[far]).max() <= 2  # the rest stays as it was
    stroke = out[225:255, 100:380]
    assert not (np.abs(stroke - [255, 0, 0]).sum(axis=-1) < 30).any()  # the red strokes are not drawn


def test_bad_markup_is_refused_naming_it(client: OpenAI) -> None:
    base = _png(Image.new("RGB", (1024, 1024), (200, 200, 200)))
    opaque = _png(Image.new("RGBA", (1024, 1024), (255, 0, 0, 255)))
    wrong_size = _png(Image.new("RGBA", (32, 32), (0, 0, 0, 0)))
    mask = _png(Image.new("RGBA", (1024, 1024), (0, 0, 0, 0)))
    for kwargs in ({"markup": opaque}, {"markup": wrong_size}, {"markup": mask, "mask": mask}):
        files = {k: (f"{k}.png", v) for k, v in kwargs.items()}
        with pytest.raises(openai.BadRequestError) as err:
            client.images.edit(model="gouache-mini", image=("in.png", base), prompt="x", **files)  # type: ignore[arg-type]
        assert err.value.body["param"] == "markup"  # type: ignore[index]


@pytest.mark.parametrize("fmt", ["gif", "svg"])
def test_a_mask_with_gif_or_svg_is_refused_naming_mask(client: OpenAI, fmt: str) -> None:
    base = _png(Image.new("RGB", (1024, 1024), (200, 200, 200)))
    mask = _png(Image.new("RGBA", (1024, 1024), (0, 0, 0, 0)))
    with pytest.raises(openai.BadRequestError) as err:
        client.images.edit(
            model="gouache-mini", image=("in.png", base), mask=("m.png", mask), prompt="x", output_format=fmt
        )
    assert err.value.status_code == 400
    assert err.value.body["param"] == "mask" and err.value.body["code"] == "unsupported_parameter"  # type: ignore[index]


# --- bad input leaves nothing half-written ------------------------------------------------------------------


def test_refused_requests_write_nothing_but_their_refusal(server: LiveServer) -> None:
    """Each bad new field is a 400 naming it; the store keeps at most the refusal itself (a failed row with the
    error, no images, no cost) and none of the uploads."""
    marker = f"refused-{uuid.uuid4().hex}"
    noise = np.random.default_rng(uuid.uuid4().int % 2**32).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    image = _png(Image.fromarray(noise))  # bytes no other request has sent
    clear = Image.new("RGBA", (1024, 1024), (0, 0, 0, 0))
    ImageDraw.Draw(clear).rectangle((0, 0, 10 + noise[0, 0, 0], 10), fill=(255, 0, 0, 255))
    markup, opaque = _png(clear), _png(Image.new("RGBA", (1024, 1024), (9, 9, 9, 255)))
    base = f"{server.base_url}/images"
    generations = [
        ({"background": "transparent", "output_format": "jpeg"}, "background", True),
        ({"frame_count": 3}, "frame_count", True),
        ({"output_format": "svg", "n": 2}, "n", True),
        ({"output_format": "gif", "output_compression": 50}, "output_compression", True),
        ({"output_format": "gif", "stream": True}, "stream", False),  # refused before admission: no row
        ({"output_format": "gif", "frame_count": 40}, "frame_count", False),
    ]
    for i, (extra, param, _) in enumerate(generations):
        response = httpx.post(f"{base}/generations", json={"prompt": f"{marker} {i}", **extra}, timeout=60)
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    edits = [
        ({"mask": markup}, {"output_format": "gif"}, "mask"),
        ({"mask": markup, "markup": markup}, {}, "markup"),
        ({"markup": opaque}, {}, "markup"),
    ]
    for files, fields, param in edits:
        response = httpx.post(
            f"{base}/edits",
            files={"image": ("in.png", image), **{k: (f"{k}.png", v) for k, v in files.items()}},
            data={"prompt": f"{marker} edit", "model": "gouache-mini", **fields},
            timeout=60,
        )
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    store = Store(f"sqlite:///{server.data_dir / 'gouache.db'}", server.data_dir / "blobs")
    try:
        rows = [
            r for r in store.list_requests(limit=1000) if str(r.params.get("prompt", "")).startswith(marker)
        ]
    finally:
        store.close()
    prompts = [str(r.params["prompt"]) for r in rows]
    for i, (_, _, recorded) in enumerate(generations):
        assert prompts.count(f"{marker} {i}") == int(recorded)
    assert prompts.count(f"{marker} edit") == len(edits)
    for row in rows:
        assert row.status == "failed" and row.error is not None and row.error["param"]
        assert row.images == () and row.cost_usd == 0 and row.local_cost_usd == 0
        assert not {"input_images", "mask", "markup"} & set(row.params)
    uploads = {image, markup, opaque}
    kept = [
        p
        for p in (server.data_dir / "blobs").rglob("*")
        if p.is_file() and p.stat().st_size in {len(u) for u in uploads}
    ]
    assert not any(p.read_bytes() in uploads for p in kept)
