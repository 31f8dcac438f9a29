"""The caption reader's hook for concepts (:mod:`gouache.mini.reading` calls these; it owns the grammar).

* :func:`merge_concepts` joins two words that name one concept ("cherry blossoms", "hot dog", "machine
  learning") into one ``concept`` phrase, when the second is not a word the reader already knows as a
  shape (so "a red heart" stays the heart shape);
* :func:`concept_phrase` reads one unknown noun as a concept: by its words, else by MiniLM similarity
  through the reader's matcher's encoder;
* :func:`concept_object` is the object request of a concept mention: laid out as a circle of its size (the
  placeholder the planner places, sizes, counts and relates), coloured by the colour word only when the
  concept may be recoloured.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gouache.mini.concepts.atlas import Atlas, Concept, default_atlas
from gouache.mini.phrases import STOPWORDS, Phrase, doing
from gouache.mini.scenes.request import CONCEPT_SHAPE, ObjectRequest

__all__ = [
    "concept_object",
    "concept_phrase",
    "find_concept",
    "in_concept_name",
    "is_concept_word",
    "merge_concepts",
]

#: Phrase kinds that may start a two-word concept name ("cherry" is a colour word, "hot" a plain word).
_FIRST = ("word", "colour", "size", "unknown", "filler")


def _embedder(match: Any) -> Any:
    encoder = getattr(match, "encoder", None)
    if encoder is None or not hasattr(encoder, "word_vectors"):
        return None

    def embed(words: list[str]) -> np.ndarray:
        return encoder.word_vectors(words).numpy()  # type: ignore[no-any-return]

    return embed


def merge_concepts(phrases: list[Phrase], atlas: Atlas | None = None) -> list[Phrase]:
    """``phrases`` with each concept name of two to four words merged into one ``concept`` phrase ("cherry
    blossoms", "ice cream", "leaf fluttering in wind"), and a colour or style word that names a thing
    ("lemon", "orange", "olive", "pencil") read as that thing where it stands as a noun ("a lemon", "two
    oranges on a table", "a pencil"; not "an orange star", "a pencil sketch")."""
    atlas = atlas or default_atlas()
    if atlas is None:
        return phrases
    out: list[Phrase] = []
    i = 0
    while i < len(phrases):
        p = phrases[i]
        written = any(q.kind == "says" for q in phrases[max(0, i - 2) : i])  # words to write, not things
        merged = None if written else _merged(phrases, i, atlas)
        if merged is not None:
            out.append(merged[0])
            i += merged[1]
            continue
        if p.kind in ("colour", "style") and not written and _noun_place(phrases, i):
            hit = atlas.lookup(p.text, names_only=True)
            if hit is not None:
                out.append(Phrase("concept", hit.id, p.text, p.text.lower().endswith("s")))
                i += 1
                continue
        out.append(p)
        i += 1
    return out


def _merged(phrases: list[Phrase], i: int, atlas: Atlas) -> tuple[Phrase, int] | None:
    """The concept named by the longest run of 2-4 phrases from ``i``, and the run's length."""
    for n in (4, 3, 2):
        run = phrases[i : i + n]
        if len(run) < n or run[0].kind not in _FIRST or run[-1].kind not in ("word", "colour", "shape"):
            continue
        if not all(q.kind in (*_FIRST, "number") and q.text.replace("-", "").isalnum() for q in run[:-1]):
            continue
        if not run[-1].text.replace("-", "").isalnum():
            continue
        # After a colour or size word, only a name ("cherry blossom", "red apple"), not a keyword
        # ("blue car" is a keyword of the SUV: "a blue car" is a car, coloured blue).
        text = " ".join(q.text for q in run)
        hit = atlas.lookup(text, names_only=run[0].kind in ("colour", "size") or run[-1].kind == "shape")
        # A shape word ends a thing's name only after a plain word and for a thing worth a scene ("a soccer
        # ball", "a shooting star", "a floppy disk"); "a red heart" and "a big star" stay shapes.
        if (
            hit is not None
            and run[-1].kind == "shape"
            and (run[0].kind not in ("word", "unknown") or not hit.scene_worthy)
        ):
            hit = None
        if hit is not None:
            plural = run[-1].text.lower().endswith("s") and not hit.label.endswith("s")
            return Phrase("concept", hit.id, text, plural), n
    return None


def _noun_place(phrases: list[Phrase], i: int) -> bool:
    """Whether phrase ``i`` stands as a noun: after an article, a number, "the" or a size (or one of those and
    a colour), and not before something it could colour."""
    before = phrases[i - 1] if i > 0 else None
    after = phrases[i + 1] if i + 1 < len(phrases) else None
    led = before is not None and (
        before.kind in ("number", "the", "size") or (before.kind == "word" and before.value in ("a", "an"))
    )
    if before is not None and before.kind == "colour" and i > 1:  # "a red rose": the rose, coloured red
        led = _noun_place(phrases[: i - 1] + phrases[i:], i - 1)
    free = (
        after is None
        or after.kind in ("punct", "relation", "position")
        or (after.kind == "word" and (after.value in STOPWORDS or doing(after.value)))  # "a lemon sliced"
    )
    return led and free


def concept_phrase(
    p: Phrase, match: Any, exact_only: bool = False, atlas: Atlas | None = None
) -> Phrase | None:
    """The ``concept`` phrase for unknown word ``p``, or None. ``exact_only``: names, aliases and keywords
    only (no MiniLM)."""
    atlas = atlas or default_atlas()
    if atlas is None or len(p.value) < 2:
        return None
    found = atlas.find(p.value, None if exact_only else _embedder(match))
    if found is None:
        return None
    concept = found[0]
    plural = p.value.endswith("s") and not concept.label.endswith("s") and len(p.value) > 3
    return Phrase("concept", concept.id, p.text, plural)


def in_concept_name(words: list[str], i: int, atlas: Atlas | None = None) -> bool:
    """Whether ``words[i]`` is part of a run of 2-4 words that is a thing's name ("alarm clock", "closed
    book"): such a word is no typo ("clock" is not "block")."""
    atlas = atlas or default_atlas()
    if atlas is None:
        return False
    for n in (2, 3, 4):
        for j in range(max(0, i - n + 1), min(i, len(words) - n) + 1):
            if atlas.lookup(" ".join(words[j : j + n]), names_only=True) is not None:
                return True
    return False


def find_concept(concept_id: str, atlas: Atlas | None = None) -> Concept | None:
    """The thing ``concept_id`` names in the atlas (None if there is no atlas or no such thing)."""
    atlas = atlas or default_atlas()
    return atlas.by_id.get(concept_id) if atlas is not None else None


def is_concept_word(word: str, atlas: Atlas | None = None, names_only: bool = False) -> bool:
    """Whether ``word`` names a concept by itself (a name, alias or, unless ``names_only``, a keyword;
    singular or plural)."""
    atlas = atlas or default_atlas()
    return atlas is not None and word.isalpha() and atlas.lookup(word, names_only=names_only) is not None


def concept_object(
    concept_id: str, colour: str | None, size: str | None, shade: str | None, atlas: Atlas | None = None
) -> ObjectRequest:
    """The object request for a concept mention (colour and shade dropped where the concept keeps its own)."""
    concept = find_concept(concept_id, atlas)
    keep = concept is not None and concept.recolour
    return ObjectRequest(
        CONCEPT_SHAPE, colour if keep else None, size, shade if keep else None, concept=concept_id
    )
