"""Streaming latency: time to the first partial image of a streamed generation against the time to its
completed image, through the official SDK to a live server (goal: at most 0.25).

    .venv/bin/python bench/stream.py [--quick] [--repeats 3] [--threads 2]

The same as `gouache bench --only stream`; the code lives in
gouache.benchmarks.stream. Run it alone: two cores are easily disturbed.
"""

from gouache.benchmarks.suite import script_main

if __name__ == "__main__":
    script_main("stream")
