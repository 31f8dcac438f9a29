"""Text fields that reach the model: any Unicode (emoji, right-to-left scripts, combining marks) is fine;
control characters other than tab and newlines, and unpaired surrogates, are refused with a 400 that says
which character and where."""

from __future__ import annotations

import re

from gouache.service.errors import InvalidRequest

_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def check_text(text: str, param: str) -> None:
    match = _FORBIDDEN.search(text)
    if match is None:
        return
    char = match.group()
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        what = f"an unpaired surrogate (U+{code:04X})"
    elif code == 0:
        what = "a NUL character (U+0000)"
    else:
        what = f"a control character (U+{code:04X})"
    raise InvalidRequest(
        f"Invalid '{param}': it contains {what} at position {match.start()}; remove it.",
        param=param,
        code="invalid_characters",
    )
