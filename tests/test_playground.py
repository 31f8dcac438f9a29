"""The web playground in a real browser (Playwright driving Debian's chromium) against the live server.

The server fixture serves the embedded gouache-mini as its default model. Screenshots are saved under
`test-artifacts/playground/` (git-ignored); `docs/make_screenshots.py` makes the README's from them."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.live import LiveServer, start_server

pytest.importorskip("playwright", reason="playwright is a dev dependency: pip install -e '.[dev]'")

from playwright.sync_api import Page, expect

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "playground"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 90_000
# Generations take seconds on a busy 2-core machine: assertions wait as long as page actions do.
expect.set_options(timeout=WAIT_MS)


def chromium_path() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's chromium, never a downloaded browser. Missing: skipped on a developer machine (not root),
    a failure where `make test` should have installed it (root or CI)."""
    path = chromium_path()
    if path is None:
        reason = "Debian's chromium is not installed: `apt-get install chromium` (make test does it as root)"
        if os.geteuid() == 0 or os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return {**browser_type_launch_args, "executable_path": path}


@pytest.fixture(scope="session")
def base_url(server: LiveServer) -> str:
    return server.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": LAPTOP, "accept_downloads": True}


@pytest.fixture()
def page(page: Page) -> Iterator[Page]:
    """A page whose JavaScript errors, or anything its content security policy blocks, fail the test."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.set_default_timeout(WAIT_MS)
    yield page
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page: Page, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


#: Installed before the page's scripts: keeps a copy of every multipart form the page sends (Chromium does not
#: hand bodies with files to Playwright), files base64-encoded.
RECORD_FORMS = """
window.__forms = [];
const realFetch = window.fetch;
window.fetch = async (url, init) => {
  if (init && init.body instanceof FormData) {
    const form = {};
    const seen = {};
    for (const [name, value] of init.body.entries()) {
      if (value instanceof Blob) {
        const bytes = new Uint8Array(await value.arrayBuffer());
        form[name] = btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
      } else form[name] = value;
      if (name in seen) form[name] = [].concat(seen[name], form[name]);
      seen[name] = form[name];
    }
    window.__forms.push({url: String(url), form});
  }
  return realFetch(url, init);
};
"""


def sent_forms(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate("window.__forms"))


def history(server: LiveServer, **params: Any) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.base_url}/gouache/history", params={"limit": 100, **params}, timeout=30)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


# --- generate ------------------------------------------------------------------------------------------


def test_generate_shows_partial_previews_then_the_final_image(page: Page, server: LiveServer) -> None:
    # Record every state the stage goes through, from the page's first script on.
    page.add_init_script(
        """
        window.__stages = [];
        new MutationObserver(() => {
          const stage = document.getElementById("gen-stage");
          if (stage && stage.dataset.state && window.__stages.at(-1) !== stage.dataset.state + stage.querySelector("img").src)
            window.__stages.push(stage.dataset.state + stage.querySelector("img").src);
        }).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-state", "src"]});
        """
    )
    page.goto("/")
    expect(page.locator("#server-status")).to_contain_text("gouache-mini")
    prompt = "a red circle above a blue square"
    page.fill("#gen-prompt", prompt)
    page.fill("#gen-size", "1024x1024")
    page.select_option("#gen-quality", "low")
    page.fill("#gen-seed", "7")
    page.select_option("#gen-partials", "2")
    with page.expect_request("**/v1/images/generations") as sent:
        page.press("#gen-prompt", "Control+Enter")  # submits from the keyboard
    expect(page.locator("#gen-progress")).to_be_visible()
    body = json.loads(sent.value.post_data or "{}")
    assert body["stream"] is True and body["partial_images"] == 2 and body["seed"] == 7

    expect(page.locator("#gen-stage")).to_have_attribute("data-state", "final")
    stages = [s.split("blob:")[0] for s in page.evaluate("window.__stages")]
    assert stages.count("partial") == 2 and stages[-1] == "final", stages
    assert stages.index("final") > max(i for i, s in enumerate(stages) if s == "partial")
    expect(page.locator("#gen-frames .partial-frame")).to_have_count(2)
    expect(page.locator("#gen-progress")).to_be_hidden()
    size = page.eval_on_selector("#gen-preview", "img => [img.naturalWidth, img.naturalHeight]")
    assert size == [1024, 1024]
    meta = page.locator("#gen-meta")
    expect(meta.locator("[data-field=seed]")).to_have_text("7")
    expect(meta.locator("[data-field=size]")).to_have_text("1024x1024")
    expect(meta.locator("[data-field=time]")).to_contain_text(" s")
    # Hosted-equivalent dollars from the server's x-gouache-cost-usd header (gpt-image-2 low, 1024x1024).
    expect(meta.locator("[data-field=cost]")).to_have_text(re.compile(r"^\$0\.0\d+"))
    shot(page, "generate")

    # The downloaded file is exactly what the API returns for the same request and seed.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    shown = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename == "gouache-7.png"
    api = httpx.post(
        f"{server.base_url}/images/generations",
        json={k: body[k] for k in ("prompt", "model", "size", "quality", "output_format", "n", "seed")},
        timeout=120,
    )
    assert base64.b64decode(api.json()["data"][0]["b64_json"]) == shown

    # Hand the result over to the edit panel.
    page.get_by_role("button", name="Edit this image").click()
    expect(page.locator("#panel-edit")).to_be_visible()
    expect(page.locator("#edit-image")).to_have_js_property("width", 1024)
    expect(page.locator("#edit-uploads li")).to_have_count(1)


def test_invalid_size_shows_the_error_in_plain_words(page: Page) -> None:
    page.goto("/")
    page.fill("#gen-prompt", "a green triangle")
    page.fill("#gen-size", "1000x1000")
    page.click("#gen-submit")
    error = page.locator("#gen-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Invalid size '1000x1000'")
    expect(error).to_contain_text("divisible by 16")
    expect(page.locator("#gen-size")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#gen-submit")).to_be_enabled()
    shot(page, "invalid-size")
    # Fixing the field and submitting again clears the error.
    page.fill("#gen-size", "1024x1024")
    page.click("#gen-submit")
    expect(page.locator("#gen-stage")).to_have_attribute("data-state", "final")
    expect(error).to_be_hidden()
    expect(page.locator("#gen-size")).not_to_have_attribute("aria-invalid", "true")

    # The same in the conversation panel, where the size is an option of the image_generation tool.
    page.click("#tab-chat")
    page.fill("#chat-size", "1000x1000")
    page.fill("#chat-input", "a green triangle")
    page.press("#chat-input", "Enter")
    expect(page.locator("#chat-error")).to_contain_text("divisible by 16")
    expect(page.locator(".turn.assistant.failed")).to_have_count(1)
    expect(page.locator("#chat-size")).to_have_attribute("aria-invalid", "true")


# --- edit ----------------------------------------------------------------------------------------------


def test_paint_a_mask_and_edit(page: Page, server: LiveServer) -> None:
    source = Image.new("RGB", (256, 256), (250, 250, 250))
    source.paste((30, 60, 200), (0, 0, 128, 256))  # left half blue, right half white
    page.add_init_script(RECORD_FORMS)
    page.goto("/#edit")
    reference = Image.new("RGB", (128, 128), (250, 220, 20))
    page.set_input_files(
        "#edit-files",
        files=[
            {"name": "scene.png", "mimeType": "image/png", "buffer": png_bytes(source)},
            {"name": "style.png", "mimeType": "image/png", "buffer": png_bytes(reference)},
        ],
    )
    expect(page.locator("#edit-uploads li")).to_have_count(2)
    expect(page.locator("#edit-uploads li.base")).to_contain_text("edited")
    mask_canvas = page.locator("#edit-mask")
    expect(page.locator("#edit-clear")).to_be_enabled()
    expect(mask_canvas).to_be_visible()
    box = mask_canvas.bounding_box()
    assert box is not None
    page.fill("#edit-brush", "90")  # brush width in screen pixels
    # A horizontal stroke through the middle, then erase its right end.
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=10)
    page.mouse.up()
    page.check("input[name=tool][value=eraser]")
    page.mouse.move(box["x"] + box["width"] * 0.7, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=5)
    page.mouse.up()
    expect(page.locator("#edit-mask-state")).to_contain_text("will be repainted")

    page.fill("#edit-prompt", "a yellow star")
    page.fill("#edit-seed", "3")
    page.select_option("#edit-partials", "1")
    page.press("#edit-prompt", "Control+Enter")
    compare = page.locator("#edit-compare")
    expect(compare).to_have_attribute("data-state", "final")
    [sent] = sent_forms(page)
    parts = sent["form"]
    assert sent["url"] == "/v1/images/edits"
    assert parts["prompt"] == "a yellow star" and parts["stream"] == "true" and parts["seed"] == "3"
    first, second = (Image.open(io.BytesIO(base64.b64decode(b))) for b in parts["image[]"])
    assert (first.size, second.size) == ((256, 256), (128, 128))
    mask = Image.open(io.BytesIO(base64.b64decode(parts["mask"]))).convert("RGBA")
    assert mask.size == (256, 256)
    alpha = mask.getchannel("A")
    assert alpha.getpixel((128, 128)) == 0  # painted: to be edited
    assert alpha.getpixel((5, 5)) == 255 and alpha.getpixel((250, 250)) == 255  # untouched: kept
    assert alpha.getpixel((200, 128)) == 255  # erased again: kept

    expect(page.locator("#edit-frames .partial-frame")).to_have_count(1)
    after = page.eval_on_selector("#edit-after", "img => [img.naturalWidth, img.naturalHeight]")
    assert after[0] == after[1] and after[0] >= 256  # size=auto keeps the aspect
    expect(page.locator("#edit-meta [data-field=mask]")).to_have_text("painted area")
    expect(page.locator("#edit-meta [data-field=seed]")).to_have_text("3")
    expect(page.locator("#edit-meta [data-field=images]")).to_have_text("2")
    # Outside the mask the image is kept: the left top corner is still the source's blue.
    corner = page.evaluate(
        """() => { const img = document.getElementById("edit-after"); const c = document.createElement("canvas");
        c.width = img.naturalWidth; c.height = img.naturalHeight; const ctx = c.getContext("2d");
        ctx.drawImage(img, 0, 0); return Array.from(ctx.getImageData(8, 8, 1, 1).data); }"""
    )
    assert abs(corner[0] - 30) < 12 and abs(corner[1] - 60) < 12 and abs(corner[2] - 200) < 12, corner
    page.fill("#edit-compare-range", "40")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "edit")
    entry = history(server, kind="edit")[0]
    assert entry["masked"] is True and entry["prompt"] == "a yellow star"


def test_draw_markup_and_edit(page: Page) -> None:
    """ "Draw markup" sends the strokes as drawn (a transparent PNG of the image's size) as `markup`, not a mask."""
    source = Image.new("RGB", (256, 256), (30, 60, 200))
    page.add_init_script(RECORD_FORMS)
    page.goto("/#edit")
    page.set_input_files(
        "#edit-files", files=[{"name": "s.png", "mimeType": "image/png", "buffer": png_bytes(source)}]
    )
    expect(page.locator("#edit-clear")).to_be_enabled()
    page.check("input[name=edit-mode][value=markup]")
    expect(page.locator("#edit-colour")).to_be_visible()
    expect(page.locator("#edit-invert")).to_be_hidden()
    box = page.locator("#edit-mask").bounding_box()
    assert box is not None
    page.fill("#edit-brush", "30")
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=10)
    page.mouse.up()
    expect(page.locator("#edit-mask-state")).to_contain_text("Markup:")
    page.fill("#edit-prompt", "a yellow star")
    page.fill("#edit-seed", "4")
    page.click("#edit-submit")
    expect(page.locator("#edit-compare")).to_have_attribute("data-state", "final")
    [sent] = sent_forms(page)
    parts = sent["form"]
    assert sent["url"] == "/v1/images/edits" and "mask" not in parts
    markup = Image.open(io.BytesIO(base64.b64decode(parts["markup"])))
    assert markup.format == "PNG" and markup.size == (256, 256)
    rgba = markup.convert("RGBA")
    assert rgba.getpixel((128, 128)) == (255, 212, 0, 255)  # the stroke, in the markup colour, as drawn
    assert rgba.getpixel((5, 5))[3] == 0 and rgba.getpixel((128, 20))[3] == 0  # elsewhere transparent
    expect(page.locator("#edit-meta [data-field=mask]")).to_have_text("markup")


