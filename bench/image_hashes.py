"""Byte identity across a refactor: a fixed set of requests, the SHA-256 of every image returned.

    .venv/bin/python bench/image_hashes.py OUT.json [--backend pytorch|openvino]

Starts a live server with one tiny random pipeline per family (and gouache-mini), sends the same requests
through the official SDK (generations in png/jpeg/webp, n=2, an edit, an inpaint, a two-image edit, a stream
with partial images, a Responses turn), each with a fixed seed, and writes the first 16 hex digits of each
image's SHA-256. Run it before and after a change that must not change pixels, and compare the two files:

    python -c "import json,sys; a,b=(json.load(open(p)) for p in sys.argv[1:]); print(a == b)" A.json B.json

On `openvino` only gouache-mini is checked (converting every tiny family would take minutes). Not a test:
the hashes move with torch, diffusers and Pillow versions, which is why the suite checks determinism instead.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from openai import OpenAI
from PIL import Image

from gouache.benchmarks.live import start_server
from gouache.engine.tiny import FAMILIES, build_tiny_pipeline


def _digest(b64: str | None) -> str:
    return hashlib.sha256(base64.b64decode(b64 or "")).hexdigest()[:16]


def _png(color: tuple[int, int, int], size: tuple[int, int] = (64, 64), hole: bool = False) -> bytes:
    image = Image.new("RGBA" if hole else "RGB", size, color)
    if hole:
        image.paste((0, 0, 0, 0), (16, 16, 48, 48))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _catalog(root: Path, backend: str) -> tuple[Path, list[str]]:
    lines: list[str] = []
    models: list[str] = []
    if backend == "pytorch":
        for family in FAMILIES:
            path = build_tiny_pipeline(family, root / family)
            lines += [f"[models.tiny-{family}]", f'path = "{path}"', "resolution = 64", ""]
            for quality in ("low", "medium", "high"):
                lines += [f"[models.tiny-{family}.plans.{quality}]", "steps = 2", "guidance = 2.0", ""]
            models.append(f"tiny-{family}")
    models.append("gouache-mini")
    catalog = root / "catalog.toml"
    catalog.write_text("\n".join(lines))
    return catalog, models


def _requests(client: OpenAI, model: str) -> dict[str, list[str]]:
    square = "1024x1024"
    out: dict[str, list[str]] = {}
    r: Any = client.images.generate(
        model=model, prompt="a red circle above a blue square", size=square, n=2, quality="low",
        extra_body={"seed": 7},
    )  # fmt: skip
    out["gen"] = [_digest(d.b64_json) for d in r.data]
    r = client.images.generate(
        model=model, prompt="the word SALE on a green sign", size="1024x1536", output_format="jpeg",
        output_compression=80, quality="medium", extra_body={"seed": 3},
    )  # fmt: skip
    out["gen-jpeg"] = [_digest(d.b64_json) for d in r.data]
    r = client.images.generate(
        model=model, prompt="a yellow star", size="1536x1024", output_format="webp", quality="high",
        extra_body={"seed": 11},
    )  # fmt: skip
    out["gen-webp"] = [_digest(d.b64_json) for d in r.data]
    r = client.images.edit(
        model=model, image=("a.png", _png((200, 30, 30), (128, 128))), prompt="a green triangle", size=square,
        extra_body={"seed": 5},
    )  # fmt: skip
    out["edit"] = [_digest(d.b64_json) for d in r.data]
    r = client.images.edit(
        model=model, image=("a.png", _png((20, 30, 200))), mask=("m.png", _png((0, 0, 0), hole=True)),
        prompt="a white circle", size=square, extra_body={"seed": 5},
    )  # fmt: skip
    out["inpaint"] = [_digest(d.b64_json) for d in r.data]
    r = client.images.edit(
        model=model, image=[("a.png", _png((200, 30, 30))), ("b.png", _png((30, 200, 30)))], prompt="blend",
        size=square, input_fidelity="high", extra_body={"seed": 9},
    )  # fmt: skip
    out["edit-multi"] = [_digest(d.b64_json) for d in r.data]
    stream: Any = client.images.generate(
        model=model, prompt="a purple heart", size=square, stream=True, partial_images=2,
        extra_body={"seed": 4},
    )  # fmt: skip
    out["stream"] = [_digest(event.b64_json) for event in stream]
    response = client.responses.create(
        model="gpt-5", input="draw a blue circle",
        tools=[{"type": "image_generation", "model": model, "size": square, "seed": 2}],  # type: ignore[list-item, typeddict-unknown-key]
    )  # fmt: skip
    out["responses"] = [
        _digest(item.result) for item in response.output if item.type == "image_generation_call"
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--backend", choices=("pytorch", "openvino"), default="pytorch")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gouache-hashes-"))
    catalog, models = _catalog(root, args.backend)
    env = {
        "GOUACHE_CATALOG_FILE": str(catalog),
        "GOUACHE_BACKEND": args.backend,
        "GOUACHE_RESULT_CACHE": "false",
    }
    server = start_server(root / "server", env, timeout=600)
    hashes: dict[str, list[str]] = {}
    try:
        client = OpenAI(base_url=server.base_url, api_key="hashes", max_retries=0, timeout=600)
        for model in models:
            hashes.update({f"{model}/{case}": digests for case, digests in _requests(client, model).items()})
    finally:
        server.stop()
    args.out.write_text(json.dumps(hashes, indent=1) + "\n")
    print(f"{sum(len(v) for v in hashes.values())} images in {len(hashes)} cases -> {args.out}")


if __name__ == "__main__":
    main()
