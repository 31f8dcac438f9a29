"""The closed world of gouache-mini's scenes, as data: what can be in a scene, and the words for it.

Everything else in :mod:`gouache.mini.scenes` (and the caption reader and the evaluator) draws on these
tables, so a word, a colour or a margin is defined once. The first half is the world (shapes, colours, size
bands, grid positions, relations, kinds, styles, backgrounds, the geometry constants the evaluator shares,
the words written on signs); the second half is the synonyms a person would actually type for each, which
both the caption generator and the caption reader use.
"""

from __future__ import annotations

RGB = tuple[int, int, int]
Box = tuple[float, float, float, float]

# ----------------------------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------------------------

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "heart",
    "hexagon",
    "ring",
    "cross",
    "diamond",
    "pentagon",
)
SIGN = "sign"  # the shape name of a sign plate in "text" scenes; deliberately not in SHAPES

COLOURS: dict[str, RGB] = {
    "red": (220, 30, 40),
    "orange": (245, 125, 20),
    "yellow": (250, 220, 40),
    "green": (40, 150, 60),
    "blue": (35, 75, 215),
    "purple": (140, 50, 190),
    "pink": (240, 140, 195),
    "brown": (125, 70, 30),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "gray": (135, 135, 135),
    "cyan": (40, 200, 215),
}

SIZES: tuple[str, ...] = ("small", "medium", "large")
# Radius bands in canvas units, with gaps between them so that a radius names exactly one size.
SIZE_BANDS: dict[str, tuple[float, float]] = {
    "small": (0.085, 0.11),
    "medium": (0.14, 0.18),
    "large": (0.22, 0.27),
}

POSITIONS: tuple[str, ...] = (
    "top left",
    "top",
    "top right",
    "left",
    "centre",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "next to")
INVERSE_RELATION: dict[str, str] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
    "next to": "next to",
}
KINDS: tuple[str, ...] = ("single", "pair", "count", "text", "mixed")
DEFAULT_KIND_WEIGHTS: dict[str, float] = {
    "single": 0.25,
    "pair": 0.2,
    "count": 0.2,
    "text": 0.15,
    "mixed": 0.2,
}
STYLES: tuple[str, ...] = ("flat", "outlined", "shadow", "sketch")
STYLE_WEIGHTS: dict[str, float] = {"flat": 0.4, "outlined": 0.2, "shadow": 0.2, "sketch": 0.2}
BACKGROUNDS: tuple[str, ...] = (
    "solid",
    "gradient_vertical",
    "gradient_horizontal",
    "split",
    "stripes",
    "dots",
    "checker",
)
BACKGROUND_WEIGHTS: dict[str, float] = {
    "solid": 0.34,
    "gradient_vertical": 0.11,
    "gradient_horizontal": 0.11,
    "split": 0.11,
    "stripes": 0.11,
    "dots": 0.11,
    "checker": 0.11,
}
# How often each named colour is picked as a background (neutral backgrounds are commoner).
BACKGROUND_COLOUR_WEIGHTS: dict[str, float] = {name: 1.0 for name in COLOURS} | {
    "white": 3.0,
    "gray": 2.0,
    "black": 1.5,
}

# Geometry constants shared with the evaluator.
PAD = 0.02  # every object stays this far inside the canvas
MIN_GAP = 0.03  # minimum distance between the bounding circles (or sign boxes) of two objects
RELATION_MARGIN = 0.15  # centres differ by at least this much along the relation's axis
RELATION_AXIS_RATIO = 0.5  # the off-axis offset is at most this fraction of the on-axis offset
NEXT_TO_MAX_GAP = 0.12  # "next to": gap between bounding circles at most this
BACKGROUND_MIN_DISTANCE = 120.0  # RGB distance between the background colour and any object colour
TEXT_MIN_CONTRAST = 160.0  # RGB distance between ink and whatever it is written on
TEXT_MIN_LUMA_CONTRAST = 90.0  # and their luma (0-255) difference, so words stay legible
RING_INNER = 0.45  # inner radius of a ring, as a fraction of its radius

WORDS: tuple[str, ...] = (
    # single letters
    "B", "E", "K", "M", "R", "S", "X", "Z",
    # two to six letters; none is a colour, shape, size or position word, so captions stay unambiguous
    "GO", "NO", "OK", "HI", "UP", "ZIP", "OFF", "YES", "CAT", "DOG", "SUN", "SKY", "BUS", "KEY", "JAZZ",
    "ART", "MAP", "BOX", "ZOO", "FUN", "JOY", "WOW", "STOP", "OPEN", "EXIT", "SALE", "CAFE", "SHOP", "BOOK",
    "FISH", "BIRD", "TREE", "MOON", "MILK", "RAIN", "SNOW", "FIRE", "GOLD", "LOVE", "HOME", "PARK", "WEST",
    "EAST", "HELLO", "MUSIC", "PIZZA", "HOTEL", "LEMON", "APPLE", "RIVER", "HAPPY", "SMILE", "TAXI", "BANK",
    "NORTH", "SOUTH", "DANCE", "LIGHT", "PAINT", "OCEAN", "TIGER", "ROBOT", "GARDEN", "BAKERY", "CLOUD",
    "SUMMER", "WINTER", "PLANET", "CASTLE", "DRAGON", "RABBIT", "SILVER", "FOREST", "ISLAND",
)  # fmt: skip

