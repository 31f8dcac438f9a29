"""The Ray Serve scenario of tests/test_ray_cluster.py, run as its own process inside a network namespace with
only loopback (`unshare -n`): a head plus two worker nodes of one CPU, PostgreSQL, and Gouache on a tiny
model (two engine replicas, one per worker node, and a gateway). It drives the cluster through the
official SDK and httpx, then writes what it saw to a JSON report that the test asserts on. Every process
it started is ended by PID before it exits.

    unshare -n sh -c 'ip link set lo up && exec python -m tests.ray_scenario REPORT.json'
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from gouache.cluster.local import LocalCluster, ray_environment, wait_until

MODEL = "tiny-sd1"
#: A render long enough to disconnect from, overload with, or kill a node under (64 px, so ~1-3 s).
LONG = {"steps": 150}


def png_bytes(size: int = 64) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


def pixels(b64: str) -> bytes:
    import io

    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGBA").tobytes()


class Scenario:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.report: dict[str, Any] = {"checks": {}, "errors": {}}
        self.base = ""

    def check(self, name: str, step: Callable[[], Any]) -> None:
        """Run one step; its return value (JSON) or its failure goes into the report."""
        started = time.monotonic()
        try:
            self.report["checks"][name] = step()
        except Exception:
            self.report["errors"][name] = traceback.format_exc()
        self.report.setdefault("seconds", {})[name] = round(time.monotonic() - started, 1)

    # --- helpers ----------------------------------------------------------------------------------------

    def post(self, body: dict[str, Any], timeout: float = 120) -> httpx.Response:
        return httpx.post(f"{self.base}/v1/images/generations", json=body, timeout=timeout)

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.base}/v1/gouache/history", params={"limit": limit}, timeout=30)
        answer.raise_for_status()
        return list(answer.json()["data"])

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.base}/health", timeout=30).json())


def member_rows(database_url: str, root: Path) -> list[str]:
    """The replicas with a row in the database's `cluster_members` (gateways that have not stopped cleanly)."""
    from gouache.store import Store

    store = Store(database_url, root / "blobs-unused")
    try:
        return [m.replica for m in store.members()]
    finally:
        store.close()


