"""The job queue in front of the engine: a bounded queue and worker thread(s) that run jobs.

(Named "queue", not "scheduler": in the engine "scheduler" means only the diffusers sampler a
:class:`~gouache.engine.catalog.SamplingPlan` names.)

Cross-request batching: a worker that takes a text-to-image job also takes the queued jobs with the same
:func:`~gouache.engine.runner.batch_key` (model, plan, working size, negative-prompt-ness), waiting up to
`batch_window_s` for more to arrive, up to `max_batch_images` images, and renders them as one pipeline batch;
each job still gets its own images (byte-identical to a lone render), progress, cancellation and deadline.

Two lanes: `interactive` (API requests) and `batch` (Batch API lines). A worker always takes an interactive
job first, so an interactive request that arrives while a batch runs waits for at most the batch job being
rendered, never for the batch; batch jobs batch with batch jobs, and a batch job's batch window ends early
when interactive work arrives. That one batch job is what an interactive request may wait for, so the batch
lane batches at most `batch_lane_images` images (fewer than `max_batch_images`): a smaller cap shortens the
wait, a larger one raises the batch's throughput (design note 45 has the measured trade-off).

The API submits a job and awaits its future; progress events are delivered through the job's callback.
Cancellation is cooperative: the runner checks between denoising steps, so a cancelled or expired job stops
within one step. A full queue refuses at once (`QueueFull`, with an estimate of when to retry); a stopping
queue refuses new work (`ShuttingDown`) and lets the running jobs finish.

Warm start: :meth:`JobQueue.warm_up` gives every worker a model's warm-up renders
(:func:`gouache.engine.warmup.warm_jobs`), which it runs before taking any request, so the model is loaded,
converted and compiled on the thread that will run it; requests that arrive meanwhile wait in the queue."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field

from gouache.engine.client import Lane, QueueFull, ShuttingDown
from gouache.engine.jobs import ProgressCallback, RenderJob, RenderResult
from gouache.engine.runner import BatchEntry, Cancelled, DeadlineExceeded, Runner, batch_key
from gouache.engine.threads import use_torch_threads
from gouache.engine.warmup import release_memory, trim_malloc

__all__ = ["JobHandle", "JobQueue", "Lane", "QueueFull", "ShuttingDown"]

log = logging.getLogger(__name__)

#: Assumed length of a job before any has finished (seconds), for `retry_after`.
_FIRST_JOB_GUESS_S = 5.0

#: How long `stop` waits for cancelled jobs to reach the end of their denoising step.
_STOP_AFTER_CANCEL_S = 60.0
#: After this long without a job, an idle worker hands freed memory back (`trim_malloc`): a 1024x1024
#: request leaves ~35-150 MB freed but held in the arenas of the threads that rendered and answered it.
IDLE_TRIM_S = 2.0


@dataclass(eq=False)
class JobHandle:
    job: RenderJob
    on_progress: ProgressCallback | None = None
    #: Called on the worker thread when the job starts running.
    on_start: Callable[[], None] | None = None
    #: `time.monotonic()` after which the job is abandoned with `DeadlineExceeded`. Moved later by the time
    #: the job waited for a warm-up (`JobQueue.submit` while warming): start-up is not the request's time.
    deadline: float | None = None
    #: Jobs ahead of this one when it was queued (waiting or running).
    position: int = 0
    future: Future[RenderResult] = field(default_factory=Future)
    submitted_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None
    #: `time.monotonic()` when it was queued behind a warm-up still running; None once that wait is over.
    warm_wait_from: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Ask the job to stop: at once if queued, after the current denoising step if running."""
        self._cancel.set()
        self.future.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def deadline_now(self) -> float | None:
        """The deadline as it stands: while the job still waits for a warm-up, that wait does not count.
        Read from other threads: `warm_wait_from` first, because the queue moves `deadline` before clearing it
        (a read between the two errs late, never early)."""
        wait_from = self.warm_wait_from
        deadline = self.deadline
        if deadline is None or wait_from is None:
            return deadline
        return deadline + time.monotonic() - wait_from

    @property
    def expired(self) -> bool:
        deadline = self.deadline_now()
        return deadline is not None and time.monotonic() >= deadline

    def should_stop(self) -> bool:
        """Polled by the runner between denoising steps."""
        if self.cancelled:
            raise Cancelled()
        if self.expired:
            raise DeadlineExceeded()
        return False


