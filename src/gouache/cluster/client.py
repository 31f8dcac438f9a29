"""The gateway's engine: an :class:`~gouache.engine.client.EngineClient` over Ray Serve deployment handles.

A job goes to the engine deployment of its model (the default model's deployment serves the others: every
replica holds the whole catalog) as one streaming handle call, `EngineReplica.render`, which yields plain
events: ``("queued", {"warming": ...})`` once the replica has queued the job, ``("started", where)`` when it
leaves the replica's queue (with the time it waited for the replica's warm-up, which the gateway's deadline
does not count either), ``("progress", Progress)`` per denoising step (with previews: the stream's partial
images), then ``("result", RenderResult)`` or ``("error", exception)``. The ticket's future gets the result
or the exception, as a local `JobQueue`'s would, so the dispatcher cannot tell the two apart.

- **Back-pressure.** A replica whose queue is full answers `QueueFull` (with its retry estimate); Serve's own
  refusal when `max_queued_requests` is reached (`BackPressureError`) becomes `QueueFull` too. Either way the
  client gets 429 with `Retry-After`, never Serve's bare 503.
- **Cancellation.** `cancel()` cancels the handle call; Serve cancels the replica's generator, which cancels
  its queue job: it stops after the current denoising step.
- **Faults.** A replica or node that dies mid-job ends the call with a Ray system error. If nothing was
  streamed to the client yet (no preview), the job is sent once more (Serve routes it to a live replica);
  otherwise, or if the retry fails too, the future gets `ReplicaLost` (a 500 the request is recorded with).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ray import serve
from ray.exceptions import RayError, RayTaskError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from gouache.engine.catalog import ModelSpec
from gouache.engine.client import Lane, QueueFull, ShuttingDown
from gouache.engine.jobs import Progress, ProgressCallback, RenderJob, RenderResult

log = logging.getLogger(__name__)

#: Seconds a refused client is told to wait when Serve itself refuses (its queue is full).
BACKPRESSURE_RETRY_AFTER_S = 2
#: How often the gateway asks the engine replicas for their state (`/health`, `/v1/models`).
STATUS_REFRESH_S = 2.0
#: How long a status call may take (a busy replica answers between jobs).
STATUS_TIMEOUT_S = 5.0
#: A replica's last report is kept this long without a newer one (busy replicas answer late; dead ones never).
REPORT_STALE_S = 30.0


class ReplicaLost(RuntimeError):
    """The engine replica (or its node) died while rendering the job, and it could not be retried."""


class RayTicket:
    """A job sent to the cluster: a future, the position it was queued at here, and cancel()."""

    def __init__(self, position: int, deadline: float | None) -> None:
        self.position = position
        self.deadline = deadline
        self.future: Future[RenderResult] = Future()
        self.task: asyncio.Task[None] | None = None
        #: `time.monotonic()` since when the replica has held the job behind its warm-up; None otherwise.
        self.warm_wait_from: float | None = None

    def deadline_now(self) -> float | None:
        """The deadline as it stands: while the replica holds the job behind its warm-up, that wait does not
        count (as in one process's queue); once the job starts, the deadline has moved by what the replica
        measured. Read `warm_wait_from` first: the deadline moves before it is cleared (errs late)."""
        wait_from = self.warm_wait_from
        deadline = self.deadline
        if deadline is None or wait_from is None:
            return deadline
        return deadline + time.monotonic() - wait_from

    def warm_wait(self, warming: bool) -> None:
        """The replica queued the job behind its warm-up (or not)."""
        if warming and self.warm_wait_from is None:
            self.warm_wait_from = time.monotonic()

    def started(self, warm_wait_s: float) -> None:
        """The job left the replica's queue, after `warm_wait_s` behind its warm-up: the deadline moves later
        by that much (the replica moved its own alike)."""
        if self.warm_wait_from is None:
            return
        if self.deadline is not None:
            self.deadline += warm_wait_s
        self.warm_wait_from = None

    @property
    def expired(self) -> bool:
        deadline = self.deadline_now()
        return deadline is not None and time.monotonic() >= deadline

    def cancel(self) -> None:
        self.future.cancel()
        if self.task is not None:
            self.task.cancel()


class ClusterModels:
    """The models the engine replicas hold, from their last status reports (the `ModelsView` of /health)."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []

    @property
    def used_bytes(self) -> int:
        return sum(int(r.get("used_bytes", 0)) for r in self.reports)

    @property
    def budget_bytes(self) -> int | None:
        return sum(int(r.get("budget_bytes") or 0) for r in self.reports) or None

    def loaded(self) -> list[str]:
        return sorted({name for r in self.reports for name in r.get("loaded", [])})

    def backends(self) -> dict[str, str]:
        return {k: v for r in self.reports for k, v in r.get("backends", {}).items()}

    def describe(self) -> dict[str, dict[str, Any]]:
        return {k: v for r in self.reports for k, v in r.get("models", {}).items()}

    def default_device(self) -> str:
        return str(self.reports[0].get("device", "cpu")) if self.reports else "cpu"

    def device_and_dtype(self, spec: ModelSpec) -> tuple[str, str]:
        """Where the replicas render `spec`, from their reports (the result cache keys on it). Before the
        first report, the device and dtype the catalog asks for ("auto" included): a later miss, never a
        wrong hit."""
        placed = self.describe().get(spec.name)
        if placed is not None:
            return str(placed["device"]), str(placed["dtype"])
        return spec.device or "auto", spec.dtype or "auto"


class RayEngineClient:
    """Submits jobs to engine deployments; used on the gateway's event loop only."""

    def __init__(
        self,
        engines: dict[str, DeploymentHandle],
        default_model: str,
        max_queue: int,
        workers: int = 1,
    ) -> None:
        self.engines = engines
        self.default_model = default_model
        #: Jobs this gateway replica keeps in flight at most (each engine replica has its own queue too).
        self.max_queue = max_queue
        self.workers = workers
        self.models = ClusterModels()
        self._in_flight = 0
        self._running = 0
        self._closing = False
        self._mean_job_s: float | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        #: replica id -> (when it last answered, its report).
        self._reports: dict[str, tuple[float, dict[str, Any]]] = {}
        #: Jobs sent once more after the replica rendering them was lost.
        self.retries = 0

    # --- submitting -------------------------------------------------------------------------------------

    def submit(
        self,
        job: RenderJob,
        on_progress: ProgressCallback | None = None,
        *,
        on_start: Callable[[], None] | None = None,
        deadline: float | None = None,
        lane: Lane = "interactive",
    ) -> RayTicket:
        if self._closing:
            raise ShuttingDown("The server is shutting down and takes no new jobs.")
        if self.full:
            raise self.queue_full_error()
        ticket = RayTicket(self._in_flight, deadline)
        self._in_flight += 1
        ticket.task = asyncio.get_running_loop().create_task(
            self._run(ticket, job, on_progress, on_start, lane)
        )
        return ticket

    def _handle(self, job: RenderJob) -> DeploymentHandle:
        return self.engines.get(job.model.name) or self.engines[self.default_model]

    async def _run(
        self,
        ticket: RayTicket,
        job: RenderJob,
        on_progress: ProgressCallback | None,
        on_start: Callable[[], None] | None,
        lane: Lane,
    ) -> None:
        started_at = time.perf_counter()
        state = {"started": False, "streamed": False}
        try:
            for attempt in (1, 2):
                try:
                    result = await self._call(ticket, job, on_progress, on_start, lane, state)
                except (RayError, ReplicaLost) as exc:
                    if isinstance(exc, RayTaskError | BackPressureError):
                        raise
                    if attempt == 2 or state["streamed"]:
                        lost = f"the engine replica rendering it was lost ({type(exc).__name__})"
                        raise ReplicaLost(lost) from exc
                    log.warning("engine replica lost (%s); sending the job once more", type(exc).__name__)
                    self.retries += 1
                    continue
                self._observe(time.perf_counter() - started_at)
                if not ticket.future.done():
                    ticket.future.set_result(result)
                return
        except asyncio.CancelledError:
            ticket.future.cancel()
            raise
        except BackPressureError:
            _settle(ticket.future, QueueFull(self._full_message(), BACKPRESSURE_RETRY_AFTER_S))
        except Exception as exc:
            _settle(ticket.future, exc)
        finally:
            self._in_flight -= 1
            if state["started"]:
                self._running -= 1

    async def _call(
        self,
        ticket: RayTicket,
        job: RenderJob,
        on_progress: ProgressCallback | None,
        on_start: Callable[[], None] | None,
        lane: Lane,
        state: dict[str, bool],
    ) -> RenderResult:
        deadline = ticket.deadline_now()
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        stream: DeploymentResponseGenerator[tuple[str, Any]]
        stream = self._handle(job).options(stream=True).render.remote(job, remaining, lane)  # type: ignore[assignment]
        try:
            async for kind, payload in stream:
                if kind == "queued":
                    ticket.warm_wait(bool(payload.get("warming")))
                elif kind == "started":
                    ticket.started(float(payload.get("warm_wait_s", 0.0)))
                    if not state["started"]:
                        state["started"] = True
                        self._running += 1
                        if on_start is not None:
                            await asyncio.to_thread(on_start)
                elif kind == "progress":
                    progress: Progress = payload
                    if progress.preview is not None:
                        state["streamed"] = True
                    if on_progress is not None:
                        on_progress(progress)
                elif kind == "result":
                    return payload  # type: ignore[no-any-return]
                elif kind == "error":
                    raise payload
        except asyncio.CancelledError:
            stream.cancel()
            raise
        raise ReplicaLost("the engine replica ended the job without a result")

    # --- state ------------------------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        return self._in_flight >= self.max_queue

    def _full_message(self) -> str:
        return "The cluster's engine queues are full; retry shortly."

    def queue_full_error(self) -> QueueFull:
        mean = self._mean_job_s if self._mean_job_s is not None else 5.0
        return QueueFull(self._full_message(), max(1, min(120, round(mean))))

    @property
    def depth(self) -> int:
        return self._in_flight

    @property
    def running(self) -> int:
        return self._running

    @property
    def warming(self) -> bool:
        """Until a replica has reported, and while any reports warming up: `/health` answers 503."""
        reports = self.models.reports
        return not reports or any(r.get("warming") for r in reports)

    def warm_up(self, model: str, jobs: list[RenderJob]) -> None:
        """Engine replicas warm their model up themselves when they start (GOUACHE_PRELOAD)."""

    def warm_failed(self, model: str) -> bool:
        return any(model in r.get("warm_up", {}).get("errors", {}) for r in self.models.reports)

    def warm_report(self) -> dict[str, object]:
        return {
            "replicas": {r["replica"]: r.get("warm_up", {}) for r in self.models.reports if "replica" in r}
        }

    def stop(self, timeout: float = 30.0) -> None:
        """Take no new jobs; the engine replicas are Serve's to stop."""
        self._closing = True
        if self._refresh_task is not None:
            self._refresh_task.cancel()

    def _observe(self, seconds: float) -> None:
        previous = self._mean_job_s
        self._mean_job_s = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    # --- status reports ---------------------------------------------------------------------------------

    def start_refreshing(self) -> None:
        """Keep `models` (replica reports) fresh in the background, on this event loop."""
        self._refresh_task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # a replica restarting must not end the loop
                log.debug("engine status refresh failed: %s", exc)
            await asyncio.sleep(STATUS_REFRESH_S)

    async def refresh(self) -> list[dict[str, Any]]:
        """Ask the engine replicas for their state: two status calls per running replica (Serve routes each
        to a replica of its choosing), keeping each replica's newest report until it has not answered for
        `REPORT_STALE_S` (a replica that died, or was replaced)."""
        from gouache.cluster.topology import running_replicas

        calls = []
        for name, handle in self.engines.items():
            count = await asyncio.to_thread(running_replicas, engine_deployment_name(name))
            calls += [handle.status.remote() for _ in range(2 * max(1, count))]
        # A replica whose every slot renders answers when one frees up: do not wait for it here.
        waiting = [asyncio.wait_for(call, STATUS_TIMEOUT_S) for call in calls]
        answers = await asyncio.gather(*waiting, return_exceptions=True)
        now = time.monotonic()
        for report in answers:
            if isinstance(report, dict) and "replica" in report:
                self._reports[report["replica"]] = (now, report)
        self._reports = {k: v for k, v in self._reports.items() if now - v[0] <= REPORT_STALE_S}
        self.models.reports = [report for _, report in self._reports.values()]
        return self.models.reports


def engine_deployment_name(model: str) -> str:
    """The Serve deployment that renders `model`."""
    return f"engine-{model}"


def _settle(future: Future[RenderResult], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


__all__ = ["ClusterModels", "RayEngineClient", "RayTicket", "ReplicaLost", "serve"]
