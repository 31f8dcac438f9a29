"""`/health`: liveness plus what is loaded and queued.

While the engine workers warm the default model up (load, OpenVINO conversion, a first render; see
:mod:`gouache.engine.warmup`) it answers **503** with ``"status": "warming"`` and a ``Retry-After``, then
**200** with ``"ok"``: load balancers and orchestrators (Kubernetes readiness probes, AWS target groups,
HAProxy, nginx) take any 2xx as ready and anything else as "send no traffic yet", which is what a warming
server wants. Requests that arrive anyway are not refused: they wait in the queue behind the warm-up. If the
warm-up failed, the answer is 503 with ``"status": "failed"`` and the reason under ``warm_up.errors``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from gouache import __version__
from gouache.api.deps import services
from gouache.api.protocol.common import ERROR_RESPONSES
from gouache.service.container import Services

router = APIRouter(tags=["health"])

#: Seconds a client is told to wait before asking a warming server again.
WARMING_RETRY_AFTER_S = 1


#: 503 here is not an error object: the same body as 200, with "status" "warming" or "failed".
HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    503: {
        "description": 'Not ready: "status" is "warming" (with `retry-after`) or "failed"; fields as 200',
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}


@router.get("/health", responses=HEALTH_RESPONSES)
async def health(response: Response, svc: Services = Depends(services)) -> dict[str, Any]:
    warm_up = svc.queue.warm_report()
    status = "ok"
    if svc.queue.warming:
        status = "warming"
        response.headers["Retry-After"] = str(WARMING_RETRY_AFTER_S)
    elif svc.queue.warm_failed(svc.default_model.name):
        status = "failed"
    if status != "ok":
        response.status_code = 503
    cluster = await svc.cluster() if svc.cluster is not None else None
    return {
        **({"cluster": cluster} if cluster is not None else {}),
        "status": status,
        "version": __version__,
        "default_model": svc.default_model.name,
        "models_loaded": svc.cache.loaded(),
        "model_backends": svc.cache.backends(),
        # Per loaded model: device, dtype, backend, memory strategy and size (gouache.engine.devices).
        "models": svc.cache.describe(),
        "device": svc.cache.default_device(),
        "warm_up": warm_up,
        "queue_depth": svc.queue.depth,
        "queue": {
            "running": svc.queue.running,
            "waiting": svc.queue.depth - svc.queue.running,
            "max_depth": svc.queue.max_queue,
            "workers": svc.queue.workers,
        },
        "model_memory_mb": {
            "used": round(svc.cache.used_bytes / 2**20, 1),
            "budget": round((svc.cache.budget_bytes or 0) / 2**20, 1),
        },
    }
