"""The finish stage: bring a rendered image to the exact requested size and encode it."""

from __future__ import annotations

import io

from PIL import Image

from gouache.engine.upscale import upscale

FORMATS = ("png", "jpeg", "webp")


def to_exact_size(image: Image.Image, width: int, height: int, upscaler: str = "lanczos") -> Image.Image:
    """Resize to exactly `width x height`. The working size has the same aspect up to rounding, so this is a
    resample rather than a crop: enlargements with the model's `upscaler` (see :mod:`gouache.engine.upscale`),
    reductions box-filtered Lanczos."""
    return upscale(image, width, height, upscaler)


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
