"""The evaluator's concept classifier: names the concept in a crop, trained on drawings of all three styles
(Fluent flat, Noto, Twemoji), augmented (scale, position, background, colour jitter).

It is a judge, not part of the model: it learns from two styles the model never ships (Noto, Twemoji) as well
as Fluent's. A small CNN was tried first; on this shared 2-core machine it managed 100 steps in 8 minutes
with the loss still at chance, so the classifier is a closed-form one: ridge regression (one linear solve)
on features that survive the augmentations: the crop at 16x16 in colour, its 8x8 grey gradients and a
4x4x4 colour histogram of its opaque-looking pixels. It trains in about a minute and is cached under the
concepts' cache directory (``classifier-<hash>.npz``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gouache.mini.concepts.atlas import Concept

__all__ = ["ConceptClassifier", "features", "style_images", "train_classifier"]

BASE = 64  # pixels of each style's drawing
AUGMENTS = 8  # augmented copies of each drawing


def _fluent(concept: Concept) -> np.ndarray:
    from gouache.mini.concepts.drawing import render_concept

    return np.asarray(render_concept(concept, BASE))


def style_images(concepts: Sequence[Concept], sources: dict[str, Path]) -> tuple[list[np.ndarray], list[int]]:
    """RGBA drawings (64x64) and their concept indices: each concept in Fluent, and in Noto and Twemoji where
    those have it (``sources``: the unpacked ``noto`` and ``twemoji`` packages)."""
    tables = {}
    for key, folder in (("noto", "google"), ("twemoji", "twitter")):
        entries = json.loads((sources[key] / "emoji.json").read_text())
        table: dict[str, Path] = {}
        for e in entries:
            path = sources[key] / "img" / folder / "64" / e["image"]
            for code in (e.get("unified"), e.get("non_qualified")):
                if code:
                    table[code.lower()] = path
        tables[key] = table
    images, labels = [], []
    for i, c in enumerate(concepts):
        images.append(_fluent(c))
        labels.append(i)
        for table in tables.values():
            path = table.get(c.hexcode) or table.get(c.hexcode.replace("-fe0f", ""))
            if path is not None and path.exists():
                img = Image.open(path).convert("RGBA").resize((BASE, BASE), Image.Resampling.LANCZOS)
                images.append(np.asarray(img))
                labels.append(i)
    return images, labels


def _augment(rgba: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The drawing on a random background (solid or two-tone), scaled 80-100 %, shifted up to 8 %, with
    brightness and per-channel colour jitter: a crop of a planned box as the evaluator takes it."""
    side = BASE
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    bg = np.empty((side, side, 3), np.float32)
    cut = int(rng.integers(0, side))
    bg[:cut], bg[cut:] = top, bottom if rng.random() < 0.5 else top
    scale = rng.uniform(0.8, 1.0)
    s = max(8, round(side * scale))
    fg = Image.fromarray(rgba).resize((s, s), Image.Resampling.BILINEAR)
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    room = side - s
    dx = int(np.clip(room // 2 + rng.integers(-5, 6), 0, room))
    dy = int(np.clip(room // 2 + rng.integers(-5, 6), 0, room))
    canvas.paste(fg, (dx, dy))
    arr = np.asarray(canvas, np.float32)
    alpha = arr[..., 3:4] / 255
    out = arr[..., :3] * alpha + bg * (1 - alpha)
    out = out * rng.uniform(0.85, 1.15, 3) * rng.uniform(0.85, 1.15)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")


def features(image: Image.Image) -> np.ndarray:
    """A crop's features: 16x16 colour, 8x8 grey gradients (x and y), a 4x4x4 colour histogram."""
    rgb = np.asarray(image.convert("RGB").resize((16, 16), Image.Resampling.BOX), np.float32) / 255
    grey = np.asarray(image.convert("L").resize((9, 9), Image.Resampling.BOX), np.float32) / 255
    gx, gy = np.diff(grey, axis=1)[:8], np.diff(grey, axis=0)[:, :8]
    q = (rgb.reshape(-1, 3) * 3.999).astype(np.int64)
    hist = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float32) / 256
    return np.concatenate([rgb.ravel(), 2 * gx.ravel(), 2 * gy.ravel(), 2 * hist])


class ConceptClassifier:
    """Top-k concept ids of crops: the concepts of the nearest augmented drawings (cosine similarity of
    standardised features), each concept counted once."""

    def __init__(
        self, ids: list[str], exemplars: np.ndarray, labels: np.ndarray, mean: np.ndarray, scale: np.ndarray
    ) -> None:
        self.ids = ids
        self.exemplars = exemplars.astype(np.float32)
        self.labels = labels
        self.mean = mean
        self.scale = scale

    def _embed(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale
        return z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-6)

    def top(self, images: Sequence[Image.Image], k: int = 5) -> list[list[str]]:
        sims = self._embed(np.stack([features(im) for im in images])) @ self.exemplars.T
        best = np.full((len(images), len(self.ids)), -np.inf, np.float32)
        for row in range(len(images)):
            np.maximum.at(best[row], self.labels, sims[row])
        order = np.argsort(-best, axis=1)[:, :k]
        return [[self.ids[int(j)] for j in row] for row in order]


def train_classifier(
    concepts: Sequence[Concept],
    sources: dict[str, Path],
    cache: Path,
    log: Callable[[str], Any] = print,
) -> tuple[ConceptClassifier, dict[str, Any]]:
    """The classifier for ``concepts``, built once (cached in ``cache``); returns it and its record (seconds,
    drawings, top-1 on freshly augmented drawings of Fluent and of the other two styles)."""
    ids = [c.id for c in concepts]
    key = hashlib.sha256(json.dumps([ids, AUGMENTS, "knn-v1"]).encode()).hexdigest()[:12]
    path = cache / f"classifier-{key}.npz"
    if path.exists():
        saved = np.load(path, allow_pickle=False)
        clf = ConceptClassifier(ids, saved["exemplars"], saved["labels"], saved["mean"], saved["scale"])
        return clf, json.loads(str(saved["record"]))
    started = time.perf_counter()
    images, labels = style_images(concepts, sources)
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for img, label in zip(images, labels, strict=True):
        for _ in range(AUGMENTS):
            xs.append(features(_augment(img, rng)))
            ys.append(label)
    x = np.stack(xs)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-3
    log(f"classifier: {len(images)} drawings x {AUGMENTS} augmentations, {x.shape[1]} features")
    clf = ConceptClassifier(ids, np.zeros((0, x.shape[1])), np.array(ys), mean, scale)
    clf.exemplars = clf._embed(x).astype(np.float32)
    check = np.random.default_rng(1)
    first = [i for i in range(len(images)) if i == 0 or labels[i - 1] != labels[i]]  # each concept's Fluent
    others = sorted(set(range(len(images))) - set(first))

    def accuracy(indices: list[int]) -> float:
        tops = clf.top([_augment(images[i], check) for i in indices], 1)
        return round(
            sum(t[0] == ids[labels[i]] for t, i in zip(tops, indices, strict=True)) / max(1, len(indices)), 3
        )

    record = {
        "drawings": len(images),
        "classes": len(ids),
        "augmented_top1_fluent": accuracy(first),
        "augmented_top1_noto_twemoji": accuracy(others),
        "seconds": round(time.perf_counter() - started, 1),
    }
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, exemplars=clf.exemplars.astype(np.float16), labels=clf.labels, mean=mean, scale=scale,
             record=np.array(json.dumps(record)))  # fmt: skip
    log(f"classifier: {record}")
    return clf, record
