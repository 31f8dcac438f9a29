"""OCR exact-match rate of gouache-mini's lettering by text length (design note 44).

    PYTHONPATH=src .venv/bin/python scripts/eval_lettering.py [--per-bucket 10] [--quality low]

Each prompt of :func:`gouache.mini.evaluation.lettering.lettering_prompts` goes through Gouache's own image
service in-process at 1024x1024 (as ``gouache eval`` does); the table says how often OCR read the words
exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
from pathlib import Path

from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-bucket", type=int, default=10)
    parser.add_argument("--quality", default="low")
    parser.add_argument("--out", default="lettering.json")
    args = parser.parse_args()

    from gouache.mini.evaluation.lettering import lettering_rates
    from gouache.service.container import build_services
    from gouache.service.images import GenerateParams
    from gouache.settings import Settings

    with tempfile.TemporaryDirectory(prefix="gouache-eval-") as tmp:
        services = build_services(Settings(data_dir=Path(tmp), database_url=None))
        try:
            with asyncio.Runner() as runner:

                def generate(prompt: str, seed: int) -> Image.Image:
                    params = GenerateParams(
                        prompt=prompt,
                        model="gouache-mini",
                        seed=seed,
                        size="1024x1024",
                        quality=args.quality,
                        cache=False,
                    )
                    result = runner.run(services.images.generate(params))
                    with Image.open(io.BytesIO(result.images[0].data)) as img:
                        return img.convert("RGB")

                report = lettering_rates(generate, args.per_bucket)
        finally:
            services.close()
    print(report.table())
    Path(args.out).write_text(json.dumps({"rates": report.rates, "misses": report.misses}, indent=1))


if __name__ == "__main__":
    main()