class JobQueue:
    """The in-process :class:`~gouache.engine.client.EngineClient`."""

    def __init__(
        self,
        runner: Runner,
        max_queue: int = 64,
        workers: int = 1,
        *,
        batch_window_s: float = 0.0,
        max_batch_images: int = 1,
        batch_lane_images: int | None = None,
        torch_threads: int | None = None,
    ) -> None:
        """``batch_lane_images``: most images one batch-lane job batches (``max_batch_images`` if None; never
        more). ``torch_threads``: the intra-op threads each worker thread sets for itself when it starts
        (OpenMP's thread count is per thread; see :func:`gouache.engine.threads.use_torch_threads`)."""
        if max_queue < 1 or workers < 1 or max_batch_images < 1:
            raise ValueError("the queue depth, worker count and batch size must be at least 1")
        if batch_lane_images is not None and batch_lane_images < 1:
            raise ValueError("the batch lane's batch size must be at least 1")
        self.runner = runner
        self.torch_threads = torch_threads
        self.max_queue = max_queue
        self.workers = workers
        self.batch_window_s = max(0.0, batch_window_s)
        self.max_batch_images = max_batch_images
        self.batch_lane_images = min(max_batch_images, batch_lane_images or max_batch_images)
        self._pending: deque[JobHandle] = deque()  # the interactive lane
        self._batch_pending: deque[JobHandle] = deque()  # the batch lane: taken when no interactive job waits
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"gouache-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        #: Per worker: the (model, warm-up jobs) it still has to run before taking requests.
        self._warm_todo: list[deque[tuple[str, list[RenderJob]]]] = [deque() for _ in range(workers)]
        self._warm_running: set[int] = set()
        #: Model -> {worker index: seconds its warm-up took}.
        self._warmed: dict[str, dict[int, float]] = {}
        #: Model -> why its warm-up failed (requests for it then load it themselves, and fail or fall back).
        self._warm_errors: dict[str, str] = {}
        self._waiting = 0
        self._running = 0
        self._active: set[JobHandle] = set()
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._started = False
        self._closing = False
        #: Whether a job ran since the last `trim_malloc`.
        self._untrimmed = False
        self._mean_job_s: float | None = None

    def start(self) -> None:
        if not self._started:
            self._started = True
            for worker in self._threads:
                worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Take no new jobs, drop the waiting ones, let running jobs finish for up to `timeout` seconds, then
        cancel them (they stop after their current denoising step) and wait for the workers to end."""
        with self._lock:
            self._closing = True
            for todo in self._warm_todo:
                todo.clear()
            self._wakeup.notify_all()
        for handle in self._drain():
            handle.cancel()
        self._join(timeout)
        with self._lock:
            active = list(self._active)
        for handle in active:
            handle.cancel()
        self._join(_STOP_AFTER_CANCEL_S)

    def _join(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        for worker in self._threads:
            if worker.is_alive():
                worker.join(max(0.0, end - time.monotonic()))

    def _drain(self) -> list[JobHandle]:
        with self._lock:
            drained = [*self._pending, *self._batch_pending]
            self._pending.clear()
            self._batch_pending.clear()
            self._waiting -= len(drained)
        return drained

    @property
    def depth(self) -> int:
        """Jobs waiting plus jobs running."""
        with self._lock:
            return self._waiting + self._running

    @property
    def full(self) -> bool:
        """Whether `submit` would refuse a job now."""
        with self._lock:
            return self._waiting + self._running >= self.max_queue

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def warm_up(self, model: str, jobs: list[RenderJob]) -> None:
        """Have every worker run `jobs` (a model's warm-up renders) before it takes another request; returns
        at once. `warming` stays true until all workers are done."""
        with self._lock:
            if self._closing:
                return
            self._warmed.setdefault(model, {})
            self._warm_errors.pop(model, None)
            for todo in self._warm_todo:
                todo.append((model, list(jobs)))
            self._wakeup.notify_all()

    @property
    def warming(self) -> bool:
        """Whether some worker has not finished its warm-up renders yet."""
        with self._lock:
            return self._warming_locked()

    def _warming_locked(self) -> bool:
        return bool(self._warm_running) or any(self._warm_todo)

    def _end_warm_waits_locked(self, handles: Iterable[JobHandle]) -> None:
        """The warm-up no longer holds these jobs back: move each one's deadline later by the time it waited
        for it, so that a request sent while the server warmed up gets its whole deadline for itself."""
        now = time.monotonic()
        for handle in handles:
            if handle.warm_wait_from is not None:
                if handle.deadline is not None:
                    handle.deadline += now - handle.warm_wait_from
                handle.warm_wait_from = None  # after moving the deadline: see JobHandle.deadline_now

    def warm_failed(self, model: str) -> bool:
        """Whether the last warm-up of `model` failed."""
        with self._lock:
            return model in self._warm_errors

    def warm_report(self) -> dict[str, object]:
        """For `/health`: per model, the workers that warmed it (and in how many seconds), and failures."""
        with self._lock:
            return {
                "warmed": {
                    model: {str(worker): round(s, 2) for worker, s in sorted(workers.items())}
                    for model, workers in self._warmed.items()
                },
                "errors": dict(self._warm_errors),
            }

    def retry_after(self) -> int:
        """Whole seconds until a queue slot is likely to free up: about one mean job over the workers."""
        return self._retry_after_locked()

    def submit(
        self,
        job: RenderJob,
        on_progress: ProgressCallback | None = None,
        *,
        on_start: Callable[[], None] | None = None,
        deadline: float | None = None,
        lane: Lane = "interactive",
    ) -> JobHandle:
        with self._lock:
            if self._closing:
                raise ShuttingDown("The server is shutting down and takes no new jobs.")
            depth = self._waiting + self._running
            if depth >= self.max_queue:
                raise self._full_locked()
            handle = JobHandle(job, on_progress, on_start, deadline, position=depth)
            if self._warming_locked():
                handle.warm_wait_from = time.monotonic()
            self._waiting += 1
            (self._batch_pending if lane == "batch" else self._pending).append(handle)
            self._wakeup.notify_all()
        return handle

    def queue_full_error(self) -> QueueFull:
        with self._lock:
            return self._full_locked()

    def _full_locked(self) -> QueueFull:
        return QueueFull(
            f"The queue is full ({self.max_queue} jobs waiting or running); retry shortly.",
            self._retry_after_locked(),
        )

    def _retry_after_locked(self) -> int:
        mean = self._mean_job_s if self._mean_job_s is not None else _FIRST_JOB_GUESS_S
        return max(1, min(120, math.ceil(mean / self.workers)))

    def _work(self, index: int) -> None:
        if self.torch_threads:
            use_torch_threads(self.torch_threads)
        while True:
            warm = self._take_warm_up(index)
            if warm is not None:
                self._warm(index, *warm)
                continue
            batch = self._take(index)
            if batch is None:
                return
            if not batch:  # woken for a warm-up
                continue
            try:
                if len(batch) == 1:
                    self._run(batch[0])
                else:
                    self._run_batch(batch)
            finally:
                with self._lock:
                    self._running -= len(batch)
                    self._active.difference_update(batch)
                    self._untrimmed = True

    def _take_warm_up(self, index: int) -> tuple[str, list[RenderJob]] | None:
        with self._lock:
            todo = self._warm_todo[index]
            if not todo or self._closing:
                self._warm_running.discard(index)
                if not self._warming_locked():
                    self._end_warm_waits_locked([*self._pending, *self._batch_pending])
                return None
            self._warm_running.add(index)
            return todo.popleft()

    def _warm(self, index: int, model: str, jobs: list[RenderJob]) -> None:
        """Run a model's warm-up renders on this worker; a failure is logged and reported, never raised."""
        started = time.perf_counter()
        try:
            for job in jobs:
                self.runner.render(job, None, self._stop_warm_up)
        except Cancelled:
            return
        except Exception as exc:  # a broken model must not kill the worker: requests report it themselves
            log.error("warm-up of model %s failed on worker %d: %s", model, index, exc)
            with self._lock:
                self._warm_errors[model] = str(exc)
            return
        finally:
            release_memory()
        seconds = time.perf_counter() - started
        with self._lock:
            self._warmed.setdefault(model, {})[index] = seconds
        log.info("model %s warmed on worker %d in %.1f s", model, index, seconds)

    def _stop_warm_up(self) -> bool:
        if self._closing:
            raise Cancelled()
        return False

    def _take(self, index: int = 0) -> list[JobHandle] | None:
        """The next job and, if it can batch, the compatible jobs queued within the batch window; None when
        the queue is stopping; an empty list when this worker has a warm-up to run first."""
        with self._lock:
            while not self._pending and not self._batch_pending:
                if self._closing:
                    return None
                if self._warm_todo[index]:
                    return []
                if not self._wakeup.wait(IDLE_TRIM_S) and self._untrimmed and not self._running:
                    self._untrimmed = False
                    trim_malloc()
            lane = self._pending if self._pending else self._batch_pending
            limit = self.max_batch_images if lane is self._pending else self.batch_lane_images
            first = lane.popleft()
            batch = [first]
            key = batch_key(first.job) if limit > 1 else None
            if key is not None:
                images = len(first.job.seeds)
                window_ends = time.monotonic() + self.batch_window_s
                while True:
                    for handle in list(lane):
                        size = len(handle.job.seeds)
                        if images + size <= limit and batch_key(handle.job) == key:
                            lane.remove(handle)
                            batch.append(handle)
                            images += size
                    left = window_ends - time.monotonic()
                    if images >= limit or left <= 0 or self._closing:
                        break
                    if lane is self._batch_pending and self._pending:
                        break  # interactive work is waiting: render what the batch lane has now
                    self._wakeup.wait(left)
            self._waiting -= len(batch)
            self._running += len(batch)
            self._active.update(batch)
            self._end_warm_waits_locked(batch)  # this worker is warm while another still warms up
            return batch

    def _run(self, handle: JobHandle) -> None:
        if handle.cancelled or not handle.future.set_running_or_notify_cancel():
            return
        if handle.expired:
            handle.future.set_exception(DeadlineExceeded())
            return
        handle.started_at = time.perf_counter()
        # Process CPU time over the job: torch's intra-op threads are not this thread, so thread time would
        # miss most of it. With one worker (the default) the process delta is the job's, plus noise.
        cpu_started = time.process_time()
        try:
            if handle.on_start is not None:
                handle.on_start()
            result = self.runner.render(handle.job, handle.on_progress, handle.should_stop)
            result.timings["queue_s"] = handle.started_at - handle.submitted_at
            result.timings["cpu_s"] = time.process_time() - cpu_started
            self._observe(time.perf_counter() - handle.started_at)
            handle.future.set_result(result)
        except Cancelled as exc:  # DeadlineExceeded included
            handle.future.set_exception(exc)
        except BaseException as exc:  # the worker must survive any job failure
            log.exception("job failed")
            handle.future.set_exception(exc)

    def _run_batch(self, handles: list[JobHandle]) -> None:
        """Several compatible jobs as one pipeline batch; each job's future gets its own outcome."""
        live: list[JobHandle] = []
        for handle in handles:
            if handle.cancelled or not handle.future.set_running_or_notify_cancel():
                continue
            if handle.expired:
                handle.future.set_exception(DeadlineExceeded())
                continue
            live.append(handle)
        if not live:
            return
        started = time.perf_counter()
        cpu_started = time.process_time()
        entries = []
        for handle in live:
            handle.started_at = started
            entries.append(BatchEntry(handle.job, handle.on_progress, handle.should_stop))
        try:
            for handle in live:
                if handle.on_start is not None:
                    handle.on_start()
            outcomes = self.runner.render_batch(entries)
        except BaseException as exc:  # the worker must survive any job failure
            log.exception("batch failed")
            for handle in live:
                handle.future.set_exception(exc)
            return
        cpu_s = time.process_time() - cpu_started
        images = sum(len(h.job.seeds) for h in live) or 1
        self._observe(time.perf_counter() - started)
        for handle, outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                handle.future.set_exception(outcome)
                continue
            outcome.timings["queue_s"] = started - handle.submitted_at
            # The batch's process CPU time, each job's share by its images.
            outcome.timings["cpu_s"] = cpu_s * len(handle.job.seeds) / images
            handle.future.set_result(outcome)

    def _observe(self, seconds: float) -> None:
        with self._lock:
            previous = self._mean_job_s
            self._mean_job_s = seconds if previous is None else 0.8 * previous + 0.2 * seconds
