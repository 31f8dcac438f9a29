"""The runner: every job through the four named stages of rendering on a diffusers pipeline.

1. **load**: the model, from the cache (loaded on first use).
2. **prepare**: the sampler (the plan's scheduler set on the pipeline), the job's LoRA adapters and scales
   (:func:`gouache.engine.lora.activate`), the working size (and VAE tiling for
   it, as the model's memory strategy says: :mod:`gouache.engine.devices`), the jobs still to run, one CPU
   ``torch.Generator`` per image (the same noise on every device), the prompts (cached embeddings where the
   pipeline takes them) and, for an edit, its canvas, mask, init image and derived pipeline
   (:func:`gouache.engine.edits.prepare_edit`).
3. **denoise**: the pipeline's own encode / latents / denoise / decode, with a per-step callback for progress,
   previews and cancellation: text-to-image as one call for all its images, an edit one call per image (SD3
   img2img breaks with several per call).
4. **finish**: exact size, blending an edit back into its input outside the mask, then the finishing
   pipeline (:mod:`gouache.engine.finish`, :mod:`gouache.engine.outputs`: alpha, encode, metadata, C2PA),
   once per image, after the model lock is released, images side by side. What needs the model for it (a
   GIF's further frames, gouache-mini's layout alpha) is made at the end of denoising, under the lock.

The stages hand each other one :class:`RenderState`. The issue that named them called the second stage
"plan"; in code it is *prepare*, because "plan" already means the catalog's
:class:`~gouache.engine.catalog.SamplingPlan` (a quality tier's steps, guidance and sampler), which prepare
reads.

Text-to-image jobs that agree on everything but prompt and seeds (:func:`batch_key`) denoise as one pipeline
batch: one prompt (or cached embedding) and one ``torch.Generator`` per image, so each image's noise comes
from its own seed, and the pipeline's modules are made batch-invariant (:mod:`gouache.engine.invariant`), so
each image is byte-identical to the same image rendered alone. A lone job is a batch of its own images."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from gouache.engine.catalog import SamplingPlan
from gouache.engine.devices import dtype_name
from gouache.engine.edits import PreparedEdit, denoise_edit, prepare_edit
from gouache.engine.embeddings import PromptEmbeddings, uses_guidance
from gouache.engine.finish import FinishWork, finish_hook, finish_one, kept_marks
from gouache.engine.geometry import working_size
from gouache.engine.invariant import make_batch_invariant
from gouache.engine.jobs import (
    LoraChoice,
    Progress,
    ProgressCallback,
    RenderedImage,
    RenderJob,
    RenderResult,
)
from gouache.engine.lora import activate, has_adapters, label
from gouache.engine.outputs import Animation
from gouache.engine.outputs.alpha import keyed_prompt
from gouache.engine.outputs.frames import chain_frames
from gouache.engine.pipelines import LoadedModel, ModelCache
from gouache.engine.previews import preview_image
from gouache.mini.alpha import layout_alpha, paints_layouts


class Cancelled(Exception):
    """The job was cancelled (client gone, server stopping) between two denoising steps."""


class DeadlineExceeded(Cancelled):
    """The job's deadline passed, while it waited or between two denoising steps."""


class PromptRefused(ValueError):
    """The model cannot draw what the prompt asks for (gouache-mini: words in a script it has no letters
    for); found before denoising, so no compute is spent on an image that would not be what was asked."""


def _refusal(model: LoadedModel, job: RenderJob) -> PromptRefused | None:
    """The model's own reason to refuse ``job``'s prompt (its text encoder's ``unwritable``), if any."""
    check = getattr(getattr(model.pipeline, "text_encoder", None), "unwritable", None)
    reason = check(job.prompt) if check is not None else None
    return PromptRefused(reason) if reason else None


BatchKey = tuple[str, str, SamplingPlan, tuple[int, int], bool, tuple[LoraChoice, ...], str, Animation | None]


def batch_key(job: RenderJob) -> BatchKey | None:
    """Jobs with equal keys can denoise as one batch: same model, plan (steps, guidance, scheduler), working
    size, negative-prompt-ness, LoRA adapters with their scales, background and animation. Edits never batch
    (None)."""
    if job.edit is not None:
        return None
    return (
        job.model.name, str(job.model.path), job.plan, _working_size(job), bool(job.negative_prompt),
        job.loras, job.outputs.background, job.outputs.animation,
    )  # fmt: skip


def _working_size(job: RenderJob) -> tuple[int, int]:
    resolution = job.plan.resolution or job.model.resolution
    return working_size(job.width, job.height, resolution, job.model.multiple)


