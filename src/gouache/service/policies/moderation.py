"""The moderation pre-filter: a prompt is screened against a policy of categories before any compute.

The policy is a TOML file (`policies/moderation.toml` in the package, or `GOUACHE_MODERATION_POLICY_FILE`):
categories with word lists and regular expressions, each blocking at `moderation="auto"` (stricter) and,
for the gravest, at `"low"` too. A match raises `ModerationBlocked`: 400 `moderation_blocked` with OpenAI's
`moderation_details`."""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import cast

from gouache.service.errors import ServiceError

LEVELS = ("auto", "low")


class ModerationPolicyError(ValueError):
    """The policy file is missing, unreadable or malformed."""


class ModerationBlocked(ServiceError):
    status = 400
    type = "image_generation_user_error"
    code = "moderation_blocked"

    def __init__(self, categories: list[str]) -> None:
        super().__init__(
            "Your request was rejected by the safety system. If you believe this is an error, rephrase "
            "the prompt or use moderation='low' where it applies. "
            f"safety_violations=[{', '.join(categories)}].",
            param=None,
            extra={"moderation_details": {"moderation_stage": "input", "categories": categories}},
        )
        self.categories = categories


@dataclass(frozen=True)
class Category:
    name: str
    levels: frozenset[str]
    pattern: re.Pattern[str]


#: An optional classifier: (text, level) -> the categories it finds. Named in the policy as
#: `classifier = "package.module:function"`; it runs after the word lists, on prompts they let through.
Classifier = Callable[[str, str], list[str]]


@dataclass(frozen=True)
class ModerationPolicy:
    categories: tuple[Category, ...]
    classifier: Classifier | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> ModerationPolicy:
        try:
            if path is None:
                text = resources.files("gouache.service.policies").joinpath("moderation.toml").read_text()
            else:
                text = Path(path).read_text()
            data = tomllib.loads(text)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ModerationPolicyError(f"Cannot read the moderation policy {path}: {exc}") from exc
        categories = []
        for name, spec in (data.get("categories") or {}).items():
            levels = frozenset(spec.get("levels", ["auto"]))
            if not levels <= set(LEVELS):
                raise ModerationPolicyError(f"Category {name!r}: levels must be among {LEVELS}.")
            words = spec.get("words", [])
            alternatives = [r"\b" + re.escape(w).replace(r"\ ", r"\s+") + r"\b" for w in words]
            alternatives += list(spec.get("patterns", []))
            if not alternatives:
                continue
            try:
                pattern = re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE | re.DOTALL)
            except re.error as exc:
                raise ModerationPolicyError(f"Category {name!r}: bad pattern: {exc}") from exc
            categories.append(Category(name, levels, pattern))
        return cls(tuple(categories), _load_classifier(data.get("classifier")))

    def violations(self, text: str, level: str = "auto") -> list[str]:
        """The categories `text` falls into at this moderation level (empty: allowed)."""
        if not text:
            return []
        found = [c.name for c in self.categories if level in c.levels and c.pattern.search(text)]
        if not found and self.classifier is not None:
            found = list(self.classifier(text, level))
        return found

    def screen(self, text: str, level: str = "auto") -> None:
        """Raise `ModerationBlocked` if `text` is not allowed at `level`."""
        found = self.violations(text, level)
        if found:
            raise ModerationBlocked(found)


def _load_classifier(spec: object) -> Classifier | None:
    if spec is None:
        return None
    module_name, _, attr = str(spec).partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ModerationPolicyError(f"Cannot load the moderation classifier {spec!r}: {exc}") from exc
    if not callable(function):
        raise ModerationPolicyError(f"The moderation classifier {spec!r} is not callable.")
    return cast(Classifier, function)
