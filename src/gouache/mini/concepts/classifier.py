"""The evaluator's concept classifier (the judge): names the concept in a crop. It is part of the
measurement, not of the model: it learns from drawings of every style at hand (Fluent flat, Noto, Twemoji),
two of which the model never ships.

A small CNN (six 3x3 convolutions, 32 px crops, ~0.6 M parameters) trained with online augmentation
(:mod:`~gouache.mini.concepts.classifier_data`): every batch is a fresh set of crops, so it never sees the
same picture twice and never the evaluation's pictures. It replaced ridge regression and nearest neighbours
over hand-made features (note 46: 50 % and 41 % top-1 on freshly augmented Fluent drawings; note 49 has the
CNN's curve). Training is time-boxed and resumable: a checkpoint every ``check_every`` steps under the
concepts' cache directory, keyed by a hash of the concepts, the drawings' sources, the settings and
:data:`VERSION`; it stops when held-out accuracy stops improving, or at ``max_steps``, and a finished
checkpoint is simply loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gouache.mini.concepts.atlas import Atlas, Concept
from gouache.mini.concepts.classifier_data import Drawings, augment, backdrop_tiles, style_drawings

__all__ = [
    "JUDGE_SOURCES",
    "ConceptClassifier",
    "JudgeNet",
    "TrainPlan",
    "shipped_judge",
    "train_classifier",
    "train_judge",
]

#: Bumped when the network, the augmentation or the training changes (a new cache key).
VERSION = "cnn-v1"
#: The sources the judge learns from besides the shipped Fluent drawings (fetched by the evaluator).
JUDGE_SOURCES = ("noto", "twemoji")


class JudgeNet(nn.Module):
    """Three blocks of two 3x3 convolutions (batch norm, ReLU), each halving the crop, then a fourth
    convolution, global average pooling and a linear layer over the concepts."""

    def __init__(self, classes: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in (width, 2 * width, 4 * width):
            for j in range(2):
                layers += [nn.Conv2d(c_in if j == 0 else c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)]
                layers.append(nn.ReLU(inplace=True))
            layers.append(nn.MaxPool2d(2))
            c_in = c
        layers += [nn.Conv2d(c_in, 8 * width, 3, padding=1, bias=False), nn.BatchNorm2d(8 * width)]
        layers += [nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(8 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - 0.5) / 0.25))


@dataclass(frozen=True)
class TrainPlan:
    """How the judge trains. ``minutes`` bounds one call's wall time (the run resumes from its checkpoint
    on the next call); ``patience`` checks without a better held-out top-1 end it."""

    size: int = 24
    width: int = 16
    batch: int = 96
    lr: float = 3e-3
    max_steps: int = 8_000
    check_every: int = 150
    patience: int = 3
    minutes: float = 60.0
    seed: int = 0
    #: Torch threads while training: one, because on a shared, loaded 2-core machine two threads that wait
    #: on each other ran a step 7x slower than one (note 49).
    threads: int = 1


class ConceptClassifier:
    """Top-k concept ids of crops (any size: each is resized to the judge's input)."""

    def __init__(self, ids: list[str], net: JudgeNet, size: int) -> None:
        self.ids = ids
        self.net = net.eval()
        self.size = size

    def tensor(self, images: Sequence[Image.Image]) -> torch.Tensor:
        arrays = [
            np.asarray(im.convert("RGB").resize((self.size, self.size), Image.Resampling.BOX), np.float32)
            for im in images
        ]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255

    def top_of(self, x: torch.Tensor, k: int = 5) -> list[list[str]]:
        with torch.inference_mode():
            logits = torch.cat([self.net(part) for part in x.split(256)])
        order = logits.topk(min(k, len(self.ids)), dim=1).indices
        return [[self.ids[int(j)] for j in row] for row in order]

    def top(self, images: Sequence[Image.Image], k: int = 5) -> list[list[str]]:
        return self.top_of(self.tensor(images), k) if images else []


def _held_out(drawings: Drawings, size: int, tiles: torch.Tensor, seed: int) -> torch.Tensor:
    """One fresh augmented crop of every drawing (a generator the training never uses)."""
    g = torch.Generator().manual_seed(1_000_003 + seed)
    return torch.cat([augment(part, size, g, tiles) for part in drawings.rgba.split(512)])


def _accuracy(clf: ConceptClassifier, crops: torch.Tensor, drawings: Drawings) -> dict[str, dict[str, float]]:
    """Top-1 and top-5 per style on ``crops`` (one per drawing)."""
    tops = clf.top_of(crops, 5)
    out: dict[str, dict[str, float]] = {}
    for style in dict.fromkeys(drawings.styles):
        rows = [i for i, s in enumerate(drawings.styles) if s == style]
        want = [clf.ids[int(drawings.labels[i])] for i in rows]
        out[style] = {
            "top1": round(sum(tops[i][0] == w for i, w in zip(rows, want, strict=True)) / len(rows), 3),
            "top5": round(sum(w in tops[i] for i, w in zip(rows, want, strict=True)) / len(rows), 3),
            "n": len(rows),
        }
    return out


def train_judge(
    drawings: Drawings,
    ids: list[str],
    checkpoint: Path,
    plan: TrainPlan = TrainPlan(),
    tiles: torch.Tensor | None = None,
    log: Callable[[str], Any] = print,
) -> tuple[ConceptClassifier, dict[str, Any]]:
    """The judge for ``drawings`` (labels index ``ids``), trained or resumed from ``checkpoint``; returns
    it and its record (the held-out curve: minutes, step and per-style accuracy at each check; finished)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        return _train(drawings, ids, checkpoint, plan, tiles, log)
    finally:
        torch.set_num_threads(threads)


def _train(
    drawings: Drawings,
    ids: list[str],
    checkpoint: Path,
    plan: TrainPlan,
    tiles: torch.Tensor | None,
    log: Callable[[str], Any],
) -> tuple[ConceptClassifier, dict[str, Any]]:
    torch.manual_seed(plan.seed)
    net = JudgeNet(len(ids), plan.width)
    opt = torch.optim.AdamW(net.parameters(), lr=plan.lr, weight_decay=5e-4)
    state: dict[str, Any] = {"step": 0, "minutes": 0.0, "curve": [], "best": -1.0, "stale": 0, "done": False}
    if checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        state = saved["state"]
    clf = ConceptClassifier(ids, net, plan.size)
    held = _held_out(drawings, plan.size, tiles if tiles is not None else torch.zeros(0), plan.seed)
    call_started = last = time.perf_counter()
    g = torch.Generator().manual_seed(plan.seed * 7919 + state["step"])
    while not state["done"] and (time.perf_counter() - call_started) / 60 < plan.minutes:
        net.train()
        for _ in range(plan.check_every):
            step = state["step"]
            warm, cosine = min(1.0, (step + 1) / 200), 0.5 * (1 + math.cos(math.pi * step / plan.max_steps))
            for group in opt.param_groups:  # warm-up, then cosine to zero at max_steps
                group["lr"] = plan.lr * warm * cosine
            pick = torch.randint(0, len(drawings), (plan.batch,), generator=g)
            x = augment(drawings.rgba[pick], plan.size, g, tiles)
            loss = F.cross_entropy(net(x), drawings.labels[pick], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state["step"] = step + 1
        net.eval()
        state["minutes"] += (time.perf_counter() - last) / 60  # training only: the checks are not counted
        accuracy = _accuracy(clf, held, drawings)
        last = time.perf_counter()
        top1 = float(np.mean([a["top1"] for a in accuracy.values()]))
        state["curve"].append({"minutes": round(state["minutes"], 2), "step": state["step"],
                               "loss": round(float(loss.detach()), 3), "held_out": accuracy})  # fmt: skip
        state["stale"] = 0 if top1 > state["best"] + 0.005 else state["stale"] + 1
        state["best"] = max(state["best"], top1)
        state["done"] = state["stale"] >= plan.patience or state["step"] >= plan.max_steps
        per_style = ", ".join(f"{s} {a['top1']:.2f}" for s, a in accuracy.items())
        log(f"judge: step {state['step']}, {state['minutes']:.1f} min, loss {float(loss.detach()):.2f}, "
            f"held-out top-1 {per_style}")  # fmt: skip
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "state": state}, tmp)
        tmp.replace(checkpoint)
    net.eval()
    record = {
        "judge": VERSION,
        "plan": asdict(plan),
        "drawings": len(drawings),
        "classes": len(ids),
        "parameters": sum(p.numel() for p in net.parameters()),
        "finished": bool(state["done"]),
        "steps": state["step"],
        "minutes": round(state["minutes"], 1),
        "held_out": state["curve"][-1]["held_out"] if state["curve"] else {},
        "curve": state["curve"],
    }
    return clf, record


def _key(concepts: Sequence[Concept], sources: dict[str, Path], plan: TrainPlan) -> str:
    """A hash of what the judge is trained from and how: the concepts (ids and drawings), the source
    folders' package versions, the settings' colour fields it sees drawings on, the plan (less its time box)
    and :data:`VERSION`."""
    from gouache.mini.concepts.backdrops import BACKDROPS

    body = {k: v for k, v in asdict(plan).items() if k not in ("minutes", "threads")}
    parts = [
        VERSION,
        body,
        [[c.id, c.svg] for c in concepts],
        sorted((k, p.parent.name) for k, p in sources.items()),
        [[b.name, b.bands] for b in BACKDROPS.values()],
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def train_classifier(
    concepts: Sequence[Concept],
    sources: dict[str, Path],
    cache: Path,
    log: Callable[[str], Any] = print,
    plan: TrainPlan = TrainPlan(),
) -> tuple[ConceptClassifier, dict[str, Any]]:
    """The judge for ``concepts`` from ``sources`` (the ``noto`` and ``twemoji`` package folders), trained
    once and cached in ``cache`` (``judge-<hash>.pt``; a run cut short resumes)."""
    path = cache / f"judge-{_key(concepts, sources, plan)}.pt"
    started = time.perf_counter()
    drawings = style_drawings(concepts, sources)
    seconds = time.perf_counter() - started
    log(f"judge: {len(drawings)} drawings of {len(concepts)} concepts ({seconds:.0f} s)")
    return train_judge(drawings, [c.id for c in concepts], path, plan, backdrop_tiles(), log)


def shipped_judge(
    log: Callable[[str], Any] = print, plan: TrainPlan = TrainPlan()
) -> tuple[Atlas, ConceptClassifier, dict[str, Any]]:
    """The shipped atlas and the judge of its scene-worthy concepts, from the sources in the default cache
    (fetched there first if missing; trained once, then read back): what every evaluator entry point scores
    with. A missing atlas raises RuntimeError."""
    from gouache.mini.concepts.atlas import default_atlas
    from gouache.mini.concepts.sources import cache_dir, fetch_all

    atlas = default_atlas()
    if atlas is None:
        raise RuntimeError("no concept atlas: run gouache train-mini --concepts-only")
    cache = cache_dir()
    worthy = [c for c in atlas.concepts if c.scene_worthy]
    classifier, record = train_classifier(worthy, fetch_all(cache, JUDGE_SOURCES), cache, log=log, plan=plan)
    return atlas, classifier, record


def main() -> None:
    """``python -m gouache.mini.concepts.classifier [--minutes 20]``: train (or resume) the evaluator's judge
    on the scene-worthy concepts for at most that long, and print its record as JSON."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=TrainPlan.minutes)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    try:
        _, _, record = shipped_judge(plan=TrainPlan(minutes=args.minutes))
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    text = json.dumps(record, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
