"""The CUDA-only lines, on a real GPU: device selection, float16, offload (asked for and chosen when memory is
short), a single-file checkpoint, LoRA, an edit, torch.compile and VAE tiling's memory, on tiny pipelines at
64 px and two steps. Skipped where torch sees no CUDA device; `scripts/gpu-check.sh` runs them (README "GPUs").
Everything that can run on a CPU is tested in tests/test_devices.py."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from gouache.engine import devices
from gouache.engine.catalog import SamplingPlan, spec_from_entry
from gouache.engine.jobs import EditInputs, RenderJob, RenderResult
from gouache.engine.pipelines import ModelCache
from gouache.engine.runner import Runner

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (scripts/gpu-check.sh)"),
]


def _spec(path: Path, **entry: Any) -> Any:
    return spec_from_entry("tiny", {"path": str(path), "resolution": 64, **entry}, base=None, source="test")


def _render(cache: ModelCache, spec: Any, seed: int = 7, edit: EditInputs | None = None) -> RenderResult:
    job = RenderJob(spec, "a red square", SamplingPlan(2, 2.0), 64, 64, (seed,), edit=edit)
    return Runner(cache).render(job)


def _pixels(result: RenderResult) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(result.images[0].data)).convert("RGB"), dtype=np.float64)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(float(np.mean((a - b) ** 2)), 1e-9)))


def test_auto_picks_the_gpu_in_float16(tiny_models: dict[str, Path]) -> None:
    cache = ModelCache(device="auto")
    assert cache.default_device() == "cuda:0"
    model = cache.get(_spec(tiny_models["sd1"]))
    assert model.pipeline.unet.device.type == "cuda" and model.pipeline.unet.dtype == torch.float16
    assert not devices.runs_on_cpu(model.pipeline) and model.backend == "pytorch"
    result = _render(cache, model.spec)
    assert (result.device, result.dtype) == ("cuda:0", "float16")
    assert cache.describe()["tiny"]["device"] == "cuda:0"
    assert _pixels(result).shape == (64, 64, 3)


def test_a_seed_means_the_same_image_on_cpu_and_gpu(tiny_models: dict[str, Path]) -> None:
    """Generators stay on the CPU: float32 on the GPU gives the CPU's picture (up to kernel rounding), float16
    the same picture in lower precision."""
    cpu = _pixels(_render(ModelCache(device="cpu"), _spec(tiny_models["sd1"])))
    gpu32 = _pixels(_render(ModelCache(device="cuda", dtype="float32"), _spec(tiny_models["sd1"])))
    gpu16 = _pixels(_render(ModelCache(device="cuda:0", dtype="float16"), _spec(tiny_models["sd1"])))
    assert _psnr(cpu, gpu32) > 35
    assert _psnr(cpu, gpu16) > 20


def test_bfloat16_on_the_gpu(tiny_models: dict[str, Path]) -> None:
    result = _render(ModelCache(device="cuda"), _spec(tiny_models["sd1"], dtype="bfloat16"))
    assert result.dtype == "bfloat16" and _pixels(result).shape == (64, 64, 3)


def test_offload_when_asked(tiny_models: dict[str, Path]) -> None:
    cache = ModelCache(device="cuda")
    spec = _spec(tiny_models["sd1"], memory=["offload", "attention_slicing"])
    model = cache.get(spec)
    assert model.placement.memory.offload and model.placement.in_main_memory
    assert model.pipeline.unet.device.type == "cpu"  # resting in main memory, moved in for each step
    assert not devices.runs_on_cpu(model.pipeline)  # ...but computing on the GPU
    result = _render(cache, spec)
    assert result.memory == ("offload", "attention_slicing")
    plain = _render(ModelCache(device="cuda"), _spec(tiny_models["sd1"]))
    assert _psnr(_pixels(result), _pixels(plain)) > 30


def test_offload_is_chosen_when_the_gpu_is_short(tiny_models: dict[str, Path]) -> None:
    cache = ModelCache(device="cuda", free_memory=lambda device: 1024)  # as if the GPU were full
    model = cache.get(_spec(tiny_models["sd1"]))
    assert model.placement.memory.offload and model.placement.memory.attention_slicing
    assert _render(cache, model.spec).memory == ("offload", "attention_slicing")


def test_free_memory_is_read_from_the_driver() -> None:
    free = devices.free_bytes("cuda:0")
    assert free is not None and 0 < free <= torch.cuda.get_device_properties(0).total_memory


def test_single_file_checkpoint_on_the_gpu(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    from gouache.engine.tiny_single_file import write_single_file

    checkpoint = write_single_file(tiny_models["sd1"], "sd1", tmp_path / "tiny-sd1.safetensors")
    cache = ModelCache(device="cuda")
    model = cache.get(_spec(checkpoint, family="sd1"))
    assert model.pipeline.unet.dtype == torch.float16 and model.pipeline.unet.device.type == "cuda"
    assert _render(cache, model.spec).device == "cuda:0"


def test_lora_on_the_gpu(tiny_models: dict[str, Path]) -> None:
    peft = pytest.importorskip("peft")
    cache = ModelCache(device="cuda")
    spec = _spec(tiny_models["sd1"])
    before = _pixels(_render(cache, spec))
    unet = cache.get(spec).pipeline.unet
    config = peft.LoraConfig(
        r=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False
    )
    unet.add_adapter(config)
    after = _pixels(_render(cache, spec))
    assert not np.array_equal(before, after)


def test_edit_on_the_gpu(tiny_models: dict[str, Path]) -> None:
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    cache = ModelCache(device="cuda")
    result = _render(cache, _spec(tiny_models["sd1"]), edit=EditInputs((image,), mask, 1.0))
    pixels = _pixels(result)
    assert result.device == "cuda:0" and pixels.shape == (64, 64, 3)
    assert np.abs(pixels[:8, :8] - (200, 30, 30)).max() < 40  # outside the mask, the input is kept


def test_torch_compile_when_asked(tiny_models: dict[str, Path]) -> None:
    cache = ModelCache(device="cuda")
    spec = _spec(tiny_models["sd1"], compile=True)
    compiled = _pixels(_render(cache, spec))
    plain = _pixels(_render(ModelCache(device="cuda"), _spec(tiny_models["sd1"])))
    assert _psnr(compiled, plain) > 30


def test_tiled_4k_decode_needs_less_than_an_untiled_2k_one(tiny_models: dict[str, Path]) -> None:
    """The issue's bound, on the GPU's own allocator: decoding a 3840x2160 latent with tiling peaks below
    decoding a 2048x2048 one without."""
    vae = ModelCache(device="cuda").get(_spec(tiny_models["sd1"])).pipeline.vae

    def peak(width: int, height: int, tiled: bool) -> int:
        latent = torch.randn(1, 4, height // 8, width // 8, device="cuda", dtype=vae.dtype)
        vae.enable_tiling() if tiled else vae.disable_tiling()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.inference_mode():
            vae.decode(latent)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    assert peak(3840, 2160, True) < peak(2048, 2048, False)
