"""Removing the words that ask for transparency leaves a sentence the model can paint (in-process, fast)."""

from __future__ import annotations

import pytest

from gouache.engine.outputs.alpha import asks_for_transparency, without_transparency_words


@pytest.mark.parametrize(
    ("prompt", "cleaned"),
    [
        ("a sticker of a red star", "a red star"),
        ("A sticker of two blue circles", "two blue circles"),
        ("stickers of cats", "cats"),
        ("a red star sticker", "a red star"),
        ("a cut-out of a dog", "a dog"),
        ("a dog cutout, watercolor", "a dog, watercolor"),
        ("an isolated apple", "an apple"),
        ("an isolated red star", "a red star"),
        ("An isolated red star on grass", "A red star on grass"),
        ("a isolated owl", "an owl"),
        ("a star, isolated", "a star"),
        ("a cat on a transparent background", "a cat"),
        ("a cat with transparent background, flat style", "a cat, flat style"),
        ("a green triangle, no background.", "a green triangle."),
        ("transparent png of a yellow heart", "a yellow heart"),
        ("a red circle", "a red circle"),
        ("sticker", "sticker"),  # nothing else left: the prompt itself
    ],
)
def test_transparency_words_leave_a_sentence(prompt: str, cleaned: str) -> None:
    assert asks_for_transparency(prompt) or prompt == cleaned
    assert without_transparency_words(prompt) == cleaned
