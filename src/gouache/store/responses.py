"""Stored Responses turns: request, input items and output items (image ids, never base64), so that a chain
through `previous_response_id` continues after a restart.

The items are opaque JSON here: their shape belongs to the Responses service.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import CursorResult, String, select, update
from sqlalchemy import cast as cast_

from gouache.store.database import Database
from gouache.store.models import ResponseRecord, utcnow
from gouache.store.owners import ALL_OWNERS, Owner, owned_by, owns
from gouache.store.values import column_text, is_id, json_copy
from gouache.store.views import ResponseView


class ResponseRepository(Database):
    """Saving, reading, chaining and deleting Responses turns."""

    def save_response(
        self,
        response_id: str,
        *,
        model: str,
        status: str,
        previous_response_id: str | None,
        request: Mapping[str, Any],
        input_items: list[Any],
        output: list[Any],
        usage: Mapping[str, Any] | None = None,
        error: Mapping[str, Any] | None = None,
        user: str | None = None,
        api_key_id: str | None = None,
    ) -> None:
        """Insert or replace a Responses turn (a streamed turn is saved when it starts and when it ends)."""
        values = {
            "model": column_text(model),
            "status": status,
            "previous_response_id": previous_response_id,
            "request": json_copy(request, "request"),
            "input_items": json.loads(json.dumps(list(input_items))),
            "output": json.loads(json.dumps(list(output))),
            "usage": None if usage is None else json_copy(usage, "usage"),
            "error": None if error is None else json_copy(error, "error"),
            "user": None if user is None else column_text(user),
            "finished_at": utcnow() if status != "in_progress" else None,
            "api_key_id": api_key_id,
        }
        with self._write() as session:
            record = session.get(ResponseRecord, response_id)
            if record is None:
                session.add(ResponseRecord(id=response_id, created_at=utcnow(), **values))
            else:
                for key, value in values.items():
                    setattr(record, key, value)

    def delete_response(self, response_id: str, owner: Owner = ALL_OWNERS) -> bool:
        if not is_id(response_id):
            return False
        with self._write() as session:
            record = session.get(ResponseRecord, response_id)
            if record is None or not owns(record.api_key_id, owner):
                return False
            session.delete(record)
            return True

    def fail_unfinished_responses(self, reason: str) -> int:
        """Like `fail_unfinished`, for Responses turns left "in_progress" by a stopped process."""
        error = {"message": reason, "type": "server_error", "param": None, "code": "interrupted"}
        stmt = (
            update(ResponseRecord)
            .where(ResponseRecord.status == "in_progress")
            .values(status="failed", error=error, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        with self._write() as session:
            return cast(CursorResult[Any], session.execute(stmt)).rowcount

    def get_response(self, response_id: str, owner: Owner = ALL_OWNERS) -> ResponseView | None:
        """A stored turn, or None if there is none or it belongs to another owner."""
        if not is_id(response_id):
            return None
        with self._read_sessions() as session:
            record = session.get(ResponseRecord, response_id)
            if record is None or not owns(record.api_key_id, owner):
                return None
            return ResponseView.from_record(record)

    def find_call_image(self, call_id: str, owner: Owner = ALL_OWNERS) -> str | None:
        """The image id of a stored `image_generation_call` item, by the call's id."""
        if not is_id(call_id):
            return None
        stmt = select(ResponseRecord).where(cast_(ResponseRecord.output, String).contains(call_id))
        condition = owned_by(ResponseRecord.api_key_id, owner)
        if condition is not None:
            stmt = stmt.where(condition)
        with self._read_sessions() as session:
            for record in session.scalars(stmt):
                for item in record.output:
                    if item.get("id") == call_id and item.get("image_id"):
                        return str(item["image_id"])
        return None

    def response_chain(
        self, response_id: str, limit: int = 100, owner: Owner = ALL_OWNERS
    ) -> list[ResponseView]:
        """The turns that lead to `response_id`, oldest first (at most `limit`; a deleted turn, or one of
        another owner, ends it)."""
        chain: list[ResponseView] = []
        current: str | None = response_id
        while current is not None and len(chain) < limit:
            view = self.get_response(current, owner)
            if view is None:
                break
            chain.append(view)
            current = view.previous_response_id
        return chain[::-1]
