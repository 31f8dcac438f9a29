"""LoRA adapters: real adapters made with PEFT for the tiny pipelines, listed in a catalog, loaded once and
switched per request. Through the official SDK against a live server: an adapter changes the pixels, scale 0
is the base model's bytes, a request without `loras` gets the catalog's defaults, switching adapters and back
gives the first bytes again, a kohya-format file equals its diffusers twin, and bad `loras` are 400s naming
the field. In process: the request rules, the catalog key, the batch and cache keys, and a file that does
not fit its model (refused whole, naming the file)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from openai import BadRequestError, InternalServerError, OpenAI
from PIL import Image

from gouache.engine.backend import BackendOptions, backend_of
from gouache.engine.catalog import Catalog, CatalogError, spec_for_directory
from gouache.engine.jobs import LoraChoice
from gouache.engine.lora import LoraSpec
from gouache.engine.pipelines import ModelCache, ModelLoadError
from gouache.engine.runner import Runner, batch_key
from gouache.engine.tiny_lora import build_tiny_lora
from gouache.service.errors import InvalidRequest
from gouache.service.images.result_cache import result_cache_key
from gouache.service.images.rules import build_job, resolve_loras
from gouache.service.images.types import GenerateParams
from tests.live import LiveServer, start_server

FAMILIES = ("sd1", "sdxl", "sd3", "flux")
PROMPT = "a red circle on a blue square"


@pytest.fixture(scope="module")
def loras(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Per family an adapter `ink` (seed 1); for sd1 also `dots` (seed 2) and `ink` again in kohya's layout."""
    root = tmp_path_factory.mktemp("loras")
    files = {fam: build_tiny_lora(tiny_models[fam], root / f"{fam}-ink.safetensors") for fam in FAMILIES}
    files["sd1-dots"] = build_tiny_lora(tiny_models["sd1"], root / "sd1-dots.safetensors", seed=2)
    files["sd1-kohya"] = build_tiny_lora(tiny_models["sd1"], root / "ink-kohya.safetensors", kohya=True)
    return files


def _model(name: str, path: Path, loras: str = "") -> list[str]:
    lines = [f"[models.{name}]", f'path = "{path}"', "resolution = 64"]
    if loras:
        lines.append(f"loras = [{loras}]")
    for quality in ("low", "medium", "high"):
        lines += [f"[models.{name}.plans.{quality}]", "steps = 2", "guidance = 2.0"]
    return [*lines, ""]


