"""The Batch API: a 64-line batch against the same 64 requests one after another (throughput), and
interactive requests while such a batch runs against the same requests on an idle server (goal: at most 2x).

    .venv/bin/python bench/batch.py [--quick] [--repeats 3] [--threads 2] [--batch-lines 64]
        [--batch-lane-images 4]

The same as `gouache bench --only batch`; the code lives in gouache.benchmarks.batch. Run it alone: two
cores are easily disturbed.
"""

from gouache.benchmarks.suite import script_main

if __name__ == "__main__":
    script_main("batch")
