"""Wire types of OpenAI's Models API (`/v1/models`), with Gouache's extension fields."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "gouache"
    root: str | None = Field(default=None, description="Extension: the catalog model serving this name.")
    family: str | None = Field(default=None, description="Extension: diffusers model family.")
    qualities: list[str] | None = Field(default=None, description="Extension: quality tiers it serves.")
    # Extensions present while the model is loaded (see gouache.engine.devices):
    device: str | None = Field(default=None, description="Extension: cpu, cuda:N or mps, while loaded.")
    dtype: str | None = Field(default=None, description="Extension: float32, float16 or bfloat16.")
    backend: str | None = Field(default=None, description="Extension: the denoiser's backend.")
    memory: dict[str, Any] | None = Field(
        default=None, description="Extension: memory strategy (offload, attention_slicing, vae_tiling)."
    )
    memory_mb: float | None = Field(default=None, description="Extension: memory its weights take.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]
