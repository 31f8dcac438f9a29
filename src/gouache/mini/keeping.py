"""What a whole-image edit keeps of gouache-mini's own finishing: the input's words and concept drawings.

gouache-mini typesets words and draws concepts at the output size, after the UNet (:mod:`gouache.mini.
lettering`, :mod:`gouache.mini.concepts.finish`). An image-to-image edit repaints the input at 64 px, where a
letter is a few pixels, so "make the background blue" of a sign that says "OPEN" used to come back without
the word: the engine sees only pixels and the new prompt. Now the engine asks, once per edit and before
denoising, what the input carries (:func:`find_kept`, through the text encoder's ``kept_marks``), and the
finish sets it again after the repaint, in its box and ink (:func:`draw_words`):

- **exactly**, when the input carries Gouache's generation parameters (written into every PNG, JPEG and
  WebP by default) for this model: its prompt and seed give back the very layout the finish drew from (the
  words' box and ink, each concept's place and colour). Each mark is checked against the input's pixels
  and dropped when they do not show it (the image was painted over elsewhere, or was an inpainting, whose
  layout was fitted into a mask the parameters do not record);
- **otherwise the words by OCR** (rapidocr, offline, as the evaluator reads them): text, box, and the ink
  read from the box's pixels. Concept drawings have no such reader: the evaluator's judge names half of
  them, and a wrong guess would draw another thing, so without parameters they are not kept.

Words the edit's prompt asks for win over kept ones (:meth:`Kept.asked`): "replace the word SALE with OPEN"
or "change SALE to OPEN" swaps those words; a new quoted phrase replaces the kept words in their box. The
old words are painted over with their surroundings first, so the repaint's smudge of them does not show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from gouache.mini.concepts.finish import Placed
from gouache.mini.lettering import MAX_CHARS, is_latin, requested_text, typeset
from gouache.mini.scenes.vocabulary import RGB, Box

__all__ = ["Kept", "KeptWords", "draw_words", "find_kept", "ink_of", "replacements", "words_by_ocr"]

#: OCR reads the input at this longer side (at 256 px two words ran together; 512 costs a third more).
OCR_SIDE = 384
#: A reading OCR is less sure of than this is not kept (the UNet's letter-like marks read as noise).
MIN_SCORE = 0.75
#: Characters OCR reads at the ends of a line that are dropped: gouache-mini's sign edges read as these.
_EDGE_MARKS = " !|.,:;'\"-_()[]"
#: typeset fits the words to 90 % of its box's width and 80 % of its height: a glyph box grows by these.
_FIT_W, _FIT_H = 0.9, 0.8


@dataclass(frozen=True)
class KeptWords:
    """Words to set again: ``text`` centred in ``box`` (canvas units, the box :func:`typeset` fits them to)
    in ``rgb``. ``erase``: the words there were replaced, so the box is painted over first."""

    text: str
    box: Box
    rgb: RGB
    erase: bool = False


@dataclass(frozen=True)
class Kept:
    """What an edit's input carries that the repaint would lose, and where it was found ("parameters" or
    "ocr")."""

    words: tuple[KeptWords, ...] = ()
    drawings: tuple[Placed, ...] = ()
    source: str = ""

    def asked(self, prompt: str) -> tuple[Kept, str, str]:
        """These marks with the words ``prompt`` asks to change changed; what to add to the image's
        ``revised_prompt`` about them ("" when nothing is kept); and ``prompt`` as the scene to read, with
        each swap ("replace the word SALE with OPEN") written as the words it leaves ('the word "OPEN"'), so
        that the instruction is not read as things to draw."""
        words = list(self.words)
        swaps = replacements(prompt) if words else []
        new = None if swaps else new_words(prompt)
        changed: list[tuple[str, str]] = []
        scene = prompt
        for old, text, explicit, span in swaps:
            at = _matching(words, old)
            if at is None and explicit and len(words) == 1:  # the one kept line, however OCR spelled it
                at = 0
            if at is not None and is_latin(text):
                changed.append((words[at].text, text))
                words[at] = replace(words[at], text=text, erase=True)
                scene = scene.replace(span, f'the word "{text}"')
        if new and words and _matching(words, new) is None and is_latin(new):
            changed.append((words[0].text, new))
            words[0] = replace(words[0], text=new, erase=True)
        kept = replace(self, words=tuple(words))
        parts = [f'the words "{w.text}"' for w in words if not w.erase]
        parts += [f'the words "{text}" in place of "{old}"' for old, text in changed]
        parts += [f"the {p[0].label}" for p in self.drawings]
        return kept, (f"; kept from the input image: {', '.join(parts)}" if parts else ""), scene


_QUOTED = r"[\"“”]"
_SWAP = re.compile(
    r"\b(?:(?P<r>replace|swap)|change|turn)\s+(?P<kind>the\s+(?:words?|text)\s+)?(?P<q1>[\"“”'])?"
    r"(?P<old>[^\"“”',.;]+?)(?(q1)[\"“”'])\s+(?(r)(?:with|for|by)|(?:to|into))\s+(?:the\s+(?:words?|text)\s+)?"
    r"(?P<q2>[\"“”'])?(?P<new>[^\"“”',.;]+?)(?(q2)[\"“”'])\s*(?=[,.;]|$)",
    re.I,
)
_SAY = re.compile(
    r"\b(?:say|says|saying|read|reads|reading)\s+(?P<q>[\"“”])?(?P<text>(?(q)[^\"“”]+|[^\s,.;:!?]+))", re.I
)


def replacements(prompt: str) -> list[tuple[str, str, bool, str]]:
    """The swaps of words ``prompt`` asks for: (old, new, explicit, the phrase) for "replace the word SALE
    with OPEN", `change "SALE" to "OPEN"`, "swap SALE for OPEN". ``explicit``: the phrase says it is about
    words (quotes, "the word", "the text"); otherwise ("change the circle to a square") it is a swap of
    words only when ``old`` is words the input shows. New words longer than gouache-mini letters are left
    out."""
    out = []
    for m in _SWAP.finditer(prompt):
        old, new = " ".join(m["old"].split()), " ".join(m["new"].split())
        explicit = bool(m["kind"] or m["q1"] or m["q2"])
        if old and new and len(new) <= MAX_CHARS and len(new.split()) <= 3:
            out.append((old, new, explicit, m.group(0)))
    return out


def new_words(prompt: str) -> str | None:
    """The words an edit's ``prompt`` asks the image to show, if it names any: its last quoted phrase, else
    the word after "say", "reads"... ("make it say SALE")."""
    quoted = requested_text(prompt, last=True) if re.search(_QUOTED, prompt) else None
    if quoted:
        return quoted
    found = [m["text"] for m in _SAY.finditer(prompt)]
    text = " ".join(found[-1].split()) if found else ""
    return text if text and len(text) <= MAX_CHARS and len(text.split()) <= 3 else None


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _matching(words: list[KeptWords], text: str) -> int | None:
    """The index of the kept words that read as ``text`` (letters and digits, any case), else None."""
    target = _norm(text)
    return next((i for i, w in enumerate(words) if _norm(w.text) == target), None)


# --------------------------------------------------------------------------------------------------
# Finding the marks
# --------------------------------------------------------------------------------------------------


def find_kept(
    image: Image.Image,
    made: tuple[str, Box | None, RGB | None, list[Placed]] | None,
) -> Kept:
    """What ``image`` (an edit's input) carries: ``made`` is what its generation parameters say was drawn
    (the text, its box and ink, the placed concepts), kept where the pixels show it; the words are read by
    OCR when the parameters give none."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    words: tuple[KeptWords, ...] = ()
    drawings: tuple[Placed, ...] = ()
    if made is not None:
        text, box, ink, placed = made
        if text and box is not None and ink is not None and _shows_ink(rgb, box, ink):
            words = (KeptWords(text, box, ink),)
        drawings = tuple(p for p in placed if _shows_drawing(rgb, p))
        if words:
            return Kept(words, drawings, "parameters")
    words = words_by_ocr(image)
    return Kept(words, drawings, "ocr" if words else ("parameters" if drawings else ""))


def _pixels(rgb: np.ndarray, box: Box) -> np.ndarray:
    h, w = rgb.shape[:2]
    x0, y0 = max(0, int(box[0] * w)), max(0, int(box[1] * h))
    x1, y1 = min(w, int(np.ceil(box[2] * w))), min(h, int(np.ceil(box[3] * h)))
    return rgb[y0:y1, x0:x1].reshape(-1, 3)


def _shows_ink(rgb: np.ndarray, box: Box, ink: RGB) -> bool:
    """Whether at least 4 % of the box is (near) the ink: typeset glyphs cover 15-40 % of their box."""
    px = _pixels(rgb, box)
    if len(px) == 0:
        return False
    near = np.abs(px - np.array(ink, np.int16)).max(axis=1) <= 40
    return float(near.mean()) >= 0.04


def _shows_drawing(rgb: np.ndarray, placed: Placed) -> bool:
    """Whether the input shows the concept's drawing where it was placed (mean difference of the opaque
    pixels within 40 of 255)."""
    from gouache.mini.concepts.drawing import render_concept

    concept, cx, cy, radius, colour = placed
    h, w = rgb.shape[:2]
    side = max(4, round(2 * radius * min(w, h)))
    left, top = round(cx * w - side / 2), round(cy * h - side / 2)
    if left < 0 or top < 0 or left + side > w or top + side > h:
        return True  # partly outside the canvas: nothing reliable to compare, trust the parameters
    drawing = np.asarray(render_concept(concept, side, colour), dtype=np.int16)
    opaque = drawing[..., 3] > 200
    if opaque.sum() < 16:
        return False
    crop = rgb[top : top + side, left : left + side]
    return float(np.abs(crop[opaque] - drawing[..., :3][opaque]).mean()) <= 40


def ink_of(rgb: np.ndarray, box: tuple[int, int, int, int]) -> tuple[RGB, tuple[int, int, int, int]] | None:
    """The ink of the words inside ``box`` (pixels, x0 y0 x1 y1) and the ink's own bounds: the background
    is the median of the box's edge, the ink the median of the pixels farthest from it (over half the
    largest distance), its bounds those of the pixels within 60 of the ink (not the other marks)."""
    x0, y0, x1, y1 = box
    patch = rgb[y0:y1, x0:x1].astype(np.float32)
    if patch.shape[0] < 3 or patch.shape[1] < 3:
        return None
    edge = np.concatenate([patch[0], patch[-1], patch[:, 0], patch[:, -1]])
    bg = np.median(edge, axis=0)
    dist = np.linalg.norm(patch - bg, axis=2)
    if dist.max() < 40:
        return None
    ink = np.median(patch[dist > dist.max() / 2], axis=0)
    ys, xs = np.nonzero(np.linalg.norm(patch - ink, axis=2) <= 60)
    r, g, b = (int(v) for v in ink)
    bounds = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)
    return (r, g, b), bounds


