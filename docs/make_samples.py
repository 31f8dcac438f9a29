"""Rebuild docs/samples.png: `gouache generate` on a few prompts (lettering among them), shrunk into one small
grid.

    .venv/bin/python docs/make_samples.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

PROMPTS = [
    "a red circle",
    "a blue star on a yellow background",
    "three green triangles",
    "a purple heart left of an orange square",
    "a sign that says HELLO",
    'a poster with the title "Summer Jazz Night"',
    "a small crimson star in the top right, sketched",
    "the word SALE at the bottom",
    "an orange sign reading OPEN below a green heart",
]
TILE = 192


def main() -> None:
    gouache = Path(sys.executable).with_name("gouache")
    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, prompt in enumerate(PROMPTS):
            out = Path(tmp) / f"{i}.png"
            subprocess.run(
                [str(gouache), "generate", prompt, "--size", "1024x1024", "--quality", "high", "--seed", "7",
                 "-o", str(out)],
                check=True, capture_output=True,
            )  # fmt: skip
            tiles.append(Image.open(out).convert("RGB").resize((TILE, TILE), Image.Resampling.LANCZOS))
    grid = Image.new("RGB", (TILE * 3, (TILE + 28) * ((len(PROMPTS) + 2) // 3)), "white")
    draw = ImageDraw.Draw(grid)
    for i, (tile, prompt) in enumerate(zip(tiles, PROMPTS, strict=True)):
        x, y = (i % 3) * TILE, (i // 3) * (TILE + 28)
        grid.paste(tile, (x, y))
        draw.text((x + 4, y + TILE + 6), prompt if len(prompt) <= 34 else prompt[:32] + "...", fill="black")
    target = Path(__file__).with_name("samples.png")
    # Flat colours: a 128-colour palette keeps the committed file small without visible loss.
    grid.quantize(128, dither=Image.Dither.NONE).save(target, optimize=True)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
