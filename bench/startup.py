"""Warm start: the first 1024x1024 request after `gouache serve` says ready, against a warm request in the
same run, and the server's idle RSS once warm, on PyTorch and on OpenVINO (plus, unless --quick, OpenVINO
with GOUACHE_PRELOAD=false: the first request loads and converts the model itself).

    .venv/bin/python bench/startup.py [--quick] [--repeats 3] [--threads 2]

The same as `gouache bench --only startup`; the code lives in gouache.benchmarks.startup. Run it alone: two
cores are easily disturbed.
"""

from gouache.benchmarks.suite import script_main

if __name__ == "__main__":
    script_main("startup")
