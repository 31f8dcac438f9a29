"""`gouache bench --quick` runs from the installed package (live servers included) and reports ratios against
baselines timed in the same run, as a table and as JSON. Correctness only: no figure is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "gouache.cli", "bench", *args],
        env=env,
        cwd=cwd,  # not the checkout: nothing may come from tests/ or bench/
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_quick_bench_prints_and_writes_ratio_rows(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = _bench("--quick", "--only", "cache", "--only", "stream", "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Machine:" in done.stdout and "result cache" in done.stdout
    report = json.loads(out.read_text())
    assert "cores" in report["machine"] and report["options"]["quick"] is True
    names = [row["name"] for row in report["rows"]]
    assert names == ["prompt-embedding cache", "result cache", "time to first partial"]
    for row in report["rows"]:
        assert row["baseline_s"] > 0 and row["candidate_s"] > 0
        assert abs(row["ratio"] - row["candidate_s"] / row["baseline_s"]) < 1e-9


def test_a_missing_benchmark_module_is_a_skipped_row() -> None:
    from gouache.benchmarks import BenchOptions
    from gouache.benchmarks.suite import BENCHMARKS, run_one

    BENCHMARKS["absent"] = ("gouache.benchmarks.not_built", "a benchmark this build lacks")
    try:
        rows = run_one("absent", BenchOptions(quick=True))
    finally:
        del BENCHMARKS["absent"]
    assert len(rows) == 1 and rows[0].detail.startswith("skipped:") and rows[0].baseline_s == 0


def test_an_unknown_benchmark_is_refused(tmp_path: Path) -> None:
    done = _bench("--only", "nope", cwd=tmp_path)
    assert done.returncode == 2 and "Unknown benchmark" in done.stderr


def test_the_single_file_row_loads_the_same_model_both_ways() -> None:
    from gouache.benchmarks import BenchOptions
    from gouache.benchmarks.suite import run_one

    rows = run_one("single_file", BenchOptions(quick=True))
    assert [row.name for row in rows] == ["single-file load (sd1)"]
    assert rows[0].baseline_s > 0 and rows[0].candidate_s > 0 and "sd1" in rows[0].detail
