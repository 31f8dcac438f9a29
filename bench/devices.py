"""Dtypes and memory strategies: the same tiny model rendered through the engine in float32 and in bfloat16 on
the CPU (time and PSNR; float16 on CUDA too where there is a GPU), and VAE tiling's peak memory on a 3840x2160
decode against an untiled 2048x2048 one.

    .venv/bin/python bench/devices.py [--quick] [--repeats 3] [--threads 2]

The same as `gouache bench --only devices`; the code lives in
gouache.benchmarks.devices. Run it alone: two cores are easily disturbed.
"""

from gouache.benchmarks.suite import script_main

if __name__ == "__main__":
    script_main("devices")
