"""The CLI in-process, and start-up failures that must name the broken path."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from gouache.cli import app
from gouache.engine.catalog import Catalog, CatalogError
from tests.live import start_server


def test_generate_writes_exact_size_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOUACHE_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "out.png"
    result = CliRunner().invoke(
        app, ["generate", "a red circle", "--size", "1024x640", "--quality", "low", "--seed", "4", "-n", "2",
              "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    first, second = tmp_path / "out-1.png", tmp_path / "out-2.png"
    assert Image.open(first).size == (1024, 640)
    assert first.read_bytes() != second.read_bytes()
    assert "seed=4" in result.output and "seed=5" in result.output


def test_generate_reports_invalid_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOUACHE_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["generate", "x", "--size", "100x100", "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "(size)" in output and "divisible by 16" in output


def test_train_mini_reports_wrong_options_without_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train-mini", "--tiny", "--out", str(tmp_path / "run"), "--rewarm", "0.3"]
    )
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "--rewarm continues a run: pass --resume" in output and "Traceback" not in output
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_models_lists_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_file: Path) -> None:
    monkeypatch.setenv("GOUACHE_CATALOG_FILE", str(catalog_file))
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "gouache-mini" in result.output and "tiny-flux" in result.output and "gpt-image-2" in result.output


def test_missing_default_model_directory_fails_at_startup_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(RuntimeError) as info:
        start_server(tmp_path / "data", {"GOUACHE_DEFAULT_MODEL": str(missing)}, timeout=60)
    assert str(missing) in str(info.value)


def test_broken_model_directory_fails_at_startup_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "unet").mkdir(parents=True)
    (broken / "model_index.json").write_text(
        '{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}'
    )
    with pytest.raises(RuntimeError) as info:
        start_server(tmp_path / "data", {"GOUACHE_DEFAULT_MODEL": str(broken)}, timeout=60)
    assert str(broken) in str(info.value)


def test_catalog_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "cat.toml"
    bad.write_text('[models.x]\npath = "/nowhere"\nfamily = "sd1"\n[models.x.plans.low]\nsteps = "many"\n')
    with pytest.raises(CatalogError) as info:
        Catalog.load(bad)
    assert str(bad) in str(info.value) and "plans.low" in str(info.value)
    with pytest.raises(CatalogError) as info:
        Catalog.load(tmp_path / "absent.toml")
    assert "absent.toml" in str(info.value)
    bad.write_text('[models.y]\npath = "/nowhere"\n')
    with pytest.raises(CatalogError) as info:
        Catalog.load(bad)
    assert "/nowhere" in str(info.value)


def test_serve_directory_as_default_model(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    import httpx

    server = start_server(tmp_path / "data", {"GOUACHE_DEFAULT_MODEL": str(tiny_models["sdxl"])})
    try:
        models = httpx.get(f"{server.base_url}/models/gpt-image-2").json()
        assert models["family"] == "sdxl" and models["root"] == "sdxl"
        response = httpx.post(
            f"{server.base_url}/images/generations",
            json={"prompt": "x", "size": "1024x1024", "quality": "low", "steps": 2},
            timeout=120,
        )
        assert response.status_code == 200, response.text
    finally:
        server.stop()


def test_edit_command_inpaints_with_mask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOUACHE_DATA_DIR", str(tmp_path / "data"))
    source = Image.new("RGB", (1024, 640), (20, 120, 200))
    source.save(tmp_path / "in.png")
    mask = Image.new("RGBA", (1024, 640), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (400, 200, 600, 400))
    mask.save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    result = CliRunner().invoke(
        app, ["edit", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"), "-p", "a star",
              "--quality", "low", "--seed", "3", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    edited = Image.open(out).convert("RGB")
    assert edited.size == (1536, 1024)  # size auto keeps the input's aspect
    assert edited.getpixel((10, 10)) == (20, 120, 200)
