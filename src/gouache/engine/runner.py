"""The runner: jobs through the named stages of rendering on any diffusers pipeline.

Stages: load (cached) -> plan (scheduler, working size) -> denoise (the pipeline's own encode / latents /
denoise / decode, with a per-step callback for progress and cancellation) -> finish (exact size, encode).

Text-to-image jobs that agree on everything but prompt and seeds (:func:`batch_key`) denoise as one pipeline
batch: one prompt (or cached embedding) and one ``torch.Generator`` per image, so each image's noise comes
from its own seed, and the pipeline's modules are made batch-invariant (:mod:`gouache.engine.invariant`), so
each image is byte-identical to the same image rendered alone. A lone job is a batch of its own images."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from gouache.engine.catalog import SamplingPlan
from gouache.engine.edits import run_edit
from gouache.engine.embeddings import PromptEmbeddings, uses_guidance
from gouache.engine.finish import encode, to_exact_size
from gouache.engine.geometry import working_size
from gouache.engine.invariant import make_batch_invariant
from gouache.engine.jobs import Progress, ProgressCallback, RenderedImage, RenderJob, RenderResult
from gouache.engine.pipelines import LoadedModel, ModelCache
from gouache.engine.previews import decode_preview, preview_steps


class Cancelled(Exception):
    """The job was cancelled (client gone, server stopping) between two denoising steps."""


class DeadlineExceeded(Cancelled):
    """The job's deadline passed, while it waited or between two denoising steps."""


BatchKey = tuple[str, str, SamplingPlan, tuple[int, int], bool]


def batch_key(job: RenderJob) -> BatchKey | None:
    """Jobs with equal keys can denoise as one batch: same model, plan (steps, guidance, scheduler), working
    size and negative-prompt-ness. Edits never batch (None)."""
    if job.edit is not None:
        return None
    return (job.model.name, str(job.model.path), job.plan, _working_size(job), bool(job.negative_prompt))


def _working_size(job: RenderJob) -> tuple[int, int]:
    resolution = job.plan.resolution or job.model.resolution
    return working_size(job.width, job.height, resolution, job.model.multiple)


@dataclass(eq=False)
class BatchEntry:
    """One job of a batch, with its own progress callback and stop check."""

    job: RenderJob
    on_progress: ProgressCallback | None = None
    should_stop: Callable[[], bool] | None = None


class _AllStopped(Exception):
    """Every job of a batch was cancelled or expired: stop denoising."""


