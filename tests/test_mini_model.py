"""gouache-mini's model code: the exact codec, a tiny training run (loss falls, resume is exact), and the saved
pipeline through diffusers and the engine. Training runs single-threaded: tiny models gain nothing from more
threads, and the suite may share the cores with other work."""

from __future__ import annotations

import dataclasses
import io
import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import gouache.mini.pipeline  # noqa: F401  (diffusers needs gouache's component modules imported)
from gouache.engine.catalog import SamplingPlan, spec_for_directory
from gouache.engine.jobs import EditInputs, RenderJob
from gouache.engine.pipelines import ModelCache
from gouache.engine.runner import Runner
from gouache.mini.codec import PixelUnshuffleCodec
from gouache.mini.model import MARKER_FILE, MiniConfig
from gouache.mini.pipeline import MAX_SHIPPED_BYTES, build_mini_pipeline, folder_size
from gouache.mini.train import (
    TRAIN_SEED_LIMIT,
    VALIDATION_SEED_BASE,
    TrainResult,
    lr_factor,
    scene_seed,
    schedule_rewarm,
    train,
    validation_loss,
)
from tests.helpers_edits import run_edit

STEPS = 40


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainResult]:
    out = tmp_path_factory.mktemp("mini-train")
    result = train(out, 5.0, seed=0, config=MiniConfig.tiny(), max_steps=STEPS, progress=False, threads=1)
    return out, result


def test_codec_round_trip_is_exact() -> None:
    codec = PixelUnshuffleCodec()
    pixels = torch.randint(0, 256, (2, 3, 64, 96), generator=torch.Generator().manual_seed(0))
    images = pixels.float() / 127.5 - 1.0
    latents = codec.encode(images).latent_dist.sample(torch.Generator().manual_seed(1))
    assert latents.shape == (2, 48, 16, 24)
    assert torch.equal(codec.encode(images).latent_dist.mode(), latents)
    assert torch.equal(codec.decode(latents).sample, images)
    assert torch.equal(codec.decode(latents, return_dict=False)[0], images)
    assert codec.config.latent_channels == 48 and not codec.config.force_upcast
    assert 2 ** (len(codec.config.block_out_channels) - 1) == 4  # the pipelines' vae_scale_factor
    with pytest.raises(ValueError, match="multiples of 4"):
        codec.encode(torch.zeros(1, 3, 30, 32))


def test_training_scenes_stay_below_the_held_out_range() -> None:
    from gouache.mini.evaluation import HELD_OUT_BASE

    assert TRAIN_SEED_LIMIT == HELD_OUT_BASE
    assert scene_seed(0, 0) == 0
    assert scene_seed(8, 10**8 - 1) < VALIDATION_SEED_BASE < TRAIN_SEED_LIMIT
    assert scene_seed(3, 5) > scene_seed(2, 10**8 - 1)
    with pytest.raises(ValueError):
        scene_seed(9, 0)


def test_learning_rate_warms_up_holds_then_decays_by_step() -> None:
    config = dataclasses.replace(
        MiniConfig(), warmup_steps=100, lr_decay_start=1000, lr_decay_end=2000, lr_final_fraction=0.1
    )
    assert lr_factor(config, 0) == pytest.approx(0.01)
    assert lr_factor(config, 99) == lr_factor(config, 1000) == 1.0
    assert lr_factor(config, 1500) == pytest.approx(0.55)
    assert lr_factor(config, 2000) == lr_factor(config, 50_000) == pytest.approx(0.1)
    factors = [lr_factor(config, s) for s in range(0, 3000, 7)]
    assert max(factors) == 1.0 and min(factors[20:]) == pytest.approx(0.1)


def test_a_rewarm_climbs_to_its_peak_then_decays_to_the_final_rate() -> None:
    config = dataclasses.replace(
        MiniConfig(), warmup_steps=100, lr_decay_start=1000, lr_decay_end=2000, lr_final_fraction=0.1,
        lr_rewarms=((3000, 5100, 0.5),),
    )  # fmt: skip
    assert lr_factor(config, 2999) == pytest.approx(0.1)
    assert lr_factor(config, 3049) == pytest.approx(0.3)
    assert lr_factor(config, 3099) == pytest.approx(0.5)
    assert lr_factor(config, 4100) == pytest.approx(0.3)
    assert lr_factor(config, 5100) == lr_factor(config, 9000) == pytest.approx(0.1)
    sessions = [{"start_step": 0, "end_step": 600, "wall_s": 60.0}]  # 10 steps/s, 60 s of 100 spent
    planned = schedule_rewarm(config, 600, sessions, budget_s=100.0, elapsed_s=60.0, peak=0.25)
    assert planned.lr_rewarms[-1] == (600, 1000, 0.25)
    with pytest.raises(ValueError, match="budget left"):
        schedule_rewarm(config, 600, sessions, budget_s=65.0, elapsed_s=60.0, peak=0.25)
    with pytest.raises(ValueError, match="fraction"):
        schedule_rewarm(config, 600, sessions, budget_s=100.0, elapsed_s=60.0, peak=1.5)


