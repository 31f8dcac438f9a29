"""Reading the word in a generated image, and how close a reading is to the word asked for.

OCR is ``rapidocr-onnxruntime``, whose ONNX weights ship inside the package (nothing is downloaded). It is
loaded once, lazily, since only text scenes need it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from gouache.mini.evaluation.analysis import Analysis

OCR_SIZE = 256  # images are resized to this for OCR

_OCR_LOCK = threading.Lock()
_OCR_ENGINE: Any = None


def ocr_engine() -> Any:
    """The shared RapidOCR engine (loaded once; its ONNX weights ship inside the package, nothing is
    downloaded)."""
    global _OCR_ENGINE
    with _OCR_LOCK:
        if _OCR_ENGINE is None:
            from rapidocr_onnxruntime import RapidOCR

            _OCR_ENGINE = RapidOCR()
        return _OCR_ENGINE


def read_text(image: Image.Image, analysis: Analysis | None = None) -> list[str]:
    """Text lines OCR reads in ``image`` (resized to :data:`OCR_SIZE`), top to bottom.

    The detector misses a lone letter that fills the picture, so when it finds nothing the picture is
    retried on a larger canvas of its border colour and then, given the ``analysis`` of the image, the
    recogniser alone reads the box around all foreground and the box around the largest region."""
    img = image.convert("RGB")
    if img.size != (OCR_SIZE, OCR_SIZE):
        img = img.resize((OCR_SIZE, OCR_SIZE), Image.Resampling.LANCZOS)
    engine = ocr_engine()
    result, _ = engine(img)
    if not result:
        border = tuple(int(v) for v in np.median(np.asarray(img)[[0, -1]].reshape(-1, 3), axis=0))
        result, _ = engine(ImageOps.expand(img, border=OCR_SIZE // 2, fill=border))
    if result:
        lines = sorted(result, key=lambda r: (min(p[1] for p in r[0]), min(p[0] for p in r[0])))
        return [str(line[1]) for line in lines]
    if analysis is None or not analysis.regions:
        return []
    scale = OCR_SIZE / analysis.size
    ys, xs = np.nonzero(analysis.labels >= 0)
    boxes = [(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)]
    largest = analysis.regions[0]
    boxes.append((largest.xs.min(), largest.ys.min(), largest.xs.max() + 1, largest.ys.max() + 1))
    lines = []
    for x0, y0, x1, y1 in boxes:
        margin = 2
        crop = img.crop(
            (
                max(0, round((x0 - margin) * scale)),
                max(0, round((y0 - margin) * scale)),
                min(OCR_SIZE, round((x1 + margin) * scale)),
                min(OCR_SIZE, round((y1 + margin) * scale)),
            )
        )
        found, _ = engine(crop, use_det=False, use_cls=False)
        lines += [str(line[0]) for line in found or [] if line[0].strip()]
    return lines


def read_boxes(image: Image.Image) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Text lines OCR reads in ``image`` with where each is: (text, (x0, y0, x1, y1) as fractions of the
    width and height), top to bottom. For checking where words were put ("at the bottom")."""
    img = image.convert("RGB").resize((OCR_SIZE, OCR_SIZE), Image.Resampling.LANCZOS)
    result, _ = ocr_engine()(img)
    out = []
    for points, text, _score in result or []:
        xs, ys = [p[0] / OCR_SIZE for p in points], [p[1] / OCR_SIZE for p in points]
        out.append((str(text), (min(xs), min(ys), max(xs), max(ys))))
    return sorted(out, key=lambda line: (line[1][1], line[1][0]))


def _normalise(text: str) -> str:
    """Upper case, letters and digits only; the digit 0 reads as the letter O (the words have no digits and
    several fonts draw the two alike)."""
    return re.sub(r"[^A-Z0-9]", "", text.upper()).replace("0", "O")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def text_match(lines: Sequence[str], word: str) -> tuple[bool, float, str]:
    """Whether OCR ``lines`` read ``word`` exactly (one line or all joined), the best character error rate
    and the best-matching reading."""
    target = _normalise(word)
    candidates = [_normalise(line) for line in lines] + [_normalise("".join(lines))]
    candidates = [c for c in candidates if c] or [""]
    best = min(candidates, key=lambda c: edit_distance(c, target))
    cer = min(1.0, edit_distance(best, target) / max(1, len(target)))
    return best == target, cer, best
