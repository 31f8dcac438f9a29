"""Build the concept atlas that ships with gouache-mini from the fetched sources (``gouache train-mini
--concepts-only``, also the first step of ``gouache train-mini``).

The atlas is derived data, committed as package data (it is part of the model, like the UNet's weights);
its sources stay in the cache (:mod:`gouache.mini.concepts.sources`). For each emoji that has a drawing
(Fluent flat, else Noto, else Twemoji: :data:`DRAWINGS`) it keeps: the drawing (an SVG body on a 32-unit
canvas), emojibase's label (the name), its tags and emoji-datasource's short names (keywords: what a caption
may call it), its group and subgroup, its dominant colour among the twelve the planner knows (for choosing a
background far from it), and whether a colour word may recolour it (not animals, plants, food, faces or
people: "a red fox" keeps the fox's colours). MiniLM embeddings of every name and keyword are stored as
float16, so reading a caption embeds only the caption's unknown noun.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from gouache.mini.concepts.sources import SOURCES, cache_dir, fetch_all

__all__ = ["ATLAS_DIR", "DRAWINGS", "GENERIC_KEYWORD", "build_atlas", "concept_records"]

ATLAS_DIR = Path(__file__).parent / "atlas"
#: Groups whose concepts keep their own colours when a colour word names them.
OWN_COLOURS = frozenset(("smileys-emotion", "people-body", "animals-nature", "food-drink", "flags"))
#: Groups left out: skin-tone and hair components are parts of other emoji, not things to draw.
SKIPPED_GROUPS = frozenset(("component",))
#: A keyword shared by more concepts than this says too little to pick one ("animal", "face"): kept as a
#: keyword but given no embedding of its own.
GENERIC_KEYWORD = 6


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


#: The drawing sets, in the order a thing's drawing is taken from: Fluent flat for everything it draws, Noto
#: for what Fluent lacks (families, couples, kisses, the swan, Emoji 16), Twemoji for the country flags.
DRAWINGS = ("fluent", "noto-svg", "twemoji-svg")
#: The atlas's drawing canvas (Fluent flat's): every drawing is scaled onto it.
CANVAS = 32


def _svg(icons: dict[str, Any], name: str) -> str | None:
    """The body of Iconify icon ``name`` (aliases resolved, flips applied), on a :data:`CANVAS`-unit
    square: a set drawn on another grid (Noto: 128, Twemoji: 36) or an icon of other proportions (Fluent's
    swan is 32 x 33) is scaled to fit and centred."""
    flip = False
    aliases = icons.get("aliases", {})
    while name in aliases:
        flip ^= bool(aliases[name].get("hFlip"))
        name = aliases[name]["parent"]
    icon = icons["icons"].get(name)
    if icon is None:
        return None
    default = icons.get("width", CANVAS), icons.get("height", CANVAS)
    w, h = icon.get("width", default[0]), icon.get("height", default[1])
    body = icon["body"]
    if flip:
        body = f'<g transform="translate({w} 0) scale(-1 1)">{body}</g>'
    if (w, h) == (CANVAS, CANVAS):
        return body
    scale = CANVAS / max(w, h)
    dx, dy = (CANVAS - w * scale) / 2, (CANVAS - h * scale) / 2
    return f'<g transform="translate({dx:g} {dy:g}) scale({scale:g})">{body}</g>'


def _keywords_of_flag(label: str) -> list[str]:
    """ "flag of france" and "france flag" for the flag labelled "flag: France": how a caption names it."""
    country = label.removeprefix("flag:").strip().replace("&", "and")
    return [f"flag of {country}", f"{country} flag"] if label.startswith("flag:") else []


def concept_records(paths: dict[str, Path]) -> list[dict[str, Any]]:
    """One record per concept (emojibase entry with a drawing in one of :data:`DRAWINGS`), in emojibase's
    order; ``source`` says which set drew it."""
    sets = {k: json.loads((paths[k] / "icons.json").read_text()) for k in DRAWINGS if k in paths}
    chars = {k: json.loads((paths[k] / "chars.json").read_text()) for k in sets}
    emojibase = json.loads((paths["emojibase"] / "en" / "data.json").read_text())
    meta = json.loads((paths["emojibase"] / "meta" / "groups.json").read_text())
    datasource = json.loads((paths["noto"] / "emoji.json").read_text())
    short_names = {e["unified"].lower(): e["short_names"] for e in datasource}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for e in emojibase:
        hexcode = e["hexcode"].lower()
        group = meta["groups"].get(str(e.get("group")), "")
        if group in SKIPPED_GROUPS or "group" not in e:
            continue
        drawn = None
        for key, icons in sets.items():
            names = chars[key]
            name = names.get(hexcode) or names.get(hexcode.replace("-fe0f", "")) or _slug(e["label"])
            body = None if name in seen else _svg(icons, name)
            if body is not None:
                drawn = (name, body, key)
                break
        if drawn is None:
            continue
        name, body, key = drawn
        seen.add(name)
        label = e["label"].lower()
        words = [t.lower() for t in e.get("tags", [])] + _keywords_of_flag(label)
        words += [
            s.replace("_", " ").lower()
            for s in short_names.get(hexcode, short_names.get(hexcode.replace("-fe0f", ""), []))
        ]
        keywords = [w for w in dict.fromkeys(words) if w and w != label]
        out.append(
            {
                "id": name,
                "label": label,
                "keywords": keywords,
                "group": group,
                "subgroup": meta["subgroups"].get(str(e.get("subgroup")), ""),
                "hexcode": hexcode,
                "svg": body,
                "source": key,
            }
        )
    return out


def _colours(records: list[dict[str, Any]], size: int = 32) -> None:
    """Each record's dominant colour name (the planner's colour most of its pixels are nearest to) and
    whether a colour word may recolour it."""
    import resvg_py
    from PIL import Image

    from gouache.mini.scenes.truth import dominant_colour_name

    for r in records:
        svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">{r["svg"]}</svg>'
        png = resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size, skip_system_fonts=True)
        rgba = np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGBA"), dtype=np.float32)
        pixels = rgba[rgba[..., 3] > 128][:, :3]
        names = [dominant_colour_name(tuple(float(v) for v in px)) for px in pixels[::2]] or ["gray"]
        r["colour"] = max(set(names), key=names.count)  # the colour most of the drawing is
        r["recolour"] = r["group"] not in OWN_COLOURS


def build_atlas(cache: Path | None = None, out: Path = ATLAS_DIR, log: Any = print) -> dict[str, Any]:
    """Fetch the sources (once), build the atlas into ``out`` and return its summary."""
    from gouache.mini.model import load_text_encoder

    cache = cache or cache_dir()
    paths = fetch_all(cache, (*DRAWINGS, "emojibase", "noto"))
    records = concept_records(paths)
    drawn = {k: sum(r["source"] == k for r in records) for k in DRAWINGS}
    log(f"{len(records)} concepts: " + ", ".join(f"{n} drawn by {k}" for k, n in drawn.items()))
    _colours(records)
    counts: dict[str, int] = {}
    for r in records:
        for k in r["keywords"]:
            counts[k] = counts.get(k, 0) + 1
    keys: list[tuple[str, int]] = []
    for i, r in enumerate(records):
        keys.append((r["label"], i))
        keys += [(k, i) for k in r["keywords"] if counts[k] <= GENERIC_KEYWORD]
    encoder: Any = load_text_encoder(grounded=True)
    vectors = []
    texts = [k for k, _ in keys]
    for start in range(0, len(texts), 256):
        vectors.append(encoder.word_vectors(texts[start : start + 256]).numpy())
    matrix = np.concatenate(vectors).astype(np.float16)
    out.mkdir(parents=True, exist_ok=True)
    sources = {
        k: {"package": s.spec, "licence": s.licence, "attribution": s.attribution}
        for k, s in SOURCES.items()
        if k == "emojibase" or drawn.get(k)
    }
    checksums = json.loads((cache / "checksums.json").read_text())
    for k, v in sources.items():
        v["sha256"] = checksums[SOURCES[k].tarball]
    payload = {"sources": sources, "concepts": records, "keys": [[k, i] for k, i in keys]}
    data = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    (out / "concepts.json.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    buf = io.BytesIO()
    np.save(buf, matrix)
    (out / "keys.npy.gz").write_bytes(gzip.compress(buf.getvalue(), compresslevel=9, mtime=0))
    size = sum(f.stat().st_size for f in out.iterdir())
    summary = {"concepts": len(records), "keys": len(keys), "bytes": size, "drawn": drawn}
    log(f"atlas: {summary}")
    return summary
