"""Single-file checkpoints vs diffusers folders: the time to load the same tiny model written both ways
(`ModelCache.get`, on PyTorch, as the server loads a catalog entry). A single file is converted on every
load (diffusers' ``from_single_file``: key renames, the text encoders rebuilt from the original layout),
a folder is read as it is; the ratio says what that conversion costs.

The tiny random pipelines' architectures are not the published ones, so their single files take their
component configs (and the tiny test tokenizer) from the folder they were written from (``config``), as a
real checkpoint would take them from the shipped configs. Loads alternate (folder, file, folder, ...) so
that a busy machine disturbs both alike."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from gouache.benchmarks import BenchOptions, Ratio
from gouache.engine.catalog import spec_for_directory, spec_from_entry
from gouache.engine.pipelines import ModelCache
from gouache.engine.tiny import build_tiny_pipeline
from gouache.engine.tiny_single_file import write_single_file


def measure_family(family: str, root: Path, repeats: int) -> Ratio:
    folder = build_tiny_pipeline(family, root / family)
    file = write_single_file(folder, family, root / f"{family}.safetensors")
    as_folder = spec_for_directory(folder, family)
    entry = {"path": str(file), "config": str(folder), "family": family}
    as_file = spec_from_entry(f"{family}-file", entry, base=None, source="bench")
    ModelCache().get(as_folder)  # the first load of a process pays imports and lazy setup: not timed
    folder_s: list[float] = []
    file_s: list[float] = []
    for _ in range(repeats):
        for spec, times in ((as_folder, folder_s), (as_file, file_s)):
            started = time.perf_counter()
            ModelCache().get(spec)
            times.append(time.perf_counter() - started)
    size_mb = file.stat().st_size / 2**20
    return Ratio(
        f"single-file load ({family})",
        "diffusers folder",
        statistics.median(folder_s),
        "one .safetensors file",
        statistics.median(file_s),
        f"tiny random {family} pipeline, {size_mb:.1f} MB of weights, median of {repeats}, PyTorch, CPU",
    )


def measure(options: BenchOptions) -> list[Ratio]:
    families = ("sd1",) if options.quick else ("sd1", "sd2", "sdxl", "sd3", "flux")
    repeats = 1 if options.quick else max(3, options.repeats)
    with tempfile.TemporaryDirectory(prefix="gouache-bench-") as tmp:
        return [measure_family(family, Path(tmp), repeats) for family in families]
