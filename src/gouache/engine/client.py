"""The engine as the service sees it: a small protocol between the image service's dispatcher and whatever
runs the jobs.

Two implementations exist. :class:`gouache.engine.queue.JobQueue` runs jobs in this process (the default
server); :class:`gouache.ray.client.RayEngineClient` sends them to engine replicas of a Ray Serve cluster
(``gouache serve --ray``). The service layer depends on this protocol only, so it never knows which one it
talks to, and the job and result types it passes (:mod:`gouache.engine.jobs`) stay plain, picklable data.

A submitted job gives back a :class:`JobTicket`: a `concurrent.futures.Future` with the job's result (or the
engine's exception: `QueueFull`, `ShuttingDown`, `Cancelled`, `DeadlineExceeded`, a model error...), the
position it was queued at, and `cancel()`. Progress events go to the `on_progress` callback and the "job
started" notice to `on_start`; both may be called on any thread."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Literal, Protocol

from gouache.engine.catalog import ModelSpec
from gouache.engine.jobs import ProgressCallback, RenderJob, RenderResult

Lane = Literal["interactive", "batch"]


class QueueFull(Exception):
    """The engine is at its configured depth; the caller should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after)
        self.retry_after = retry_after

    def __str__(self) -> str:
        return str(self.args[0])


class ShuttingDown(Exception):
    """The engine is stopping and takes no new jobs."""


class JobTicket(Protocol):
    """One submitted job."""

    @property
    def position(self) -> int:
        """Jobs ahead of this one when it was queued (waiting or running)."""
        ...

    @property
    def future(self) -> Future[RenderResult]: ...

    def cancel(self) -> None:
        """Ask the job to stop: at once if queued, after the current denoising step if running."""
        ...

    def deadline_now(self) -> float | None:
        """The job's deadline (`time.monotonic()`) as it stands now: time spent waiting for the engine's
        warm-up does not count, so it may move later."""
        ...

    @property
    def expired(self) -> bool:
        """The deadline, as it stands now, has passed."""
        ...


class ModelsView(Protocol):
    """What `/health` and `/v1/models` read about the models the engine holds (a `ModelCache` locally)."""

    @property
    def used_bytes(self) -> int: ...

    @property
    def budget_bytes(self) -> int | None: ...

    def loaded(self) -> list[str]: ...

    def backends(self) -> dict[str, str]: ...

    def describe(self) -> dict[str, dict[str, Any]]: ...

    def default_device(self) -> str: ...

    def device_and_dtype(self, spec: ModelSpec) -> tuple[str, str]:
        """Where `spec` renders and in which dtype, without loading it (a result cache key part)."""
        ...


class EngineClient(Protocol):
    """Submit jobs, refuse early when full, warm models up, report state, stop."""

    max_queue: int
    workers: int

    def submit(
        self,
        job: RenderJob,
        on_progress: ProgressCallback | None = None,
        *,
        on_start: Callable[[], None] | None = None,
        deadline: float | None = None,
        lane: Lane = "interactive",
    ) -> JobTicket:
        """Queue `job`; raises `QueueFull` or `ShuttingDown` when it cannot be taken now (an engine that
        learns it later sets them on the ticket's future instead). `deadline` is a `time.monotonic()`."""
        ...

    @property
    def full(self) -> bool:
        """Whether `submit` would refuse a job now (as far as this process can tell)."""
        ...

    def queue_full_error(self) -> QueueFull: ...

    @property
    def depth(self) -> int:
        """Jobs waiting plus jobs running."""
        ...

    @property
    def running(self) -> int: ...

    @property
    def warming(self) -> bool: ...

    def warm_up(self, model: str, jobs: list[RenderJob]) -> None: ...

    def warm_failed(self, model: str) -> bool: ...

    def warm_report(self) -> dict[str, object]: ...

    def stop(self, timeout: float = 30.0) -> None: ...