# ----------------------------------------------------------------------------------------------------------
# Caption vocabulary (synonyms a person would actually type)
# ----------------------------------------------------------------------------------------------------------

SHAPE_WORDS: dict[str, tuple[tuple[str, str], ...]] = {  # (singular, plural) pairs, first is canonical
    "circle": (("circle", "circles"), ("disc", "discs")),
    "square": (("square", "squares"),),
    "triangle": (("triangle", "triangles"),),
    "star": (("star", "stars"), ("five-pointed star", "five-pointed stars")),
    "heart": (("heart", "hearts"), ("heart shape", "heart shapes")),
    "hexagon": (("hexagon", "hexagons"),),
    "ring": (("ring", "rings"), ("hollow circle", "hollow circles")),
    "cross": (("cross", "crosses"), ("plus sign", "plus signs")),
    "diamond": (("diamond", "diamonds"), ("rhombus", "rhombuses")),
    "pentagon": (("pentagon", "pentagons"),),
}
COLOUR_WORDS: dict[str, tuple[str, ...]] = {name: (name,) for name in COLOURS} | {
    "purple": ("purple", "violet"),
    "gray": ("gray", "grey"),
    "cyan": ("cyan", "turquoise"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little"),
    "medium": ("medium", "medium-sized"),
    "large": ("large", "big"),
}
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "top left": ("in the top left", "in the top left corner", "at the top left", "in the upper left"),
    "top": ("at the top", "near the top", "at the top of the image"),
    "top right": ("in the top right", "in the top right corner", "at the top right", "in the upper right"),
    "left": ("on the left", "on the left side", "at the left"),
    "centre": ("in the centre", "in the center", "in the middle"),
    "right": ("on the right", "on the right side", "at the right"),
    "bottom left": (
        "in the bottom left",
        "in the bottom left corner",
        "at the bottom left",
        "in the lower left",
    ),
    "bottom": ("at the bottom", "near the bottom", "at the bottom of the image"),
    "bottom right": (
        "in the bottom right",
        "in the bottom right corner",
        "at the bottom right",
        "in the lower right",
    ),
}
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above",),
    "below": ("below", "under", "beneath"),
    "next to": ("next to", "beside"),
}
NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four"}
STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "flat": ("in a flat style", "with flat colours", "in flat colours"),
    "outlined": ("with a thick outline", "in an outlined style", "with bold outlines"),
    "shadow": ("with a soft shadow", "with a drop shadow", "in a soft shadow style"),
    "sketch": ("in a sketch style", "as a rough sketch", "in a hand-drawn style"),
}
BACKGROUND_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "solid": ("plain", "solid"),
    "gradient_vertical": ("gradient",),
    "gradient_horizontal": ("gradient",),
    "split": ("two-tone",),
    "stripes": ("striped",),
    "dots": ("dotted", "polka-dot"),
    "checker": ("checkered", "checkerboard"),
}

# ----------------------------------------------------------------------------------------------------------
# Shades: light and dark variants of a colour
# ----------------------------------------------------------------------------------------------------------

#: Light and dark variants people name ("light grey", "dark blue"): each is its own colour with its own RGB,
#: painted as its base colour (the grounding tokens carry a one-hot over :data:`COLOURS`, so a shade needs no
#: retraining) and then tinted to its RGB at the working resolution (:mod:`gouache.mini.finishing`). Chosen
#: at least 65 RGB units from every colour of :data:`COLOURS` and from each other, so the evaluator tells them
#: apart as a person does; colours without a variant here ("light red") are read as their base colour.
SHADES: dict[str, tuple[str, RGB]] = {
    "light gray": ("gray", (200, 200, 200)),
    "dark gray": ("gray", (70, 70, 70)),
    "light blue": ("blue", (135, 175, 240)),
    "dark blue": ("blue", (20, 35, 120)),
    "light green": ("green", (140, 215, 140)),
    "dark green": ("green", (15, 85, 35)),
}
#: Every colour the caption reader and the evaluator name: :data:`COLOURS` and the :data:`SHADES`.
NAMED_COLOURS: dict[str, RGB] = COLOURS | {name: rgb for name, (_, rgb) in SHADES.items()}


def base_colour(name: str) -> str:
    """The colour of :data:`COLOURS` that ``name`` (a colour or a shade) is painted as."""
    return SHADES[name][0] if name in SHADES else name
