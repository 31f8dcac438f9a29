"""Rebuild docs/concepts.png (twenty everyday scenes) and docs/fox.png (the README's first example) with
gouache-mini through Gouache's own image service, in one process (the model loads once).

    .venv/bin/python docs/make_concept_samples.py
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

PROMPTS = [
    "a red fox in the snow",
    "three cats on the grass",
    "a blue car on the beach",
    "an owl at night",
    "two apples on a table",
    "a tropical fish under the sea",
    "an airplane in the sky",
    "a dog to the left of a cat",
    "a yellow taxi at night",
    "a serene Japanese garden with cherry blossoms",
    "a minimalist logo for a tech startup",
    "professional header image: machine learning",
    "a cat sleeping on a sofa",
    "an astronaut riding a horse in space",
    "a sailboat on a calm lake",
    "a camel walking in the desert",
    "a swan gliding on a pond",
    "the flag of Japan in the snow",
    "a happy family on the beach",
    "a treasure chest on the beach",
]
TILE = 200
HERE = Path(__file__).parent


def main() -> None:
    from gouache.service.container import build_services
    from gouache.service.images import GenerateParams
    from gouache.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        services = build_services(Settings(data_dir=Path(tmp), database_url=None, provenance=False))
        try:
            with asyncio.Runner() as runner:

                def generate(prompt: str, size: str) -> tuple[Image.Image, str]:
                    params = GenerateParams(
                        prompt=prompt, model="gpt-image-2", seed=7, size=size, quality="low"
                    )
                    result = runner.run(services.images.generate(params))
                    image = result.images[0]
                    with Image.open(io.BytesIO(image.data)) as img:
                        return img.convert("RGB"), image.revised_prompt or ""

                fox, revised = generate("a red fox in the snow", "1536x1024")
                fox.resize((384, 256), Image.Resampling.LANCZOS).save(HERE / "fox.png", optimize=True)
                print("fox:", revised)
                tiles = []
                for prompt in PROMPTS:
                    image, revised = generate(prompt, "1024x1024")
                    print(f"{prompt!r}: {revised}")
                    tiles.append(image.resize((TILE, TILE), Image.Resampling.LANCZOS))
        finally:
            services.close()
    cols = 4
    grid = Image.new("RGB", (TILE * cols, (TILE + 26) * ((len(PROMPTS) + cols - 1) // cols)), "white")
    draw = ImageDraw.Draw(grid)
    for i, (tile, prompt) in enumerate(zip(tiles, PROMPTS, strict=True)):
        x, y = (i % cols) * TILE, (i // cols) * (TILE + 26)
        grid.paste(tile, (x, y))
        draw.text((x + 4, y + TILE + 6), prompt if len(prompt) <= 32 else prompt[:30] + "...", fill="black")
    grid.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(HERE / "concepts.png", optimize=True)
    print("wrote", HERE / "concepts.png")


if __name__ == "__main__":
    main()
