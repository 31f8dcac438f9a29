"""The caches, on one live server. Result cache: a request with an explicit seed rendered (`"cache": false`,
a miss) against the same request served from the store (a hit). Prompt-embedding cache: a request whose
prompt is new (its text encoder runs) against one whose prompt was seen (its embedding is reused).

    .venv/bin/python bench/cache.py [--quick] [--repeats 3] [--threads 2]

The same as `gouache bench --only cache`; the code lives in
gouache.benchmarks.cache. Run it alone: two cores are easily disturbed.
"""

from gouache.benchmarks.suite import script_main

if __name__ == "__main__":
    script_main("cache")
