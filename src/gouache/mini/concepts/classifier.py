"""The evaluator's concept classifier: a small CNN that names the concept in a picture, trained on drawings of
all three styles (Fluent flat, Noto, Twemoji), augmented (scale, position, background, colour jitter).

It is a judge, not part of the model: it learns from two styles the model never ships (Noto, Twemoji) as well
as Fluent's, so a drawing is recognised as *a fox*, not as *that file*. It trains in a few minutes on two CPU
cores and is cached under the concepts' cache directory (``classifier-<hash>.pt``).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from gouache.mini.concepts.atlas import Concept

__all__ = ["INPUT", "ConceptClassifier", "style_images", "train_classifier"]

INPUT = 32  # pixels the classifier sees
BATCH = 96
BASE = 64  # pixels of each style's drawing


def _fluent(concept: Concept) -> np.ndarray:
    from gouache.mini.concepts.drawing import render_concept

    return np.asarray(render_concept(concept, BASE))


def style_images(concepts: Sequence[Concept], sources: dict[str, Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, 4, 64, 64] RGBA drawings (0-1) and their concept indices: each concept in Fluent, and in Noto and
    Twemoji where those have it (``sources``: the unpacked ``noto`` and ``twemoji`` packages)."""
    tables = {}
    for key, folder in (("noto", "google"), ("twemoji", "twitter")):
        entries = json.loads((sources[key] / "emoji.json").read_text())
        table: dict[str, Path] = {}
        for e in entries:
            path = sources[key] / "img" / folder / "64" / e["image"]
            for code in (e.get("unified"), e.get("non_qualified")):
                if code:
                    table[code.lower()] = path
        tables[key] = table
    images, labels = [], []
    for i, c in enumerate(concepts):
        images.append(_fluent(c))
        labels.append(i)
        for table in tables.values():
            path = table.get(c.hexcode) or table.get(c.hexcode.replace("-fe0f", ""))
            if path is not None and path.exists():
                img = Image.open(path).convert("RGBA").resize((BASE, BASE), Image.Resampling.LANCZOS)
                images.append(np.asarray(img))
                labels.append(i)
    stack = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return stack, torch.tensor(labels)


def augment(drawings: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """[B, 3, INPUT, INPUT]: each RGBA drawing scaled (35-100 % of the frame), placed anywhere it fits, on a
    random solid or two-tone background, with brightness and per-channel colour jitter."""
    b = drawings.shape[0]
    scale = 0.35 + 0.65 * torch.rand(b, generator=gen)
    room = 1 - scale
    tx = (torch.rand(b, generator=gen) * 2 - 1) * room
    ty = (torch.rand(b, generator=gen) * 2 - 1) * room
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = 1 / scale
    theta[:, 1, 1] = 1 / scale
    theta[:, 0, 2] = -tx / scale
    theta[:, 1, 2] = -ty / scale
    grid = F.affine_grid(theta, [b, 4, INPUT, INPUT], align_corners=False)
    fg = F.grid_sample(drawings, grid, align_corners=False, padding_mode="zeros")
    top = torch.rand(b, 3, 1, 1, generator=gen)
    bottom = torch.where(
        torch.rand(b, 1, 1, 1, generator=gen) < 0.5, top, torch.rand(b, 3, 1, 1, generator=gen)
    )
    cut = torch.rand(b, 1, 1, 1, generator=gen)
    rows = (torch.arange(INPUT).float() / INPUT).view(1, 1, INPUT, 1)
    bg = torch.where(rows < cut, top, bottom).expand(b, 3, INPUT, INPUT)
    alpha = fg[:, 3:4]
    out = fg[:, :3] * alpha + bg * (1 - alpha)  # grid_sample of premultiplied-looking RGBA: close enough
    gain = 1 + (torch.rand(b, 3, 1, 1, generator=gen) - 0.5) * 0.3
    bright = 1 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.4
    return (out * gain * bright).clamp(0, 1)


def _network(classes: int) -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(3, 32), nn.MaxPool2d(2),
        *block(32, 64), nn.MaxPool2d(2),
        *block(64, 128), nn.MaxPool2d(2),
        *block(128, 192), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(192, classes),
    )  # fmt: skip


class ConceptClassifier:
    """Top-k concept ids of pictures."""

    def __init__(self, ids: list[str], net: nn.Module) -> None:
        self.ids = ids
        self.net = net.eval()

    @torch.no_grad()
    def top(self, images: Sequence[Image.Image], k: int = 5) -> list[list[str]]:
        batch = torch.stack(
            [
                torch.from_numpy(
                    np.asarray(im.convert("RGB").resize((INPUT, INPUT), Image.Resampling.BOX), np.float32)
                    / 255
                ).permute(2, 0, 1)
                for im in images
            ]
        )
        logits = self.net(batch)
        return [[self.ids[int(j)] for j in row] for row in logits.topk(k, dim=1).indices]


def train_classifier(
    concepts: Sequence[Concept],
    sources: dict[str, Path],
    cache: Path,
    steps: int = 2000,
    log: Callable[[str], Any] = print,
) -> tuple[ConceptClassifier, dict[str, Any]]:
    """The classifier for ``concepts``, trained (once, cached in ``cache``) for ``steps`` batches of
    :data:`BATCH`. Returns it and its training record (seconds, loss, accuracy on augmented drawings)."""
    ids = [c.id for c in concepts]
    key = hashlib.sha256(json.dumps([ids, steps, INPUT]).encode()).hexdigest()[:12]
    path = cache / f"classifier-{key}.pt"
    net = _network(len(ids))
    if path.exists():
        saved = torch.load(path, weights_only=False)
        net.load_state_dict(saved["state"])
        return ConceptClassifier(ids, net), saved["record"]
    torch.manual_seed(0)
    drawings, labels = style_images(concepts, sources)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    started = time.perf_counter()
    net.train()
    loss_value = 0.0
    for step in range(steps):
        idx = torch.randint(len(labels), (BATCH,), generator=gen)
        x = augment(drawings[idx], gen)
        loss = F.cross_entropy(net(x), labels[idx], label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        loss_value = 0.98 * loss_value + 0.02 * float(loss.detach()) if step else float(loss.detach())
        if step % 250 == 0 or step == steps - 1:
            seconds = time.perf_counter() - started
            log(f"classifier step {step}/{steps} loss {loss_value:.3f} ({seconds:.0f} s)")
    net.eval()
    record: dict[str, Any] = {"seconds": time.perf_counter() - started, "loss": loss_value, "steps": steps,
                              "drawings": len(labels), "classes": len(ids)}  # fmt: skip
    with torch.no_grad():
        x = augment(drawings, torch.Generator().manual_seed(1))
        pred = net(x).argmax(1)
        record["augmented_top1"] = float((pred == labels).float().mean())
    buf = io.BytesIO()
    torch.save({"state": net.state_dict(), "record": record}, buf)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return ConceptClassifier(ids, net), record
