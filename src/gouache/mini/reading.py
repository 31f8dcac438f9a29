"""The caption reader of gouache-mini's text encoder: a caption becomes a scene request, then a laid-out
scene.

:func:`read_caption` reads what a caption asks for (objects with their colour, shade, size and count, a
relation between two of them, a position, a word on a sign or on the background, the background, the style,
and the words it could not place) into a :class:`~gouache.mini.scenes.request.SceneRequest`;
:func:`~gouache.mini.scenes.request.layout_scene` lays it out the way the scene generator lays out its scenes
(:func:`layout_caption` does both), and :func:`~gouache.mini.grounding.scene_tokens` turns that into the
tokens the UNet is grounded in (:func:`layout_tokens` does all three).

Reading is a small grammar over phrases (:mod:`gouache.mini.phrases`): the caption is tidied (MiniLM's
spaced hyphens rejoined, "five-pointed star" folded into "star"), split into words, typos within one edit of
a content word corrected, known phrases merged greedily, longest first; noun phrases are ``[number] [size]
[colour] shape`` with colours and sizes also after the noun ("a star, purple, large"). A colour that belongs
to no noun is the background's ("against white", "on pale grey", "with grey behind it"). A word outside the
vocabulary that sits where a colour or a shape would is read as the nearest known one by MiniLM
(:mod:`gouache.mini.word_match`); a noun that stays unplaced ("a red fox") is left out and listed in
``ignored``. The layout is random but fixed per caption (its random generator is seeded by the caption's
hash, and by the image's seed when the engine gives one), so a prompt and seed always get the same
composition; what the caption leaves open is drawn plainly (flat style, solid background).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from gouache.mini.concepts.backdrops import BACKDROPS, take_backdrop
from gouache.mini.concepts.reader import (
    concept_object,
    concept_phrase,
    find_concept,
    in_concept_name,
    is_concept_word,
    merge_concepts,
)
from gouache.mini.grounding import empty_tokens, fit_to_region, scene_tokens
from gouache.mini.phrases import MAX_PHRASE, STOPWORDS, TABLE, Phrase, correct, doing, tidy
from gouache.mini.scenes.request import (
    MAX_REQUESTED_OBJECTS,
    ObjectRequest,
    SceneRequest,
    layout_scene,
)
from gouache.mini.scenes.truth import SceneTruth
from gouache.mini.scenes.vocabulary import INVERSE_RELATION, SHADES, base_colour
from gouache.mini.word_match import Matcher, matcher_for

__all__ = ["Phrase", "layout_caption", "layout_tokens", "matcher_for", "read_caption", "read_phrases"]

MAX_WORD = 8  # letters of a word to write (the training words have 1-6)
_SPLIT = re.compile(r'"[^"]*"|[A-Za-z0-9][A-Za-z0-9\'-]*|[,;:.!?]')
#: Words between a noun and a colour or size that follows it ("a star that is purple", "a star in red").
_POST_SKIP = frozenset(("in", "that", "which", "is", "are", "coloured", "colored", "painted", "and"))
_NOUNS = ("shape", "sign", "background", "letters", "unknown", "concept")


def _words(caption: str) -> list[str]:
    """The caption's words, typos of content words corrected (never the word after "says": it is written)."""
    raw = _SPLIT.findall(tidy(caption))
    out: list[str] = []
    for i, tok in enumerate(raw):
        after_says = any(
            TABLE.get(" ".join(raw[max(0, i - n) : i]).lower(), Phrase("", "", "")).kind == "says"
            for n in (1, 2, 3)
        )
        # concepts (issue 22): a thing's name is no typo ("deer" is not "deep")
        kept = tok.startswith('"') or after_says or is_concept_word(tok) or in_concept_name(raw, i)
        fixed = None if kept else correct(tok)
        out.append(fixed or tok)
    return out


