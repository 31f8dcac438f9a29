"""OpenAI's rules for the Images API and the engine job they give: which model a name means, which
parameters each model and endpoint takes, the output size and quality tier, and the `RenderJob` itself.

Pure functions of the request and the catalog (decoding uploads aside, and a random seed when none is
given): every rule can be checked in a unit test without a server, a store or an engine. Each refusal is a
`ServiceError` naming the parameter to fix."""

from __future__ import annotations

import io
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from gouache.engine.catalog import Catalog, ModelSpec, SamplingPlan
from gouache.engine.jobs import EditInputs, LoraChoice, RenderJob
from gouache.engine.lora import LoraError, check_scale
from gouache.engine.outputs import Animation, GenerationParameters, OutputOptions, ProvenanceKeys
from gouache.engine.outputs.alpha import asks_for_transparency, without_transparency_words
from gouache.engine.outputs.animation import frame_duration
from gouache.service.errors import InvalidRequest, ModelNotFound
from gouache.service.images.types import EditParams, GenerateParams
from gouache.service.prompts import check_text
from gouache.service.quality import resolve_quality
from gouache.service.render_memory import check_render_memory
from gouache.service.sizes import Size, resolve_size
from gouache.service.uploads import decode_image, decode_mask
from gouache.service.usage import input_image_tokens

#: Model names OpenAI retired, and when: refused with a pointer to the current model.
RETIRED_MODELS = {"dall-e-2": "2026-05-12", "dall-e-3": "2026-05-12"}
MAX_SEED = 2**63 - 1
MAX_INPUT_IMAGES = 16
DEFAULT_STRENGTH = 0.6
VARIATION_SIZES = ("256x256", "512x512", "1024x1024")
#: OpenAI's input_fidelity rules by API model name: gpt-image-2 is always high and refuses the parameter,
#: gpt-image-1-mini only takes "low"; names not listed (ours, 1, 1.5, 2.5...) take both, default "low".
FIDELITY_FIXED_HIGH = ("gpt-image-2", "gpt-image-2-2026-04-21")
FIDELITY_LOW_ONLY = ("gpt-image-1-mini",)
#: Formats that keep an alpha channel (GIF as one transparent palette index, SVG as empty areas).
ALPHA_FORMATS = ("png", "webp", "gif", "svg")
DEFAULT_FRAMES = 9
DEFAULT_FRAME_MS = 200
#: How far beyond a markup stroke the repaint reaches (px of the input), so no trace of the stroke's
#: anti-aliased edge is kept.
MARKUP_WIDEN = 5


@dataclass(frozen=True)
class OutputDefaults:
    """The server's finishing switches: C2PA signing keys (None: off) and parameters in the file."""

    provenance: ProvenanceKeys | None = None
    metadata: bool = False


def endpoint_of(params: GenerateParams) -> str:
    """The ledger's name for the endpoint a request belongs to."""
    if isinstance(params, EditParams):
        return "images.variations" if params.variation else "images.edits"
    return "images.generations"


def resolve_model(catalog: Catalog, name: str) -> ModelSpec:
    """The catalog's model for an API name (aliases included), or 404 `model_not_found`."""
    spec = catalog.resolve(name)
    if spec is not None:
        return spec
    if name in RETIRED_MODELS:
        raise ModelNotFound(
            f"The model '{name}' was retired on {RETIRED_MODELS[name]}. Use 'gpt-image-2' instead.",
            param="model",
        )
    raise ModelNotFound(
        f"The model '{name}' does not exist. Available models: {', '.join(catalog.names())}.",
        param="model",
    )


