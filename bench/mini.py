"""gouache-mini speed: wall time per quality tier for a 1024x1024 PNG served by Gouache through the official
SDK, against the raw diffusers pipeline on the same weights in the same run (the tier's steps and guidance at
the model's working resolution, a Lanczos resize and a PNG encode). Calls are interleaved; goals (issue 4):
``low`` under 1 s, ``high`` under 5 s.

    .venv/bin/python bench/mini.py [--quick] [--repeats 3] [--threads 2]

The same as `gouache bench --only mini`; the code lives in
gouache.benchmarks.mini. Run it alone: two cores are easily disturbed.
"""

from gouache.benchmarks.suite import script_main

if __name__ == "__main__":
    script_main("mini")
