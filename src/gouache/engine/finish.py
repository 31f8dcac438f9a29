"""The finish stage: bring a denoised image to the exact requested size, blend an edit back into its input
outside the repaint mask, and encode it.

Every image the runner renders, text-to-image or edit, is finished here exactly once (:func:`finish_image`,
then :func:`encode`), after the model lock is released. Previews only borrow :func:`to_exact_size`."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from gouache.engine.canvas import blend_back, edit_mode
from gouache.engine.jobs import RenderedImage, RenderJob
from gouache.engine.outputs import encode_file, make_transparent
from gouache.engine.outputs.alpha import KeyNotUniform
from gouache.engine.outputs.metadata import read_parameters
from gouache.engine.upscale import upscale

log = logging.getLogger(__name__)

FORMATS = ("png", "jpeg", "webp")


@dataclass(frozen=True)
class Backdrop:
    """What an inpaint or outpaint keeps: the input canvas (RGB, the input's size) and the binary repaint mask
    (mode L, 255 = repaint, the same size). The finish stage blends the result back into it."""

    canvas: Image.Image
    mask: Image.Image


def to_exact_size(image: Image.Image, width: int, height: int, upscaler: str = "lanczos") -> Image.Image:
    """Resize to exactly `width x height`. The working size has the same aspect up to rounding, so this is a
    resample rather than a crop: enlargements with the model's `upscaler` (see :mod:`gouache.engine.upscale`),
    reductions box-filtered Lanczos."""
    return upscale(image, width, height, upscaler)


def finish_image(
    image: Image.Image, width: int, height: int, upscaler: str = "lanczos", backdrop: Backdrop | None = None
) -> Image.Image:
    """A denoised working-size image at exactly `width x height` (with the model's `upscaler`) and, for an
    edit with a mask, composited over its `backdrop` (the input resized with plain Lanczos) through the
    feathered mask, so every pixel 4 px or more from the mask is exactly the resized input."""
    final = to_exact_size(image, width, height, upscaler)
    if backdrop is None:
        return final
    return blend_back(final, to_exact_size(backdrop.canvas, width, height), backdrop.mask)


def encode(image: Image.Image, fmt: str, compression: int = 100, *, fast: bool = False) -> bytes:
    """Encode to png/jpeg/webp. `compression` is OpenAI's 0-100 `output_compression`, used as the jpeg/webp
    quality (100, the default, keeps the most detail); png is lossless and ignores it. `fast` trades file size
    for speed (previews)."""
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG", compress_level=1 if fast else 6)
    elif fmt == "jpeg":
        image.convert("RGB").save(buf, format="JPEG", quality=max(1, compression))
    elif fmt == "webp":
        image.save(buf, format="WEBP", quality=max(1, compression), method=0 if fast else 4)
    else:
        raise ValueError(f"unsupported output format {fmt!r}")
    return buf.getvalue()


@dataclass(frozen=True)
class FinishWork:
    """One image to finish: the entry it belongs to, its frames (one, or a GIF's), seed and layout alpha."""

    owner: int
    job: RenderJob
    frames: list[Image.Image]
    seed: int
    layout: tuple[Image.Image, tuple[int, int, int]] | None


#: A region of the canvas (x0, y0, x1, y1, fractions of the width and height): an inpainting edit's mask.
Region = tuple[float, float, float, float]

#: A model's own finishing (gouache-mini's text encoder ``finish_render``): at the working size, given the
#: prompt, seed, an inpainting edit's mask region and what a whole-image edit keeps of its input
#: (:func:`kept_marks`), the image, what was understood (``revised_prompt``) and a step for the output size.
FinishHook = Callable[
    [Image.Image, str, int, Region | None, object],
    tuple[Image.Image, str, Callable[[Image.Image], Image.Image] | None],
]


def finish_hook(pipeline: object) -> FinishHook | None:
    """The model's own finishing, if its text encoder has one (gouache-mini): used for the final image and
    for every streamed preview, so that previews show what the final image will (its lettering, its
    shades)."""
    return getattr(getattr(pipeline, "text_encoder", None), "finish_render", None)


def kept_marks(pipeline: object, job: RenderJob) -> object | None:
    """What a whole-image edit's input carries that the model's own finishing drew and its repaint would
    lose (gouache-mini: typeset words and concept drawings, found from the file's generation parameters
    when it was made by this model, else the words by OCR), for the finish hook to set again; None for
    other models, text-to-image and masked edits (inpainting keeps the pixels outside the mask). Found once
    per edit, before denoising."""
    find = getattr(getattr(pipeline, "text_encoder", None), "kept_marks", None)
    if find is None or job.edit is None or edit_mode(job.edit) != "image-to-image":
        return None
    source = job.edit.images[0]
    params = read_parameters(source)
    made = (params.prompt, params.seed) if params is not None and params.model == job.model.name else None
    try:
        return find(source, made)
    except Exception:  # OCR or a stray file: the edit goes on, as it did before anything was kept
        log.exception("could not find what the edit's input carries; it is repainted without it")
        return None


def touched_preview(
    image: Image.Image,
    hook: FinishHook | None,
    prompt: str,
    seed: int,
    region: Region | None,
    width: int,
    height: int,
    upscaler: str,
    kept: object = None,
) -> Image.Image:
    """A working-size preview at the output size, with the model's own touch before and after resizing
    (gouache-mini: shades, then the typeset words), as :func:`finish_one` does for the final image."""
    after = None
    if hook is not None:
        image, _, after = hook(image, prompt, seed, region, kept)
    out = to_exact_size(image, width, height, upscaler)
    return after(out) if after is not None else out


def finish_one(
    w: FinishWork,
    backdrop: Backdrop | None,
    hook: FinishHook | None = None,
    region: Region | None = None,
    kept: object = None,
) -> RenderedImage | KeyNotUniform:
    """The model's own touch at the working size (gouache-mini: shades, and what it understood), exact size,
    the model's touch at the output size (gouache-mini: its concept drawings, backdrops and lettering, fitted
    into an inpainting edit's mask ``region``; what a whole-image edit ``kept`` of its input set again), an
    edit's backdrop outside its mask, then the finishing pipeline of :mod:`gouache.engine.outputs`."""
    job = w.job
    revised, after = None, None
    frames = list(w.frames)
    if hook is not None:
        touched = [hook(frame, job.prompt, w.seed, region, kept) for frame in frames]
        frames = [frame for frame, _, _ in touched]
        revised, after = touched[0][1], touched[0][2]
    frames = [finish_image(f, job.width, job.height, job.model.upscaler) for f in frames]
    if after is not None:
        frames = [after(f) for f in frames]
    if backdrop is not None:  # after the model's touch, so that an edit keeps every pixel outside its mask
        canvas = to_exact_size(backdrop.canvas, job.width, job.height)
        frames = [blend_back(f, canvas, backdrop.mask) for f in frames]
    if job.outputs.background == "transparent":
        layout = None
        if w.layout is not None:  # the layout alpha, enlarged with the image's own upscaler
            mask = finish_image(w.layout[0].convert("RGB"), job.width, job.height, job.model.upscaler)
            layout = (mask.getchannel(0), w.layout[1])
        try:
            frames = make_transparent(frames, layout)
        except KeyNotUniform as exc:
            return exc
    parent = job.edit.images[0] if job.edit is not None else None
    data = encode_file(
        frames, job.output_format, job.output_compression, job.outputs, w.seed, job.model.name, parent
    )
    return RenderedImage(data, job.output_format, job.width, job.height, w.seed, revised)
