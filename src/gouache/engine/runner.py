"""The runner: one job through the named stages of rendering on any diffusers pipeline.

Stages: load (cached) -> plan (scheduler, working size) -> denoise (the pipeline's own encode / latents /
denoise / decode, with a per-step callback for progress and cancellation) -> finish (exact size, encode)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from gouache.engine.edits import run_edit
from gouache.engine.finish import encode, to_exact_size
from gouache.engine.geometry import working_size
from gouache.engine.jobs import Progress, ProgressCallback, RenderedImage, RenderJob, RenderResult
from gouache.engine.pipelines import LoadedModel, ModelCache
from gouache.engine.previews import decode_preview, preview_steps


class Cancelled(Exception):
    """The job was cancelled (client gone, server stopping) between two denoising steps."""


class DeadlineExceeded(Cancelled):
    """The job's deadline passed, while it waited or between two denoising steps."""


class Runner:
    def __init__(self, cache: ModelCache) -> None:
        self.cache = cache

    def render(
        self,
        job: RenderJob,
        on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> RenderResult:
        started = time.perf_counter()
        model = self.cache.get(job.model)
        loaded = time.perf_counter()
        # A pipeline holds per-call state (its scheduler's timesteps): one job at a time per model.
        with model.lock:
            return self._render(model, job, started, loaded, on_progress, should_stop)

    def _render(
        self,
        model: LoadedModel,
        job: RenderJob,
        started: float,
        loaded: float,
        on_progress: ProgressCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> RenderResult:
        model.use_scheduler(job.plan.scheduler)
        resolution = job.plan.resolution or job.model.resolution
        size = working_size(job.width, job.height, resolution, job.model.multiple)
        images: list[RenderedImage] = []
        denoise_s = finish_s = 0.0
        for index, seed in enumerate(job.seeds):
            t0 = time.perf_counter()
            if job.edit is None:
                pil = self._denoise(model, job, size, seed, index, on_progress, should_stop)
            else:
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

    def _denoise(
        self,
        model: LoadedModel,
        job: RenderJob,
        size: tuple[int, int],
        seed: int,
        index: int,
        on_progress: ProgressCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> Any:
        def step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if should_stop is not None and should_stop():
                raise Cancelled()
            if on_progress is not None:
                total = int(getattr(pipe, "num_timesteps", 0) or job.plan.steps)
                preview = self._preview(model, job, index, step + 1, total, kwargs.get("latents"), size)
                on_progress(Progress(index, step + 1, total, preview))
            return kwargs

        if should_stop is not None and should_stop():
            raise Cancelled()
        generator = torch.Generator("cpu").manual_seed(seed)
        kwargs: dict[str, Any] = {
            "prompt": job.prompt,
            "width": size[0],
            "height": size[1],
            "num_inference_steps": job.plan.steps,
            "guidance_scale": job.plan.guidance,
            "generator": generator,
            "callback_on_step_end": step_end,
            "output_type": "pil",
        }
        if job.negative_prompt:
            kwargs["negative_prompt"] = job.negative_prompt
            if not model.spec.cfg:
                # Guidance-distilled models (FLUX) embed guidance; a negative prompt needs true CFG on top.
                kwargs["true_cfg_scale"] = max(1.5, job.plan.guidance)
        with torch.inference_mode():
            output = model.pipeline(**kwargs)
        return output.images[0]