# --- refine in conversation ----------------------------------------------------------------------------


def test_two_turn_refinement(page: Page, server: LiveServer) -> None:
    sent: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: sent.append(json.loads(r.post_data or "{}")) if r.url.endswith("/v1/responses") else None,
    )
    page.goto("/#chat")
    page.fill("#chat-seed", "5")
    page.fill("#chat-input", "a red circle on a white background")
    page.press("#chat-input", "Enter")
    done = page.locator(".turn.assistant[data-action]")
    expect(done).to_have_count(1)
    page.fill("#chat-input", "make it brighter")
    page.press("#chat-input", "Enter")
    expect(done).to_have_count(2)

    first, second = done.nth(0), done.nth(1)
    assert first.get_attribute("data-action") == "generate"
    assert second.get_attribute("data-action") == "edit"
    expect(second).to_contain_text("edited the last image")
    expect(second.locator(".revised")).to_contain_text("bright")
    first_id = first.get_attribute("data-response-id")
    second_id = second.get_attribute("data-response-id")
    assert first_id and second_id and first_id != second_id
    assert "previous_response_id" not in sent[0]
    assert sent[1]["previous_response_id"] == first_id
    assert sent[1]["tools"][0]["type"] == "image_generation"
    for turn in (first, second):
        width = turn.locator("img.turn-image").evaluate("img => img.naturalWidth")
        assert width == 1024
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    shot(page, "refine")
    stored = httpx.get(f"{server.base_url}/responses/{second_id}", timeout=30).json()
    assert stored["previous_response_id"] == first_id
    assert stored["output"][0]["action"] == "edit"


