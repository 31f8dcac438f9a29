"""A Ray cluster of several nodes on this one machine: a head plus worker nodes of one CPU each, for the
cluster test and `gouache bench --only ray`. Not for production (start real nodes with `ray start`).

Run it inside a network namespace with only loopback (`unshare -n`): Ray resolves 127.0.0.1 to the
machine's own interface address and binds gRPC on every interface; in the namespace every node is
127.0.0.1 and nothing is reachable from outside. :func:`ray_environment` sets what Ray reads at start-up
(no usage stats, its files under a temporary directory, a short drain on shutdown); call it before Ray
starts. :meth:`LocalCluster.stop` ends every process the cluster started, by PID."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil

#: Object store per node: the smallest Ray accepts comfortably; images travel inline anyway.
OBJECT_STORE_BYTES = 128 * 2**20


def ray_environment(root: Path) -> dict[str, str]:
    """Environment for Ray under `root` (HOME too: Ray writes ~/.ray/auth_token); applied to os.environ and
    returned."""
    env = {
        "RAY_USAGE_STATS_ENABLED": "0",
        "HOME": str(root / "home"),
        "RAY_TMPDIR": str(root / "ray"),
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "2",
        "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    }
    for path in ("home", "ray"):
        (root / path).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    return env


class LocalCluster:
    """A head node without CPUs (Serve's controller, proxy and gateways need none) and `workers` nodes of one
    CPU each, so that engine replicas of one CPU each land one per worker node."""

    def __init__(self, workers: int, head_cpus: int = 0) -> None:
        import ray
        from ray.cluster_utils import Cluster

        self._before = {p.pid for p in psutil.Process().children(recursive=True)}
        common: dict[str, Any] = {
            "object_store_memory": OBJECT_STORE_BYTES,
            "include_dashboard": False,
            "node_ip_address": "127.0.0.1",
        }
        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus, **common})
        self.workers = [self.cluster.add_node(num_cpus=1, **common) for _ in range(workers)]
        self.cluster.wait_for_nodes()
        ray.init(address=self.cluster.address, logging_level=logging.WARNING)

    def worker_node_ids(self) -> list[str]:
        return [node.node_id for node in self.workers]

    def kill_worker(self, index: int) -> str:
        """Kill worker node `index` at once (its raylet and every process on it, as a machine failure
        would); returns its node id."""
        node = self.workers.pop(index)
        # The node's workers (its replicas' processes) are the raylet's children. Killing the raylet alone
        # leaves them running until they notice, long enough to finish a job in flight and answer it:
        # a machine failure takes them at once, so they are killed too.
        workers: list[psutil.Process] = []
        for _, process in node.live_processes():
            with contextlib.suppress(psutil.Error):
                workers += psutil.Process(process.pid).children(recursive=True)
        for proc in workers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self.cluster.remove_node(node, allow_graceful=False)
        return str(node.node_id)

    def stop(self) -> list[int]:
        """Shut Serve, Ray and the nodes down, then end by PID whatever they left; returns those PIDs."""
        import ray
        from ray import serve

        with contextlib.suppress(Exception):
            serve.shutdown()
        with contextlib.suppress(Exception):
            ray.shutdown()
        with contextlib.suppress(Exception):
            self.cluster.shutdown()
        return self.end_leftovers()

    def end_leftovers(self, wait_s: float = 10.0) -> list[int]:
        """Every process started since the cluster was made that still runs: SIGTERM, then SIGKILL."""
        left = [p for p in psutil.Process().children(recursive=True) if p.pid not in self._before]
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(left, timeout=wait_s)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=wait_s)
        return [p.pid for p in left]


def wait_until(check: Any, timeout_s: float, interval_s: float = 0.5) -> Any:
    """Poll `check()` until it returns something truthy (returned) or `timeout_s` passes (TimeoutError)."""
    end = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"gave up after {timeout_s:.0f} s")
        time.sleep(interval_s)
