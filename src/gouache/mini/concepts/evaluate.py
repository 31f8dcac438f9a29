"""Scoring gouache-mini's concepts (``gouache eval --set concepts``): is the thing asked for in the picture,
as many times as asked, where asked, on the backdrop asked?

* **recognition**: one concept per caption, named by a *keyword or paraphrase* rather than its name ("a
  kitty", "a crustacean"), generated through the model; the evaluator's own classifier
  (:mod:`gouache.mini.concepts.classifier`, trained on three drawing styles) must name it, top-1 and top-5
  among the scene-worthy concepts;
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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class ConceptReport:
    n: int
    seed: int
    scores: dict[str, list[int]] = field(default_factory=dict)  # metric -> [right, trials]
    misses: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, metric: str, ok: bool, what: str = "") -> None:
        right, trials = self.scores.setdefault(metric, [0, 0])
        self.scores[metric] = [right + int(ok), trials + 1]
        if not ok and what:
            self.misses.setdefault(metric, []).append(what)

    def table(self) -> list[tuple[str, str]]:
        return [(m, f"{100 * r / max(1, t):.0f} % ({r}/{t})") for m, (r, t) in self.scores.items()]


def keyword_caption(concept: Concept, atlas: Atlas, rng: random.Random) -> str | None:
    """ "a <keyword>" for ``concept``: a keyword (not its name) that finds it by words, so the caption tests
    the vocabulary rather than the training name; None when it has none."""

    def finds(k: str) -> bool:
        hit = atlas.lookup(k)
        return hit is not None and hit.id == concept.id

    usable = [k for k in concept.keywords if k != concept.label and k.isascii() and finds(k)]
    if not usable:
        return None
    word = rng.choice(sorted(usable))
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _crop(image: Image.Image, o: Any) -> Image.Image:
    w, h = image.size
    short = min(w, h)
    r = o.radius * short
    return image.crop((round(o.cx * w - r), round(o.cy * h - r), round(o.cx * w + r), round(o.cy * h + r)))


def _plural(label: str) -> str:
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
        if kind == "recognition":
            top = classifier.top([image])[0]
            report.add("recognition top-1", top[0] == job[1].id, f"{caption} -> {top[0]}")
            report.add("recognition top-5", job[1].id in top, caption)
        else:
            truth = layout(caption, image_seed)
            objects = [o for o in truth.objects if o.concept] if truth is not None else []
            if kind == "count":
                tops = classifier.top([_crop(image, o) for o in objects]) if objects else []
                ok = len(objects) == job[2] and all(job[1].id in t for t in tops)
                report.add("count", ok, caption)
            elif kind == "relation":
                ok = len(objects) == 2 and relation_holds(objects[0], job[3], objects[1])
                if ok:
                    tops = classifier.top([_crop(image, o) for o in objects])
                    ok = job[1].id in tops[0] and job[2].id in tops[1]
                report.add("relation", ok, caption)
            else:
                report.add("backdrop", _backdrop_ok(image, job[2]), caption)
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
