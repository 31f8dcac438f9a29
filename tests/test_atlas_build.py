"""The atlas build's choice of drawing, on small fake sources laid out as the npm packages are: Fluent flat
first, Noto where Fluent has none, Twemoji for the flags; every drawing scaled onto the 32-unit canvas."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import resvg_py
from PIL import Image

from gouache.mini.concepts.build import CANVAS, concept_records

SQUARE = '<path fill="#{}" d="M{a} {a}H{b}V{b}H{a}Z"/>'


def _icons(folder: Path, grid: int, icons: dict[str, str], chars: dict[str, str], **extra: dict) -> Path:
    folder.mkdir(parents=True)
    body = {"prefix": folder.name, "width": grid, "height": grid, "icons": {}}
    for name, colour in icons.items():
        body["icons"][name] = {
            "body": SQUARE.format(colour, a=grid // 4, b=3 * grid // 4),
            **extra.get(name, {}),
        }
    (folder / "icons.json").write_text(json.dumps(body))
    (folder / "chars.json").write_text(json.dumps(chars))
    return folder


def _sources(tmp_path: Path) -> dict[str, Path]:
    emojibase = tmp_path / "emojibase"
    (emojibase / "en").mkdir(parents=True)
    (emojibase / "meta").mkdir()
    entries = [
        ("1F98A", "fox", 3, ["animal", "face"]),
        ("1F9A2", "swan", 3, ["bird", "cygnet"]),
        ("1F46A", "family", 1, ["child"]),
        ("1F1EB-1F1F7", "flag: France", 9, ["FR"]),
        ("1FAE8", "shaking face", 0, []),  # no drawing anywhere: left out
        ("1F3FB", "light skin tone", 2, []),  # a component: left out
    ]
    data = [{"hexcode": h, "label": label, "group": g, "tags": tags} for h, label, g, tags in entries]
    (emojibase / "en" / "data.json").write_text(json.dumps(data))
    groups = {
        "0": "smileys-emotion",
        "1": "people-body",
        "2": "component",
        "3": "animals-nature",
        "9": "flags",
    }
    (emojibase / "meta" / "groups.json").write_text(json.dumps({"groups": groups, "subgroups": {}}))
    noto = tmp_path / "noto"
    noto.mkdir()
    (noto / "emoji.json").write_text(json.dumps([{"unified": "1F98A", "short_names": ["fox_face"]}]))
    return {
        "emojibase": emojibase,
        "noto": noto,
        # Fluent draws the fox, and a swan on a 32 x 33 grid of its own
        "fluent": _icons(
            tmp_path / "fluent", 32, {"fox": "f80", "swan": "eee"}, {"1f98a": "fox", "1f9a2": "swan"},
            swan={"height": 33, "body": '<path fill="#eee" d="M0 0H32V33H0Z"/>'},  # fills its grid
        ),
        "noto-svg": _icons(
            tmp_path / "noto-svg", 128, {"family": "a52", "fox": "000"}, {"1f46a": "family", "1f98a": "fox"}
        ),
        "twemoji-svg": _icons(tmp_path / "twemoji-svg", 36, {"flag-france": "00f"}, {"1f1eb-1f1f7": "flag-france"}),
    }  # fmt: skip


def _render(svg_body: str) -> np.ndarray:
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CANVAS} {CANVAS}">{svg_body}</svg>'
    png = resvg_py.svg_to_bytes(svg_string=svg, width=64, height=64, skip_system_fonts=True)
    return np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGBA"))


def test_each_thing_is_drawn_by_the_first_set_that_has_it(tmp_path: Path) -> None:
    records = {r["label"]: r for r in concept_records(_sources(tmp_path))}
    assert list(records) == ["fox", "swan", "family", "flag: france"]
    assert [records[k]["source"] for k in records] == ["fluent", "fluent", "noto-svg", "twemoji-svg"]
    assert records["fox"]["keywords"] == ["animal", "face", "fox face"]
    # a flag is named as captions name it
    assert records["flag: france"]["keywords"] == ["fr", "flag of france", "france flag"]


def test_every_drawing_lands_on_the_same_canvas(tmp_path: Path) -> None:
    records = {r["label"]: r for r in concept_records(_sources(tmp_path))}
    for label, colour in (("fox", (255, 136, 0)), ("family", (170, 85, 34)), ("flag: france", (0, 0, 255))):
        rgba = _render(records[label]["svg"])
        ys, xs = np.nonzero(rgba[..., 3] > 128)
        # the square covers the middle half of its own grid, whatever that grid was: 16..48 of 64 pixels
        assert (xs.min(), xs.max(), ys.min(), ys.max()) == (16, 47, 16, 47), label
        assert tuple(rgba[32, 32, :3]) == colour, label
    # the 32 x 33 swan is scaled to fit (by 32/33) and centred across: none of it is cut off
    swan = _render(records["swan"]["svg"])
    ys, xs = np.nonzero(swan[..., 3] > 128)
    assert (ys.min(), ys.max()) == (0, 63) and (xs.min(), xs.max()) == (1, 62)
