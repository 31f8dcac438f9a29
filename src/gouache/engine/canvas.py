"""The pixel work of an edit: masks, feathering, the outpainting fill, reference blending, the latent grid.

Only numpy and Pillow, no torch and no pipeline: what an edit does to pixels before denoising (prepare) and
after it (finish) is here, where it can be read and tested without a model; the denoising itself is in
:mod:`gouache.engine.edits`.

Masks. A repaint mask is mode "L", 255 = repaint, 0 = keep (:func:`binary_mask` binarises at 128 and reads a
mask with an alpha channel OpenAI-style: transparent = repaint). Before denoising, :func:`latent_grid_mask`
snaps it outwards to the VAE's 8-px latent grid at the working size, so a thin mask cannot vanish when the
pipeline downsamples it to the latents. After denoising, the finish stage composites the result over the
input through :func:`feather_mask`: the binary mask, dilated by 1 px, Gaussian-blurred (sigma 0.75 px), raised
back to 255 everywhere inside the mask and cut to 0 beyond 3 px from it. So the masked region is entirely new,
the next 3 px are a soft blend, and every pixel 4 px or more (Chebyshev) from the mask is *exactly* the
resized input.

Outpainting. :func:`prepare_edit_canvas` turns an image's transparent pixels (alpha < 128) into the mask and
flattens the image onto an edge-extended fill (:func:`extend_fill`, a push-pull pyramid: the visible pixels'
colours spread smoothly outwards, so the fill continues the image's low frequencies instead of showing a black
or grey frame; partially transparent pixels are alpha-blended onto that fill).

References. Extra reference images are composited into the init image (:func:`blend_references`): each is
letterboxed (fitted inside, aspect kept, centred) into the first image's frame; its coverage (the letterbox
area times its own alpha) weights it, so bars and transparent areas add nothing. The init image is the
per-pixel weighted average of the first image (weight ``w0``) and the covering references (sharing
``1 - w0`` equally), only inside the repaint region when there is one, after :func:`fill_region` has replaced
that region's content (what the user wants gone) by the edge-extended fill of its surroundings."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from gouache.engine.jobs import EditInputs

#: Pixels with alpha below this are "transparent" (repainted when outpainting).
ALPHA_THRESHOLD = 128

_GROW = 1  # px the mask is dilated before blurring
_FEATHER_SIGMA = 0.75  # px, Gaussian blur of the dilated mask
_REACH = 3  # px beyond the mask where the feather is cut to exactly 0


# --------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def binary_mask(mask: Image.Image) -> Image.Image:
    """255 where the pixel is repainted, else 0 (mode L)."""
    if has_alpha(mask):
        values = 255 - np.asarray(mask.convert("RGBA"))[..., 3].astype(np.int16)
    else:
        values = np.asarray(mask.convert("L")).astype(np.int16)
    return Image.fromarray(np.where(values >= 128, 255, 0).astype(np.uint8), "L")


def _dilate(mask: Image.Image, px: int) -> Image.Image:
    """Chebyshev dilation by `px` pixels (3x3 max filters, cheaper than one large rank filter)."""
    for _ in range(px):
        mask = mask.filter(ImageFilter.MaxFilter(3))
    return mask


def feather_mask(mask: Image.Image) -> Image.Image:
    """The compositing weight of a binary mask: 255 on the mask, a soft blend over the next 3 px, and exactly
    0 from 4 px (Chebyshev) away."""
    hard = binary_mask(mask)
    soft = _dilate(hard, _GROW).filter(ImageFilter.GaussianBlur(_FEATHER_SIGMA))
    soft = ImageChops.lighter(soft, hard)
    return ImageChops.multiply(soft, _dilate(hard, _REACH))


def latent_grid_mask(mask: Image.Image, size: tuple[int, int], grid: int) -> Image.Image:
    """The mask at `size`, grown outwards to whole `grid` x `grid` blocks (any touched block is repainted)."""
    small = np.asarray(mask.resize(size, Image.Resampling.BOX)) > 0
    h, w = small.shape
    hb, wb = -(-h // grid), -(-w // grid)
    padded = np.zeros((hb * grid, wb * grid), dtype=bool)
    padded[:h, :w] = small
    blocks = padded.reshape(hb, grid, wb, grid).any(axis=(1, 3))
    full = np.repeat(np.repeat(blocks, grid, axis=0), grid, axis=1)[:h, :w]
    return Image.fromarray(np.where(full, 255, 0).astype(np.uint8), "L")


def resized_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The binary mask at another size; any pixel that the mask touches at least half is repainted."""
    return mask.resize(size, Image.Resampling.BILINEAR).point(lambda v: 255 if v >= 128 else 0)


def blend_back(image: Image.Image, base: Image.Image, mask: Image.Image) -> Image.Image:
    """`image` inside the (binary) repaint `mask`, `base` outside it, through the feathered mask; `mask` is
    resized to the image's size first when it differs."""
    out_mask = mask if mask.size == image.size else resized_mask(mask, image.size)
    return Image.composite(image, base, feather_mask(out_mask))


# --------------------------------------------------------------------------------------------------
# Canvases
# --------------------------------------------------------------------------------------------------