class Runner:
    def __init__(
        self, cache: ModelCache, embeddings: PromptEmbeddings | None = None, max_batch_images: int = 8
    ) -> None:
        self.cache = cache
        #: Most images one pipeline call denoises: a job with more renders in several calls.
        self.max_batch_images = max_batch_images
        self.embeddings = embeddings if embeddings is not None else PromptEmbeddings()
        self._finisher = ThreadPoolExecutor(min(4, os.cpu_count() or 1), thread_name_prefix="gouache-finish")

    def render(
        self,
        job: RenderJob,
        on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> RenderResult:
        if job.edit is None:
            return self._render_in_chunks(job, on_progress, should_stop)
        started = time.perf_counter()
        model = self.cache.get(job.model)
        loaded = time.perf_counter()
        # A pipeline holds per-call state (its scheduler's timesteps): one job at a time per model.
        with model.lock:
            make_batch_invariant(model.pipeline)
            return self._render_edit(model, job, started, loaded, on_progress, should_stop)

    def _render_in_chunks(
        self,
        job: RenderJob,
        on_progress: ProgressCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> RenderResult:
        """A text-to-image job alone: its images denoise together, at most `max_batch_images` per call."""
        size = max(1, self.max_batch_images)
        results: list[RenderResult] = []
        for start in range(0, len(job.seeds), size):
            previews = job.previews if start == 0 else 0  # previews show the first image only
            chunk = replace(job, seeds=job.seeds[start : start + size], previews=previews)
            report = on_progress
            if on_progress is not None and start > 0:

                def report(p: Progress, start: int = start) -> None:
                    assert on_progress is not None
                    on_progress(replace(p, image_index=p.image_index + start))

            outcome = self.render_batch([BatchEntry(chunk, report, should_stop)])[0]
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
        if len(results) == 1:
            return results[0]
        timings = {
            key: sum(r.timings.get(key, 0.0) for r in results) for key in ("load_s", "denoise_s", "finish_s")
        }
        timings["batch_images"] = max(r.timings.get("batch_images", 1.0) for r in results)
        images = [image for r in results for image in r.images]
        return RenderResult(images=images, working_size=results[0].working_size, timings=timings)

    def render_batch(self, entries: list[BatchEntry]) -> list[RenderResult | BaseException]:
        """Render compatible text-to-image jobs (equal :func:`batch_key`) as one pipeline call. Returns, per
        entry, its result or the exception that ended it (`Cancelled`, `DeadlineExceeded`): a job that stops
        is dropped from the batch while the others go on. An engine failure raises for all."""
        if not entries:
            return []
        keys = {batch_key(e.job) for e in entries}
        if None in keys or len(keys) != 1:
            raise ValueError("render_batch takes text-to-image jobs with one batch key")
        started = time.perf_counter()
        first = entries[0].job
        model = self.cache.get(first.model)
        loaded = time.perf_counter()
        outcomes: list[RenderResult | BaseException | None] = [None] * len(entries)
        images: list[Any] | None = None
        denoise_s, total = 0.0, 1
        with model.lock:
            make_batch_invariant(model.pipeline)
            model.use_scheduler(first.plan.scheduler)
            size = _working_size(first)
            for i, entry in enumerate(entries):
                outcomes[i] = _stopped(entry)
            live = [i for i in range(len(entries)) if outcomes[i] is None]
            if live:
                t0 = time.perf_counter()
                images = self._denoise_batch(model, [entries[i] for i in live], size, outcomes, live)
                denoise_s = time.perf_counter() - t0
                total = sum(len(entries[i].job.seeds) for i in live)
        if live and images is not None:
            # Finishing (exact size, encode) needs no model: outside the lock, images side by side.
            work: list[tuple[int, RenderJob, Any, int]] = []
            offset = 0
            for i in live:
                job = entries[i].job
                if outcomes[i] is None:
                    work += [(i, job, images[offset + k], seed) for k, seed in enumerate(job.seeds)]
                offset += len(job.seeds)
            t1 = time.perf_counter()
            finished = list(self._finisher.map(lambda w: _finish(w[1], w[2], w[3]), work))
            finish_s = time.perf_counter() - t1
            for i in live:
                job = entries[i].job
                if outcomes[i] is not None:
                    continue
                rendered = [image for (owner, *_), image in zip(work, finished, strict=True) if owner == i]
                share = len(job.seeds) / total
                timings = {
                    "load_s": loaded - started,
                    # the batch's denoising and finishing, the job's share by images
                    "denoise_s": denoise_s * share,
                    "finish_s": finish_s * share,
                    "batch_images": float(total),
                }
                outcomes[i] = RenderResult(images=rendered, working_size=size, timings=timings)
        return [o if o is not None else Cancelled() for o in outcomes]

    def _denoise_batch(
        self,
        model: LoadedModel,
        entries: list[BatchEntry],
        size: tuple[int, int],
        outcomes: list[RenderResult | BaseException | None],
        positions: list[int],
    ) -> list[Any] | None:
        """One pipeline call for every image of `entries`; the images in order, or None when every job
        stopped. A job that stops on the way gets its exception in `outcomes` (at its `positions` index)."""
        first = entries[0].job
        pipe = model.pipeline
        offsets: list[int] = []
        prompts: list[str] = []
        negatives: list[str] = []
        generators: list[torch.Generator] = []
        seeds: list[int] = []
        for entry in entries:
            offsets.append(len(prompts))
            for seed in entry.job.seeds:
                seeds.append(seed)
                prompts.append(entry.job.prompt)
                negatives.append(entry.job.negative_prompt or "")
                generators.append(torch.Generator("cpu").manual_seed(seed))

        def step_end(p: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            latents = kwargs.get("latents")
            total = int(getattr(p, "num_timesteps", 0) or first.plan.steps)
            for k, entry in enumerate(entries):
                if outcomes[positions[k]] is not None:
                    continue
                stopped = _stopped(entry)
                if stopped is not None:
                    outcomes[positions[k]] = stopped
                    continue
                if entry.on_progress is not None:
                    lat = None if latents is None else latents[offsets[k] : offsets[k] + 1]
                    preview = self._preview(model, entry.job, 0, step + 1, total, lat, size)
                    entry.on_progress(Progress(0, step + 1, total, preview, images=len(entry.job.seeds)))
            if all(outcomes[i] is not None for i in positions):
                raise _AllStopped()
            return kwargs

        kwargs: dict[str, Any] = {
            "width": size[0],
            "height": size[1],
            "num_inference_steps": first.plan.steps,
            "guidance_scale": first.plan.guidance,
            "generator": generators,
            "callback_on_step_end": step_end,
            "output_type": "pil",
        }
        if isinstance(pipe, StableDiffusionPipeline):
            guided = uses_guidance(pipe, first.plan.guidance)
            pairs = [
                self.embeddings.get(
                    first.model.name, str(first.model.path), pipe, prompt, negative or None, guided, seed
                )
                for prompt, negative, seed in zip(prompts, negatives, seeds, strict=True)
            ]
            kwargs["prompt_embeds"] = torch.cat([positive for positive, _ in pairs])
            if guided:
                kwargs["negative_prompt_embeds"] = torch.cat([n for _, n in pairs if n is not None])
        else:
            kwargs["prompt"] = prompts
            if first.negative_prompt:
                kwargs["negative_prompt"] = negatives
                if not model.spec.cfg:
                    # Guidance-distilled models (FLUX) embed guidance; a negative prompt needs true CFG.
                    kwargs["true_cfg_scale"] = max(1.5, first.plan.guidance)
        try:
            with torch.inference_mode():
                output = pipe(**kwargs)
        except _AllStopped:
            return None
        return list(output.images)

    def _render_edit(
        self,
        model: LoadedModel,
        job: RenderJob,
        started: float,
        loaded: float,
        on_progress: ProgressCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> RenderResult:
        """An edit renders its images one at a time (SD3 img2img breaks with several per call)."""
        model.use_scheduler(job.plan.scheduler)
        size = _working_size(job)
        images: list[RenderedImage] = []
        denoise_s = finish_s = 0.0
        for index, seed in enumerate(job.seeds):
            t0 = time.perf_counter()
            pil = self._edit(model, job, seed, index, on_progress, should_stop)
            t1 = time.perf_counter()
            final = to_exact_size(pil, job.width, job.height, job.model.upscaler)
            data = encode(final, job.output_format, job.output_compression)
            images.append(RenderedImage(data, job.output_format, job.width, job.height, seed))
            denoise_s += t1 - t0
            finish_s += time.perf_counter() - t1
        timings = {"load_s": loaded - started, "denoise_s": denoise_s, "finish_s": finish_s}
        return RenderResult(images=images, working_size=size, timings=timings)

    @staticmethod
    def _preview(
        model: LoadedModel,
        job: RenderJob,
        index: int,
        step: int,
        total: int,
        latents: Any,
        size: tuple[int, int],
    ) -> Image.Image | None:
        """A preview of the first image at the output size, at the steps chosen for `job.previews`."""
        if index != 0 or latents is None or step not in preview_steps(total, job.previews):
            return None
        return to_exact_size(decode_preview(model, latents, size), job.width, job.height, job.model.upscaler)

    def _edit(
        self,
        model: LoadedModel,
        job: RenderJob,
        seed: int,
        index: int,
        on_progress: ProgressCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> Any:
        assert job.edit is not None

        size = working_size(
            job.width, job.height, job.plan.resolution or job.model.resolution, job.model.multiple
        )

        def step(done: int, total: int, latents: Any) -> None:
            if should_stop is not None and should_stop():
                raise Cancelled()
            if on_progress is not None:
                preview = self._preview(model, job, index, done, total, latents, size)
                on_progress(Progress(index, done, total, preview))

        if should_stop is not None and should_stop():
            raise Cancelled()
        return run_edit(
            model, job.prompt, job.negative_prompt, job.plan, job.width, job.height, seed, job.edit, step
        )


def _finish(job: RenderJob, pil: Any, seed: int) -> RenderedImage:
    final = to_exact_size(pil, job.width, job.height, job.model.upscaler)
    data = encode(final, job.output_format, job.output_compression)
    return RenderedImage(data, job.output_format, job.width, job.height, seed)


def _stopped(entry: BatchEntry) -> BaseException | None:
    """The exception a job's stop check raises (cancelled, expired), or None while it should go on."""
    if entry.should_stop is None:
        return None
    try:
        entry.should_stop()
    except Cancelled as exc:
        return exc
    return None
