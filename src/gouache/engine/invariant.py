"""Batch-invariant numerics: an image rendered in a batch is byte-identical to the same image rendered alone.

On the CPU, a matrix product's rounding can depend on how many rows it has: the BLAS picks other kernels and
blockings for small ``M`` (measured: the UNet's time-embedding and per-block time projections, ``M`` = batch,
differ in the last bits between a batch of 2 and of 6). Convolutions, norms, attention and pointwise ops were
batch-invariant in the same measurement. So every ``torch.nn.Linear`` of a pipeline's modules computes its
product one batch element (dim 0) at a time: the same shapes, hence the same bits, whatever the batch. The
cost is small (the large products keep all their rows: ``tokens x channels`` per element)."""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F

_MARK = "_gouache_batch_invariant"


def _per_element_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    if x.ndim < 2 or x.shape[0] == 1:
        return F.linear(x, self.weight, self.bias)
    return torch.cat([F.linear(x[i : i + 1], self.weight, self.bias) for i in range(x.shape[0])])


def make_batch_invariant(pipeline: Any) -> None:
    """Give every Linear layer of `pipeline`'s torch components the per-element product (once; idempotent)."""
    if getattr(pipeline, _MARK, False):
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
