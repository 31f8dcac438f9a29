"""`gouache pull`, `gouache models` and `gouache models rm` against a fake hub on loopback (tests/fake_hub.py)
serving a tiny pipeline built here: what is downloaded, that the next server serves it by name, one-line
errors for bad input with nothing left behind, and a failed pull that leaves no entry and resumes."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from openai import OpenAI
from PIL import Image

from gouache.engine.tiny import build_tiny_pipeline
from gouache.models.patterns import SelectionError, parse_ref, select_files
from gouache.settings import Settings
from tests.fake_hub import FakeHub
from tests.live import free_port, start_server

REPO = "org/Tiny-SD"
DECOYS = ("unet/diffusion_pytorch_model.bin", "text_encoder/flax_model.msgpack", "README.md")


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SD pipeline as a hub repo: plain safetensors, an fp16 variant of each, and decoys."""
    from diffusers import DiffusionPipeline

    folder = build_tiny_pipeline("sd1", tmp_path_factory.mktemp("repo") / "tiny-sd")
    pipe = DiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float16)
    pipe.save_pretrained(folder, variant="fp16")
    for decoy in DECOYS:
        (folder / decoy).write_bytes(b"decoy: never downloaded")
    return folder


@pytest.fixture(scope="module")
def hub(repo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    hub = FakeHub().start()
    hub.add(REPO, repo_dir, revisions=("main", "v1"))
    hub.add("org/flaky", repo_dir)
    plain = tmp_path_factory.mktemp("plain")
    (plain / "config.json").write_text("{}")
    hub.add("org/not-diffusers", plain)
    yield hub
    hub.stop()


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture()
def env(hub: FakeHub, home: Path, tmp_path: Path) -> dict[str, str]:
    drop = ("GOUACHE_DATA_DIR", "GOUACHE_CATALOG_FILE", "HF_HUB_OFFLINE", "HF_TOKEN")
    return {
        **{k: v for k, v in os.environ.items() if k not in drop},
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf"),
        "GOUACHE_HOME": str(home),
        "GOUACHE_PORT": str(free_port()),  # `gouache models` asks this port whether a server answers
        "COLUMNS": "250",
    }


def gouache(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gouache.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def catalog(home: Path) -> dict:
    path = home / "models" / "catalog.toml"
    return tomllib.loads(path.read_text()).get("models", {}) if path.is_file() else {}


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0], lines[0]


def assert_nothing_left(home: Path, name: str) -> None:
    models = home / "models"
    assert name not in catalog(home)
    assert not (models / name).exists()
    assert not (models / ".partial").exists() or not any((models / ".partial").iterdir())


def test_pull_downloads_only_needed_files_and_the_next_server_serves_it(
    env: dict[str, str], home: Path, hub: FakeHub, repo_dir: Path
) -> None:
    result = gouache(env, "pull", REPO)
    assert result.returncode == 0, result.stderr
    assert "tiny-sd" in result.stdout and "Traceback" not in result.stderr
    folder = home / "models" / "tiny-sd"
    plain = {f for f in files(repo_dir) if ".fp16." not in f and f not in DECOYS}
    assert files(folder) == plain  # no decoy, no fp16 file, no huggingface_hub metadata
    for decoy in DECOYS:
        assert hub.gets(f"/{decoy}") == 0
    entry = catalog(home)["tiny-sd"]
    assert entry["path"] == "tiny-sd" and entry["family"] == "sd1" and entry["repo"] == REPO
    assert entry["sha"] == hub.repos[REPO][1]["main"]
    assert not (home / "models" / ".partial").exists()

    # The same name again is refused, naming where the existing one came from.
    assert_one_line_error(gouache(env, "pull", REPO), "tiny-sd", REPO)

    server = start_server(home, {"GOUACHE_HOME": str(home), "GOUACHE_PRELOAD": "false"})
    try:
        client = OpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=120)
        image = client.images.generate(
            model="tiny-sd", prompt="a red circle", size="1024x1024", quality="low"
        )
        assert image.data and image.data[0].b64_json
        png = Image.open(io.BytesIO(base64.b64decode(image.data[0].b64_json)))
        assert png.size == (1024, 1024)
        listing = gouache({**env, "GOUACHE_PORT": str(server.port)}, "models")
    finally:
        server.stop()
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "tiny-sd" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[:3] == ["tiny-sd", "sd1", f"pulled {REPO}@{entry['sha'][:12]}"]
    assert cells[3].endswith(("kB", "KB", "MB")) and cells[4] == "cpu" and cells[5] == "yes"
    mini = next(line for line in listing.stdout.splitlines() if "gouache-mini" in line)
    assert "shipped" in mini

    removed = gouache(env, "models", "rm", "tiny-sd")
    assert removed.returncode == 0, removed.stderr
    assert not folder.exists() and "tiny-sd" not in catalog(home)


