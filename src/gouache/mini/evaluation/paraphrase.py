"""The paraphrase set: prompts worded the way people write them, with their ground truth.

Written apart from the training caption generator (:mod:`gouache.mini.scenes.captions`) on purpose, with
its own word lists, so that ``gouache eval --set paraphrase`` measures how the caption reader copes with
wording it was not tuned on: colour names and shades ("light grey", "navy", "X-coloured"), shape names
("five-pointed star", "disc", "plus sign"), sizes, counts in numerals and words ("2", "a pair of", "three
little"), relations and backgrounds named every which way ("against white", "plain light grey backdrop",
"set on", "with a ... behind it"), articles, plurals, word order, commas, trailing style words ("flat
illustration", "sticker"), capitalisation and typos within one edit of a word.

Each prompt is drawn from ``random.Random(f"paraphrase/{seed}/{i}")`` (deterministic), its scene is laid out
with the generator's own placement code from the structured spec (never from the prompt), and the scene's
``mentioned`` says what the prompt asserts: colour, shape, background colour (always, on a solid
background) and a relation or a count. Shades are used for backgrounds; their names are scored as distinct
colours (:data:`~gouache.mini.scenes.vocabulary.NAMED_COLOURS`).
"""

from __future__ import annotations

import random
from dataclasses import replace

from gouache.mini.scenes.rendering import render_truth
from gouache.mini.scenes.request import ObjectRequest, SceneRequest, layout_scene
from gouache.mini.scenes.truth import Scene, colour_distance
from gouache.mini.scenes.vocabulary import BACKGROUND_MIN_DISTANCE, COLOURS, NAMED_COLOURS, base_colour

__all__ = ["PARAPHRASE_KINDS", "paraphrase_scenes"]

PARAPHRASE_KINDS = ("single", "single", "pair", "count")

# Colour names people type, per colour (shades included); a few are rarer words.
_COLOUR_NAMES: dict[str, tuple[str, ...]] = {
    "red": ("red", "bright red", "scarlet", "crimson", "cherry red", "red-coloured"),
    "orange": ("orange", "tangerine", "orange-coloured", "vivid orange"),
    "yellow": ("yellow", "lemon yellow", "golden", "bright yellow", "mustard"),
    "green": ("green", "emerald", "lime", "grass green", "green-colored"),
    "blue": ("blue", "royal blue", "cobalt", "bright blue", "blue-coloured"),
    "purple": ("purple", "violet", "lavender", "plum", "purple-colored"),
    "pink": ("pink", "hot pink", "rose", "fuchsia", "bubblegum pink"),
    "brown": ("brown", "chocolate", "chocolate brown", "tan"),
    "black": ("black", "jet black", "pitch-black", "ebony"),
    "white": ("white", "pure white", "snow white", "off-white", "ivory"),
    "gray": ("gray", "grey", "mid grey", "medium gray"),
    "cyan": ("cyan", "turquoise", "teal", "aqua"),
    "light gray": ("light grey", "light gray", "pale grey", "silver", "pale gray"),
    "dark gray": ("dark grey", "dark gray", "charcoal", "deep grey"),
    "light blue": ("light blue", "pale blue", "sky-blue", "baby blue", "pastel blue"),
    "dark blue": ("dark blue", "navy", "deep blue", "navy blue"),
    "light green": ("light green", "pale green", "pastel green", "mint green"),
    "dark green": ("dark green", "deep green", "forest-green", "bottle green"),
}
_SHAPE_NAMES: dict[str, tuple[tuple[str, str], ...]] = {  # (one, many)
    "circle": (("circle", "circles"), ("disc", "discs"), ("dot", "dots"), ("round disk", "round disks")),
    "square": (("square", "squares"), ("square tile", "square tiles")),
    "triangle": (("triangle", "triangles"), ("triangle shape", "triangle shapes")),
    "star": (
        ("star", "stars"),
        ("five-pointed star", "five-pointed stars"),
        ("5-point star", "5-point stars"),
    ),
    "heart": (
        ("heart", "hearts"),
        ("love heart", "love hearts"),
        ("heart-shaped icon", "heart-shaped icons"),
    ),
    "hexagon": (("hexagon", "hexagons"), ("hex", "hexes")),
    "ring": (("ring", "rings"), ("hoop", "hoops"), ("donut shape", "donut shapes")),
    "cross": (("cross", "crosses"), ("plus sign", "plus signs"), ("plus", "pluses")),
    "diamond": (("diamond", "diamonds"), ("rhombus", "rhombuses"), ("lozenge", "lozenges")),
    "pentagon": (("pentagon", "pentagons"), ("pentagon shape", "pentagon shapes")),
}
_SIZE_NAMES = {"small": ("small", "tiny", "little"), "large": ("big", "large", "huge")}
_COUNT_NAMES = {
    2: ("2", "two", "a pair of", "a couple of", "Two"),
    3: ("3", "three", "three little", "a trio of"),
    4: ("4", "four"),
}
_RELATION_NAMES = {
    "left of": ("to the left of", "left of", "on the left side of"),
    "right of": ("to the right of", "right of", "on the right side of"),
    "above": ("above", "on top of", "over", "sitting above"),
    "below": ("below", "under", "underneath", "beneath"),
    "next to": ("next to", "beside", "alongside"),
}
_BACKGROUNDS = (  # {c}: the background's colour words
    "against {c}", "on {c}", "on a {c} background", "against a plain {c} backdrop",
    "on a plain {c} background", "over {c}", "set on {c}", "with a {c} backdrop behind it", "{c} background",
    "plain {c} backdrop", "on a solid {c} backdrop", "against {c}", "with {c} behind it",
)  # fmt: skip
_LEADS = (
    "", "", "", "a picture of ", "simple flat illustration of ", "draw ", "please make ", "I'd like ",
    "an image of ", "show me ", "minimal drawing of ",
)  # fmt: skip
_TRAILS = ("", "", "", ", flat illustration", ", minimalist", " icon", " sticker", ", poster", ", vector art")


