"""What the engine is asked to do and what it gives back: plain data, no HTTP, no OpenAI JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from gouache.engine.catalog import ModelSpec, SamplingPlan
from gouache.engine.edits import EditInputs


@dataclass(frozen=True)
class RenderJob:
    """Text-to-image: `len(seeds)` images of exactly `width x height`, one per seed."""

    model: ModelSpec
    prompt: str
    plan: SamplingPlan
    width: int
    height: int
    seeds: tuple[int, ...]
    output_format: str = "png"
    output_compression: int = 100
    negative_prompt: str | None = None
    #: Image-to-image, inpainting, outpainting or several references; None for text-to-image.
    edit: EditInputs | None = None
    #: Previews of the first image to send while it denoises (streamed partial images), 0-3.
    previews: int = 0


@dataclass(frozen=True)
class RenderedImage:
    data: bytes
    format: str
    width: int
    height: int
    seed: int


@dataclass
class RenderResult:
    images: list[RenderedImage]
    working_size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """One denoising step finished: image `image_index` of the job (and the `images - 1` after it, when they
    denoise together in a batch), step `step` of `total_steps`; at the steps chosen for previews, `preview`
    is the first image so far, at the output size."""

    image_index: int
    step: int
    total_steps: int
    preview: Image.Image | None = None
    #: Images of the job that denoise together and reached `step` with this event (a batch: all of them).
    images: int = 1


ProgressCallback = Callable[[Progress], None]
