"""`gouache` command line: serve the API, generate in-process, list models."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gouache.service.errors import ServiceError
from gouache.settings import Settings

if TYPE_CHECKING:
    from gouache.engine.jobs import Progress as StepProgress
    from gouache.service.container import Services
    from gouache.service.images import GenerateResult

app = typer.Typer(
    help="Gouache: self-hosted image generation that speaks OpenAI's image APIs.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True, soft_wrap=True)


def _settings(model: str | None = None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if model is not None:
        values["default_model"] = model
    return Settings(**values)  # type: ignore[arg-type]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    model: Annotated[
        str | None, typer.Option(help="Default model: a catalog name or a diffusers dir.")
    ] = None,
) -> None:
    """Start the OpenAI-compatible server."""
    import uvicorn

    from gouache.api.app import create_app

    settings = _settings(model, host=host, port=port)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    services = _start_services(settings)
    err.print(
        f"[bold]Gouache[/] on http://{settings.host}:{settings.port}/v1 "
        f"(default model: {settings.default_model})"
    )
    # SIGTERM: uvicorn stops accepting, lets running requests finish for the grace period, cancels the rest,
    # shuts the engine down, then re-raises the signal; ending here makes that a clean exit (status 0).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        create_app(settings, services),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=max(1, round(settings.grace_period_s)),
    )


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _render(
    svc: Services,
    description: str,
    count: int,
    start: Callable[[Callable[[StepProgress], None]], Coroutine[Any, Any, GenerateResult]],
) -> GenerateResult:
    """Run one in-process request with a progress bar over the denoising steps of its `count` images; a
    refused request exits with its message. Closes the services either way."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(description, total=None)

            def on_step(p: StepProgress) -> None:
                bar.update(
                    task, total=p.total_steps * count, completed=p.image_index * p.total_steps + p.step
                )

            return asyncio.run(start(on_step))
    except ServiceError as exc:
        err.print(f"[red]Error[/] ({exc.param or 'request'}): {exc.message}")
        raise typer.Exit(2) from exc
    finally:
        svc.close()


def _start_services(settings: Settings) -> Services:
    """Build the services and load the default model, or exit with a plain message naming what is wrong."""
    from gouache.engine.catalog import CatalogError
    from gouache.engine.pipelines import ModelLoadError
    from gouache.service.container import build_services

    try:
        with console.status(f"Loading {settings.default_model}..."):
            services = build_services(settings)
            services.preload()
    except (CatalogError, ModelLoadError) as exc:
        err.print(f"[red]Cannot start:[/] {exc}")
        raise typer.Exit(1) from None
    return services


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    size: Annotated[str, typer.Option(help="auto or WIDTHxHEIGHT (multiples of 16).")] = "1024x1024",
    quality: Annotated[str, typer.Option(help="low, medium, high or auto.")] = "auto",
    seed: Annotated[int | None, typer.Option(help="Seed for a reproducible image.")] = None,
    n: Annotated[int, typer.Option("--n", "-n", help="Number of images (1-10).")] = 1,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output file; -1, -2... added when n > 1.")
    ] = Path("gouache.png"),
    model: Annotated[str, typer.Option(help="Model name (catalog name or alias).")] = "gpt-image-2",
    steps: Annotated[int | None, typer.Option(help="Override the quality tier's steps.")] = None,
    negative_prompt: Annotated[str | None, typer.Option(help="What to avoid.")] = None,
) -> None:
    """Generate images in-process (no server needed), with a progress bar over denoising steps."""
    from gouache.service.images import GenerateParams

    fmt = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(output.suffix.lower(), "png")
    params = GenerateParams(
        prompt=prompt,
        model=model,
        n=n,
        size=size,
        quality=quality,
        output_format=fmt,
        seed=seed,
        steps=steps,
        negative_prompt=negative_prompt,
    )
    svc = _start_services(Settings())
    result = _render(svc, "Denoising", n, lambda on_step: svc.images.generate(params, on_step))
    for i, image in enumerate(result.images):
        path = output if n == 1 else output.with_name(f"{output.stem}-{i + 1}{output.suffix}")
        path.write_bytes(image.data)
        console.print(
            f"[green]Saved[/] {path}  size={result.size} quality={result.quality} seed={image.seed}"
        )


