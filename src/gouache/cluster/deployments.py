"""The two Serve deployments and the application that ties them together.

- :class:`EngineReplica`: one per served model, any number of replicas. Each replica builds this process's
  engine (`build_engine`: model cache, runner, job queue) from the `Settings` it is given, warms its model
  up, and renders jobs sent by the gateways as streaming calls (events: started, progress, result/error).
- :class:`Gateway`: our FastAPI app (`create_app`) through `serve.ingress`, built in each replica with a
  :class:`~gouache.cluster.client.RayEngineClient` as its engine. Stateless: the database and blob
  directory hold everything, so there may be any number of gateway replicas.

:func:`build_application` returns the Serve application (`serve.run` it); :func:`app_builder` is the same
for `serve run` / `serve deploy` with a `serve_config.yaml` (see README, "Scale-out on Ray Serve")."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import ray
from ray import serve
from ray.exceptions import TaskCancelledError
from ray.serve.config import BackpressureConfig
from ray.serve.deployment import Deployment
from ray.serve.exceptions import RequestCancelledError
from ray.serve.handle import DeploymentHandle
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gouache.cluster.client import RayEngineClient, engine_deployment_name
from gouache.engine.client import Lane, QueueFull, ShuttingDown
from gouache.engine.jobs import Progress, RenderJob
from gouache.engine.warmup import check_model, warm_jobs
from gouache.settings import Settings

log = logging.getLogger(__name__)

#: Concurrent HTTP requests one gateway replica takes before Serve queues them (Serve's default, 5, would
#: hold streams and slow renders back at the proxy).
GATEWAY_MAX_ONGOING = 256
#: Requests Serve queues per gateway before it answers 429 itself (with Retry-After, not its bare 503).
GATEWAY_MAX_QUEUED = 256
#: Calls an engine replica takes beyond GOUACHE_QUEUE_DEPTH (room for the gateways' status calls). Its job
#: queue is as deep as Serve's limit, so the queue never refuses what Serve's router sends: the router holds
#: the rest until a replica has room, and a gateway refuses (429) past `depth x replicas` jobs in flight.
ENGINE_SPARE_ONGOING = 2
#: A replica in `/health`'s cluster.replicas: field -> the key of an engine replica's status report.
_REPLICA_FIELDS = {"deployment": "deployment", "replica": "replica", "node_id": "node", "pid": "pid"}
#: Retry-After (seconds) of Serve's own 429s.
BACKPRESSURE_RETRY_AFTER_S = 2


@serve.deployment
class EngineReplica:
    """One engine replica: its own model cache, runner and job queue (batching and warm start per replica)."""

    def __init__(self, settings: Settings, model: str) -> None:
        from gouache.service.container import build_catalog, build_engine

        logging.basicConfig(level=settings.log_level.upper())
        self.settings = settings
        catalog, default = build_catalog(settings)
        spec = catalog.resolve(model) or default
        check_model(spec)
        depth = settings.queue_depth + ENGINE_SPARE_ONGOING
        self.cache, self.queue = build_engine(settings.model_copy(update={"queue_depth": depth}))
        if settings.preload:
            self.queue.warm_up(spec.name, warm_jobs(spec))
        context = serve.get_replica_context()
        self.where: dict[str, Any] = {
            "replica": context.replica_id.unique_id,
            "deployment": context.deployment,
            "node": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
        }

    async def render(
        self, job: RenderJob, remaining_s: float | None, lane: Lane
    ) -> AsyncIterator[tuple[str, Any]]:
        """Run `job` on this replica's queue, yielding ("queued", {"warming": bool}), ("started", where and
        "warm_wait_s"), ("progress", Progress)..., then ("result", RenderResult) or ("error", exception).
        Cancelling the call cancels the job.

        A job queued while this replica warms up does not count that wait against its deadline (the queue
        moves the deadline later): "queued" says whether it waits, and "started" by how much the deadline
        moved, so that the gateway's own deadline moves alike."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        deadline = None if remaining_s is None else time.monotonic() + remaining_s
        try:

            def on_progress(progress: Progress) -> None:  # on the queue's worker thread
                loop.call_soon_threadsafe(events.put_nowait, ("progress", progress))

            def on_start() -> None:
                loop.call_soon_threadsafe(events.put_nowait, ("started", self.where))

            handle = self.queue.submit(job, on_progress, on_start=on_start, deadline=deadline, lane=lane)
        except (QueueFull, ShuttingDown) as exc:
            yield ("error", exc)
            return
        done = asyncio.wrap_future(handle.future)
        done.add_done_callback(_retrieve)

        def told(event: tuple[str, Any]) -> tuple[str, Any]:
            if event[0] != "started":
                return event
            moved = 0.0 if deadline is None or handle.deadline is None else handle.deadline - deadline
            return ("started", {**event[1], "warm_wait_s": max(0.0, moved)})

        try:
            yield ("queued", {"warming": handle.warm_wait_from is not None})
            while not done.done():
                getter = asyncio.ensure_future(events.get())
                waiting: list[asyncio.Future[Any]] = [getter, done]
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield told(getter.result())
                else:
                    getter.cancel()
            while not events.empty():
                yield told(events.get_nowait())
            failure = done.exception()
            if failure is not None:
                yield ("error", _portable(failure))
                return
            result = done.result()
            result.placement = {"replica": self.where["replica"], "node": self.where["node"]}
            yield ("result", result)
        except (asyncio.CancelledError, GeneratorExit):
            handle.cancel()  # the gateway went away (client disconnect, deadline): stop after this step
            raise

    def status(self) -> dict[str, Any]:
        """This replica's queue and models, for the gateways' `/health` and `/v1/models`."""
        return {
            **self.where,
            "depth": self.queue.depth,
            "running": self.queue.running,
            "warming": self.queue.warming,
            "warm_up": self.queue.warm_report(),
            "loaded": self.cache.loaded(),
            "backends": self.cache.backends(),
            "models": self.cache.describe(),
            "device": self.cache.default_device(),
            "used_bytes": self.cache.used_bytes,
            "budget_bytes": self.cache.budget_bytes,
        }

    def __del__(self) -> None:
        queue = getattr(self, "queue", None)
        if queue is not None:
            queue.stop(timeout=self.settings.grace_period_s)


