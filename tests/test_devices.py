"""Devices, dtypes and memory strategies: the pure choices with injected facts (no torch globals mocked), the
catalog keys, the start-up refusal, and the CPU paths for real (bf16, attention slicing, VAE tiling, records).
The CUDA-only lines run in tests/test_gpu.py (scripts/gpu-check.sh)."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from gouache.engine import devices
from gouache.engine.catalog import Catalog, CatalogError, SamplingPlan, spec_from_entry
from gouache.engine.devices import Accelerators, DeviceError, MemoryStrategy, choose_memory
from gouache.engine.jobs import RenderJob
from gouache.engine.pipelines import ModelCache
from gouache.engine.runner import Runner
from gouache.service.container import check_devices
from gouache.settings import Settings
from tests.live import LiveServer, start_server

CPU_ONLY = Accelerators()
TWO_GPUS = Accelerators(cuda_devices=2)
MAC = Accelerators(mps=True)
GiB = 2**30

# --- device strings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("auto", "auto"), ("cpu", "cpu"), (" CUDA ", "cuda"), ("cuda:0", "cuda:0"), ("cuda:12", "cuda:12"),
     ("mps", "mps")],
)  # fmt: skip
def test_device_strings_parse(text: str, canonical: str) -> None:
    assert devices.parse_device(text) == canonical


@pytest.mark.parametrize("text", ["gpu", "", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "mps:1", "tpu", "cuda0"])
def test_unknown_device_strings_are_refused_naming_them(text: str) -> None:
    with pytest.raises(DeviceError) as info:
        devices.parse_device(text)
    assert repr(text) in str(info.value) and "cuda:N" in str(info.value)


@pytest.mark.parametrize(
    ("text", "available", "device"),
    [
        ("auto", CPU_ONLY, "cpu"),
        ("auto", MAC, "mps"),
        ("auto", TWO_GPUS, "cuda:0"),
        ("auto", Accelerators(cuda_devices=1, mps=True), "cuda:0"),
        ("cpu", TWO_GPUS, "cpu"),
        ("cuda", TWO_GPUS, "cuda:0"),
        ("cuda:1", TWO_GPUS, "cuda:1"),
        ("mps", MAC, "mps"),
    ],
)
def test_devices_resolve_against_what_is_there(text: str, available: Accelerators, device: str) -> None:
    assert devices.resolve_device(text, available) == device


@pytest.mark.parametrize(
    ("text", "available", "says"),
    [
        ("cuda", CPU_ONLY, "no CUDA device"),
        ("cuda:0", MAC, "no CUDA device"),
        ("cuda:2", TWO_GPUS, "2 CUDA device(s), cuda:0 to cuda:1"),
        ("mps", TWO_GPUS, "no Apple MPS device"),
    ],
)
def test_missing_devices_are_refused_naming_them(text: str, available: Accelerators, says: str) -> None:
    with pytest.raises(DeviceError) as info:
        devices.resolve_device(text, available)
    assert repr(text) in str(info.value) and says in str(info.value)


def test_probe_reads_this_machine() -> None:
    facts = devices.probe()
    assert facts.cuda_devices == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


# --- dtypes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "device", "dtype"),
    [
        ("auto", "cpu", torch.float32),
        ("auto", "cuda:0", torch.float16),
        ("auto", "mps", torch.float16),
        ("float32", "cuda:1", torch.float32),
        ("bfloat16", "cpu", torch.bfloat16),
        ("float16", "cpu", torch.float16),
        (" BFloat16", "cuda:0", torch.bfloat16),
    ],
)
def test_dtypes_resolve(text: str, device: str, dtype: torch.dtype) -> None:
    assert devices.resolve_dtype(text, device) == dtype


def test_unknown_dtype_is_refused_naming_it() -> None:
    with pytest.raises(DeviceError) as info:
        devices.resolve_dtype("fp8", "cpu")
    assert "'fp8'" in str(info.value) and "bfloat16" in str(info.value)


def test_weight_bytes_follow_the_dtype() -> None:
    assert devices.weight_bytes(4000, torch.float32) == 4000
    assert devices.weight_bytes(4000, torch.float16) == 2000
    assert devices.weight_bytes(4000, torch.bfloat16) == 2000
    assert devices.dtype_name(torch.bfloat16) == "bfloat16"


# --- memory strategies -----------------------------------------------------------------------------


def test_memory_values_parse() -> None:
    assert devices.parse_memory("auto") == "auto"
    assert devices.parse_memory([]) == ()
    assert devices.parse_memory(["vae_tiling", "offload"]) == ("offload", "vae_tiling")
    for bad in ("offload", ["swap"], 3, {"offload": True}):
        with pytest.raises(DeviceError):
            devices.parse_memory(bad)


def test_auto_on_the_cpu_only_tiles_big_decodes() -> None:
    strategy = choose_memory("auto", "cpu", model_bytes=100 * GiB, free_bytes=None)
    assert strategy == MemoryStrategy()
    assert not strategy.offload and not strategy.attention_slicing
    assert strategy.names(2048, 2048) == ()
    assert strategy.names(3840, 2160) == ("vae_tiling",)
    assert strategy.names(2160, 3840) == ("vae_tiling",)
    assert strategy.names(2064, 512) == ("vae_tiling",)


@pytest.mark.parametrize(
    ("model_gib", "free_gib", "offload", "slicing"),
    [
        (2, 40, False, False),  # plenty of room
        (4, 8, False, False),  # exactly half: still fits beside the activations
        (5, 8, False, True),  # more than half: slice attention
        (6.4, 8, False, True),  # exactly 80 %
        (7, 8, True, True),  # more than 80 %: offload (and slice)
        (20, 8, True, True),  # larger than the whole GPU
    ],
)
def test_auto_on_a_gpu_follows_free_memory(
    model_gib: float, free_gib: float, offload: bool, slicing: bool
) -> None:
    strategy = choose_memory("auto", "cuda:0", int(model_gib * GiB), int(free_gib * GiB))
    assert (strategy.offload, strategy.attention_slicing) == (offload, slicing)
    assert strategy.tile_above_px == devices.TILE_ABOVE_PX


def test_auto_with_unknown_free_memory_offloads_nothing() -> None:
    assert choose_memory("auto", "mps", 50 * GiB, None) == MemoryStrategy()


def test_listed_measures_are_taken_as_asked() -> None:
    gpu = choose_memory(("offload", "attention_slicing", "vae_tiling"), "cuda:0", 1, 100 * GiB)
    assert (gpu.offload, gpu.attention_slicing) == (True, True)
    assert gpu.names(64, 64) == ("offload", "attention_slicing", "vae_tiling")  # tiling: every decode
    none = choose_memory((), "cuda:0", 100 * GiB, 1 * GiB)
    assert none.names(3840, 2160) == ()  # an empty list: nothing, even when short
    # Offload needs an accelerator to offload from; on the CPU the weights are in main memory already.
    cpu = choose_memory(("offload", "attention_slicing"), "cpu", 1, None)
    assert (cpu.offload, cpu.attention_slicing, cpu.names(3840, 2160)) == (
        False,
        True,
        ("attention_slicing",),
    )


def test_which_weights_count_against_the_main_memory_budget() -> None:
    from gouache.engine.pipelines import Placement

    assert Placement("cpu").in_main_memory and Placement("mps").in_main_memory
    assert not Placement("cuda:0").in_main_memory
    assert Placement("cuda:1", memory=MemoryStrategy(offload=True)).in_main_memory
    assert Placement("mps").on_accelerator and not Placement().on_accelerator


def test_strategy_description_for_operators() -> None:
    assert MemoryStrategy().describe() == {
        "offload": False,
        "attention_slicing": False,
        "vae_tiling": "above 2048 px",
    }
    assert MemoryStrategy(tile_above_px=0).describe()["vae_tiling"] == "always"
    assert MemoryStrategy(tile_above_px=None).describe()["vae_tiling"] == "never"


# --- the catalog and start-up ----------------------------------------------------------------------


def _catalog(tmp_path: Path, model: Path, extra: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(f'[models.gpu-one]\npath = "{model}"\nresolution = 64\n{extra}\n')
    return path


def test_catalog_keys_are_read(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    extra = 'device = "CUDA:1"\ndtype = "bfloat16"\nmemory = ["offload"]\ncompile = true'
    spec = Catalog.load(_catalog(tmp_path, tiny_models["sd1"], extra)).resolve("gpu-one")
    assert spec is not None
    assert (spec.device, spec.dtype, spec.memory, spec.compile) == ("cuda:1", "bfloat16", ("offload",), True)
    plain = Catalog.load().resolve("gouache-mini")
    assert plain is not None
    assert (plain.device, plain.dtype, plain.memory, plain.compile) == (None, None, "auto", False)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('device = "gpu"', "device"),
        ('device = "cuda:x"', "device"),
        ('dtype = "fp16"', "dtype"),
        ('memory = ["swap"]', "memory"),
        ('memory = "offload"', "memory"),
        ('compile = "yes"', "compile"),
    ],
)
def test_bad_catalog_placement_names_entry_and_key(
    tmp_path: Path, tiny_models: dict[str, Path], extra: str, key: str
) -> None:
    path = _catalog(tmp_path, tiny_models["sd1"], extra)
    with pytest.raises(CatalogError) as info:
        Catalog.load(path)
    message = str(info.value)
    assert str(path) in message and "[models.gpu-one]" in message and f"{key}" in message


def test_start_up_refuses_devices_that_are_not_there(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    catalog = Catalog.load()
    check_devices(Settings(device="cpu"), catalog, CPU_ONLY)
    check_devices(Settings(device="auto"), catalog, CPU_ONLY)
    check_devices(Settings(device="cuda:1"), catalog, TWO_GPUS)
    with pytest.raises(DeviceError) as info:
        check_devices(Settings(device="cuda"), catalog, CPU_ONLY)
    assert "'cuda'" in str(info.value) and "GOUACHE_DEVICE" in str(info.value)
    with pytest.raises(DeviceError) as info:
        check_devices(Settings(dtype="half"), catalog, CPU_ONLY)
    assert "'half'" in str(info.value) and "GOUACHE_DTYPE" in str(info.value)
    own = Catalog.load(_catalog(tmp_path, tiny_models["sd1"], 'device = "cuda:3"'))
    with pytest.raises(DeviceError) as info:
        check_devices(Settings(device="cpu"), own, TWO_GPUS)
    assert "[models.gpu-one] device" in str(info.value) and "'cuda:3'" in str(info.value)


def test_serve_with_a_missing_device_exits_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as info:
        start_server(tmp_path / "data", {"GOUACHE_DEVICE": "cuda:7"}, timeout=60)
    log = str(info.value)
    assert "exited with 1" in log and "Traceback" not in log
    lines = [line for line in log.splitlines() if "Cannot start" in line]
    assert len(lines) == 1 and "'cuda:7'" in lines[0] and "GOUACHE_DEVICE" in lines[0]


# --- the CPU paths for real ------------------------------------------------------------------------


def _spec(path: Path, **entry: object) -> object:
    return spec_from_entry("tiny", {"path": str(path), "resolution": 64, **entry}, base=None, source="test")


def _job(spec: object, seed: int = 5) -> RenderJob:
    return RenderJob(spec, "a red square", SamplingPlan(2, 2.0), 64, 64, (seed,))  # type: ignore[arg-type]


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


def test_cpu_default_is_float32_pytorch_and_unchanged(tiny_models: dict[str, Path]) -> None:
    cache = ModelCache(accelerators=CPU_ONLY)
    spec = _spec(tiny_models["sd1"])
    model = cache.get(spec)  # type: ignore[arg-type]
    assert model.pipeline.unet.dtype == torch.float32 and model.pipeline.device.type == "cpu"
    assert not devices.is_cpu("cuda:0") and devices.runs_on_cpu(model.pipeline)
    result = Runner(cache).render(_job(spec))
    assert (result.device, result.dtype, result.memory) == ("cpu", "float32", ())
    assert cache.describe()["tiny"] == {
        "device": "cpu",
        "dtype": "float32",
        "backend": "pytorch",
        "memory": {"offload": False, "attention_slicing": False, "vae_tiling": "above 2048 px"},
        "memory_mb": round(cache.sizes()["tiny"] / 2**20, 1),
    }
    assert cache.default_device() == "cpu"


def test_device_and_dtype_resolve_without_loading(tiny_models: dict[str, Path]) -> None:
    spec = _spec(tiny_models["sd1"])
    assert ModelCache(accelerators=CPU_ONLY).device_and_dtype(spec) == ("cpu", "float32")  # type: ignore[arg-type]
    gpu = ModelCache(accelerators=TWO_GPUS, device="auto")
    assert gpu.device_and_dtype(spec) == ("cuda:0", "float16")  # type: ignore[arg-type]
    assert gpu.device_and_dtype(_spec(tiny_models["sd1"], device="cpu")) == ("cpu", "float32")  # type: ignore[arg-type]
    bf16 = ModelCache(accelerators=CPU_ONLY, dtype="bfloat16")
    assert bf16.device_and_dtype(spec) == ("cpu", "bfloat16")  # type: ignore[arg-type]
    assert gpu.loaded() == [] and bf16.loaded() == []


def test_bfloat16_on_the_cpu_renders_close_to_float32(tiny_models: dict[str, Path]) -> None:
    fp32 = ModelCache(accelerators=CPU_ONLY)
    bf16 = ModelCache(accelerators=CPU_ONLY, dtype="bfloat16")
    spec32 = _spec(tiny_models["sd1"])
    spec16 = _spec(tiny_models["sd1"])
    model = bf16.get(spec16)  # type: ignore[arg-type]
    assert model.pipeline.unet.dtype == torch.bfloat16
    fp32.get(spec32)  # type: ignore[arg-type]
    assert fp32.used_bytes == pytest.approx(2 * bf16.used_bytes, rel=0.01)
    a = Runner(fp32).render(_job(spec32))
    b = Runner(bf16).render(_job(spec16))
    assert b.dtype == "bfloat16" and b.images[0].data != a.images[0].data
    x, y = _pixels(a.images[0].data), _pixels(b.images[0].data)
    assert x.shape == y.shape == (64, 64, 3)
    psnr = 10 * np.log10(255**2 / max(np.mean((x - y) ** 2), 1e-9))
    assert psnr > 15, psnr  # the same picture, in lower precision
    # A catalog entry's own dtype goes before the cache's.
    entry = _spec(tiny_models["sd1"], dtype="float32")
    assert ModelCache(accelerators=CPU_ONLY, dtype="bfloat16").get(entry).placement.dtype == torch.float32  # type: ignore[arg-type]


def test_bfloat16_stays_off_openvino(tiny_models: dict[str, Path]) -> None:
    from gouache.engine.backend import BackendOptions, unsupported_reason

    cache = ModelCache(backend=BackendOptions("openvino"), accelerators=CPU_ONLY, dtype="bfloat16")
    model = cache.get(_spec(tiny_models["sd1"]))  # type: ignore[arg-type]
    assert model.backend == "pytorch" and "bfloat16" in str(unsupported_reason(model.pipeline))


def test_listed_measures_apply_on_the_cpu(tiny_models: dict[str, Path]) -> None:
    from diffusers.models.attention_processor import SlicedAttnProcessor

    cache = ModelCache(accelerators=CPU_ONLY)
    spec = _spec(tiny_models["sd1"], memory=["offload", "attention_slicing", "vae_tiling"])
    model = cache.get(spec)  # type: ignore[arg-type]
    assert not model.placement.memory.offload  # nothing to offload from on the CPU
    processors = model.pipeline.unet.attn_processors.values()
    assert processors and all(isinstance(p, SlicedAttnProcessor) for p in processors)
    result = Runner(cache).render(_job(spec))
    assert result.memory == ("attention_slicing", "vae_tiling") and model.pipeline.vae.use_tiling
    assert _pixels(result.images[0].data).shape == (64, 64, 3)


def test_vae_tiling_follows_the_working_size(tiny_models: dict[str, Path]) -> None:
    model = ModelCache(accelerators=CPU_ONLY).get(_spec(tiny_models["sd1"]))  # type: ignore[arg-type]
    vae = model.pipeline.vae
    assert model.use_vae_tiling(3840, 2160) == ("vae_tiling",) and vae.use_tiling
    assert model.use_vae_tiling(2048, 2048) == () and not vae.use_tiling


def test_tiled_decode_is_the_same_picture(tiny_models: dict[str, Path]) -> None:
    """Tiling is a memory measure, not another picture: a latent within one tile decodes exactly as before,
    and a larger one into the same image up to the seams (random weights make those rough: each tile's
    group norms see only the tile)."""
    vae = ModelCache(accelerators=CPU_ONLY).get(_spec(tiny_models["sd1"])).pipeline.vae  # type: ignore[arg-type]
    one_tile = vae.tile_latent_min_size

    def decode(side: int, tiled: bool) -> torch.Tensor:
        latent = torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(0))
        vae.enable_tiling() if tiled else vae.disable_tiling()
        with torch.inference_mode():
            return vae.decode(latent).sample

    assert torch.equal(decode(one_tile, True), decode(one_tile, False))
    plain, tiled = decode(4 * one_tile, False), decode(4 * one_tile, True)
    vae.disable_tiling()
    assert tiled.shape == plain.shape == (1, 3, 32 * one_tile, 32 * one_tile)
    assert float(torch.corrcoef(torch.stack([plain.flatten(), tiled.flatten()]))[0, 1]) > 0.5


# --- the live server: health, models, history ------------------------------------------------------


def test_health_models_and_history_show_device_dtype_and_memory(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.base_url}/images/generations",
        json={"prompt": "devices: a blue dot", "size": "1024x1024", "quality": "low", "seed": 41},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    health = httpx.get(server.base_url.removesuffix("/v1") + "/health", timeout=30).json()
    assert health["device"] == "cpu"
    mini = health["models"]["gouache-mini"]
    assert (mini["device"], mini["dtype"], mini["backend"]) == ("cpu", "float32", "pytorch")
    assert mini["memory"]["offload"] is False and mini["memory_mb"] > 0
    model = httpx.get(f"{server.base_url}/models/gouache-mini", timeout=30).json()
    assert (model["device"], model["dtype"], model["backend"]) == ("cpu", "float32", "pytorch")
    assert model["memory"] == mini["memory"] and model["memory_mb"] == mini["memory_mb"]
    idle = httpx.get(f"{server.base_url}/models/tiny-flux", timeout=30).json()
    assert "device" not in idle or idle["root"] in health["models"]
    entry = httpx.get(f"{server.base_url}/gouache/history", params={"limit": 1}, timeout=30).json()["data"][0]
    assert entry["id"] == response.headers["x-gouache-request-id"]
    assert entry["resolved"]["device"] == "cpu" and entry["resolved"]["dtype"] == "float32"
    assert entry["resolved"]["memory"] == []
