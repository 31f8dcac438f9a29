"""The image service's side of the engine boundary: submit a job to the engine (an
:class:`~gouache.engine.client.EngineClient`: the local queue or a Ray cluster), wait for it within
the request's deadline, retry once on the catalog's fallback model, and keep the request record in step
(queued, running, fallback).

Engine exceptions become service errors here and nowhere else (`engine_error`): a full queue is 429 with
`retry-after`, a stopping server 503 `shutting_down`, a passed deadline 408, a model that cannot load 500
`model_unavailable`, a prompt the model refuses (words it cannot letter) 400 naming `prompt`, anything else
the engine raises 500. `Cancelled` (the caller went away) is no error
and passes through, so the service records the request as cancelled."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from gouache.engine.catalog import Catalog
from gouache.engine.client import EngineClient, JobTicket, Lane, QueueFull, ShuttingDown
from gouache.engine.jobs import ProgressCallback, RenderJob, RenderResult
from gouache.engine.outputs.alpha import KeyNotUniform
from gouache.engine.pipelines import ModelLoadError
from gouache.engine.runner import Cancelled, DeadlineExceeded, PromptRefused
from gouache.service.errors import (
    DeadlineExceededError,
    EngineFailure,
    InvalidRequest,
    Overloaded,
    QueueFullError,
    ServiceError,
)
from gouache.service.images.rules import fallback_job
from gouache.store import Store


def engine_error(exc: Exception) -> ServiceError:
    """The service error an engine exception means for the client (the one place this is decided)."""
    if isinstance(exc, QueueFull):
        return _queue_full(exc)
    if isinstance(exc, ShuttingDown):
        return Overloaded(str(exc), code="shutting_down")
    if isinstance(exc, DeadlineExceeded):
        return DeadlineExceededError(
            "The request did not finish within its deadline and was stopped. Raise 'deadline_s' (up to the "
            "server's GOUACHE_REQUEST_TIMEOUT_S), or ask for fewer steps, a smaller size or fewer images.",
            param="deadline_s",
        )
    if isinstance(exc, ModelLoadError):
        return EngineFailure(str(exc), code="model_unavailable")
    if isinstance(exc, PromptRefused):  # the model cannot draw what the prompt asks: the client's to change
        return InvalidRequest(str(exc), param="prompt", code="unsupported_text")
    return EngineFailure(f"The engine failed while rendering: {exc}")


def _queue_full(exc: QueueFull) -> QueueFullError:
    return QueueFullError(str(exc), exc.retry_after)


class Dispatcher:
    def __init__(
        self, catalog: Catalog, queue: EngineClient, store: Store, default_timeout_s: float | None = None
    ) -> None:
        self.catalog = catalog
        self.queue = queue
        self.store = store
        self.default_timeout_s = default_timeout_s

    def deadline(self, requested_s: float | None) -> float | None:
        """`time.monotonic()` by which a request starting now must be answered. The server's limit is a
        ceiling: a request may shorten its deadline, never extend it."""
        limits = [t for t in (requested_s, self.default_timeout_s) if t is not None]
        return time.monotonic() + min(limits) if limits else None

    def queue_full(self) -> QueueFullError | None:
        """The refusal a new request gets now if the queue is full, else None."""
        if not self.queue.full:
            return None
        return _queue_full(self.queue.queue_full_error())

    async def render(
        self,
        request_id: str,
        job: RenderJob,
        quality: str,
        deadline: float | None,
        on_progress: ProgressCallback | None = None,
        lane: Lane = "interactive",
    ) -> tuple[RenderJob, RenderResult]:
        """Render `job`; an engine failure (model fails to load, out of memory, ...) is retried once on the
        catalog's fallback model and recorded, instead of failing the request. A transparent background
        whose key colour could not be read (the border is not flat) is rendered once more with other seeds,
        then refused. Returns the job that ran."""
        try:
            try:
                return job, await self._render(request_id, job, deadline, on_progress, lane)
            except KeyNotUniform:
                job = replace(job, seeds=tuple((s + 1_000_003) % 2**63 for s in job.seeds))
                try:
                    return job, await self._render(request_id, job, deadline, on_progress, lane)
                except KeyNotUniform as exc:
                    raise InvalidRequest(
                        f"Could not remove the background: model '{job.model.name}' did not paint a flat "
                        f"background to key out ({exc}), twice. Try another seed or prompt, a model that "
                        "paints flat backgrounds (gouache-mini), or background='opaque'.",
                        param="background",
                        code="background_not_removable",
                    ) from exc
        except EngineFailure as exc:
            fallback = fallback_job(self.catalog, job, quality)
            if fallback is None:
                raise
            await asyncio.to_thread(
                self.store.record_fallback, request_id, job.model.name, fallback.model.name, exc.message
            )
            return fallback, await self._render(request_id, fallback, deadline, on_progress, lane)

    async def _render(
        self,
        request_id: str,
        job: RenderJob,
        deadline: float | None,
        on_progress: ProgressCallback | None,
        lane: Lane = "interactive",
    ) -> RenderResult:
        def started() -> None:  # on the engine's worker, as the job leaves the queue
            self.store.mark_running(request_id, resolved_model=job.model.name, seed=job.seeds[0])

        try:
            handle = self.queue.submit(job, on_progress, on_start=started, deadline=deadline, lane=lane)
        except (QueueFull, ShuttingDown) as exc:
            raise engine_error(exc) from exc
        try:
            await asyncio.to_thread(self.store.mark_queued, request_id, handle.position, job.model.name)
            return await _wait(handle, deadline)
        except asyncio.CancelledError:
            handle.cancel()
            handle.future.add_done_callback(_retrieve_concurrent)  # nobody awaits it any more
            task = asyncio.current_task()
            if task is not None and task.cancelling() == 0:
                # Not our task being cancelled: the queue dropped the job because it is stopping.
                raise engine_error(ShuttingDown("The server is shutting down.")) from None
            raise
        except DeadlineExceeded as exc:  # a `Cancelled` too, but by the deadline: the client is told
            raise engine_error(exc) from exc
        except (Cancelled, ServiceError, KeyNotUniform):
            raise
        except Exception as exc:
            raise engine_error(exc) from exc


async def _wait(handle: JobTicket, deadline: float | None) -> RenderResult:
    """The job's result; past the deadline the job is stopped and `DeadlineExceeded` raised. The queue moves
    the deadline later by the time the job waits for the server's warm-up, so it is read again on waking."""
    future = asyncio.wrap_future(handle.future)
    if deadline is None:
        return await future
    while True:
        left = (handle.deadline_now() or deadline) - time.monotonic()
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, left))
        except TimeoutError:
            if not handle.expired:
                continue  # moved later meanwhile: the job was waiting for the warm-up
            handle.cancel()  # a running job stops after its current denoising step
            future.add_done_callback(_retrieve)  # nobody awaits it any more: no "never retrieved" warning
            raise DeadlineExceeded() from None


def _retrieve_concurrent(future: Any) -> None:
    if not future.cancelled():
        future.exception()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
