"""Noticing that a client went away, for streamed and plain requests alike: its job is cancelled (within one
denoising step) and recorded as cancelled, and no worker time is spent on an answer nobody reads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

from gouache.service.errors import Overloaded, ServiceError

T = TypeVar("T")

DISCONNECT_POLL_S = 0.25


class ClientDisconnected(ServiceError):
    """The client closed the connection before the answer was ready (nginx's 499; nobody reads it)."""

    status = 499
    code = "client_disconnected"


async def watch_disconnect(request: Request, stop: asyncio.Event) -> None:
    """Set `stop` when the client disconnects. Without this, a disconnect is only noticed at the next send,
    which may be many denoising steps away."""
    while not stop.is_set():
        if await request.is_disconnected():
            stop.set()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`; if the client disconnects first, cancel it (it records itself as cancelled) and raise
    `ClientDisconnected`. If the server cancels the request (its shutdown grace period ran out), the client
    still gets an answer: 503 `shutting_down`."""
    task = asyncio.ensure_future(work)
    stop = asyncio.Event()
    watcher = asyncio.ensure_future(watch_disconnect(request, stop))
    try:
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            raise Overloaded(
                "The server is shutting down and stopped this request; retry it.", code="shutting_down"
            ) from None
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ClientDisconnected("The client closed the connection; the request was cancelled.")
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
