"""What gouache-mini understood, in plain words: a :class:`~gouache.mini.scenes.request.SceneRequest` said
back as a sentence ("a purple five-pointed star, large, in the centre, on a white background"), with the words
it left out ("ignored: 'fox' (not in this model's vocabulary)"). The service returns it as each image's
``revised_prompt``, so a user sees what the caption reader made of their prompt before blaming the picture.
"""

from __future__ import annotations

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


def _concept_name(concept: str) -> tuple[str, str]:
    """A concept's name and its plural (issue 22)."""
    from gouache.mini.concepts.atlas import default_atlas

    atlas = default_atlas()
    found = atlas.by_id.get(concept) if atlas is not None else None
    name = found.label if found is not None else concept.replace("-", " ")
    if name.endswith(("s", "x", "ch", "sh")):
        return name, name + "es"
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name, name[:-1] + "ies"
    return name, name + "s"


def _object(o: ObjectRequest, n: int = 1) -> str:
    shape = _SHAPE_NAMES.get(o.shape, o.shape)
    plural = _PLURALS.get(shape, shape + "s")
    if o.concept is not None:  # concepts (issue 22): a thing, by its name
        shape, plural = _concept_name(o.concept)
    colour = o.shade or o.colour
    words = [w for w in (o.size, colour, shape if n == 1 else plural) if w]
    head = _NUMBERS.get(n, "a") if n > 1 else ("an" if words[0][0] in "aeiou" else "a")
    return " ".join([head, *words])


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
        parts += [_object(o) for i, o in enumerate(objects) if i not in (a, b)]
    else:
        parts += [_object(o) for o in objects]
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
