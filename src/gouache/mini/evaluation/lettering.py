"""How often OCR reads the words a prompt asks for exactly, by length: 1, 2 and 3 words, short and long.

Issue 18 asks for >= 90 % exact for 1-3 words up to 20 characters at 1024x1024. The phrases are this module's
own (shop signs, posters, labels; none is a training word), in a few ways people ask for lettering, each with
the words in quotes, on a sign, a poster or the background, at a seeded random colour. ``generate(prompt,
seed)`` is any function that returns the image, as for :func:`gouache.mini.evaluation.evaluate`; the run is
``scripts/eval_lettering.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from gouache.mini.evaluation.ocr import read_text, text_match

__all__ = ["BUCKETS", "LetteringReport", "lettering_prompts", "lettering_rates"]

#: (words, short or long): short is up to 5 characters a word, long the rest up to 20 in all.
BUCKETS: dict[tuple[int, str], tuple[str, ...]] = {
    (1, "short"): ("OPEN", "SALE", "Cafe", "EXIT", "Hello", "Shop", "Taxi", "Books", "Bar", "Menu"),
    (1, "long"): (
        "Bakery",
        "Welcome",
        "Pharmacy",
        "Festival",
        "Library",
        "Bicycle",
        "Vintage",
        "Garden",
        "Seafood",
        "Tickets",
    ),
    (2, "short"): (
        "Fresh Bread",
        "Hot Tea",
        "Open Now",
        "Big Sale",
        "Good Day",
        "Nice Cafe",
        "Go Left",
        "Free Wifi",
        "Tea Shop",
        "New Menu",
    ),
    (2, "long"): (
        "Summer Festival",
        "Grand Opening",
        "Farmers Market",
        "Vintage Records",
        "Welcome Home",
        "Chocolate Bakery",
        "Holiday Special",
        "Pizza Delivery",
        "Mountain Coffee",
        "Garden Center",
    ),
    (3, "short"): (
        "Open All Day",
        "Eat More Fish",
        "Buy One Now",
        "Hot Soup Here",
        "Come On In",
        "We Are Open",
        "Fresh Tea Bar",
        "No Dogs Here",
        "Big Book Sale",
        "Sun And Sea",
    ),
    (3, "long"): (
        "Summer Jazz Night",
        "fresh every day",
        "Happy Birthday Anna",
        "Grand Opening Today",
        "Fresh Organic Fruit",
        "Best Coffee Ever",
        "Welcome to Paris",
        "Winter Market Sale",
        "Natural Wine Shop",
        "Handmade Gifts Here",
    ),
}
_TEMPLATES = (
    'a sign that says "{t}"',
    'a {c} sign that says "{t}"',
    'a poster with the title "{t}"',
    'the words "{t}" in {c} letters',
    'a label reading "{t}" in {c}, flat illustration',
)
_COLOURS = ("red", "blue", "green", "yellow", "black", "white", "purple", "orange")


@dataclass
class LetteringReport:
    """Exact OCR readings per bucket: ``{"1 word, short": (exact, trials), ...}`` and the failures."""

    rates: dict[str, tuple[int, int]] = field(default_factory=dict)
    misses: list[dict[str, object]] = field(default_factory=list)

    def table(self) -> str:
        rows = ["| text | exact (OCR) |", "|---|---|"]
        for name, (ok, n) in self.rates.items():
            rows.append(f"| {name} | {100 * ok / max(1, n):.0f} % ({ok}/{n}) |")
        return "\n".join(rows)


def lettering_prompts(per_bucket: int = 10, seed: int = 0) -> list[tuple[str, str, str]]:
    """``(bucket name, prompt, text)`` for ``per_bucket`` phrases of each bucket (at most 10)."""
    rng = random.Random(seed)
    out = []
    for (words, length), phrases in BUCKETS.items():
        name = f"{words} word{'s' if words > 1 else ''}, {length}"
        for text in phrases[:per_bucket]:
            prompt = rng.choice(_TEMPLATES).format(t=text, c=rng.choice(_COLOURS))
            out.append((name, prompt, text))
    return out


def lettering_rates(
    generate: Callable[[str, int], Image.Image], per_bucket: int = 10, seed: int = 0
) -> LetteringReport:
    """Generate each prompt of :func:`lettering_prompts` (image seed = its index) and count exact readings."""
    report = LetteringReport()
    for i, (name, prompt, text) in enumerate(lettering_prompts(per_bucket, seed)):
        lines = read_text(generate(prompt, i))
        exact = text_match(lines, text)[0]
        ok, n = report.rates.get(name, (0, 0))
        report.rates[name] = (ok + exact, n + 1)
        if not exact:
            report.misses.append({"prompt": prompt, "read": lines})
    return report