def read_phrases(caption: str, match: Matcher | None = None) -> list[Phrase]:
    """The caption as merged phrases (unknown words become ``word``, or the colour/shape ``match`` says, or
    ``unknown`` for a noun nothing matches)."""
    raw = _words(caption)
    out: list[Phrase] = []
    i = 0
    while i < len(raw):
        tok = raw[i]
        if tok.startswith('"'):
            out.append(Phrase("quoted", tok.strip('" ').upper(), tok))
            i += 1
            continue
        for n in range(min(MAX_PHRASE, len(raw) - i), 0, -1):
            words = " ".join(w.lower() for w in raw[i : i + n])
            hit = TABLE.get(words)
            if hit is not None:
                out.append(Phrase(hit.kind, hit.value, " ".join(raw[i : i + n]), hit.plural))
                i += n
                break
        else:
            kind = "punct" if tok in ",;:.!?" else "word"
            out.append(Phrase(kind, tok.lower(), tok))
            i += 1
    # Quotes that the tokenizer split off (MiniLM decodes '"HELLO"' as '" hello "').
    # concepts (issue 22): two-word names of things ("cherry blossoms") before single unknown words.
    phrases = _read_not_written(_join_quotes(out, caption))
    return _pairs(_drop_echoes(_guess_unknown(_drop_holders(merge_concepts(_merge_nouns(phrases))), match)))


def _pairs(phrases: list[Phrase]) -> list[Phrase]:
    """ "a pair of" before a thing named in the plural is one of it ("a pair of sunglasses"); before
    others it is two ("a pair of birds")."""
    out = list(phrases)
    for i, p in enumerate(out[:-1]):
        q = out[i + 1]
        pair = p.kind == "number" and p.text.lower().endswith("pair of")
        thing = find_concept(q.value) if pair and q.kind == "concept" else None
        if thing is not None and thing.plural_only:
            out[i] = Phrase("word", p.text.lower(), p.text)
    return out


def _read_not_written(phrases: list[Phrase]) -> list[Phrase]:
    """``phrases`` with a "says" word before an article and a noun read as a plain word: "a man reading a
    newspaper" reads, "a sign reading OPEN" and "the letter a" write."""
    out = list(phrases)
    for i, p in enumerate(out[:-2]):
        article = out[i + 1].kind == "word" and out[i + 1].text in ("a", "an", "the")
        if p.kind == "says" and article and out[i + 2].kind not in ("punct", "cue"):
            out[i] = Phrase("word", p.text.lower(), p.text)
    return out


def _by_its_name(p: Phrase) -> bool:
    """Whether concept phrase ``p`` names its thing by the thing's own name ("fire", "fires"; not
    "fireplace", an alias, or "spell", a keyword)."""
    thing, text = find_concept(p.value), p.text.lower()
    return thing is not None and thing.label in (text, text[:-1], text[:-2])


def _drop_echoes(phrases: list[Phrase]) -> list[Phrase]:
    """``phrases`` without a second mention of a thing already there, when one of the two words is not the
    thing's own name (a keyword, an alias or MiniLM's guess) and the two are not listed together: "a wizard
    casting a spell" is one mage ("spell" is one of its keywords), "coffee on a rainy morning" one hot drink,
    "a fire in a fireplace" one fire, "a bakery with fresh bread" one bread; the later word is read as the
    thing already there. "a cat and a cat", "a kitten and a cat" and "a dog, a puppy" stay two."""
    named: dict[str, bool] = {}  # the things mentioned, and whether by their own name
    out: list[Phrase] = []
    for i, p in enumerate(phrases):
        if p.kind == "concept" and p.value in named:
            both_named = named[p.value] and _by_its_name(p)
            if not both_named and not _listed(phrases, i):
                p = Phrase("word", p.text.lower(), p.text)
        elif p.kind == "concept":
            named[p.value] = _by_its_name(p)
        out.append(p)
    return out


def _listed(phrases: list[Phrase], i: int) -> bool:
    """Whether the noun at ``i`` follows "and" or a comma, past its article, number, colour and size."""
    j = i - 1
    while j >= 0 and (
        phrases[j].kind in ("number", "colour", "size", "the") or phrases[j].value in ("a", "an")
    ):
        j -= 1
    return j >= 0 and (phrases[j].value == "and" or phrases[j].text == ",")


