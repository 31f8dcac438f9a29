"""Rebuild the README's playground screenshots from the browser tests' artifacts, shrunk to small PNGs.

.venv/bin/pytest tests/test_playground.py && .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHOTS = {"generate": "playground-generate.png", "edit": "playground-edit.png"}
WIDTH = 960


def main() -> None:
    for name, target in SHOTS.items():
        image = Image.open(ROOT / "test-artifacts" / "playground" / f"{name}.png").convert("RGB")
        image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.Resampling.LANCZOS)
        small = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(ROOT / "docs" / target, optimize=True)
        print(f"docs/{target}: {(ROOT / 'docs' / target).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