def extend_fill(rgb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill where `weight` (0..1) is low from the weighted pixels around it (push-pull pyramid).

    Returns a float image in which every pixel holds a smooth extension of the known colours."""
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    color = rgb.astype(np.float32) * weight[..., None]
    w = weight.astype(np.float32)
    while True:
        levels.append((color, w))
        h, wd = w.shape
        if (h == 1 and wd == 1) or w.min() > 0:
            break
        ph, pw = h % 2, wd % 2
        if ph or pw:
            color = np.pad(color, ((0, ph), (0, pw), (0, 0)))
            w = np.pad(w, ((0, ph), (0, pw)))
        h2, w2 = color.shape[0] // 2, color.shape[1] // 2
        color = color.reshape(h2, 2, w2, 2, 3).sum(axis=(1, 3))
        w = w.reshape(h2, 2, w2, 2).sum(axis=(1, 3))
        clamp = np.minimum(w, 1.0)
        color = color * (clamp / np.maximum(w, 1e-8))[..., None]
        w = clamp
    color, w = levels[-1]
    fill = np.where(w[..., None] > 0, color / np.maximum(w, 1e-8)[..., None], 127.5)
    for color, w in reversed(levels[:-1]):
        up = _resize_float(fill, (w.shape[1], w.shape[0]))
        known = color / np.maximum(w, 1e-8)[..., None]
        fill = known * w[..., None] + up * (1.0 - w[..., None])
    return np.asarray(fill, dtype=np.float32)


def _resize_float(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(array[..., c]), "F").resize(size, Image.Resampling.BILINEAR)
        )
        for c in range(array.shape[2])
    ]
    return np.stack(channels, axis=-1)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def prepare_edit_canvas(
    first: Image.Image, mask: Image.Image | None
) -> tuple[Image.Image, Image.Image | None]:
    """The RGB canvas to edit and the binary repaint mask (mode L, 255 = repaint), or None.

    Outpainting support: when ``first`` has transparency and no explicit mask is given, the pixels with
    alpha < 128 become the mask. Transparent and partially transparent pixels are flattened onto an
    edge-extended fill of the visible ones (never onto black). An explicit mask wins over the alpha channel;
    it may be mode L (255 = repaint) or carry alpha (OpenAI-style: transparent = repaint)."""
    if mask is not None and mask.size != first.size:
        raise ValueError("the mask must be the same size as the image")
    if not has_alpha(first):
        return first.convert("RGB"), (binary_mask(mask) if mask is not None else None)
    rgba = np.asarray(first.convert("RGBA"))
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    if alpha.min() < 1.0:
        fill = extend_fill(rgb, alpha)
        rgb = rgb * alpha[..., None] + fill * (1.0 - alpha[..., None])
    canvas = Image.fromarray(_to_uint8(rgb), "RGB")
    if mask is not None:
        return canvas, binary_mask(mask)
    transparent = rgba[..., 3] < ALPHA_THRESHOLD
    if not transparent.any():
        return canvas, None
    return canvas, Image.fromarray(np.where(transparent, 255, 0).astype(np.uint8), "L")


def edit_mode(inputs: EditInputs) -> str:
    """The mode an edit runs in for these inputs: "inpaint" (a mask is given), "outpaint" (no mask, and the
    first image has pixels with alpha < 128) or "image-to-image"."""
    if inputs.mask is not None:
        return "inpaint"
    first = inputs.images[0]
    if has_alpha(first) and (np.asarray(first.convert("RGBA"))[..., 3] < ALPHA_THRESHOLD).any():
        return "outpaint"
    return "image-to-image"


# --------------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------------


def mask_region(mask: Image.Image) -> np.ndarray:
    """A binary mask as per-pixel weights, 0..1 (float32)."""
    return np.asarray(mask).astype(np.float32) / 255.0


def fill_region(canvas: Image.Image, region: np.ndarray) -> Image.Image:
    """The canvas with the content inside `region` (0..1 weights) replaced by the edge-extended fill of its
    surroundings."""
    filled = extend_fill(np.asarray(canvas).astype(np.float32), 1.0 - region)
    base = np.asarray(canvas).astype(np.float32) * (1.0 - region[..., None])
    return Image.fromarray(_to_uint8(base + filled * region[..., None]), "RGB")


def _letterbox(ref: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`ref` fitted inside `size` (aspect kept, centred): its RGB and its coverage (0..1, alpha included)."""
    width, height = size
    scale = min(width / ref.width, height / ref.height)
    fit = (max(1, round(ref.width * scale)), max(1, round(ref.height * scale)))
    fitted = ref.convert("RGBA").resize(fit, Image.Resampling.LANCZOS)
    frame = Image.new("RGBA", size, (0, 0, 0, 0))
    frame.paste(fitted, ((width - fit[0]) // 2, (height - fit[1]) // 2))
    arr = np.asarray(frame).astype(np.float32)
    return arr[..., :3], arr[..., 3] / 255.0


def blend_references(
    canvas: Image.Image, refs: tuple[Image.Image, ...], first_weight: float | None, region: np.ndarray | None
) -> Image.Image:
    """The init image: the canvas (weight `first_weight`; None: every image weighs the same) and the
    letterboxed references (sharing the rest), averaged; only inside `region` (0..1 weights) when given."""
    base = np.asarray(canvas).astype(np.float32)
    n = len(refs) + 1
    w0 = first_weight if first_weight is not None else 1.0 / n
    wr = (1.0 - w0) / len(refs)
    acc = base * w0
    total = np.full(base.shape[:2], w0, dtype=np.float32)
    for ref in refs:
        rgb, coverage = _letterbox(ref, canvas.size)
        acc += rgb * (wr * coverage)[..., None]
        total += wr * coverage
    blend = acc / total[..., None]
    if region is not None:
        blend = base * (1.0 - region[..., None]) + blend * region[..., None]
    return Image.fromarray(_to_uint8(blend), "RGB")
