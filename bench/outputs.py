"""The finishing steps (transparent background, 9-frame GIF, SVG, parameters in the file, C2PA signing, and
the key-and-matte of other models), each as a ratio of the gouache-mini render it follows at 1024x1024, with
the matte's alpha error on edge pixels and the SVG's PSNR.

    .venv/bin/python bench/outputs.py [--quick] [--repeats 3] [--threads 2]

The same as `gouache bench --only outputs`; the code lives in
gouache.benchmarks.outputs. Run it alone: two cores are easily disturbed.
"""

from gouache.benchmarks.suite import script_main

if __name__ == "__main__":
    script_main("outputs")
