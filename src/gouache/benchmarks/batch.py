"""The Batch API beside interactive traffic, on one live server (a tiny SD 1.x):

- throughput: a 64-line batch (submitted, polled to `completed`) against the same 64 requests sent one after
  another (ratio: batch wall time over sequential; its inverse, the throughput gain, in the detail);
- priority: the latency of one interactive request sent while that batch runs against the same request on the
  idle server (goal: at most 2x, since an interactive request waits for at most one batch job).

With ``--quick``: 8 lines, one repeat."""

from __future__ import annotations

import io
import json
import statistics
import time

from openai import OpenAI

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import repeats, size_for, timed, tiny_server

LINES = 64


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
    while client.batches.retrieve(batch_id).status not in ("completed", "failed", "cancelled", "expired"):
        time.sleep(0.1)


def measure(options: BenchOptions) -> list[Ratio]:
    resolution = size_for(options, 256)
    steps = 2 if options.quick else 8
    count = 8 if options.quick else LINES
    with tiny_server(resolution, steps, options.threads) as tiny:
        client = tiny.client()
        _one(client, 0)  # warm-up
        seq_s, batch_s, idle_s, busy_s = [], [], [], []
        for r in range(repeats(options)):
            offset = 10_000 * (r + 1)
            seq_s.append(timed(lambda: _sequential(client, count, offset)))  # noqa: B023
            batch_s.append(timed(lambda: _wait(client, _submit(client, count, offset))))  # noqa: B023
            idle_s.append(timed(lambda: _one(client, offset + 999)))  # noqa: B023
            batch_id = _submit(client, count, offset + 5000)
            while (client.batches.retrieve(batch_id).request_counts or _Counts()).completed < 1:
                time.sleep(0.05)
            busy_s.append(timed(lambda: _one(client, offset + 998)))  # noqa: B023
            _wait(client, batch_id)
    what = f"tiny sd1 at {resolution} px, {steps} steps"
    seq, batch = statistics.median(seq_s), statistics.median(batch_s)
    return [
        Ratio(
            "batch api", f"{count} requests one after another", seq, f"a {count}-line batch", batch,
            f"throughput x{seq / batch:.2f}; {what}",
        ),
        Ratio(
            "batch api: interactive latency", "one request, idle server", statistics.median(idle_s),
            "the same request while a batch runs", statistics.median(busy_s), f"goal <= 2x; {what}",
        ),
    ]  # fmt: skip


class _Counts:
    completed = 0
