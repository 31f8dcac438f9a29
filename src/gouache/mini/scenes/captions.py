"""Wording a scene's truth as a caption, and which of its attributes the caption asserts.

Captions vary (templates, synonyms, word order, digits vs number words, optional background and style
phrases), so the text encoder learns meaning rather than one sentence pattern; ``paraphrase=True`` words a
caption with held-out leads and structures that training never sees, for evaluation prompts. Only training
data and evaluation write captions; the caption *reader* (:mod:`gouache.mini.reading`) shares the synonym
tables of :mod:`gouache.mini.scenes.vocabulary`, not this module.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gouache.mini.scenes.truth import ObjectTruth, SceneTruth
from gouache.mini.scenes.vocabulary import (
    BACKGROUND_ADJECTIVES,
    COLOUR_WORDS,
    INVERSE_RELATION,
    NUMBER_WORDS,
    POSITION_PHRASES,
    RELATION_WORDS,
    SHAPE_WORDS,
    SIGN,
    SIZE_WORDS,
    STYLE_PHRASES,
)

# Leading phrases. Training captions start with one of TRAIN_LEADS (or with the noun phrase itself); held-out
# evaluation captions (paraphrase=True) always start with one of PARAPHRASE_LEADS, none of which is ever
# used in training.
TRAIN_LEADS: tuple[str, ...] = ("an image of ", "a picture of ", "a scene with ", "there is ", "there are ")
PARAPHRASE_LEADS: tuple[str, ...] = (
    "Draw ",
    "I'd like an image of ",
    "Picture: ",
    "Please render ",
    "Show me ",
    "Could you make ",
    "Generate ",
    "Paint ",
    "Create ",
    "Make me ",
)
_TRAIN_PLAIN_LEADS = ("", "", "", "an image of ", "a picture of ", "a scene with ")

# ----------------------------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------------------------


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


class _Lexicon:
    """Synonym choices for one caption: a caption says "grey" or "gray", never both."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.chosen: dict[tuple[str, str], int] = {}

    def _pick(self, table: str, key: str, n: int) -> int:
        if (table, key) not in self.chosen:
            self.chosen[(table, key)] = self.rng.randrange(n)
        return self.chosen[(table, key)]

    def colour(self, name: str) -> str:
        words = COLOUR_WORDS[name]
        return words[self._pick("colour", name, len(words))]

    def shape(self, name: str, plural: bool = False) -> str:
        forms = SHAPE_WORDS[name]
        return forms[self._pick("shape", name, len(forms))][1 if plural else 0]

    def size(self, name: str) -> str:
        words = SIZE_WORDS[name]
        return words[self._pick("size", name, len(words))]


def _np(o: ObjectTruth, lex: _Lexicon, with_size: bool, determiner: str = "indefinite") -> str:
    """Noun phrase for one object: "a small red circle", "the violet star", "one big disc"."""
    words = [lex.size(o.size)] if with_size else []
    words += [lex.colour(o.colour), lex.shape(o.shape)]
    core = " ".join(words)
    if determiner in ("the", "one"):
        return f"{determiner} {core}"
    if determiner == "none":
        return core
    return _article(core)


def _number(n: int, rng: random.Random) -> str:
    if n == 1:
        return rng.choice(("one", "a single", "1"))
    return str(n) if rng.random() < 0.35 else NUMBER_WORDS[n]


def _bg_phrase(truth: SceneTruth, rng: random.Random, lex: _Lexicon, mentioned: set[str]) -> str:
    colour = lex.colour(truth.background_colour)
    if rng.random() < 0.4:
        adj = rng.choice(BACKGROUND_ADJECTIVES[truth.background])
        colour = f"{adj} {colour}"
        mentioned.add("background_pattern")
    mentioned.add("background")
    return rng.choice(("on ", "against ", "with ")) + _article(colour) + " background"


def _style_phrase(truth: SceneTruth, rng: random.Random, mentioned: set[str]) -> str:
    mentioned.add("style")
    return rng.choice(STYLE_PHRASES[truth.style])


def _join(items: Sequence[str], rng: random.Random) -> str:
    if len(items) == 1:
        return items[0]
    sep = rng.choice((" and ", ", and ")) if len(items) > 2 else " and "
    return ", ".join(items[:-1]) + sep + items[-1]


def _quoted(word: str, rng: random.Random) -> str:
    return f'"{word}"' if rng.random() < 0.5 else word


