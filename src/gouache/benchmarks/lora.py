"""LoRA adapters on a tiny model, in process: switching the adapter a request runs with (``set_adapters`` on
the loaded pipeline, what the runner's prepare stage does per job) against loading the base model (what a
server without adapter switching would pay to serve another adapter), and, in the detail, loading the
adapters once with the model."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from gouache.benchmarks import BenchOptions, Ratio
from gouache.engine.catalog import spec_for_directory
from gouache.engine.lora import LoraChoice, LoraSpec, activate
from gouache.engine.pipelines import ModelCache
from gouache.engine.tiny import build_tiny_pipeline
from gouache.engine.tiny_lora import build_tiny_lora

SWITCHES = 20


def measure_family(family: str, root: Path, repeats: int) -> Ratio:
    model_dir = build_tiny_pipeline(family, root / family)
    files = [build_tiny_lora(model_dir, root / f"{family}-{i}.safetensors", seed=i + 1) for i in range(2)]
    base = spec_for_directory(model_dir, family)
    loads: list[float] = []
    with_adapters: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ModelCache().get(base)
        loads.append(time.perf_counter() - t0)
        spec = replace(base, loras=tuple(LoraSpec(f.stem, f) for f in files))
        t0 = time.perf_counter()
        model = ModelCache().get(spec)
        with_adapters.append(time.perf_counter() - t0)
    choices = [[LoraChoice(f.stem, 1.0)] for f in files]
    switches: list[float] = []
    for i in range(SWITCHES):
        t0 = time.perf_counter()
        activate(model.pipeline, choices[i % 2])
        switches.append(time.perf_counter() - t0)
    load_s = statistics.median(loads)
    adapters_s = statistics.median(with_adapters) - load_s
    return Ratio(
        f"LoRA switch ({family})",
        "base-model load",
        load_s,
        "switch between two adapters",
        statistics.median(switches),
        f"loading 2 adapters with the model adds {adapters_s * 1000:.0f} ms once",
    )


def measure(options: BenchOptions) -> list[Ratio]:
    families = ("sd1",) if options.quick else ("sd1", "sdxl", "flux")
    repeats = 1 if options.quick else max(3, options.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        return [measure_family(family, Path(tmp), repeats) for family in families]