def build_job(
    catalog: Catalog,
    params: GenerateParams,
    render_memory_bytes: int | None = None,
    defaults: OutputDefaults = OutputDefaults(),
) -> tuple[RenderJob, str]:
    """Check a request against the rules and build its engine job; returns the job and the resolved quality.
    The checks run in this order, so the first problem of a request is the one reported."""
    # 1. The prompts: text the model can read.
    check_text(params.prompt, "prompt")
    if params.negative_prompt is not None:
        check_text(params.negative_prompt, "negative_prompt")
    # 2. The model, and the LoRA adapters of it the request names.
    spec = resolve_model(catalog, params.model)
    loras = resolve_loras(spec, params.loras)
    # 3. The uploads (edits and variations) and the output size.
    edit: EditInputs | None = None
    if isinstance(params, EditParams):
        edit, size = edit_inputs(params)
    else:
        size = resolve_size(params.size)
    # 4. The render memory the images need until the response is sent.
    if render_memory_bytes is not None:
        check_render_memory(params.n, size.width, size.height, render_memory_bytes)
    # 5. The output: encoding, background, animation, vector.
    check_output(params)
    background = resolve_background(params)
    # 6. The quality tier and its sampling plan, with the request's overrides.
    quality = resolve_quality(params.quality, params.prompt, size, spec)
    plan = sampling_plan(spec, quality, params)
    # 7. One seed per image, consecutive from the request's (or a random) one.
    base_seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
    seeds = tuple((base_seed + i) % (MAX_SEED + 1) for i in range(params.n))
    prompt = without_transparency_words(params.prompt) if background == "transparent" else params.prompt
    animation = None
    if params.output_format == "gif":
        animation = Animation(
            frames=params.frame_count or DEFAULT_FRAMES,
            duration_ms=frame_duration(params.frame_duration_ms or DEFAULT_FRAME_MS),
        )
    metadata = None
    if defaults.metadata:
        metadata = GenerationParameters(
            prompt=params.prompt,
            negative_prompt=params.negative_prompt or "",
            steps=plan.steps,
            sampler=plan.scheduler,
            cfg_scale=plan.guidance,
            seed=seeds[0],
            width=size.width,
            height=size.height,
            model=spec.name,
        )
    outputs = OutputOptions(background, animation, metadata, defaults.provenance)
    job = RenderJob(
        model=spec,
        prompt=prompt,
        plan=plan,
        width=size.width,
        height=size.height,
        seeds=seeds,
        output_format=params.output_format,
        output_compression=100 if params.output_compression is None else params.output_compression,
        negative_prompt=params.negative_prompt,
        edit=edit,
        loras=loras,
        outputs=outputs,
    )
    return job, quality


def resolve_loras(spec: ModelSpec, requested: Any) -> tuple[LoraChoice, ...]:
    """The adapters a job runs with, sorted by name (the order of a sum of adapters changes its last bits):
    the model's catalog defaults when the request names none (None), else exactly the request's (`[]`:
    none), each at its given scale or its catalog default. Anything malformed is a 400 naming `loras`."""
    known = {lora.name: lora for lora in spec.loras}
    if requested is None:
        defaults = (LoraChoice(lo.name, lo.scale) for lo in spec.loras if lo.scale != 0.0)
        return tuple(sorted(defaults, key=lambda c: c.name))
    if not isinstance(requested, list | tuple):
        raise _bad_loras('loras must be a list like [{"name": "ink", "scale": 0.8}].')
    choices: dict[str, LoraChoice] = {}
    for i, item in enumerate(requested):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise _bad_loras(f'loras[{i}] must be an object with a string "name" (and an optional "scale").')
        unknown = sorted(set(item) - {"name", "scale"})
        if unknown:
            raise _bad_loras(f"loras[{i}]: unknown key {unknown[0]!r} (allowed: name, scale).")
        name = item["name"]
        if name not in known:
            available = ", ".join(known) if known else "none"
            raise _bad_loras(
                f"loras[{i}]: model '{spec.name}' has no LoRA adapter '{name}' (its adapters: {available}).",
                code="unknown_lora",
            )
        if name in choices:
            raise _bad_loras(f"loras[{i}]: adapter '{name}' is named more than once.")
        try:
            scale = check_scale(item.get("scale", known[name].scale), f"loras[{i}]")
        except LoraError as exc:
            raise _bad_loras(f"{exc}.") from exc
        choices[name] = LoraChoice(name, scale)
    return tuple(sorted(choices.values(), key=lambda c: c.name))


