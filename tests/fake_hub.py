"""A fake model hub on 127.0.0.1 serving folders as repositories, with exactly the routes huggingface_hub's
`model_info`, `hf_hub_download` and `snapshot_download` call (see shared/recipes.md). It logs every request
and can fail a file with a 500 the first N times it is fetched."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, tuple[Path, dict[str, str]]] = {}  # repo -> (folder, revision -> sha)
        self.fail: dict[str, int] = {}  # "repo/path" -> GETs still to answer with 500
        self.log: list[tuple[str, str, int]] = []  # (method, path, status)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, repo: str, folder: Path, revisions: tuple[str, ...] = ("main",)) -> str:
        sha = hashlib.sha1(repo.encode()).hexdigest()
        self.repos[repo] = (folder, {**dict.fromkeys(revisions, sha), sha: sha})
        return sha

    def gets(self, suffix: str) -> int:
        return sum(1 for m, p, s in self.log if m == "GET" and p.endswith(suffix) and s == 200)

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _handler(hub: FakeHub) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
            hub.log.append((self.command, self.path, status))
            self.send_response(status)
            for key, value in {"Content-Length": str(len(data)), **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _error(self, status: int, code: str, body: bool) -> None:
            data = json.dumps({"error": f"{code}: {self.path}"}).encode()
            self._send(status, data, {"X-Error-Code": code, "Content-Type": "application/json"}, body)

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            api = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(revision|tree)/([^/]+)", path)
            resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            match = api or resolve
            if match is None or match[1] not in hub.repos:
                return self._error(404, "RepoNotFound", body)
            folder, revisions = hub.repos[match[1]]
            rev = match[3] if api else match[2]
            if rev not in revisions:
                return self._error(404, "RevisionNotFound", body)
            sha = revisions[rev]
            if api and api[2] == "revision":
                info = {"id": match[1], "sha": sha, "siblings": [{"rfilename": f} for f in _files(folder)]}
                return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
            if api:
                tree = [
                    {"type": "file", "oid": hashlib.sha1((folder / f).read_bytes()).hexdigest(),
                     "size": (folder / f).stat().st_size, "path": f}
                    for f in _files(folder)
                ]  # fmt: skip
                return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body)
            file = folder / match[3]
            if not file.is_file():
                return self._error(404, "EntryNotFound", body)
            if body and hub.fail.get(f"{match[1]}/{match[3]}", 0) > 0:
                hub.fail[f"{match[1]}/{match[3]}"] -= 1
                return self._send(500, b"injected failure", {}, body)
            data = file.read_bytes()
            etag = f'"{hashlib.sha256(data).hexdigest()}"'
            self._send(200, data, {"ETag": etag, "X-Repo-Commit": sha}, body)

    return Handler
