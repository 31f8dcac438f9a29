"""`gouache` command line: serve the API, generate in-process, pull and list models, manage keys, read usage
and costs."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from gouache.batch_cli import batch_app
from gouache.models_cli import models_app, pull
from gouache.service.errors import ServiceError
from gouache.settings import Settings

if TYPE_CHECKING:
    from gouache.engine.jobs import Progress as StepProgress
    from gouache.service.container import Services
    from gouache.service.images import GenerateResult
    from gouache.service.ledger import Totals
    from gouache.store import Store

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
    ray: Annotated[bool, typer.Option("--ray", help="Run on Ray Serve (the ray extra).")] = False,
    address: Annotated[
        str | None, typer.Option(help="With --ray: the cluster's head (host:port); default: start one here.")
    ] = None,
    replicas: Annotated[int, typer.Option(min=1, help="With --ray: engine replicas per model.")] = 1,
    gateways: Annotated[int, typer.Option(min=1, help="With --ray: API gateway replicas.")] = 1,
    engine_cpus: Annotated[float, typer.Option(min=0, help="With --ray: CPUs per engine replica.")] = 1.0,
    engine_gpus: Annotated[float, typer.Option(min=0, help="With --ray: GPUs per engine replica.")] = 0.0,
    engine_model: Annotated[
        list[str] | None,
        typer.Option("--engine-model", help="With --ray: a model with its own engine deployment (repeat)."),
    ] = None,
) -> None:
    """Start the OpenAI-compatible server (in this process, or on a Ray Serve cluster with --ray)."""
    from rich.markup import escape

    from gouache.api.browser_boundary import WILDCARD_BINDS, BoundaryRules, wildcard_problem

    settings = _settings(model, host=host, port=port)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        BoundaryRules.from_settings(settings)
    except ValueError as exc:
        err.print(f"[red]Cannot start:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    if "*" in [*settings.allowed_hosts, *settings.cors_origins]:
        problem = wildcard_problem(settings, keys_on=_keys_required(settings))
        if problem is not None:
            err.print(f"[red]Cannot start:[/] {escape(problem)}")
            raise typer.Exit(1)
    try:  # a missing bucket, credentials or endpoint: refused now, not on the first request
        from gouache.service.stores import open_blob_store
        from gouache.store.errors import BlobStoreUnavailable

        open_blob_store(settings, check=True).close()
    except BlobStoreUnavailable as exc:
        err.print(f"[red]Cannot start:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    if ray:
        from gouache.ray_cli import serve_ray

        serve_ray(settings, address, replicas, gateways, engine_cpus, engine_gpus, engine_model or [])
        return
    # The engine's imports (torch, diffusers) come after the checks above, so that a refusal is quick.
    import uvicorn

    from gouache.api.app import create_app

    services = _start_services(settings)
    err.print(
        f"[bold]Gouache[/] on http://{settings.host}:{settings.port}/v1 "
        f"(default model: {settings.default_model})"
    )
    if settings.host.strip().lower() in WILDCARD_BINDS and not settings.allowed_hosts:
        err.print(
            f"[yellow]Listening on every interface[/], but only requests addressed to "
            f"{escape('localhost, 127.0.0.1 or [::1]')} are answered: set GOUACHE_ALLOWED_HOSTS to the names "
            "clients use (README, Security)."
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
                done = p.image_index * p.total_steps + p.step * p.images
                bar.update(task, total=p.total_steps * count, completed=done)

            return asyncio.run(start(on_step))
    except ServiceError as exc:
        err.print(f"[red]Error[/] ({exc.param or 'request'}): {exc.message}")
        raise typer.Exit(2) from exc
    finally:
        svc.close()


def _keys_required(settings: Settings) -> bool:
    """Whether API keys are on, from the database alone (before the engine is built: no torch import)."""
    from gouache.service.access import KeyService
    from gouache.service.stores import open_store

    store = open_store(settings)
    try:
        return KeyService(store, settings.require_auth).required()
    finally:
        store.close()


def _start_services(settings: Settings, warm: bool | None = None) -> Services:
    """Build the services, check the default model's files and start its warm-up on the engine workers, or
    exit with a plain message naming what is wrong."""
    from gouache.engine.catalog import CatalogError
    from gouache.engine.devices import DeviceError
    from gouache.engine.pipelines import ModelLoadError
    from gouache.service.container import build_services
    from gouache.service.policies.moderation import ModerationPolicyError
    from gouache.service.policies.pricing import PriceTableError

    try:
        with console.status(f"Checking {settings.default_model}..."):
            services = build_services(settings)
            services.preload(warm)
    except (CatalogError, DeviceError, ModelLoadError, PriceTableError, ModerationPolicyError) as exc:
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
    svc = _start_services(Settings(), warm=False)  # the one job loads its own model
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
    svc = _start_services(Settings(), warm=False)  # the one job loads its own model
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
    rewarm: Annotated[
        float | None,
        typer.Option(
            help="With --resume and a larger --minutes: raise the learning rate to this fraction of the "
            "configured one, decaying over the rest of the budget.",
            min=0.0,
            max=1.0,
        ),
    ] = None,
    concepts_only: Annotated[
        bool,
        typer.Option(
            "--concepts-only",
            help="Only fetch the drawing sources (npm pack, into --concepts-cache) and rebuild the concept "
            "atlas shipped in the package.",
        ),
    ] = False,
    concepts_cache: Annotated[
        Path | None,
        typer.Option(help="Where the concept sources are fetched (default ~/.cache/gouache/concepts)."),
    ] = None,
) -> None:
    """Train the embedded model gouache-mini from scratch on procedural scenes (CPU, resumable), after
    building its concept atlas (the named drawings it draws everyday things with) if it is missing."""
    from gouache.mini.concepts.atlas import ATLAS_DIR
    from gouache.mini.concepts.build import build_atlas

    if concepts_only or not (ATLAS_DIR / "concepts.json.gz").exists():
        try:
            build_atlas(concepts_cache, log=console.print)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            err.print(f"[red]Cannot build the concept atlas:[/] {exc}")
            raise typer.Exit(1) from None
    if concepts_only:
        return
    from gouache.mini.train import main as run_training

    run_training(minutes, out, resume, seed, tiny, rewarm)


@app.command("eval")
def eval_model(
    model: Annotated[str, typer.Option(help="Model to score (catalog name or alias).")] = "gouache-mini",
    n: Annotated[int, typer.Option("--n", help="Held-out scenes to generate and score.")] = 200,
    seed: Annotated[int, typer.Option(help="Which held-out set (seed).")] = 0,
    out: Annotated[Path | None, typer.Option(help="JSON report (default eval.json).")] = None,
    scene_set: Annotated[
        str,
        typer.Option(
            "--set",
            help="Scenes: held-out (generator wording), paraphrase (people's wording) or concepts (everyday "
            "things by their keywords, counts, relations, backdrops).",
        ),
    ] = "held-out",
    quality: Annotated[str, typer.Option(help="Quality tier of each generation.")] = "medium",
) -> None:
    """Score a model exactly on held-out scenes: colour, shape, relation, count, background, text,
    determinism."""
    from gouache.eval_service import main as run_eval
    from gouache.mini.evaluation.runner import SCENE_SETS

    if scene_set not in (*SCENE_SETS, "concepts"):
        raise typer.BadParameter(f"expected one of {', '.join(SCENE_SETS)}, concepts", param_hint="--set")
    run_eval(model, n, seed, out, scene_set=scene_set, quality=quality)


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="A smoke run: small sizes, one repeat (not figures).")] = False,
    only: Annotated[
        list[str] | None, typer.Option(help="Run only this benchmark (repeatable).", show_default=False)
    ] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the rows as JSON.")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed repeats per measurement (median).")] = 3,
    threads: Annotated[int | None, typer.Option(help="Torch threads (default: all cores).")] = None,
    batch_lines: Annotated[
        int | None, typer.Option(min=2, help="Lines of the `batch` bench's batch (default 64; 8 --quick).")
    ] = None,
    batch_lane_images: Annotated[
        int | None,
        typer.Option(min=1, help="The `batch` bench server's GOUACHE_BATCH_LANE_IMAGES (default: its own)."),
    ] = None,
) -> None:
    """Measure Gouache: one table of ratios, each against a baseline timed in the same run."""
    import torch

    from gouache.benchmarks import BenchOptions, Ratio
    from gouache.benchmarks.suite import BENCHMARKS, print_report, run_one, write_json

    names = list(only or BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        err.print(f"[red]Unknown benchmark[/] {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}.")
        raise typer.Exit(2)
    if threads:
        torch.set_num_threads(threads)
    options = BenchOptions(
        quick=quick,
        repeats=repeats,
        threads=threads,
        batch_lines=batch_lines,
        batch_lane_images=batch_lane_images,
    )
    rows: list[Ratio] = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("benchmarks", total=len(names))
        for name in names:
            bar.update(task, description=f"{name}: {BENCHMARKS[name][1]}")
            rows.extend(run_one(name, options))
            bar.advance(task)
    print_report(console, rows, options)
    if json_file is not None:
        write_json(json_file, rows, options)
        console.print(f"Wrote {json_file}")


keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
cost_app = typer.Typer(help="The cost calculator.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(cost_app, name="cost")
app.add_typer(batch_app, name="batch")
app.add_typer(models_app, name="models")
app.command()(pull)


def _store() -> Store:
    from gouache.service.stores import open_store

    return open_store(Settings())


def _usd(value: float) -> str:
    from gouache.service.policies.pricing import format_usd

    return f"${format_usd(value)}"


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="A name to recognise the key by.")],
    admin: Annotated[bool, typer.Option(help="May read every key's usage, responses and images.")] = False,
    budget_usd: Annotated[
        float | None, typer.Option(min=0, help="Monthly budget, hosted-equivalent dollars.")
    ] = None,
    budget_images: Annotated[int | None, typer.Option(min=0, help="Monthly budget in images.")] = None,
    rpm: Annotated[
        int | None, typer.Option(min=1, help="Requests per rate-limit window (default: global).")
    ] = None,
    ipm: Annotated[
        int | None, typer.Option(min=1, help="Images per rate-limit window (default: global).")
    ] = None,
) -> None:
    """Create a key. Its secret is printed once; only its hash is stored."""
    from gouache.service.access import KeyService

    with _store() as store:
        key, secret = KeyService(store).create(
            name, admin=admin, budget_usd=budget_usd, budget_images=budget_images,
            rate_limit_requests=rpm, rate_limit_images=ipm,
        )  # fmt: skip
    console.print(f"[green]Created[/] {key.id} ({key.name}). Its secret, shown only now:")
    print(secret)


@keys_app.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List keys (never their secrets)."""
    from gouache.service.access import KeyService

    with _store() as store:
        keys = KeyService(store).list(include_revoked=all_keys)
    table = Table(
        Column("id", no_wrap=True), "name", Column("key", no_wrap=True), "admin", "budget", "limits", "status"
    )
    for key in keys:
        budget = " / ".join(
            part for part in (
                _usd(key.budget_usd) if key.budget_usd is not None else "",
                f"{key.budget_images} images" if key.budget_images is not None else "",
            ) if part
        )  # fmt: skip
        limits = " / ".join(
            part for part in (
                f"{key.rate_limit_requests} req" if key.rate_limit_requests else "",
                f"{key.rate_limit_images} img" if key.rate_limit_images else "",
            ) if part
        )  # fmt: skip
        table.add_row(
            key.id, key.name, "..." + key.redacted[-4:], "yes" if key.admin else "", budget or "-",
            limits or "default", "active" if key.active else "revoked",
        )  # fmt: skip
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke a key: it gets 401 from now on (its usage stays in the ledger)."""
    from gouache.service.access import KeyService

    with _store() as store:
        if not KeyService(store).revoke(key_id):
            err.print(f"[red]Error:[/] no active key {key_id!r}.")
            raise typer.Exit(2)
    console.print(f"[green]Revoked[/] {key_id}")


@cost_app.command("estimate")
def cost_estimate(
    size: Annotated[str, typer.Option(help="WIDTHxHEIGHT or auto.")] = "1024x1024",
    quality: Annotated[str, typer.Option(help="low, medium, high (auto is priced as high).")] = "medium",
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Images per request (or per turn).")] = 1,
    turns: Annotated[int, typer.Option(min=0, help="Responses turns (0: one Images API request).")] = 0,
    input_tokens: Annotated[int, typer.Option(min=0, help="Text input tokens per turn.")] = 200,
    output_tokens: Annotated[int, typer.Option(min=0, help="Text output tokens per turn.")] = 50,
) -> None:
    """What a request would cost on the hosted API, before spending anything (and here, from the ledger)."""
    from datetime import timedelta

    from gouache.service.ledger import local_cost_per_image
    from gouache.service.policies.pricing import PriceTable, PriceTableError, estimate, parse_size

    settings = Settings()
    try:
        prices = PriceTable.load(settings.prices_file)
        result = estimate(prices, size, quality, n, turns, input_tokens, output_tokens)
        width, height = parse_size(size)
    except (PriceTableError, ValueError) as exc:
        err.print(f"[red]Error:[/] {exc}")
        raise typer.Exit(2) from None
    table = Table("item", "quantity", "unit", "total", title="Hosted-equivalent cost")
    for line in result.lines:
        unit = f"{_usd(line.unit_usd * 1e6)}/1M" if "tokens" in line.item else _usd(line.unit_usd)
        table.add_row(line.item, str(line.quantity), unit, _usd(line.total_usd))
    table.add_row("[bold]total[/]", "", "", f"[bold]{_usd(result.total_usd)}[/]")
    console.print(table)
    since = datetime.now(UTC) - timedelta(days=90)
    with _store() as store:
        per_image = local_cost_per_image(store, quality, f"{width}x{height}", since)
    images = result.lines[0].quantity
    if per_image is None:
        console.print("Local cost: no past requests at this size and quality in the ledger to estimate from.")
    else:
        console.print(f"Local cost (ledger average of the last 90 days): {_usd(per_image * images)}")


@app.command()
def usage(
    since: Annotated[str, typer.Option(help="7d, 12h, 30m or a date (2026-11-01).")] = "30d",
    key: Annotated[str | None, typer.Option(help="Only this key's requests (key_...).")] = None,
    by: Annotated[str, typer.Option(help="Group by day, model, key or endpoint.")] = "day",
) -> None:
    """The usage ledger: requests, images, tokens, hosted-equivalent and local dollars."""
    from gouache.service.ledger import GROUPERS, parse_since, usage_summary

    if by not in GROUPERS:
        err.print(f"[red]Error:[/] --by must be one of {', '.join(GROUPERS)}.")
        raise typer.Exit(2)
    try:
        start = parse_since(since)
    except ValueError as exc:
        err.print(f"[red]Error:[/] {exc}")
        raise typer.Exit(2) from None
    with _store() as store:
        summary = usage_summary(store, start, key, by)
    table = Table(
        Column(by, no_wrap=True), "requests", "failed", "images", "input tok", "output tok", "hosted $",
        "local $", "CPU s",
        title=f"Usage since {start:%Y-%m-%d %H:%M} UTC",
    )  # fmt: skip

    def row(label: str, t: Totals, style: str = "") -> None:
        cells = [
            label, str(t.requests), str(t.refused), str(t.images), str(t.input_tokens), str(t.output_tokens),
            _usd(t.hosted_usd), _usd(t.local_usd), f"{t.cpu_s:.1f}",
        ]  # fmt: skip
        table.add_row(*cells, style=style)

    for label, totals in sorted(summary.rows.items()):
        row(label, totals)
    row("total", summary.total, "bold")
    console.print(table)


if __name__ == "__main__":
    app()
