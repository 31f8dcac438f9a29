"""Single-file checkpoints: family detection from key names, the shipped architectures, tiny checkpoints of
every family written back to the original layouts and served next to their folders (same pixels), and clear
errors for files that are missing, broken or of no known family."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import load_file, save_file

from gouache.engine.catalog import Catalog, CatalogError
from gouache.engine.clip_vocab import shipped_clip_tokenizer
from gouache.engine.pipelines import ModelCache, ModelLoadError, load_pipeline
from gouache.engine.single_file import (
    detect_checkpoint_family,
    detect_file_family,
    shipped_config_dir,
)
from gouache.engine.tiny import FAMILIES, build_tiny_pipeline
from gouache.engine.tiny_single_file import write_single_file
from tests.live import LiveServer, start_server

U = "model.diffusion_model."

# Representative key names of the real published checkpoints (a few per file).
REAL_KEYS = {
    "sd1": [U + "input_blocks.0.0.weight", U + "output_blocks.11.0.skip_connection.weight",
            "first_stage_model.decoder.conv_in.weight",
            "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"],
    "sd2": [U + "input_blocks.0.0.weight", "first_stage_model.encoder.conv_in.weight",
            "cond_stage_model.model.token_embedding.weight", "cond_stage_model.model.positional_embedding"],
    "sdxl": [U + "input_blocks.0.0.weight", U + "label_emb.0.0.weight",
             "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight",
             "conditioner.embedders.1.model.positional_embedding", "first_stage_model.encoder.conv_in.weight"],
    "sd3": [U + "joint_blocks.0.context_block.adaLN_modulation.1.bias", U + "pos_embed",
            "first_stage_model.encoder.conv_in.weight",
            "text_encoders.clip_l.transformer.text_model.embeddings.position_embedding.weight"],
    "flux": ["double_blocks.0.img_attn.norm.key_norm.scale", "img_in.weight", "single_blocks.0.linear1.weight",
             "guidance_in.in_layer.bias"],
}  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_detects_each_family_from_real_key_names(family: str) -> None:
    assert detect_checkpoint_family(REAL_KEYS[family]) == family


def test_detection_variants_and_refusals() -> None:
    assert detect_checkpoint_family([U + k for k in REAL_KEYS["flux"]]) == "flux"  # ComfyUI-style prefix
    assert detect_checkpoint_family(["joint_blocks.0.x_block.attn.qkv.weight"]) == "sd3"  # transformer only
    assert detect_checkpoint_family([U + "input_blocks.0.0.weight", U + "label_emb.0.0.weight"]) == "sdxl"
    with pytest.raises(ValueError, match="refiner"):
        detect_checkpoint_family(
            [U + "input_blocks.0.0.weight", "conditioner.embedders.0.model.text_projection"]
        )
    with pytest.raises(ValueError, match='family = "sd1" or "sd2"'):
        detect_checkpoint_family([U + "input_blocks.0.0.weight", U + "out.2.weight"])
    with pytest.raises(ValueError, match=r"FLUX\.2"):
        detect_checkpoint_family([*REAL_KEYS["flux"], "single_stream_modulation.lin.weight"])
    with pytest.raises(ValueError, match="no supported family"):
        detect_checkpoint_family(["encoder.layer.0.attention.self.query.weight", "pooler.dense.bias"])


# Parameter counts of the published models (millions): the shipped configs are those architectures.
PUBLISHED = {
    ("sd1", "unet"): 859.52, ("sd1", "vae"): 83.65, ("sd1", "text_encoder"): 123.06,
    ("sd2", "unet"): 865.91, ("sd2", "text_encoder"): 340.39,
    ("sdxl", "unet"): 2567.46, ("sdxl", "text_encoder_2"): 694.66,
    ("sd3", "transformer"): 2028.33, ("sd3", "text_encoder_3"): 4762.31, ("sd3", "vae"): 83.82,
    ("flux-dev", "transformer"): 11901.41, ("flux-schnell", "transformer"): 11891.18,
}  # fmt: skip


def test_shipped_configs_are_the_published_architectures() -> None:
    import diffusers
    import transformers

    for (name, component), millions in PUBLISHED.items():
        folder = shipped_config_dir(name)
        library, cls_name = json.loads((folder / "model_index.json").read_text())[component]
        with torch.device("meta"):
            if library == "diffusers":
                cls = getattr(diffusers, cls_name)
                model = cls.from_config(cls.load_config(str(folder / component)))
            else:
                cls = getattr(transformers, cls_name)
                model = cls(cls.config_class.from_pretrained(str(folder / component)))
        assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == millions, (name, component)
    files = [f for f in shipped_config_dir("sd1").parent.rglob("*") if f.is_file()]
    vocabulary = [f for f in files if f.parent.name == "clip-vocab"]
    assert sum(f.stat().st_size for f in files if f not in vocabulary) < 64 * 1024  # configs, no weights
    assert sorted(f.name for f in vocabulary) == ["NOTICE", "merges.txt.gz", "vocab.json.gz"]
    assert sum(f.stat().st_size for f in vocabulary) < 600 * 1024  # CLIP's vocabulary, gzipped


# --------------------------------------------------------------------------------------------------
# Tiny single files written from the tiny folders
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sf-folders")
    made = {family: build_tiny_pipeline(family, root / family) for family in FAMILIES}
    # SD3 takes CLIP-L's pooled output unprojected (diffusers and the reference code load an identity there),
    # so the folder it is compared with gets an identity projection too.
    te = made["sd3"] / "text_encoder" / "model.safetensors"
    state = load_file(str(te))
    state["text_projection.weight"] = torch.eye(state["text_projection.weight"].shape[0])
    save_file(state, str(te))
    return made


@pytest.fixture(scope="module")
def files(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sf-files")
    return {f: write_single_file(folders[f], f, root / f"tiny-{f}.safetensors") for f in FAMILIES}


def test_written_files_are_detected_from_their_keys(files: dict[str, Path]) -> None:
    assert {family: detect_file_family(path) for family, path in files.items()} == {f: f for f in FAMILIES}


def _render(pipe: object) -> bytes:
    out = pipe(  # type: ignore[operator]
        "a red fox",
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(7),
    )
    return out.images[0].tobytes()


def test_ckpt_loads_like_safetensors(
    folders: dict[str, Path], files: dict[str, Path], tmp_path: Path
) -> None:
    ckpt = tmp_path / "tiny-sd1.ckpt"
    torch.save({"state_dict": load_file(str(files["sd1"])), "global_step": 1}, ckpt)
    assert detect_file_family(ckpt) == "sd1"
    assert _render(load_pipeline(ckpt, None, folders["sd1"])) == _render(load_pipeline(folders["sd1"]))


def test_missing_components_come_from_the_config_folder(folders: dict[str, Path], files: dict[str, Path],
                                                        tmp_path: Path) -> None:  # fmt: skip
    # BFL publishes FLUX as the transformer alone: the VAE and text encoders come from a diffusers folder.
    only = tmp_path / "flux1-tiny.safetensors"
    save_file({k: v for k, v in load_file(str(files["flux"])).items() if k.startswith(U)}, str(only))
    assert _render(load_pipeline(only, "flux", folders["flux"])) == _render(load_pipeline(folders["flux"]))
    configs_only = tmp_path / "flux-configs"
    shutil.copytree(folders["flux"], configs_only, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(ModelLoadError) as info:
        load_pipeline(only, "flux", configs_only)
    assert str(only) in str(info.value) and "text_encoder" in str(info.value) and "config" in str(info.value)


def test_the_shipped_clip_vocabulary_is_clips() -> None:
    """CLIP's BPE vocabulary ships (derived from OpenAI CLIP's file): CLIP's own ids, and the same token strings
    as the tests' byte-level CLIP tokenizer wherever that one can agree (it has no merges)."""
    from gouache.engine.tiny import _clip_tokenizer

    sd1 = shipped_clip_tokenizer(shipped_config_dir("sd1") / "tokenizer")
    assert len(sd1) == 49408 and (sd1.bos_token_id, sd1.eos_token_id) == (49406, 49407)
    assert sd1("a photo of a cat").input_ids == [
        49406,
        320,
        1125,
        539,
        320,
        2368,
        49407,
    ]  # CLIP's published ids
    assert (sd1.pad_token, sd1.pad_token_id, sd1.model_max_length) == ("<|endoftext|>", 49407, 77)
    for family, name in (("sd2", "tokenizer"), ("sdxl", "tokenizer_2"), ("sd3", "tokenizer_2")):
        bigg = shipped_clip_tokenizer(shipped_config_dir(family) / name)
        assert (bigg.pad_token, bigg.pad_token_id) == ("!", 0), family  # OpenCLIP's pad, as in the releases
    tiny = _clip_tokenizer()
    for sentence in ("a photo of a cat", "A lighthouse at dusk, 4K!", "résumé & naïve café"):
        ids = sd1(sentence).input_ids
        decoded = sd1.decode(ids, skip_special_tokens=True)
        assert decoded.replace(" ", "") == sentence.lower().replace(" ", "")  # CLIP's cleaning: lower case
        words = [w.removesuffix("</w>") for w in sd1.convert_ids_to_tokens(ids)[1:-1]]
        letters = [w.removesuffix("</w>") for w in tiny.convert_ids_to_tokens(tiny(sentence).input_ids)[1:-1]]
        assert "".join(words) == "".join(letters)  # the same text, merged into fewer tokens
        assert len(words) < len(letters)
    for char in "ab!?7":  # one byte each: no merge applies
        assert sd1.convert_ids_to_tokens(sd1(char).input_ids) == tiny.convert_ids_to_tokens(
            tiny(char).input_ids
        )


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_clip_tokenizers_load_with_no_vocabulary_files(family: str, files: dict[str, Path],
                                                       folders: dict[str, Path], tmp_path: Path) -> None:  # fmt: skip
    """A config folder without tokenizer files (a real checkpoint: none at all) loads with the shipped
    vocabulary and each release's settings."""
    configs = tmp_path / "configs"
    shutil.copytree(folders[family], configs, ignore=shutil.ignore_patterns("*.safetensors", "tokenizer*"))
    pipe = load_pipeline(files[family], family, configs)
    pads = {"sd1": ["<|endoftext|>"], "sd2": ["!"], "sdxl": ["<|endoftext|>", "!"]}[family]
    tokenizers = [pipe.tokenizer, *([pipe.tokenizer_2] if family == "sdxl" else [])]
    assert [t.pad_token for t in tokenizers] == pads
    assert all(len(t) == 49408 and t("a cat").input_ids == [49406, 320, 2368, 49407] for t in tokenizers)
    # With nothing but the file, only the architecture is in question: the shipped SDXL base configs are not the
    # tiny checkpoint's -- a mismatch named as such, no tokenizer error, nothing half-loaded.
    with pytest.raises(ModelLoadError) as info:
        load_pipeline(files[family], family, None)
    assert str(files[family]) in str(info.value) and "vocabulary" not in str(info.value)
    with pytest.raises(ModelLoadError, match="describes a StableDiffusionPipeline"):
        load_pipeline(files["sdxl"], None, folders["sd1"])  # a config folder of another family


