"""The gpt-image-2 size rules, edge by edge."""

import pytest

from gouache.engine.geometry import working_size
from gouache.service.errors import InvalidRequest
from gouache.service.sizes import Size, parse_size, resolve_size


@pytest.mark.parametrize(
    "size",
    [
        "1024x1024",
        "1536x1024",
        "1024x1536",
        "2048x2048",
        "2048x1152",
        "3840x2160",
        "2160x3840",
        "1024x640",
        "1824x1024",
        "2880x960",
    ],
)
def test_valid_sizes(size: str) -> None:
    parsed = parse_size(size)
    assert parsed is not None and str(parsed) == size


@pytest.mark.parametrize(
    ("size", "fragment"),
    [
        ("1666x2514", "divisible by 16"),
        ("1030x1024", "divisible by 16"),
        ("9:16", "Expected 'auto' or WIDTHxHEIGHT"),
        ("big", "Expected"),
        ("", "Expected"),
        ("0x1024", "positive"),
        ("3856x1024", "longest edge"),
        ("2896x960", "3:1"),
        ("512x512", "at least 655,360"),
        ("1008x640", "at least 655,360"),
        ("3840x2176", "at most 8,294,400"),
        ("-16x1024", "Expected"),
    ],
)
def test_invalid_sizes(size: str, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_size(size)
    assert info.value.param == "size"
    assert info.value.type == "image_generation_user_error"
    assert info.value.code == "invalid_value"
    assert fragment in info.value.message


def test_auto_sizes() -> None:
    assert resolve_size("auto") == Size(1024, 1024)
    assert resolve_size("auto", like=(300, 200)) == Size(1536, 1024)
    assert resolve_size("auto", like=(200, 310)) == Size(1024, 1536)


@pytest.mark.parametrize(
    ("w", "h", "res", "mult", "expected"),
    [
        (1024, 1024, 512, 8, (512, 512)),
        (1536, 1024, 512, 8, (624, 416)),
        (3840, 2160, 1024, 16, (1360, 768)),
        (1024, 1024, 2048, 8, (1024, 1024)),
        (2880, 960, 256, 8, (440, 144)),
    ],
)
def test_working_size_keeps_aspect_and_area(
    w: int, h: int, res: int, mult: int, expected: tuple[int, int]
) -> None:
    ww, wh = working_size(w, h, res, mult)
    assert (ww, wh) == expected
    assert ww % mult == 0 and wh % mult == 0
    assert abs(ww / wh - w / h) / (w / h) < 0.05
