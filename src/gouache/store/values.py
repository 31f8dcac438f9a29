"""Values made safe to store before they reach the database: ids checked, client text trimmed to its column,
JSON deep-copied, seeds kept in range. Each fails here with a clear message rather than at flush time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, cast

_SEED_MIN, _SEED_MAX = -(2**63), 2**63 - 1


def json_copy(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A deep, plain-JSON copy: fails here, with a clear message, rather than at flush time, and detaches
    the stored value from the caller's (possibly mutated later) object."""
    try:
        copied = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from exc
    return cast(dict[str, Any], copied)


_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_id(value: str) -> bool:
    """Whether `value` can be one of our ids; anything else (NUL characters, 10 kB strings) matches no row
    and is not sent to the database at all."""
    return _ID.fullmatch(value) is not None


def column_text(value: str, limit: int = 255) -> str:
    """A client-chosen string made storable in a text column on every backend: PostgreSQL refuses NUL
    characters, and the columns are 255 characters wide."""
    return value.replace("\x00", "\ufffd")[:limit]


def check_seed(seed: int | None) -> None:
    if seed is not None and not _SEED_MIN <= seed <= _SEED_MAX:
        raise ValueError(f"seed {seed} does not fit in a signed 64-bit integer")
