"""Score another commit's gouache-mini on this branch's evaluation sets (design note 44).

An older commit may lack a scene set (the paraphrase set) or the ``--quality`` option, so the evaluation is
split in two steps that meet in a folder of PNGs:

1. ``render`` runs with the *other* commit's sources first on ``PYTHONPATH`` and needs only
   ``ImageService.generate``, which every commit since issue 4 has::

       PYTHONPATH=/tmp/wt-before/src python scripts/eval_any_commit.py render prompts.json images/

2. ``prompts`` (before) and ``score`` (after) run with this branch's sources: they list the prompts of a set
   and score the rendered folder with this branch's scorer::

       PYTHONPATH=src python scripts/eval_any_commit.py prompts --set paraphrase --n 100 prompts.json
       PYTHONPATH=src python scripts/eval_any_commit.py score --set paraphrase --n 100 images/ out.json

The determinism check renders its prompts twice in step 1 and compares the two files in step 3. The first
``k`` prompts of a set are the first ``k`` scenes of any larger run of it, so a folder rendered from a cut
prompt list scores with ``--n k --determinism 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

DETERMINISM = 3


def _prompts(args: argparse.Namespace) -> None:
    from gouache.mini.evaluation.held_out import held_out_scenes, held_out_seed
    from gouache.mini.evaluation.paraphrase import paraphrase_scenes

    scenes = (
        held_out_scenes(args.n, args.seed) if args.set == "held-out" else paraphrase_scenes(args.n, args.seed)
    )
    rows = [{"prompt": s.caption, "seed": held_out_seed(i, args.seed)} for i, s in enumerate(scenes)]
    rows += [dict(row, again=True) for row in rows[:DETERMINISM]]
    Path(args.out).write_text(json.dumps(rows, indent=1))


def _render(args: argparse.Namespace) -> None:
    from gouache.service.container import build_services
    from gouache.service.images import GenerateParams
    from gouache.settings import Settings

    rows = json.loads(Path(args.prompts).read_text())
    out = Path(args.images)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gouache-eval-") as tmp:
        services = build_services(Settings(data_dir=Path(tmp), database_url=None))
        try:
            with asyncio.Runner() as runner:
                for i, row in enumerate(rows):
                    path = out / (f"{i:04d}.png")
                    if path.exists():
                        continue
                    params = GenerateParams(
                        prompt=row["prompt"],
                        model="gouache-mini",
                        seed=row["seed"],
                        size="1024x1024",
                        quality=args.quality,
                        cache=False,
                    )
                    result = runner.run(services.images.generate(params))
                    path.write_bytes(result.images[0].data)
                    print(f"{i + 1}/{len(rows)}", file=sys.stderr, flush=True)
        finally:
            services.close()


def _score(args: argparse.Namespace) -> None:
    from PIL import Image

    from gouache.mini.evaluation import evaluate, report_table

    folder = Path(args.images)
    calls = iter(range(10**6))

    def generate(prompt: str, seed: int) -> Image.Image:
        with Image.open(folder / f"{next(calls):04d}.png") as img:
            return img.convert("RGB")

    checks = args.determinism
    report = evaluate(generate, n=args.n, seed=args.seed, scene_set=args.set, determinism_checks=checks)
    report.model = args.label
    from rich.console import Console

    Console().print(report_table(report))
    Path(args.out).write_text(report.to_json())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="step", required=True)
    for name in ("prompts", "score"):
        p = sub.add_parser(name)
        p.add_argument("--set", default="held-out", choices=("held-out", "paraphrase"))
        p.add_argument("--n", type=int, default=100)
        p.add_argument("--seed", type=int, default=0)
        if name == "score":
            p.add_argument("images")
            p.add_argument("--label", default="gouache-mini")
            # 0 scores a folder rendered from the first n prompts only (a run cut short)
            p.add_argument("--determinism", type=int, default=DETERMINISM)
        p.add_argument("out")
    r = sub.add_parser("render")
    r.add_argument("prompts")
    r.add_argument("images")
    r.add_argument("--quality", default="low")
    args = parser.parse_args()
    {"prompts": _prompts, "render": _render, "score": _score}[args.step](args)


if __name__ == "__main__":
    main()