@app.command()
def edit(
    images: Annotated[
        list[Path], typer.Argument(help="Image file(s) then the prompt; the first image is edited.")
    ],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What to change.")],
    mask: Annotated[
        Path | None, typer.Option(help="PNG whose transparent pixels mark the area to repaint.")
    ] = None,
    size: Annotated[str, typer.Option(help="auto (keep the input's aspect) or WIDTHxHEIGHT.")] = "auto",
    quality: Annotated[str, typer.Option(help="low, medium, high or auto.")] = "auto",
    strength: Annotated[float | None, typer.Option(help="Image-to-image strength (0-1].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for a reproducible image.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file.")] = Path("gouache-edit.png"),
    model: Annotated[str, typer.Option(help="Model name (catalog name or alias).")] = "gpt-image-2",
) -> None:
    """Edit images in-process: inpaint with --mask, outpaint transparent areas, or image-to-image."""
    from gouache.service.images import EditParams

    for path in [*images, *([mask] if mask else [])]:
        if not path.is_file():
            err.print(f"[red]Error:[/] {path} does not exist.")
            raise typer.Exit(2)
    fmt = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(output.suffix.lower(), "png")
    params = EditParams(
        prompt=prompt, model=model, size=size, quality=quality, output_format=fmt, seed=seed,
        strength=strength, images=tuple(p.read_bytes() for p in images),
        mask=mask.read_bytes() if mask else None,
    )  # fmt: skip
    svc = _start_services(Settings())
    result = _render(svc, "Editing", 1, lambda on_step: svc.images.edit(params, on_step))
    output.write_bytes(result.images[0].data)
    console.print(f"[green]Saved[/] {output}  size={result.size} seed={result.images[0].seed}")


@app.command("train-mini")
def train_mini(
    minutes: Annotated[float, typer.Option(help="Training wall-time budget, counted across resumes.")] = 150,
    out: Annotated[Path, typer.Option(help="Run directory: checkpoint, log, shippable pipeline.")] = Path(
        "runs/gouache-mini"
    ),
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its checkpoint.")] = False,
    seed: Annotated[int, typer.Option(help="Training seed (0-8; data and weights are deterministic).")] = 0,
    tiny: Annotated[bool, typer.Option(help="A tiny model, for a smoke test.")] = False,
) -> None:
    """Train the embedded model gouache-mini from scratch on procedural scenes (CPU, resumable)."""
    from gouache.mini.train import main as run_training

    run_training(minutes, out, resume, seed, tiny)


@app.command("eval")
def eval_model(
    model: Annotated[str, typer.Option(help="Model to score (catalog name or alias).")] = "gouache-mini",
    n: Annotated[int, typer.Option("--n", help="Held-out scenes to generate and score.")] = 200,
    seed: Annotated[int, typer.Option(help="Which held-out set (seed).")] = 0,
    out: Annotated[Path | None, typer.Option(help="JSON report (default eval.json).")] = None,
) -> None:
    """Score a model exactly on held-out scenes: colour, shape, relation, count, text, determinism."""
    from gouache.mini.evaluate import main as run_eval

    run_eval(model, n, seed, out)


@app.command()
def models() -> None:
    """List the catalog's models and the names they answer to."""
    from gouache.service.container import build_catalog

    catalog, default = build_catalog(Settings())
    table = Table("name", "family", "resolution", "qualities", "path")
    for spec in catalog.models():
        mark = " (default)" if spec.name == default.name else ""
        table.add_row(
            spec.name + mark, spec.family, str(spec.resolution), ", ".join(spec.qualities), str(spec.path)
        )
    console.print(table)
    for spec in catalog.models():
        aliases = [n for n in catalog.names() if n != spec.name and catalog.resolve(n) is spec]
        if aliases:
            console.print(f"[bold]{spec.name}[/] also answers to: {', '.join(aliases)}")


if __name__ == "__main__":
    app()