def _merge_nouns(phrases: list[Phrase]) -> list[Phrase]:
    """One noun from two names of one shape ("square tile", "round disk"), and a plural from a plural
    filler after it ("triangle shapes", "heart icons")."""
    out: list[Phrase] = []
    for p in phrases:
        last = out[-1] if out else None
        if last is not None and last.kind == "shape" and p.kind == "shape" and p.value == last.value:
            out[-1] = Phrase("shape", last.value, f"{last.text} {p.text}", last.plural or p.plural)
        elif (
            last is not None and last.kind == "shape" and p.kind == "filler" and p.text.lower().endswith("s")
        ):
            out[-1] = replace(last, plural=True)
        else:
            out.append(p)
    return out


def _join_quotes(phrases: list[Phrase], caption: str) -> list[Phrase]:
    m = re.search(r'"\s*([A-Za-z]+)\s*"', caption)
    if m is None:
        return phrases
    word = m.group(1)
    return [Phrase("quoted", word.upper(), p.text) if p.text == word else p for p in phrases]


def _after_a_noun(phrases: list[Phrase], i: int) -> bool:
    """Whether phrase ``i`` follows a noun ("cat" in "a cat sleeping"), not an article, a number or a
    modifier ("a packing", "two flowing")."""
    if i == 0:
        return False
    before = phrases[i - 1]
    if before.kind in ("concept", "shape", "unknown"):
        return True
    return before.kind == "word" and before.value not in STOPWORDS and before.value.isalpha()


#: Words for what holds, groups or depicts a thing ("a cup of coffee", "a family of ducks", "a watercolor
#: painting of a hummingbird"): the things are drawn (a drink's drawing shows it served), not the holder.
_HOLDERS = frozenset((
    "cup", "glass", "mug", "bowl", "plate", "bottle", "jar", "vase", "slice", "piece", "bunch", "bag", "pot",
    "can", "jug", "pitcher", "box", "bucket", "pile", "stack", "handful", "bouquet", "carton", "tin", "tub",
    "pair", "family", "flock", "herd", "group", "pack", "school", "pod", "swarm", "crowd", "team", "litter",
    "pride",
    "painting", "drawing", "photo", "photograph", "picture", "illustration", "image", "portrait", "poster",
    "watercolor", "watercolour", "cartoon", "render", "rendering", "sketch",
))  # fmt: skip
#: Words for a part of a thing, said after it ("a watermelon slice", "a cake piece"): the thing is drawn.
_PORTIONS = frozenset(
    ("slice", "slices", "piece", "pieces", "wedge", "wedges", "chunk", "chunks", "scoop", "scoops")
)


def _drop_holders(phrases: list[Phrase]) -> list[Phrase]:
    """``phrases`` without "<holder> of" before a thing ("a cup of coffee" is coffee, "two glasses of milk"
    two glasses of milk, "a family of ducks" ducks) or a portion after one ("a watermelon slice"); "a cup"
    alone stays a cup, and "full of" is "with"."""
    out: list[Phrase] = []
    i = 0
    while i < len(phrases):
        p, rest = phrases[i], phrases[i + 1 : i + 3]
        word = p.text.lower()
        if word in _PORTIONS and out and (out[-1].kind == "concept" or is_concept_word(out[-1].value)):
            i += 1
            continue
        holder = word in _HOLDERS or (word.endswith("s") and (word[:-1] in _HOLDERS or word[:-2] in _HOLDERS))
        if word == "full" and rest[:1] and rest[0].text.lower() == "of":  # "a basket full of apples"
            out.append(Phrase("word", "with", "full of"))
            i += 2
            continue
        if (
            holder
            and p.kind in ("word", "concept", "unknown")
            and len(rest) == 2
            and rest[0].text.lower() == "of"
            and rest[1].kind in ("concept", "word", "unknown", "colour")
        ):
            i += 2
            continue
        out.append(p)
        i += 1
    return out


