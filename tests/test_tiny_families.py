"""The tiny random pipelines of every family build, save, reload offline and render deterministically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

from gouache.engine.tiny import FAMILIES, SIZE_MULTIPLE, VAE_SCALE, build_tiny_pipeline

MAX_BYTES = 5 * 1024 * 1024

EXPECTED_CLASS = {
    "sd1": "StableDiffusionPipeline",
    "sd2": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd3": "StableDiffusion3Pipeline",
    "flux": "FluxPipeline",
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _load(family: str, path: Path) -> Any:
    build_tiny_pipeline(family, path, seed=0)
    pipe = DiffusionPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_families_and_size_tables_agree() -> None:
    assert set(SIZE_MULTIPLE) == set(FAMILIES) == set(VAE_SCALE)
    for family in FAMILIES:
        assert SIZE_MULTIPLE[family] % VAE_SCALE[family] == 0


def test_unknown_family_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown family"):
        build_tiny_pipeline("sd9", tmp_path / "nope")


@pytest.mark.parametrize("family", FAMILIES)
def test_build_load_and_render(family: str, tmp_path: Path) -> None:
    path = tmp_path / family
    assert build_tiny_pipeline(family, path) == path
    assert _folder_bytes(path) < MAX_BYTES
    assert (path / "model_index.json").is_file()

    pipe: Any = DiffusionPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == EXPECTED_CLASS[family]

    def render() -> np.ndarray:
        out = pipe(
            "a red fox in the snow",
            num_inference_steps=2,
            height=64,
            width=64,
            generator=torch.Generator("cpu").manual_seed(1234),
        )
        image = out.images[0]
        assert image.size == (64, 64)
        return np.asarray(image)

    first, second = render(), render()
    assert np.array_equal(first, second)


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_builds_same_weights(family: str, tmp_path: Path) -> None:
    a = build_tiny_pipeline(family, tmp_path / "a", seed=3)
    b = build_tiny_pipeline(family, tmp_path / "b", seed=3)
    for file_a in sorted(a.rglob("*.safetensors")):
        assert file_a.read_bytes() == (b / file_a.relative_to(a)).read_bytes()


@pytest.mark.parametrize("family", FAMILIES)
def test_non_square_batch_with_negative_prompt(family: str, tmp_path: Path) -> None:
    pipe = _load(family, tmp_path / family)
    cfg = {"true_cfg_scale": 2.0, "guidance_scale": 3.5} if family == "flux" else {"guidance_scale": 5.0}
    out = pipe(
        "a red fox in the snow",
        negative_prompt="blurry",
        num_inference_steps=2,
        height=64,
        width=96,
        num_images_per_prompt=2,
        generator=[torch.Generator("cpu").manual_seed(s) for s in (1, 2)],
        **cfg,
    )
    assert [image.size for image in out.images] == [(96, 64), (96, 64)]
    assert not np.array_equal(np.asarray(out.images[0]), np.asarray(out.images[1]))