def test_tiny_training_lowers_the_loss(tiny_run: tuple[Path, TrainResult]) -> None:
    out, result = tiny_run
    assert result.steps == STEPS and len(result.losses) == STEPS
    assert statistics.mean(result.losses[-10:]) < statistics.mean(result.losses[:10])
    # The validation loss (fixed held-out scenes, timesteps and noise) of the shipped EMA weights has fallen
    # below that of the same seed's initial weights.
    initial = validation_loss(build_mini_pipeline(MiniConfig.tiny(), 0), MiniConfig.tiny())
    log = json.loads((out / "training.json").read_text())
    assert log["steps"] == STEPS and log["elapsed_s"] > 0
    assert log["validation_loss_ema"][-1][2] < 0.9 * initial
    assert log["loss_curve"][-1][0] == STEPS


def test_resume_continues_exactly(tiny_run: tuple[Path, TrainResult], tmp_path: Path) -> None:
    _, uninterrupted = tiny_run
    config = MiniConfig.tiny()
    first = train(tmp_path, 5.0, seed=0, config=config, max_steps=20, progress=False, threads=1)
    saved_elapsed = json.loads((tmp_path / "training.json").read_text())["elapsed_s"]
    second = train(tmp_path, 5.0, resume=True, seed=0, config=config, max_steps=24, progress=False, threads=1)
    assert first.losses == uninterrupted.losses[:20]
    assert second.losses == uninterrupted.losses[20:24]
    # The clock carries over from the checkpoint (which cannot hold its own save's seconds, so the first run's
    # final elapsed_s may exceed what the second run starts from).
    assert second.elapsed_s > saved_elapsed > 0
    sessions = json.loads((tmp_path / "training.json").read_text())["sessions"]
    assert [(s["start_step"], s["end_step"]) for s in sessions] == [(0, 20), (20, 24)]
    with pytest.raises(FileExistsError):
        train(tmp_path, 5.0, seed=0, config=config, max_steps=1, progress=False, threads=1)
    # A re-warm on resume is scheduled from the last session's speed and recorded in the run's config; a later
    # resume with the plain config continues it.
    train(tmp_path, 5.0, resume=True, config=config, max_steps=26, progress=False, threads=1, rewarm=0.5)
    log = json.loads((tmp_path / "training.json").read_text())
    ((start, end, peak),) = log["config"]["lr_rewarms"]
    assert start == 24 and end > 24 + config.warmup_steps and peak == 0.5
    train(tmp_path, 5.0, resume=True, config=config, max_steps=27, progress=False, threads=1)
    assert json.loads((tmp_path / "training.json").read_text())["config"]["lr_rewarms"] == [
        [start, end, peak]
    ]
    with pytest.raises(ValueError, match="--resume"):
        train(tmp_path / "fresh", 5.0, config=config, max_steps=1, progress=False, threads=1, rewarm=0.5)


def test_the_text_conditioned_design_still_trains_and_loads(tmp_path: Path) -> None:
    """``conditioning="text"`` (the first gouache-mini: cross-attention to MiniLM's word embeddings)."""
    from gouache.mini.pipeline import load_mini_pipeline

    config = dataclasses.replace(MiniConfig.tiny(), conditioning="text")
    result = train(tmp_path, 5.0, seed=0, config=config, max_steps=3, progress=False, threads=1)
    assert result.steps == 3 and result.pipeline_dir is not None
    pipe: Any = load_mini_pipeline(result.pipeline_dir)
    assert type(pipe.unet).__name__ == "UNet2DConditionModel"
    assert pipe.encode_prompt("a red circle", torch.device("cpu"), 1, False)[0].shape == (1, 32, 384)


