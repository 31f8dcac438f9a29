"""Single-file checkpoints vs diffusers folders: load time of the same tiny model written both ways.

    .venv/bin/python bench/single_file.py [--quick] [--repeats 3] [--threads 2]

The same as `gouache bench --only single_file`; the code lives in gouache.benchmarks.single_file. Run it
alone: two cores are easily disturbed.
"""

from gouache.benchmarks.suite import script_main

if __name__ == "__main__":
    script_main("single_file")
