"""Scoring gouache-mini's concepts (``gouache eval --set concepts``): is the thing asked for in the picture,
as many times as asked, where asked, on the backdrop asked?

* **recognition**: one concept per caption, named by a *keyword or paraphrase* rather than its name ("a
  kitty", "a crustacean"), generated through the model; the evaluator's own classifier
  (:mod:`gouache.mini.concepts.classifier`, trained on three drawing styles) must name what is in the box
  the caption reader planned for it, top-1 and top-5 among the scene-worthy concepts;
* **count**: "three bananas": the planned boxes (the layout the caption reader makes for that seed) each
  hold the concept (classifier top-5 on the crop) and their number is the number asked;
* **relation**: "a cat to the left of a banana": both recognised in their boxes and the boxes in that
  relation (:func:`~gouache.mini.scenes.truth.relation_holds`);
* **backdrop**: "a dog on the beach": the picture's top and bottom strips have the backdrop's colours
  (within 40 RGB units of its field there).

It takes any ``generate(prompt, seed)`` function, like :mod:`gouache.mini.evaluation`.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gouache.mini.concepts.atlas import Atlas, Concept
from gouache.mini.concepts.backdrops import BACKDROPS, backdrop_field
from gouache.mini.concepts.classifier import ConceptClassifier
from gouache.mini.scenes.truth import relation_holds

__all__ = ["ConceptReport", "evaluate_concepts", "keyword_caption"]

GenerateFn = Callable[[str, int], Image.Image]
LayoutFn = Callable[[str, int], Any]  # (caption, seed) -> SceneTruth | None
_COUNTS = {2: "two", 3: "three", 4: "four"}
_RELATIONS = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
_BACKDROP_WORDS = {name: b.said for name, b in BACKDROPS.items()}
#: A keyword a caption may use: letters, with single spaces, hyphens or apostrophes between them.
_WORDS = re.compile(r"[a-z]{2,}(?:[ '-][a-z]+)*")


@dataclass
class ConceptReport:
    n: int
    seed: int
    scores: dict[str, list[int]] = field(default_factory=dict)  # metric -> [right, trials]
    misses: dict[str, list[str]] = field(default_factory=dict)
    #: metric -> cause -> misses (see :func:`_cause`): which part of the chain a miss comes from.
    causes: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, metric: str, ok: bool, what: str = "", cause: str = "") -> None:
        right, trials = self.scores.setdefault(metric, [0, 0])
        self.scores[metric] = [right + int(ok), trials + 1]
        if not ok and what:
            self.misses.setdefault(metric, []).append(f"{what} [{cause}]" if cause else what)
        if not ok and cause:
            counts = self.causes.setdefault(metric, {})
            counts[cause] = counts.get(cause, 0) + 1

    def table(self) -> list[tuple[str, str]]:
        return [(m, f"{100 * r / max(1, t):.0f} % ({r}/{t})") for m, (r, t) in self.scores.items()]


def keyword_caption(concept: Concept, atlas: Atlas, rng: random.Random) -> str | None:
    """ "a <keyword>" for ``concept``: a keyword (not its name) that finds it by words, so the caption tests
    the vocabulary rather than the training name; None when it has none. Only words people write: short
    names and code-like keywords ("clock1", "10:30", "*") are left out (note 49)."""

    def finds(k: str) -> bool:
        hit = atlas.lookup(k)
        return hit is not None and hit.id == concept.id

    usable = [k for k in concept.keywords if k != concept.label and _WORDS.fullmatch(k) and finds(k)]
    if not usable:
        return None
    word = rng.choice(sorted(usable))
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _box(image: Image.Image, o: Any) -> tuple[int, int, int, int]:
    """The square the finish stage drew ``o``'s concept in (as :func:`~.drawing.draw_concepts` places it)."""
    w, h = image.size
    side = max(4, round(2 * o.radius * min(w, h)))
    left, top = round(o.cx * w - side / 2), round(o.cy * h - side / 2)
    return left, top, left + side, top + side


def _crop(image: Image.Image, o: Any) -> Image.Image:
    return image.crop(_box(image, o))


