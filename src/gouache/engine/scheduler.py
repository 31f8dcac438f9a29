"""One scheduler in front of the engine: a bounded queue and worker thread(s) that run jobs one at a time.

The API submits a job and awaits its future; progress events are delivered through the job's callback.
Cancellation is cooperative: the runner checks between denoising steps."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from gouache.engine.jobs import ProgressCallback, RenderJob, RenderResult
from gouache.engine.runner import Cancelled, Runner

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue is at its configured depth; the caller should retry later."""


@dataclass
class JobHandle:
    job: RenderJob
    on_progress: ProgressCallback | None = None
    future: Future[RenderResult] = field(default_factory=Future)
    submitted_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Ask the job to stop: at once if queued, after the current denoising step if running."""
        self._cancel.set()
        self.future.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()


def handle_cancelled(handle: JobHandle) -> Callable[[], bool]:
    return lambda: handle.cancelled


class Scheduler:
    def __init__(self, runner: Runner, max_queue: int = 64, workers: int = 1) -> None:
        self.runner = runner
        self.max_queue = max_queue
        self._queue: queue.Queue[JobHandle | None] = queue.Queue()
        self._workers = [
            threading.Thread(target=self._work, name=f"gouache-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        self._running = 0
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            for worker in self._workers:
                worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            if worker.is_alive():
                worker.join(timeout)

    @property
    def depth(self) -> int:
        """Jobs waiting plus jobs running."""
        with self._lock:
            return self._queue.qsize() + self._running

    def submit(self, job: RenderJob, on_progress: ProgressCallback | None = None) -> JobHandle:
        if self.depth >= self.max_queue:
            raise QueueFull(f"The queue holds {self.max_queue} jobs; retry shortly.")
        handle = JobHandle(job, on_progress)
        self._queue.put(handle)
        return handle

    def _work(self) -> None:
        while True:
            handle = self._queue.get()
            if handle is None:
                return
            if handle.cancelled or not handle.future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self._running += 1
            handle.started_at = time.perf_counter()
            # Process CPU time over the job: torch's intra-op threads are not this thread, so thread time
            # would miss most of it; jobs run one at a time, so the process delta is the job's (plus noise).
            cpu_started = time.process_time()
            try:
                result = self.runner.render(handle.job, handle.on_progress, handle_cancelled(handle))
                result.timings["queue_s"] = handle.started_at - handle.submitted_at
                result.timings["cpu_s"] = time.process_time() - cpu_started
                handle.future.set_result(result)
            except Cancelled as exc:
                handle.future.set_exception(exc)
            except BaseException as exc:  # the worker must survive any job failure
                log.exception("job failed")
                handle.future.set_exception(exc)
            finally:
                with self._lock:
                    self._running -= 1