def _guess_unknown(phrases: list[Phrase], match: Matcher | None) -> list[Phrase]:
    """Unknown words in a colour's or a shape's place, read by MiniLM similarity; a word in a noun's place
    that stays unread becomes ``unknown`` (left out of the scene, and said so)."""
    out = list(phrases)
    for i, p in enumerate(out):
        # a hyphenated word ("blu-ray", "jack-o-lantern") is read only as a thing it names exactly (note 49)
        hyphened = "-" in p.value and p.value.replace("-", "").isalpha()
        wordlike = p.value.isalpha() or hyphened
        if p.kind != "word" or p.value in STOPWORDS or len(p.value) < 2 or not wordlike:
            continue
        after = out[i + 1].kind if i + 1 < len(out) else "end"
        before = out[i - 1].kind if i > 0 else "start"
        # "a cat sleeping": what the cat does, no thing to draw ("a packing", after an article, is a thing)
        if doing(p.value) and _after_a_noun(out, i):
            continue
        modifies = after in ("shape", "sign", "background", "letters", "colour", "size", "concept") or (
            after == "word"  # "a fluffy fox": "fluffy" is no noun; "a cat sleeping": "cat" is
            and out[i + 1].value not in STOPWORDS
            and not doing(out[i + 1].value)
        )
        # concepts (issue 22): a thing's name or keyword, exactly, wins over MiniLM's colour and shape
        # guesses ("a fox in ...", "a ball"), unless the word modifies what follows ("a baby fox").
        written = any(q.kind == "says" for q in out[max(0, i - 2) : i])  # "a sign saying HOTEL": a word
        exact = None if modifies or written else concept_phrase(p, match, exact_only=True)
        if exact is not None and (len(p.value) > 2 or (before == "word" and out[i - 1].value in ("a", "an"))):
            out[i] = exact  # a two-letter thing only after an article ("an ox", "a tv")
            continue
        if hyphened or len(p.value) == 2:
            continue
        if after in ("shape", "sign", "background", "word") and match is not None:
            guess = match(p.value, "colour")
            if guess:
                out[i] = Phrase("colour", guess[0], p.text)
                continue
        article = before == "word" and out[i - 1].value in ("a", "an")
        # "a vintage typewriter": a word after an article and a word it does not know, ending a phrase
        adjective = (
            before == "word"
            and i > 1
            and out[i - 2].kind == "word"
            and out[i - 2].value in ("a", "an", "the")
            and out[i - 1].value not in STOPWORDS
            and after in ("punct", "relation", "end")
        )
        noun_place = before in ("colour", "size", "number", "the") or article or adjective
        if not noun_place and after not in ("punct", "relation", "end"):
            continue
        if match is not None and not modifies:  # "the tall grass": "tall" is no shape
            plural = p.value.endswith("s") and len(p.value) > 4
            guess = match(p.value[:-1] if plural else p.value, "shape")
            if guess:
                out[i] = Phrase("shape", guess[0], p.text, plural)
                continue
        # concepts (issue 22): a noun MiniLM places near a thing's name or keyword ("kitty": cat).
        near = None if modifies or written else concept_phrase(p, match)
        if near is not None:
            out[i] = near
        elif noun_place and not modifies:
            out[i] = Phrase("unknown", p.value, p.text)
    return _compound_heads(out, match)


