"""Shared fixtures: tiny pipelines of every family, and a real server process driven over loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from gouache.engine.tiny import FAMILIES, build_tiny_pipeline
from tests.live import LiveServer, start_server
from tests.postgres import start_postgres

# The suite renders on PyTorch (converting every tiny model to OpenVINO would only slow it down);
# tests/test_backend.py turns the optimised backend on where it checks it.
os.environ.setdefault("GOUACHE_BACKEND", "pytorch")
# Servers sign nothing unless a test asks: many tests compare the bytes of two renders of one seed, and every
# C2PA signing is unique by design (design note 38). tests/test_provenance.py starts a signing server.
os.environ.setdefault("GOUACHE_PROVENANCE", "false")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL: GOUACHE_TEST_POSTGRES_URL if set, else a server started here. Skipped only outside CI
    when the binaries are missing (`make test` installs them)."""
    url = os.environ.get("GOUACHE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        server = start_postgres()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {family: build_tiny_pipeline(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="session")
def catalog_file(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user catalog with one tiny model per family, rendering at 64 px with two steps per tier."""
    lines = []
    for family, path in tiny_models.items():
        lines += [
            f"[models.tiny-{family}]",
            f'path = "{path}"',
            "resolution = 64",
            "",
        ]
        for quality in ("low", "medium", "high"):
            lines += [f"[models.tiny-{family}.plans.{quality}]", "steps = 2", "guidance = 2.0", ""]
    path = tmp_path_factory.mktemp("catalog") / "catalog.toml"
    path.write_text("\n".join(lines))
    return path


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, catalog_file: Path) -> Iterator[LiveServer]:
    # Provenance off: tests on this server compare bytes across renders (result cache off, batched vs alone,
    # streamed vs plain), and every C2PA signing is unique by design (c2pa-rs salts each assertion at random).
    # Signed output is tested on its own server in tests/test_provenance.py.
    env = {"GOUACHE_CATALOG_FILE": str(catalog_file), "GOUACHE_PROVENANCE": "false"}
    live = start_server(tmp_path_factory.mktemp("server"), env)
    yield live
    live.stop()


@pytest.fixture()
def client(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0, timeout=120)
