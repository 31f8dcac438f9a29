"""Where the cluster's pieces run: its nodes and the Serve replicas on them, for `/health` and the tests.

Read from Ray's control store (GCS) directly: Ray's state API (`ray.util.state`) needs the dashboard, which
clusters started for Gouache may leave off (it costs ~10 s of start-up and ~150 MB). The GCS tables are
Ray's debugging interface (`ray._private.state`); if a Ray upgrade changes them, `/health` says so in
`cluster.error` instead of failing."""

from __future__ import annotations

from typing import Any

import ray

#: Serve names its replica actors "SERVE_REPLICA::<app>#<deployment>#<id>".
_REPLICA_PREFIX = "SERVE_REPLICA::"


def nodes() -> list[dict[str, Any]]:
    """Every node Ray knows: id, address, alive, CPUs and GPUs."""
    out = []
    for node in ray.nodes():
        resources = node.get("Resources", {})
        out.append(
            {
                "node_id": node.get("NodeID", ""),
                "address": node.get("NodeManagerAddress", ""),
                "alive": bool(node.get("Alive")),
                "head": "node:__internal_head__" in resources,
                "cpus": resources.get("CPU", 0),
                "gpus": resources.get("GPU", 0),
            }
        )
    return out


def live_replicas() -> list[dict[str, Any]]:
    """Every live Serve replica: app, deployment, replica id, node and pid."""
    from ray._private import state

    out = []
    for actor in state.actors(actor_state_name="ALIVE").values():
        name = str(actor.get("Name", ""))
        if not name.startswith(_REPLICA_PREFIX):
            continue
        app, _, rest = name.removeprefix(_REPLICA_PREFIX).partition("#")
        deployment, _, replica = rest.partition("#")
        out.append(
            {
                "app": app,
                "deployment": deployment,
                "replica": replica,
                "node_id": actor["Address"]["NodeID"],
                "pid": actor.get("Pid"),
            }
        )
    return sorted(out, key=lambda r: (r["deployment"], r["replica"]))


def cluster_report() -> dict[str, Any]:
    """`/health`'s "cluster": the nodes and the replicas on them (or why they could not be read)."""
    try:
        return {"nodes": nodes(), "replicas": live_replicas()}
    except Exception as exc:  # a debugging interface: report, never fail the health check
        return {"error": f"cluster state unavailable: {exc}"}
