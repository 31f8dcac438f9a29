"""`gouache batch ...`: submit a JSONL file to a running server's Batch API and follow it, list batches,
cancel one, and write a finished batch's images to files named by `custom_id`. A thin client over the official
`openai` SDK, so it talks to Gouache exactly as any OpenAI batch client would."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gouache.settings import Settings

if TYPE_CHECKING:
    from openai import OpenAI
    from openai.types import Batch

batch_app = typer.Typer(help="The Batch API: submit JSONL files of image requests, follow, fetch results.")
console = Console()
err = Console(stderr=True, soft_wrap=True)

FINAL = ("completed", "failed", "expired", "cancelled")
BaseUrl = Annotated[
    str | None, typer.Option("--base-url", help="The server's /v1 URL (default: GOUACHE_HOST:GOUACHE_PORT).")
]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", envvar="OPENAI_API_KEY", help="An API key, if needed.")
]


def _client(base_url: str | None, api_key: str | None) -> OpenAI:
    from openai import OpenAI

    if base_url is None:
        settings = Settings()
        base_url = f"http://{settings.host}:{settings.port}/v1"
    return OpenAI(base_url=base_url, api_key=api_key or "gouache", max_retries=2, timeout=600)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]Error:[/] {message}")
    return typer.Exit(code)


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """An SDK call; an API or connection error becomes one red line and exit status 1."""
    import openai

    try:
        return fn(*args, **kwargs)
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        param = body.get("param")
        raise _fail(
            f"{body.get('message') or exc.message}" + (f" (param: {param})" if param else "")
        ) from None
    except openai.APIConnectionError as exc:
        raise _fail(f"cannot reach the server ({exc}); is `gouache serve` running?") from None


def _endpoint_of(path: Path) -> str:
    with path.open("rb") as f:
        first = f.readline()
    try:
        url = json.loads(first).get("url")
    except (ValueError, AttributeError):
        url = None
    return url if isinstance(url, str) else "/v1/images/generations"


def _follow(client: OpenAI, batch: Batch) -> Batch:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(batch.status, total=None)
        while batch.status not in FINAL:
            time.sleep(1)
            batch = _call(client.batches.retrieve, batch.id)
            counts = batch.request_counts
            done = 0 if counts is None else counts.completed + counts.failed
            progress.update(
                task,
                description=batch.status,
                completed=done,
                total=(counts.total or None) if counts else None,
            )
    return batch


def _summary(batch: Batch) -> None:
    counts = batch.request_counts
    console.print(
        f"{batch.id}: [bold]{batch.status}[/]"
        + (f", {counts.completed} completed, {counts.failed} failed of {counts.total}" if counts else "")
    )
    for error in (batch.errors.data or []) if batch.errors else []:
        line = f"line {error.line}: " if error.line else ""
        err.print(f"[red]{line}{error.message}[/] ({error.code})")


@batch_app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="A JSONL file: one {custom_id, method, url, body} per line.")],
    endpoint: Annotated[
        str | None, typer.Option(help="The endpoint (default: the first line's url).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow the batch with a progress bar until it ends.")] = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Upload FILE and start a batch on it."""
    if not file.is_file():
        raise _fail(f"no such file: {file}")
    client = _client(base_url, api_key)
    with file.open("rb") as f:
        uploaded = _call(
            client.files.create, file=(file.name, f.read(), "application/jsonl"), purpose="batch"
        )
    batch = _call(
        client.batches.create,
        input_file_id=uploaded.id,
        endpoint=endpoint or _endpoint_of(file),
        completion_window="24h",
    )
    console.print(f"Submitted {batch.id} ({batch.endpoint}, input {uploaded.id})")
    if wait:
        batch = _follow(client, batch)
        _summary(batch)
        if batch.status != "completed":
            raise typer.Exit(1)


@batch_app.command("list")
def list_batches(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """The latest batches."""
    page = _call(_client(base_url, api_key).batches.list, limit=limit)
    table = Table("id", "status", "endpoint", "done", "failed", "total", "created")
    for batch in page.data:
        counts = batch.request_counts
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(batch.created_at))
        table.add_row(
            batch.id, batch.status, batch.endpoint,
            *(str(getattr(counts, n, 0) if counts else 0) for n in ("completed", "failed", "total")), created,
        )  # fmt: skip
    console.print(table)


@batch_app.command("status")
def status(
    batch_id: Annotated[str, typer.Argument(help="The batch's id (batch_...).")],
    wait: Annotated[bool, typer.Option(help="Follow it until it ends.")] = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Where a batch stands."""
    client = _client(base_url, api_key)
    batch = _call(client.batches.retrieve, batch_id)
    if wait:
        batch = _follow(client, batch)
    _summary(batch)


@batch_app.command("cancel")
def cancel(
    batch_id: Annotated[str, typer.Argument(help="The batch's id (batch_...).")],
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Stop a batch; the lines already done stay in its output."""
    _summary(_call(_client(base_url, api_key).batches.cancel, batch_id))


def _images_of(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(base64, format) of each image in an output line's body: an Images API answer (`data`) or a
    Responses one (its `image_generation_call` items)."""
    if "data" in body:
        fmt = body.get("output_format", "png")
        return [(image["b64_json"], fmt) for image in body["data"]]
    return [
        (item["result"], item.get("output_format", "png"))
        for item in body.get("output", [])
        if item.get("type") == "image_generation_call" and item.get("result")
    ]


def _safe_name(custom_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", custom_id).strip(".") or "line"


@batch_app.command("results")
def results(
    batch_id: Annotated[str, typer.Argument(help="The batch's id (batch_...).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the images.")] = Path("."),
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Write a batch's images to OUTPUT as <custom_id>.<format> (<custom_id>-<i> when n > 1), and its failed
    lines to errors.jsonl."""
    client = _client(base_url, api_key)
    batch = _call(client.batches.retrieve, batch_id)
    if batch.output_file_id is None and batch.error_file_id is None:
        raise _fail(f"batch {batch_id} has no results yet (status {batch.status}).")
    output.mkdir(parents=True, exist_ok=True)
    written = 0
    if batch.output_file_id:
        for raw in _call(client.files.content, batch.output_file_id).content.splitlines():
            line = json.loads(raw)
            images = _images_of(line["response"]["body"])
            for i, (b64, fmt) in enumerate(images):
                suffix = f"-{i}" if len(images) > 1 else ""
                path = output / f"{_safe_name(line['custom_id'])}{suffix}.{fmt}"
                path.write_bytes(base64.b64decode(b64))
                written += 1
    failed = 0
    if batch.error_file_id:
        errors = _call(client.files.content, batch.error_file_id).content
        (output / "errors.jsonl").write_bytes(errors)
        failed = len(errors.splitlines())
    console.print(
        f"Wrote {written} image(s) to {output}"
        + (f"; {failed} failed line(s) in errors.jsonl" if failed else "")
    )
