"""Where the cluster's pieces run, for `/health` and the tests, from Ray's public APIs only.

- the nodes: `ray.nodes()`;
- each deployment's replicas by state: `serve.status()`;
- which replica runs on which node: the replicas say so themselves (`ray.get_runtime_context()`): engine
  replicas in the status reports the gateways fetch every few seconds, gateways in their rows of the shared
  database's `cluster_members` (`gouache.service.leases.Membership`), renewed every 10 s.

Ray's state API (`ray.util.state.list_actors`) would list every replica with its node, but it is served by
the dashboard, which clusters started for Gouache leave off (~10 s of start-up, ~150 MB); Serve's own
replica details are behind its controller's private client (design note 47)."""

from __future__ import annotations

from typing import Any

import ray

from gouache.service.leases import Member
from gouache.store.members import ClusterMember

#: The Serve application's name (`gouache.cluster.launch` deploys it under this name).
APP_NAME = "gouache"


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


def deployments(app: str = APP_NAME) -> dict[str, dict[str, Any]]:
    """Each deployment of `app`: its status and how many replicas are in each state (RUNNING, STARTING...)."""
    from ray import serve

    status = serve.status().applications.get(app)
    if status is None:
        return {}
    return {
        name: {
            "status": str(getattr(d.status, "value", d.status)),
            "replicas": {str(getattr(k, "value", k)): int(v) for k, v in d.replica_states.items()},
        }
        for name, d in status.deployments.items()
    }


def running_replicas(deployment: str, app: str = APP_NAME) -> int:
    """How many replicas of `deployment` are running (0 if Serve cannot say)."""
    return int(deployments(app).get(deployment, {}).get("replicas", {}).get("RUNNING", 0))


def gateway_replicas(me: Member, live: list[ClusterMember]) -> list[dict[str, Any]]:
    """`/health`'s entries for the gateways: the one answering (`me`) first, even if its row is not written
    yet, then every other live member of the database, oldest first."""
    rows = {m.replica: m for m in live}
    mine = rows.pop(me.replica, None)
    first = mine or ClusterMember(me.replica, me.role, me.node_id, me.node_address, me.pid, 0.0, 0.0)
    return [_member_entry(m) for m in (first, *rows.values())]


def _member_entry(m: ClusterMember) -> dict[str, Any]:
    return {
        "deployment": m.role,
        "replica": m.replica,
        "node_id": m.node_id,
        "node_address": m.node_address,
        "pid": m.pid,
        "started_at": m.started_at or None,
        "seen_at": m.seen_at or None,
    }


def cluster_report(replicas: list[dict[str, Any]]) -> dict[str, Any]:
    """`/health`'s "cluster": the nodes, the deployments' replica counts, and the replicas known by name
    (`replicas`: deployment, replica, node_id, pid; gateways also node_address, started_at, seen_at) - or why
    the cluster could not be read."""
    try:
        return {"nodes": nodes(), "deployments": deployments(), "replicas": replicas}
    except Exception as exc:  # report, never fail the health check
        return {"error": f"cluster state unavailable: {exc}", "replicas": replicas}