def run(out: Path) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="gouache-ray-"))
    ray_environment(root)
    from openai import OpenAI

    from gouache.cluster.deployments import ClusterOptions
    from gouache.cluster.launch import deploy, prepare
    from gouache.engine.tiny import build_tiny_pipeline
    from gouache.settings import Settings
    from tests.live import free_port
    from tests.postgres import start_postgres

    s = Scenario(root)
    report = s.report
    pg = cluster = None
    started = time.monotonic()
    try:
        pg = start_postgres()
        model_dir = build_tiny_pipeline("sd1", root / "models" / "sd1")
        catalog = root / "catalog.toml"
        plans = "".join(
            f"[models.{MODEL}.plans.{q}]\nsteps = 2\nguidance = 2.0\n" for q in ("low", "medium", "high")
        )
        catalog.write_text(f'[models.{MODEL}]\npath = "{model_dir}"\nresolution = 64\n{plans}')
        port = free_port()
        settings = Settings(
            data_dir=root / "data",
            database_url=pg.url,
            blob_url=str(root / "shared-blobs"),
            catalog_file=catalog,
            default_model=MODEL,
            host="127.0.0.1",
            port=port,
            queue_depth=3,
            torch_threads=1,
            backend="pytorch",
            provenance=True,  # signed on the replicas with the gateways' keys; checked below
            result_cache=False,
            batch_window_ms=0,
            grace_period_s=2,
            request_timeout_s=120,
        )  # type: ignore[call-arg]
        cluster = LocalCluster(workers=2)
        report["worker_nodes"] = cluster.worker_node_ids()
        settings = prepare(settings)
        options = ClusterOptions(
            models=(MODEL,), replicas=2, gateways=2, max_replicas_per_node=1, proxy_location="HeadOnly",
            gateway_resources={"node:__internal_head__": 0.01},  # killing a worker node leaves the gateways
        )  # fmt: skip
        deploy(settings, options)
        s.base = f"http://127.0.0.1:{port}"
        report["startup_s"] = round(time.monotonic() - started, 1)
        # Ready when both gateways say so (each has heard from the engine replicas): several answers in a row.
        wait_until(
            lambda: all(httpx.get(f"{s.base}/health", timeout=30).status_code == 200 for _ in range(6)),
            180,
            1,
        )
        client = OpenAI(base_url=f"{s.base}/v1", api_key="local", max_retries=0, timeout=120)

        def health() -> dict[str, Any]:
            def all_known() -> dict[str, Any] | None:
                # Each gateway learns the engine replicas from their reports, the other gateway from its row
                # in the shared database.
                h = s.health()
                known = [r["deployment"] for r in h["cluster"]["replicas"]]
                engines = sum(d.startswith("engine-") for d in known)
                return h if engines >= 2 and known.count("gateway") >= 2 else None

            h = wait_until(all_known, 60)
            cluster_info = h["cluster"]
            return {
                "nodes": [n["node_id"] for n in cluster_info["nodes"] if n["alive"]],
                "head": [n["node_id"] for n in cluster_info["nodes"] if n["head"]],
                "replicas": [(r["deployment"], r["node_id"]) for r in cluster_info["replicas"]],
                "gateways": [
                    (r["replica"], r["node_id"], r["node_address"], r["pid"])
                    for r in cluster_info["replicas"]
                    if r["deployment"] == "gateway"
                ],
                "gateways_gone": cluster_info["gateways_gone"],
                "answered_by": cluster_info["gateway"]["replica"],
                "engines": [(e["replica"], e["node"]) for e in cluster_info.get("engines", [])],
                "status": h["status"],
                "deployments": cluster_info["deployments"],
            }

        s.check("health", health)

        def spread() -> dict[str, Any]:
            body = {
                "model": MODEL,
                "prompt": "a red circle",
                "size": "1024x1024",
                "quality": "low",
                "seed": 7,
            }
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: s.post(body), range(6)))
            # Signed files differ by design (each C2PA signature is salted, design note 38): compare pixels.
            images = {pixels(a.json()["data"][0]["b64_json"]) for a in answers if a.status_code == 200}
            nodes = [
                e["resolved"].get("placement", {}).get("node")
                for e in s.history(6)
                if e["status"] == "succeeded"
            ]
            return {
                "statuses": [a.status_code for a in answers],
                "distinct_images": len(images),
                "nodes": nodes,
            }

        s.check("spread", spread)

        def sdk() -> dict[str, Any]:
            plain = client.images.generate(
                model="gpt-image-2", prompt="a blue square", size="1024x1024", quality="low"
            )
            stream = client.images.generate(
                model="gpt-image-2", prompt="a blue square", size="1024x1024", quality="low", stream=True,
                partial_images=2, extra_body={"seed": 3, "steps": 6},
            )  # fmt: skip
            events = [e.type for e in stream]
            turn = client.responses.create(
                model="gpt-5",
                input="a green triangle",
                tools=[{"type": "image_generation", "quality": "low"}],
            )
            edit = client.images.edit(
                model="gpt-image-2", image=("in.png", png_bytes(), "image/png"), prompt="a red circle",
                size="1024x1024", quality="low", extra_body={"seed": 1},
            )  # fmt: skip
            variation = client.images.create_variation(
                image=("in.png", png_bytes(), "image/png"), size="256x256"
            )
            # The link is signed by one gateway and served from the shared blob directory by any: ask a few times.
            links = [httpx.get(variation.data[0].url or "", timeout=30).status_code for _ in range(4)]
            stored = client.responses.retrieve(turn.id)
            hour_ago = {"start_time": int(time.time()) - 3600}
            usage = httpx.get(f"{s.base}/v1/organization/usage/images", params=hour_ago, timeout=30)
            costs = httpx.get(f"{s.base}/v1/organization/costs", params=hour_ago, timeout=30)
            return {
                "variation_links": links,
                "response_retrieved": stored.id == turn.id,
                "usage_images": sum(r["images"] for b in usage.json()["data"] for r in b["results"]),
                "costs_status": costs.status_code,
                "generate_png": base64.b64decode(plain.data[0].b64_json or "")[:8] == b"\x89PNG\r\n\x1a\n",
                "stream_events": events,
                "response_status": turn.status,
                "response_output": [o.type for o in turn.output],
                "edit_png": base64.b64decode(edit.data[0].b64_json or "")[:8] == b"\x89PNG\r\n\x1a\n",
            }

        s.check("sdk", sdk)

        def files_batch_provenance() -> dict[str, Any]:
            """The Files and Batch APIs and C2PA provenance through the cluster: a file read back from every
            gateway, a two-line batch run to completion by whichever gateway holds the batch lease, its
            output downloaded, and a rendered image's manifest checked as this server's own."""
            data = b'{"note": "shared"}\n'
            uploaded = client.files.create(file=("n.jsonl", data, "application/jsonl"), purpose="user_data")
            reads = [client.files.content(uploaded.id).content == data for _ in range(4)]
            body = {"model": MODEL, "size": "1024x1024", "quality": "low"}
            lines = b"".join(
                json.dumps({"custom_id": f"b{i}", "method": "POST", "url": "/v1/images/generations",
                            "body": {**body, "prompt": f"a red circle {i}", "seed": i}}).encode() + b"\n"
                for i in range(2)
            )  # fmt: skip
            batch_file = client.files.create(file=("in.jsonl", lines, "application/jsonl"), purpose="batch")
            batch = client.batches.create(
                input_file_id=batch_file.id, endpoint="/v1/images/generations", completion_window="24h"
            )
            done = wait_until(
                lambda: (b := client.batches.retrieve(batch.id)).status in ("completed", "failed") and b, 120
            )
            output = [
                json.loads(raw)
                for raw in client.files.content(done.output_file_id or "").content.splitlines()
            ]
            image = base64.b64decode(output[0]["response"]["body"]["data"][0]["b64_json"]) if output else b""
            check = client.content_provenance_checks.create(file=("b.png", image, "image/png")).results[0]
            return {
                "file_reads": reads,
                "batch_status": done.status,
                "batch_lines": sorted((o["custom_id"], o["response"]["status_code"]) for o in output),
                "provenance": [check.outcome, check.validation_state, check.model],
            }

        s.check("files_batch_provenance", files_batch_provenance)

        def disconnect() -> dict[str, Any]:
            body = {"model": MODEL, "prompt": "a slow fox", "size": "1024x1024", "quality": "low", "stream": True,
                    "partial_images": 3, **LONG}  # fmt: skip
            with httpx.stream("POST", f"{s.base}/v1/images/generations", json=body, timeout=60) as answer:
                for line in answer.iter_lines():
                    if line.startswith("data:"):
                        break  # the first partial image: the job is running on a replica; hang up
            left = time.monotonic()

            def recorded() -> str | None:
                newest = s.history(1)[0]
                return newest["status"] if newest["status"] not in ("queued", "running") else None

            status = wait_until(recorded, 60)
            idle = wait_until(lambda: all(e["depth"] == 0 for e in s.health()["cluster"]["engines"]), 60)
            return {
                "status": status,
                "engines_idle": bool(idle),
                "seconds": round(time.monotonic() - left, 1),
            }

        s.check("disconnect", disconnect)

        def overload() -> dict[str, Any]:
            body = {"model": MODEL, "prompt": "many foxes", "size": "1024x1024", "quality": "low", **LONG}
            # More than both gateways take in flight together (2 x queue depth 3 x 2 replicas = 12).
            with ThreadPoolExecutor(20) as pool:
                answers = list(pool.map(lambda _: s.post(body), range(20)))
            refused = [a for a in answers if a.status_code == 429]
            return {
                "statuses": sorted(a.status_code for a in answers),
                "retry_after": [a.headers.get("retry-after") for a in refused],
                "error_codes": sorted({a.json()["error"]["code"] for a in refused}),
            }

        s.check("overload", overload)

        def node_failure() -> dict[str, Any]:
            # Four images a job: a job must still be running when the kill lands, up to 2 s after the report.
            body = {
                "model": MODEL,
                "prompt": "a fox at night",
                "size": "1024x1024",
                "quality": "low",
                "n": 4,
                **LONG,
            }
            results: list[int] = []

            def one() -> None:
                try:
                    results.append(s.post(body, timeout=150).status_code)
                except httpx.HTTPError as exc:
                    results.append(-1)
                    report["errors"].setdefault("node_failure_requests", []).append(repr(exc))

            threads = [threading.Thread(target=one) for _ in range(4)]
            for t in threads:
                t.start()
            # Kill the worker whose engine replica says it is rendering (its status report in /health,
            # refreshed every 2 s; a job runs for seconds): a job is then in flight on the node that dies.
            # (Killing a fixed node once two jobs had started was flaky: both could run on the other node, as
            # one batch, and then nothing needs a retry.)
            workers = cluster.worker_node_ids()

            def busy_worker() -> str | None:
                engines = s.health().get("cluster", {}).get("engines", [])
                return next(
                    (e["node"] for e in engines if e.get("running") and e.get("node") in workers), None
                )

            killed = cluster.kill_worker(workers.index(wait_until(busy_worker, 60, 0.2)))
            for t in threads:
                t.join(200)
            hung = sum(t.is_alive() for t in threads)
            later = [s.post({**body, "steps": 2}).status_code for _ in range(3)]
            unfinished = [e["id"] for e in s.history(50) if e["status"] in ("queued", "running")]
            return {
                "killed": killed,
                "burst": sorted(results),
                "hung": hung,
                "later": later,
                "unfinished": unfinished,
                # Each health call answers from one gateway: ask a few times to hear from both.
                "retries_seen": max(s.health()["cluster"]["gateway"]["retries"] for _ in range(24)),
            }

        s.check("node_failure", node_failure)

        def metrics() -> dict[str, Any]:
            text = httpx.get(f"{s.base}/metrics", timeout=30).text
            return {
                "labelled": "gouache_http_requests_total{" in text and 'replica="' in text,
                "engine_depth": "gouache_engine_queue_depth{" in text,
            }

        s.check("metrics", metrics)

        def limits() -> dict[str, Any]:
            """Last: once a key exists, anonymous callers are refused. Two gateways answer in turn."""
            from gouache.service.access import KeyService
            from gouache.service.stores import open_store

            store = open_store(settings, migrate=False)
            keys = KeyService(store, require_auth=False)
            _, limited = keys.create("limited", rate_limit_requests=4)
            _, budgeted = keys.create("budgeted", budget_images=1)
            store.close()
            models = [
                httpx.get(f"{s.base}/v1/models", headers={"Authorization": f"Bearer {limited}"}, timeout=30)
                for _ in range(8)
            ]
            paid = [
                httpx.post(
                    f"{s.base}/v1/images/generations", headers={"Authorization": f"Bearer {budgeted}"}, timeout=120,
                    json={"model": MODEL, "prompt": "a coin", "size": "1024x1024", "quality": "low"},
                )
                for _ in range(2)
            ]  # fmt: skip
            return {
                "rate_limited": [a.status_code for a in models],
                "budget": [a.status_code for a in paid],
                "budget_code": paid[-1].json().get("error", {}).get("code"),
            }

        s.check("limits", limits)
    except Exception:
        report["errors"]["setup"] = traceback.format_exc()
    finally:
        if cluster is not None:
            report["ended_pids"] = cluster.stop()
        if pg is not None and cluster is not None:
            # Serve stopped every gateway gracefully: each deleted its member row on the way out.
            s.check("members_after_stop", lambda: member_rows(pg.url, root))
        if pg is not None:
            pg.stop()
        report["total_s"] = round(time.monotonic() - started, 1)
        out.write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    run(Path(sys.argv[1]))
    # Everything it started has ended (by PID, above); do not wait for Ray's exit hooks on a dead cluster.
    sys.stdout.flush()
    os._exit(0)
