"""What the store keeps of an image request: the request as sent (uploads as blob keys) and what it resolved
to, the images, and the refusals (a request refused before any compute is still a ledger row, at zero cost).
Blocking store calls: the image service runs them off the event loop."""

from __future__ import annotations

from typing import Any

from gouache.engine.jobs import RenderedImage, RenderResult
from gouache.service.access import ANONYMOUS, Caller
from gouache.service.errors import ServiceError
from gouache.service.images.types import EditParams, GeneratedImage, GenerateParams, PreparedRequest
from gouache.store import Store


def record_rejected(
    store: Store,
    endpoint: str,
    params: GenerateParams,
    exc: ServiceError,
    caller: Caller = ANONYMOUS,
    batch_id: str | None = None,
) -> None:
    """A request refused before any compute is still recorded, with its error, at zero cost."""
    request_id = store.create_request(
        endpoint,
        params.model,
        plain_fields(params),
        params.effective_user,
        api_key_id=caller.key_id,
        batch_id=batch_id,
    )
    store.finish_request(request_id, "failed", error=exc.to_error())


def open_request(store: Store, prepared: PreparedRequest, cache_hit_of: str | None) -> str:
    """The ledger row of an admitted request, with its cost: from now on budgets count it there."""
    params, job = prepared.params, prepared.job
    record = request_record(store, prepared)
    if cache_hit_of is not None:
        record["cache_hit_of"] = cache_hit_of
    return store.create_request(
        prepared.endpoint,
        params.model,
        record,
        params.effective_user,
        api_key_id=prepared.caller.key_id,
        size=f"{job.width}x{job.height}",
        quality=prepared.quality,
        image_count=len(job.seeds),
        cost_usd=prepared.cost_usd,
        cache_key=prepared.cache_key,
        batch_id=prepared.batch_id,
    )


def request_record(store: Store, prepared: PreparedRequest) -> dict[str, Any]:
    """What the request record keeps: the request as sent (uploads as blob keys) and what it
    resolved to."""
    params, job = prepared.params, prepared.job
    record = plain_fields(params)
    if isinstance(params, EditParams):
        record["input_images"] = [store.blobs.put(data, "bin") for data in params.images]
        if params.mask is not None:
            record["mask"] = store.blobs.put(params.mask, "bin")
        if params.markup is not None:
            record["markup"] = store.blobs.put(params.markup, "bin")
    record["resolved"] = {
        "model": job.model.name,
        "quality": prepared.quality,
        "size": f"{job.width}x{job.height}",
        "steps": job.plan.steps,
        "guidance": job.plan.guidance,
        "scheduler": job.plan.scheduler,
        "seeds": list(job.seeds),
        "loras": [{"name": c.name, "scale": c.scale} for c in job.loras],
    }
    if job.edit is not None:
        record["resolved"]["strength"] = job.edit.strength
        record["resolved"]["input_fidelity"] = job.edit.input_fidelity
    return record


def record_engine(store: Store, request_id: str, result: RenderResult) -> None:
    """Where the request rendered (on a cluster: which replica and node) and which memory-saving measures it
    used (engine.devices), kept in its record's `resolved` beside the model and plan, for operators
    (`/v1/gouache/history`); and what the model understood of the prompt per image (gouache-mini's
    `revised_prompt`), so that a result-cache hit answers with it too."""
    resolved: dict[str, Any] = {
        "device": result.device,
        "dtype": result.dtype,
        "memory": list(result.memory),
        **({"placement": result.placement} if result.placement else {}),
    }
    revised = [image.revised_prompt for image in result.images]
    if any(r is not None for r in revised):
        resolved["revised_prompts"] = revised
    store.record_resolved(request_id, resolved)


def save_images(store: Store, request_id: str, rendered: list[RenderedImage]) -> list[GeneratedImage]:
    """Store a request's images (rendered now or taken from the result cache) in order."""
    out = []
    for index, image in enumerate(rendered):
        image_id = store.add_image(
            request_id, index, image.data, image.format, image.width, image.height, image.seed
        )
        out.append(GeneratedImage(image.data, image.seed, image_id, image.revised_prompt))
    return out


def plain_fields(params: GenerateParams) -> dict[str, Any]:
    """The request's JSON-able fields (uploads are recorded separately, as blobs)."""
    return {
        k: v
        for k, v in params.__dict__.items()
        if v is not None and k not in ("images", "mask", "markup") and v is not False
    }
