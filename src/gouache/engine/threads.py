"""Torch's thread count, set per thread.

PyTorch's CPU build parallelises with OpenMP, whose thread count belongs to the calling thread: a
``torch.set_num_threads`` in the main thread leaves every other thread at the default, one per core. So with
several engine workers each one would use every core, oversubscribing the CPU. Each worker thread therefore
sets its own count when it starts (:func:`use_torch_threads`, from ``Settings.threads_per_worker``).
"""

from __future__ import annotations

import torch


def use_torch_threads(threads: int) -> None:
    """Give the calling thread ``threads`` intra-op threads for torch."""
    torch.set_num_threads(max(1, threads))
