"""The image generation use case: validate -> plan -> record -> render on the scheduler -> record ->
result."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from gouache.engine.catalog import Catalog, ModelSpec, SamplingPlan
from gouache.engine.finish import encode
from gouache.engine.jobs import EditInputs, Progress, ProgressCallback, RenderedImage, RenderJob, RenderResult
from gouache.engine.pipelines import ModelLoadError
from gouache.engine.queue import JobHandle, JobQueue, QueueFull, ShuttingDown
from gouache.engine.runner import Cancelled, DeadlineExceeded
from gouache.service.access import ANONYMOUS, Caller
from gouache.service.budget import check_render_budget
from gouache.service.budgets import Reservation
from gouache.service.errors import (
    DeadlineExceededError,
    EngineFailure,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    QueueFullError,
    ServiceError,
)
from gouache.service.operations import Operations
from gouache.service.pricing import images_cost
from gouache.service.prompts import check_text
from gouache.service.quality import resolve_quality
from gouache.service.sizes import Size, resolve_size
from gouache.service.uploads import decode_image, decode_mask
from gouache.service.usage import images_usage, input_image_tokens
from gouache.store import Store
from gouache.store.views import RequestView

RETIRED_MODELS = {"dall-e-2": "2026-05-12", "dall-e-3": "2026-05-12"}
MAX_SEED = 2**63 - 1
MAX_INPUT_IMAGES = 16


@dataclass(frozen=True)
class GenerateParams:
    """A generation request after wire-level validation (types and enums already checked)."""

    prompt: str
    model: str = "gpt-image-2"
    n: int = 1
    size: str = "auto"
    quality: str = "auto"
    output_format: str = "png"
    output_compression: int | None = None
    background: str = "auto"
    moderation: str = "auto"
    user: str | None = None
    safety_identifier: str | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    #: Extension: seconds the request may take, queue included (the server's default when None).
    deadline_s: float | None = None
    #: Extension: False skips the result cache (a request with a seed is otherwise served from the store
    #: when an identical one already ran).
    cache: bool | None = None

    @property
    def effective_user(self) -> str | None:
        """OpenAI's rule: a non-empty `safety_identifier` wins over `user`."""
        return self.safety_identifier or self.user or None


@dataclass(frozen=True)
class EditParams(GenerateParams):
    """An edit (or, with `variation=True`, a variation): the uploads plus the generation fields."""

    images: tuple[bytes, ...] = ()
    mask: bytes | None = None
    strength: float | None = None
    input_fidelity: str | None = None
    variation: bool = False


DEFAULT_STRENGTH = 0.6
VARIATION_SIZES = ("256x256", "512x512", "1024x1024")
#: OpenAI's input_fidelity rules by API model name: gpt-image-2 is always high and refuses the parameter,
#: gpt-image-1-mini only takes "low"; names not listed (ours, 1, 1.5, 2.5...) take both, default "low".
FIDELITY_FIXED_HIGH = ("gpt-image-2", "gpt-image-2-2026-04-21")
FIDELITY_LOW_ONLY = ("gpt-image-1-mini",)


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    seed: int
    image_id: str


@dataclass
class Planned:
    """A validated request and its engine job, ready to run (or to stream)."""

    endpoint: str
    params: GenerateParams
    job: RenderJob
    quality: str
    partials_sent: int = 0
    caller: Caller = ANONYMOUS
    #: Hosted-equivalent dollars, known before any compute (size, quality, n, inputs, partial images).
    cost_usd: float = 0.0
    #: Soft budget thresholds this request reached (the API sends them as `x-gouache-budget-warning`).
    budget_warnings: tuple[str, ...] = ()
    #: The request's cost, held against its budgets until its ledger row is written.
    reservation: Reservation | None = None
    #: `time.monotonic()` by which the request must be answered; None for no deadline.
    deadline: float | None = None
    #: The result-cache key (every input hashed) when the request may be served from the store, else None.
    cache_key: str | None = None


@dataclass(frozen=True)
class PartialImage:
    """A streamed preview: `index` counts from 0 over the whole request."""

    index: int
    data: bytes


@dataclass(frozen=True)
class GenerateResult:
    request_id: str
    created: int
    model: str
    images: list[GeneratedImage]
    background: str
    output_format: str
    quality: str
    size: str
    usage: dict[str, Any]
    safety_identifier: str | None
    timings: dict[str, float]
    cost_usd: float = 0.0
    local_cost_usd: float = 0.0
    #: The result cache: "hit" (served from the store, no compute), "miss" (rendered) or "off".
    cache: str = "off"