@pytest.fixture(scope="module")
def lora_server(
    tiny_models: dict[str, Path], loras: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """`lora-<family>` with `ink` on by default; `lora-sd1` also has `dots` and `ink-kohya` (off by default);
    `plain-<family>` is the same base model without adapters; `bad-sdxl` carries an SD 1 adapter."""
    lines: list[str] = []
    for fam in FAMILIES:
        lines += _model(f"plain-{fam}", tiny_models[fam])
        extra = ""
        if fam == "sd1":
            extra = (
                f', {{ path = "{loras["sd1-dots"]}", name = "dots", scale = 0.0 }}'
                f', {{ path = "{loras["sd1-kohya"]}", scale = 0.0 }}'
            )
        lines += _model(f"lora-{fam}", tiny_models[fam], f'{{ path = "{loras[fam]}", name = "ink" }}{extra}')
    lines += _model("bad-sdxl", tiny_models["sdxl"], f'{{ path = "{loras["sd1"]}", name = "ink" }}')
    catalog = tmp_path_factory.mktemp("lora-catalog") / "catalog.toml"
    catalog.write_text("\n".join(lines))
    # No parameters in the files: they name the request's adapters, and the tests compare the bytes of
    # requests with different `loras` (scale 0 against none) for the same pixels.
    env = {"GOUACHE_CATALOG_FILE": str(catalog), "GOUACHE_METADATA": "false"}
    live = start_server(tmp_path_factory.mktemp("lora-server"), env)
    yield live
    live.stop()


@pytest.fixture()
def sdk(lora_server: LiveServer) -> OpenAI:
    return OpenAI(base_url=lora_server.base_url, api_key="test-key", max_retries=0, timeout=120)


def _png(client: OpenAI, model: str, **extra: Any) -> bytes:
    """One image (rendered at 64 px), seed 7, rendered (never from the result cache)."""
    result = client.images.generate(
        model=model,
        prompt=PROMPT,
        size="1024x1024",
        quality="low",
        extra_body={"seed": 7, "cache": False, **extra},
    )
    assert result.data and result.data[0].b64_json
    return base64.b64decode(result.data[0].b64_json)


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


# ------------------------------------------------------------------------------------------------------
# Live server, official SDK
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_an_adapter_changes_the_pixels_and_scale_zero_is_the_base_model(sdk: OpenAI, family: str) -> None:
    base = _png(sdk, f"plain-{family}")
    ink = _png(sdk, f"lora-{family}", loras=[{"name": "ink", "scale": 1.0}])
    assert np.abs(_pixels(ink) - _pixels(base)).mean() > 1.0
    assert _png(sdk, f"lora-{family}", loras=[{"name": "ink", "scale": 0}]) == base
    assert _png(sdk, f"lora-{family}", loras=[]) == base


def test_a_request_without_loras_gets_the_catalog_defaults(sdk: OpenAI) -> None:
    default = _png(sdk, "lora-sd1")
    assert default == _png(sdk, "lora-sd1", loras=[{"name": "ink"}])  # ink's default scale, 1.0
    assert default != _png(sdk, "lora-sd1", loras=[])
    half = _png(sdk, "lora-sd1", loras=[{"name": "ink", "scale": 0.5}])
    assert half not in (default, _png(sdk, "plain-sd1"))


def test_switching_adapters_and_back_gives_the_same_bytes(sdk: OpenAI) -> None:
    ink = _png(sdk, "lora-sd1", loras=[{"name": "ink", "scale": 1.0}])
    dots = _png(sdk, "lora-sd1", loras=[{"name": "dots", "scale": 1.0}])
    both = _png(sdk, "lora-sd1", loras=[{"name": "dots", "scale": 0.7}, {"name": "ink", "scale": -0.5}])
    assert len({ink, dots, both}) == 3
    assert _png(sdk, "plain-sd1") == _png(sdk, "lora-sd1", loras=[])  # nothing left switched on
    assert _png(sdk, "lora-sd1", loras=[{"name": "ink", "scale": 1.0}]) == ink
    # the order of the list does not matter
    assert (
        _png(sdk, "lora-sd1", loras=[{"name": "ink", "scale": -0.5}, {"name": "dots", "scale": 0.7}]) == both
    )


def test_a_kohya_file_renders_like_its_diffusers_twin(sdk: OpenAI) -> None:
    ink = _png(sdk, "lora-sd1", loras=[{"name": "ink", "scale": 1.0}])
    assert _png(sdk, "lora-sd1", loras=[{"name": "ink-kohya", "scale": 1.0}]) == ink


def test_an_edit_takes_loras_as_a_json_form_field(sdk: OpenAI) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buffer, format="PNG")

    def edit(loras: str) -> bytes:
        result = sdk.images.edit(
            model="lora-sd1",
            image=("in.png", buffer.getvalue(), "image/png"),
            prompt=PROMPT,
            size="1024x1024",
            extra_body={"seed": 3, "cache": "false", "loras": loras},
        )
        assert result.data and result.data[0].b64_json
        return base64.b64decode(result.data[0].b64_json)

    assert edit('[{"name": "ink", "scale": 1.0}]') != edit("[]")
    with pytest.raises(BadRequestError) as err:
        edit('[{"name": "nope"}]')
    assert err.value.body["param"] == "loras"  # type: ignore[index]
    with pytest.raises(BadRequestError) as err:
        edit("[{name: ink}]")
    assert err.value.body["param"] == "loras"  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([{"name": "nope"}], "no LoRA adapter 'nope'"),
        ("ink", "expected an array"),
        ([{"name": "ink", "scale": "high"}], "must be a number"),
        ([{"name": "ink", "scale": 4.5}], "within -4 and 4"),
        ([{"name": "ink", "scale": True}], "must be a number"),
        ([{"name": "ink"}, {"name": "ink", "scale": 0.2}], "more than once"),
        ([{"name": "ink", "weight": 1}], "unknown key 'weight'"),
        (["ink"], 'string "name"'),
    ],
)
def test_bad_loras_are_400_naming_the_field(sdk: OpenAI, value: Any, words: str) -> None:
    with pytest.raises(BadRequestError) as err:
        _png(sdk, "lora-sd1", loras=value)
    body: Any = err.value.body
    assert body["param"] == "loras"
    assert words in body["message"], body["message"]


