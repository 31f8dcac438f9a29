"""The benchmarks of ``gouache bench``, in the order they run, and the runner that collects their rows."""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Column, Table

from gouache.benchmarks import BenchOptions, Ratio, machine

#: name -> (module, what it compares)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "overhead": ("gouache.benchmarks.overhead", "server overhead vs raw diffusers"),
    "backend": ("gouache.benchmarks.backend", "optimised CPU backend vs raw PyTorch"),
    "batching": ("gouache.benchmarks.batching", "batched vs sequential throughput"),
    "cache": ("gouache.benchmarks.cache", "result cache hit vs miss"),
    "batch": ("gouache.benchmarks.batch", "Batch API throughput and interactive latency beside it"),
    "stream": ("gouache.benchmarks.stream", "time to first partial vs full latency"),
    "load": ("gouache.benchmarks.load", "a burst of concurrent requests vs one alone"),
    "mini": ("gouache.benchmarks.mini", "gouache-mini served vs raw, per tier"),
    "lora": ("gouache.benchmarks.lora", "LoRA switch time vs base-model load time"),
    "single_file": ("gouache.benchmarks.single_file", "single-file checkpoint vs folder load time"),
    "devices": ("gouache.benchmarks.devices", "float32 vs bfloat16, VAE tiling's peak memory"),
    "startup": ("gouache.benchmarks.startup", "first request after start-up vs a warm one, idle RSS"),
    "outputs": (
        "gouache.benchmarks.outputs",
        "each finishing step (alpha, GIF, SVG, metadata, C2PA) vs the render",
    ),
    "reading": ("gouache.benchmarks.reading", "gouache-mini caption reading vs its layout"),
    "ray": ("gouache.benchmarks.ray_serve", "one process vs Ray Serve; 1 vs 2 engine replicas on 2 nodes"),
}


def skipped(name: str, why: str) -> Ratio:
    """A row for a benchmark that could not run here (its ratio is NaN)."""
    return Ratio(name, "-", 0.0, "-", 0.0, f"skipped: {why}")


def run_one(name: str, options: BenchOptions) -> list[Ratio]:
    module_name, _ = BENCHMARKS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return [skipped(name, f"{module_name} is not part of this build")]
    measure: Callable[[BenchOptions], list[Ratio]] = module.measure
    return measure(options)


def table(rows: list[Ratio]) -> Table:
    """The rows as one Rich table (a skipped row shows dashes and its reason)."""
    out = Table("benchmark", "baseline", "s", "candidate", "s", "ratio", Column("detail", overflow="fold"))
    for row in rows:
        ran = row.baseline_s > 0
        out.add_row(
            row.name,
            row.baseline,
            f"{row.baseline_s:.3f}" if ran else "-",
            row.candidate,
            f"{row.candidate_s:.3f}" if ran else "-",
            f"{row.ratio:.3f}" if ran else "-",
            row.detail,
        )
    return out


def print_report(console: Console, rows: list[Ratio], options: BenchOptions) -> None:
    note = "  [yellow](--quick: a smoke run, not figures)[/]" if options.quick else ""
    console.print(f"Machine: {machine()}{note}")
    console.print(table(rows))
    console.print("ratio = candidate s / baseline s (below 1: the candidate takes less time)")


def script_main(name: str, argv: list[str] | None = None) -> None:
    """``bench/<name>.py``: run one benchmark and print its rows (the same as ``gouache bench --only``)."""
    parser = argparse.ArgumentParser(description=BENCHMARKS[name][1])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    if name == "batch":
        parser.add_argument("--batch-lines", type=int, default=None, help="lines per batch (default 64)")
        parser.add_argument("--batch-lane-images", type=int, default=None, help="the server's lane cap")
    args = parser.parse_args(argv)
    options = BenchOptions(
        quick=args.quick,
        repeats=args.repeats,
        threads=args.threads,
        batch_lines=getattr(args, "batch_lines", None),
        batch_lane_images=getattr(args, "batch_lane_images", None),
    )
    print_report(Console(), run_one(name, options), options)


def to_json(rows: list[Ratio], options: BenchOptions) -> dict[str, Any]:
    return {
        "machine": machine(),
        "options": asdict(options),
        "rows": [{**asdict(row), "ratio": None if row.baseline_s <= 0 else row.ratio} for row in rows],
    }


def write_json(path: Path, rows: list[Ratio], options: BenchOptions) -> None:
    path.write_text(json.dumps(to_json(rows, options), indent=2) + "\n")
