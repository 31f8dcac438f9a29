"""Keyset pages of the list endpoints (files, batches): rows ordered by creation time, then id, starting
after a cursor row, so that a page is stable while rows are added."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute


def keyset_page(
    stmt: Select[Any],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
    *,
    cursor: tuple[datetime, str] | None,
    order: str,
    limit: int,
) -> Select[Any]:
    """`stmt` ordered by (`created_at`, `row_id`), `asc` or `desc`, from just after `cursor` (the creation
    time and id of the last row of the previous page), at most `limit` rows."""
    ascending = order == "asc"
    if cursor is not None:
        at, key = cursor
        if ascending:
            stmt = stmt.where(or_(created_at > at, and_(created_at == at, row_id > key)))
        else:
            stmt = stmt.where(or_(created_at < at, and_(created_at == at, row_id < key)))
    if ascending:
        return stmt.order_by(created_at, row_id).limit(limit)
    return stmt.order_by(created_at.desc(), row_id.desc()).limit(limit)
