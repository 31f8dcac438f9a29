"""Start and stop a real Gouache server process on a free loopback port (the benchmarks and the tests use it).

The server runs as ``python -m gouache.cli serve`` with the current interpreter, so it works from an
installed package as well as from a checkout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def start_server(data_dir: Path, env: dict[str, str] | None = None, timeout: float = 120.0) -> LiveServer:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"server-{port}.log"
    full_env = {
        **os.environ,
        "GOUACHE_DATA_DIR": str(data_dir),
        "GOUACHE_HOST": "127.0.0.1",
        "GOUACHE_PORT": str(port),
        "GOUACHE_TORCH_THREADS": "2",
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gouache.cli", "serve"],
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = LiveServer(process, port, data_dir, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not become ready in {timeout}s:\n{server.log()}")
