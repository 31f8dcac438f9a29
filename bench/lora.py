"""LoRA adapters on tiny models: switching adapters on a loaded pipeline vs loading the base model.

    .venv/bin/python bench/lora.py [--quick] [--repeats 3] [--threads 2]

The same as `gouache bench --only lora`; the code lives in gouache.benchmarks.lora. Run it alone: two cores
are easily disturbed.
"""

from gouache.benchmarks.suite import script_main

if __name__ == "__main__":
    script_main("lora")
