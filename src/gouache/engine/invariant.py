"""Batch-invariant numerics: an image rendered in a batch is byte-identical to the same image rendered alone.

On the CPU, a matrix product's rounding can depend on how many rows it has: the BLAS picks other kernels and
blockings for small ``M`` (measured: the UNet's time-embedding and per-block time projections, ``M`` = batch,
differ in the last bits between a batch of 2 and of 6). Convolutions, norms, attention, pointwise ops and the
products with many rows (``batch x tokens``) were batch-invariant in the same measurement. So a
``torch.nn.Linear`` whose input has few rows per batch element (below :data:`SMALL_ROWS`) computes its
product one batch element (dim 0) at a time: the same shapes, hence the same bits, whatever the batch. (Doing
it for every product also works, but costs gouache-mini half its batching gain.)"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F

from gouache.engine.devices import runs_on_cpu

_MARK = "_gouache_batch_invariant"


#: Below this many rows per batch element a product is computed one element at a time.
SMALL_ROWS = 64


def _per_element_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    batch = x.shape[0] if x.ndim >= 2 else 1
    rows_per_element = x.numel() // max(1, x.shape[-1]) // max(1, batch)
    if batch == 1 or rows_per_element >= SMALL_ROWS:
        return F.linear(x, self.weight, self.bias)
    return torch.cat([F.linear(x[i : i + 1], self.weight, self.bias) for i in range(batch)])


def make_batch_invariant(pipeline: Any) -> None:
    """Give every Linear layer of `pipeline`'s torch components the per-element product (once; idempotent).
    CPU pipelines only: the measurement and the fix are the CPU BLAS's."""
    if getattr(pipeline, _MARK, False) or not runs_on_cpu(pipeline):
        # On an accelerator the kernels differ anyway, and these patches would only cost speed.
        return
    components = getattr(pipeline, "components", {})
    for component in components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        for module in component.modules():
            if isinstance(module, torch.nn.Linear) and not getattr(module, _MARK, False):
                module.forward = types.MethodType(_per_element_forward, module)  # type: ignore[method-assign]
                setattr(module, _MARK, True)
    vae = getattr(pipeline, "vae", None)
    if vae is not None and hasattr(vae, "enable_slicing"):
        # The VAE decoder's convolutions at image resolution are not batch-invariant (measured on SD's
        # AutoencoderKL): decode one latent at a time, as diffusers' own memory-saving slicing does.
        vae.enable_slicing()
    setattr(pipeline, _MARK, True)
