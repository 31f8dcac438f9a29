"""Cross-request batching: 8 concurrent requests (same model, size and plan; their own prompts and seeds)
against the same 8 requests one after another, on one live server (a tiny SD 1.x; then gouache-mini, the
default model, except with --quick). The ratio is the concurrent wall time over
the sequential one; its inverse, the throughput gain, is in the detail (goal: at least 1.6x).

    .venv/bin/python bench/batching.py [--quick] [--repeats 3] [--threads 2]

The same as `gouache bench --only batching`; the code lives in
gouache.benchmarks.batching. Run it alone: two cores are easily disturbed.
"""

from gouache.benchmarks.suite import script_main

if __name__ == "__main__":
    script_main("batching")
