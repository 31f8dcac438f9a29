"""What the engine is asked to do and what it gives back: plain data, no HTTP, no OpenAI JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from gouache.engine.catalog import ModelSpec, SamplingPlan
from gouache.engine.lora import LoraChoice
from gouache.engine.outputs.options import OutputOptions

#: Most images an edit takes: the one edited and up to 15 references.
MAX_IMAGES = 16
#: How strongly an edit's first image dominates its references (see :mod:`gouache.engine.edits`).
FIDELITIES = ("high", "low")


@dataclass(frozen=True)
class EditInputs:
    """What an edit starts from.

    ``images``: 1-16 RGB(A) images; the first is the one edited, the rest are references.
    ``mask``: mode "L" (255 = repaint, 0 = keep; binarised at 128), the size of ``images[0]``; a mask with an
    alpha channel is read OpenAI-style (transparent = repaint). ``strength``: 0..1 for image-to-image only.
    ``input_fidelity``: "high" | "low", how strongly the first image dominates the extra references (see
    :mod:`gouache.engine.edits`)."""

    images: tuple[Image.Image, ...]
    mask: Image.Image | None
    strength: float
    input_fidelity: str = "high"

    def __post_init__(self) -> None:
        if not 1 <= len(self.images) <= MAX_IMAGES:
            raise ValueError(f"an edit takes 1 to {MAX_IMAGES} images, got {len(self.images)}")
        if self.input_fidelity not in FIDELITIES:
            raise ValueError(f"input_fidelity must be one of {', '.join(FIDELITIES)}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError("strength must be within 0 and 1")
        if self.mask is not None and self.mask.size != self.images[0].size:
            raise ValueError(
                f"the mask is {self.mask.size[0]}x{self.mask.size[1]} but the image is "
                f"{self.images[0].size[0]}x{self.images[0].size[1]}; they must be the same size"
            )


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
    #: The LoRA adapters of the model to run with and their scales, sorted by name (none: the base model).
    loras: tuple[LoraChoice, ...] = ()
    #: Transparency, animation, metadata and provenance (:mod:`gouache.engine.outputs`).
    outputs: OutputOptions = field(default_factory=OutputOptions)


@dataclass(frozen=True)
class RenderedImage:
    data: bytes
    format: str
    width: int
    height: int
    seed: int
    #: What the model understood the prompt as, in plain words (gouache-mini); None for other models.
    revised_prompt: str | None = None


@dataclass
class RenderResult:
    images: list[RenderedImage]
    working_size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)
    #: Where it rendered: device ("cpu", "cuda:0", "mps"), dtype ("float32", ...) and the memory-saving
    #: measures the render used ("offload", "attention_slicing", "vae_tiling"; see gouache.engine.devices).
    device: str = "cpu"
    dtype: str = "float32"
    memory: tuple[str, ...] = ()
    #: Which engine replica rendered it, on a Ray cluster ("replica", "node"); empty in one process.
    placement: dict[str, str] = field(default_factory=dict)


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
