"""Benchmarks behind ``gouache bench``: every figure is a ratio against a baseline timed in the same run.

Each benchmark module exposes ``measure(options: BenchOptions) -> list[Ratio]``; the command runs them one
after another (never side by side: two cores are easily disturbed) and prints one table with the machine.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

__all__ = ["BenchOptions", "Ratio", "machine"]


@dataclass(frozen=True)
class BenchOptions:
    #: Fewer repeats and smaller sizes: a smoke run (the tests use it), not figures to publish.
    quick: bool = False
    repeats: int = 3
    threads: int | None = None
    #: The `batch` benchmark's batch size in lines (None: 64, or 8 with `quick`).
    batch_lines: int | None = None
    #: The server's `batch_lane_images` in the `batch` benchmark (None: the server's default).
    batch_lane_images: int | None = None


@dataclass(frozen=True)
class Ratio:
    """``candidate_s / baseline_s``: below 1 the candidate is faster (for throughput rows, the inverse is
    reported in ``detail``)."""

    name: str
    baseline: str
    baseline_s: float
    candidate: str
    candidate_s: float
    detail: str = ""

    @property
    def ratio(self) -> float:
        return self.candidate_s / self.baseline_s if self.baseline_s > 0 else float("nan")


def machine() -> str:
    """One line describing where the figures were taken."""
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
