"""The job queue's two lanes, in process with a stand-in runner (no model, no timing): interactive jobs run
before every queued batch-lane job, and a batch-lane job batches at most `batch_lane_images` images, so an
interactive request that arrives while a batch runs waits for one short batch job at most."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from gouache.engine.catalog import Catalog, SamplingPlan
from gouache.engine.jobs import RenderJob, RenderResult
from gouache.engine.queue import JobHandle, JobQueue

TIMEOUT_S = 30.0


class _Stepper:
    """Stands in for the engine's runner: records each run's prompts in order; a run that holds a gated
    prompt says so (`reached`) and waits for its gate, so a test decides what is queued while it runs."""

    def __init__(self, *gated: str) -> None:
        self.order: list[list[str]] = []
        self.gates = {prompt: threading.Event() for prompt in gated}
        self.reached = {prompt: threading.Event() for prompt in gated}

    def _run(self, prompts: list[str]) -> None:
        self.order.append(prompts)
        for prompt in prompts:
            if prompt in self.gates:
                self.reached[prompt].set()
                assert self.gates[prompt].wait(TIMEOUT_S)

    def render(self, job: RenderJob, on_progress: Any = None, should_stop: Any = None) -> RenderResult:
        self._run([job.prompt])
        return RenderResult(images=[], working_size=(64, 64))

    def render_batch(self, entries: list[Any]) -> list[RenderResult]:
        self._run([entry.job.prompt for entry in entries])
        return [RenderResult(images=[], working_size=(64, 64)) for _ in entries]

    def hold_until_queued(self, prompt: str, queue_jobs: Any) -> list[JobHandle]:
        """Wait until the run holding `prompt` has started, queue more jobs, then let it finish."""
        assert self.reached[prompt].wait(TIMEOUT_S)
        handles: list[JobHandle] = queue_jobs()
        self.gates[prompt].set()
        return handles


def _job(prompt: str, images: int = 1) -> RenderJob:
    spec = Catalog.load().resolve("gouache-mini")
    assert spec is not None
    return RenderJob(spec, prompt, SamplingPlan(steps=2, guidance=2.0), 64, 64, tuple(range(images)))


def _queue(runner: _Stepper, **kwargs: Any) -> JobQueue:
    queue = JobQueue(runner, workers=1, batch_window_s=0.0, max_batch_images=8, **kwargs)  # type: ignore[arg-type]
    queue.start()
    return queue


def test_the_batch_lane_batches_at_most_its_cap_and_interactive_jobs_go_first() -> None:
    runner = _Stepper("b0", "b1")
    queue = _queue(runner, batch_lane_images=3)
    try:
        handles = [queue.submit(_job("b0"), lane="batch")]
        handles += runner.hold_until_queued(
            "b0",
            lambda: (
                [queue.submit(_job(f"b{i}"), lane="batch") for i in range(1, 8)]
                + [queue.submit(_job(f"i{i}")) for i in range(1, 3)]
            ),
        )
        # while the first capped batch job runs, one more interactive request arrives
        handles += runner.hold_until_queued("b1", lambda: [queue.submit(_job("i3"))])
        for handle in handles:
            handle.future.result(TIMEOUT_S)
    finally:
        queue.stop(5)
    assert runner.order == [
        ["b0"],
        ["i1", "i2"],  # the interactive jobs overtake the seven queued batch jobs, and batch together
        ["b1", "b2", "b3"],  # batch-lane jobs batch three at a time (the cap), not eight
        ["i3"],  # it waited for one batch job of three images, not for the rest of the batch
        ["b4", "b5", "b6"],
        ["b7"],
    ]


def test_interactive_jobs_keep_the_full_batch_size() -> None:
    runner = _Stepper("b0")
    queue = _queue(runner, batch_lane_images=2)
    try:
        handles = [queue.submit(_job("b0"), lane="batch")]
        handles += runner.hold_until_queued(
            "b0",
            lambda: (
                [queue.submit(_job(f"i{i}", images=2)) for i in range(5)]
                + [queue.submit(_job(f"b{i}"), lane="batch") for i in range(1, 4)]
            ),
        )
        for handle in handles:
            handle.future.result(TIMEOUT_S)
    finally:
        queue.stop(5)
    # interactive jobs: up to max_batch_images (8) images per run; the batch lane: 2 images
    assert runner.order == [["b0"], ["i0", "i1", "i2", "i3"], ["i4"], ["b1", "b2"], ["b3"]]


def test_the_lane_cap_defaults_to_and_never_exceeds_the_batch_size() -> None:
    runner = _Stepper()
    assert JobQueue(runner, max_batch_images=8).batch_lane_images == 8  # type: ignore[arg-type]
    assert JobQueue(runner, max_batch_images=4, batch_lane_images=6).batch_lane_images == 4  # type: ignore[arg-type]
    assert JobQueue(runner, max_batch_images=8, batch_lane_images=1).batch_lane_images == 1  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch lane"):
        JobQueue(runner, max_batch_images=8, batch_lane_images=0)  # type: ignore[arg-type]