def _bad_loras(message: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param="loras", code=code)


def check_output(params: GenerateParams) -> None:
    """Background, compression, GIF and SVG options: what the output format allows (OpenAI's rules)."""
    fmt = params.output_format
    if params.background == "transparent" and fmt not in ALPHA_FORMATS:
        raise InvalidRequest(
            f"Transparent backgrounds need output_format 'png' or 'webp' (or 'gif', 'svg'), not '{fmt}'.",
            param="background",
        )
    if fmt != "gif":
        for name in ("frame_count", "frame_duration_ms"):
            if getattr(params, name) is not None:
                raise InvalidRequest(
                    f"{name} applies only to output_format 'gif'.", param=name, code="unsupported_parameter"
                )
    if params.svg is not None and fmt != "svg":
        raise InvalidRequest(
            "svg options apply only to output_format 'svg'.", param="svg", code="unsupported_parameter"
        )
    if fmt in ("gif", "svg"):
        if params.output_compression is not None:
            raise InvalidRequest(
                f"output_compression cannot be used with output_format '{fmt}'.",
                param="output_compression",
                code="unsupported_parameter",
            )
        if isinstance(params, EditParams) and params.mask is not None:
            raise InvalidRequest(
                f"A mask cannot be used with output_format '{fmt}'.",
                param="mask",
                code="unsupported_parameter",
            )
    if fmt == "svg" and params.n != 1:
        raise InvalidRequest("output_format 'svg' makes one image: n must be 1.", param="n")
    compression = params.output_compression
    if params.output_format == "png" and compression is not None and compression != 100:
        raise InvalidRequest(
            "output_compression applies only to output_format 'jpeg' or 'webp' (png is lossless).",
            param="output_compression",
        )


def resolve_background(params: GenerateParams) -> str:
    """ "transparent" or "opaque": `auto` is transparent when the prompt asks for it ("transparent
    background", "sticker", "isolated", "cut-out") and the format keeps alpha."""
    if params.background == "transparent":
        return "transparent"
    if (
        params.background == "auto"
        and params.output_format in ALPHA_FORMATS
        and asks_for_transparency(params.prompt)
    ):
        return "transparent"
    return "opaque"


def sampling_plan(spec: ModelSpec, quality: str, params: GenerateParams) -> SamplingPlan:
    """The model's plan for the tier, with explicit `steps` and `guidance_scale` taking precedence."""
    plan = spec.plan(quality)
    if params.steps is not None:
        plan = replace(plan, steps=params.steps)
    if params.guidance_scale is not None:
        plan = replace(plan, guidance=params.guidance_scale)
    return plan


def edit_inputs(params: EditParams) -> tuple[EditInputs, Size]:
    """Decode and check the uploads, then the edit's size and fidelity."""
    if not params.images:
        raise InvalidRequest(
            "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
        )
    if len(params.images) > MAX_INPUT_IMAGES:
        raise InvalidRequest(
            f"At most {MAX_INPUT_IMAGES} images can be edited together; got {len(params.images)}.",
            param="image",
            code="too_many_images",
        )
    if params.markup is not None and params.mask is not None:
        raise InvalidRequest("markup cannot be used together with mask: send one of them.", param="markup")
    name = "image" if len(params.images) == 1 else "image[]"
    images = tuple(
        decode_image(data, name if len(params.images) == 1 else f"image[{i}]")
        for i, data in enumerate(params.images)
    )
    mask = None
    if params.mask is not None:
        mask = decode_mask(params.mask, images[0].size)
    if params.markup is not None:
        mask = markup_mask(params.markup, images[0].size)
    if params.variation:
        if params.size not in VARIATION_SIZES and params.size != "auto":
            raise InvalidRequest(
                f"Invalid value: '{params.size}'. Supported values are: {', '.join(VARIATION_SIZES)}.",
                param="size",
            )
        side = 1024 if params.size == "auto" else int(params.size.split("x")[0])
        size = Size(side, side)
    else:
        size = resolve_size(params.size, like=images[0].size)
    fidelity = input_fidelity(params)
    strength = DEFAULT_STRENGTH if params.strength is None else params.strength
    return EditInputs(images=images, mask=mask, strength=strength, input_fidelity=fidelity), size


