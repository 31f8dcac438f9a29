"""Rebuild docs/crisp.png: 1:1 crops of `gouache generate` at 1024x1024, before (Lanczos) and after (the flat
upscaler that gouache-mini ships with), same prompt and seed.

    .venv/bin/python docs/make_crisp.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PROMPTS = ["a red circle", "a sign that says HELLO", "a blue star left of a yellow heart"]
CROP = 240


def generate(prompt: str, out: Path, catalog: Path | None) -> Image.Image:
    env = dict(os.environ)
    if catalog is not None:
        env["GOUACHE_CATALOG_FILE"] = str(catalog)
    gouache = Path(sys.executable).with_name("gouache")
    subprocess.run(
        [str(gouache), "generate", prompt, "--size", "1024x1024", "--quality", "high", "--seed", "7",
         "-o", str(out)],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    return Image.open(out).convert("RGB")


def busiest_crop(image: Image.Image) -> tuple[int, int, int, int]:
    """The CROP-sized window with the most edge pixels (where blur shows)."""
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    edges = np.abs(np.diff(grey, axis=1))[:-1] + np.abs(np.diff(grey, axis=0))[:, :-1]
    best, where = -1.0, (0, 0)
    for y in range(0, grey.shape[0] - CROP, 32):
        for x in range(0, grey.shape[1] - CROP, 32):
            score = float(edges[y : y + CROP, x : x + CROP].sum())
            if score > best:
                best, where = score, (x, y)
    return (where[0], where[1], where[0] + CROP, where[1] + CROP)


def main() -> None:
    shipped = resources.files("gouache.engine").joinpath("catalog.toml").read_text()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "lanczos.toml"
        catalog.write_text(shipped.replace('upscaler = "flat"', 'upscaler = "lanczos"'))
        for i, prompt in enumerate(PROMPTS):
            before = generate(prompt, Path(tmp) / f"b{i}.png", catalog)
            after = generate(prompt, Path(tmp) / f"a{i}.png", None)
            box = busiest_crop(after)
            rows.append((prompt, before.crop(box), after.crop(box)))
    label = 22
    sheet = Image.new("RGB", (CROP * 2 + 12, (CROP + label) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (prompt, before, after) in enumerate(rows):
        y = r * (CROP + label)
        draw.text((4, y + 5), f"{prompt}: Lanczos (before) | flat upscaler (after)", fill="black")
        sheet.paste(before, (0, y + label))
        sheet.paste(after, (CROP + 12, y + label))
    target = Path(__file__).with_name("crisp.png")
    sheet.save(target, optimize=True)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
