"""The batch runner: one asyncio task in the server that carries every unfinished batch to its end.

On start it picks up the batches a previous process left unfinished. For each batch: read and validate the
input file (`validating` -> `in_progress`, or `failed` with line-numbered errors), then run the lines not
yet recorded, a few at a time (enough for the engine to batch them together), each through the same path a
direct request takes (`LineExecutor`, provided by the API layer) in the engine's batch lane. Each finished
line is recorded at once, so a restart skips it. A watcher stops the lines in flight as soon as the batch is
cancelled or expires. At the end the output and error files are written (`finalizing` -> `completed`, or
`cancelled` / `expired`) and the webhook told."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gouache.service.access import ANONYMOUS, Caller
from gouache.service.batches.output import output_line, write_final_files
from gouache.service.batches.validation import BatchLine, read_batch_file
from gouache.service.leases import Lease, Membership
from gouache.store import ALL_OWNERS, Store
from gouache.store.batches import BatchView
from gouache.store.models import utcnow

log = logging.getLogger(__name__)

#: How often the runner looks for work it was not woken for, and how often a running batch's status is read.
POLL_S = 1.0
WATCH_S = 0.2


@dataclass(frozen=True)
class LineResult:
    """What one line answered: the status code and body a direct request would have got."""

    status_code: int
    body: dict[str, Any]
    request_id: str | None = None
    usage: dict[str, Any] | None = None


class RetryLater(Exception):
    """The line was refused for now (rate limit, full queue): run it again after `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry in {seconds}s")
        self.seconds = seconds


class Stopping(Exception):
    """The server is shutting down: leave the line unrecorded, to run after the restart."""


#: (endpoint, body, caller, batch_id) -> the line's result; raises RetryLater or Stopping.
LineExecutor = Callable[[str, dict[str, Any], Caller, str], Awaitable[LineResult]]


class BatchRunner:
    def __init__(
        self,
        store: Store,
        execute: LineExecutor,
        *,
        concurrency: int = 8,
        queue_full: Callable[[], bool] = lambda: False,
        on_final: Callable[[str, str], None] | None = None,
        lease: Lease | None = None,
        membership: Membership | None = None,
    ) -> None:
        """`lease`: other processes share the database (a cluster's gateways); only the holder of this lease
        runs batches, and another takes over when it dies. None: this process runs them. `membership`: this
        process's row among them, renewed from this loop on the lease's cadence (one timer per process) and
        deleted when the loop stops."""
        self.store = store
        self.lease = lease
        self.membership = membership
        self.execute = execute
        self.concurrency = max(1, concurrency)
        self.queue_full = queue_full
        self.on_final = on_final
        self._lines: dict[str, list[BatchLine]] = {}
        self._wakeup: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Look for work now (thread-safe: the API's handlers call it from worker threads)."""
        if self._loop is not None and self._wakeup is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def run_forever(self) -> None:
        """Advance every unfinished batch, each in its own task; the batches share the line slots, so
        several batches together keep no more lines in the engine than one."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        advancing: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                self._wakeup.clear()
                try:
                    if self.membership is not None:
                        await asyncio.to_thread(self.membership.renew)
                    if self.lease is not None and not await asyncio.to_thread(self.lease.held):
                        for task in advancing.values():  # another process holds the lease (took it over)
                            task.cancel()
                        await asyncio.sleep(POLL_S)
                        continue
                    for batch_id in await asyncio.to_thread(self.store.active_batch_ids):
                        if batch_id not in advancing:
                            task = asyncio.create_task(self._advance_logged(batch_id))
                            advancing[batch_id] = task
                            task.add_done_callback(functools.partial(_forget, advancing, batch_id))
                except Exception:
                    log.exception("the batch runner failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), POLL_S)
        finally:
            for task in advancing.values():
                task.cancel()
            await asyncio.gather(*advancing.values(), return_exceptions=True)
            if self.lease is not None:  # stopping: let another process take the batches over at once
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.lease.release)
            if self.membership is not None:  # and leave the members' list at once
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.membership.leave)

    async def _advance_logged(self, batch_id: str) -> None:
        try:
            await self.advance(batch_id)
        except Exception:
            log.exception("batch %s: advancing failed; retrying", batch_id)

    async def advance(self, batch_id: str) -> None:
        """Carry one batch as far as it goes now."""
        batch = await asyncio.to_thread(self.store.get_batch, batch_id)
        if batch is None:
            return
        if batch.status == "validating":
            batch = await self._validate(batch)
            if batch is None:
                return
        lines = await self._read_lines(batch)
        if lines is None:
            return
        if batch.status == "in_progress":
            outcome = await self._run_lines(batch, lines)
            if outcome == "stopped":
                return
            if outcome == "done":
                await asyncio.to_thread(
                    self.store.set_batch_status, batch.id, "finalizing", only_from=("in_progress",)
                )
            batch = await asyncio.to_thread(self.store.get_batch, batch.id)
            if batch is None:
                return
        final = {"finalizing": "completed", "cancelling": "cancelled", "in_progress": "expired"}.get(
            batch.status
        )
        if batch.status == "in_progress" and not _expired(batch):
            return
        if final is not None:
            await self._finalize(batch, lines, final)

    async def _validate(self, batch: BatchView) -> BatchView | None:
        lines = await self._read_lines(batch)
        if lines is None:
            return None
        model = next((str(line.body.get("model")) for line in lines if line.body.get("model")), None)
        await asyncio.to_thread(
            self.store.set_batch_status,
            batch.id,
            "in_progress",
            only_from=("validating",),
            total=len(lines),
            model=model,
        )
        return await asyncio.to_thread(self.store.get_batch, batch.id)

    async def _read_lines(self, batch: BatchView) -> list[BatchLine] | None:
        """The batch's requests (read once per process); a refused file fails the batch (None)."""
        if batch.id in self._lines:
            return self._lines[batch.id]
        file = await asyncio.to_thread(self.store.get_file, batch.input_file_id, ALL_OWNERS)
        errors: list[dict[str, Any]]
        if file is None:
            lines: list[BatchLine] = []
            errors = [{"code": "file_not_found", "line": None, "param": "input_file_id",
                       "message": f"The input file {batch.input_file_id} no longer exists."}]  # fmt: skip
        else:
            data = await asyncio.to_thread(self.store.read_file_bytes, file)
            lines, errors = await asyncio.to_thread(read_batch_file, data, batch.endpoint)
        if errors:
            moved = await asyncio.to_thread(self.store.set_batch_status, batch.id, "failed", errors=errors)
            if moved:
                self._final(batch.id, "failed")
            return None
        self._lines[batch.id] = lines
        return lines

    async def _caller(self, batch: BatchView) -> Caller:
        if batch.api_key_id is None:
            return ANONYMOUS
        key = await asyncio.to_thread(self.store.get_api_key, batch.api_key_id)
        return ANONYMOUS if key is None else Caller.of(key)

    async def _run_lines(self, batch: BatchView, lines: list[BatchLine]) -> str:
        """Run the lines not recorded yet: "done", "interrupted" (cancelled or expired) or "stopped"."""
        done = await asyncio.to_thread(self.store.done_lines, batch.id)
        caller = await self._caller(batch)
        running: set[asyncio.Task[None]] = set()
        interrupted = asyncio.Event()
        watcher = asyncio.create_task(self._watch(batch.id, running, interrupted))
        slots = self._slots or asyncio.Semaphore(self.concurrency)
        started: list[asyncio.Task[None]] = []
        try:
            for line in lines:
                if line.line in done:
                    continue
                await slots.acquire()
                if interrupted.is_set():
                    slots.release()
                    break
                task = asyncio.create_task(self._line(batch, line, caller))
                running.add(task)
                started.append(task)
                task.add_done_callback(functools.partial(_line_done, running, slots))
            await asyncio.gather(*started, return_exceptions=True)
        finally:
            watcher.cancel()
            for task in list(running):
                task.cancel()
        if interrupted.is_set():
            return "interrupted"
        # Every line must be recorded before the batch may complete (a stopping engine leaves some undone).
        recorded = await asyncio.to_thread(self.store.done_lines, batch.id)
        return "done" if len(recorded) >= len(lines) else "stopped"

    async def _watch(
        self, batch_id: str, running: set[asyncio.Task[None]], interrupted: asyncio.Event
    ) -> None:
        """Cancel the lines in flight as soon as the batch is cancelled or expires (each stops within one
        denoising step and is not recorded)."""
        while True:
            await asyncio.sleep(WATCH_S)
            batch = await asyncio.to_thread(self.store.get_batch, batch_id)
            if batch is None or batch.status != "in_progress" or _expired(batch):
                interrupted.set()
                for task in list(running):
                    task.cancel()
                return

    async def _line(self, batch: BatchView, line: BatchLine, caller: Caller) -> None:
        while True:
            while self.queue_full():
                await asyncio.sleep(0.2)
            try:
                result = await self.execute(batch.endpoint, line.body, caller, batch.id)
                break
            except RetryLater as later:
                await asyncio.sleep(later.seconds)
            except (Stopping, asyncio.CancelledError):
                raise
            except Exception as exc:  # never lose a line: an unexpected failure is its answer
                log.exception("batch %s line %d failed", batch.id, line.line)
                result = LineResult(
                    500, {"error": {"message": f"The server failed on this request: {exc}",
                                    "type": "server_error", "param": None, "code": "server_error"}},
                )  # fmt: skip
                break
        data = output_line(line.custom_id, result.status_code, result.request_id, result.body)
        await asyncio.shield(
            asyncio.to_thread(
                self.store.record_line,
                batch.id,
                line.line,
                line.custom_id,
                result.status_code,
                data,
                result.usage,
            )
        )

    async def _finalize(self, batch: BatchView, lines: list[BatchLine], status: str) -> None:
        output, errors = await asyncio.to_thread(write_final_files, self.store, batch, lines, status)
        moved = await asyncio.to_thread(
            self.store.finalize_batch,
            batch.id,
            status,
            api_key_id=batch.api_key_id,
            output=output,
            errors=errors,
        )
        self._lines.pop(batch.id, None)
        if moved:
            log.info("batch %s %s", batch.id, status)
            self._final(batch.id, status)

    def _final(self, batch_id: str, status: str) -> None:
        if self.on_final is not None:
            try:
                self.on_final(batch_id, status)
            except Exception:
                log.exception("batch %s: the final-status hook failed", batch_id)


def _forget(advancing: dict[str, asyncio.Task[None]], batch_id: str, task: asyncio.Task[None]) -> None:
    advancing.pop(batch_id, None)


def _line_done(running: set[asyncio.Task[None]], slots: asyncio.Semaphore, task: asyncio.Task[None]) -> None:
    running.discard(task)
    slots.release()


def _expired(batch: BatchView) -> bool:
    expires_at = batch.timestamps.get("expires_at")
    return expires_at is not None and expires_at <= utcnow()
