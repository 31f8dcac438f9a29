"""Wire types of OpenAI's Models API (`/v1/models`), with Gouache's extension fields."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "gouache"
    root: str | None = Field(default=None, description="Extension: the catalog model serving this name.")
    family: str | None = Field(default=None, description="Extension: diffusers model family.")
    qualities: list[str] | None = Field(default=None, description="Extension: quality tiers it serves.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]