def markup_mask(data: bytes, size: tuple[int, int]) -> Image.Image:
    """The repaint mask (mode L, 255 = repaint) of a markup overlay: a transparent PNG the size of the first
    image (after EXIF orientation) with at least one transparent pixel; its strokes (any opacity), widened
    by `MARKUP_WIDEN` px. The strokes themselves are never drawn into the input."""
    try:
        with Image.open(io.BytesIO(data)) as raw:
            fmt = raw.format
            overlay = (ImageOps.exif_transpose(raw) or raw).convert("RGBA")
    except Exception as exc:
        raise InvalidRequest(
            "The markup file could not be read as an image; send a PNG with transparency.",
            param="markup",
            code="invalid_image_file",
        ) from exc
    if fmt != "PNG":
        raise InvalidRequest(
            f"markup must be a PNG with transparency, not {fmt or 'an unknown format'}.",
            param="markup",
            code="unsupported_image_media_type",
        )
    if overlay.size != size:
        raise InvalidRequest(
            f"The markup is {overlay.size[0]}x{overlay.size[1]} but the image is {size[0]}x{size[1]}; "
            "they must be the same size.",
            param="markup",
        )
    alpha = np.asarray(overlay.getchannel("A"))
    if not (alpha < 255).any():
        raise InvalidRequest(
            "The markup has no transparent pixels: draw the strokes on a transparent layer.", param="markup"
        )
    if not (alpha > 0).any():
        raise InvalidRequest("The markup is fully transparent: it marks nothing to change.", param="markup")
    strokes = Image.fromarray(np.where(alpha > 0, 255, 0).astype(np.uint8), "L")
    return strokes.filter(ImageFilter.MaxFilter(2 * MARKUP_WIDEN + 1))


def input_fidelity(params: EditParams) -> str:
    """The edit's input fidelity under the model's rule (see `FIDELITY_FIXED_HIGH`, `FIDELITY_LOW_ONLY`)."""
    if params.model in FIDELITY_FIXED_HIGH:
        if params.input_fidelity is not None:
            raise InvalidRequest(
                f"input_fidelity is not supported by '{params.model}': it always processes inputs at "
                "high fidelity. Omit the parameter.",
                param="input_fidelity",
                code="unsupported_parameter",
            )
        return "high"
    if params.model in FIDELITY_LOW_ONLY and params.input_fidelity == "high":
        raise InvalidRequest(
            f"Invalid value: 'high'. '{params.model}' supports input_fidelity 'low' only.",
            param="input_fidelity",
        )
    return params.input_fidelity or "low"


def edit_image_tokens(job: RenderJob) -> int:
    """The input image tokens of a job's uploads (0 for text-to-image): priced, and reported in usage."""
    return sum(input_image_tokens(*im.size) for im in job.edit.images) if job.edit else 0


def fallback_job(catalog: Catalog, job: RenderJob, quality: str) -> RenderJob | None:
    """The same job on the catalog's fallback model, keeping explicit `steps` and `guidance_scale`; None
    when the model names no fallback (or itself)."""
    name = job.model.fallback
    spec = catalog.resolve(name) if name else None
    if spec is None or spec.name == job.model.name:
        return None
    plan = spec.plans.get(quality) or spec.plan("high")
    if job.plan.steps != job.model.plan(quality).steps:  # an explicit `steps` override
        plan = replace(plan, steps=job.plan.steps)
    if job.plan.guidance != job.model.plan(quality).guidance:
        plan = replace(plan, guidance=job.plan.guidance)
    # The request's adapters belong to the first model: the fallback runs with its own defaults.
    return replace(job, model=spec, plan=plan, loras=resolve_loras(spec, None))
