"""What goes into the image service and what comes out: a request's parameters after wire-level validation,
the prepared request that travels from admission to the engine, and the results and streamed partial images.
Plain data, no behaviour beyond OpenAI's field rules, so the API, the Responses service and the CLI can build
and read them without touching the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gouache.engine.jobs import RenderJob
from gouache.service.access import ANONYMOUS, Caller
from gouache.service.operations import Admission


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
    #: GIF output: frames (2-16, default 9) and each frame's duration (ms, rounded to 10, default 200).
    frame_count: int | None = None
    frame_duration_ms: int | None = None
    #: SVG output options as sent (`{model, reasoning: {effort}}`); the tracing takes no model.
    svg: dict[str, Any] | None = None
    #: Extension: False skips the result cache (a request with a seed is otherwise served from the store
    #: when an identical one already ran).
    cache: bool | None = None
    #: Extension: the catalog LoRA adapters to apply, as sent (a list of ``{"name", "scale"?}``; checked by
    #: `rules.resolve_loras`). None: the model's default adapters; an empty list: none.
    loras: Any = None

    @property
    def effective_user(self) -> str | None:
        """OpenAI's rule: a non-empty `safety_identifier` wins over `user`."""
        return self.safety_identifier or self.user or None


@dataclass(frozen=True)
class EditParams(GenerateParams):
    """An edit (or, with `variation=True`, a variation): the uploads plus the generation fields."""

    images: tuple[bytes, ...] = ()
    mask: bytes | None = None
    #: A transparent PNG drawn over the first image: what it covers is repainted (never with `mask`).
    markup: bytes | None = None
    strength: float | None = None
    input_fidelity: str | None = None
    variation: bool = False


@dataclass
class PreparedRequest:
    """A request admitted before any compute, with its engine job: ready to run (or to stream)."""

    endpoint: str
    params: GenerateParams
    job: RenderJob
    quality: str
    partials_sent: int = 0
    caller: Caller = ANONYMOUS
    #: Hosted-equivalent dollars, known before any compute (size, quality, n, inputs, partial images).
    cost_usd: float = 0.0
    #: The budgets' soft-limit warnings and the cost held against them until the ledger row is written.
    admission: Admission = field(default_factory=Admission)
    #: `time.monotonic()` by which the request must be answered; None for no deadline.
    deadline: float | None = None
    #: The result-cache key (every input hashed) when the request may be served from the store, else None.
    cache_key: str | None = None
    #: The Batch API batch this request is a line of (the engine's low-priority lane, the batch price).
    batch_id: str | None = None


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    seed: int
    image_id: str
    #: What the model understood the prompt as (gouache-mini); None: the model returns none (as OpenAI's GPT
    #: image models omit it).
    revised_prompt: str | None = None


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
