"""`/health`: liveness plus what is loaded and queued."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from gouache import __version__
from gouache.api.deps import services
from gouache.service.container import Services

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(svc: Services = Depends(services)) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "default_model": svc.default_model.name,
        "models_loaded": svc.cache.loaded(),
        "queue_depth": svc.scheduler.depth,
    }