def test_saved_pipeline_loads_with_diffusers(tiny_run: tuple[Path, TrainResult]) -> None:
    from diffusers import DiffusionPipeline

    folder = tiny_run[0] / "pipeline"
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["vae"] == ["gouache.mini.codec", "PixelUnshuffleCodec"]
    assert index["unet"] == ["gouache.mini.grounding", "LayoutUNet"]
    assert index["text_encoder"] == ["gouache.mini.model", "GroundedTextEncoder"]
    assert sorted(p.name for p in (folder / "text_encoder").iterdir()) == [MARKER_FILE]
    assert folder_size(folder) <= MAX_SHIPPED_BYTES
    pipe: Any = DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    assert pipe.unet.dtype == torch.float32 and pipe.vae_scale_factor == 4
    pipe.set_progress_bar_config(disable=True)
    image = pipe(
        "a red circle",
        height=64,
        width=64,
        num_inference_steps=3,
        guidance_scale=4.0,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (64, 64)


def test_each_seed_gets_its_own_layout(tiny_run: tuple[Path, TrainResult]) -> None:
    from gouache.engine.embeddings import PromptEmbeddings
    from gouache.mini.pipeline import load_mini_pipeline

    pipe: Any = load_mini_pipeline(tiny_run[0] / "pipeline")
    cache = PromptEmbeddings()
    one, unconditional = cache.get("mini", "path", pipe, "a red circle", None, True, 1)
    two, _ = cache.get("mini", "path", pipe, "a red circle", None, True, 2)
    again, _ = PromptEmbeddings().get("mini", "path", pipe, "a red circle", None, True, 1)
    assert one.shape == (1, 16, 128) and torch.equal(one, again) and not torch.equal(one, two)
    assert unconditional is not None and not unconditional.any()  # the empty prompt: no layout
    plain = pipe.encode_prompt("a red circle", torch.device("cpu"), 1, False)[0]
    assert torch.equal(plain, pipe.encode_prompt("a red circle", torch.device("cpu"), 1, False)[0])


def test_inpainting_lays_out_inside_the_mask(tiny_run: tuple[Path, TrainResult]) -> None:
    from gouache.engine.edits import _seeded_layout
    from gouache.mini.grounding import SLOTS
    from gouache.mini.pipeline import load_mini_pipeline

    pipe: Any = load_mini_pipeline(tiny_run[0] / "pipeline")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 32))  # the top right quarter
    with _seeded_layout(pipe, 5, mask):
        tokens = pipe.encode_prompt("two blue squares", torch.device("cpu"), 1, False)[0][0]
    boxes = tokens[1:3, SLOTS["box"]]
    centres_x, centres_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    assert bool(((centres_x > 0.5) & (centres_y < 0.5)).all()), boxes


def test_runner_and_edits_on_the_saved_pipeline(tiny_run: tuple[Path, TrainResult]) -> None:
    # multiple=8: the SD text-to-image pipeline wants edges divisible by 8, whatever vae_scale_factor is.
    spec = dataclasses.replace(spec_for_directory(tiny_run[0] / "pipeline"), resolution=64, multiple=8)
    runner = Runner(ModelCache())
    plan = SamplingPlan(steps=3, guidance=4.0, scheduler="dpm++")
    for width, height in ((1024, 1024), (1536, 1024)):
        job = RenderJob(spec, "two blue squares", plan, width, height, (7,), negative_prompt="red")
        result = runner.render(job)
        assert Image.open(io.BytesIO(result.images[0].data)).size == (width, height)
    first = runner.render(RenderJob(spec, "a star", plan, 1024, 1024, (3,))).images[0].data
    assert runner.render(RenderJob(spec, "a star", plan, 1024, 1024, (3,))).images[0].data == first

    model = runner.cache.get(spec)
    source = Image.new("RGB", (256, 256), (200, 30, 30))
    edited = run_edit(model, "a blue square", None, plan, 256, 256, 5, EditInputs((source,), None, 0.6))
    assert edited.size == (256, 256)


def test_inpaint_on_the_saved_pipeline(tiny_run: tuple[Path, TrainResult]) -> None:
    spec = dataclasses.replace(spec_for_directory(tiny_run[0] / "pipeline"), resolution=64, multiple=8)
    model = ModelCache().get(spec)
    source = Image.new("RGB", (128, 128), (200, 30, 30))
    mask = Image.new("L", (128, 128), 0)
    mask.paste(255, (32, 32, 96, 96))
    plan = SamplingPlan(steps=3, guidance=4.0, scheduler="dpm++")
    out = run_edit(model, "a blue square", None, plan, 128, 128, 5, EditInputs((source,), mask, 1.0))
    assert np.array_equal(np.asarray(out)[:20], np.asarray(source)[:20])
