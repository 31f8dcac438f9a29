"""Gouache on a Ray Serve cluster (issue 21): a head plus two worker nodes, PostgreSQL, two engine replicas of a
tiny model and a gateway, all inside a network namespace with only loopback (`unshare -n`), driven by
tests/ray_scenario.py in a subprocess that writes a JSON report asserted on here.

One scenario, several assertions: starting a cluster costs ~1-2 minutes on two cores, so it is started once."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

psutil = pytest.importorskip("psutil", reason="psutil comes with the ray extra: pip install 'gouache[ray]'")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
#: The tiny model the scenario serves (tests/ray_scenario.py).
MODEL = "tiny-sd1"
#: The whole scenario, cluster start and teardown included (it takes ~2-4 minutes on a loaded 2-core machine).
SCENARIO_TIMEOUT_S = 600


def _skip_reason() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "Ray Serve is not installed (pip install 'gouache[ray]'; `make test` installs it)"
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    if unshare is None or not os.path.exists(ip):
        return "unshare or ip (util-linux, iproute2) not found: the cluster must run in a loopback-only namespace"
    probe = subprocess.run([unshare, "-n", ip, "link", "set", "lo", "up"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"`unshare -n` is not allowed here ({probe.stderr.decode().strip()}): run as root, as CI does"
    return None


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("ray") / "report.json"
    ip = shutil.which("ip") or "/usr/sbin/ip"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    log = out.with_suffix(".log")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", f'{ip} link set lo up && exec "$0" -m tests.ray_scenario "$1"',
             sys.executable, str(out)],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            process.wait(SCENARIO_TIMEOUT_S)
        finally:
            _end_session(process.pid)
    if not out.exists():
        pytest.fail(f"the scenario wrote no report (exit {process.returncode}):\n{log.read_text()[-5000:]}")
    data: dict[str, Any] = json.loads(out.read_text())
    if data["errors"].get("setup"):
        pytest.fail(f"the cluster did not start:\n{data['errors']['setup']}\n{log.read_text()[-3000:]}")
    return data


def _end_session(sid: int) -> None:
    """Every process still in the scenario's session (it leads one), by PID: nothing may outlive the test."""
    left = [p for p in psutil.process_iter() if _sid(p) == sid]
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(left, timeout=10)


def _sid(proc: psutil.Process) -> int | None:
    try:
        return os.getsid(proc.pid)
    except OSError:
        return None


def _ok(report: dict[str, Any], name: str) -> Any:
    assert name not in report["errors"], report["errors"][name]
    return report["checks"][name]


def test_health_lists_nodes_and_replicas(report: dict[str, Any]) -> None:
    health = _ok(report, "health")
    assert health["status"] == "ok"
    workers = set(report["worker_nodes"])
    assert workers <= set(health["nodes"]) and len(health["nodes"]) == 3
    engine_nodes = {node for deployment, node in health["replicas"] if deployment.startswith("engine-")}
    assert engine_nodes == workers  # one engine replica on each worker node
    # Both gateways by name, each with its node (the head: the scenario pins them there), from their rows in
    # the shared database; the one that answered first.
    gateways = health["gateways"]
    assert len({replica for replica, *_ in gateways}) == 2, gateways
    assert set(health["head"]) <= set(health["nodes"])
    assert {node for _, node, *_ in gateways} == set(health["head"])
    assert all(address == "127.0.0.1" and pid > 0 for *_, address, pid in gateways)  # loopback-only namespace
    assert gateways[0][0] == health["answered_by"] and isinstance(health["gateways_gone"], int)
    # Replica counts from serve.status() (public API): both gateways, both engine replicas, running.
    assert health["deployments"]["gateway"]["replicas"] == {"RUNNING": 2}
    assert health["deployments"][f"engine-{MODEL}"]["replicas"] == {"RUNNING": 2}


def test_requests_spread_over_both_nodes_with_identical_images(report: dict[str, Any]) -> None:
    spread = _ok(report, "spread")
    assert spread["statuses"] == [200] * 6
    assert (
        spread["distinct_images"] == 1
    )  # one seed, one image (pixels: signed files differ), whichever replica
    assert set(spread["nodes"]) == set(report["worker_nodes"])


def test_every_endpoint_kind_through_the_cluster(report: dict[str, Any]) -> None:
    sdk = _ok(report, "sdk")
    assert sdk["generate_png"] and sdk["edit_png"]
    assert sdk["stream_events"] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert sdk["response_status"] == "completed" and sdk["response_output"][0] == "image_generation_call"
    assert sdk["response_retrieved"] and sdk["variation_links"] == [200] * 4  # one link key, shared blobs
    assert sdk["usage_images"] >= 8 and sdk["costs_status"] == 200  # the ledger in PostgreSQL


def test_files_batches_and_provenance_through_the_cluster(report: dict[str, Any]) -> None:
    checked = _ok(report, "files_batch_provenance")
    assert checked["file_reads"] == [True] * 4  # whichever gateway answers
    assert checked["batch_status"] == "completed"  # the gateway holding the batch lease ran it
    assert checked["batch_lines"] == [["b0", 200], ["b1", 200]]
    assert checked["provenance"] == [
        "detected",
        "trusted",
        MODEL,
    ]  # signed on a replica with the gateways' keys


def test_disconnect_cancels_the_replicas_job_and_is_recorded(report: dict[str, Any]) -> None:
    disconnect = _ok(report, "disconnect")
    assert disconnect["status"] == "cancelled"
    assert disconnect["engines_idle"]


def test_overload_answers_429_with_retry_after(report: dict[str, Any]) -> None:
    overload = _ok(report, "overload")
    assert 429 in overload["statuses"] and set(overload["statuses"]) <= {200, 429}
    assert overload["retry_after"] and all(int(v) >= 1 for v in overload["retry_after"])
    assert overload["error_codes"]


def test_killing_a_worker_node_is_survived(report: dict[str, Any]) -> None:
    failure = _ok(report, "node_failure")
    assert failure["hung"] == 0
    assert all(status in (200, 500, 503) for status in failure["burst"]), failure["burst"]
    assert failure["later"] == [200, 200, 200]
    # A job in flight on the dead node went to the live one: sent once more by the gateway (counted in
    # `retries`), or re-routed by Serve's own router, which finds the replica "temporarily unavailable" before
    # our call sees an error (seen in CI: four 200s, no retry counted). Either way nothing was lost: a request
    # that failed (500) must have been one the gateway tried twice.
    assert failure["retries_seen"] >= 1 or failure["burst"] == [200] * 4, failure
    assert failure["unfinished"] == []  # every request recorded with its end


def test_metrics_are_labelled_per_replica(report: dict[str, Any]) -> None:
    metrics = _ok(report, "metrics")
    assert metrics["labelled"] and metrics["engine_depth"]


def test_rate_limits_and_budgets_hold_across_gateways(report: dict[str, Any]) -> None:
    limits = _ok(report, "limits")
    assert limits["rate_limited"] == [200] * 4 + [429] * 4  # one window, whichever gateway answers
    assert limits["budget"] == [200, 429] and limits["budget_code"] == "insufficient_quota"


def test_gateways_leave_the_members_table_when_serve_stops_them(report: dict[str, Any]) -> None:
    assert _ok(report, "members_after_stop") == []  # a clean stop deletes the row at once, not after the TTL


def test_every_process_ended(report: dict[str, Any]) -> None:
    for pid in report["ended_pids"]:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