def _cause(image: Image.Image, o: Any, concept: Concept, classifier: ConceptClassifier) -> str:
    """Why ``concept`` was not named in ``o``'s box: ``reader`` (another concept was planned there),
    ``crop`` (the box runs off the picture, or the drawing there is not the concept's: something covers
    it), ``judge: drawing`` (the judge misnames the concept's drawing even on plain white) or ``judge:
    scene`` (it names the plain drawing but not the drawing in its scene)."""
    from gouache.mini.concepts.drawing import render_concept

    if o.concept != concept.id:
        return "reader"
    x0, y0, x1, y1 = _box(image, o)
    if x0 < 0 or y0 < 0 or x1 > image.width or y1 > image.height:
        return "crop: off the edge"
    drawing = np.asarray(render_concept(concept, x1 - x0), np.float32)
    opaque = drawing[..., 3] > 200
    got = np.asarray(_crop(image, o).convert("RGB"), np.float32)
    if opaque.any() and np.abs(got[opaque] - drawing[..., :3][opaque]).mean() > 24:
        return "crop: covered"
    plain = Image.new("RGB", (x1 - x0, y1 - y0), (255, 255, 255))
    plain.paste(render_concept(concept, x1 - x0), (0, 0), render_concept(concept, x1 - x0))
    return "judge: scene" if classifier.top([plain], 1)[0][0] == concept.id else "judge: drawing"


def _plural(label: str) -> str:
    if label.endswith("s") and not label.endswith(("ss", "us")):  # "jeans", "shorts": already plural
        return label
    if label.endswith(("s", "x", "ch", "sh")):
        return label + "es"
    if label.endswith("y") and label[-2:-1] not in "aeiou":
        return label[:-1] + "ies"
    return label + "s"


