"""Working-resolution arithmetic: models render best near the pixel count they were trained at."""

from __future__ import annotations

import math


def working_size(width: int, height: int, resolution: int, multiple: int) -> tuple[int, int]:
    """The size, in multiples of `multiple`, with about `resolution**2` pixels and the aspect of
    `width x height`.

    Never larger than the requested size: when the request is smaller than the model's working area, the model
    renders at the requested size (rounded to its multiple)."""
    area = min(resolution * resolution, width * height)
    aspect = width / height
    w = math.sqrt(area * aspect)
    h = w / aspect
    return _snap(w, multiple), _snap(h, multiple)


def _snap(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)
