"""The exact evaluator of gouache-mini: it must give the generator's own pictures near-perfect marks, give
noise and blank pictures low marks, and run end to end through the image service (gouache.eval_service)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from rich.console import Console

from gouache import eval_service
from gouache.mini import evaluation as ev
from gouache.mini.scenes.captions import PARAPHRASE_LEADS
from gouache.mini.scenes.generator import generate_scene
from gouache.mini.scenes.shapes import object_mask
from gouache.mini.scenes.truth import ObjectTruth
from gouache.mini.scenes.vocabulary import KINDS, SHAPES
from gouache.settings import Settings

SELF_TEST_N = 60


def _own_pictures(n: int, seed: int) -> ev.GenerateFn:
    """A "model" that draws exactly the held-out scene its prompt came from."""
    scenes = {(s.caption, ev.held_out_seed(i, seed)): s for i, s in enumerate(ev.held_out_scenes(n, seed))}

    def generate(prompt: str, image_seed: int) -> Image.Image:
        return scenes[(prompt, image_seed)].image.copy()

    return generate


@pytest.fixture(scope="module")
def own_report() -> ev.EvalReport:
    return ev.evaluate(_own_pictures(SELF_TEST_N, 0), n=SELF_TEST_N, seed=0)


def test_held_out_scenes_are_disjoint_from_training_seeds_and_reproducible() -> None:
    scenes = ev.held_out_scenes(10, seed=3)
    assert [s.truth.kind for s in scenes] == [KINDS[i % len(KINDS)] for i in range(10)]
    assert all(ev.held_out_seed(i, 3) >= ev.HELD_OUT_BASE for i in range(10))
    assert ev.held_out_seed(0, 1) - ev.held_out_seed(0, 0) == ev.HELD_OUT_STRIDE
    assert [s.caption for s in scenes] == [s.caption for s in ev.held_out_scenes(10, seed=3)]
    assert all(s.caption.startswith(PARAPHRASE_LEADS) for s in scenes)  # held-out wording
    assert [s.truth.kind for s in ev.held_out_scenes(4, kinds=["count"])] == ["count"] * 4
    with pytest.raises(ValueError):
        ev.held_out_scenes(1, kinds=["nope"])


def test_the_generators_own_pictures_score_near_perfect(own_report: ev.EvalReport) -> None:
    console = Console(width=160, record=True)
    console.print(ev.report_table(own_report))
    print(console.export_text())
    for metric in ("colour", "shape", "relation", "count"):
        score = own_report.metrics[metric]
        assert score.total >= 10, metric
        assert (score.accuracy or 0.0) >= 0.95, (metric, score)
    assert (own_report.metrics["position"].accuracy or 0.0) >= 0.9
    assert (own_report.metrics["text"].accuracy or 0.0) >= 0.7
    assert own_report.text_cer is not None and own_report.text_cer <= 0.2
    assert own_report.metrics["determinism"].accuracy == 1.0
    single = own_report.by_kind["single"]
    assert single["colour"].accuracy == 1.0


def test_noise_and_blank_pictures_score_low() -> None:
    def noise(prompt: str, seed: int) -> Image.Image:
        return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8))

    def blank(prompt: str, seed: int) -> Image.Image:
        return Image.new("RGB", (512, 512), (245, 245, 245))

    for generate in (noise, blank):
        report = ev.evaluate(generate, n=25, seed=1, determinism_checks=1)
        for metric in ("colour", "shape", "relation", "count", "text"):
            assert (report.accuracy(metric) or 0.0) <= 0.3, (generate.__name__, metric)


def test_detection_ignores_where_the_truth_says_things_are() -> None:
    """Mirrored pictures keep their colours and (left-right symmetric) shapes, but left/right relations
    and left/right positions no longer hold."""
    scenes = ev.held_out_scenes(40, seed=2, kinds=["single", "pair"])
    mirrored = {s.caption: ImageOps.mirror(s.image) for s in scenes}
    report = ev.evaluate(lambda p, _: mirrored[p], n=40, seed=2, kinds=["single", "pair"])
    assert (report.accuracy("colour") or 0.0) >= 0.95
    assert (report.accuracy("shape") or 0.0) >= 0.9
    sideways = [
        r
        for r, s in zip(report.scenes, scenes, strict=True)
        if s.truth.relation is not None and s.truth.relation[1] in ("left of", "right of")
    ]
    assert sideways and not any(r.trials["relation"][0] for r in sideways)


def test_a_shape_drawn_anywhere_is_found_and_classified() -> None:
    for i, shape in enumerate(SHAPES):
        obj = ObjectTruth(
            shape, "red", (220, 30, 40), 0.3 + 0.04 * i, 0.65 - 0.03 * i, 0.17, "medium", "flat"
        )
        img = Image.new("RGB", (64, 64), (245, 245, 245))
        img.paste((220, 30, 40), (0, 0, 64, 64), object_mask(obj, 64))
        analysis = ev.analyse(img.resize((1024, 1024), Image.Resampling.NEAREST))
        assert [r.colour for r in analysis.regions] == ["red"]
        region = analysis.regions[0]
        assert ev.classify_shape(region, analysis)[0] == shape
        assert abs(region.cx - obj.cx) < 0.02 and abs(region.cy - obj.cy) < 0.02


def test_text_matching() -> None:
    assert ev.edit_distance("KITTEN", "SITTING") == 3
    assert ev.text_match(["stop"], "STOP")[:2] == (True, 0.0)
    assert ev.text_match(["ZO0"], "ZOO")[0]  # a zero reads as the letter O
    assert ev.text_match(["HEL", "LO"], "HELLO")[0]  # lines joined
    exact, cer, _ = ev.text_match(["SNOV"], "SNOW")
    assert not exact and cer == pytest.approx(0.25)
    assert ev.text_match([], "GO") == (False, 1.0, "")
    scene = generate_scene(ev.held_out_seed(3), 64, "text", paraphrase=True)
    assert scene.truth.text is not None
    assert ev.text_match(ev.read_text(scene.image), scene.truth.text.word)[0]


def test_report_json_and_table(own_report: ev.EvalReport) -> None:
    data = json.loads(own_report.to_json())
    assert data["n"] == SELF_TEST_N and len(data["scenes"]) == SELF_TEST_N
    for metric, score in data["metrics"].items():
        assert 0.0 <= score["accuracy"] <= 1.0 and score["correct"] <= score["total"], metric
    assert set(data["by_kind"]) == set(KINDS)
    console = Console(width=200, record=True)
    console.print(ev.report_table(own_report))
    text = console.export_text()
    assert "colour" in text and "single" in text and "all" in text


def test_evaluate_service_runs_on_the_shipped_model(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, torch_threads=2)
    report = eval_service.evaluate_service(
        "gouache-mini", n=4, seed=0, settings=settings, determinism_checks=2
    )
    assert report.model == "gouache-mini" and len(report.scenes) == 4
    assert report.metrics, "no metric was scored"
    for metric, score in report.metrics.items():
        assert score.accuracy is not None and 0.0 <= score.accuracy <= 1.0, metric
    determinism = report.metrics["determinism"]
    assert (determinism.correct, determinism.total) == (2, 2)  # same prompt and seed: identical pixels


def test_main_prints_the_table_and_writes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_report: ev.EvalReport
) -> None:
    calls = []

    def fake_service(model: str, n: int, seed: int, settings: Settings, **kwargs: object) -> ev.EvalReport:
        calls.append((model, n, seed, settings.data_dir))
        return own_report

    monkeypatch.setattr(eval_service, "evaluate_service", fake_service)
    out = tmp_path / "report.json"
    eval_service.main("gouache-mini", 7, 5, out)
    assert calls and calls[0][:3] == ("gouache-mini", 7, 5)
    assert json.loads(out.read_text())["metrics"]["colour"]["total"] > 0


#: The shipped weights' floors on single objects over a fixed set of 20 held-out prompts (they score 20/20 on
#: colour and 18/20 on shape). Raise them with the weights (README's eval table has the full figures); a drop
#: below them means a regression in the engine, the planner, the upscaler or the model.
SINGLE_COLOUR_FLOOR = 0.9
SINGLE_SHAPE_FLOOR = 0.75


def test_shipped_model_gets_single_object_colours_and_shapes_right(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, torch_threads=2)
    report = eval_service.evaluate_service(
        "gouache-mini", n=20, seed=7, settings=settings, kinds=["single"], determinism_checks=0
    )
    colour = report.metrics["colour"]
    assert colour.total == 20
    assert colour.accuracy is not None and colour.accuracy >= SINGLE_COLOUR_FLOOR, report.metrics
    shape = report.metrics["shape"]
    assert shape.total == 20
    assert shape.accuracy is not None and shape.accuracy >= SINGLE_SHAPE_FLOOR, report.metrics
