"""``gouache eval``: gouache-mini's exact evaluator wired to Gouache's own image service.

The evaluator (:mod:`gouache.mini.evaluation`) scores any ``generate(prompt, seed)`` function and knows
nothing of the server; this module gives it one that goes through ``ImageService.generate`` in-process,
exactly as an API request would. It lives beside the CLI, not inside :mod:`gouache.mini`, so that the
embedded model stays detached from the service (``gouache.mini`` imports nothing from ``gouache.service`` or
``gouache.api``).
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from gouache.mini.evaluation import DETERMINISM_CHECKS, EvalReport, evaluate, report_table

if TYPE_CHECKING:
    from gouache.settings import Settings


@contextmanager
def _service_generator(
    model: str, quality: str, settings: Settings | None
) -> Iterator[Callable[[str, int], Image.Image]]:
    """``generate(prompt, seed)`` through ``ImageService.generate`` in-process (1024x1024 PNG, RGB), with the
    services open while the block runs."""
    from gouache.service.container import build_services
    from gouache.service.images import GenerateParams
    from gouache.settings import Settings as _Settings

    services = build_services(settings or _Settings())
    try:
        with asyncio.Runner() as runner:

            def generate(prompt: str, image_seed: int) -> Image.Image:
                # cache=False: the determinism check must render again, not read the result cache.
                params = GenerateParams(
                    prompt=prompt,
                    model=model,
                    seed=image_seed,
                    size="1024x1024",
                    quality=quality,
                    cache=False,
                )
                result = runner.run(services.images.generate(params))
                with Image.open(io.BytesIO(result.images[0].data)) as img:
                    return img.convert("RGB")

            yield generate
    finally:
        services.close()


def evaluate_service(
    model: str,
    n: int = 200,
    seed: int = 0,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    kinds: Sequence[str] | None = None,
    quality: str = "medium",
    determinism_checks: int = DETERMINISM_CHECKS,
    scene_set: str = "held-out",
) -> EvalReport:
    """Evaluate ``model`` through Gouache's own image service, in-process: each prompt goes through
    ``ImageService.generate`` at 1024x1024 (PNG), exactly as an API request would."""
    with _service_generator(model, quality, settings) as generate:
        report = evaluate(
            generate,
            n=n,
            seed=seed,
            kinds=kinds,
            progress=progress,
            determinism_checks=determinism_checks,
            scene_set=scene_set,
        )
    report.model = model
    return report


def main(
    model: str,
    n: int,
    seed: int,
    out: Path | None,
    scene_set: str = "held-out",
    quality: str = "medium",
) -> None:
    """``gouache eval``: evaluate ``model`` on ``n`` scenes of ``scene_set`` (held-out scenes, or the
    paraphrase set), print the table, write the JSON report to ``out`` (default ``eval.json``). Generations
    are recorded in a throwaway data directory."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gouache.settings import Settings as _Settings

    console = Console()
    with tempfile.TemporaryDirectory(prefix="gouache-eval-") as tmp:
        settings = _Settings(data_dir=Path(tmp), database_url=None)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"Evaluating {model} ({scene_set})", total=None)

            def on_progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            if scene_set == "concepts":  # issue 22: the concept vocabulary, scenes and backdrops
                concepts, record = evaluate_concepts_service(
                    model, n, seed, settings, on_progress, quality, log=console.print
                )
                _print_concepts(console, concepts, record, out)
                return
            report = evaluate_service(
                model, n, seed, settings, progress=on_progress, quality=quality, scene_set=scene_set
            )
    console.print(report_table(report))
    path = out or Path("eval.json")
    path.write_text(report.to_json())
    console.print(f"[green]Wrote[/] {path}  ({report.seconds:.1f} s)")


def evaluate_concepts_service(
    model: str,
    n: int = 200,
    seed: int = 0,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    quality: str = "low",
    log: Callable[[str], object] = print,
) -> tuple[object, dict[str, object]]:
    """``gouache eval --set concepts`` (issue 22): gouache-mini's concept scenes through the image service
    (1024x1024 PNG), scored by the concept evaluator with its own classifier (trained once and cached)."""
    from gouache.mini.concepts.classifier import shipped_judge
    from gouache.mini.concepts.evaluate import evaluate_concepts
    from gouache.mini.model import load_text_encoder
    from gouache.mini.reading import layout_caption
    from gouache.mini.word_match import matcher_for

    atlas, classifier, record = shipped_judge(log=log)
    encoder: Any = load_text_encoder(grounded=True)
    match = matcher_for(encoder)

    def layout(caption: str, image_seed: int) -> object:
        return layout_caption(encoder._decoded(caption), match, image_seed)

    with _service_generator(model, quality, settings) as generate:
        report = evaluate_concepts(generate, layout, atlas, classifier, n, seed, progress)  # type: ignore[arg-type]
    return report, record


def _print_concepts(console: object, report: object, record: dict[str, object], out: Path | None) -> None:
    import json

    from rich.table import Table

    table = Table("metric", "score")
    for metric, score in report.table():  # type: ignore[attr-defined]
        table.add_row(metric, score)
    console.print(table)  # type: ignore[attr-defined]
    path = out or Path("eval-concepts.json")
    body = {
        "n": report.n,  # type: ignore[attr-defined]
        "seed": report.seed,  # type: ignore[attr-defined]
        "scores": report.scores,  # type: ignore[attr-defined]
        "misses": report.misses,  # type: ignore[attr-defined]
        "causes": report.causes,  # type: ignore[attr-defined]
        "seconds": report.seconds,  # type: ignore[attr-defined]
        "classifier": record,
    }
    path.write_text(json.dumps(body, indent=1))
    console.print(f"[green]Wrote[/] {path}")  # type: ignore[attr-defined]
