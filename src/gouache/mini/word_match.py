"""Unseen words read by MiniLM: a word outside the phrase table that sits where a colour or a shape would
("a crimson octagon") is read as the known colour or shape whose MiniLM embedding is nearest, when close
enough. That is the text encoder's part in understanding unseen wording (:mod:`gouache.mini.reading`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from gouache.mini.scenes.vocabulary import COLOUR_WORDS, SHAPE_WORDS

__all__ = ["SIMILARITY_MIN", "TEMPLATES", "Matcher", "matcher_for"]

#: How an unknown word is put to MiniLM, and the cosine similarity to the nearest known word (put the same
#: way) above which it is read as that word. Measured: "a sphere shape" -> circle 0.71, "a rectangle shape"
#: -> square 0.78, "a octagon shape" -> pentagon 0.72, but "a table shape" -> square 0.68. MiniLM knows
#: colour names poorly ("crimson" lands nearest to purple), so common ones are in the phrase table instead.
TEMPLATES = {"colour": "the colour {}", "shape": "a {} shape"}
SIMILARITY_MIN = {"colour": 0.72, "shape": 0.7}
#: ``match(word, kind)``: the nearest known ``kind`` ("colour" or "shape") and its similarity, or None.
Matcher = Callable[[str, str], tuple[str, float] | None]


class _MiniLMMatcher:
    """Nearest known colour or shape by MiniLM embedding (cached)."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.vocab: dict[str, tuple[list[str], torch.Tensor]] = {}
        self.cache: dict[tuple[str, str], tuple[str, float] | None] = {}

    def _vocab(self, kind: str) -> tuple[list[str], torch.Tensor]:
        if kind not in self.vocab:
            table = (
                COLOUR_WORDS
                if kind == "colour"
                else {k: tuple(s for s, _ in v) for k, v in SHAPE_WORDS.items()}
            )
            pairs = [(name, w) for name, words in table.items() for w in words]
            vectors = self.encoder.word_vectors([TEMPLATES[kind].format(w) for _, w in pairs])
            self.vocab[kind] = ([n for n, _ in pairs], vectors)
        return self.vocab[kind]

    def __call__(self, word: str, kind: str) -> tuple[str, float] | None:
        key = (word, kind)
        if key not in self.cache:
            names, vectors = self._vocab(kind)
            sims = vectors @ self.encoder.word_vectors([TEMPLATES[kind].format(word)])[0]
            best = int(sims.argmax())
            score = float(sims[best])
            self.cache[key] = (names[best], score) if score >= SIMILARITY_MIN[kind] else None
        return self.cache[key]


def matcher_for(encoder: Any) -> Matcher:
    """The (cached) MiniLM matcher of ``encoder`` (a :class:`~gouache.mini.model.GroundedTextEncoder`)."""
    cached = getattr(encoder, "_gouache_matcher", None)
    if cached is None:
        cached = _MiniLMMatcher(encoder)
        encoder.__dict__["_gouache_matcher"] = cached
    return cached  # type: ignore[no-any-return]
