"""The web playground: static files shipped in the package (`gouache/web`), served at `/` and `/web/`.

The page uses only the public API, from the same origin, so no CORS is involved. Only `GET /` and the
`/web` mount are added, so every other path keeps its OpenAI-shaped 404/405. Its content security policy
(own scripts, styles and images only; no inline script) is set with the other browser rules in
`api/browser_boundary.py`: keep the page free of inline scripts, styles and `on...=` handlers."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(str(files("gouache") / "web"))
#: The page and its modules change with the server version: always revalidate (ETags keep it cheap).
_NO_CACHE = {"cache-control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def playground() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", headers=_NO_CACHE)


class _StaticNoCache(StaticFiles):
    def file_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers.update(_NO_CACHE)
        return response


def install_playground(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/web", _StaticNoCache(directory=WEB_DIR), name="web")