def test_flux_still_needs_its_t5_vocabulary_from_the_config_folder(files: dict[str, Path],
                                                                    folders: dict[str, Path],
                                                                    tmp_path: Path) -> None:  # fmt: skip
    configs = tmp_path / "configs"
    shutil.copytree(folders["flux"], configs, ignore=shutil.ignore_patterns("tokenizer*"))
    with pytest.raises(ModelLoadError) as info:
        load_pipeline(files["flux"], "flux", configs)
    message = str(info.value)
    assert str(files["flux"]) in message and "tokenizer_2/" in message and "spiece.model" in message
    assert "T5" in message


def test_bad_files_name_themselves(tmp_path: Path, folders: dict[str, Path]) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    notes = tmp_path / "notes.ckpt"
    notes.write_text("not a checkpoint")
    alien = tmp_path / "bert.safetensors"
    save_file({"encoder.layer.0.attention.self.query.weight": torch.zeros(2, 2)}, str(alien))
    missing = tmp_path / "absent.safetensors"
    for path, words in ((garbage, "not a readable"), (notes, "not a readable"), (alien, "no supported family"),
                        (missing, "does not exist")):  # fmt: skip
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(f'[models.x]\npath = "{path}"\n')
        with pytest.raises(CatalogError) as info:
            Catalog.load(catalog)
        assert str(path) in str(info.value) and words in str(info.value)
        with pytest.raises(ModelLoadError) as load_info:
            load_pipeline(path, "sd1", folders["sd1"])
        assert str(path) in str(load_info.value)
    catalog.write_text(f'[models.x]\npath = "{folders["sd1"]}"\nconfig = "{folders["sd1"]}"\n')
    with pytest.raises(CatalogError, match="only to a single-file"):
        Catalog.load(catalog)


