"""`/health`: liveness plus what is loaded and queued."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from gouache import __version__
from gouache.api.deps import services
from gouache.api.protocol.common import ERROR_RESPONSES
from gouache.service.container import Services

router = APIRouter(tags=["health"])


@router.get("/health", responses=ERROR_RESPONSES)
async def health(svc: Services = Depends(services)) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "default_model": svc.default_model.name,
        "models_loaded": svc.cache.loaded(),
        "model_backends": svc.cache.backends(),
        # Per loaded model: device, dtype, backend, memory strategy and size (gouache.engine.devices).
        "models": svc.cache.describe(),
        "device": svc.cache.default_device(),
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