@dataclass(eq=False)
class BatchEntry:
    """One job of a batch, with its own progress callback and stop check."""

    job: RenderJob
    on_progress: ProgressCallback | None = None
    should_stop: Callable[[], bool] | None = None


@dataclass(eq=False)
class RenderState:
    """What the four stages hand each other for one run: a batch of text-to-image jobs, or one edit."""

    # 1. load
    model: LoadedModel
    entries: list[BatchEntry]
    load_s: float
    # 2. prepare
    #: Per entry: None while the job goes on, else the exception that stopped it (or, after finishing, its
    #: result).
    outcomes: list[RenderResult | BaseException | None] = field(default_factory=list)
    #: The entries that were still to run when denoising started; their images are denoised in this order.
    live: list[int] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    #: The memory-saving measures this run uses (see gouache.engine.devices).
    memory: tuple[str, ...] = ()
    #: One per image of the live entries, seeded with the image's seed.
    generators: list[torch.Generator] = field(default_factory=list)
    #: Text-to-image: the pipeline's prompt arguments (prompts or cached embeddings, negatives, true CFG).
    prompt: dict[str, Any] = field(default_factory=dict)
    #: An edit: its canvas, mask, init image, strength and derived pipeline.
    edit: PreparedEdit | None = None
    #: A whole-image edit: what the model's own finishing drew on its input and sets again (gouache-mini).
    kept: object = None
    # 3. denoise
    #: The live entries' images at the working size, in order; None when every job stopped on the way.
    images: list[Image.Image] | None = None
    denoise_s: float = 0.0
    #: Per image of `images`: its animation frames after the first (GIF) and its layout alpha at the
    #: working size with the painted background colour (gouache-mini, transparent backgrounds).
    frames: list[list[Image.Image]] = field(default_factory=list)
    layouts: list[tuple[Image.Image, tuple[int, int, int]] | None] = field(default_factory=list)


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
        """One job: text-to-image in pipeline calls of at most `max_batch_images` images, an edit as a run
        of its own. A job that stops raises `Cancelled` (or `DeadlineExceeded`)."""
        if job.edit is None:
            return self._render_in_chunks(job, on_progress, should_stop)
        outcome = self._run([BatchEntry(job, on_progress, should_stop)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def render_batch(self, entries: list[BatchEntry]) -> list[RenderResult | BaseException]:
        """Render compatible text-to-image jobs (equal :func:`batch_key`) as one pipeline call. Returns, per
        entry, its result or the exception that ended it (`Cancelled`, `DeadlineExceeded`): a job that stops
        is dropped from the batch while the others go on. An engine failure raises for all."""
        if not entries:
            return []
        keys = {batch_key(e.job) for e in entries}
        if None in keys or len(keys) != 1:
            raise ValueError("render_batch takes text-to-image jobs with one batch key")
        return self._run(entries)

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
        return replace(results[0], images=images, timings=timings)

    def _run(self, entries: list[BatchEntry]) -> list[RenderResult | BaseException]:
        """One run through the four stages: text-to-image entries with one batch key, or a single edit."""
        started = time.perf_counter()
        # 1. load
        model = self.cache.get(entries[0].job.model)
        state = RenderState(model, entries, load_s=time.perf_counter() - started)
        # A pipeline holds per-call state (its scheduler's timesteps): one run at a time per model.
        with model.lock:
            make_batch_invariant(model.pipeline)
            t0 = time.perf_counter()  # `denoise_s` counts preparing too (encoding prompts, an edit's canvas)
            # 2. prepare
            self._prepare(state)
            # 3. denoise
            if state.live:
                if state.edit is None:
                    self._denoise_text(state)
                else:
                    self._denoise_edit(state)
                self._denoise_outputs(state)
            state.denoise_s = time.perf_counter() - t0
        # 4. finish: needs no model, so outside the lock
        return self._finish(state)

    # ----------------------------------------------------------------------------------------------
    # 2. prepare
    # ----------------------------------------------------------------------------------------------

    def _prepare(self, state: RenderState) -> None:
        """Sampler and working size; the jobs that stopped while waiting are dropped, then the live ones get
        their generators and prompts (text-to-image) or their canvas and pipeline (an edit)."""
        first = state.entries[0].job
        state.model.use_scheduler(first.plan.scheduler)
        activate(state.model.pipeline, first.loras)  # under the model lock: no reload of the base model
        state.size = _working_size(first)
        state.memory = state.model.use_vae_tiling(*state.size)
        if first.edit is not None:
            entry = state.entries[0]
            _check_stop(entry)
            refused = _refusal(state.model, first)
            if refused is not None:
                raise refused
            state.outcomes = [None]
            state.live = [0]
            state.edit = prepare_edit(state.model, first.edit, state.size)
            state.kept = kept_marks(state.model.pipeline, first)
            state.generators = [torch.Generator("cpu").manual_seed(seed) for seed in first.seeds]
            return
        state.outcomes = [_stopped(entry) or _refusal(state.model, entry.job) for entry in state.entries]
        state.live = [i for i, outcome in enumerate(state.outcomes) if outcome is None]
        if state.live:
            self._prepare_prompts(state)

    def _prepare_prompts(self, state: RenderState) -> None:
        """One prompt (or cached embedding) and one generator per image of the live text-to-image jobs."""
        first = state.entries[0].job
        model = state.model
        pipe = model.pipeline
        prompts: list[str] = []
        negatives: list[str] = []
        seeds: list[int] = []
        for i in state.live:
            job = state.entries[i].job
            for seed in job.seeds:
                seeds.append(seed)
                prompts.append(_render_prompt(model, job))
                negatives.append(job.negative_prompt or "")
                state.generators.append(torch.Generator("cpu").manual_seed(seed))
        if isinstance(pipe, StableDiffusionPipeline):
            guided = uses_guidance(pipe, first.plan.guidance)
            name = first.model.name
            if has_adapters(getattr(pipe, "text_encoder", None)):  # the embeddings depend on the adapters
                name = f"{name}+{label(first.loras)}"
            pairs = [
                self.embeddings.get(name, str(first.model.path), pipe, prompt, negative or None, guided, seed)
                for prompt, negative, seed in zip(prompts, negatives, seeds, strict=True)
            ]
            state.prompt["prompt_embeds"] = torch.cat([positive for positive, _ in pairs])
            if guided:
                state.prompt["negative_prompt_embeds"] = torch.cat([n for _, n in pairs if n is not None])
        else:
            state.prompt["prompt"] = prompts
            if first.negative_prompt:
                state.prompt["negative_prompt"] = negatives
                if not model.spec.cfg:
                    # Guidance-distilled models (FLUX) embed guidance; a negative prompt needs true CFG.
                    state.prompt["true_cfg_scale"] = max(1.5, first.plan.guidance)

    # ----------------------------------------------------------------------------------------------
    # 3. denoise
    # ----------------------------------------------------------------------------------------------

    def _denoise_text(self, state: RenderState) -> None:
        """One pipeline call for every image of the live jobs. A job that stops on the way gets its exception
        in `state.outcomes`; when every job has stopped, the call ends early and `state.images` stays None."""
        first = state.entries[0].job
        model, size = state.model, state.size
        offsets: list[int] = []  # where each live job's images start in the batch
        count = 0
        for i in state.live:
            offsets.append(count)
            count += len(state.entries[i].job.seeds)

        def step_end(p: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            latents = kwargs.get("latents")
            total = int(getattr(p, "num_timesteps", 0) or first.plan.steps)
            for k, i in enumerate(state.live):
                entry = state.entries[i]
                if state.outcomes[i] is not None:
                    continue
                stopped = _stopped(entry)
                if stopped is not None:
                    state.outcomes[i] = stopped
                    continue
                if entry.on_progress is not None:
                    lat = None if latents is None else latents[offsets[k] : offsets[k] + 1]
                    preview = preview_image(model, entry.job, 0, step + 1, total, lat, size)
                    entry.on_progress(Progress(0, step + 1, total, preview, images=len(entry.job.seeds)))
            if all(state.outcomes[i] is not None for i in state.live):
                raise _AllStopped()
            return kwargs

        kwargs: dict[str, Any] = {
            "width": size[0],
            "height": size[1],
            "num_inference_steps": first.plan.steps,
            "guidance_scale": first.plan.guidance,
            "generator": state.generators,
            "callback_on_step_end": step_end,
            "output_type": "pil",
            **state.prompt,
        }
        try:
            with torch.inference_mode():
                output = model.pipeline(**kwargs)
        except _AllStopped:
            return
        state.images = list(output.images)

    def _denoise_edit(self, state: RenderState) -> None:
        """One pipeline call per image of the edit, checking between images whether the job should stop."""
        assert state.edit is not None
        entry = state.entries[0]
        job, model, size = entry.job, state.model, state.size
        region = state.edit.region
        images: list[Image.Image] = []
        for index, (seed, generator) in enumerate(zip(job.seeds, state.generators, strict=True)):
            if index:
                _check_stop(entry)

            def step(done: int, total: int, latents: Any, index: int = index) -> None:
                _check_stop(entry)
                if entry.on_progress is not None:
                    preview = preview_image(model, job, index, done, total, latents, size, region, state.kept)
                    entry.on_progress(Progress(index, done, total, preview))

            images.append(
                denoise_edit(
                    model,
                    state.edit,
                    _render_prompt(model, job),
                    job.negative_prompt,
                    job.plan,
                    size,
                    seed,
                    generator,
                    step,
                )
            )
        state.images = images

    def _denoise_outputs(self, state: RenderState) -> None:
        """What finishing needs from the model, per image: a GIF's further frames (an image-to-image
        chain from the image) and gouache-mini's layout alpha for a transparent background."""
        if state.images is None:
            return
        jobs = [(i, state.entries[i].job, seed) for i in state.live for seed in state.entries[i].job.seeds]
        for (i, job, seed), image in zip(jobs, state.images, strict=True):
            frames: list[Image.Image] = []
            animation = job.outputs.animation
            if animation is not None and state.outcomes[i] is None:
                entry = state.entries[i]
                frames = chain_frames(
                    state.model, image, animation.frames, animation.motion, _render_prompt(state.model, job),
                    job.negative_prompt, job.plan, state.size, seed, functools.partial(_check_stop, entry),
                )[1:]  # fmt: skip
            state.frames.append(frames)
            layout = None
            if job.outputs.background == "transparent":
                layout = layout_alpha(state.model.pipeline, job.prompt, seed, state.size)
            state.layouts.append(layout)

    # ----------------------------------------------------------------------------------------------
    # 4. finish
    # ----------------------------------------------------------------------------------------------

    def _finish(self, state: RenderState) -> list[RenderResult | BaseException]:
        """Every image of the jobs still going, finished side by side; per entry its result or exception."""
        outcomes = state.outcomes
        if state.live and state.images is not None:
            work: list[FinishWork] = []
            offset = 0
            for i in state.live:
                job = state.entries[i].job
                if outcomes[i] is None:
                    work += [
                        FinishWork(i, job, [state.images[n], *state.frames[n]], seed, state.layouts[n])
                        for n, seed in ((offset + k, seed) for k, seed in enumerate(job.seeds))
                    ]
                offset += len(job.seeds)
            backdrop = state.edit.backdrop if state.edit is not None else None
            region = state.edit.region if state.edit is not None else None
            # A model's own last touch (gouache-mini: shades, what it understood, its lettering).
            hook = finish_hook(state.model.pipeline)
            t1 = time.perf_counter()
            kept = state.kept
            finished = list(self._finisher.map(lambda w: finish_one(w, backdrop, hook, region, kept), work))
            finish_s = time.perf_counter() - t1
            total = sum(len(state.entries[i].job.seeds) for i in state.live)
            for i in state.live:
                job = state.entries[i].job
                if outcomes[i] is not None:
                    continue
                rendered = [image for w, image in zip(work, finished, strict=True) if w.owner == i]
                failed = [r for r in rendered if isinstance(r, BaseException)]
                if failed:  # a keyed background that is not flat: this job fails, the batch goes on
                    outcomes[i] = failed[0]
                    continue
                share = len(job.seeds) / total if total else 1.0
                timings = {
                    "load_s": state.load_s,
                    # the run's denoising and finishing, the job's share by images
                    "denoise_s": state.denoise_s * share,
                    "finish_s": finish_s * share,
                }
                if state.edit is None:
                    timings["batch_images"] = float(total)
                images = [r for r in rendered if isinstance(r, RenderedImage)]
                outcomes[i] = RenderResult(
                    images=images,
                    working_size=state.size,
                    timings=timings,
                    device=state.model.placement.device,
                    dtype=dtype_name(state.model.placement.dtype),
                    memory=state.memory,
                )
        return [o if o is not None else Cancelled() for o in outcomes]


def _render_prompt(model: LoadedModel, job: RenderJob) -> str:
    """The prompt the model is given: for a transparent background on a model that does not lay out its
    own scenes, extended to ask for a flat key colour (matted away in finishing)."""
    if job.outputs.background == "transparent" and not paints_layouts(model.pipeline):
        return keyed_prompt(job.prompt)
    return job.prompt


def _stopped(entry: BatchEntry) -> BaseException | None:
    """The exception a job's stop check raises (cancelled, expired), or None while it should go on."""
    if entry.should_stop is None:
        return None
    try:
        entry.should_stop()
    except Cancelled as exc:
        return exc
    return None


def _check_stop(entry: BatchEntry) -> None:
    """Raise when an edit should stop: the stop check's own exception, or `Cancelled` when it says so."""
    if entry.should_stop is not None and entry.should_stop():
        raise Cancelled()
