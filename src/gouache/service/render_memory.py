"""How much memory a request needs, estimated before any compute, against the server's render memory limit
(`GOUACHE_RENDER_MEMORY_MB`). Memory, not money: the monthly money budgets are `policies/budgets.py`.

Images of one request are rendered one after another, but all of them are kept until the response is sent:
each as encoded bytes, then base64 in the JSON body (a few copies of about 4/3 of the encoded size). The
image being finished is held as full-size RGB(A) buffers while it is resized and encoded. The estimate is
deliberately generous: refusing with a clear 400 beats being killed by the kernel mid-request."""

from __future__ import annotations

from gouache.service.errors import InvalidRequest

#: Bytes per output pixel kept for each finished image until the response is sent.
KEPT_BYTES_PER_PIXEL = 8
#: Bytes per output pixel of the one image being resized and encoded.
WORKING_BYTES_PER_PIXEL = 16


def render_bytes(n: int, width: int, height: int) -> int:
    pixels = width * height
    return n * pixels * KEPT_BYTES_PER_PIXEL + pixels * WORKING_BYTES_PER_PIXEL


def check_render_memory(n: int, width: int, height: int, limit_bytes: int) -> None:
    """Raise a 400 naming `n` and `size` when the request would need more than `limit_bytes`."""
    needed = render_bytes(n, width, height)
    if needed <= limit_bytes:
        return
    fits = max(0, (limit_bytes - width * height * WORKING_BYTES_PER_PIXEL) // (width * height * 8))
    hint = f"at most n={fits} at this size" if fits >= 1 else "a smaller size"
    raise InvalidRequest(
        f"n={n} images of {width}x{height} need about {needed / 2**20:,.0f} MB, more than this server's "
        f"render memory budget of {limit_bytes / 2**20:,.0f} MB (GOUACHE_RENDER_MEMORY_MB); ask for {hint}.",
        param="n" if n > 1 else "size",
        code="request_too_large",
    )