def words_by_ocr(image: Image.Image) -> tuple[KeptWords, ...]:
    """The lines of Latin text OCR reads in ``image`` with confidence, each with the box typeset needs to
    set it again at the same size (grown from the ink's bounds by typeset's fit) and its ink."""
    from gouache.mini.evaluation.ocr import ocr_engine

    rgb_image = image.convert("RGB")
    w, h = rgb_image.size
    scale = OCR_SIDE / max(w, h)
    small = rgb_image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    result, _ = ocr_engine()(np.asarray(small))
    rgb = np.asarray(rgb_image, dtype=np.int16)
    out = []
    for points, text, score in result or []:
        # Punctuation at either end is most often the edge of a painted sign read as "!" or "|".
        text = " ".join(str(text).split()).strip(_EDGE_MARKS)
        if float(score) < MIN_SCORE or len(_norm(text)) < 2 or not is_latin(text) or len(text) > 40:
            continue
        xs, ys = [p[0] / scale for p in points], [p[1] / scale for p in points]
        box = (max(0, int(min(xs))), max(0, int(min(ys))), min(w, int(max(xs)) + 1), min(h, int(max(ys)) + 1))
        found = ink_of(rgb, box)
        if found is None:
            continue
        ink, (ix0, iy0, ix1, iy1) = found
        cx, cy = (ix0 + ix1) / 2 / w, (iy0 + iy1) / 2 / h
        hw, hh = (ix1 - ix0) / _FIT_W / 2 / w, (iy1 - iy0) / _FIT_H / 2 / h
        out.append(KeptWords(text, (cx - hw, cy - hh, cx + hw, cy + hh), ink))
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# Setting them again
# --------------------------------------------------------------------------------------------------


