"""The concept evaluator's judge (issue 22, note 49): its augmentation and its time-boxed, resumable
training, on a handful of synthetic drawings (CI has none of the fetched sources), and the evaluator's
diagnosis of a miss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from gouache.mini.concepts.atlas import default_atlas
from gouache.mini.concepts.classifier import ConceptClassifier, JudgeNet, TrainPlan, train_judge
from gouache.mini.concepts.classifier_data import BASE, Drawings, augment, backdrop_tiles, fit_square

COLOURS = [(220, 40, 40), (40, 170, 60), (40, 80, 220), (240, 200, 30), (150, 60, 200), (30, 30, 30)]


def _synthetic() -> Drawings:
    """Six drawings, told apart by shape and colour (the label is the index)."""
    images = []
    for i, colour in enumerate(COLOURS):
        img = Image.new("RGBA", (BASE, BASE), (0, 0, 0, 0))
        d = ImageDraw.Draw(img)
        box = (6, 6, BASE - 6, BASE - 6)
        if i % 3 == 0:
            d.ellipse(box, fill=(*colour, 255))
        elif i % 3 == 1:
            d.rectangle((12, 4, BASE - 12, BASE - 4), fill=(*colour, 255))
        else:
            d.polygon([(BASE // 2, 4), (BASE - 4, BASE - 4), (4, BASE - 4)], fill=(*colour, 255))
        images.append(np.asarray(fit_square(img), np.uint8))
    rgba = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Drawings(rgba, torch.arange(len(images)), ["fluent"] * 3 + ["noto"] * 3)


def test_fit_square_cuts_a_drawing_to_its_bounds_and_centres_it() -> None:
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle((40, 10, 59, 29), fill=(255, 0, 0, 255))  # 20x20, off-centre
    out = np.asarray(fit_square(img, 32))
    assert out.shape == (32, 32, 4)
    assert out[..., 3].min() > 200  # fills the square
    assert tuple(out[16, 16, :3]) == (255, 0, 0)


def test_augment_puts_each_drawing_on_its_own_background_reproducibly() -> None:
    drawings = _synthetic()
    tiles = backdrop_tiles(32)
    assert tiles.shape[1:] == (3, 32, 32) and len(tiles) >= 7
    batch = drawings.rgba.repeat(8, 1, 1, 1)
    a = augment(batch, 24, torch.Generator().manual_seed(5), tiles)
    b = augment(batch, 24, torch.Generator().manual_seed(5), tiles)
    c = augment(batch, 24, torch.Generator().manual_seed(6), tiles)
    assert a.shape == (48, 3, 24, 24) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    corners = a[:, :, 0, 0]  # the drawing never fills the corner: the background shows there
    assert float(corners.std(dim=0).mean()) > 0.1
    # the drawing is there: the red disc's crops are red in the middle more often than the blue one's
    red = a[0::6, :, 10:14, 10:14].mean(dim=(2, 3))
    blue = a[2::6, :, 10:14, 10:14].mean(dim=(2, 3))
    assert float((red[:, 0] - red[:, 2]).mean()) > float((blue[:, 0] - blue[:, 2]).mean()) + 0.3


def test_the_judge_learns_synthetic_drawings_and_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    drawings = _synthetic()
    ids = [f"thing-{i}" for i in range(len(drawings))]
    plan = TrainPlan(size=16, width=8, batch=32, lr=1e-2, max_steps=120, check_every=40, patience=9)
    checkpoint = tmp_path / "judge.pt"
    clf, first = train_judge(drawings, ids, checkpoint, plan, backdrop_tiles(32), log=lambda _: None)
    assert checkpoint.exists() and first["steps"] == 120 and first["finished"]
    assert [p["step"] for p in first["curve"]] == [40, 80, 120]
    assert set(first["held_out"]) == {"fluent", "noto"}
    assert np.mean([a["top1"] for a in first["held_out"].values()]) >= 0.5  # chance: 1/6
    # crops of any size, as the evaluator cuts them from a picture
    plain = [Image.fromarray(np.asarray(drawings.rgba[i].permute(1, 2, 0))).convert("RGB") for i in range(6)]
    tops = clf.top([im.resize((90, 90)) for im in plain], k=3)
    assert all(len(t) == 3 and len(set(t)) == 3 for t in tops)
    assert sum(t[0] == ids[i] for i, t in enumerate(tops)) >= 4
    # a finished checkpoint is loaded, not retrained
    again, second = train_judge(drawings, ids, checkpoint, plan, None, log=lambda _: None)
    assert second["curve"] == first["curve"]
    assert again.top([plain[0]], 1) == clf.top([plain[0]], 1)


def test_a_time_boxed_run_stops_at_a_check_and_the_next_call_resumes(tmp_path: Path) -> None:
    drawings = _synthetic()
    ids = [f"thing-{i}" for i in range(len(drawings))]
    plan = TrainPlan(size=16, width=8, batch=16, max_steps=60, check_every=20, patience=9, minutes=0.0)
    checkpoint = tmp_path / "judge.pt"
    _, cut = train_judge(drawings, ids, checkpoint, plan, None, log=lambda _: None)
    assert cut["steps"] == 0 and not cut["finished"]  # a zero time box trains nothing
    longer = TrainPlan(**{**plan.__dict__, "minutes": 60.0})
    logs: list[str] = []
    _, done = train_judge(drawings, ids, checkpoint, longer, None, log=logs.append)
    assert done["steps"] == 60 and done["finished"] and len(logs) == 3


def test_the_net_names_as_many_classes_as_asked() -> None:
    net = JudgeNet(11, width=4)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 11)
    clf = ConceptClassifier([str(i) for i in range(11)], net, 32)
    assert [len(t) for t in clf.top([Image.new("RGB", (50, 40))], k=20)] == [11]


def test_a_miss_is_told_apart_reader_crop_or_judge() -> None:
    from types import SimpleNamespace as Box

    from gouache.mini.concepts.drawing import draw_concepts
    from gouache.mini.concepts.evaluate import _cause

    atlas = default_atlas()
    if atlas is None:
        pytest.skip("no concept atlas")
    fox, cat = atlas.by_id["fox"], atlas.by_id["cat"]

    class Always:
        ids = [fox.id, cat.id]

        def __init__(self, answer: str) -> None:
            self.answer = answer

        def top(self, images: list[Image.Image], k: int = 5) -> list[list[str]]:
            return [[self.answer] for _ in images]

    picture = draw_concepts(Image.new("RGB", (200, 200), (90, 160, 90)), [(fox, 0.5, 0.5, 0.3, None)])
    o = Box(cx=0.5, cy=0.5, radius=0.3, concept="fox")
    assert _cause(picture, o, cat, Always(fox.id)) == "reader"  # type: ignore[arg-type]
    assert _cause(picture, o, fox, Always(fox.id)) == "judge: scene"  # type: ignore[arg-type]
    assert _cause(picture, o, fox, Always(cat.id)) == "judge: drawing"  # type: ignore[arg-type]
    covered = picture.copy()
    covered.paste((0, 0, 255), (60, 60, 140, 140))
    assert _cause(covered, o, fox, Always(cat.id)) == "crop: covered"  # type: ignore[arg-type]
    edge = Box(cx=0.1, cy=0.5, radius=0.3, concept="fox")
    assert _cause(picture, edge, fox, Always(cat.id)) == "crop: off the edge"  # type: ignore[arg-type]


def test_keyword_captions_use_words_people_write_and_plurals_read_back() -> None:
    import random

    from gouache.mini.concepts.evaluate import _plural, keyword_caption

    atlas = default_atlas()
    if atlas is None:
        pytest.skip("no concept atlas")
    rng = random.Random(0)
    captions = [keyword_caption(c, atlas, rng) for c in atlas.concepts if c.scene_worthy]
    words = [c.split(" ", 1)[1] for c in captions if c is not None]
    assert len(words) > 500
    assert all(
        any(ch.isalpha() for ch in w) and not any(ch.isdigit() or ch in "*#:_" for ch in w) for w in words
    )
    assert _plural("jeans") == "jeans" and _plural("bus") == "buses" and _plural("cherry") == "cherries"
    for label in ("lacrosse", "tomato", "bus", "fox", "jeans"):
        found = atlas.lookup(_plural(label))
        assert found is not None and found.label == label


def test_style_drawings_join_other_styles_on_the_code_points(tmp_path: Path) -> None:
    import json

    from gouache.mini.concepts.classifier_data import style_drawings

    atlas = default_atlas()
    if atlas is None:
        pytest.skip("no concept atlas")
    fox, cat = atlas.by_id["fox"], atlas.by_id["cat"]
    noto = tmp_path / "noto"
    (noto / "img" / "google" / "64").mkdir(parents=True)
    (noto / "emoji.json").write_text(json.dumps([{"unified": fox.hexcode.upper(), "image": "fox.png"}]))
    png = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(png).ellipse(
        (20, 20, 43, 43), fill=(230, 120, 30, 255)
    )  # small, padded: fitted to the square
    png.save(noto / "img" / "google" / "64" / "fox.png")
    drawings = style_drawings([fox, cat], {"noto": noto})
    assert drawings.styles == ["fluent", "noto", "fluent"] and drawings.labels.tolist() == [0, 0, 1]
    assert drawings.rgba.shape == (3, 4, BASE, BASE) and drawings.rgba.dtype == torch.uint8
    alpha = drawings.rgba[1, 3].float() / 255
    assert float(alpha[BASE // 2, 2]) > 0.5 and float(alpha[BASE // 2, BASE - 3]) > 0.5  # fills its square
