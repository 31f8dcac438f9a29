"""The finishing pipeline after the exact size: named steps, each its own module, run in this order.

1. **alpha** (:mod:`.alpha`; gouache-mini's own layout in :mod:`gouache.mini.alpha`): a transparent
   background, from the layout the model painted or by matting a flat key colour away;
2. **encode**: png/jpeg/webp with Pillow (:mod:`gouache.engine.finish`), an animated GIF
   (:mod:`.animation`) or an SVG tracing (:mod:`.vector`);
3. **metadata** (:mod:`.metadata`): the generation parameters, written while encoding (PNG text chunks, EXIF);
4. **provenance** (:mod:`.provenance`): the C2PA manifest, signed last because nothing may re-encode after it.
"""

from __future__ import annotations

import io
from dataclasses import replace

from PIL import Image

from gouache.engine.outputs import alpha as alpha_step
from gouache.engine.outputs import metadata, provenance
from gouache.engine.outputs.animation import encode_gif
from gouache.engine.outputs.options import (
    FORMATS,
    Animation,
    GenerationParameters,
    OutputOptions,
    ProvenanceKeys,
)
from gouache.engine.outputs.vector import to_svg

__all__ = [
    "FORMATS",
    "Animation",
    "GenerationParameters",
    "OutputOptions",
    "ProvenanceKeys",
    "encode_file",
    "make_transparent",
]

RGB = tuple[int, int, int]


def make_transparent(frames: list[Image.Image], layout: tuple[Image.Image, RGB] | None) -> list[Image.Image]:
    """Step 1: RGBA frames. With the model's own `layout` alpha (at the frames' size) and background colour,
    that alpha; otherwise the key colour read from the first frame's border is matted out of every frame
    (raises :class:`~gouache.engine.outputs.alpha.KeyNotUniform`)."""
    if layout is not None:
        mask, background = layout
        return [alpha_step.with_alpha(f, mask, background) for f in frames]
    key, noise = alpha_step.key_colour(frames[0])
    return [alpha_step.matte(f, key, noise) for f in frames]


def encode_raster(
    image: Image.Image, fmt: str, compression: int, params: GenerationParameters | None, fast: bool = False
) -> bytes:
    """png/jpeg/webp, with the parameters in the file when given (step 3 happens here: it is part of the
    container, not a rewrite)."""
    buf = io.BytesIO()
    extra: dict[str, object]
    if fmt == "png":
        extra = {"pnginfo": metadata.png_info(params)} if params is not None else {}
        image.save(buf, format="PNG", compress_level=1 if fast else 6, **extra)
    elif fmt == "jpeg":
        extra = {"exif": metadata.exif_bytes(params)} if params is not None else {}
        image.convert("RGB").save(buf, format="JPEG", quality=max(1, compression), **extra)
    elif fmt == "webp":
        extra = {"exif": metadata.exif_bytes(params)} if params is not None else {}
        image.save(buf, format="WEBP", quality=max(1, compression), method=0 if fast else 4, **extra)
    else:
        raise ValueError(f"unsupported output format {fmt!r}")
    return buf.getvalue()


def encode_file(
    frames: list[Image.Image],
    fmt: str,
    compression: int,
    options: OutputOptions,
    seed: int,
    model: str,
    parent: Image.Image | None = None,
) -> bytes:
    """Steps 2-4 for finished frames (one, or an animation's): the file's bytes, signed when provenance is
    on. `parent` is an edit's input image (the manifest's parent ingredient)."""
    if fmt == "gif":
        duration = options.animation.duration_ms if options.animation else 200
        data = encode_gif(frames, duration)
    elif fmt == "svg":
        data = to_svg(frames[0])
    else:
        params = None if options.metadata is None else replace(options.metadata, seed=seed)
        data = encode_raster(frames[0], fmt, compression, params)
    if options.provenance is None:
        return data
    ingredient = None
    if parent is not None:
        ingredient = (encode_raster(parent, "png", 100, None, fast=True), "png")
    return provenance.sign(data, fmt, options.provenance, model, ingredient)