def _erase(image: Image.Image, box: Box) -> Image.Image:
    """``image`` with ``box`` filled with the median colour of its edge (the repainted sign or backdrop
    around the old words)."""
    rgb = np.asarray(image.convert("RGB")).copy()
    h, w = rgb.shape[:2]
    x0, y0 = max(0, int(box[0] * w)), max(0, int(box[1] * h))
    x1, y1 = min(w, int(np.ceil(box[2] * w))), min(h, int(np.ceil(box[3] * h)))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return image
    patch = rgb[y0:y1, x0:x1]
    edge = np.concatenate([patch[0], patch[-1], patch[:, 0], patch[:, -1]])
    rgb[y0:y1, x0:x1] = np.median(edge, axis=0).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def _legible(image: Image.Image, box: Box, ink: RGB) -> RGB:
    """``ink``, or black or white when the repaint made the words' surroundings too close to it to read
    ("make the background black" under black words)."""
    around = _pixels(np.asarray(image.convert("RGB"), dtype=np.int16), box)
    if len(around) == 0:
        return ink
    bg = np.median(around, axis=0)
    if float(np.linalg.norm(bg - np.array(ink))) >= 80:
        return ink
    return (0, 0, 0) if float(bg.mean()) > 127 else (255, 255, 255)


def draw_words(image: Image.Image, words: tuple[KeptWords, ...]) -> Image.Image:
    """``image`` (at the output size) with each of ``words`` set again in its box and ink."""
    out = image
    for w in words:
        if w.erase:
            out = _erase(out, w.box)
        out = typeset(out, w.text, w.box, _legible(out, w.box, w.rgb))
    return out
