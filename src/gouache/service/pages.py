"""One page of a cursor-paginated list (OpenAI's `limit`, `order`, `after`; files and batches)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ListQuery:
    limit: int = 20
    #: By creation time: newest first (`desc`) or oldest first.
    order: Literal["asc", "desc"] = "desc"
    #: The id of the last item of the previous page (a cursor).
    after: str | None = None


def one_page(fetch: Callable[[ListQuery], list[T]], query: ListQuery) -> tuple[list[T], bool]:
    """The page `query` asks for and whether more follow: `fetch` is asked for one item more than the
    page, so that `has_more` costs no second query."""
    items = fetch(replace(query, limit=query.limit + 1))
    return items[: query.limit], len(items) > query.limit