def test_model_cache_estimates_and_loads_a_single_file(files: dict[str, Path], folders: dict[str, Path],
                                                       tmp_path: Path) -> None:  # fmt: skip
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'[models.one]\npath = "{files["sd1"]}"\nconfig = "{folders["sd1"]}"\n')
    spec = Catalog.load(catalog).resolve("one")
    assert spec is not None and spec.family == "sd1" and spec.config == folders["sd1"]
    model = ModelCache(budget_bytes=2**30).get(spec)
    assert model.pipeline.unet is not None


# --------------------------------------------------------------------------------------------------
# Served by the live server, next to the folder models
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(folders: dict[str, Path], files: dict[str, Path],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:  # fmt: skip
    root = tmp_path_factory.mktemp("sf-server")
    lines = []
    for family in FAMILIES:
        for name, path, extra in ((f"folder-{family}", folders[family], ""),
                                  (f"file-{family}", files[family], f'config = "{folders[family]}"')):  # fmt: skip
            lines += [f"[models.{name}]", f'path = "{path}"', extra, "resolution = 64", ""]
            lines += [f"[models.{name}.plans.low]", "steps = 2", "guidance = 2.0", ""]
    lines += ["[models.gone]", f'path = "{root / "gone.safetensors"}"', 'family = "sdxl"', ""]
    catalog = root / "catalog.toml"
    catalog.write_text("\n".join(lines))
    live = start_server(
        root / "data",
        # No parameters in the files: they name the model, and the tests compare a checkpoint's bytes with
        # its folder's (two model names, the same pixels).
        {
            "GOUACHE_CATALOG_FILE": str(catalog),
            "GOUACHE_DEFAULT_MODEL": "file-sdxl",
            "GOUACHE_METADATA": "false",
        },
    )
    yield live
    live.stop()


def _generate(server: LiveServer, model: str) -> httpx.Response:
    body = {"model": model, "prompt": "a red fox", "size": "1024x1024", "quality": "low", "seed": 11}
    return httpx.post(f"{server.base_url}/images/generations", json=body, timeout=120)


@pytest.mark.parametrize("family", FAMILIES)
def test_single_file_renders_the_same_bytes_as_its_folder(server: LiveServer, family: str) -> None:
    file_response, folder_response = (
        _generate(server, f"file-{family}"),
        _generate(server, f"folder-{family}"),
    )
    assert file_response.status_code == 200, file_response.text
    assert folder_response.status_code == 200, folder_response.text
    image = base64.b64decode(file_response.json()["data"][0]["b64_json"])
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    assert image == base64.b64decode(folder_response.json()["data"][0]["b64_json"])
    assert httpx.get(f"{server.base_url}/models/file-{family}").json()["family"] == family


def test_missing_file_is_an_openai_error_naming_it(server: LiveServer) -> None:
    response = _generate(server, "gone")
    assert response.status_code >= 400
    error = response.json()["error"]
    assert "gone.safetensors" in error["message"] and "does not exist" in error["message"]


def test_unknown_checkpoint_stops_startup_naming_it(tmp_path: Path) -> None:
    alien = tmp_path / "bert.safetensors"
    save_file({"encoder.layer.0.attention.self.query.weight": torch.zeros(2, 2)}, str(alien))
    with pytest.raises(RuntimeError) as info:
        start_server(tmp_path / "data", {"GOUACHE_DEFAULT_MODEL": str(alien)}, timeout=60)
    assert f"Cannot start: {alien}: cannot tell the model family" in " ".join(str(info.value).split())
