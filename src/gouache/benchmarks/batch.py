"""The Batch API beside interactive traffic, on one live server (a tiny SD 1.x):

- throughput: an N-line batch (submitted, polled to `completed`) against the same N requests sent one after
  another (ratio: batch wall time over sequential; its inverse, the throughput gain, in the detail);
- priority: the latency of interactive requests sent at random moments while a second N-line batch runs,
  against the same requests on the idle server (median over the probes; goal: at most 2x, since an
  interactive request waits for at most one batch-lane job of `GOUACHE_BATCH_LANE_IMAGES` images).

N is 64 (the issue's figure), 8 with ``--quick``, or ``--batch-lines``. ``--batch-lane-images`` sets the
server's batch-lane cap (its default otherwise), to measure the trade-off between the two rows."""

from __future__ import annotations

import io
import json
import random
import statistics
import time

from openai import OpenAI

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import repeats, size_for, timed, tiny_server

LINES = 64
#: Idle probes per repeat (their median is the baseline).
IDLE_PROBES = 3
_FINAL = ("completed", "failed", "cancelled", "expired")


def _body(i: int) -> dict[str, object]:
    return {
        "model": "bench", "prompt": f"a red star and a blue circle, number {i}", "size": "1024x1024",
        "quality": "low", "seed": 1000 + i, "cache": False,
    }  # fmt: skip


def _one(client: OpenAI, i: int) -> None:
    body = _body(i)
    client.images.generate(
        model="bench", prompt=str(body["prompt"]), size="1024x1024", quality="low",
        extra_body={"seed": body["seed"], "cache": False},
    )  # fmt: skip


def _sequential(client: OpenAI, count: int, offset: int) -> None:
    for i in range(count):
        _one(client, offset + i)


def _submit(client: OpenAI, count: int, offset: int) -> str:
    lines = [
        {"custom_id": f"l{i}", "method": "POST", "url": "/v1/images/generations", "body": _body(offset + i)}
        for i in range(count)
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    file = client.files.create(file=("bench.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/images/generations", completion_window="24h"
    )
    return batch.id


def _wait(client: OpenAI, batch_id: str) -> None:
    while client.batches.retrieve(batch_id).status not in _FINAL:
        time.sleep(0.1)


def _completed(client: OpenAI, batch_id: str) -> tuple[str, int]:
    batch = client.batches.retrieve(batch_id)
    return batch.status, batch.request_counts.completed if batch.request_counts else 0


def _probe_during(client: OpenAI, batch_id: str, count: int, offset: int, pause_s: float) -> list[float]:
    """Interactive requests at random moments (a pause drawn from [0, pause_s] before each) while the batch
    is rendering: from its first finished line until its last line but one, so that each probe competes
    with batch work. The pauses are seeded: every run probes the same phases."""
    draw = random.Random(offset)
    while _completed(client, batch_id)[1] < 1:
        time.sleep(0.05)
    latencies: list[float] = []
    i = 0
    while True:
        if latencies:  # the first probe goes at once, so that even a short batch gets one
            time.sleep(draw.uniform(0, pause_s))
            status, done = _completed(client, batch_id)
            if status in _FINAL or done >= count - 1:
                break
        latencies.append(timed(lambda: _one(client, offset + i)))  # noqa: B023
        i += 1
    _wait(client, batch_id)
    return latencies


def measure(options: BenchOptions) -> list[Ratio]:
    resolution = size_for(options, 256)
    steps = 2 if options.quick else 8
    count = options.batch_lines or (8 if options.quick else LINES)
    lane = options.batch_lane_images
    env = {"GOUACHE_BATCH_LANE_IMAGES": str(lane)} if lane else None
    with tiny_server(resolution, steps, options.threads, env) as tiny:
        client = tiny.client()
        _one(client, 0)  # warm-up
        seq_s, batch_s, idle_s, busy_s = [], [], [], []
        for r in range(repeats(options)):
            offset = 100_000 * (r + 1)
            seq_s.append(timed(lambda: _sequential(client, count, offset)))  # noqa: B023
            batch_s.append(timed(lambda: _wait(client, _submit(client, count, offset))))  # noqa: B023
            idle = [timed(lambda: _one(client, offset + 90_000 + i)) for i in range(IDLE_PROBES)]  # noqa: B023
            idle_s.extend(idle)
            batch_id = _submit(client, count, offset + 10_000)
            busy_s.extend(_probe_during(client, batch_id, count, offset + 50_000, statistics.median(idle)))
    what = f"tiny sd1 at {resolution} px, {steps} steps, batch lane of {lane or 'default'} images"
    seq, batch = statistics.median(seq_s), statistics.median(batch_s)
    busy = statistics.median(busy_s) if busy_s else float("nan")
    worst = max(busy_s) if busy_s else float("nan")
    return [
        Ratio(
            "batch api", f"{count} requests one after another", seq, f"a {count}-line batch", batch,
            f"throughput x{seq / batch:.2f}; {what}",
        ),
        Ratio(
            "batch api: interactive latency", "one request, idle server (median)", statistics.median(idle_s),
            "the same while a batch runs (median)", busy,
            f"goal <= 2x; {len(busy_s)} probes, slowest {worst:.2f} s; {what}",
        ),
    ]  # fmt: skip
