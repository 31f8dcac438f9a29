"""Cross-request batching: compatible jobs render as one pipeline batch, each image byte-identical to the same
image rendered alone; a cancelled job leaves the others alone; prompt embeddings are cached."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gouache.engine.catalog import Catalog, SamplingPlan, spec_for_directory
from gouache.engine.embeddings import PromptEmbeddings
from gouache.engine.jobs import Progress, RenderJob
from gouache.engine.pipelines import ModelCache
from gouache.engine.queue import JobQueue
from gouache.engine.runner import BatchEntry, Cancelled, Runner, batch_key

PLAN = SamplingPlan(steps=2, guidance=3.0)


def _jobs(spec: object, negative: str | None = None) -> list[RenderJob]:
    return [
        RenderJob(spec, "a red circle", PLAN, 64, 64, (1,), negative_prompt=negative),  # type: ignore[arg-type]
        RenderJob(spec, "a blue square", PLAN, 64, 64, (2, 3), negative_prompt=negative),  # type: ignore[arg-type]
        RenderJob(spec, "a red circle", PLAN, 64, 64, (4,), negative_prompt=negative),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("family", ["sd1", "sdxl", "sd3", "flux"])
def test_batched_images_are_byte_identical_to_lone_ones(family: str, tiny_models: dict[str, Path]) -> None:
    spec = spec_for_directory(tiny_models[family])
    runner = Runner(ModelCache())
    negative = "blurry" if family == "sd1" else None
    jobs = _jobs(spec, negative)
    assert len({batch_key(job) for job in jobs}) == 1
    alone = [[image.data for image in runner.render(job).images] for job in jobs]
    batched = runner.render_batch([BatchEntry(job) for job in jobs])
    assert [[image.data for image in r.images] for r in batched if not isinstance(r, BaseException)] == alone
    assert all(r.timings["batch_images"] == 4 for r in batched if not isinstance(r, BaseException))


def test_gouache_mini_batches_byte_identically() -> None:
    spec = Catalog.load().resolve("gouache-mini")
    assert spec is not None
    runner = Runner(ModelCache())
    plan = dataclasses.replace(spec.plan("low"), steps=3)  # few steps: the numerics, not the picture
    cases = (("a red star", (1,)), ("a blue circle", (2, 3)), ("a red star", (4,)))
    jobs = [RenderJob(spec, prompt, plan, 256, 256, seeds) for prompt, seeds in cases]
    alone = [[image.data for image in runner.render(job).images] for job in jobs]
    batched = runner.render_batch([BatchEntry(job) for job in jobs])
    assert [[i.data for i in r.images] for r in batched if not isinstance(r, BaseException)] == alone


def test_a_cancelled_job_leaves_the_batch_and_the_others_finish(tiny_models: dict[str, Path]) -> None:
    spec = spec_for_directory(tiny_models["sd1"])
    runner = Runner(ModelCache())
    jobs = _jobs(spec)
    alone = runner.render(jobs[2]).images[0].data
    stop = threading.Event()
    previews: list[int] = []

    def stop_after_first_step(progress: Progress) -> None:
        stop.set()

    def should_stop() -> bool:
        if stop.is_set():
            raise Cancelled()
        return False

    def count(progress: Progress) -> None:
        previews.append(progress.step)

    outcomes = runner.render_batch(
        [
            BatchEntry(jobs[0], stop_after_first_step, should_stop),
            BatchEntry(jobs[1]),
            BatchEntry(jobs[2], count),
        ]
    )
    assert isinstance(outcomes[0], Cancelled)
    assert not isinstance(outcomes[2], BaseException) and outcomes[2].images[0].data == alone
    assert len(previews) >= 2 and previews == sorted(previews)  # progress goes on after the cancel
    everyone = runner.render_batch([BatchEntry(jobs[0], None, lambda: should_stop())])
    assert isinstance(everyone[0], Cancelled)


def test_the_queue_gathers_queued_compatible_jobs(tiny_models: dict[str, Path]) -> None:
    spec = spec_for_directory(tiny_models["sd1"])
    runner = Runner(ModelCache())
    jobs = _jobs(spec)
    other = RenderJob(spec, "a green star", PLAN, 128, 64, (5,))  # another working size: its own batch
    alone = [runner.render(job).images[0].data for job in [*jobs, other]]
    queue = JobQueue(runner, batch_window_s=0.5, max_batch_images=8)
    handles = [queue.submit(job) for job in [*jobs, other]]
    queue.start()
    results = [handle.future.result(timeout=120) for handle in handles]
    queue.stop()
    assert [r.images[0].data for r in results] == alone
    assert [r.timings["batch_images"] for r in results] == [4, 4, 4, 1]


def test_each_worker_thread_uses_the_configured_torch_threads(tiny_models: dict[str, Path]) -> None:
    import torch

    spec = spec_for_directory(tiny_models["sd1"])
    seen: list[int] = []
    queue = JobQueue(Runner(ModelCache()), workers=2, torch_threads=1)
    queue.start()
    try:
        handles = [
            queue.submit(job, lambda progress: seen.append(torch.get_num_threads())) for job in _jobs(spec)
        ]
        for handle in handles:
            handle.future.result(timeout=120)
    finally:
        queue.stop()
    # OpenMP's thread count is per thread: without the worker setting it, it would be every core.
    assert seen and set(seen) == {1}


def test_prompt_embeddings_are_cached_and_evicted(tiny_models: dict[str, Path]) -> None:
    spec = spec_for_directory(tiny_models["sd1"])
    embeddings = PromptEmbeddings(size=2)
    runner = Runner(ModelCache(), embeddings)
    first = runner.render(RenderJob(spec, "a red circle", PLAN, 64, 64, (1,))).images[0].data
    misses = embeddings.misses
    assert runner.render(RenderJob(spec, "a red circle", PLAN, 64, 64, (1,))).images[0].data == first
    assert embeddings.misses == misses and embeddings.hits >= 1
    for prompt in ("one", "two", "three"):
        runner.render(RenderJob(spec, prompt, PLAN, 64, 64, (1,)))
    assert len(embeddings) == 2
    uncached = Runner(ModelCache(), PromptEmbeddings(size=0))
    assert uncached.render(RenderJob(spec, "a red circle", PLAN, 64, 64, (1,))).images[0].data == first


def test_each_job_previews_its_own_image(tiny_models: dict[str, Path]) -> None:
    spec = spec_for_directory(tiny_models["sd1"])
    runner = Runner(ModelCache())
    plan = SamplingPlan(steps=4, guidance=3.0)
    jobs = [RenderJob(spec, p, plan, 64, 64, (s,), previews=2) for p, s in (("red", 1), ("blue", 2))]

    def collect(into: list[bytes]) -> Callable[[Progress], None]:
        return lambda progress: into.append(progress.preview.tobytes()) if progress.preview else None

    alone: list[list[bytes]] = [[], []]
    for job, previews in zip(jobs, alone, strict=True):
        runner.render(job, collect(previews))
    together: list[list[bytes]] = [[], []]
    runner.render_batch([BatchEntry(job, collect(p)) for job, p in zip(jobs, together, strict=True)])
    assert together == alone and len(alone[0]) == 2 and alone[0] != alone[1]


def test_a_job_with_more_images_than_a_batch_renders_in_chunks(tiny_models: dict[str, Path]) -> None:
    spec = spec_for_directory(tiny_models["sd1"])
    job = RenderJob(spec, "a red circle", PLAN, 64, 64, (1, 2, 3))
    whole = Runner(ModelCache()).render(job)
    steps: list[tuple[int, int]] = []
    chunked = Runner(ModelCache(), max_batch_images=2).render(
        job, lambda p: steps.append((p.image_index, p.images))
    )
    assert [i.data for i in chunked.images] == [i.data for i in whole.images]
    assert whole.timings["batch_images"] == 3 and chunked.timings["batch_images"] == 2
    assert {index for index, _ in steps} == {0, 2} and (2, 1) in steps and (0, 2) in steps
