"""The Images API use case, one room per job:

* `types.py`: the request (`GenerateParams`, `EditParams`), the `PreparedRequest`, results and partials;
* `rules.py`: OpenAI's rules (model names, per-model and per-endpoint parameters, sizes, quality) and the
  engine job they build: pure, unit-testable without a server or an engine;
* `result_cache.py`: the cache key (with the model folder's fingerprint) and the lookup;
* `dispatch.py`: the engine's queue, deadlines, the fallback model, and engine errors as service errors;
* `records.py`: what the store keeps of a request;
* `image_service.py`: `ImageService`, the use case itself, as a short sequence of those steps.

The names other layers use are importable from here."""

from gouache.service.images.image_service import ImageService
from gouache.service.images.types import (
    EditParams,
    GeneratedImage,
    GenerateParams,
    GenerateResult,
    PartialImage,
    PreparedRequest,
)

__all__ = [
    "EditParams",
    "GenerateParams",
    "GenerateResult",
    "GeneratedImage",
    "ImageService",
    "PartialImage",
    "PreparedRequest",
]
