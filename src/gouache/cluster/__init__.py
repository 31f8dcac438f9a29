"""Scale-out on Ray Serve (`gouache serve --ray`; design note 42).

The same FastAPI app runs as a **gateway** deployment (`serve.ingress`, stateless, any number of replicas)
whose engine is a :class:`~gouache.cluster.client.RayEngineClient`; each served model runs as an **engine**
deployment whose replicas build their own model cache, runner and job queue from `Settings`, so batching,
warm start and cancellation work per replica exactly as in one process. State lives in one SQL database and
one blob directory shared by every gateway.

Only this package imports `ray`, and only `gouache serve --ray` (or `serve run serve_config.yaml`) imports
this package: everything else works without the `gouache[ray]` extra."""
