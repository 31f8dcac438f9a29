"""What the benchmarks share: a tiny model served by a live server, timing helpers."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from openai import OpenAI

from gouache.benchmarks import BenchOptions
from gouache.benchmarks.live import LiveServer, start_server

PROMPT = "a red circle"


def fresh_prompts(base: str = PROMPT) -> Iterator[str]:
    """`base`, then `base #1`, `base #2`...: a new prompt per call, so that the server's prompt-embedding
    cache does not make a served call cheaper than its raw baseline (which always encodes its prompt)."""
    yield base
    n = 0
    while True:
        n += 1
        yield f"{base} #{n}"


@dataclass
class TinyServer:
    """A live server whose default model ``bench`` is a tiny random SD 1.x pipeline (built from configs, no
    download) rendering at `resolution` with `steps` DPM++ steps for every quality."""

    server: LiveServer
    model_dir: Path
    resolution: int
    steps: int

    def client(self) -> OpenAI:
        return OpenAI(base_url=self.server.base_url, api_key="bench", max_retries=0, timeout=600)


@contextmanager
def tiny_server(
    resolution: int, steps: int, threads: int | None = None, env: dict[str, str] | None = None
) -> Iterator[TinyServer]:
    from gouache.engine.tiny import build_tiny_pipeline

    with tempfile.TemporaryDirectory(prefix="gouache-bench-") as tmp:
        root = Path(tmp)
        model_dir = build_tiny_pipeline("sd1", root / "model")
        catalog = root / "catalog.toml"
        lines = [f'[models.bench]\npath = "{model_dir}"\nresolution = {resolution}\n']
        for quality in ("low", "medium", "high"):
            lines.append(
                f'[models.bench.plans.{quality}]\nsteps = {steps}\nguidance = 5.0\nscheduler = "dpm++"\n'
            )
        catalog.write_text("".join(lines))
        full_env = {
            "GOUACHE_CATALOG_FILE": str(catalog),
            "GOUACHE_DEFAULT_MODEL": "bench",
            "GOUACHE_LOG_LEVEL": "warning",
            # Like the raw PyTorch baselines; the backend has its own row. (Two thread pools, OpenVINO's in
            # the server and torch's in this process, also disturb each other's timings.)
            "GOUACHE_BACKEND": "pytorch",
            **({"GOUACHE_TORCH_THREADS": str(threads)} if threads else {}),
            **(env or {}),
        }
        server = start_server(root / "data", full_env)
        try:
            yield TinyServer(server, model_dir, resolution, steps)
        finally:
            server.stop()


def timed(call: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def median_time(call: Callable[[], object], options: BenchOptions) -> float:
    """Median wall time of `call` over the options' repeats (after one warm-up call)."""
    call()
    return statistics.median(timed(call) for _ in range(repeats(options)))


def repeats(options: BenchOptions) -> int:
    return 1 if options.quick else max(1, options.repeats)


def size_for(options: BenchOptions, full: int = 512) -> int:
    """Working resolution (and output edge) of the tiny-model benchmarks: small for a smoke run."""
    return 64 if options.quick else full
