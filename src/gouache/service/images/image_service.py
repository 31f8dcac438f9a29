"""The image use case, as a short sequence of steps: prepare (queue, moderation, OpenAI's rules and the engine
job, price, admission) before any compute, then run (result cache, ledger row, render on the engine, store
the images, answer). Each step's knowledge lives in its own module: `rules.py`, `result_cache.py`,
`dispatch.py`, `records.py`, and `Operations` for money and limits."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from PIL import Image

from gouache.engine.catalog import Catalog, ModelSpec
from gouache.engine.client import EngineClient
from gouache.engine.finish import encode
from gouache.engine.jobs import Progress, ProgressCallback, RenderedImage
from gouache.engine.outputs import ProvenanceKeys
from gouache.engine.runner import Cancelled
from gouache.service.access import ANONYMOUS, Caller
from gouache.service.errors import ServiceError
from gouache.service.images import records, result_cache
from gouache.service.images.dispatch import Dispatcher
from gouache.service.images.result_cache import CPU_FLOAT32
from gouache.service.images.rules import OutputDefaults, build_job, edit_image_tokens, endpoint_of
from gouache.service.images.types import (
    EditParams,
    GenerateParams,
    GenerateResult,
    PartialImage,
    PreparedRequest,
)
from gouache.service.operations import Operations
from gouache.service.policies.pricing import images_cost
from gouache.service.usage import images_usage
from gouache.store import Store


class ImageService:
    def __init__(
        self,
        catalog: Catalog,
        queue: EngineClient,
        store: Store,
        ops: Operations,
        *,
        render_memory_bytes: int | None = None,
        default_timeout_s: float | None = None,
        result_cache: bool = True,
        provenance: ProvenanceKeys | None = None,
        metadata: bool = True,
        placement: Callable[[ModelSpec], tuple[str, str]] | None = None,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.ops = ops
        self.engine = Dispatcher(catalog, queue, store, default_timeout_s)
        self.render_memory_bytes = render_memory_bytes
        self.result_cache = result_cache
        #: The finishing pipeline's switches for every job: C2PA keys (None: off), parameters in the file.
        self.outputs = OutputDefaults(provenance, metadata)
        #: Where a model renders, (device, dtype), resolved without loading it (ModelCache.device_and_dtype).
        self.placement = placement or (lambda spec: CPU_FLOAT32)
        self._tasks: set[asyncio.Future[Any]] = set()

    async def generate(
        self, params: GenerateParams, on_progress: ProgressCallback | None = None, caller: Caller = ANONYMOUS
    ) -> GenerateResult:
        return await self.run(await self.prepare(params, caller=caller), on_progress)

    async def edit(
        self, params: EditParams, on_progress: ProgressCallback | None = None, caller: Caller = ANONYMOUS
    ) -> GenerateResult:
        return await self.run(await self.prepare(params, caller=caller), on_progress)

    async def prepare(
        self,
        params: GenerateParams,
        previews: int = 0,
        caller: Caller = ANONYMOUS,
        batch_id: str | None = None,
    ) -> PreparedRequest:
        """Admit a request before any compute, or raise why not. A refusal is recorded in the ledger (at
        zero cost), then raised. The request's deadline starts now. A Batch API line (`batch_id`) is priced
        at the batch price, counted in the batch rate-limit windows and rendered in the batch lane."""
        endpoint = endpoint_of(params)
        deadline = self.engine.deadline(params.deadline_s)
        # 1. A full queue refuses at once, before any other work: under a burst, even a thread hop is a wait.
        #    The refusal is recorded in the background.
        refusal = self.engine.queue_full()
        if refusal is not None:
            self._keep(
                asyncio.ensure_future(
                    asyncio.to_thread(records.record_rejected, self.store, endpoint, params, refusal, caller)
                )
            )
            raise refusal
        try:
            # 2. Moderation.
            if params.prompt:
                self.ops.moderation.screen(params.prompt, params.moderation)
            # 3. OpenAI's rules, and the engine job they give.
            job, quality = await asyncio.to_thread(
                build_job, self.catalog, params, self.render_memory_bytes, self.outputs
            )
            # 4. The hosted-equivalent price.
            n = len(job.seeds)
            cost = images_cost(
                self.ops.prices, quality, job.width, job.height, n, edit_image_tokens(job), previews
            )
            if batch_id is not None:
                cost = round(cost * self.ops.prices.batch_discount, 8)
            # 5. Admission: budgets and the images limit.
            admission = await asyncio.to_thread(self.ops.admit, caller, cost, n, batch_id is not None)
        except ServiceError as exc:
            self.ops.metrics.refusals.labels(exc.code or exc.type).inc()
            if batch_id is not None and exc.status == 429 and exc.code == "rate_limit_exceeded":
                raise  # a batch line waits its turn and tries again: not a refusal for the ledger
            await asyncio.to_thread(
                records.record_rejected, self.store, endpoint, params, exc, caller, batch_id
            )
            raise
        # Streamed requests (previews) need the denoising: never served from the cache.
        key = None
        if previews == 0:
            placement = self.placement(job.model)
            key = result_cache.cache_key(self.result_cache, endpoint, params, job, placement)
        return PreparedRequest(
            endpoint,
            params,
            replace(job, previews=previews),
            quality,
            caller=caller,
            cost_usd=cost,
            admission=admission,
            deadline=deadline,
            cache_key=key,
            batch_id=batch_id,
        )

    async def run(
        self, prepared: PreparedRequest, on_progress: ProgressCallback | None = None
    ) -> GenerateResult:
        """Serve a prepared request from the result cache or render it, recording it from start to end."""
        started = time.perf_counter()
        # 1. The result cache.
        hit = await result_cache.lookup(self.store, prepared.cache_key, prepared.caller.key_id)
        # 2. The ledger row: from now on it counts the cost (or the request never started).
        try:
            request_id = await asyncio.to_thread(
                records.open_request, self.store, prepared, hit.id if hit is not None else None
            )
        finally:  # a shared budget's hold is a database row: off the event loop
            await asyncio.to_thread(prepared.admission.release)
        # 3a. A hit: the earlier request's images under this new request, no compute. The ledger row keeps
        #     the hosted-equivalent cost (what the hosted API would charge for the same answer), and a
        #     local cost of zero.
        if hit is not None:
            rendered = await asyncio.to_thread(result_cache.cached_images, self.store, hit, prepared.job)
            timings = {"cache_hit": 1.0, "total_s": time.perf_counter() - started}
            return await self._complete(request_id, prepared, rendered, timings, 0.0, "hit")
        # 3b. Render on the engine (on the fallback model if the first one fails).
        unbilled: dict[str, Any] = {"cost_usd": 0.0, "image_count": 0, "seed": prepared.job.seeds[0]}
        try:
            prepared.job, result = await self.engine.render(
                request_id,
                prepared.job,
                prepared.quality,
                prepared.deadline,
                on_progress,
                "batch" if prepared.batch_id is not None else "interactive",
            )
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
        await asyncio.to_thread(records.record_engine, self.store, request_id, result)
        timings = {**result.timings, "total_s": time.perf_counter() - started}
        local_cost = self.ops.local.cost(timings["total_s"], timings.get("cpu_s", 0.0))
        cache = "off" if prepared.cache_key is None else "miss"
        return await self._complete(request_id, prepared, result.images, timings, local_cost, cache)

    async def _complete(
        self,
        request_id: str,
        prepared: PreparedRequest,
        rendered: list[RenderedImage],
        timings: dict[str, float],
        local_cost: float,
        cache: str,
    ) -> GenerateResult:
        """4. Store the images (rendered now or taken from the result cache), close the ledger row as
        succeeded and build the answer."""
        params, job, quality = prepared.params, prepared.job, prepared.quality
        images = await asyncio.to_thread(records.save_images, self.store, request_id, rendered)
        usage = images_usage(
            params.prompt,
            quality,
            job.width,
            job.height,
            len(images),
            edit_image_tokens(job),
            prepared.partials_sent,
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
                job.model.name, quality, wall_s, len(images), usage, prepared.cost_usd, local_cost
            )
        return GenerateResult(
            request_id=request_id,
            created=int(time.time()),
            model=params.model,
            images=images,
            background=job.outputs.background,
            output_format=job.output_format,
            quality=quality,
            size=f"{job.width}x{job.height}",
            usage=usage,
            safety_identifier=params.effective_user,
            timings=timings,
            cost_usd=prepared.cost_usd,
            local_cost_usd=local_cost,
            cache=cache,
        )

    async def stream(
        self, prepared: PreparedRequest, stop: asyncio.Event | None = None
    ) -> AsyncIterator[PartialImage | GenerateResult]:
        """`run`, yielding the partial images as the engine previews them, then the result. Setting `stop`
        (the client went away) or closing the iterator early cancels the job."""
        loop = asyncio.get_running_loop()
        previews: asyncio.Queue[Image.Image] = asyncio.Queue()
        job = prepared.job

        def on_progress(progress: Progress) -> None:
            # Runs on the engine's worker: hand the preview over and let denoising go on at once.
            if progress.preview is not None:
                prepared.partials_sent += 1
                loop.call_soon_threadsafe(previews.put_nowait, progress.preview)

        async def partial(index: int, preview: Image.Image) -> PartialImage:
            data = await asyncio.to_thread(
                encode, preview, job.output_format, job.output_compression, fast=True
            )
            return PartialImage(index, data)

        sent = 0

        task = asyncio.ensure_future(self.run(prepared, on_progress))
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

    def _keep(self, task: asyncio.Future[Any]) -> None:
        """The event loop keeps only weak references to tasks: hold one until it is done."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
