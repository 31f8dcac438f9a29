"""Warm start: a served default model's first request after `/health` says "ok", against a warm request in
the same run, and the server's idle memory (``VmRSS`` of the process) once warm, on PyTorch and on OpenVINO.

Each row starts a fresh server (``gouache serve`` on gouache-mini, default settings, provenance signing on,
a fresh data directory, so OpenVINO converts during the warm-up), waits for `/health` to answer 200, sends
one 1024x1024 request, waits until the idle worker has handed freed memory back and reads the idle RSS
(``VmRSS`` of ``/proc/PID/status``, goal <= 500 MB, with its anonymous and file-backed parts), then sends
`repeats` more; the ratio is first / median warm (goal <= 1.2). The detail adds the engine's CPU seconds
of the first and a warm request, from the request records (``timings.cpu_s``): wall-clock ratios are
disturbed by a busy machine, CPU seconds much less. Unless ``--quick``, a third row serves OpenVINO with
``GOUACHE_PRELOAD=false``: the first request then loads and converts the model itself, as before warm
start."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import fresh_prompts, repeats, timed
from gouache.benchmarks.live import start_server
from gouache.benchmarks.load import rss_mb
from gouache.engine.queue import IDLE_TRIM_S

PROMPT = "a red star to the left of a blue circle"
SIZE = 1024


def measure(options: BenchOptions) -> list[Ratio]:
    runs = [("pytorch", True), ("openvino", True)]
    if not options.quick:
        runs.append(("openvino", False))
    return [_row(backend, preload, options) for backend, preload in runs]


def _row(backend: str, preload: bool, options: BenchOptions) -> Ratio:
    from openai import OpenAI

    env = {"GOUACHE_LOG_LEVEL": "warning", "GOUACHE_BACKEND": backend}
    env["GOUACHE_PRELOAD"] = "true" if preload else "false"
    if options.threads:
        env["GOUACHE_TORCH_THREADS"] = str(options.threads)
    prompts = fresh_prompts(PROMPT)
    with tempfile.TemporaryDirectory(prefix="gouache-bench-") as tmp:
        started = time.perf_counter()
        server = start_server(Path(tmp) / "data", env, timeout=900)
        ready_s = time.perf_counter() - started
        try:
            ready_mb = rss_mb(server.process.pid)
            client = OpenAI(base_url=server.base_url, api_key="bench", max_retries=0, timeout=900)

            def request() -> None:
                client.images.generate(  # type: ignore[call-overload]
                    model="gpt-image-2", prompt=next(prompts), size=f"{SIZE}x{SIZE}", quality="low",
                    extra_body={"seed": 1, "cache": False},
                )  # fmt: skip

            first_s = timed(request)
            time.sleep(IDLE_TRIM_S + 1.0)  # idle: the worker has handed freed memory back
            idle = memory_mb(server.process.pid)
            warm_s = statistics.median(timed(request) for _ in range(repeats(options)))
            time.sleep(IDLE_TRIM_S + 1.0)
            idle_after_mb = rss_mb(server.process.pid)
            health = httpx.get(f"{server.url}/health", timeout=30).json()
            cpu = engine_cpu_s(server.url)
        finally:
            server.stop()
    served = health["model_backends"].get(health["default_model"], backend)
    label = f"{served}{'' if preload else ', GOUACHE_PRELOAD=false'}"
    return Ratio(
        f"warm start ({label})",
        "a warm request",
        warm_s,
        "first request after ready",
        first_s,
        f"gouache-mini {SIZE}x{SIZE} low; start to ready {ready_s:.1f} s, to first image "
        f"{ready_s + first_s:.1f} s; engine CPU s first {_s(cpu[:1])}, warm {_s(cpu[1:])}; "
        f"RSS {ready_mb:.0f} MB when ready, idle after 1 request {idle['VmRSS']:.0f} MB (anon "
        f"{idle['RssAnon']:.0f}, files {idle['RssFile']:.0f}; goal <= 500), after "
        f"{1 + repeats(options)} requests {idle_after_mb:.0f} MB",
    )


def memory_mb(pid: int) -> dict[str, float]:
    """``VmRSS`` and its parts (``RssAnon``: heap and arenas; ``RssFile``: mapped libraries and weights)."""
    fields = ("VmRSS", "RssAnon", "RssFile")
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in fields:
            out[name] = int(value.split()[0]) / 1024
    return {name: out.get(name, float("nan")) for name in fields}


def engine_cpu_s(url: str) -> list[float]:
    """The engine's CPU seconds of each request, oldest first, from the request records."""
    answer = httpx.get(f"{url}/v1/gouache/history", headers={"Authorization": "Bearer bench"}, timeout=60)
    if answer.status_code != 200:
        return []
    entries = [e for e in answer.json().get("data", []) if "cpu_s" in (e.get("timings") or {})]
    return [float(e["timings"]["cpu_s"]) for e in reversed(entries)]


def _s(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "?"