class ImageService:
    def __init__(
        self,
        catalog: Catalog,
        queue: JobQueue,
        store: Store,
        ops: Operations,
        *,
        render_budget_bytes: int | None = None,
        default_timeout_s: float | None = None,
        result_cache: bool = True,
    ) -> None:
        self.catalog = catalog
        self.queue = queue
        self.store = store
        self.ops = ops
        self.render_budget_bytes = render_budget_bytes
        self.default_timeout_s = default_timeout_s
        self.result_cache = result_cache
        self._tasks: set[asyncio.Future[Any]] = set()

    def resolve_model(self, name: str) -> ModelSpec:
        spec = self.catalog.resolve(name)
        if spec is not None:
            return spec
        if name in RETIRED_MODELS:
            raise ModelNotFound(
                f"The model '{name}' was retired on {RETIRED_MODELS[name]}. Use 'gpt-image-2' instead.",
                param="model",
            )
        raise ModelNotFound(
            f"The model '{name}' does not exist. Available models: {', '.join(self.catalog.names())}.",
            param="model",
        )

    def plan(self, params: GenerateParams) -> tuple[RenderJob, str]:
        """Validate a request against the model and build its engine job; returns the job and the resolved
        quality. Raises `ServiceError` for anything the client must fix."""
        check_text(params.prompt, "prompt")
        if params.negative_prompt is not None:
            check_text(params.negative_prompt, "negative_prompt")
        spec = self.resolve_model(params.model)
        edit: EditInputs | None = None
        if isinstance(params, EditParams):
            edit, size = self._plan_edit(params)
        else:
            size = resolve_size(params.size)
        if self.render_budget_bytes is not None:
            check_render_budget(params.n, size.width, size.height, self.render_budget_bytes)
        if params.background == "transparent":
            if params.output_format not in ("png", "webp"):
                raise InvalidRequest(
                    "Transparent backgrounds need output_format 'png' or 'webp'.", param="background"
                )
            raise InvalidRequest(
                f"background='transparent' is not supported by model '{params.model}' yet; "
                "use 'opaque' or 'auto'.",
                param="background",
                code="unsupported_value",
            )
        compression = params.output_compression
        if params.output_format == "png" and compression is not None and compression != 100:
            raise InvalidRequest(
                "output_compression applies only to output_format 'jpeg' or 'webp' (png is lossless).",
                param="output_compression",
            )
        quality = resolve_quality(params.quality, params.prompt, size, spec)
        plan: SamplingPlan = spec.plan(quality)
        if params.steps is not None:
            plan = replace(plan, steps=params.steps)
        if params.guidance_scale is not None:
            plan = replace(plan, guidance=params.guidance_scale)
        base_seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
        seeds = tuple((base_seed + i) % (MAX_SEED + 1) for i in range(params.n))
        job = RenderJob(
            model=spec,
            prompt=params.prompt,
            plan=plan,
            width=size.width,
            height=size.height,
            seeds=seeds,
            output_format=params.output_format,
            output_compression=100 if params.output_compression is None else params.output_compression,
            negative_prompt=params.negative_prompt,
            edit=edit,
        )
        return job, quality

    def _plan_edit(self, params: EditParams) -> tuple[EditInputs, Size]:
        """Decode and check the uploads, then the edit's size and fidelity."""
        if not params.images:
            raise InvalidRequest(
                "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
            )
        if len(params.images) > MAX_INPUT_IMAGES:
            raise InvalidRequest(
                f"At most {MAX_INPUT_IMAGES} images can be edited together; got {len(params.images)}.",
                param="image",
                code="too_many_images",
            )
        name = "image" if len(params.images) == 1 else "image[]"
        images = tuple(
            decode_image(data, name if len(params.images) == 1 else f"image[{i}]")
            for i, data in enumerate(params.images)
        )
        mask = None
        if params.mask is not None:
            mask = decode_mask(params.mask, images[0].size)
        if params.variation:
            if params.size not in VARIATION_SIZES and params.size != "auto":
                raise InvalidRequest(
                    f"Invalid value: '{params.size}'. Supported values are: {', '.join(VARIATION_SIZES)}.",
                    param="size",
                )
            side = 1024 if params.size == "auto" else int(params.size.split("x")[0])
            size = Size(side, side)
        else:
            size = resolve_size(params.size, like=images[0].size)
        fidelity = self._fidelity(params)
        strength = DEFAULT_STRENGTH if params.strength is None else params.strength
        return EditInputs(images=images, mask=mask, strength=strength, input_fidelity=fidelity), size

    @staticmethod
    def _fidelity(params: EditParams) -> str:
        if params.model in FIDELITY_FIXED_HIGH:
            if params.input_fidelity is not None:
                raise InvalidRequest(
                    f"input_fidelity is not supported by '{params.model}': it always processes inputs at "
                    "high fidelity. Omit the parameter.",
                    param="input_fidelity",
                    code="unsupported_parameter",
                )
            return "high"
        if params.model in FIDELITY_LOW_ONLY and params.input_fidelity == "high":
            raise InvalidRequest(
                f"Invalid value: 'high'. '{params.model}' supports input_fidelity 'low' only.",
                param="input_fidelity",
            )
        return params.input_fidelity or "low"

    async def generate(
        self, params: GenerateParams, on_progress: ProgressCallback | None = None, caller: Caller = ANONYMOUS
    ) -> GenerateResult:
        return await self.run(await self.prepare("images.generations", params, caller=caller), on_progress)

    async def edit(
        self, params: EditParams, on_progress: ProgressCallback | None = None, caller: Caller = ANONYMOUS
    ) -> GenerateResult:
        return await self.run(
            await self.prepare(self.endpoint_of(params), params, caller=caller), on_progress
        )

    @staticmethod
    def endpoint_of(params: GenerateParams) -> str:
        if isinstance(params, EditParams):
            return "images.variations" if params.variation else "images.edits"
        return "images.generations"

    async def prepare(
        self, endpoint: str, params: GenerateParams, previews: int = 0, caller: Caller = ANONYMOUS
    ) -> Planned:
        """Admit a request before any compute: moderation, validation and plan, price, budgets, the images
        rate limit. A refusal is recorded in the ledger (at zero cost), then raised. The request's deadline
        starts now."""
        # The server's limit is a ceiling: a request may shorten its deadline, never extend it.
        limits = [t for t in (params.deadline_s, self.default_timeout_s) if t is not None]
        timeout = min(limits) if limits else None
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.queue.full:
            # Refused at once, before any planning: under a burst, even a thread hop is a wait. The refusal is
            # recorded in the background.
            full = self.queue.queue_full_error()
            refusal = QueueFullError(str(full), full.retry_after)
            self._keep(
                asyncio.ensure_future(
                    asyncio.to_thread(self._record_rejected, endpoint, params, refusal, caller)
                )
            )
            raise refusal
        try:
            if params.prompt:
                self.ops.moderation.screen(params.prompt, params.moderation)
            job, quality = await asyncio.to_thread(self.plan, params)
            image_tokens = sum(input_image_tokens(*im.size) for im in job.edit.images) if job.edit else 0
            cost = images_cost(
                self.ops.prices, quality, job.width, job.height, len(job.seeds), image_tokens, previews
            )
            warnings, reservation = await asyncio.to_thread(
                self.ops.budgets.admit, caller, cost, len(job.seeds)
            )
            try:
                self.ops.take_images(caller, len(job.seeds))
            except ServiceError:
                if reservation is not None:
                    reservation.release()
                raise
        except ServiceError as exc:
            self.ops.metrics.refusals.labels(exc.code or exc.type).inc()
            await asyncio.to_thread(self._record_rejected, endpoint, params, exc, caller)
            raise
        return Planned(
            endpoint,
            params,
            replace(job, previews=previews),
            quality,
            caller=caller,
            cost_usd=cost,
            budget_warnings=tuple(warnings),
            reservation=reservation,
            deadline=deadline,
            cache_key=self._cache_key(endpoint, params, job) if previews == 0 else None,
        )

    def _cache_key(self, endpoint: str, params: GenerateParams, job: RenderJob) -> str | None:
        """Key of the result cache: a hash of every input that decides the pixels (the resolved model, plan,
        size, seeds, output encoding, uploads' bytes). Only requests with an explicit seed are cacheable."""
        if not self.result_cache or params.cache is False or params.seed is None:
            return None
        return result_cache_key(endpoint, params, job)

    async def stream(
        self, planned: Planned, stop: asyncio.Event | None = None
    ) -> AsyncIterator[PartialImage | GenerateResult]:
        """Run a planned request, yielding its partial images as the engine previews them, then the result.
        Setting `stop` (the client went away) or closing the iterator early cancels the job."""
        loop = asyncio.get_running_loop()
        previews: asyncio.Queue[Image.Image] = asyncio.Queue()
        job = planned.job

        def on_progress(progress: Progress) -> None:
            # Runs on the engine's worker: hand the preview over and let denoising go on at once.
            if progress.preview is not None:
                planned.partials_sent += 1
                loop.call_soon_threadsafe(previews.put_nowait, progress.preview)

        async def partial(index: int, preview: Image.Image) -> PartialImage:
            data = await asyncio.to_thread(
                encode, preview, job.output_format, job.output_compression, fast=True
            )
            return PartialImage(index, data)

        sent = 0

        task = asyncio.ensure_future(self.run(planned, on_progress))
        # Held until it has recorded its end, even if the stream is abandoned first.
        self._keep(task)
        stopper = asyncio.ensure_future((stop or asyncio.Event()).wait())
        getter: asyncio.Future[Image.Image] | None = None
        try:
            while not task.done():
                getter = asyncio.ensure_future(previews.get())
                await asyncio.wait({getter, task, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper.done():
                    getter.cancel()
                    return
                if getter.done():
                    yield await partial(sent, getter.result())
                    sent += 1
                else:
                    getter.cancel()
            while not previews.empty():
                yield await partial(sent, previews.get_nowait())
                sent += 1
            yield task.result()
        finally:
            stopper.cancel()
            if getter is not None:
                getter.cancel()
            if not task.done():
                task.cancel()  # it records itself as cancelled; `self._tasks` keeps it alive until then

    async def run(self, planned: Planned, on_progress: ProgressCallback | None = None) -> GenerateResult:
        started = time.perf_counter()
        endpoint, params, job, quality = planned.endpoint, planned.params, planned.job, planned.quality
        cached = None
        if planned.cache_key is not None:
            cached = await asyncio.to_thread(self.store.find_cached, planned.cache_key, planned.caller.key_id)
        try:
            record = await asyncio.to_thread(self._record_params, params, job, quality)
            if cached is not None:
                record["cache_hit_of"] = cached.id
            request_id = await asyncio.to_thread(
                functools.partial(
                    self.store.create_request,
                    endpoint,
                    params.model,
                    record,
                    params.effective_user,
                    api_key_id=planned.caller.key_id,
                    size=f"{job.width}x{job.height}",
                    quality=quality,
                    image_count=len(job.seeds),
                    cost_usd=planned.cost_usd,
                    cache_key=planned.cache_key,
                )
            )
        finally:
            # The ledger row now counts the cost (or the request never started).
            if planned.reservation is not None:
                planned.reservation.release()
        unbilled: dict[str, Any] = {"cost_usd": 0.0, "image_count": 0, "seed": job.seeds[0]}
        if cached is not None:
            return await self._serve_cached(request_id, planned, cached, started)
        try:
            result = await self._run_with_fallback(request_id, planned, on_progress)  # may swap planned.job
        except ServiceError as exc:
            await asyncio.to_thread(
                functools.partial(
                    self.store.finish_request, request_id, "failed", error=exc.to_error(), **unbilled
                )
            )
            raise
        except (asyncio.CancelledError, Cancelled):
            # Shielded: a second cancellation must not stop the record of the first.
            await asyncio.shield(
                asyncio.to_thread(
                    functools.partial(self.store.finish_request, request_id, "cancelled", **unbilled)
                )
            )
            raise
        timings = {**result.timings, "total_s": time.perf_counter() - started}
        local_cost = self.ops.local.cost(timings["total_s"], timings.get("cpu_s", 0.0))
        cache = "off" if planned.cache_key is None else "miss"
        return await self._complete(request_id, planned, result.images, timings, local_cost, cache)

    async def _serve_cached(
        self, request_id: str, planned: Planned, cached: RequestView, started: float
    ) -> GenerateResult:
        """A result-cache hit: the earlier request's images under this new request, no compute. The ledger
        row keeps the hosted-equivalent cost (what the hosted API would charge for the same answer) and a
        local cost of zero."""
        job = planned.job
        rendered = [
            RenderedImage(
                await asyncio.to_thread(self.store.read_image_bytes, image.id),
                image.format,
                image.width,
                image.height,
                image.seed if image.seed is not None else job.seeds[image.index],
            )
            for image in cached.images
        ]
        timings = {"cache_hit": 1.0, "total_s": time.perf_counter() - started}
        return await self._complete(request_id, planned, rendered, timings, 0.0, "hit")

    async def _complete(
        self,
        request_id: str,
        planned: Planned,
        rendered: list[RenderedImage],
        timings: dict[str, float],
        local_cost: float,
        cache: str,
    ) -> GenerateResult:
        """Store the images (rendered now or taken from the result cache), close the ledger row as succeeded
        and build the answer."""
        params, job, quality = planned.params, planned.job, planned.quality
        images = await asyncio.to_thread(self._save_images, request_id, rendered)
        image_tokens = sum(input_image_tokens(*im.size) for im in job.edit.images) if job.edit else 0
        usage = images_usage(
            params.prompt, quality, job.width, job.height, len(images), image_tokens, planned.partials_sent
        )
        wall_s, cpu_s = timings["total_s"], timings.get("cpu_s", 0.0)
        await asyncio.to_thread(
            functools.partial(
                self.store.finish_request,
                request_id,
                "succeeded",
                timings=timings,
                usage=usage,
                seed=job.seeds[0],
                local_cost_usd=local_cost,
                wall_s=wall_s,
                cpu_s=cpu_s,
            )
        )
        if cache != "hit":
            self.ops.metrics.observe_images(
                job.model.name, quality, wall_s, len(images), usage, planned.cost_usd, local_cost
            )
        return GenerateResult(
            request_id=request_id,
            created=int(time.time()),
            model=params.model,
            images=images,
            background="opaque",
            output_format=job.output_format,
            quality=quality,
            size=f"{job.width}x{job.height}",
            usage=usage,
            safety_identifier=params.effective_user,
            timings=timings,
            cost_usd=planned.cost_usd,
            local_cost_usd=local_cost,
            cache=cache,
        )

    async def _run_with_fallback(
        self, request_id: str, planned: Planned, on_progress: ProgressCallback | None
    ) -> RenderResult:
        """Render; an engine failure (model fails to load, out of memory, ...) is retried once on the
        catalog's fallback model and recorded, instead of failing the request."""
        job = planned.job
        try:
            return await self._run(request_id, job, planned.deadline, on_progress)
        except EngineFailure as exc:
            fallback = self._fallback_job(job, planned.quality)
            if fallback is None:
                raise
            await asyncio.to_thread(
                self.store.record_fallback, request_id, job.model.name, fallback.model.name, exc.message
            )
            planned.job = fallback
            return await self._run(request_id, fallback, planned.deadline, on_progress)

    def _fallback_job(self, job: RenderJob, quality: str) -> RenderJob | None:
        name = job.model.fallback
        spec = self.catalog.resolve(name) if name else None
        if spec is None or spec.name == job.model.name:
            return None
        plan = spec.plans.get(quality) or spec.plan("high")
        if job.plan.steps != job.model.plan(quality).steps:  # an explicit `steps` override
            plan = replace(plan, steps=job.plan.steps)
        if job.plan.guidance != job.model.plan(quality).guidance:
            plan = replace(plan, guidance=job.plan.guidance)
        return replace(job, model=spec, plan=plan)

    async def _run(
        self,
        request_id: str,
        job: RenderJob,
        deadline: float | None,
        on_progress: ProgressCallback | None,
    ) -> RenderResult:
        def started() -> None:  # on the engine's worker, as the job leaves the queue
            self.store.mark_running(request_id, resolved_model=job.model.name, seed=job.seeds[0])

        try:
            handle = self.queue.submit(job, on_progress, on_start=started, deadline=deadline)
        except QueueFull as exc:
            raise QueueFullError(str(exc), exc.retry_after) from exc
        except ShuttingDown as exc:
            raise Overloaded(str(exc), code="shutting_down") from exc
        try:
            await asyncio.to_thread(self.store.mark_queued, request_id, handle.position, job.model.name)
            return await self._await_job(handle, deadline)
        except asyncio.CancelledError:
            handle.cancel()
            task = asyncio.current_task()
            if task is not None and task.cancelling() == 0:
                # Not our task being cancelled: the scheduler dropped the job because it is stopping.
                raise Overloaded("The server is shutting down.", code="shutting_down") from None
            raise
        except DeadlineExceeded as exc:
            raise _deadline_error() from exc
        except ModelLoadError as exc:
            raise EngineFailure(str(exc), code="model_unavailable") from exc
        except (Cancelled, ServiceError):
            raise
        except Exception as exc:
            raise EngineFailure(f"The engine failed while rendering: {exc}") from exc

    @staticmethod
    async def _await_job(handle: JobHandle, deadline: float | None) -> RenderResult:
        future = asyncio.wrap_future(handle.future)
        if deadline is None:
            return await future
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            handle.cancel()  # a running job stops after its current denoising step
            future.add_done_callback(_retrieve)  # nobody awaits it any more: no "never retrieved" warning
            raise DeadlineExceeded() from None

    def _keep(self, task: asyncio.Future[Any]) -> None:
        """The event loop keeps only weak references to tasks: hold one until it is done."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _record_rejected(
        self, endpoint: str, params: GenerateParams, exc: ServiceError, caller: Caller = ANONYMOUS
    ) -> None:
        """A request refused before any compute is still recorded, with its error, at zero cost."""
        request_id = self.store.create_request(
            endpoint, params.model, _plain_fields(params), params.effective_user, api_key_id=caller.key_id
        )
        self.store.finish_request(request_id, "failed", error=exc.to_error())

    def _record_params(self, params: GenerateParams, job: RenderJob, quality: str) -> dict[str, Any]:
        """What the request record keeps: the request as sent (uploads as blob keys) and what it
        resolved to."""
        record = _plain_fields(params)
        if isinstance(params, EditParams):
            record["input_images"] = [self.store.blobs.put(data, "bin") for data in params.images]
            if params.mask is not None:
                record["mask"] = self.store.blobs.put(params.mask, "bin")
        record["resolved"] = {
            "model": job.model.name,
            "quality": quality,
            "size": f"{job.width}x{job.height}",
            "steps": job.plan.steps,
            "guidance": job.plan.guidance,
            "scheduler": job.plan.scheduler,
            "seeds": list(job.seeds),
        }
        if job.edit is not None:
            record["resolved"]["strength"] = job.edit.strength
            record["resolved"]["input_fidelity"] = job.edit.input_fidelity
        return record

    def _save_images(self, request_id: str, rendered: list[RenderedImage]) -> list[GeneratedImage]:
        out = []
        for index, image in enumerate(rendered):
            image_id = self.store.add_image(
                request_id, index, image.data, image.format, image.width, image.height, image.seed
            )
            out.append(GeneratedImage(image.data, image.seed, image_id))
        return out


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _deadline_error() -> DeadlineExceededError:
    return DeadlineExceededError(
        "The request did not finish within its deadline and was stopped. Raise 'deadline_s' (up to the "
        "server's GOUACHE_REQUEST_TIMEOUT_S), or ask for fewer steps, a smaller size or fewer images.",
        param="deadline_s",
    )


def result_cache_key(endpoint: str, params: GenerateParams, job: RenderJob) -> str:
    """SHA-256 over the endpoint, the resolved job (model name and folder, plan, size, seeds, prompts,
    output encoding) and, for edits, the uploads' bytes and edit settings."""
    digest = hashlib.sha256()
    inputs: dict[str, Any] = {
        "v": 1,
        "endpoint": endpoint,
        "model": job.model.name,
        "path": str(job.model.path),
        "weights": _model_fingerprint(str(job.model.path)),
        "upscaler": job.model.upscaler,
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "plan": dataclasses.asdict(job.plan),
        "size": [job.width, job.height],
        "seeds": list(job.seeds),
        "format": [job.output_format, job.output_compression],
    }
    if isinstance(params, EditParams):
        inputs["edit"] = {
            "images": [hashlib.sha256(data).hexdigest() for data in params.images],
            "mask": None if params.mask is None else hashlib.sha256(params.mask).hexdigest(),
            "strength": job.edit.strength if job.edit else None,
            "input_fidelity": job.edit.input_fidelity if job.edit else None,
            "variation": params.variation,
        }
    digest.update(json.dumps(inputs, sort_keys=True, default=str).encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _model_fingerprint(path: str) -> str:
    """Names, sizes and modification times of a model folder's files (once per process and folder): weights
    replaced in place give new cache keys after a restart, which is also when the server loads them."""
    root = Path(path)
    if not root.is_dir():
        return ""
    files = [f for f in root.rglob("*") if f.is_file()]
    entries = sorted(f"{f.relative_to(root)}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def _plain_fields(params: GenerateParams) -> dict[str, Any]:
    """The request's JSON-able fields (uploads are recorded separately, as blobs)."""
    return {
        k: v
        for k, v in params.__dict__.items()
        if v is not None and k not in ("images", "mask") and v is not False
    }
