"""gouache-mini's caption reading time: reading a caption into a scene request (it runs on every request, and
again when the image is finished, for ``revised_prompt`` and the shades), against laying that request out and
turning it into grounding tokens, timed in the same run over the paraphrase set's prompts. Reading is pure
Python (no MiniLM call unless a word is unknown), so it should stay a small share of the layout.

A second row times the whole planner of one image with words, as a request runs it (read, lay out, tokens,
then at the finish: read again, lay out again, say what was understood, typeset the words at 1024x1024), over
the lettering prompts of :mod:`gouache.mini.evaluation.lettering`, against the same layout + tokens.

A third row times what a whole-image edit spends finding the words of its input (:mod:`gouache.mini.
keeping`, once per edit, before denoising) at 1024x1024: by OCR (an image without generation parameters)
against from the parameters (lay the scene out again, check the pixels), on the lettering prompts' words
typeset where the planner puts them; its detail says how many OCR read exactly."""

from __future__ import annotations

import random
import time

from gouache.benchmarks import BenchOptions, Ratio
from gouache.benchmarks.common import repeats


def measure(options: BenchOptions) -> list[Ratio]:
    from gouache.mini.evaluation.paraphrase import paraphrase_scenes
    from gouache.mini.grounding import scene_tokens
    from gouache.mini.reading import read_caption
    from gouache.mini.scenes.request import layout_scene

    captions = [s.caption for s in paraphrase_scenes(100 if options.quick else 400)]
    requests = [read_caption(c) for c in captions]  # warm caches (typo lookups) before timing
    read_s, layout_s = [], []
    for _ in range(repeats(options)):
        t0 = time.perf_counter()
        requests = [read_caption(c) for c in captions]
        t1 = time.perf_counter()
        for i, request in enumerate(requests):
            scene_tokens(layout_scene(request, random.Random(i)))
        t2 = time.perf_counter()
        read_s.append((t1 - t0) / len(captions))
        layout_s.append((t2 - t1) / len(captions))
    read, layout = min(read_s), min(layout_s)
    return [*_reading_row(read, layout, len(captions)), _planner_row(options, layout), _keeping_row(options)]


def _reading_row(read: float, layout: float, n: int) -> list[Ratio]:
    return [
        Ratio(
            "mini caption reading time",
            "layout + grounding tokens",
            layout,
            "read_caption",
            read,
            f"{read * 1e3:.2f} ms per caption ({n} paraphrased prompts)",
        )
    ]


def _planner_row(options: BenchOptions, layout: float) -> Ratio:
    from PIL import Image

    from gouache.mini.describe import describe
    from gouache.mini.evaluation.lettering import lettering_prompts
    from gouache.mini.grounding import scene_tokens
    from gouache.mini.lettering import requested_text, typeset
    from gouache.mini.reading import layout_caption, read_caption

    prompts = [prompt for _, prompt, _ in lettering_prompts(2 if options.quick else 10)]
    canvas = Image.new("RGB", (1024, 1024), (40, 150, 60))
    per_caption = []
    for _ in range(repeats(options)):
        t0 = time.perf_counter()
        for i, prompt in enumerate(prompts):
            truth = layout_caption(prompt, None, i)  # the encoder: read, lay out, tokens
            assert truth is not None
            scene_tokens(truth)
            request = read_caption(prompt)  # the finish hook: read, lay out, describe, typeset
            truth = layout_caption(prompt, None, i)
            describe(request)
            text = requested_text(prompt)
            if truth is not None and truth.text is not None and text:
                typeset(canvas, text, truth.text.box, truth.text.rgb)
        per_caption.append((time.perf_counter() - t0) / len(prompts))
    planner = min(per_caption)
    return Ratio(
        "mini planner per image with words",
        "layout + grounding tokens",
        layout,
        "read, lay out, tokens, describe, typeset",
        planner,
        f"{planner * 1e3:.2f} ms per caption ({len(prompts)} lettering prompts, typeset at 1024x1024)",
    )


def _keeping_row(options: BenchOptions) -> Ratio:
    from PIL import Image

    from gouache.mini.concepts.finish import placed_concepts
    from gouache.mini.evaluation.lettering import lettering_prompts
    from gouache.mini.keeping import find_kept
    from gouache.mini.lettering import requested_text, typeset
    from gouache.mini.reading import layout_caption, read_caption

    cases = []
    for i, (_, prompt, _) in enumerate(lettering_prompts(2 if options.quick else 10)):
        truth, text = layout_caption(prompt, None, i), requested_text(prompt)
        if truth is not None and truth.text is not None and text:
            canvas = Image.new("RGB", (1024, 1024), truth.background_rgb)
            cases.append((prompt, i, text, typeset(canvas, text, truth.text.box, truth.text.rgb)))
    find_kept(cases[0][3], None)  # load OCR before timing
    exact_s, ocr_s, read = [], [], 0
    for _ in range(repeats(options)):
        t0 = time.perf_counter()
        for prompt, i, text, image in cases:
            truth, request = layout_caption(prompt, None, i), read_caption(prompt)
            assert truth is not None and truth.text is not None
            find_kept(image, (text, truth.text.box, truth.text.rgb, placed_concepts(request, truth)))
        t1 = time.perf_counter()
        found = [find_kept(image, None) for _, _, _, image in cases]
        t2 = time.perf_counter()
        exact_s.append((t1 - t0) / len(cases))
        ocr_s.append((t2 - t1) / len(cases))
        texts = [text for _, _, text, _ in cases]
        read = sum(bool(k.words) and k.words[0].text == text for k, text in zip(found, texts, strict=True))
    exact, ocr = min(exact_s), min(ocr_s)
    return Ratio(
        "mini edit: finding the input's words",
        "from its generation parameters",
        exact,
        "by OCR (rapidocr)",
        ocr,
        f"{ocr * 1e3:.0f} ms per 1024x1024 edit by OCR, {exact * 1e3:.1f} ms from the parameters; "
        f"OCR read {read}/{len(cases)} exactly",
    )
