"""Whose rows a read may see: one API key's, the rows made without a key, or everyone's.

Every repository filters by owner the same way, so the filter is defined once here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement


class AllOwners:
    """The owner filter that matches every row (admin keys, and the open server with no keys)."""

    def __repr__(self) -> str:
        return "ALL_OWNERS"


#: Pass as `owner` to read every key's rows; a key id (or None, for rows made without a key) reads only
#: that owner's rows.
ALL_OWNERS = AllOwners()
Owner = str | None | AllOwners


def owned_by(column: Any, owner: Owner) -> ColumnElement[bool] | None:
    """The SQL condition that keeps `owner`'s rows (None: no condition, every row)."""
    if isinstance(owner, AllOwners):
        return None
    return column.is_(None) if owner is None else column == owner


def owns(row_owner: str | None, owner: Owner) -> bool:
    """The same test in Python, for a row already loaded."""
    return isinstance(owner, AllOwners) or row_owner == owner