def test_bad_input_is_one_red_line_and_leaves_nothing(
    env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    cases = [
        (["pull", "org/nope"], "nope", ["org/nope", "not found"]),
        (["pull", f"{REPO}@v9", "--name", "tiny9"], "tiny9", [REPO, "'v9'"]),
        (["pull", "org/not-diffusers"], "not-diffusers", ["org/not-diffusers", "model_index.json"]),
        (["pull", REPO, "--name", "gouache-mini"], "gouache-mini", ["gouache-mini"]),
        (["pull", REPO, "--name", "gpt-image-2"], "gpt-image-2", ["gpt-image-2"]),
        (["pull", REPO, "--variant", "bf16"], "tiny-sd", [REPO, "'bf16'"]),
        (["pull", "not a repo"], "not a repo", ["not a repo"]),
        (["models", "rm", "ghost"], "ghost", ["ghost"]),
        (["models", "rm", "gouache-mini"], "gouache-mini", ["gouache-mini", "shipped"]),
    ]
    for args, name, words in cases:
        result = gouache(env, *args)
        assert_one_line_error(result, *words)
        assert_nothing_left(home, name)
    # A model of the user's catalog file is theirs to edit, not ours to remove.
    user = tmp_path / "mine.toml"
    user.write_text('[models.mine]\npath = "/models/mine"\nfamily = "sd1"\n')
    assert_one_line_error(gouache({**env, "GOUACHE_CATALOG_FILE": str(user)}, "models", "rm", "mine"), "mine")
    assert user.read_text().startswith("[models.mine]")


def test_failed_pull_leaves_no_entry_and_a_retry_resumes(
    env: dict[str, str], home: Path, hub: FakeHub
) -> None:
    vae = "vae/diffusion_pytorch_model.safetensors"
    hub.fail[f"org/flaky/{vae}"] = 1
    before = len(hub.log)
    failed = gouache(env, "pull", "org/flaky@main")
    assert_one_line_error(failed, "org/flaky", "500", "again")
    assert "flaky" not in catalog(home) and not (home / "models" / "flaky").exists()
    assert (home / "models" / ".partial" / "flaky").is_dir()  # kept, to resume from

    first = [p for m, p, s in hub.log[before:] if m == "GET" and "/resolve/" in p and s == 200]
    mark = len(hub.log)
    retried = gouache(env, "pull", "org/flaky@main")
    assert retried.returncode == 0, retried.stderr
    again = [p for m, p, s in hub.log[mark:] if m == "GET" and "/resolve/" in p]
    assert any(p.endswith(vae) for p in again)
    assert first and not set(first) & set(again)  # what the failed pull fetched was reused, not re-fetched
    assert catalog(home)["flaky"]["revision"] == "main"
    assert (home / "models" / "flaky" / vae).is_file()
    assert not (home / "models" / ".partial").exists()


def test_pull_fp16_variant_renames_to_plain_names_and_loads(
    env: dict[str, str], home: Path, repo_dir: Path
) -> None:
    from diffusers import DiffusionPipeline
    from safetensors import safe_open

    result = gouache(env, "pull", f"{REPO}@v1", "--name", "tiny-fp16", "--variant", "fp16")
    assert result.returncode == 0, result.stderr
    folder = home / "models" / "tiny-fp16"
    plain = {f for f in files(repo_dir) if ".fp16." not in f and f not in DECOYS}
    assert files(folder) == plain  # the fp16 files, under the names diffusers loads by default
    with safe_open(folder / "unet" / "diffusion_pytorch_model.safetensors", "pt") as weights:
        assert weights.get_tensor(next(iter(weights.keys()))).dtype == torch.float16
    assert catalog(home)["tiny-fp16"]["variant"] == "fp16"
    pipe = DiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32, local_files_only=True)
    assert pipe.unet.dtype == torch.float32