# --- history -------------------------------------------------------------------------------------------


def test_history_lists_reuses_and_deletes(page: Page, server: LiveServer) -> None:
    made = {}
    for prompt, seed in (("history: an orange square", 21), ("history: a purple circle", 22)):
        response = httpx.post(
            f"{server.base_url}/images/generations",
            json={"prompt": prompt, "size": "1024x1024", "quality": "low", "seed": seed},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        made[prompt] = response.headers["x-gouache-request-id"]

    page.goto("/#history")
    cards = page.locator(".entry")
    square = page.locator(f'.entry[data-id="{made["history: an orange square"]}"]')
    circle = page.locator(f'.entry[data-id="{made["history: a purple circle"]}"]')
    expect(square).to_contain_text("history: an orange square")
    expect(square).to_contain_text("seed 21")
    expect(circle).to_contain_text("seed 22")
    # Newest first.
    ids = [cards.nth(i).get_attribute("data-id") for i in range(cards.count())]
    assert ids.index(made["history: a purple circle"]) < ids.index(made["history: an orange square"])
    expect(square.locator("img")).to_have_js_property("naturalWidth", 1024)
    shot(page, "history")

    # Reuse as prompt: back in the generate form with the prompt and seed.
    square.get_by_role("button", name="Reuse").click()
    expect(page.locator("#panel-generate")).to_be_visible()
    expect(page.locator("#gen-prompt")).to_have_value("history: an orange square")
    expect(page.locator("#gen-seed")).to_have_value("21")
    expect(page.locator("#gen-quality")).to_have_value("low")

    # Delete (two clicks: the first asks to confirm).
    page.click("#tab-history")
    url = circle.get_attribute("data-image-url")
    assert url and "/v1/images/files/" in url
    delete = circle.get_by_role("button", name="Delete")
    delete.click()
    expect(delete).to_have_text("Delete for good?")
    delete.click()
    expect(circle).to_have_count(0)
    assert made["history: a purple circle"] not in {e["id"] for e in history(server)}
    assert httpx.get(url, timeout=30).status_code == 404
    assert made["history: an orange square"] in {e["id"] for e in history(server)}


# --- keys, words, layout ------------------------------------------------------------------------------

#: Markup that would run if user text were ever inserted as HTML (the page's policy would block the handler
#: too, so the test looks for the element itself).
MARKUP = '<img src=x onerror="window.__xss=1"><b>bold</b>'


def test_user_text_is_shown_as_text_never_as_html(page: Page, server: LiveServer) -> None:
    made = httpx.post(
        f"{server.base_url}/images/generations",
        json={"prompt": f"markup: a red circle {MARKUP}", "size": "1024x1024", "quality": "low", "seed": 31},
        timeout=120,
    )
    assert made.status_code == 200, made.text
    page.goto("/#history")
    entry = page.locator(f'.entry[data-id="{made.headers["x-gouache-request-id"]}"]')
    expect(entry).to_contain_text(MARKUP)
    # An error that quotes what was typed, and a conversation turn that shows it.
    page.click("#tab-generate")
    page.fill("#gen-prompt", MARKUP)
    page.fill("#gen-size", MARKUP)
    page.click("#gen-submit")
    expect(page.locator("#gen-error")).to_contain_text(MARKUP)
    page.click("#tab-chat")
    page.fill("#chat-size", "1000x1000")  # refused at once: the turn and its error are what is looked at
    page.fill("#chat-input", MARKUP)
    page.press("#chat-input", "Enter")
    expect(page.locator(".turn.user").last).to_contain_text(MARKUP)
    expect(page.locator("#chat-error")).to_be_visible()
    assert page.locator("img[src='x']").count() == 0 and page.locator("b", has_text="bold").count() == 0
    assert page.evaluate("window.__xss") is None


def test_api_key_is_kept_in_the_browser_and_sent_as_bearer(page: Page) -> None:
    page.goto("/")
    page.fill("#api-key", "gk-test-123")
    page.press("#api-key", "Enter")
    expect(page.locator("#key-state")).to_have_text("saved")
    page.reload()
    expect(page.locator("#api-key")).to_have_value("gk-test-123")
    with page.expect_request("**/v1/gouache/history*") as sent:
        page.click("#tab-history")
    assert sent.value.headers.get("authorization") == "Bearer gk-test-123"
    # What a person reads for the API's error statuses.
    words = page.evaluate(
        """async () => { const api = await import("/web/js/api.js");
        return [401, 429, 503, 0].map((s) => api.plainMessage(s, {message: "detail"})); }"""
    )
    assert "valid API key" in words[0] and "API key" in words[0] and "refused" in words[0]
    assert "detail" in words[1] and "busy" in words[2] and "Cannot reach" in words[3]
    # The hosted-equivalent cost header, shown when the server sends it.
    cost = page.evaluate(
        """async () => { const api = await import("/web/js/api.js"); const ui = await import("/web/js/ui.js");
        const priced = new Response("", {headers: {"x-gouache-cost-usd": "0.042"}});
        return [ui.formatCost(api.costOf(priced)), ui.formatCost(api.costOf(new Response("")))]; }"""
    )
    assert cost == ["$0.042", "-"]
    page.fill("#api-key", "")
    page.press("#api-key", "Enter")
    expect(page.locator("#key-state")).to_have_text("cleared")
    assert page.evaluate("localStorage.getItem('gouache.apiKey')") is None


@pytest.fixture(scope="module")
def keyed_server(
    tmp_path_factory: pytest.TempPathFactory, catalog_file: Path
) -> Iterator[tuple[LiveServer, str]]:
    """A server that requires an API key, with one key made by the CLI before it starts."""
    data_dir = tmp_path_factory.mktemp("keyed")
    env = {**os.environ, "GOUACHE_DATA_DIR": str(data_dir)}
    made = subprocess.run(
        [sys.executable, "-m", "gouache.cli", "keys", "create", "browser"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    secret = made.stdout.strip().splitlines()[-1].strip()
    live = start_server(data_dir, {"GOUACHE_CATALOG_FILE": str(catalog_file), "GOUACHE_REQUIRE_AUTH": "true"})
    yield live, secret
    live.stop()


def test_a_server_with_keys_needs_the_key_in_the_page(
    page: Page, keyed_server: tuple[LiveServer, str]
) -> None:
    server, secret = keyed_server
    page.goto(server.url + "/")
    page.fill("#gen-prompt", "a green triangle")
    page.select_option("#gen-quality", "low")
    page.fill("#gen-seed", "5")
    page.press("#gen-prompt", "Control+Enter")
    error = page.locator("#gen-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("API key")
    page.fill("#api-key", secret)
    page.press("#api-key", "Enter")
    page.press("#gen-prompt", "Control+Enter")
    expect(page.locator("#gen-stage")).to_have_attribute("data-state", "final")
    expect(error).to_be_hidden()
    expect(page.locator("#gen-meta [data-field=cost]")).to_have_text(re.compile(r"^\$0\.0\d+"))
    # The history gallery reads the keyed API too, thumbnails included.
    page.click("#tab-history")
    entry = page.locator(".entry").first
    expect(entry.locator("img")).to_have_js_property("naturalWidth", 1024)


def test_fits_a_phone_width_window(page: Page) -> None:
    page.set_viewport_size(PHONE)
    page.goto("/")
    page.fill("#gen-prompt", "a blue square on a yellow background")
    page.fill("#gen-seed", "4")
    page.click("#gen-submit")
    expect(page.locator("#gen-stage")).to_have_attribute("data-state", "final")
    for tab in ("generate", "edit", "chat", "history"):
        page.click(f"#tab-{tab}")
        expect(page.locator(f"#panel-{tab}")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{tab}: {overflow} px wider than the window"
    # An image to paint on fits the width too.
    page.click("#tab-edit")
    square = png_bytes(Image.new("RGB", (1024, 1024), (200, 40, 40)))
    page.set_input_files("#edit-files", files=[{"name": "s.png", "mimeType": "image/png", "buffer": square}])
    # The tools' fieldset itself never counts as disabled for Playwright: wait on a button inside it.
    expect(page.locator("#edit-clear")).to_be_enabled()
    expect(page.locator("#edit-mask")).to_be_visible()
    canvas = page.locator("#edit-mask").bounding_box()
    assert canvas is not None and canvas["x"] >= 0 and canvas["x"] + canvas["width"] <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.click("#tab-generate")
    expect(page.locator("#gen-preview")).to_be_visible()
    box = page.locator("#gen-preview").bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    shot(page, "phone", full_page=True)
