"""The query parameters of OpenAI's cursor-paginated lists (`/v1/files`, `/v1/batches`); the page they answer
is `api.protocol.common.CursorPage`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fastapi import Query

from gouache.service.pages import ListQuery


def list_query(default_limit: int, max_limit: int) -> Callable[..., ListQuery]:
    """A dependency reading `limit` (1 to `max_limit`), `order` and `after`, each endpoint with OpenAI's
    default and maximum for `limit`."""

    def query(
        limit: int = Query(default=default_limit, ge=1, le=max_limit),
        order: Literal["asc", "desc"] = Query(default="desc"),
        after: str | None = Query(default=None, max_length=64),
    ) -> ListQuery:
        return ListQuery(limit, order, after)

    return query
