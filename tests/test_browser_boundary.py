"""The browser boundary (issue 23, design note 41): Host validation, cross-site requests, CORS and the hardening
headers. The pure rules are unit-tested in-process; then raw HTTP (httpx) against real servers: the session
server (default settings, keys off), one with CORS origins and an extra host name (keys off), and one with `*`
for both and an API key (keys on), whose key is revoked at the end to show `*` stops counting."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from PIL import Image

from gouache.api.browser_boundary import (
    CORS_EXPOSE_HEADERS,
    BoundaryRules,
    cors_options,
    normalize_origin,
    split_host,
    wildcard_problem,
)
from gouache.service.access import KeyService
from gouache.settings import Settings
from gouache.store import Store
from tests.live import LiveServer, free_port, start_server

SRC = Path(__file__).resolve().parent.parent / "src" / "gouache"
APP_ORIGIN = "http://app.example:5173"
ATTACKER = "http://attacker.example"
TINY = {"model": "tiny-sd1", "size": "1024x1024", "quality": "low"}


# --- the pure rules, in-process ---------------------------------------------------------------------------


def test_split_host_and_normalize_origin() -> None:
    assert split_host("LocalHost:8000") == ("localhost", 8000)
    assert split_host("[::1]:8000") == ("[::1]", 8000)
    assert split_host("[::1]") == ("[::1]", None)
    assert split_host("example.com") == ("example.com", None)
    for bad in (
        "",
        ":80",
        "a:b",
        "a:0",
        "a:70000",
        "a:٨٠",
        "::1",
        "[::1",
        "[::1]x",
        "a b:1",
        "evil@127.0.0.1:1",
    ):
        assert split_host(bad) is None, bad
    assert normalize_origin("http://LOCALHOST:8000") == "http://localhost:8000"
    assert normalize_origin("https://app.example/") == "https://app.example:443"
    assert normalize_origin("http://app.example/some/page?q=1") == "http://app.example:80"
    for bad in ("null", "file:///etc/passwd", "", "ftp://x", "http://user@evil:1", "http://"):
        assert normalize_origin(bad) is None, bad


def test_default_hosts_are_loopback_names_and_the_bind_address_at_the_port() -> None:
    rules = BoundaryRules.build("127.0.0.1", 8000)
    for host in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST:8000", "[::1]:8000"):
        assert rules.host_refusal(host, "http") is None, host
    assert rules.host_refusal(None, "http") is None  # HTTP/1.0 without Host: no browser
    for host in (
        "attacker.example:8000",  # DNS rebinding: the page's own name
        "attacker.example",
        "127.0.0.1:8001",
        "localhost",  # no port: port 80, not this server's
        "127.0.0.1.nip.io:8000",
        "localhost:8000:1",
        "",
    ):
        refusal = rules.host_refusal(host, "http")
        assert refusal is not None and refusal.status == 421, host
        assert (refusal.code, refusal.param, refusal.waived_by_keys) == ("invalid_host", "Host", False)
    assert "GOUACHE_ALLOWED_HOSTS" in (rules.host_refusal("x:8000", "http") or pytest.fail()).message
    # A named bind address joins the loopback names; a wildcard bind names nothing.
    assert BoundaryRules.build("192.168.1.5", 80).host_refusal("192.168.1.5", "http") is None
    assert BoundaryRules.build("::1", 9).host_refusal("[::1]:9", "http") is None
    assert {str(h) for h in BoundaryRules.build("0.0.0.0", 9).hosts} == {
        "localhost:9",
        "127.0.0.1:9",
        "[::1]:9",
    }
    assert {str(h) for h in BoundaryRules.build("::", 9).hosts} == {"localhost:9", "127.0.0.1:9", "[::1]:9"}


def test_allowed_hosts_setting() -> None:
    rules = BoundaryRules.build("127.0.0.1", 8000, ["Gouache.Example.com", "lan-box:9000", "::5"])
    # A name without a port matches every port, and a Host without one (behind a TLS proxy on 443).
    assert rules.host_refusal("gouache.example.com", "https") is None
    assert rules.host_refusal("gouache.example.com:8443", "https") is None
    assert rules.host_refusal("lan-box:9000", "http") is None
    assert rules.host_refusal("lan-box:9001", "http") is not None
    assert rules.host_refusal("[::5]:1", "http") is None
    assert rules.host_refusal("evil.gouache.example.com", "https") is not None
    for bad in ("a:b", "http://x", "a/b"):
        with pytest.raises(ValueError, match="GOUACHE_ALLOWED_HOSTS"):
            BoundaryRules.build("127.0.0.1", 8000, [bad])
    with pytest.raises(ValueError, match="GOUACHE_CORS_ORIGINS"):
        BoundaryRules.build("127.0.0.1", 8000, [], ["app.example"])
    # `*`: any well-formed Host, but only while keys are on (the refusal says it can be waived).
    star = BoundaryRules.build("127.0.0.1", 8000, ["*"])
    waived = star.host_refusal("anything.example:1", "http")
    assert waived is not None and waived.waived_by_keys and "API keys" in waived.message
    assert star.host_refusal("127.0.0.1:8000", "http") is None


def test_cross_site_rule() -> None:
    rules = BoundaryRules.build("127.0.0.1", 8000, [], [APP_ORIGIN])
    own = "127.0.0.1:8000"

    def refused(
        method: str, origin: str | None = None, referer: str | None = None, scheme: str = "http"
    ) -> Any:
        return rules.origin_refusal(method, scheme, own, origin, referer)

    for method in ("POST", "PUT", "PATCH", "DELETE", "post"):
        refusal = refused(method, ATTACKER)
        assert refusal is not None and (refusal.status, refusal.code, refusal.param) == (
            403,
            "cross_site_request",
            "Origin",
        )
    assert refused("POST", "null") is not None  # sandboxed frames, file: pages
    assert refused("POST", "http://127.0.0.1:8001") is not None  # another port is another origin
    assert refused("POST", "https://127.0.0.1:8000") is not None  # another scheme too
    assert refused("POST", "http://localhost:8000") is not None  # and another name
    referer = refused("POST", None, "http://attacker.example/page.html")
    assert referer is not None and referer.param == "Referer"
    # Same origin, a listed origin (however spelled), or no browser header at all: let through.
    assert refused("POST", "http://127.0.0.1:8000") is None
    assert refused("POST", None, "http://127.0.0.1:8000/#generate") is None
    assert refused("POST", "HTTP://APP.EXAMPLE:5173") is None
    assert refused("POST") is None
    # Reads are not refused here: the browser withholds a cross-origin answer unless CORS allows it.
    assert refused("GET", ATTACKER) is None and refused("OPTIONS", ATTACKER) is None
    assert refused("GET", None, "http://attacker.example/") is None  # a link followed from another site
    # Behind a TLS proxy the request's own origin is https on the default port.
    assert (
        rules.origin_refusal("POST", "https", "gouache.example.com", "https://gouache.example.com", None)
        is None
    )
    # `*` lets any origin through, reads included, only while keys are on.
    star = BoundaryRules.build("127.0.0.1", 8000, [], ["*"])
    for method in ("POST", "GET"):
        waived = star.origin_refusal(method, "http", own, ATTACKER, None)
        assert waived is not None and waived.waived_by_keys, method
    assert star.origin_refusal("POST", "http", own, "http://127.0.0.1:8000", None) is None


def test_check_order_host_first_and_keys_cannot_waive_a_hard_refusal() -> None:
    rules = BoundaryRules.build("127.0.0.1", 8000, [], ["*"])
    both = rules.check("POST", "http", {"host": "attacker.example:8000", "origin": ATTACKER})
    assert both is not None and both.code == "invalid_host" and not both.waived_by_keys
    star_hosts = BoundaryRules.build("127.0.0.1", 8000, ["*"], [])
    cross = star_hosts.check(
        "POST", "http", {"host": "attacker.example:8000", "origin": "http://evil.example"}
    )
    assert cross is not None and cross.code == "cross_site_request" and not cross.waived_by_keys
    ok = rules.check("POST", "http", {"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"})
    assert ok is None
    # No Host (HTTP/1.0): the request's own origin is the address it reached.
    assert rules.check("POST", "http", {"origin": "http://127.0.0.1:8000"}, ("127.0.0.1", 8000)) is None


def test_settings_lists_and_wildcards_need_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOUACHE_ALLOWED_HOSTS", "gouache.example.com, lan-box:9000")
    monkeypatch.setenv("GOUACHE_CORS_ORIGINS", '["http://app.example:5173", "https://studio.example"]')
    settings = Settings()
    assert settings.allowed_hosts == ["gouache.example.com", "lan-box:9000"]
    assert settings.cors_origins == ["http://app.example:5173", "https://studio.example"]
    assert wildcard_problem(settings, keys_on=False) is None
    assert Settings(allowed_hosts="").allowed_hosts == []
    for field in ("allowed_hosts", "cors_origins"):
        star = Settings(**{field: "*"})
        problem = wildcard_problem(star, keys_on=False)
        assert problem is not None and f"GOUACHE_{field.upper()}=*" in problem and "keys" in problem
        assert wildcard_problem(star, keys_on=True) is None


def test_cors_options_cover_the_sdk_headers_and_every_header_clients_read() -> None:
    options = cors_options(Settings(cors_origins=["HTTP://App.Example:5173/", "https://studio.example:443"]))
    # Browsers send the origin lower-case without a default port; Starlette compares strings.
    assert options["allow_origins"] == ["http://app.example:5173", "https://studio.example"]
    assert options["allow_credentials"] is False
    assert cors_options(Settings(cors_origins=["*", APP_ORIGIN]))["allow_origins"] == ["*"]
    allowed = {h.lower() for h in options["allow_headers"]}
    # Every header the official SDK sends (read from its source, so a new SDK header shows up here).
    sdk = Path(__import__("openai").__file__).parent
    sent = set()
    for path in (sdk / "_base_client.py", sdk / "_client.py"):
        sent |= {
            h.lower()
            for h in re.findall(r'"((?:X-Stainless|x-stainless|OpenAI)-[A-Za-z-]+)"', path.read_text())
        }
    assert sent and sent <= allowed, sent - allowed
    assert {
        "authorization",
        "content-type",
        "idempotency-key",
        "openai-organization",
        "openai-project",
    } <= allowed
    # Every x-gouache-* header the server sets, the rate-limit headers, retry-after and the request id.
    exposed = set(CORS_EXPOSE_HEADERS)
    ours = set()
    for path in SRC.rglob("*.py"):
        ours |= set(re.findall(r"x-gouache-[a-z-]*[a-z]", path.read_text()))
    assert ours and ours <= exposed, ours - exposed
    for kind in ("requests", "images"):
        assert {f"x-ratelimit-{w}-{kind}" for w in ("limit", "remaining", "reset")} <= exposed
    assert {"x-request-id", "retry-after", "retry-after-ms"} <= exposed


# --- live: default settings (the session server, keys off) -----------------------------------------------

#: One request per route family; each would be answered (200, 400 or 404) with the right Host.
ROUTES = [
    ("POST", "/v1/images/generations"),
    ("POST", "/v1/images/edits"),
    ("POST", "/v1/images/variations"),
    ("GET", "/v1/images/files/img_000"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses/resp_000"),
    ("GET", "/v1/files"),
    ("GET", "/v1/batches"),
    ("GET", "/v1/models"),
    ("GET", "/v1/gouache/history"),
    ("DELETE", "/v1/gouache/history/req_000"),
    ("GET", "/v1/organization/costs"),
    ("POST", "/v1/content_provenance_checks"),
    ("GET", "/"),
    ("GET", "/web/js/main.js"),
    ("GET", "/health"),
    ("GET", "/metrics"),
]


def prompts(server: LiveServer) -> list[str]:
    response = httpx.get(f"{server.base_url}/gouache/history", params={"limit": 100}, timeout=60)
    assert response.status_code == 200, response.text
    return [entry["prompt"] for entry in response.json()["data"]]


def png(colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("forged", ["attacker.example:{port}", "attacker.example", "127.0.0.1:1"])
def test_forged_host_refused_on_every_route_family(server: LiveServer, forged: str) -> None:
    host = forged.format(port=server.port)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for method, path in ROUTES:
            refused = http.request(method, path, headers={"Host": host})
            assert refused.status_code == 421, (method, path, refused.status_code, refused.text)
            error = refused.json()["error"]
            assert (error["code"], error["param"], error["type"]) == (
                "invalid_host",
                "Host",
                "invalid_request_error",
            )
            assert host in error["message"] and refused.headers["x-request-id"].startswith("req_")
            answered = http.request(method, path)
            assert answered.status_code in (200, 400, 404), (method, path, answered.text)


def test_cross_site_posts_are_refused_and_nothing_is_processed(server: LiveServer) -> None:
    evil = {"Origin": ATTACKER}
    with httpx.Client(base_url=server.base_url, timeout=120) as http:
        body = {**TINY, "prompt": "cross-site json"}
        attempts = [
            http.post("/images/generations", json=body, headers=evil),
            http.post(
                "/images/edits",
                data={**TINY, "prompt": "cross-site multipart"},
                files={"image": ("a.png", png(), "image/png")},
                headers=evil,
            ),
            # What an HTML form with enctype="text/plain" sends: no preflight in any browser.
            http.post(
                "/images/generations",
                content=json.dumps({**TINY, "prompt": "cross-site text"}).encode(),
                headers={**evil, "Content-Type": "text/plain"},
            ),
            http.post(
                "/images/generations",
                json={**TINY, "prompt": "cross-site referer"},
                headers={"Referer": "http://attacker.example/page.html"},
            ),
            http.post(
                "/images/generations", json={**TINY, "prompt": "cross-site null"}, headers={"Origin": "null"}
            ),
            http.request("DELETE", "/gouache/history/req_000", headers=evil),
        ]
        for response in attempts:
            assert response.status_code == 403, response.text
            error = response.json()["error"]
            assert error["code"] == "cross_site_request" and error["param"] in ("Origin", "Referer")
        assert attempts[3].json()["error"]["param"] == "Referer"
        assert not [p for p in prompts(server) if p.startswith("cross-site")]

        # The same requests from the server's own origin (the playground) or with no browser header work.
        own = {"Origin": server.url}
        made = http.post("/images/generations", json={**TINY, "prompt": "same-origin json"}, headers=own)
        assert made.status_code == 200, made.text
        edited = http.post(
            "/images/edits",
            data={**TINY, "prompt": "same-origin multipart"},
            files={"image": ("a.png", png(), "image/png")},
            headers={"Origin": server.url, "Referer": server.url + "/#edit"},
        )
        assert edited.status_code == 200, edited.text
        referer_only = http.post(
            "/images/generations",
            json={**TINY, "prompt": "same-origin referer"},
            headers={"Referer": server.url + "/"},
        )
        assert referer_only.status_code == 200, referer_only.text
    sdk = OpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=120)
    assert sdk.images.generate(prompt="no browser headers", **TINY).data[0].b64_json  # type: ignore[arg-type]
    assert {"same-origin json", "same-origin multipart", "same-origin referer", "no browser headers"} <= set(
        prompts(server)
    )
    # A cross-origin read is answered, but without CORS headers the browser hands the page nothing.
    read = httpx.get(f"{server.base_url}/models", headers={"Origin": ATTACKER}, timeout=60)
    assert read.status_code == 200 and "access-control-allow-origin" not in read.headers


def test_hardening_headers(server: LiveServer) -> None:
    page = httpx.get(server.url + "/", timeout=60)
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["default-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp and "http" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    script = httpx.get(server.url + "/web/js/main.js", timeout=60)
    assert script.headers["content-security-policy"] == csp
    api = httpx.get(server.base_url + "/models", timeout=60)
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert api.headers["x-content-type-options"] == "nosniff"
    # The page itself holds no inline script, style or event handler for the policy to block.
    html = page.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script>"
    assert "<style" not in html and not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html, re.I) and "javascript:" not in html
    # And the scripts never insert text as HTML.
    for path in (SRC / "web" / "js").glob("*.js"):
        text = path.read_text()
        for sink in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ):
            assert sink not in text, f"{path.name}: {sink}"


# --- live: CORS origins and an extra host name, keys off --------------------------------------------------


def tiny_env(catalog_file: Path, **extra: str) -> dict[str, str]:
    return {
        "GOUACHE_CATALOG_FILE": str(catalog_file),
        "GOUACHE_DEFAULT_MODEL": "tiny-sd1",
        "GOUACHE_PRELOAD": "false",
        "GOUACHE_LOG_LEVEL": "warning",
        **extra,
    }


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory, catalog_file: Path) -> Iterator[LiveServer]:
    env = tiny_env(
        catalog_file,
        GOUACHE_CORS_ORIGINS=f"{APP_ORIGIN}, https://studio.example",
        GOUACHE_ALLOWED_HOSTS="gouache.test",
    )
    live = start_server(tmp_path_factory.mktemp("cors"), env)
    yield live
    live.stop()


def preflight(
    server: LiveServer, origin: str, method: str = "POST", headers: str | None = None
) -> httpx.Response:
    request = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request["Access-Control-Request-Headers"] = headers
    return httpx.options(f"{server.base_url}/images/generations", headers=request, timeout=60)


SDK_HEADERS = (
    "authorization,content-type,openai-organization,openai-project,x-stainless-lang,x-stainless-os,"
    "x-stainless-arch,x-stainless-runtime,x-stainless-runtime-version,x-stainless-package-version,"
    "x-stainless-retry-count,x-stainless-timeout,idempotency-key"
)


def test_allowed_origin_preflight_then_request_then_stream(cors_server: LiveServer) -> None:
    ok = preflight(cors_server, APP_ORIGIN, headers=SDK_HEADERS)
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert set(SDK_HEADERS.split(",")) <= {
        h.strip().lower() for h in ok.headers["access-control-allow-headers"].split(",")
    }
    # Chrome's Private Network Access: a public site calling this machine.
    pna = httpx.options(
        f"{cors_server.base_url}/models",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Private-Network": "true",
        },
        timeout=60,
    )
    assert pna.status_code == 200 and pna.headers["access-control-allow-private-network"] == "true"

    headers = {"Origin": APP_ORIGIN, "Authorization": "Bearer anything"}
    made = httpx.post(
        f"{cors_server.base_url}/images/generations",
        json={**TINY, "prompt": "from the web app", "seed": 1},
        headers=headers,
        timeout=120,
    )
    assert made.status_code == 200, made.text
    assert made.headers["access-control-allow-origin"] == APP_ORIGIN
    exposed = {h.strip() for h in made.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "x-gouache-cost-usd", "x-gouache-seed", "retry-after"} <= exposed
    assert "x-gouache-cost-usd" in made.headers and made.json()["data"][0]["b64_json"]

    # Streaming (SSE) cross-origin: headers first, then the events as they come.
    body = {**TINY, "prompt": "streamed to the web app", "stream": True, "partial_images": 1}
    with httpx.stream(
        "POST", f"{cors_server.base_url}/images/generations", json=body, headers=headers, timeout=120
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["access-control-allow-origin"] == APP_ORIGIN
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [line.split(":", 1)[1].strip() for line in stream.iter_lines() if line.startswith("event:")]
    assert events[0] == "image_generation.partial_image" and events[-1] == "image_generation.completed"

    # The second listed origin, spelled as browsers send it (https, no default port).
    assert preflight(cors_server, "https://studio.example").status_code == 200


def test_unlisted_origin_gets_no_cors_and_a_clear_preflight_refusal(cors_server: LiveServer) -> None:
    refused = preflight(cors_server, ATTACKER)
    assert refused.status_code == 400
    assert (
        refused.json()["error"]["code"] == "cors_not_allowed" and refused.json()["error"]["param"] == "Origin"
    )
    assert "access-control-allow-origin" not in refused.headers
    header = preflight(cors_server, APP_ORIGIN, headers="x-not-allowed")
    assert header.status_code == 400 and header.json()["error"]["param"] == "Access-Control-Request-Headers"
    post = httpx.post(
        f"{cors_server.base_url}/images/generations",
        json={**TINY, "prompt": "x"},
        headers={"Origin": ATTACKER},
        timeout=60,
    )
    assert post.status_code == 403 and post.json()["error"]["code"] == "cross_site_request"


def test_extra_host_name_and_keys_on_without_wildcards(cors_server: LiveServer) -> None:
    """GOUACHE_ALLOWED_HOSTS adds a name (any port); with a key created mid-test the rules stay the same and
    come before authentication."""
    for host in ("gouache.test", f"gouache.test:{cors_server.port}"):
        assert httpx.get(f"{cors_server.url}/health", headers={"Host": host}, timeout=60).status_code == 200
    store = Store(f"sqlite:///{cors_server.data_dir / 'gouache.db'}", cors_server.data_dir / "blobs")
    keys = KeyService(store)
    key, secret = keys.create("web app")
    try:
        bearer = {"Authorization": f"Bearer {secret}"}
        forged = httpx.get(
            f"{cors_server.base_url}/models", headers={**bearer, "Host": "attacker.example"}, timeout=60
        )
        assert forged.status_code == 421
        cross = httpx.post(
            f"{cors_server.base_url}/images/generations",
            json={**TINY, "prompt": "x"},
            headers={**bearer, "Origin": ATTACKER},
            timeout=60,
        )
        assert cross.status_code == 403
        # Preflights are answered without a key; the app's real request without one gets a readable 401.
        assert preflight(cors_server, APP_ORIGIN, headers="authorization,content-type").status_code == 200
        nokey = httpx.get(f"{cors_server.base_url}/models", headers={"Origin": APP_ORIGIN}, timeout=60)
        assert nokey.status_code == 401 and nokey.headers["access-control-allow-origin"] == APP_ORIGIN
        listed = httpx.get(
            f"{cors_server.base_url}/models", headers={**bearer, "Origin": APP_ORIGIN}, timeout=60
        )
        assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == APP_ORIGIN
    finally:
        keys.revoke(key.id)
        store.close()


# --- live: `*` for both, with keys on --------------------------------------------------------------------


@pytest.fixture(scope="module")
def star_server(
    tmp_path_factory: pytest.TempPathFactory, catalog_file: Path
) -> Iterator[tuple[LiveServer, str, str]]:
    """`*` for hosts and origins, allowed because a key exists (made before start, as `gouache keys create`
    would)."""
    data_dir = tmp_path_factory.mktemp("star")
    store = Store(f"sqlite:///{data_dir / 'gouache.db'}", data_dir / "blobs")
    store.migrate()
    key, secret = KeyService(store).create("browser")
    store.close()
    live = start_server(data_dir, tiny_env(catalog_file, GOUACHE_ALLOWED_HOSTS="*", GOUACHE_CORS_ORIGINS="*"))
    yield live, key.id, secret
    live.stop()


def test_wildcards_with_keys_on_then_a_revoked_key_closes_them(
    star_server: tuple[LiveServer, str, str],
) -> None:
    server, key_id, secret = star_server
    url = f"{server.base_url}/images/generations"
    bearer = {"Authorization": f"Bearer {secret}"}
    anywhere = {"Host": "gouache.example.com", "Origin": "https://any-app.example"}
    ok = preflight(server, "https://any-app.example", headers="authorization,content-type,x-stainless-os")
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "*"
    nokey = httpx.post(url, json={**TINY, "prompt": "x"}, headers=anywhere, timeout=60)
    assert nokey.status_code == 401 and nokey.headers["access-control-allow-origin"] == "*"
    made = httpx.post(
        url, json={**TINY, "prompt": "from anywhere"}, headers={**anywhere, **bearer}, timeout=120
    )
    assert made.status_code == 200, made.text
    assert made.headers["access-control-allow-origin"] == "*"

    store = Store(f"sqlite:///{server.data_dir / 'gouache.db'}", server.data_dir / "blobs")
    try:
        assert KeyService(store).revoke(key_id)
    finally:
        store.close()
    # No key is on any more: `*` stops counting at once, for hosts and for origins.
    host = httpx.get(f"{server.url}/health", headers={"Host": "gouache.example.com"}, timeout=60)
    assert host.status_code == 421 and "API keys" in host.json()["error"]["message"]
    origin = httpx.get(f"{server.base_url}/models", headers={"Origin": "https://any-app.example"}, timeout=60)
    assert origin.status_code == 403 and origin.json()["error"]["code"] == "cross_site_request"
    assert httpx.get(f"{server.base_url}/models", timeout=60).status_code == 200  # loopback, no browser: open


@pytest.mark.parametrize("setting", ["GOUACHE_ALLOWED_HOSTS", "GOUACHE_CORS_ORIGINS"])
def test_star_without_keys_refuses_to_start(tmp_path: Path, catalog_file: Path, setting: str) -> None:
    env = {
        **os.environ,
        **tiny_env(catalog_file, **{setting: "*"}),
        "GOUACHE_DATA_DIR": str(tmp_path),
        "GOUACHE_HOST": "127.0.0.1",
        "GOUACHE_PORT": str(free_port()),
        "COLUMNS": "300",
    }
    done = subprocess.run(
        [sys.executable, "-m", "gouache.cli", "serve"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [
        line for line in done.stderr.splitlines() if line.strip() and not line.startswith("[transformers]")
    ]
    assert len(lines) == 1 and "Cannot start" in lines[0] and f"{setting}=*" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
