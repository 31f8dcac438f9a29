"""What gouache-mini understood, in plain words: a :class:`~gouache.mini.scenes.request.SceneRequest` said
back as a sentence ("a purple five-pointed star, large, in the centre, on a white background"), with the words
it left out ("ignored: 'fox' (not in this model's vocabulary)"). The service returns it as each image's
``revised_prompt``, so a user sees what the caption reader made of their prompt before blaming the picture.
"""

from __future__ import annotations

from gouache.mini.phrases import doing
from gouache.mini.scenes.request import ObjectRequest, SceneRequest

__all__ = ["describe"]

_SHAPE_NAMES = {"star": "five-pointed star", "cross": "cross (plus sign)"}
_PLURALS = {"cross (plus sign)": "crosses (plus signs)"}
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
_PATTERNS = {
    "solid": "plain",
    "gradient_vertical": "gradient",
    "gradient_horizontal": "gradient",
    "split": "two-tone",
    "stripes": "striped",
    "dots": "dotted",
    "checker": "checkered",
}
_STYLES = {
    "flat": "",
    "outlined": "with bold outlines",
    "shadow": "with a soft shadow",
    "sketch": "as a sketch",
}


#: Things named in the plural only, said "a pair of" ("a pair of sunglasses"); other plural names are
#: "some" ("some grapes").
_PAIRS = frozenset((
    "glasses", "sunglasses", "goggles", "jeans", "gloves", "socks", "shorts", "briefs", "scissors",
    "chopsticks", "skis", "ballet shoes",
))  # fmt: skip
#: Word starts said with "a" although a vowel letter begins them ("a unicorn", "a one-piece swimsuit").
_A_BEFORE_VOWEL = ("uni", "use", "usu", "eu", "one", "ufo", "uk")


def _concept_name(concept: str) -> tuple[str, str, bool]:
    """A concept's name, its plural, and whether the name is itself a plural ("books") (issue 22)."""
    from gouache.mini.concepts.reader import find_concept

    found = find_concept(concept)
    name = found.label if found is not None else concept.replace("-", " ")
    if name.startswith("flag: "):  # "flag: france" is said "flag of France", "flag: united states" "flag of
        words = name[6:].split()  # the United States"
        country = " ".join(w if w in ("and", "of", "the") else w.capitalize() for w in words)
        if words[0] == "united" or words[-1] in _PLURAL_COUNTRIES or "republic" in words:
            country = f"the {country}"
        return f"flag of {country}", f"flags of {country}", False
    if name in _PAIRS:
        return f"pair of {name}", f"pairs of {name}", False
    if found is not None and found.plural_only:
        return name, name, True
    # the noun before a link or a doing word is the one made plural ("leaves fluttering in wind")
    words = name.split()
    head = next((i for i, w in enumerate(words) if i > 0 and (w in _LINKS or doing(w))), len(words)) - 1
    return name, " ".join([*words[:head], _plural(words[head]), *words[head + 1 :]]), False


_PLURAL_COUNTRIES = ("islands", "states", "emirates", "netherlands", "bahamas", "philippines", "maldives")
_LINKS = ("with", "over", "of", "showing", "in", "on", "at", "and")
_IRREGULAR = {
    "leaf": "leaves", "knife": "knives", "wolf": "wolves", "loaf": "loaves", "mouse": "mice", "man": "men",
    "woman": "women", "person": "people", "goose": "geese", "tooth": "teeth", "foot": "feet",
    "child": "children", "sheep": "sheep", "fish": "fish", "deer": "deer", "bison": "bison", "moose": "moose",
}  # fmt: skip


def _plural(word: str) -> str:
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _article(first: str, plural_name: bool) -> str:
    """ "a", "an", "the" before a flag ("the flag of Japan") or, before a thing named in the plural,
    "some"."""
    if plural_name:
        return "some"
    if first.startswith("flag of "):
        return "the"
    return "an" if first[0] in "aeiou" and not first.startswith(_A_BEFORE_VOWEL) else "a"


def _object(o: ObjectRequest, n: int = 1) -> str:
    shape = _SHAPE_NAMES.get(o.shape, o.shape)
    plural = _PLURALS.get(shape, shape + "s")
    plural_name = False
    if o.concept is not None:  # concepts (issue 22): a thing, by its name
        shape, plural, plural_name = _concept_name(o.concept)
    colour = o.shade or o.colour
    words = [w for w in (o.size, colour, shape if n == 1 else plural) if w]
    head = _NUMBERS.get(n, "a") if n > 1 else _article(words[0], plural_name)
    return " ".join([head, *words])


def _grouped(objects: list[ObjectRequest]) -> list[str]:
    """The objects said in order, a run of the same thing as one ("two blossoms", not "a blossom and a
    blossom")."""
    said: list[str] = []
    i = 0
    while i < len(objects):
        n = 1
        while i + n < len(objects) and objects[i + n] == objects[i] and n < max(_NUMBERS):
            n += 1
        said.append(_object(objects[i], n))
        i += n
    return said


def describe(request: SceneRequest) -> str:
    """``request`` as a plain sentence, then what was ignored."""
    parts: list[str] = []
    objects = request.objects
    if request.count is not None and objects:
        parts.append(_object(objects[0], len(objects)))
    elif request.relation is not None:
        a, name, b = request.relation
        rel = {"left of": "to the left of", "right of": "to the right of"}.get(name, name)
        parts.append(f"{_object(objects[a])} {rel} {_object(objects[b])}")
        parts += _grouped([o for i, o in enumerate(objects) if i not in (a, b)])
    else:
        parts += _grouped(list(objects))
    if request.position is not None and objects and not request.word:
        parts[-1] += ", " + (
            "in the centre" if request.position == "centre" else f"at the {request.position}"
        )
    if request.word:
        holder = (
            f"on a {request.sign_colour + ' ' if request.sign_colour else ''}sign" if request.on_sign else ""
        )
        ink = f"in {request.text_colour}" if request.text_colour else ""
        where = {"above": "above it", "below": "below it"}.get(request.word_relation or "", "")
        if request.position is not None and request.position != "centre":
            where = " ".join(w for w in (where, f"at the {request.position}") if w)
        parts.append(" ".join(w for w in (f'the word "{request.word}"', ink, holder, where) if w))
    scene = " and ".join(p for p in parts if p) if len(parts) <= 2 else ", ".join(parts)
    colour = request.background_shade or request.background_colour
    pattern = _PATTERNS.get(request.background or "", "") if request.background else ""
    if request.backdrop is not None:  # concepts (issue 22): a setting, said as a setting
        from gouache.mini.concepts.backdrops import BACKDROPS

        said = BACKDROPS[request.backdrop].said
        scene = f"{scene}, {said}" if scene else said
    elif colour or pattern:
        background = " ".join(w for w in (pattern, colour, "background") if w)
        scene = f"{scene}, on a {background}" if scene else f"a {background}"
    style = _STYLES.get(request.style or "", "")
    if style and scene:
        scene = f"{scene}, {style}"
    if not scene:
        scene = "nothing this model can draw (an empty picture)"
    if request.ignored:
        words = ", ".join(f"'{w}'" for w in request.ignored)
        scene += f"; ignored: {words} (not in this model's vocabulary)"
    return scene
