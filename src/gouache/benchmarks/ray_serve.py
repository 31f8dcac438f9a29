"""Ray Serve (issue 21, design note 42): the same burst of requests through one process and through the Ray
deployment (one engine replica), the per-request overhead of the cluster path, and throughput with one vs
two engine replicas on separate nodes.

On this kind of machine (2 cores) two replicas cannot show real scale-out: both nodes share the same two
cores, so the 1 vs 2 replica row measures the cost of spreading (routing, a second model copy), not a gain.
On real machines each node brings its own cores or GPU.

Ray must run in a network namespace with only loopback (see :mod:`gouache.cluster.local`), so this module
re-runs itself inside `unshare -n` and reads the figures back; where that is not allowed (not root), the
rows say so instead of running."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from gouache.benchmarks import BenchOptions, Ratio

#: Requests per burst, and single requests timed one by one for the overhead.
BURST = 8
SINGLES = 5


def measure(options: BenchOptions) -> list[Ratio]:
    if importlib_missing("ray"):
        return [_skipped("Ray Serve is not installed (pip install 'gouache[ray]')")]
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    if unshare is None or not os.path.exists(ip):
        return [_skipped("unshare/ip not found (a loopback-only network namespace is needed)")]
    with tempfile.TemporaryDirectory(prefix="gouache-bench-ray-") as tmp:
        out = Path(tmp) / "figures.json"
        args = [
            sys.executable,
            "-m",
            "gouache.benchmarks.ray_serve",
            str(out),
            "quick" if options.quick else "full",
        ]
        process = subprocess.run(
            [unshare, "-n", "sh", "-c", f'{ip} link set lo up && exec "$@"', "sh", *args],
            capture_output=True,
            timeout=1800,
            start_new_session=True,
            check=False,
        )
        if not out.exists():
            tail = (process.stdout + process.stderr).decode(errors="replace")[-600:]
            return [_skipped(f"the cluster run failed (exit {process.returncode}): {tail}")]
        figures = json.loads(out.read_text())
    return rows(figures)


def rows(f: dict[str, Any]) -> list[Ratio]:
    overhead_ms = (f["ray_single_s"] - f["local_single_s"]) * 1000
    return [
        Ratio(
            "ray",
            f"burst of {f['burst']}, one process",
            f["local_burst_s"],
            "same burst, Ray Serve (1 engine replica)",
            f["ray1_burst_s"],
            f"per-request overhead {overhead_ms:.0f} ms (median single request: "
            f"{f['local_single_s'] * 1000:.0f} ms in one process, {f['ray_single_s'] * 1000:.0f} ms through "
            "the cluster)",
        ),
        Ratio(
            "ray-replicas",
            "1 engine replica",
            f["ray1_burst_s"],
            "2 engine replicas on 2 nodes",
            f["ray2_burst_s"],
            f"{f['burst'] / f['ray1_burst_s']:.2f} vs {f['burst'] / f['ray2_burst_s']:.2f} images/s; this "
            f"machine's {os.cpu_count()} cores are shared by both nodes: no real scale-out can show here",
        ),
    ]


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def _skipped(why: str) -> Ratio:
    return Ratio("ray", "-", 0.0, "-", 0.0, f"skipped: {why}")


# --- inside the namespace ---------------------------------------------------------------------------------


async def _burst(base_url: str, body: dict[str, Any], count: int) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:

        async def one(i: int) -> None:
            answer = await client.post("/images/generations", json={**body, "seed": i})
            answer.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        return time.perf_counter() - started


def _single(base_url: str, body: dict[str, Any]) -> float:
    times = []
    with httpx.Client(base_url=base_url, timeout=600) as client:
        for i in range(SINGLES + 1):
            started = time.perf_counter()
            client.post("/images/generations", json={**body, "seed": 1000 + i}).raise_for_status()
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:])  # the first warms up


def _ready(port: int, replicas: int) -> bool:
    """Every engine replica up and warm (after a redeploy the old ones answer /health first)."""
    answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30)
    engines = answer.json().get("cluster", {}).get("engines", [])
    return answer.status_code == 200 and len(engines) == replicas and not any(e["warming"] for e in engines)


def _figures(out: Path, quick: bool) -> None:
    from gouache.cluster.local import LocalCluster, ray_environment, wait_until

    root = Path(tempfile.mkdtemp(prefix="gouache-ray-bench-"))
    ray_environment(root)
    from gouache.benchmarks.common import tiny_server
    from gouache.cluster.deployments import ClusterOptions
    from gouache.cluster.launch import deploy, prepare
    from gouache.engine.tiny import build_tiny_pipeline
    from gouache.settings import Settings

    steps, burst = (4, 4) if quick else (20, BURST)
    body = {"prompt": "a red circle", "size": "1024x1024", "quality": "low", "cache": False}
    figures: dict[str, Any] = {"burst": burst, "steps": steps}
    env = {"GOUACHE_TORCH_THREADS": "1", "GOUACHE_PROVENANCE": "false", "GOUACHE_RESULT_CACHE": "false"}
    with tiny_server(64, steps, threads=1, env=env) as tiny:
        base = tiny.server.base_url
        figures["local_single_s"] = _single(base, body)
        figures["local_burst_s"] = asyncio.run(_burst(base, body, burst))
    model_dir = build_tiny_pipeline(
        "sd1", root / "model"
    )  # the same pipeline (fixed seed); tiny_server's is gone
    catalog = root / "catalog.toml"
    plans = "".join(
        f'[models.bench.plans.{q}]\nsteps = {steps}\nguidance = 5.0\nscheduler = "dpm++"\n'
        for q in ("low", "medium", "high")
    )
    catalog.write_text(f'[models.bench]\npath = "{model_dir}"\nresolution = 64\n{plans}')
    cluster = LocalCluster(workers=2)
    try:
        from gouache.benchmarks.live import free_port

        port = free_port()
        fields: dict[str, Any] = {
            "data_dir": root / "data", "catalog_file": catalog, "default_model": "bench", "host": "127.0.0.1",
            "port": port, "torch_threads": 1, "backend": "pytorch", "provenance": False,
            "result_cache": False, "log_level": "warning",
        }  # fmt: skip
        settings = prepare(Settings(**fields))
        base = f"http://127.0.0.1:{port}/v1"
        for replicas in (1, 2):
            options = ClusterOptions(
                models=("bench",), replicas=replicas, max_replicas_per_node=1, proxy_location="HeadOnly",
                gateway_resources={"node:__internal_head__": 0.01},
            )  # fmt: skip
            deploy(settings, options)
            wait_until(functools.partial(_ready, port, replicas), 300, 1)
            if replicas == 1:
                figures["ray_single_s"] = _single(base, body)
            asyncio.run(_burst(base, body, 2))  # every replica warm
            figures[f"ray{replicas}_burst_s"] = asyncio.run(_burst(base, body, burst))
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    out.write_text(json.dumps(figures))


if __name__ == "__main__":
    _figures(Path(sys.argv[1]), sys.argv[2] == "quick")
    sys.stdout.flush()
    os._exit(0)  # everything it started has ended (LocalCluster.stop, by PID); skip Ray's exit hooks