def test_the_cache_key_and_the_record_include_the_adapters(sdk: OpenAI, lora_server: LiveServer) -> None:
    def generate(scale: float) -> tuple[bytes, str]:
        raw = sdk.images.with_raw_response.generate(
            model="lora-sd1",
            prompt=PROMPT,
            size="1024x1024",
            quality="low",
            extra_body={"seed": 11, "loras": [{"name": "ink", "scale": scale}]},
        )
        data = raw.parse().data
        assert data and data[0].b64_json
        return base64.b64decode(data[0].b64_json), raw.headers["x-gouache-cache"]

    first, state = generate(0.8)
    assert state == "miss"
    assert generate(0.8) == (first, "hit")
    other, state = generate(0.6)
    assert state == "miss" and other != first
    history = httpx.get(
        f"{lora_server.base_url}/gouache/history",
        params={"limit": 1},
        headers={"authorization": "Bearer test-key"},
    ).json()
    entry = history["data"][0]
    assert entry["resolved"]["loras"] == [{"name": "ink", "scale": 0.6}]
    assert entry["params"]["loras"] == [{"name": "ink", "scale": 0.6}]


def test_an_adapter_that_does_not_fit_fails_the_model_naming_the_file(
    sdk: OpenAI, loras: dict[str, Path]
) -> None:
    for _ in range(2):  # and again: nothing half-loaded was kept
        with pytest.raises(InternalServerError) as err:
            _png(sdk, "bad-sdxl")
        body: Any = err.value.body
        assert body["code"] == "model_unavailable"
        assert str(loras["sd1"]) in body["message"] and "does not fit model bad-sdxl" in body["message"]
    assert _png(sdk, "lora-sdxl")  # the server goes on


def test_the_image_generation_tool_takes_loras(sdk: OpenAI) -> None:
    def draw(loras: Any) -> str:
        tool: Any = {"type": "image_generation", "model": "lora-sd1", "size": "1024x1024", "quality": "low"}
        reply = sdk.responses.create(model="gpt-5", input=PROMPT, tools=[{**tool, "seed": 5, "loras": loras}])
        call: Any = reply.output[0]
        assert call.type == "image_generation_call"
        return str(call.result)

    assert draw([{"name": "dots", "scale": 1.0}]) != draw([])
    with pytest.raises(BadRequestError) as err:
        draw([{"name": "nope"}])
    assert err.value.body["param"] == "loras"  # type: ignore[index]


# ------------------------------------------------------------------------------------------------------
# In process
# ------------------------------------------------------------------------------------------------------


def test_a_mismatched_or_foreign_adapter_is_refused_whole(
    tiny_models: dict[str, Path], loras: dict[str, Path]
) -> None:
    cache = ModelCache()
    base = spec_for_directory(tiny_models["sdxl"], "x")
    with pytest.raises(ModelLoadError, match="does not fit model x"):
        cache.get(replace(base, loras=(LoraSpec("ink", loras["sd1"]),)))
    sd1 = spec_for_directory(tiny_models["sd1"], "y")
    with pytest.raises(ModelLoadError, match="has no weights for any part of model y"):
        cache.get(replace(sd1, loras=(LoraSpec("ink", loras["flux"]),)))
    assert cache.loaded() == []


def test_a_model_with_adapters_stays_on_pytorch(tiny_models: dict[str, Path], loras: dict[str, Path]) -> None:
    spec = replace(spec_for_directory(tiny_models["sd1"], "z"), loras=(LoraSpec("ink", loras["sd1"]),))
    model = ModelCache(backend=BackendOptions(backend="openvino")).get(spec)
    assert model.backend == "pytorch" and backend_of(model.pipeline) == "pytorch"


