"""The rule-based turn decision: deterministic decisions and revised prompts."""

import pytest

from gouache.service.turns import decide_turn


def test_first_turn_generates() -> None:
    decision = decide_turn("A red fox in the snow.", previous_prompt=None, has_image=False)
    assert (decision.action, decision.revised_prompt) == ("generate", "A red fox in the snow")


@pytest.mark.parametrize(
    ("text", "prompt", "strength", "region"),
    [
        ("make the colours warmer", "a fox, warmer colours", 0.4, None),
        ("make it brighter", "a fox, brighter", 0.4, None),
        ("add a second fox on the left", "a fox, with a second fox on the left", 1.0, "left"),
        ("add a moon at the top", "a fox, with a moon at the top", 1.0, "top"),
        ("turn it into a poster that says WINTER", "a poster that says WINTER, showing a fox", 0.75, None),
        ("remove the snow", "a fox, without the snow", 0.6, None),
        ("now with a hat", "a fox, now with a hat", 0.6, None),
    ],
)
def test_refinements_edit_the_previous_image(
    text: str, prompt: str, strength: float, region: str | None
) -> None:
    decision = decide_turn(text, previous_prompt="a fox", has_image=True)
    assert decision.action == "edit"
    assert decision.revised_prompt == prompt
    assert decision.strength == strength
    assert decision.region == region
    assert decision == decide_turn(text, previous_prompt="a fox", has_image=True)


def test_new_subject_generates_and_actions_are_obeyed() -> None:
    assert decide_turn("a bowl of ramen", previous_prompt="a fox", has_image=True).action == "generate"
    assert (
        decide_turn("a bowl of ramen", previous_prompt="a fox", has_image=True, action="edit").action
        == "edit"
    )
    assert decide_turn(
        "make it warmer", previous_prompt="a fox", has_image=True, action="generate"
    ).action == ("generate")
    assert decide_turn("make it warmer", previous_prompt=None, has_image=False).action == "generate"