def evaluate_concepts(
    generate: GenerateFn,
    layout: LayoutFn,
    atlas: Atlas,
    classifier: ConceptClassifier,
    n: int = 200,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ConceptReport:
    """Score ``n`` recognition captions and ``n // 4`` each of count, relation and backdrop scenes, drawn
    from the scene-worthy concepts by ``seed``."""
    started = time.perf_counter()
    rng = random.Random(f"concepts/{seed}")
    pool = [c for c in atlas.concepts if c.scene_worthy and c.id in set(classifier.ids)]
    report = ConceptReport(n=n, seed=seed)
    jobs: list[tuple[str, Any]] = []
    for c in rng.sample(pool, min(n, len(pool))):
        caption = keyword_caption(c, atlas, rng)
        if caption is not None:
            jobs.append(("recognition", (caption, c)))
    simple = [c for c in pool if " " not in c.label and len(c.label) > 2]
    for _ in range(n // 4):
        c = rng.choice(simple)
        k = rng.choice((2, 3, 4))
        jobs.append(("count", (f"{_COUNTS[k]} {_plural(c.label)}", c, k)))
        a, b = rng.sample(simple, 2)
        rel = rng.choice(list(_RELATIONS))
        jobs.append(("relation", (f"a {a.label} {_RELATIONS[rel]} a {b.label}", a, b, rel)))
        d = rng.choice(simple)
        name = rng.choice(list(BACKDROPS))
        jobs.append(("backdrop", (f"a {d.label} {_BACKDROP_WORDS[name]}", d, name)))
    for i, (kind, job) in enumerate(jobs):
        image_seed = seed * 100_003 + i
        caption = job[0]
        image = generate(caption, image_seed)
        truth = layout(caption, image_seed)
        objects = [o for o in truth.objects if o.concept] if truth is not None else []
        if kind == "recognition":
            top = classifier.top([_crop(image, objects[0])])[0] if objects else ["(nothing drawn)"]
            cause = "" if top[0] == job[1].id else "reader: nothing"
            if objects and top[0] != job[1].id:
                cause = _cause(image, objects[0], job[1], classifier)
            report.add("recognition top-1", top[0] == job[1].id, f"{caption} -> {top[0]}", cause)
            report.add("recognition top-5", job[1].id in top, caption, cause)
        elif kind == "count":
            tops = classifier.top([_crop(image, o) for o in objects]) if objects else []
            if len(objects) != job[2]:
                cause = f"count: {len(objects)} boxes"
            else:
                wrong = [o for o, t in zip(objects, tops, strict=True) if job[1].id not in t]
                cause = _cause(image, wrong[0], job[1], classifier) if wrong else ""
            report.add("count", not cause, caption, cause)
        elif kind == "relation":
            pair = list(zip(objects, (job[1], job[2]), strict=False))
            if len(objects) != 2:
                cause = f"objects: {len(objects)}"
            elif not relation_holds(objects[0], job[3], objects[1]):
                cause = "relation_holds"
            else:
                tops = classifier.top([_crop(image, o) for o in objects])
                wrong = [(o, c) for (o, c), t in zip(pair, tops, strict=True) if c.id not in t]
                cause = " + ".join(_cause(image, o, c, classifier) for o, c in wrong)
            report.add("relation", not cause, caption, cause)
        else:
            report.add("backdrop", _backdrop_ok(image, job[2]), caption, "colours")
        if progress is not None:
            progress(i + 1, len(jobs))
    report.seconds = time.perf_counter() - started
    return report


def _backdrop_ok(image: Image.Image, name: str) -> bool:
    """The median colour of the top and bottom 6 % of ``image`` within 40 RGB units of the backdrop's field
    there (objects in front rarely fill a whole strip)."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    h, w = arr.shape[:2]
    strip = max(2, h * 6 // 100)
    expected = backdrop_field(name, w, h)
    for rows in (slice(0, strip), slice(h - strip, h)):
        got = np.median(arr[rows].reshape(-1, 3), axis=0)
        want = np.median(expected[rows].reshape(-1, 3), axis=0)
        if np.linalg.norm(got - want) > 40:
            return False
    return True


def pipeline_generate(size: int = 384, steps: int = 8, guidance: float = 2.0) -> tuple[GenerateFn, LayoutFn]:
    """``generate(prompt, seed)`` on the shipped weights without the server: the raw pipeline at 64 px (the
    ``low`` tier's steps and guidance), the text encoder's ``finish_render`` hook, a Lanczos resize to
    ``size`` and the hook's output-size step (backdrops, concept drawings, lettering), as the engine runs
    them; and the matching ``layout(caption, seed)``. For quick measurements on a busy machine; ``gouache
    eval --set concepts`` goes through the image service at 1024x1024 instead."""
    import torch

    from gouache.mini.model import GroundedTextEncoder
    from gouache.mini.pipeline import load_mini_pipeline
    from gouache.mini.reading import layout_caption
    from gouache.mini.word_match import matcher_for

    weights = Path(__file__).parent.parent / "weights" / "gouache-mini"
    pipe: Any = load_mini_pipeline(weights)
    pipe.set_progress_bar_config(disable=True)
    encoder = pipe.text_encoder
    match = matcher_for(encoder)

    def generate(prompt: str, seed: int) -> Image.Image:
        with torch.inference_mode(), GroundedTextEncoder.layout_seed(seed):
            image = pipe(
                prompt, width=64, height=64, num_inference_steps=steps, guidance_scale=guidance,
                generator=torch.Generator("cpu").manual_seed(seed),
            ).images[0]  # fmt: skip
        tinted, _, after = encoder.finish_render(image, prompt, seed)
        final = tinted.resize((size, size), Image.Resampling.LANCZOS)
        return after(final) if after is not None else final

    def layout(caption: str, seed: int) -> Any:
        return layout_caption(encoder._decoded(caption), match, seed)

    return generate, layout


def cached(generate: GenerateFn, folder: Path) -> GenerateFn:
    """``generate`` with its pictures kept in ``folder`` (one PNG per prompt and seed): the same evaluation
    scored again, by another judge, costs no generation."""
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)

    def run(prompt: str, seed: int) -> Image.Image:
        path = folder / f"{seed}-{hashlib.sha256(prompt.encode()).hexdigest()[:16]}.png"
        if path.exists():
            return Image.open(path).convert("RGB")
        image = generate(prompt, seed)
        image.save(path)
        return image

    return run


def main() -> None:
    """``python -m gouache.mini.concepts.evaluate [--n 200] [--seed 0] [--size 384]``: the concept scores on
    the raw pipeline (see :func:`pipeline_generate`), as a table and JSON."""
    import argparse
    import json

    from gouache.mini.concepts.classifier import shipped_judge

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--images", type=Path, default=None, help="keep (and reuse) the pictures here")
    args = parser.parse_args()
    try:
        atlas, classifier, record = shipped_judge()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    generate, layout = pipeline_generate(args.size)
    if args.images is not None:
        generate = cached(generate, args.images / f"{args.size}")

    def progress(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            print(f"{done}/{total} images", flush=True)

    report = evaluate_concepts(generate, layout, atlas, classifier, args.n, args.seed, progress)
    for metric, score in report.table():
        print(f"{metric:20s} {score}  {report.causes.get(metric, '')}")
    body = {"n": args.n, "seed": args.seed, "size": args.size, "scores": report.scores,
            "misses": report.misses, "causes": report.causes, "seconds": round(report.seconds, 1),
            "classifier": record}  # fmt: skip
    print(f"{report.seconds:.0f} s")
    if args.out is not None:
        args.out.write_text(json.dumps(body, indent=1))


if __name__ == "__main__":
    main()
