"""The evaluation loop: generate an image for each held-out prompt, score it, check determinism.

It takes any ``generate(prompt, seed)`` function, so it knows nothing of the server: ``gouache eval`` passes
one that goes through Gouache's image service (:mod:`gouache.eval_service`), the tests pass the generator's
own pictures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from PIL import Image

from gouache.mini.evaluation.analysis import EVAL_SIZE
from gouache.mini.evaluation.held_out import held_out_scenes, held_out_seed
from gouache.mini.evaluation.paraphrase import paraphrase_scenes
from gouache.mini.evaluation.report import EvalReport, MetricScore, aggregate
from gouache.mini.evaluation.scoring import score_scene

DETERMINISM_CHECKS = 3
SCENE_SETS = ("held-out", "paraphrase")

GenerateFn = Callable[[str, int], Image.Image]


def evaluate(
    generate: GenerateFn,
    n: int = 200,
    seed: int = 0,
    kinds: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    size: int = EVAL_SIZE,
    determinism_checks: int = DETERMINISM_CHECKS,
    scene_set: str = "held-out",
) -> EvalReport:
    """Generate an image for each of ``n`` held-out prompts with ``generate(prompt, seed)`` (the seed passed
    is the scene's generator seed) and score it. The first ``determinism_checks`` prompts are generated a
    second time; identical pixels are a correct ``determinism`` trial. ``progress(done, total)`` is called
    after each generation. ``scene_set`` is ``"held-out"`` (the generator's held-out scenes) or
    ``"paraphrase"`` (:func:`~gouache.mini.evaluation.paraphrase.paraphrase_scenes`: wording the generator
    never uses)."""
    started = time.perf_counter()
    if scene_set not in SCENE_SETS:
        raise ValueError(f"unknown scene set {scene_set!r}; expected one of {SCENE_SETS}")
    scenes = (
        held_out_scenes(n, seed, kinds, size) if scene_set == "held-out" else paraphrase_scenes(n, seed, size)
    )
    checks = min(determinism_checks, n)
    total = n + checks
    report = EvalReport(n=n, seed=seed, size=size)
    determinism = MetricScore()
    first: list[bytes] = []
    for i, scene in enumerate(scenes):
        scene_seed = held_out_seed(i, seed)
        image = generate(scene.caption, scene_seed)
        if i < checks:
            first.append(_fingerprint(image))
        report.scenes.append(score_scene(scene, image, i, scene_seed))
        if progress is not None:
            progress(i + 1, total)
    for i in range(checks):
        again = generate(scenes[i].caption, held_out_seed(i, seed))
        determinism.add(_fingerprint(again) == first[i])
        if progress is not None:
            progress(n + i + 1, total)
    aggregate(report)
    if checks:
        report.metrics["determinism"] = determinism
    report.seconds = time.perf_counter() - started
    return report


def _fingerprint(image: Image.Image) -> bytes:
    return f"{image.mode}{image.size}".encode() + image.tobytes()
