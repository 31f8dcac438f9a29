"""`/v1/models`: what the catalog serves, under its names and aliases."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from gouache.api.deps import services
from gouache.api.protocol.common import ERROR_RESPONSES
from gouache.api.protocol.models import Model, ModelList
from gouache.service.container import Services
from gouache.service.errors import ModelNotFound

router = APIRouter(prefix="/v1/models", tags=["models"])

_CREATED = 1_767_225_600  # 2026-01-01: the catalog has no creation dates; a fixed one keeps answers stable


def _model(svc: Services, name: str, loaded: dict[str, dict[str, Any]]) -> Model | None:
    """The wire model served under `name`; device, dtype, backend and memory while it is loaded."""
    spec = svc.catalog.resolve(name)
    if spec is None:
        return None
    return Model(
        id=name,
        created=_CREATED,
        root=spec.name,
        family=spec.family,
        qualities=list(spec.qualities),
        **loaded.get(spec.name, {}),
    )


@router.get("", response_model=ModelList, response_model_exclude_none=True, responses=ERROR_RESPONSES)
async def list_models(svc: Services = Depends(services)) -> ModelList:
    loaded = svc.cache.describe()
    models = [_model(svc, name, loaded) for name in svc.catalog.names()]
    return ModelList(data=[m for m in models if m is not None])


@router.get(
    "/{model_id:path}", response_model=Model, response_model_exclude_none=True, responses=ERROR_RESPONSES
)
async def get_model(model_id: str, svc: Services = Depends(services)) -> Model:
    model = _model(svc, model_id, svc.cache.describe())
    if model is None:
        raise ModelNotFound(f"The model '{model_id}' does not exist.", param="model")
    return model
