"""The scene generator: a seed becomes an image, its caption and the exact truth behind both.

Three random streams derive from the seed: the layout from ``random.Random(seed)``, rendering noise from
``"gouache-mini/{seed}/render"`` and caption wording from ``"gouache-mini/{seed}/caption"``, so the same
seed gives the same picture whether ``paraphrase`` is on or off. Training (:mod:`gouache.mini.train`) draws
seeds below 10**9, the evaluator's held-out scenes at or above it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from gouache.mini.scenes.captions import compose_caption
from gouache.mini.scenes.fonts import FONTS
from gouache.mini.scenes.layout import (
    LayoutError,
    layout_count,
    layout_mixed,
    layout_pair,
    layout_single,
    layout_text,
    pick_background_colour,
    spec_truth,
    weighted_choice,
)
from gouache.mini.scenes.rendering import render
from gouache.mini.scenes.truth import Scene, SceneTruth, TextTruth, ink_for, legible
from gouache.mini.scenes.vocabulary import (
    BACKGROUND_WEIGHTS,
    COLOURS,
    DEFAULT_KIND_WEIGHTS,
    KINDS,
    SIGN,
    STYLE_WEIGHTS,
)

# ----------------------------------------------------------------------------------------------------------
# Scene generation
# ----------------------------------------------------------------------------------------------------------


def _build_truth(rng: random.Random, kind: str) -> SceneTruth:
    """Sample a consistent truth (independent of the output size)."""
    text: TextTruth | None = None
    count: int | None = None
    if kind == "text":
        font = rng.choice(FONTS)
        specs, relation, (word, ink, on_sign) = layout_text(rng, font)
        style = rng.choice(("flat", "flat", "outlined", "shadow"))  # sketch hatching would hide the word
        objects = [s for s in specs if s.shape != SIGN]
        avoid = [COLOURS[s.colour] for s in objects]
        if on_sign:
            sign = specs[0]
            sign.colour = rng.choice([c for c in COLOURS if COLOURS[c] not in avoid])
            avoid.append(COLOURS[sign.colour])
            ink_name = ink_for(COLOURS[sign.colour])
            if not legible(COLOURS[ink_name], COLOURS[sign.colour]):
                raise LayoutError("no legible ink on this sign")
        bg = pick_background_colour(rng, avoid)
        if not on_sign:
            inks = [c for c in COLOURS if legible(COLOURS[c], COLOURS[bg])]
            if not inks:
                raise LayoutError("no legible ink on this background")
            ink_name = rng.choice(inks)
        text = TextTruth(word, ink_name, COLOURS[ink_name], ink, font, 0 if on_sign else None)
    else:
        layout = {
            "single": layout_single,
            "pair": layout_pair,
            "count": layout_count,
            "mixed": layout_mixed,
        }
        specs, relation = layout[kind](rng)
        style = weighted_choice(rng, STYLE_WEIGHTS)
        bg = pick_background_colour(rng, [COLOURS[s.colour] for s in specs])
        word = None
        if kind == "count":
            count = len(specs)
    pattern = weighted_choice(rng, BACKGROUND_WEIGHTS)
    truths = tuple(spec_truth(s, style) for s in specs)
    return SceneTruth(kind, truths, pattern, COLOURS[bg], relation, count, word, style, text)


def generate_scene(
    seed: int,
    size: int = 64,
    kind: str | None = None,
    paraphrase: bool = False,
    supersample: int = 4,
    kind_weights: Mapping[str, float] | None = None,
) -> Scene:
    """Render the scene for ``seed``: an RGB ``size`` x ``size`` image, a caption and the exact truth.

    ``kind`` selects one of :data:`KINDS`; ``None`` picks one by ``kind_weights`` (default
    :data:`DEFAULT_KIND_WEIGHTS`). ``paraphrase=True`` words the caption with held-out templates (for
    evaluation prompts only); the image and truth for a seed do not depend on it.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; expected one of {KINDS}")
    if size < 16 or supersample < 1:
        raise ValueError("size must be at least 16 and supersample at least 1")
    rng = random.Random(seed)
    chosen = kind or weighted_choice(rng, kind_weights or DEFAULT_KIND_WEIGHTS)
    for _ in range(200):
        try:
            truth = _build_truth(rng, chosen)
            break
        except LayoutError:
            continue
    else:  # pragma: no cover - layouts succeed within a handful of attempts
        raise RuntimeError(f"could not lay out a {chosen!r} scene for seed {seed}")
    image = render(truth, size, supersample, random.Random(f"gouache-mini/{seed}/render"))
    caption, mentioned = compose_caption(truth, random.Random(f"gouache-mini/{seed}/caption"), paraphrase)
    return Scene(image, caption, truth, mentioned)