def _typo(word: str, rng: random.Random) -> str:
    """``word`` with one letter swapped with its neighbour, dropped or doubled (only words of 5+ letters)."""
    if len(word) < 5 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 2)
    how = rng.choice(("swap", "drop", "double"))
    if how == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if how == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _colour_words(name: str, rng: random.Random) -> str:
    return rng.choice(_COLOUR_NAMES[name])


def _noun(shape: str, colour: str, rng: random.Random, size: str | None = None, many: int = 0) -> str:
    one, plural = rng.choice(_SHAPE_NAMES[shape])
    c = _colour_words(colour, rng)
    s = rng.choice(_SIZE_NAMES[size]) if size else ""
    if many:
        count = rng.choice(_COUNT_NAMES[many])
        if count.endswith("little"):
            s = ""
        return " ".join(w for w in (count, s, c, plural) if w)
    if rng.random() < 0.15:  # colour after the noun
        return f"a {one}{' ' + s if s else ''}, {c}"
    words = " ".join(w for w in (s, c, one) if w)
    article = (
        rng.choice(("a", "a", "one", "a single")) if words[0] not in "aeiou" else rng.choice(("an", "one"))
    )
    return f"{article} {words}"


def _pick_colours(rng: random.Random, k: int) -> tuple[list[str], str]:
    """``k`` distinct object colours and a background colour (a colour or a shade) far from all of them."""
    while True:
        objects = rng.sample(list(COLOURS), k)
        bg = rng.choice(list(NAMED_COLOURS))
        painted = (NAMED_COLOURS[bg], COLOURS[base_colour(bg)])
        if all(colour_distance(COLOURS[o], p) >= BACKGROUND_MIN_DISTANCE for o in objects for p in painted):
            return objects, bg


def _scene(i: int, seed: int, size: int) -> Scene:
    rng = random.Random(f"paraphrase/{seed}/{i}")
    kind = PARAPHRASE_KINDS[i % len(PARAPHRASE_KINDS)]
    shapes = rng.sample(list(_SHAPE_NAMES), 2)
    objects, bg = _pick_colours(rng, 2 if kind == "pair" else 1)
    mentioned = {"colour", "shape", "background"}
    relation = None
    if kind == "single":
        obj_size = rng.choice((None, None, "large", "small"))
        request = SceneRequest(objects=(ObjectRequest(shapes[0], objects[0], obj_size),))
        subject = _noun(shapes[0], objects[0], rng, obj_size)
    elif kind == "pair":
        name = rng.choice(list(_RELATION_NAMES))
        relation = (0, name, 1)
        request = SceneRequest(
            objects=(ObjectRequest(shapes[0], objects[0]), ObjectRequest(shapes[1], objects[1])),
            relation=relation,
        )
        rel = rng.choice(_RELATION_NAMES[name])
        subject = f"{_noun(shapes[0], objects[0], rng)} {rel} {_noun(shapes[1], objects[1], rng)}"
        mentioned.add("relation")
    else:
        n = rng.choice(tuple(_COUNT_NAMES))
        request = SceneRequest(objects=(ObjectRequest(shapes[0], objects[0]),) * n, count=n)
        subject = _noun(shapes[0], objects[0], rng, many=n)
        mentioned.add("count")
    background = rng.choice(_BACKGROUNDS).format(c=_colour_words(bg, rng))
    if background.startswith("with") or rng.random() < 0.7:
        text = f"{rng.choice(_LEADS)}{subject} {background}{rng.choice(_TRAILS)}"
    else:
        text = f"{background}, {subject}{rng.choice(_TRAILS)}"
    if rng.random() < 0.15:  # one typo in one longer word
        words = text.split(" ")
        j = rng.randrange(len(words))
        words[j] = _typo(words[j], rng)
        text = " ".join(words)
    case = rng.random()
    text = text.capitalize() if case < 0.3 else text.upper() if case < 0.36 else text
    request = replace(request, background_colour=base_colour(bg), background="solid", style="flat")
    truth = layout_scene(request, rng)
    truth = replace(truth, background_rgb=NAMED_COLOURS[bg])
    image = render_truth(truth, size, seed=i)
    return Scene(image, " ".join(text.split()), truth, frozenset(mentioned))


def paraphrase_scenes(n: int = 400, seed: int = 0, size: int = 64) -> list[Scene]:
    """``n`` paraphrased prompts with their scenes (kinds cycle single, single, pair, count)."""
    return [_scene(i, seed, size) for i in range(n)]
