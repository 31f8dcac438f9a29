"""Server overhead: the same model, size, steps and seed as a raw diffusers pipeline call (plus the resize to
the output size and a PNG encode, what a user would write by hand) and as a request through the official
SDK to a live Gouache server, interleaved in one run.

    .venv/bin/python bench/overhead.py [--quick] [--repeats 3] [--threads 2]

The same as `gouache bench --only overhead`; the code lives in
gouache.benchmarks.overhead. Run it alone: two cores are easily disturbed.
"""

from gouache.benchmarks.suite import script_main

if __name__ == "__main__":
    script_main("overhead")
