"""The rule-based turn planner: deterministic decisions and revised prompts."""

import pytest

from gouache.service.planner import plan_turn


def test_first_turn_generates() -> None:
    plan = plan_turn("A red fox in the snow.", previous_prompt=None, has_image=False)
    assert (plan.action, plan.revised_prompt) == ("generate", "A red fox in the snow")


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
    plan = plan_turn(text, previous_prompt="a fox", has_image=True)
    assert plan.action == "edit"
    assert plan.revised_prompt == prompt
    assert plan.strength == strength
    assert plan.region == region
    assert plan == plan_turn(text, previous_prompt="a fox", has_image=True)


def test_new_subject_generates_and_actions_are_obeyed() -> None:
    assert plan_turn("a bowl of ramen", previous_prompt="a fox", has_image=True).action == "generate"
    assert (
        plan_turn("a bowl of ramen", previous_prompt="a fox", has_image=True, action="edit").action == "edit"
    )
    assert plan_turn("make it warmer", previous_prompt="a fox", has_image=True, action="generate").action == (
        "generate"
    )
    assert plan_turn("make it warmer", previous_prompt=None, has_image=False).action == "generate"