def compose_caption(
    truth: SceneTruth, rng: random.Random, paraphrase: bool = False
) -> tuple[str, frozenset[str]]:
    """A caption for ``truth`` and the set of attributes it asserts (see :class:`Scene`)."""
    mentioned: set[str] = set()
    lex = _Lexicon(rng)
    objs = truth.objects
    with_size = truth.kind != "text" and rng.random() < 0.45  # size words go on every object or none
    if with_size:
        mentioned.add("size")
    lead_ok = True  # whether a TRAIN lead may precede the body
    plural = False
    if truth.kind == "single":
        o = objs[0]
        mentioned |= {"colour", "shape"}
        np_ = _np(o, lex, with_size, rng.choice(("indefinite",) * 4 + ("one",)))
        with_pos = rng.random() < 0.6
        if with_pos:
            mentioned.add("position")
            pos = rng.choice(POSITION_PHRASES[o.position])
            if paraphrase and rng.random() < 0.4:
                body = f"{np_}, {rng.choice(('placed', 'positioned', 'sitting'))} {pos}"
            else:
                form = rng.randrange(3)
                if form == 0:
                    body = f"{np_} {pos}"
                elif form == 1:
                    body, lead_ok = f"{pos}, {np_}", False
                else:
                    body, lead_ok = f"{pos} is {np_}", False
        else:
            body = np_
    elif truth.kind == "count":
        o, n = objs[0], len(objs)
        mentioned |= {"colour", "shape", "count"}
        noun = lex.shape(o.shape, plural=n > 1)
        adj = (lex.size(o.size) + " " if with_size else "") + lex.colour(o.colour)
        num = _number(n, rng)
        form = rng.randrange(4) if n > 1 else 0
        plural = n > 1 and form != 1  # "there are three ..." but "there is a group of ..."
        if form == 0:
            body = f"{num} {adj} {noun}"
        elif form == 1:
            body = f"a group of {num} {adj} {noun}"
        elif form == 2:
            body = f"exactly {num} {adj} {noun}"
        else:
            body, lead_ok = f"{adj} {noun}, {num} of them", False
    elif truth.kind in ("pair", "mixed"):
        mentioned |= {"colour", "shape"}
        rel = truth.relation
        if truth.kind == "pair" and rel is not None:
            mentioned.add("relation")
            a, name, b = rel
            if rng.random() < 0.4:
                a, name, b = b, INVERSE_RELATION[name], a
            np_a, np_b = _np(objs[a], lex, with_size), _np(objs[b], lex, with_size)
            rel_words = rng.choice(RELATION_WORDS[name])
            if paraphrase and rng.random() < 0.5:
                tail = {
                    "left of": "to its right",
                    "right of": "to its left",
                    "above": "beneath it",
                    "below": "above it",
                    "next to": "beside it",
                }[name]
                body = f"{np_a} with {np_b} {tail}"
            elif rng.random() < 0.25:
                body, lead_ok = f"{rel_words} {np_b} is {np_a}", False
            else:
                body = f"{np_a} {rel_words} {np_b}"
        else:
            order = list(range(len(objs)))
            rng.shuffle(order)
            body = _join([_np(objs[i], lex, with_size) for i in order], rng)
            if rng.random() < 0.3 and not paraphrase:
                body = f"{NUMBER_WORDS[len(objs)]} shapes: {body}"
                lead_ok = False
            if rel is not None:
                mentioned.add("relation")
                a, name, b = rel
                np_a, np_b = _np(objs[a], lex, False, "the"), _np(objs[b], lex, False, "the")
                rel_words = rng.choice(RELATION_WORDS[name])
                if paraphrase:
                    body += f", where {np_a} sits {rel_words} {np_b}"
                elif rng.random() < 0.5:
                    body += f", with {np_a} {rel_words} {np_b}"
                else:
                    body += f"; {np_a} is {rel_words} {np_b}"
    else:  # text
        mentioned.add("word")
        text = truth.text
        word = truth.word or (text.word if text else "")
        w = _quoted(word, rng)
        if text is not None and text.sign is not None:
            sign = objs[text.sign]
            noun = rng.choice(("sign", "sign", "label"))
            if rng.random() < 0.7:
                mentioned.add("colour")
                noun = lex.colour(sign.colour) + " " + noun
            verb = rng.choice(("that says", "reading", "saying", "with the word", "with the text"))
            head = f"{_article(noun)} {verb} {w}"
            if rng.random() < 0.3:
                mentioned.add("text_colour")
                head += f" in {lex.colour(text.colour)} letters"
        else:
            ink = lex.colour(text.colour) if text else "black"
            form = rng.randrange(4)
            if form < 3:
                mentioned.add("text_colour")
            head = (
                f"the word {w} written in {ink}",
                f"the word {w} in {ink} letters",
                f"{ink} text that says {w}",
                f"the word {w}",
            )[form]
            if paraphrase and rng.random() < 0.5:
                head = f"the text {w} in {ink}" if form < 3 else f"the text {w}"
        body = head
        others = [i for i, o in enumerate(objs) if o.shape != SIGN]
        if others:
            mentioned |= {"colour", "shape", "relation"}
            obj = objs[others[0]]
            text_above = text is not None and text.box[1] < obj.cy
            if rng.random() < 0.5:
                rel_words = rng.choice(RELATION_WORDS["above" if text_above else "below"])
                body = f"{head} {rel_words} {_np(obj, lex, False)}"
            else:
                rel_words = rng.choice(RELATION_WORDS["below" if text_above else "above"])
                body = f"{_np(obj, lex, False)} {rel_words} {head}"
    tails = []
    if rng.random() < 0.35:
        tails.append(_bg_phrase(truth, rng, lex, mentioned))
    if rng.random() < (0.15 if truth.style == "flat" else 0.35):
        tails.append(_style_phrase(truth, rng, mentioned))
    rng.shuffle(tails)
    caption = body + "".join((", " if rng.random() < 0.3 else " ") + t for t in tails)
    if paraphrase:  # a body that cannot follow a verb ("in the top left, ...") gets "Picture: "
        caption = (rng.choice(PARAPHRASE_LEADS) if lead_ok else "Picture: ") + caption
    elif lead_ok:
        leads = [*_TRAIN_PLAIN_LEADS, "there are " if plural else "there is "]
        if truth.kind == "text":
            leads = [ld for ld in leads if not ld.startswith("there")]
        caption = rng.choice(leads) + caption
    return caption, frozenset(mentioned)


def caption_for(truth: SceneTruth, rng: random.Random, paraphrase: bool = False) -> str:
    """A caption for ``truth``; call repeatedly with one ``rng`` for many wordings of the same scene."""
    return compose_caption(truth, rng, paraphrase)[0]
