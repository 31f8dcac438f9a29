"""Where gouache-mini's concepts come from: openly licensed, named drawings fetched from the npm registry.

Every source is fetched with the registry's own client (``npm pack``, which only downloads the package
tarball) into a cache directory outside the repository, its sha256 recorded beside it, and unpacked there.
Nothing of a source is committed to git: the concept atlas built from them
(:mod:`gouache.mini.concepts.build`) is the shipped, derived data. Share-alike and GPL sets (OpenMoji
CC-BY-SA, Tux Paint stamps GPL-2) are not used. The shipped atlas draws each thing from Fluent flat (MIT)
where it has one, else from Noto's SVGs (Apache-2.0), else from Twemoji's (CC-BY-4.0: the country flags),
with emojibase's names (MIT); every source it uses is recorded in it with its licence, attribution and
checksum. Noto's and Twemoji's 64-pixel PNGs (emoji-datasource) train and test the evaluator's classifier.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SOURCES", "Source", "cache_dir", "fetch", "fetch_all"]


@dataclass(frozen=True)
class Source:
    """One npm package: what it is used for, its licence terms and the attribution they ask for."""

    key: str
    package: str
    version: str
    licence: str
    use: str
    attribution: str
    #: Members of the tarball to unpack (prefixes under ``package/``); the rest stays packed.
    members: tuple[str, ...]

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def tarball(self) -> str:
        return f"{self.package.lstrip('@').replace('/', '-')}-{self.version}.tgz"


SOURCES: dict[str, Source] = {
    s.key: s
    for s in (
        Source(
            "fluent",
            "@iconify-json/fluent-emoji-flat",
            "1.2.6",
            "MIT",
            "shipped: the drawings (SVG) the finish stage draws",
            "Fluent Emoji by Microsoft Corporation (MIT), via Iconify",
            ("package/icons.json", "package/chars.json", "package/info.json", "package/package.json"),
        ),
        Source(
            "noto-svg",
            "@iconify-json/noto",
            "1.2.9",
            "Apache-2.0",
            "shipped: drawings (SVG) of the things Fluent flat lacks (families, couples, the swan, Emoji 16)",
            "Noto Emoji by Google Inc. (Apache-2.0, https://github.com/googlefonts/noto-emoji), via Iconify",
            ("package/icons.json", "package/chars.json", "package/info.json", "package/package.json"),
        ),
        Source(
            "twemoji-svg",
            "@iconify-json/twemoji",
            "1.2.5",
            "CC-BY-4.0",
            "shipped: drawings (SVG) of the flags Fluent flat and Noto lack",
            "Twemoji graphics by Twitter, Inc. and other contributors, licensed under CC-BY 4.0 "
            "(https://creativecommons.org/licenses/by/4.0/), via Iconify",
            ("package/icons.json", "package/chars.json", "package/info.json", "package/package.json"),
        ),
        Source(
            "emojibase",
            "emojibase-data",
            "17.0.0",
            "MIT (data from Unicode CLDR, Unicode licence)",
            "shipped: names, keywords, groups (what a caption's noun is matched against)",
            "emojibase-data by Miles Johnson (MIT); CLDR annotations (c) Unicode, Inc.",
            ("package/en/data.json", "package/meta/groups.json", "package/package.json"),
        ),
        Source(
            "noto",
            "emoji-datasource-google",
            "16.0.0",
            "images Apache-2.0 (Noto Emoji); data MIT",
            "evaluation only: a second drawing style for the classifier",
            "Noto Emoji by Google (Apache-2.0), via emoji-datasource (MIT)",
            ("package/emoji.json", "package/img/google/64/", "package/package.json"),
        ),
        Source(
            "twemoji",
            "emoji-datasource-twitter",
            "16.0.0",
            "images CC-BY-4.0 (Twemoji); data MIT",
            "evaluation only: a third drawing style for the classifier",
            "Twemoji graphics by Twitter, Inc. and other contributors, licensed under CC-BY 4.0 "
            "(https://creativecommons.org/licenses/by/4.0/), via emoji-datasource (MIT)",
            ("package/emoji.json", "package/img/twitter/64/", "package/package.json"),
        ),
    )
}


def cache_dir(home: Path | None = None) -> Path:
    """The sources' cache: ``home/concepts`` when given (the CLI passes ``GOUACHE_HOME``'s data dir), else
    ``$XDG_CACHE_HOME/gouache/concepts`` (``~/.cache/...``). Never inside the repository."""
    if home is not None:
        return home / "concepts"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gouache" / "concepts"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(source: Source, cache: Path) -> Path:
    """``source`` downloaded (once) with ``npm pack`` and unpacked under ``cache``; returns the unpacked
    ``package/`` folder. The tarball's sha256 is recorded in ``cache/checksums.json``; a tarball whose hash
    no longer matches the record is refused rather than used."""
    npm_dir = cache / "npm"
    npm_dir.mkdir(parents=True, exist_ok=True)
    tarball = npm_dir / source.tarball
    if not tarball.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed to fetch the concept drawings: apt-get install npm")
        subprocess.run(
            [npm, "pack", source.spec, "--pack-destination", str(npm_dir)],
            check=True,
            capture_output=True,
            timeout=600,
        )
    record_file = cache / "checksums.json"
    records = json.loads(record_file.read_text()) if record_file.exists() else {}
    digest = _sha256(tarball)
    known = records.get(source.tarball)
    if known is not None and known != digest:
        raise RuntimeError(
            f"{tarball}: sha256 {digest} differs from the recorded {known}; delete it to refetch"
        )
    records[source.tarball] = digest
    record_file.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    out = cache / "src" / source.tarball.removesuffix(".tgz")
    done = out / ".unpacked"
    if not done.exists():
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(source.members)]
            tar.extractall(out, members=members, filter="data")
        done.write_text(digest + "\n")
    return out / "package"


def fetch_all(cache: Path, keys: tuple[str, ...] = tuple(SOURCES)) -> dict[str, Path]:
    """Every source of ``keys`` fetched and unpacked: {key: its ``package/`` folder}."""
    return {k: fetch(SOURCES[k], cache) for k in keys}
