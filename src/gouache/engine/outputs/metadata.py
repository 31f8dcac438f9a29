"""Generation parameters inside the file, in the forms other tools read.

A1111 (and ComfyUI's fallback) read a PNG text chunk ``parameters`` in A1111's text format; InvokeAI reads a
``invokeai_metadata`` JSON chunk. JPEG and WebP carry the A1111 text in EXIF UserComment. No fake ComfyUI
graph is written (ComfyUI reads its own ``prompt``/``workflow`` chunks first)."""

from __future__ import annotations

import json
import re

from PIL import Image, PngImagePlugin

from gouache.engine.outputs.options import GenerationParameters

EXIF_USER_COMMENT = 0x9286
EXIF_IFD = 0x8769


def a1111_text(p: GenerationParameters) -> str:
    """``<prompt>\\nNegative prompt: <neg>\\nSteps: 20, Sampler: ..., CFG scale: 7, Seed: 1, Size: WxH,
    Model: m`` (the negative line only when there is one)."""
    lines = [p.prompt]
    if p.negative_prompt:
        lines.append(f"Negative prompt: {p.negative_prompt}")
    lines.append(
        f"Steps: {p.steps}, Sampler: {p.sampler}, CFG scale: {p.cfg_scale:g}, Seed: {p.seed}, "
        f"Size: {p.width}x{p.height}, Model: {p.model}"
    )
    return "\n".join(lines)


def invokeai_json(p: GenerationParameters) -> str:
    return json.dumps(
        {
            "positive_prompt": p.prompt,
            "negative_prompt": p.negative_prompt,
            "seed": p.seed,
            "steps": p.steps,
            "cfg_scale": p.cfg_scale,
            "scheduler": p.sampler,
            "width": p.width,
            "height": p.height,
            "model": p.model,
        }
    )


def png_info(p: GenerationParameters) -> PngImagePlugin.PngInfo:
    """Text chunks (iTXt where the text is not Latin-1)."""
    info = PngImagePlugin.PngInfo()
    for key, text in (("parameters", a1111_text(p)), ("invokeai_metadata", invokeai_json(p))):
        try:
            text.encode("latin-1")
            info.add_text(key, text)
        except UnicodeEncodeError:
            info.add_itxt(key, text)
    return info


def exif_bytes(p: GenerationParameters) -> bytes:
    """EXIF with UserComment = the A1111 text (UNICODE charset, as A1111 writes it)."""
    exif = Image.Exif()
    comment = b"UNICODE\x00" + a1111_text(p).encode("utf-16-be")
    exif.get_ifd(EXIF_IFD)[EXIF_USER_COMMENT] = comment
    return exif.tobytes()


def read_user_comment(image: Image.Image) -> str | None:
    """The EXIF UserComment text of an opened image (tests and the CLI read parameters back)."""
    raw = image.getexif().get_ifd(EXIF_IFD).get(EXIF_USER_COMMENT)
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw
    head, body = bytes(raw[:8]), bytes(raw[8:])
    if head.startswith(b"UNICODE"):
        return body.decode("utf-16-be")
    return body.decode("ascii", "replace")


_A1111_LAST = re.compile(
    r"Steps: (?P<steps>\d+), Sampler: (?P<sampler>[^,]*), CFG scale: (?P<cfg>[\d.]+), Seed: (?P<seed>\d+), "
    r"Size: (?P<w>\d+)x(?P<h>\d+), Model: (?P<model>.+)$"
)


def read_parameters(image: Image.Image) -> GenerationParameters | None:
    """The generation parameters a file we wrote carries (the reverse of :func:`png_info` and
    :func:`exif_bytes`), from an opened image (its ``info`` survives ``convert``), or None when it carries
    none or they do not parse. An edit uses them to know what its input was made from."""
    raw = image.info.get("invokeai_metadata")
    if isinstance(raw, str):
        try:
            d = json.loads(raw)
            return GenerationParameters(
                str(d["positive_prompt"]), str(d.get("negative_prompt") or ""), int(d["steps"]),
                str(d["scheduler"]), float(d["cfg_scale"]), int(d["seed"]), int(d["width"]),
                int(d["height"]), str(d["model"]),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            pass
    text = image.info.get("parameters")
    if not isinstance(text, str):
        try:
            text = read_user_comment(image)
        except Exception:  # Pillow raises many types on broken EXIF data
            text = None
    if not text:
        return None
    *head, last = text.split("\n")
    m = _A1111_LAST.match(last)
    if m is None or not head:
        return None
    negative = ""
    if head[-1].startswith("Negative prompt: "):
        negative = head.pop()[len("Negative prompt: ") :]
    return GenerationParameters(
        "\n".join(head), negative, int(m["steps"]), m["sampler"], float(m["cfg"]), int(m["seed"]),
        int(m["w"]), int(m["h"]), m["model"],
    )  # fmt: skip
