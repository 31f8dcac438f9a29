"""Uploaded images: decode, check and normalise them before any compute, with OpenAI's error codes.

Every failure is a 400 naming the parameter: empty files, files over 50 MB, bytes that are not an image,
formats other than png/jpeg/webp, truncated files, decompression bombs, animated images, and masks without
alpha or of another size than the first image. Odd but valid images are normalised to RGB(A): CMYK,
16-bit, palette (with or without transparency), 1-bit, and EXIF-rotated photos (turned upright)."""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image, ImageOps

from gouache.service.errors import InvalidRequest

MAX_FILE_BYTES = 50 * 1024 * 1024
#: Largest decoded image accepted (pixels); far above 3840x2160 yet far below what exhausts memory.
MAX_PIXELS = 40_000_000
ACCEPTED_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "MPO": "jpeg"}


def _fail(message: str, param: str, code: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def decode_image(data: bytes, param: str, *, formats: dict[str, str] = ACCEPTED_FORMATS) -> Image.Image:
    """Decode an upload fully (so truncation is caught now), apply EXIF orientation, return RGB or RGBA."""
    if not data:
        raise _fail(f"The file for '{param}' is empty.", param, "empty_image_file")
    if len(data) >= MAX_FILE_BYTES:
        raise _fail(
            f"The file for '{param}' is {len(data) / 2**20:.1f} MB; files must be under 50 MB.",
            param,
            "image_file_too_large",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise _fail(
                    f"The image for '{param}' is {image.width}x{image.height}; at most {MAX_PIXELS:,} pixels "
                    "are accepted.",
                    param,
                    "image_too_large",
                )
            fmt = image.format or ""
            if fmt not in formats:
                raise _fail(
                    f"The image for '{param}' is {fmt or 'of an unknown format'}; supported formats are "
                    f"{', '.join(sorted(set(formats.values())))}.",
                    param,
                    "unsupported_image_media_type",
                )
            if getattr(image, "is_animated", False) and fmt != "MPO":
                raise _fail(
                    f"The image for '{param}' is animated ({getattr(image, 'n_frames', 'several')} frames); "
                    "send a still image.",
                    param,
                    "animated_image_not_supported",
                )
            image.load()
    except InvalidRequest:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"declares {int(declared.group(1)):,} pixels" if declared else "is too large to decode"
        raise _fail(
            f"The image for '{param}' {size}; at most {MAX_PIXELS:,} pixels are accepted.",
            param,
            "image_too_large",
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise _fail(
            f"The file for '{param}' is not a valid image (png, jpeg or webp).", param, "invalid_image_format"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise _fail(
            f"The image for '{param}' could not be decoded (truncated or corrupt): {exc}",
            param,
            "image_parse_error",
        ) from exc
    upright = _upright(_eight_bit(image))
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or (
        upright.mode == "P" and "transparency" in upright.info
    )
    return upright.convert("RGBA" if has_alpha else "RGB")


def _eight_bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit greyscale scaled to 8 bits (Pillow's own conversion clips everything above 255 to
    white)."""
    if image.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return image
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode != "F" else max(1.0, float(values.max()))
    scaled = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled)


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a malformed EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:  # Pillow raises many types on broken EXIF data
        return image


def decode_mask(data: bytes, size: tuple[int, int], param: str = "mask") -> Image.Image:
    """A PNG with alpha, the size of the first image. Returns mode `L`: 255 where alpha is 0 (repaint),
    else 0."""
    image = decode_image(data, param, formats={"PNG": "png"})
    if image.mode != "RGBA":
        raise _fail(
            "The mask must be a PNG with an alpha channel; fully transparent pixels (alpha 0) mark the "
            "area to edit.",
            param,
            "invalid_image_mode",
        )
    if image.size != size:
        raise _fail(
            f"The mask is {image.width}x{image.height} but the image is {size[0]}x{size[1]}; "
            "they must match.",
            param,
            "invalid_value",
        )
    mask = image.getchannel("A").point(lambda a: 255 if a < 128 else 0)
    if mask.getbbox() is None:
        raise _fail(
            "The mask has no transparent pixels, so there is nothing to edit; make the area to repaint "
            "transparent (alpha 0).",
            param,
            "invalid_value",
        )
    return mask
