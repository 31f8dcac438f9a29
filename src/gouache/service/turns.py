"""The turn decision: stands in for the text model of a Responses turn. From the conversation so far and the
new message it decides whether to generate a new image or edit the previous one, writes the revised
prompt, and picks how the edit is done (a whole-image edit of some strength, or a repaint of one region).

The rules are deterministic: the same conversation always gives the same decision. (The word "plan" is kept
for the engine catalog's `SamplingPlan`; what is decided here is a turn, not a sampling plan.)"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Words that make a message read as a change to the image in context rather than a new picture.
_REFINE = re.compile(
    r"^\s*(make|add|remove|change|turn|convert|put|replace|give|keep|now|also|instead|but|and|"
    r"more|less|brighter|darker|warmer|cooler|same|then|try|use|swap|move|zoom|crop|place|include|"
    r"without|with|edit|fix|recolou?r)\b|\b(it|this|that|the image|the picture|the scene)\b",
    re.I,
)
_TONE = re.compile(
    r"\b(warmer|cooler|colder|brighter|darker|lighter|colou?rs?|saturat\w*|vivid|muted|contrast|lighting|"
    r"tone|mood|pastel|sepia|black and white|monochrome)\b",
    re.I,
)
_REGIONS = {
    "left": re.compile(r"\b(on|to|at) the left\b|\bleft side\b", re.I),
    "right": re.compile(r"\b(on|to|at) the right\b|\bright side\b", re.I),
    "top": re.compile(r"\b(at|on|along) the top\b|\bin the sky\b|\babove\b", re.I),
    "bottom": re.compile(r"\b(at|on|along) the bottom\b|\bin the foreground\b|\bbelow\b", re.I),
}
_TURN_INTO = re.compile(
    r"^\s*(?:turn|make|convert|change)\s+(?:it|this|the image)\s+(?:into|to)\s+(.+)$", re.I
)
_ADD = re.compile(r"^\s*(?:also\s+)?(?:add|include|put|place)\s+(.+)$", re.I)
_REMOVE = re.compile(r"^\s*(?:remove|delete|take out|get rid of)\s+(.+)$", re.I)
_MAKE = re.compile(r"^\s*make\s+(?:it\s+|everything\s+|the image\s+)?(.+)$", re.I)
_COMPARATIVE = re.compile(r"^(?:the\s+)?(.+?)\s+((?:more|less)\s+\w+|\w+er)$", re.I)


@dataclass(frozen=True)
class TurnDecision:
    """What one turn does: generate or edit, with which prompt, how, and what the assistant says."""

    action: str  # "generate" | "edit"
    revised_prompt: str
    #: How far an edit moves from the previous image (image-to-image); ignored when `region` is set.
    strength: float = 0.6
    #: Repaint only this part of the image ("left", "right", "top", "bottom"), keeping the rest exactly.
    region: str | None = None
    reply: str = ""


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(".!")


def _modification(base: str, text: str) -> str:
    """Merge an instruction into the running prompt."""
    if match := _TURN_INTO.match(text):
        return f"{_clean(match.group(1))}, showing {base}"
    if match := _ADD.match(text):
        return f"{base}, with {_clean(match.group(1))}"
    if match := _REMOVE.match(text):
        return f"{base}, without {_clean(match.group(1))}"
    if match := _MAKE.match(text):
        rest = _clean(match.group(1))
        if comparative := _COMPARATIVE.match(rest):
            rest = f"{comparative.group(2)} {comparative.group(1)}"
        return f"{base}, {rest}"
    return f"{base}, {_clean(text)}"


def decide_turn(
    text: str,
    *,
    previous_prompt: str | None,
    has_image: bool,
    action: str = "auto",
    instructions: str | None = None,
) -> TurnDecision:
    """Decide one turn. `previous_prompt` is the revised prompt of the last image in the conversation, and
    `has_image` says whether an image is in context (a previous one or one the user sent)."""
    text = _clean(text) or "an image"
    wants_edit = action == "edit" or (
        action == "auto" and has_image and (previous_prompt is None or bool(_REFINE.search(text)))
    )
    if not wants_edit or not has_image:
        prompt = text if not instructions else f"{text}, {_clean(instructions)}"
        return TurnDecision("generate", prompt, reply=f"Here is the image: {prompt}.")
    base = previous_prompt or "the image"
    prompt = _modification(base, text)
    region = next((name for name, pattern in _REGIONS.items() if pattern.search(text)), None)
    if region is not None and _ADD.match(text):
        return TurnDecision("edit", prompt, 1.0, region, f"I repainted the {region} of the image: {prompt}.")
    if _TURN_INTO.match(text):
        strength = 0.75
    elif _TONE.search(text):
        strength = 0.4
    else:
        strength = 0.6
    return TurnDecision("edit", prompt, strength, None, f"I edited the image: {prompt}.")