def test_a_text_encoder_adapter_is_part_of_the_prompt_embedding_key(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    te = build_tiny_lora(tiny_models["sd1"], tmp_path / "te.safetensors", text_encoder=True)
    plain = replace(spec_for_directory(tiny_models["sd1"], "plain"), resolution=64)
    catalog = Catalog([plain, replace(plain, name="m", loras=(LoraSpec("te", te),))])
    runner = Runner(ModelCache())  # one embedding cache for every render below

    def render(model: str, loras: Any) -> bytes:
        params = GenerateParams(
            prompt=PROMPT, model=model, size="1024x1024", quality="low", seed=3, loras=loras
        )
        job = build_job(catalog, params)[0]
        return (
            runner.render(replace(job, plan=replace(job.plan, steps=2), width=64, height=64)).images[0].data
        )

    base = render("plain", None)
    with_te = render("m", [{"name": "te", "scale": 1.0}])
    assert with_te != base
    assert render("m", []) == base  # not the embedding cached with the adapter on
    assert render("m", [{"name": "te", "scale": 1.0}]) == with_te


def _catalog(tmp_path: Path, model_dir: Path, loras: str) -> Catalog:
    file = tmp_path / "catalog.toml"
    file.write_text(f'[models.m]\npath = "{model_dir}"\nloras = {loras}\n')
    return Catalog.load(file)


def test_the_catalog_key(tmp_path: Path, tiny_models: dict[str, Path], loras: dict[str, Path]) -> None:
    spec = _catalog(tmp_path, tiny_models["sd1"], f'[{{ path = "{loras["sd1"]}", scale = 0.8 }}]').resolve(
        "m"
    )
    assert spec is not None and spec.loras == (LoraSpec("sd1-ink", loras["sd1"], 0.8),)
    missing = tmp_path / "gone.safetensors"
    with pytest.raises(CatalogError, match=f"LoRA file {missing} does not exist"):
        _catalog(tmp_path, tiny_models["sd1"], f'[{{ path = "{missing}" }}]')
    weights = tiny_models["sd1"] / "unet" / "diffusion_pytorch_model.safetensors"
    with pytest.raises(CatalogError, match="holds no LoRA weights"):
        _catalog(tmp_path, tiny_models["sd1"], f'[{{ path = "{weights}" }}]')
    with pytest.raises(CatalogError, match="scale must be within"):
        _catalog(tmp_path, tiny_models["sd1"], f'[{{ path = "{loras["sd1"]}", scale = 9 }}]')
    twice = f'[{{ path = "{loras["sd1"]}", name = "a" }}, {{ path = "{loras["sd1-dots"]}", name = "a" }}]'
    with pytest.raises(CatalogError, match="unique"):
        _catalog(tmp_path, tiny_models["sd1"], twice)
    with pytest.raises(CatalogError, match="must be a list"):
        _catalog(tmp_path, tiny_models["sd1"], '"x.safetensors"')


def _spec_with_adapters(tiny_models: dict[str, Path], loras: dict[str, Path]) -> Any:
    base = spec_for_directory(tiny_models["sd1"], "m")
    adapters = (LoraSpec("ink", loras["sd1"], 0.8), LoraSpec("dots", loras["sd1-dots"], 0.0))
    return replace(base, loras=adapters)


def test_request_rules(tiny_models: dict[str, Path], loras: dict[str, Path]) -> None:
    spec = _spec_with_adapters(tiny_models, loras)
    assert resolve_loras(spec, None) == (LoraChoice("ink", 0.8),)  # scale-0 defaults stay off
    assert resolve_loras(spec, []) == ()
    picked = resolve_loras(spec, [{"name": "ink", "scale": 2}, {"name": "dots"}])
    assert picked == (LoraChoice("dots", 0.0), LoraChoice("ink", 2.0))  # sorted by name
    for bad in ({"name": "ink"}, [{"name": "ink", "scale": float("nan")}], [{"name": 3}], [None]):
        with pytest.raises(InvalidRequest) as err:
            resolve_loras(spec, bad)
        assert err.value.param == "loras"


def test_batch_and_cache_keys_include_the_adapters(
    tiny_models: dict[str, Path], loras: dict[str, Path]
) -> None:
    spec = _spec_with_adapters(tiny_models, loras)
    catalog = Catalog([spec])

    def job(loras: Any) -> Any:
        params = GenerateParams(prompt="x", model="m", size="1024x1024", seed=1, loras=loras)
        return params, build_job(catalog, params)[0]

    (p1, j1), (p2, j2), (p3, j3) = job(None), job([{"name": "ink", "scale": 0.8}]), job([])
    assert j1.loras == j2.loras and j1.loras != j3.loras
    assert batch_key(j1) == batch_key(j2) != batch_key(j3)
    key = result_cache_key("images.generations", p1, j1)
    assert (
        key
        == result_cache_key("images.generations", p2, j2)
        != result_cache_key("images.generations", p3, j3)
    )
