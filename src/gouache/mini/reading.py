"""The caption reader of gouache-mini's text encoder: a caption becomes a scene request, then a laid-out
scene.

:func:`read_caption` reads what a caption asks for (objects with their colour, size and count, a relation
between two of them, a position, a word on a sign or on the background, the background, the style) into a
:class:`~gouache.mini.scenes.request.SceneRequest`; :func:`~gouache.mini.scenes.request.layout_scene` lays it
out the way the scene generator lays out its scenes (:func:`layout_caption` does both), and
:func:`~gouache.mini.grounding.scene_tokens` turns that into the tokens the UNet is grounded in
(:func:`layout_tokens` does all three).

Reading is a small grammar over phrases: the caption is split into words, known phrases (synonyms, multi-word
shape names, relation and position phrases) are merged greedily, longest first, and noun phrases are
``[number] [size] [colour] shape``. A word outside the vocabulary that sits where a colour or a shape would
("a crimson octagon") is read as the known one whose MiniLM embedding is nearest, when close enough: that is
the text encoder's part in understanding unseen wording. The layout is random but fixed per caption (its
random generator is seeded by the caption's hash, and by the image's seed when the engine gives one), so a
prompt and seed always get the same composition; what the caption leaves open is drawn plainly (flat style,
solid background).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from gouache.mini.grounding import empty_tokens, fit_to_region, scene_tokens
from gouache.mini.scenes.request import (
    MAX_REQUESTED_OBJECTS,
    ObjectRequest,
    SceneRequest,
    layout_scene,
)
from gouache.mini.scenes.truth import SceneTruth
from gouache.mini.scenes.vocabulary import (
    BACKGROUND_ADJECTIVES,
    COLOUR_WORDS,
    INVERSE_RELATION,
    POSITION_PHRASES,
    RELATION_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
    STYLE_PHRASES,
)

__all__ = ["Phrase", "layout_caption", "layout_tokens", "matcher_for", "read_caption", "read_phrases"]

#: How an unknown word is put to MiniLM, and the cosine similarity to the nearest known word (put the same
#: way) above which it is read as that word. Measured: "a sphere shape" -> circle 0.71, "a rectangle shape"
#: -> square 0.78, "a octagon shape" -> pentagon 0.72, but "a table shape" -> square 0.68. MiniLM knows
#: colour names poorly ("crimson" lands nearest to purple), so common ones are in the phrase table instead.
TEMPLATES = {"colour": "the colour {}", "shape": "a {} shape"}
SIMILARITY_MIN = {"colour": 0.72, "shape": 0.7}
EXTRA_COLOURS = {
    "crimson": "red", "scarlet": "red", "cherry": "red", "ruby": "red",
    "tangerine": "orange", "amber": "orange", "peach": "orange",
    "gold": "yellow", "golden": "yellow", "lemon": "yellow", "mustard": "yellow",
    "lime": "green", "emerald": "green", "olive": "green", "mint": "green", "jade": "green",
    "navy": "blue", "azure": "blue", "cobalt": "blue", "sapphire": "blue", "indigo": "blue",
    "lavender": "purple", "lilac": "purple", "plum": "purple", "magenta": "purple", "mauve": "purple",
    "rose": "pink", "fuchsia": "pink", "salmon": "pink",
    "chocolate": "brown", "tan": "brown", "maroon": "brown", "bronze": "brown",
    "charcoal": "black", "ebony": "black", "jet": "black",
    "ivory": "white", "snow": "white", "cream": "white",
    "silver": "gray", "slate": "gray", "ash": "gray",
    "teal": "cyan", "aqua": "cyan", "aquamarine": "cyan",
}  # fmt: skip
MAX_WORD = 8  # letters of a word to write (the training words have 1-6)

_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "a single": 1, "single": 1}
_NUMBERS |= {str(i): i for i in range(1, 7)}
_NUMBERS |= {"a pair of": 2, "a couple of": 2, "a group of": 0, "exactly": 0}  # 0: a number follows


_EXTRA_SHAPES = {
    "disk": "circle", "dot": "circle", "oval": "circle", "ball": "circle", "rectangle": "square",
    "plus": "cross", "donut": "ring", "doughnut": "ring", "lozenge": "diamond",
}  # fmt: skip
_EXTRA_RELATIONS = {
    "on top of": "above", "over": "above", "underneath": "below",
    "to the side of": "next to", "alongside": "next to", "by": "next to",
}  # fmt: skip
#: "A with B to its right": B is right of A.
_TAILS = {
    "to its right": "right of", "on its right": "right of",
    "to its left": "left of", "on its left": "left of",
    "beneath it": "below", "below it": "below", "under it": "below", "above it": "above",
    "beside it": "next to", "next to it": "next to",
}  # fmt: skip
_SAYS = (
    "that says", "which says", "saying", "reading", "that reads", "with the word", "with the text",
    "the word", "the text", "the letter", "the letters", "says", "reads",
)  # fmt: skip
_EXTRA_STYLES = {
    "sketch": "sketch", "sketched": "sketch", "hand-drawn": "sketch", "drawn by hand": "sketch",
    "pencil": "sketch", "outline": "outlined", "outlines": "outlined", "outlined": "outlined",
    "shadow": "shadow", "shadows": "shadow", "shadowed": "shadow", "flat": "flat",
}  # fmt: skip


@dataclass(frozen=True)
class Phrase:
    """A merged phrase: ``kind`` (colour, shape, size, number, relation, tail, position, sign, says,
    background, pattern, style, letters, written, the, word, punct) and its canonical ``value``."""

    kind: str
    value: str
    text: str
    plural: bool = False


def _table() -> dict[str, Phrase]:
    t: dict[str, Phrase] = {}

    def add(words: str, kind: str, value: str, plural: bool = False) -> None:
        t.setdefault(words, Phrase(kind, value, words, plural))

    def named(kind: str, table: Mapping[str, Sequence[str]]) -> None:  # {name: its phrases}
        for name, phrases in table.items():
            for p in phrases:
                add(p, kind, name)

    def aliases(kind: str, table: Mapping[str, str]) -> None:  # {phrase: name}
        for p, name in table.items():
            add(p, kind, name)

    for name, forms in SHAPE_WORDS.items():
        for singular, plural in forms:
            add(singular, "shape", name)
            add(plural, "shape", name, True)
    for word, name in _EXTRA_SHAPES.items():
        add(word, "shape", name)
        add(word + ("es" if word.endswith("s") else "s"), "shape", name, True)
    named("colour", COLOUR_WORDS)
    aliases("colour", EXTRA_COLOURS)
    named("size", SIZE_WORDS)
    aliases("size", {"tiny": "small", "huge": "large", "giant": "large", "mid-sized": "medium"})
    aliases("number", {w: str(n) for w, n in _NUMBERS.items()})
    named("relation", RELATION_WORDS)
    aliases("relation", _EXTRA_RELATIONS)
    aliases("tail", _TAILS)
    for name, phrases in POSITION_PHRASES.items():
        for p in phrases:
            add(p, "position", name)
            add(p.replace("in the ", "at the ", 1), "position", name)
    named("sign", {"sign": ("sign", "signs", "label", "labels", "signboard", "plaque", "board", "plate")})
    named("says", {"says": _SAYS})
    named("background", {"background": ("background", "backdrop")})
    named("pattern", BACKGROUND_ADJECTIVES)
    aliases("pattern", {"gradient": "gradient", "striped": "stripes", "stripes": "stripes"})
    aliases("pattern", {"checked": "checker", "dots": "dots"})
    for name, phrases in STYLE_PHRASES.items():
        add(name, "style", name)
        for p in phrases:
            add(p, "style", name)
    aliases("style", _EXTRA_STYLES)
    named("letters", {"letters": ("letters", "letter", "text", "lettering", "ink", "font")})
    named("written", {"written": ("written in", "painted in", "printed in")})
    named("the", {"the": ("the", "this", "that")})
    named("of them", {"of them": ("of them",)})
    return t


_TABLE = _table()
_MAX_PHRASE = max(len(k.split()) for k in _TABLE)
_SPLIT = re.compile(r'"[^"]*"|[A-Za-z0-9][A-Za-z0-9\'-]*|[,;:.!?]')
_STOPWORDS = frozenset((
    "a", "an", "and", "or", "with", "on", "in", "at", "of", "to", "is", "are", "there", "it", "its", "me",
    "i'd", "like", "please", "could", "you", "make", "draw", "show", "generate", "paint", "create", "render",
    "picture", "image", "scene", "where", "sits", "sitting", "placed", "positioned", "some",
))  # fmt: skip

Matcher = Callable[[str, str], tuple[str, float] | None]


def read_phrases(caption: str, match: Matcher | None = None) -> list[Phrase]:
    """The caption as merged phrases (unknown words become ``word``, or the colour/shape ``match`` says)."""
    raw = _SPLIT.findall(caption)
    out: list[Phrase] = []
    i = 0
    while i < len(raw):
        tok = raw[i]
        if tok.startswith('"'):
            out.append(Phrase("quoted", tok.strip('" ').upper(), tok))
            i += 1
            continue
        for n in range(min(_MAX_PHRASE, len(raw) - i), 0, -1):
            words = " ".join(w.lower() for w in raw[i : i + n])
            hit = _TABLE.get(words)
            if hit is not None:
                out.append(Phrase(hit.kind, hit.value, " ".join(raw[i : i + n]), hit.plural))
                i += n
                break
        else:
            kind = "punct" if tok in ",;:.!?" else "word"
            out.append(Phrase(kind, tok.lower(), tok))
            i += 1
    # Quotes that the tokenizer split off (MiniLM decodes '"HELLO"' as '" hello "').
    return _guess_unknown(_join_quotes(out, caption), match)


def _join_quotes(phrases: list[Phrase], caption: str) -> list[Phrase]:
    m = re.search(r'"\s*([A-Za-z]+)\s*"', caption)
    if m is None:
        return phrases
    word = m.group(1)
    return [Phrase("quoted", word.upper(), p.text) if p.text == word else p for p in phrases]


def _guess_unknown(phrases: list[Phrase], match: Matcher | None) -> list[Phrase]:
    """Unknown words in a colour's or a shape's place, read by MiniLM similarity."""
    if match is None:
        return phrases
    out = list(phrases)
    for i, p in enumerate(out):
        if p.kind != "word" or p.value in _STOPWORDS or len(p.value) < 3 or not p.value.isalpha():
            continue
        after = out[i + 1].kind if i + 1 < len(out) else "end"
        before = out[i - 1].kind if i > 0 else "start"
        if after in ("shape", "sign", "background", "word"):
            guess = match(p.value, "colour")
            if guess:
                out[i] = Phrase("colour", guess[0], p.text)
                continue
        if before in ("colour", "size", "number", "word", "the") or after in ("punct", "relation", "end"):
            plural = p.value.endswith("s") and len(p.value) > 4
            guess = match(p.value[:-1] if plural else p.value, "shape")
            if guess:
                out[i] = Phrase("shape", guess[0], p.text, plural)
    return out


@dataclass
class _Mention:
    kind: str  # object, sign, text
    start: int
    end: int
    shape: str = ""
    colour: str | None = None
    size: str | None = None
    count: int | None = None
    definite: bool = False
    alias: int | None = None  # index of the earlier mention this one refers to ("the red circle")
    extra: dict[str, Any] = field(default_factory=dict)


def _modifiers(phrases: Sequence[Phrase], head: int) -> tuple[int, dict[str, Any]]:
    """Walk back from a head noun over its modifiers; return where the noun phrase starts and what it says."""
    found: dict[str, Any] = {}
    i = head - 1
    while i >= 0:
        p = phrases[i]
        if p.kind in ("colour", "size") and p.kind not in found:
            found[p.kind] = p.value
        elif p.kind == "number" and "number" not in found:
            if p.value != "0":
                found["number"] = int(p.value)
        elif p.kind == "the" and "number" not in found:
            found["definite"] = True
            i -= 1
            break
        elif p.kind == "pattern" and phrases[head].kind == "background":
            found.setdefault("patterns", []).append(p.value)
        elif p.kind == "word" and p.value in ("a", "an"):
            i -= 1
            break
        else:
            break
        i -= 1
    return i + 1, found


def read_caption(caption: str, match: Matcher | None = None) -> SceneRequest:
    """What ``caption`` asks for."""
    phrases = read_phrases(caption, match)
    mentions: list[_Mention] = []
    background_colour = background = style = text_colour = None
    word: str | None = None
    word_at = -1
    position = None
    for i, p in enumerate(phrases):
        if p.kind in ("shape", "sign", "background", "letters"):
            start, mods = _modifiers(phrases, i)
            if p.kind == "background":
                background_colour = mods.get("colour", background_colour)
                patterns = mods.get("patterns", [])
                if patterns:
                    background = patterns[0]
                continue
            if p.kind == "letters":
                if mods.get("colour"):  # "in white letters", "blue text that says ..."
                    text_colour = mods["colour"]
                continue
            m = _Mention("object" if p.kind == "shape" else "sign", start, i + 1, p.value)
            m.colour, m.size = mods.get("colour"), mods.get("size")
            m.definite = bool(mods.get("definite"))
            if "number" in mods:
                m.count = mods["number"]
            elif p.plural and p.kind == "shape":
                m.count, m.extra["implied"] = 2, True
            tail = [q.kind for q in phrases[i + 1 : i + 4]]
            if tail == ["punct", "number", "of them"]:  # "green stars, three of them"
                m.count = int(phrases[i + 2].value)
                m.extra.pop("implied", None)
            mentions.append(m)
        elif p.kind == "says":
            for q in phrases[i + 1 : i + 3]:
                if q.kind == "quoted" or (q.kind in ("word", "shape", "colour") and q.text.isalpha()):
                    letters = re.sub(r"[^A-Za-z]", "", q.text if q.kind != "quoted" else q.value)
                    if letters:
                        word, word_at = letters[:MAX_WORD].upper(), i
                    break
        elif p.kind == "quoted" and word is None:
            letters = re.sub(r"[^A-Za-z]", "", p.value)
            if letters:
                word, word_at = letters[:MAX_WORD].upper(), i
        elif p.kind == "written" and i + 1 < len(phrases) and phrases[i + 1].kind == "colour":
            text_colour = phrases[i + 1].value
        elif p.kind == "style":
            style = p.value
        elif p.kind == "pattern" and (
            i + 1 >= len(phrases) or phrases[i + 1].kind not in ("colour", "background")
        ):
            background = background or p.value
        elif p.kind == "position":
            position = p.value
    # "in blue" right after the word: its colour.
    if word is not None and word_at >= 0:
        for j in range(word_at + 1, min(word_at + 4, len(phrases) - 1)):
            if phrases[j].kind == "word" and phrases[j].value == "in" and phrases[j + 1].kind == "colour":
                text_colour = phrases[j + 1].value
                break
    for m in mentions:  # "the red circle" after "a red circle" is the same object
        if m.definite and m.kind == "object":
            for j, other in enumerate(mentions):
                if other is m:
                    break
                if other.alias is None and other.shape == m.shape and (m.colour in (None, other.colour)):
                    m.alias = j
                    break
    signs = [m for m in mentions if m.kind == "sign"]
    if word is not None and word_at >= 0:  # the word stands where its holder is, for relations
        mentions.append(_Mention("text", word_at, word_at + 1))
        mentions.sort(key=lambda m: m.start)
    relation = _relation(phrases, mentions)
    return _request(
        mentions, relation, position, word, signs, text_colour, background_colour, background, style
    )


def _relation(phrases: Sequence[Phrase], mentions: list[_Mention]) -> tuple[int, str, int] | None:
    """(subject mention, relation, object mention) from the first relation phrase, if any."""

    def canon(i: int) -> int:
        alias = mentions[i].alias
        return i if alias is None else alias

    for r, p in enumerate(phrases):
        if p.kind not in ("relation", "tail"):
            continue
        before = [i for i, m in enumerate(mentions) if m.end <= r]
        after = [i for i, m in enumerate(mentions) if m.start > r]
        if p.kind == "tail" and len(before) >= 2:  # "A with B to its right": B right of A
            return canon(before[-1]), p.value, canon(before[-2])
        if before and after:
            return canon(before[-1]), p.value, canon(after[0])
        if not before and len(after) >= 2:  # "to the left of B is A": A left of B
            return canon(after[1]), p.value, canon(after[0])
    return None


def _request(
    mentions: list[_Mention],
    relation: tuple[int, str, int] | None,
    position: str | None,
    word: str | None,
    signs: list[_Mention],
    text_colour: str | None,
    background_colour: str | None,
    background: str | None,
    style: str | None,
) -> SceneRequest:
    objects: list[ObjectRequest] = []
    index: dict[int, int] = {}  # mention -> its first object
    distinct = [m for m in mentions if m.kind == "object" and m.alias is None]
    for m in distinct:
        index[mentions.index(m)] = len(objects)
        n = max(1, min(m.count or 1, MAX_REQUESTED_OBJECTS))
        objects.extend(ObjectRequest(m.shape, m.colour, m.size) for _ in range(n))
    # A count scene is n of one kind of object, counted in so many words ("three", "3 of them").
    counted = len(distinct) == 1 and distinct[0].count is not None and not distinct[0].extra.get("implied")
    count = len(objects) if counted else None
    sign_colour = signs[0].colour if signs else None
    word_relation = None
    rel: tuple[int, str, int] | None = None
    if relation is not None:
        a, name, b = relation
        ka, kb = mentions[a].kind, mentions[b].kind
        if ka == "object" and kb == "object" and a in index and b in index and a != b:
            rel = (index[a], name, index[b])
        elif "object" in (ka, kb) and {ka, kb} & {"sign", "text"} and name in ("above", "below"):
            # Where the word (or its sign) is relative to the object: "a sign ... above a red circle".
            word_relation = name if ka != "object" else INVERSE_RELATION[name]
    if word is not None and objects:
        objects = objects[:1]
    return SceneRequest(
        objects=tuple(objects),
        relation=rel,
        position=position if len(objects) == 1 else None,
        count=count,
        word=word,
        on_sign=bool(signs) and word is not None,
        sign_colour=sign_colour,
        text_colour=text_colour,
        word_relation=word_relation,
        background_colour=background_colour,
        background=_pattern(background),
        style=style,
    )


def _pattern(name: str | None) -> str | None:
    if name == "gradient":
        return "gradient_vertical"
    return name


def _seed(caption: str) -> int:
    digest = hashlib.sha256(" ".join(caption.lower().split()).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def layout_caption(caption: str, match: Matcher | None = None, seed: int | None = None) -> SceneTruth | None:
    """The scene laid out for ``caption`` (None when it asks for nothing drawable). The layout is drawn
    from a generator seeded by the caption (and ``seed``, when given)."""
    request = read_caption(caption, match)
    if not request.objects and not request.word and request.background_colour is None:
        return None
    # What the caption leaves open is drawn plainly: a flat style on a solid background.
    request = replace(request, style=request.style or "flat", background=request.background or "solid")
    key = _seed(caption) if seed is None else _seed(f"{seed}/{caption}")
    return layout_scene(request, random.Random(key))


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
    cached = getattr(encoder, "_gouache_matcher", None)
    if cached is None:
        cached = _MiniLMMatcher(encoder)
        encoder.__dict__["_gouache_matcher"] = cached
    return cached  # type: ignore[no-any-return]


def layout_tokens(
    caption: str,
    encoder: Any | None = None,
    seed: int | None = None,
    region: tuple[float, float, float, float] | None = None,
) -> torch.Tensor:
    """[LAYOUT_TOKENS, TOKEN_DIM] layout tokens for ``caption``; all zeros when nothing is drawable. With a
    ``region`` (canvas units), the layout is fitted into it (the mask of an inpainting edit)."""
    truth = layout_caption(caption, matcher_for(encoder) if encoder is not None else None, seed)
    if truth is None:
        return empty_tokens(1)[0]
    tokens = scene_tokens(truth)
    return tokens if region is None else fit_to_region(tokens, region)
