"""The concept atlas at run time: gouache-mini's vocabulary of everyday things, and how a noun finds one.

A caption's noun that the shape and colour reader does not know ("fox", "kitty", "sailboat") is looked up
here (:meth:`Atlas.find`): first by its words (a concept's name, or a keyword few concepts share, singular
or plural, one word or two: "cherry blossoms", "hot dog"), then by MiniLM similarity to every name and
keyword (:data:`SIMILARITY_MIN`), so a paraphrase ("kitty") lands on its concept (cat). A noun that is far
from everything stays unknown: left out of the picture and said so in ``revised_prompt``.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from gouache.mini.phrases import STOPWORDS

__all__ = ["ALIASES", "SIMILARITY_MIN", "UNDRAWN", "Atlas", "Concept", "default_atlas", "load_atlas"]

ATLAS_DIR = Path(__file__).parent / "atlas"
#: Cosine similarity (MiniLM, the word alone) to the nearest name or keyword above which an unknown noun is
#: read as that concept. Measured on the shipped atlas: "kitty" -> cat 0.80, "puppy" -> dog face 0.79,
#: "sailboat" -> sailboat (a name), "automobile" -> automobile; "garden" -> 0.6x (nothing close), "fluffy"
#: 0.5x (see note 46).
SIMILARITY_MIN = 0.75
#: Nouns people use for things the atlas names otherwise, and the main nouns of the seed's prompts. Kept
#: short and explicit: everything else goes through names, keywords and MiniLM.
ALIASES: dict[str, str] = {
    "startup": "rocket",
    "machine learning": "robot",
    "artificial intelligence": "robot",
    "ai": "robot",
    "car": "automobile",
    "kitten": "cat",
    "puppy": "dog",
    "bunny": "rabbit",
    "japanese garden": "national-park",
    "garden": "potted-plant",
    "tree": "deciduous-tree",
    "flower": "blossom",
    "boat": "sailboat",
    "plane": "airplane",
    "bike": "bicycle",
    "cake": "birthday-cake",
    "moon": "crescent-moon",
    "phone": "mobile-phone",
    "box": "package",
    "money": "money-bag",
    "orange": "tangerine",
    "cherry": "cherries",
    "chocolate": "chocolate-bar",
    "city": "cityscape",
    "skyline": "cityscape",
    "nut": "chestnut",
    "water": "droplet",
    "fire truck": "fire-engine",
    "calf": "cow",
    "vegetable": "carrot",
    "fireplace": "fire",
    "retriever": "dog",
    "labrador": "dog",
    "terrier": "dog",
    "husky": "dog",
    "beagle": "dog",
    "bulldog": "dog",
    "dachshund": "dog",
    "corgi": "dog",
    "cabin": "hut",
    "cottage": "house",
    "tea": "teacup-without-handle",
    "bamboo": "pine-decoration",
    "lily pad": "lotus",
    "pot": "potted-plant",
    "pumpkin": "jack-o-lantern",
    "diver": "diving-mask",
    "scuba": "diving-mask",
    "sports car": "racing-car",
    "juice": "beverage-box",
    "hot chocolate": "hot-beverage",
    "hot cocoa": "hot-beverage",
    "cocoa": "hot-beverage",
    "rocket ship": "rocket",
    "piece of cake": "shortcake",
    "slice of cake": "shortcake",
    "cake slice": "shortcake",
    "autumn leaves": "fallen-leaf",
    "autumn leaf": "fallen-leaf",
    "fall leaves": "fallen-leaf",
    "goldfish": "fish",
    "cornfield": "ear-of-corn",
    "hummingbird": "bird",
    "sheep": "ewe",
    "lamb": "ewe",
    "race car": "racing-car",
    "pine tree": "evergreen-tree",
    "pine": "evergreen-tree",
    "fir tree": "evergreen-tree",
    "hen": "chicken",
    "chick": "baby-chick",
    "muffin": "cupcake",
    "spaceship": "rocket",
    "spacecraft": "rocket",
    "frisbee": "flying-disc",
    "coffee shop": "hot-beverage",
    "cafe": "hot-beverage",
    "mug": "hot-beverage",
    "coffee mug": "hot-beverage",
    "coffee cup": "hot-beverage",
    "cup": "hot-beverage",
    "bakery": "bread",
    "gift box": "wrapped-gift",
    "lemonade": "lemon",
    "armchair": "chair",
}
#: Flags as people name them by the country's adjective ("an american flag"): the atlas knows "flag of X"
#: and "X flag" (note 53).
_DEMONYMS = {
    "american": "united-states", "us": "united-states", "usa": "united-states",
    "british": "united-kingdom", "uk": "united-kingdom", "english": "england", "scottish": "scotland",
    "welsh": "wales", "irish": "ireland", "french": "france", "german": "germany", "italian": "italy",
    "spanish": "spain", "dutch": "netherlands", "swedish": "sweden", "greek": "greece", "russian": "russia",
    "ukrainian": "ukraine", "canadian": "canada", "mexican": "mexico", "brazilian": "brazil",
    "chinese": "china", "japanese": "japan", "indian": "india", "korean": "south-korea",
    "australian": "australia", "european": "european-union",
}  # fmt: skip
ALIASES.update({f"{adjective} flag": f"flag-{country}" for adjective, country in _DEMONYMS.items()})
ALIASES["union jack"] = "flag-united-kingdom"
#: Common nouns that name none of the atlas's things, although some thing lists them as a keyword or MiniLM
#: places them near one ("table": ping pong, "lake": speedboat, "branch": an empty nest): read as unknown
#: words (left out, and said so), or as a setting where one is named ("on a table", "by the lake").
UNDRAWN = frozenset((
    "table", "desk", "bench", "lake", "pond", "river", "field", "branch", "pad", "shelf", "street", "kitchen",
    "straw", "movie", "sky", "track", "travel", "hero", "cover", "morning", "evening", "afternoon", "day",
))  # fmt: skip


@dataclass(frozen=True)
class Concept:
    """One drawable thing: its drawing (an SVG body on a 32x32 canvas), its name and keywords."""

    id: str
    label: str
    keywords: tuple[str, ...]
    group: str
    subgroup: str
    svg: str
    #: The nearest of the planner's twelve colours to the drawing's mean colour.
    colour: str
    #: Whether a colour word recolours the drawing ("a blue car"); animals, plants, food, faces, people and
    #: flags keep their own colours ("a red fox").
    recolour: bool
    #: The emoji's code points (emojibase's hexcode, lower case): how other styles of it are found.
    hexcode: str = ""

    @property
    def plural_only(self) -> bool:
        """Whether the thing's name is itself a plural ("books", "sunglasses", "french fries"; not "bus",
        "cactus", "tennis" or "nest with eggs")."""
        words = self.label.split()
        linked = any(w in ("with", "over", "of", "showing", "in") for w in words)
        return not linked and words[-1].endswith("s") and not words[-1].endswith(("ss", "us", "is", "os"))

    @property
    def scene_worthy(self) -> bool:
        """A thing one would put in a scene (not a face, person, flag or symbol)."""
        return self.group in ("animals-nature", "food-drink", "travel-places", "activities", "objects")


class Atlas:
    """The concepts, their word index and their MiniLM key vectors.

    Kept compact in a server that holds it for its lifetime (design note 50): the key vectors (7,633 x 384)
    are read only when a noun needs MiniLM (`nearest`), and stay float16 as shipped (5.9 MB, not 11.7),
    widened to float32 for each product, so similarities are exactly those of float32 vectors."""

    def __init__(self, payload: dict[str, Any], vectors: np.ndarray | Callable[[], np.ndarray]) -> None:
        self.sources: dict[str, dict[str, str]] = payload["sources"]
        fields = ("id", "label", "keywords", "group", "subgroup", "svg", "colour", "recolour", "hexcode")
        self.concepts = [
            Concept(**{f: tuple(c[f]) if f == "keywords" else c[f] for f in fields})  # type: ignore[arg-type]
            for c in payload["concepts"]
        ]
        self.by_id = {c.id: c for c in self.concepts}
        self.key_texts = [k for k, _ in payload["keys"]]
        self.key_concepts = np.array([i for _, i in payload["keys"]], dtype=np.int64)
        self._vectors = vectors
        self.words: dict[str, int] = {}
        for i, c in enumerate(self.concepts):  # names first: they win over keywords
            self.words.setdefault(c.label, i)
        shared: dict[str, list[int]] = {}
        for text, i in payload["keys"]:
            if text not in self.words and text not in UNDRAWN:  # a noun no drawing is of leads nowhere
                shared.setdefault(text, []).append(i)
        for text, owners in shared.items():  # a keyword goes to the thing it names best, if any
            fit, best = max((_keyword_fit(text, self.concepts[i], i), i) for i in owners)
            if fit[0] > 0:
                self.words[text] = best
        #: Which keys MiniLM may land on: those whose words lead to their concept (a keyword shared by
        #: several things leads to one of them, or to none).
        self.key_open = np.array(
            [t == self.concepts[i].label or self.words.get(t) == i for t, i in payload["keys"]], dtype=bool
        )
        for word, cid in ALIASES.items():
            if cid in self.by_id:
                self.words[word] = self.concepts.index(self.by_id[cid])

    def __len__(self) -> int:
        return len(self.concepts)

    @property
    def vectors(self) -> np.ndarray:
        """The key vectors as stored (float16), read on first use."""
        if callable(self._vectors):
            self._vectors = self._vectors()
        return self._vectors

    def lookup(self, words: str, names_only: bool = False) -> Concept | None:
        """The concept named exactly ``words`` (a name, an alias or, unless ``names_only``, a keyword;
        singular or plural)."""
        w = " ".join(words.lower().split())
        hits = [(f, self.concepts[self.words[f]]) for f in (w, *_singulars(w)) if f and f in self.words]
        for form, concept in hits:  # a name wins over a keyword: "tickets" are tickets, not admission tickets
            if form == concept.label or form in ALIASES:
                return concept
        return hits[0][1] if hits and not names_only else None

    def nearest(self, vector: np.ndarray) -> tuple[Concept, float]:
        """The concept whose name or keyword is nearest ``vector`` (unit length), and the similarity."""
        sims = self.vectors.astype(np.float32) @ vector.astype(np.float32)
        sims[~self.key_open] = -1.0
        best = int(sims.argmax())
        return self.concepts[int(self.key_concepts[best])], float(sims[best])

    def find(
        self, words: str, embed: Callable[[list[str]], np.ndarray] | None = None
    ) -> tuple[Concept, float] | None:
        """The concept ``words`` names: exactly (similarity 1), else by MiniLM similarity when ``embed`` is
        given and the nearest key is within :data:`SIMILARITY_MIN`; None otherwise."""
        hit = self.lookup(words)
        if hit is not None:
            return hit, 1.0
        if embed is None or _singular(words.lower()) in UNDRAWN:
            return None
        concept, score = self.nearest(embed([_singular(words.lower()) or words.lower()])[0])
        return (concept, score) if score >= SIMILARITY_MIN else None


#: People doing something, hands gesturing, hearts and emotions: reached by their names only, never by a
#: word they list ("sky" is no light blue heart).
_NOT_BY_KEYWORD = frozenset((
    "person-activity", "person-sport", "person-resting", "person-gesture", "person-symbol", "hands",
    "hand-fingers-open", "hand-fingers-partial", "hand-single-finger", "hand-fingers-closed", "hand-prop",
    "heart", "emotion", "body-parts",
))  # fmt: skip


def _keyword_fit(text: str, concept: Concept, order: int) -> tuple[float, int, int]:
    """How well keyword ``text`` names ``concept``, for choosing among the concepts that share it (higher
    is better; a first value of 0: never by this keyword). The thing whose name ends in the word ("lamp":
    diya lamp, not genie; "truck": a truck, not fire engine), the shortest such name first ("knife": kitchen
    knife, not fork and knife); then one whose name holds it ("beer": beer mug, not ginger root); then one
    that only lists it, in emoji order ("wizard": mage). A person doing something or a hand's gesture never
    ("river" is no person rowing a boat, "wave" no waving hand), nor a symbol ("room" is no men's room sign):
    those go by their names. A little word is no thing ("out" is no face with crossed-out eyes)."""
    if concept.group == "symbols" or concept.subgroup in _NOT_BY_KEYWORD or text in STOPWORDS:
        return (0.0, 0, 0)
    words = [_singular(w) for w in concept.label.replace("\u2019", "'").split()]
    word = _singular(text)
    fit = 3.0 if words[-1] == word else 2.0 if word in words else 1.0
    return (fit, -len(words) if fit > 1 else 0, -order)


def _singulars(word: str) -> tuple[str, ...]:
    """The forms ``word`` may be the plural of, likeliest first (:func:`_singular`'s guess, then less the
    "s", then less the "es"): "lacrosses" -> lacross, lacrosse; "tomatoes" -> tomatoe, tomato. The atlas
    takes the first it knows."""
    forms = [_singular(word)]
    if word.endswith("s") and len(word) > 3:
        forms += [word[:-1], word[:-2]] if word.endswith("es") and len(word) > 4 else [word[:-1]]
    return tuple(f for f in dict.fromkeys(forms) if f != word)


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def load_atlas(folder: Path) -> Atlas:
    """The atlas stored in ``folder`` (``concepts.json.gz`` and ``keys.npy.gz``)."""
    payload = json.loads(gzip.decompress((folder / "concepts.json.gz").read_bytes()))

    def vectors() -> np.ndarray:
        return np.load(io.BytesIO(gzip.decompress((folder / "keys.npy.gz").read_bytes())))

    return Atlas(payload, vectors)


@lru_cache(maxsize=1)
def default_atlas() -> Atlas | None:
    """The atlas shipped in the package (None when it has not been built: the model then draws shapes)."""
    if not (ATLAS_DIR / "concepts.json.gz").exists():
        return None
    return load_atlas(ATLAS_DIR)
