"""Optimised backend (OpenVINO UNet) against raw PyTorch, on the same model, seed and steps. Prints a table.

    .venv/bin/python bench/backend.py [--repeats 3] [--threads 2] [--quick]

The rows come from ``gouache.benchmarks.backend.measure`` (also run by ``gouache bench``): an SD1-architecture
pipeline at 512x512, 20 steps (PSNR and determinism in the detail), and gouache-mini at 1024x1024 ``high``
with each backend's idle and peak resident memory. Run it alone: two cores are easily disturbed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from gouache.benchmarks import BenchOptions, machine  # noqa: E402
from gouache.benchmarks.backend import measure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke run")
    args = parser.parse_args()
    console = Console()
    rows = measure(BenchOptions(quick=args.quick, repeats=args.repeats, threads=args.threads))
    table = Table("benchmark", "baseline, s", "candidate, s", "ratio", "detail", title=machine())
    for row in rows:
        table.add_row(
            row.name,
            f"{row.baseline} {row.baseline_s:.2f}",
            f"{row.candidate} {row.candidate_s:.2f}",
            f"{row.ratio:.2f}",
            row.detail,
        )
    console.print(table)


if __name__ == "__main__":
    main()
