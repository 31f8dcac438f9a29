"""gpt-image-2 size rules: `auto` or `WIDTHxHEIGHT` with edges divisible by 16, longest edge <= 3840,
long:short <= 3:1 and a total pixel count between 655,360 and 8,294,400."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gouache.service.errors import InvalidRequest

MULTIPLE = 16
MAX_EDGE = 3840
MAX_RATIO = 3.0
MIN_PIXELS = 655_360
MAX_PIXELS = 8_294_400
#: What `size="auto"` resolves to when nothing else (an input image) suggests an aspect.
AUTO_SIZE = (1024, 1024)

_SIZE_RE = re.compile(r"^\s*(\d{1,6})\s*[xX]\s*(\d{1,6})\s*$")
_SIZE_ERROR_TYPE = "image_generation_user_error"


@dataclass(frozen=True)
class Size:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def aspect(self) -> float:
        return self.width / self.height


def _invalid(size: str, reason: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid size '{size}'. {reason}", param="size", type=_SIZE_ERROR_TYPE)


def parse_size(size: str) -> Size | None:
    """Validate a requested size. Returns None for `auto`; raises `InvalidRequest` naming the broken rule."""
    if size == "auto":
        return None
    match = _SIZE_RE.match(size)
    if not match:
        raise _invalid(size, "Expected 'auto' or WIDTHxHEIGHT, for example '1024x1024' or '1824x1024'.")
    width, height = int(match.group(1)), int(match.group(2))
    if width == 0 or height == 0:
        raise _invalid(size, "Width and height must be positive.")
    if width % MULTIPLE or height % MULTIPLE:
        raise _invalid(size, f"Width and height must both be divisible by {MULTIPLE}.")
    if max(width, height) > MAX_EDGE:
        raise _invalid(size, f"The longest edge must be at most {MAX_EDGE} pixels.")
    if max(width, height) / min(width, height) > MAX_RATIO:
        raise _invalid(size, "The ratio between the long and the short edge must be at most 3:1.")
    pixels = width * height
    if pixels < MIN_PIXELS:
        raise _invalid(
            size, f"The image must have at least {MIN_PIXELS:,} pixels (e.g. 1024x640); got {pixels:,}."
        )
    if pixels > MAX_PIXELS:
        raise _invalid(
            size, f"The image must have at most {MAX_PIXELS:,} pixels (3840x2160); got {pixels:,}."
        )
    return Size(width, height)


def resolve_size(size: str, *, like: tuple[int, int] | None = None) -> Size:
    """The exact output size for a request: the explicit size, or for `auto` a standard size whose aspect is
    closest to `like` (an input image's size) or 1024x1024."""
    parsed = parse_size(size)
    if parsed is not None:
        return parsed
    if like is None:
        return Size(*AUTO_SIZE)
    aspect = like[0] / like[1]
    candidates = [Size(1024, 1024), Size(1536, 1024), Size(1024, 1536)]
    return min(candidates, key=lambda s: abs(s.aspect - aspect))
