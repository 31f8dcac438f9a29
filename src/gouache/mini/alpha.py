"""gouache-mini's transparency hook: the alpha of an image is the layout it painted.

gouache-mini paints a scene it laid out itself (:mod:`gouache.mini.reading`), so where its objects, signs and
words are is known exactly: no colour key, no matting. :func:`layout_alpha` draws the layout's shapes
supersampled at the working resolution (anti-aliased edges: coverage, not a threshold); the finish stage
enlarges it with the same upscaler as the image."""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw

from gouache.mini.reading import layout_caption, matcher_for
from gouache.mini.scenes.shapes import fill_shape
from gouache.mini.scenes.truth import SceneTruth
from gouache.mini.scenes.vocabulary import RGB, SIGN

SUPERSAMPLE = 4


def paints_layouts(pipeline: Any) -> bool:
    """The pipeline's text encoder lays scenes out (a grounded gouache-mini)."""
    return bool(getattr(getattr(pipeline, "text_encoder", None), "seeded_layouts", False))


def caption_of(pipeline: Any, prompt: str) -> str:
    """The caption the text encoder reads for `prompt`: the prompt tokenized and decoded back, exactly as
    the pipeline's encoder sees it (so the layout drawn here is the one painted)."""
    ids = pipeline.tokenizer(
        prompt, padding="max_length", max_length=pipeline.tokenizer.model_max_length, truncation=True
    ).input_ids
    decoded = pipeline.text_encoder._ids_tokenizer().batch_decode([ids], skip_special_tokens=True)
    return str(decoded[0])


def scene_mask(truth: SceneTruth, width: int, height: int) -> Image.Image:
    """Coverage (mode L) of the scene's objects, signs and words at `width x height`. Positions are fractions
    of the width and height, sizes of the shorter side, as the layout map the UNet reads
    (:func:`gouache.mini.grounding.rasterize`)."""
    sw, sh = width * SUPERSAMPLE, height * SUPERSAMPLE
    side = min(sw, sh)
    canvas = Image.new("L", (sw, sh), 0)
    draw = ImageDraw.Draw(canvas)
    for o in truth.objects:
        if o.shape == SIGN and o.box is not None:
            x0, y0, x1, y1 = o.box[0] * sw, o.box[1] * sh, o.box[2] * sw, o.box[3] * sh
            draw.rounded_rectangle((x0, y0, x1, y1), radius=(y1 - y0) * 0.2, fill=255)
        elif o.concept is not None:  # concepts (issue 22): the drawing's own silhouette, not its circle
            _concept_coverage(canvas, o.concept, o.cx * sw, o.cy * sh, o.radius * side)
        else:
            fill_shape(draw, o.shape, o.cx * sw, o.cy * sh, o.radius * side, 255)
    if truth.text is not None and truth.text.sign is None:
        x0, y0, x1, y1 = truth.text.box
        draw.rectangle((x0 * sw, y0 * sh, x1 * sw, y1 * sh), fill=255)
    return canvas.reduce(SUPERSAMPLE)


def _concept_coverage(canvas: Image.Image, concept_id: str, cx: float, cy: float, radius: float) -> None:
    from PIL import ImageChops

    from gouache.mini.concepts.drawing import render_concept
    from gouache.mini.concepts.reader import find_concept

    concept = find_concept(concept_id)
    if concept is None:
        return
    side = max(4, round(2 * radius))
    coverage = Image.new("L", canvas.size, 0)
    at = (round(cx - side / 2), round(cy - side / 2))
    coverage.paste(render_concept(concept, side).getchannel("A"), at)
    canvas.paste(ImageChops.lighter(canvas, coverage))


def layout_alpha(
    pipeline: Any, prompt: str, seed: int, size: tuple[int, int]
) -> tuple[Image.Image, RGB] | None:
    """The alpha (mode L, at the working `size`) of the scene gouache-mini lays out for `prompt` and `seed`,
    and its background colour; None when the pipeline does not lay scenes out or the prompt asks for
    nothing drawable."""
    if not paints_layouts(pipeline):
        return None
    encoder = pipeline.text_encoder
    truth = layout_caption(caption_of(pipeline, prompt), matcher_for(encoder), seed)
    if truth is None or not (truth.objects or truth.text):
        return None
    return scene_mask(truth, *size), truth.background_rgb