def _compound_heads(phrases: list[Phrase], match: Matcher | None) -> list[Phrase]:
    """A thing named before a noun nothing reads ("a mountain peak", "a flower shop") is that thing: the
    unread noun stays a word, and the first word, which modified it, is read as the thing it names."""
    out = list(phrases)
    for i in range(len(out) - 1):
        p, q = out[i], out[i + 1]
        after = out[i + 2] if i + 2 < len(out) else None
        ends = after is None or after.kind in ("punct", "relation", "position") or after.value in STOPWORDS
        plain = all(
            x.kind in ("word", "unknown") and x.value.isalpha() and x.value not in STOPWORDS for x in (p, q)
        )
        written = any(x.kind == "says" for x in out[max(0, i - 2) : i])
        # by its name only: "an old lighthouse" is no old man ("old" is one of his keywords)
        named = p.kind == "word" and plain and is_concept_word(p.value, names_only=True)
        if named and ends and not written and not doing(q.value):
            out[i] = concept_phrase(p, match, exact_only=True) or p
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
    """Walk back from a head noun over its modifiers; return where the noun phrase starts and what it says
    (``used``: the indices of the colour and size phrases it took)."""
    found: dict[str, Any] = {"used": []}
    i = head - 1
    while i >= 0:
        p = phrases[i]
        if p.kind in ("colour", "size"):  # the nearest one counts: "cherry red", "chocolate brown"
            found.setdefault(p.kind, p.value)
            found["used"].append(i)
        elif p.kind == "number" and "number" not in found:
            if p.value != "0":
                found["number"] = int(p.value)
        elif p.kind == "the" and "number" not in found:
            found["definite"] = True
            i -= 1
            break
        elif p.kind == "pattern" and phrases[head].kind == "background":
            found.setdefault("patterns", []).append(p.value)
        elif p.kind == "filler" or (
            p.kind == "word" and p.value == "and" and phrases[i - 1].kind == "colour"
        ):
            pass  # "a simple purple star", "a red and white sign" (the first colour is taken)
        elif p.kind == "word" and p.value not in STOPWORDS and p.value.isalpha():
            pass  # an adjective it does not know: "two bubblegum pink hearts", "a royal blue star"
        elif p.kind == "word" and p.value in ("a", "an"):
            i -= 1
            break
        else:
            break
        i -= 1
    return i + 1, found


def _post_modifiers(phrases: Sequence[Phrase], m: _Mention, used: set[int]) -> None:
    """Colour and size named after the noun ("a star, purple, large", "a star that is red")."""
    j = m.end
    while j < len(phrases):
        p = phrases[j]
        if p.kind in ("colour", "size") and j not in used:
            nxt = phrases[j + 1].kind if j + 1 < len(phrases) else "end"
            if nxt in _NOUNS or nxt == "behind" or getattr(m, p.kind) is not None:
                return
            setattr(m, p.kind, p.value)
            used.add(j)
        elif p.kind == "word" and j + 1 < len(phrases) and phrases[j + 1].kind == "colour":
            pass  # "a diamond, bubblegum pink"
        elif not (p.kind in ("punct", "filler", "the") or (p.kind == "word" and p.value in _POST_SKIP)):
            return
        j += 1


def _background_colour(phrases: Sequence[Phrase], used: set[int]) -> str | None:
    """The colour no noun took, named as people name a background: after "against"/"on"/"over", before
    "behind it", or left over at the end ("a purple star, white")."""
    found = None
    for i, p in enumerate(phrases):
        if p.kind != "colour" or i in used:
            continue
        found = p.value  # a colour left over: the background's, unless a later one is cued
        j = i - 1
        while j >= 0 and (phrases[j].kind in ("the", "pattern", "filler") or phrases[j].value in ("a", "an")):
            j -= 1
        k = i + 1
        while k < len(phrases) and phrases[k].kind == "filler":  # "green-coloured behind it"
            k += 1
        nxt = phrases[k].kind if k < len(phrases) else "end"
        if (j >= 0 and (phrases[j].kind == "cue" or phrases[j].text.lower() == "over")) or nxt == "behind":
            return p.value
    return found