@serve.deployment
@serve.ingress()
class Gateway:
    """The OpenAI-compatible API, with the cluster's engine replicas as its engine."""

    def __init__(
        self, settings: Settings, engines: dict[str, DeploymentHandle], default_model: str, max_in_flight: int
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.default_model = default_model
        #: Jobs this replica keeps in flight at most before it answers 429 itself.
        self.max_in_flight = max_in_flight

    def __serve_build_asgi_app__(self) -> ASGIApp:
        from gouache.api.app import create_app
        from gouache.cluster.topology import cluster_report, gateway_replicas
        from gouache.service.container import Services, build_services
        from gouache.service.leases import Member, Membership

        settings = self.settings
        client = RayEngineClient(self.engines, self.default_model, max_queue=self.max_in_flight)
        context = serve.get_replica_context()
        where = {"replica": context.replica_id.unique_id, "node": ray.get_runtime_context().get_node_id()}
        pid = os.getpid()
        # This gateway's row in the shared database, so that every gateway lists every other (`/health`).
        me = Member(where["replica"], "gateway", where["node"], ray.util.get_node_ip_address(), pid)
        membership: Membership | None = None

        async def cluster() -> dict[str, Any]:
            gone: int | None = None
            try:
                roster = await asyncio.to_thread(membership.roster) if membership is not None else None
                live, gone = (roster.live, roster.gone) if roster is not None else ([], None)
            except Exception as exc:  # report, never fail the health check
                log.warning("could not read the cluster's members: %s", exc)
                live = []
            known = [
                *gateway_replicas(me, live),
                *(
                    {k: r.get(v) for k, v in _REPLICA_FIELDS.items()}
                    for r in client.models.reports
                    if "replica" in r
                ),
            ]
            report = await asyncio.to_thread(cluster_report, known)
            report["gateways_gone"] = gone
            report["gateway"] = {**where, "retries": client.retries}
            report["engines"] = [
                {
                    k: r.get(k)
                    for k in ("replica", "deployment", "node", "depth", "running", "warming", "loaded")
                }
                for r in client.models.reports
            ]
            return report

        def build(s: Settings) -> Services:
            services = build_services(s, (client.models, client), recover=False, cluster=cluster)
            services.ops.metrics.instance = where
            services.ops.metrics.extra = lambda: engine_gauges(client.models.reports)
            nonlocal membership
            membership = services.membership = Membership(services.store, me)
            return services

        # The Batch API's lines run on one gateway replica at a time, the holder of a lease in the database:
        # no line renders twice, and if that replica dies another takes the batches over (service/leases.py).
        holder = f"gateway {where['replica']} on {where['node']} (pid {pid})"
        app = create_app(settings, build=build, on_start=client.start_refreshing, batch_lease_holder=holder)
        return DisconnectAsMessage(app)


@dataclass(frozen=True)
class ClusterOptions:
    """The knobs of `gouache serve --ray` (README, "Scale-out on Ray Serve")."""

    #: Models with an engine deployment of their own (the first is the default: it renders the others).
    models: tuple[str, ...]
    #: Engine replicas per model.
    replicas: int = 1
    #: Gateway replicas (the HTTP API).
    gateways: int = 1
    #: CPUs and GPUs Ray reserves for each engine replica.
    engine_cpus: float = 1.0
    engine_gpus: float = 0.0
    #: At most this many engine replicas of one model per node (None: no limit).
    max_replicas_per_node: int | None = None
    #: Where Serve runs HTTP proxies: "EveryNode" (Ray's default: any node answers) or "HeadOnly".
    proxy_location: str = "EveryNode"
    #: Ray resources each gateway replica needs (e.g. {"node:__internal_head__": 0.01} keeps them on the
    #: head node); none by default, so gateways go wherever Serve spreads them.
    gateway_resources: dict[str, float] | None = None


def build_application(settings: Settings, options: ClusterOptions) -> Any:
    """The Serve application: the gateway bound to one engine deployment per model."""
    # One gateway keeps at most as many jobs in flight as the engine replicas' queues hold together; Serve
    # queues no more than all gateways can send (its own refusal is a 429 too, but ours says when to retry).
    max_in_flight = settings.queue_depth * options.replicas * len(options.models)
    engines = {}
    for model in options.models:
        deployment = cast(Deployment, EngineReplica).options(
            name=engine_deployment_name(model),
            num_replicas=options.replicas,
            ray_actor_options={"num_cpus": options.engine_cpus, "num_gpus": options.engine_gpus},
            max_ongoing_requests=settings.queue_depth + ENGINE_SPARE_ONGOING,
            max_queued_requests=max_in_flight * options.gateways,
            backpressure_config=BackpressureConfig(status_code=429, retry_after_s=BACKPRESSURE_RETRY_AFTER_S),
            graceful_shutdown_timeout_s=max(1.0, settings.grace_period_s),
        )
        if options.max_replicas_per_node:
            deployment = deployment.options(max_replicas_per_node=options.max_replicas_per_node)
        engines[model] = deployment.bind(settings, model)
    gateway = cast(Deployment, Gateway).options(
        name="gateway",
        num_replicas=options.gateways,
        ray_actor_options={"num_cpus": 0, "resources": options.gateway_resources or {}},
        max_ongoing_requests=GATEWAY_MAX_ONGOING,
        max_queued_requests=GATEWAY_MAX_QUEUED,
        backpressure_config=BackpressureConfig(status_code=429, retry_after_s=BACKPRESSURE_RETRY_AFTER_S),
        graceful_shutdown_timeout_s=max(1.0, settings.grace_period_s),
    )
    return gateway.bind(settings, engines, options.models[0], max_in_flight)


class DisconnectAsMessage:
    """Serve's `receive` raises (`TaskCancelledError`) when the client has gone, where ASGI servers send an
    `http.disconnect` message: Starlette's streaming responses listen for that message, so turn one into
    the other (the request is then cancelled and recorded as such, without an 'unhandled error')."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_or_disconnect() -> Message:
            try:
                return await receive()
            except (TaskCancelledError, RequestCancelledError):
                return {"type": "http.disconnect"}

        await self.app(scope, receive_or_disconnect, send)


def engine_gauges(reports: list[dict[str, Any]]) -> str:
    """The engine replicas' queue gauges (from their last status reports), one series per replica."""
    lines = [
        "# HELP gouache_engine_queue_depth Render jobs waiting or running on an engine replica.",
        "# TYPE gouache_engine_queue_depth gauge",
    ]
    for r in reports:
        labels = (
            f'engine_replica="{r.get("replica")}",node="{r.get("node")}",deployment="{r.get("deployment")}"'
        )
        lines.append(f"gouache_engine_queue_depth{{{labels}}} {float(r.get('depth', 0))}")
    return "\n".join(lines) + "\n"


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling (it crosses to the gateway), else a RuntimeError with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
