"""Access to the wired services from a request."""

from __future__ import annotations

from fastapi import Request

from gouache.service.container import Services


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]