def read_caption(caption: str, match: Matcher | None = None) -> SceneRequest:
    """What ``caption`` asks for."""
    caption, backdrop = take_backdrop(caption)  # concepts (issue 22): "in the snow", "at night", ...
    phrases = read_phrases(caption, match)
    mentions: list[_Mention] = []
    used: set[int] = set()  # colour and size phrases a noun (or the text) took
    background_colour = background = style = text_colour = None
    word: str | None = None
    word_at = -1
    position = None
    ignored: list[str] = []
    for i, p in enumerate(phrases):
        if p.kind in _NOUNS:
            start, mods = _modifiers(phrases, i)
            used.update(mods["used"])
            if p.kind == "unknown":
                ignored.append(p.text)
                continue
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
            m = _Mention("object" if p.kind in ("shape", "concept") else "sign", start, i + 1, p.value)
            if p.kind == "concept":  # concepts (issue 22)
                m.extra["concept"] = True
            m.colour, m.size = mods.get("colour"), mods.get("size")
            m.definite = bool(mods.get("definite"))
            if "number" in mods:
                m.count = mods["number"]
            elif p.plural and p.kind in ("shape", "concept"):
                m.count, m.extra["implied"] = 2, True
            tail = [q.kind for q in phrases[i + 1 : i + 4]]
            if tail == ["punct", "number", "of them"]:  # "green stars, three of them"
                m.count = int(phrases[i + 2].value)
                m.extra.pop("implied", None)
            mentions.append(m)
        elif p.kind == "says":
            for q in phrases[i + 1 : i + 3]:
                if q.kind == "quoted" or (
                    q.kind in ("word", "shape", "colour", "unknown") and q.text.isalpha()
                ):
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
            used.add(i + 1)
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
                used.add(j + 1)
                break
    for m in mentions:
        _post_modifiers(phrases, m, used)
    if background_colour is None:
        background_colour = _background_colour(phrases, used)
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
    request = _request(
        mentions, relation, position, word, signs, text_colour, background_colour, background, style
    )
    request = replace(request, ignored=tuple(dict.fromkeys(ignored)))
    if backdrop is not None:  # concepts (issue 22): the setting is planned as its main colour
        request = replace(
            request, backdrop=backdrop, background_colour=BACKDROPS[backdrop].colour, background_shade=None
        )
    return request


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
        shade = m.colour if m.colour in SHADES else None
        colour = base_colour(m.colour) if m.colour else None
        if m.extra.get("concept"):  # concepts (issue 22)
            objects.extend(concept_object(m.shape, colour, m.size, shade) for _ in range(n))
        else:
            objects.extend(ObjectRequest(m.shape, colour, m.size, shade) for _ in range(n))
    # A count scene is n (two or more) of one kind of object, counted in so many words ("three", "3 of them").
    lone = distinct[0] if len(distinct) == 1 else None
    counted = lone is not None and (lone.count or 0) >= 2 and not lone.extra.get("implied")
    count = len(objects) if counted else None
    sign_colour = base_colour(signs[0].colour) if signs and signs[0].colour else None
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
        # A position in a scene with words is where the words go ("the word SALE at the bottom").
        position=position if len(objects) == 1 or word is not None else None,
        count=count,
        word=word,
        on_sign=bool(signs) and word is not None,
        sign_colour=sign_colour,
        text_colour=base_colour(text_colour) if text_colour else None,
        word_relation=word_relation,
        background_colour=base_colour(background_colour) if background_colour else None,
        background_shade=background_colour if background_colour in SHADES else None,
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


def layout_tokens(
    caption: str,
    encoder: Any | None = None,
    seed: int | None = None,
    region: tuple[float, float, float, float] | None = None,
    glyphs: bool = True,
) -> torch.Tensor:
    """[LAYOUT_TOKENS, TOKEN_DIM] layout tokens for ``caption``; all zeros when nothing is drawable. With a
    ``region`` (canvas units), the layout is fitted into it (the mask of an inpainting edit). Without
    ``glyphs``, the text's letters are left out (the sign or the space for the words stays)."""
    truth = layout_caption(caption, matcher_for(encoder) if encoder is not None else None, seed)
    if truth is None:
        return empty_tokens(1)[0]
    if not glyphs and truth.text is not None:  # the words are typeset at the finish (mini/lettering.py)
        truth = replace(truth, text=None)
    tokens = scene_tokens(truth)
    return tokens if region is None else fit_to_region(tokens, region)