def test_download_patterns_choose_one_set_of_weights_per_component() -> None:
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "safety_checker": [None, None],
        "requires_safety_checker": False,
    }
    repo = [
        "model_index.json", "README.md", "v1-5-pruned.ckpt", "safety_checker/model.safetensors",
        "scheduler/scheduler_config.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin",
        "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.non_ema.bin",
        "text_encoder/config.json", "text_encoder/flax_model.msgpack",
        "text_encoder/model.safetensors.index.json",
        "text_encoder/model-00001-of-00002.safetensors", "text_encoder/model-00002-of-00002.safetensors",
        "text_encoder/model.safetensors.index.fp16.json",
        "text_encoder/model.fp16-00001-of-00002.safetensors", "text_encoder/model.fp16-00002-of-00002.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.bin",  # no safetensors, no fp16: .bin it is
    ]  # fmt: skip
    plain = select_files(index, repo)
    assert plain.allow_patterns == ["model_index.json", "unet/*", "text_encoder/*", "vae/*", "scheduler/*"]
    assert set(plain.files) == {
        "model_index.json", "scheduler/scheduler_config.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/config.json", "text_encoder/model.safetensors.index.json",
        "text_encoder/model-00001-of-00002.safetensors", "text_encoder/model-00002-of-00002.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.bin",
    }  # fmt: skip
    assert plain.renames == {}
    assert "text_encoder/flax_model.msgpack" in plain.ignore_patterns

    fp16 = select_files(index, repo, variant="fp16")
    assert set(fp16.files) == {
        "model_index.json", "scheduler/scheduler_config.json",
        "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/config.json", "text_encoder/model.safetensors.index.fp16.json",
        "text_encoder/model.fp16-00001-of-00002.safetensors", "text_encoder/model.fp16-00002-of-00002.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.bin",  # a component without fp16 keeps its plain weights
    }  # fmt: skip
    assert fp16.renames == {
        "unet/diffusion_pytorch_model.fp16.safetensors": "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors.index.fp16.json": "text_encoder/model.safetensors.index.json",
        "text_encoder/model.fp16-00001-of-00002.safetensors": "text_encoder/model-00001-of-00002.safetensors",
        "text_encoder/model.fp16-00002-of-00002.safetensors": "text_encoder/model-00002-of-00002.safetensors",
    }
    with pytest.raises(SelectionError, match=r"'bf16'.*fp16"):
        select_files(index, repo, variant="bf16")
    only_fp16 = [f for f in repo if not f.startswith("unet/diffusion_pytorch_model.") or ".fp16." in f]
    with pytest.raises(SelectionError, match=r"'unet'.*--variant fp16"):
        select_files(index, only_fp16)


def test_references_names_and_home_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert (parse_ref("Org/Tiny-SD@v1.0").repo, parse_ref("Org/Tiny-SD@v1.0").revision) == (
        "Org/Tiny-SD",
        "v1.0",
    )
    assert parse_ref("runwayml/sd").revision is None
    for bad in ("", "a/b/c", "org/x@", "../etc"):
        with pytest.raises(SelectionError):
            parse_ref(bad)
    for name in ("GOUACHE_HOME", "GOUACHE_DATA_DIR", "HF_ENDPOINT", "HF_TOKEN", "GOUACHE_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOUACHE_DATA_DIR", str(tmp_path / "old"))
    assert Settings().data_dir == tmp_path / "old"  # the old name keeps working
    monkeypatch.setenv("GOUACHE_HOME", str(tmp_path / "home"))
    settings = Settings()
    assert settings.data_dir == tmp_path / "home"  # the documented name wins
    assert settings.pulled_catalog_file == tmp_path / "home" / "models" / "catalog.toml"
    assert Settings(data_dir=tmp_path / "kw").data_dir == tmp_path / "kw"
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    settings = Settings()
    assert settings.hf_endpoint == "http://127.0.0.1:9" and settings.hf_token is not None
    assert "hf_secret" not in repr(settings)
