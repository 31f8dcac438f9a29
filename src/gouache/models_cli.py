"""`gouache models` and `gouache pull`: the models Gouache serves, and downloading more from a hub."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Column, Table

from gouache.settings import Settings

console = Console()
err = Console(stderr=True, soft_wrap=True)


models_app = typer.Typer(help="The models Gouache serves: list them, remove pulled ones.")


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context) -> None:
    """List the catalog's models: family, source, size on disk, device, whether the server has it loaded."""
    if ctx.invoked_subcommand is not None:
        return
    from gouache.engine.catalog import CatalogError
    from gouache.models.inventory import inventory

    settings = Settings()
    try:
        rows = inventory(settings)
    except CatalogError as exc:
        err.print(f"[red]Error:[/] {exc}")
        raise typer.Exit(1) from None
    table = Table("name", "family", "source", Column("size", justify="right"), "device", "loaded", "path")
    for row in rows:
        loaded = "-" if row.loaded is None else ("yes" if row.loaded else "no")
        size = "missing" if row.size is None else _bytes(row.size)
        name = row.name + (" (default)" if row.default else "")
        table.add_row(name, row.family, row.source, size, row.device, loaded, str(row.path))
    console.print(table)
    for row in rows:
        if row.aliases:
            console.print(f"[bold]{row.name}[/] also answers to: {', '.join(row.aliases)}")


@models_app.command("rm")
def models_rm(name: Annotated[str, typer.Argument(help="A pulled model's name.")]) -> None:
    """Remove a pulled model: its folder and its catalog entry (shipped and catalog-file models stay)."""
    from gouache.models.pull import PullError, remove

    try:
        folder = remove(Settings(), name)
    except PullError as exc:
        err.print(f"[red]Error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"[green]Removed[/] {name} ({folder})")


def pull(
    repo: Annotated[str, typer.Argument(help="OWNER/NAME[@REVISION] of a diffusers model on the hub.")],
    name: Annotated[
        str | None, typer.Option(help="Catalog name (default: the repo's name, lower-cased).")
    ] = None,
    variant: Annotated[str | None, typer.Option(help="Weights variant to prefer, e.g. fp16.")] = None,
) -> None:
    """Download a diffusers model into GOUACHE_HOME/models and add it to the catalog (resumable)."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from gouache.models.pull import PullError
    from gouache.models.pull import pull as pull_model

    settings = Settings()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    try:
        with Progress(*columns, console=console) as bar:
            result = pull_model(settings, repo, name=name, variant=variant, progress=bar)
    except PullError as exc:
        err.print(f"[red]Error:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print(f"[red]Interrupted.[/] Run the same `gouache pull {repo}` again to resume.")
        raise typer.Exit(130) from None
    console.print(
        f"[green]Pulled[/] {result.ref}@{result.sha[:12]} as [bold]{result.name}[/] ({result.family}, "
        f"{result.files} files, {_bytes(result.size)}) into {result.path}"
    )


def _bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} TB"
