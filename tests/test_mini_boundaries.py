"""gouache-mini's import boundaries: the embedded model never reaches into the server, and serving it loads only
what reading a caption needs, not the training renderer or the caption generator."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import gouache.mini

MINI = Path(gouache.mini.__file__).parent
SERVER = ("gouache.service", "gouache.api")
#: Modules only training data and evaluation need: drawing scenes, wording captions, generating scenes.
TRAINING_ONLY = (
    "gouache.mini.scenes.rendering",
    "gouache.mini.scenes.captions",
    "gouache.mini.scenes.generator",
    "gouache.mini.scenes.shapes",
    "gouache.mini.evaluation",
    "gouache.mini.train",
)


def _imported_modules(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names (at any depth, lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _loaded_after(code: str) -> list[str]:
    """The gouache modules in ``sys.modules`` after a fresh interpreter runs ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('gouache'))))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_mini_source_names_nothing_of_the_server() -> None:
    files = sorted(MINI.rglob("*.py"))
    assert len(files) > 10
    offending = {
        str(f.relative_to(MINI)): sorted(m for m in _imported_modules(f) if m.startswith(SERVER))
        for f in files
    }
    assert {f: m for f, m in offending.items() if m} == {}


def test_serving_loads_no_server_and_no_training_renderer() -> None:
    loaded = _loaded_after(
        "import gouache.mini.pipeline, gouache.mini.reading\n"
        "from gouache.mini.reading import layout_tokens\n"
        "layout_tokens('a sign that says HELLO above a red star')"
    )
    assert "gouache.mini.scenes.request" in loaded and "gouache.mini.grounding" in loaded
    assert [m for m in loaded if m.startswith(SERVER + TRAINING_ONLY)] == []


def test_all_of_mini_loads_without_the_server() -> None:
    modules = sorted(
        ".".join(("gouache", *f.relative_to(MINI.parent).with_suffix("").parts)).removesuffix(".__init__")
        for f in MINI.rglob("*.py")
    )
    loaded = _loaded_after("".join(f"import {m}\n" for m in modules))
    assert set(modules) <= set(loaded)
    assert [m for m in loaded if m.startswith(SERVER)] == []
