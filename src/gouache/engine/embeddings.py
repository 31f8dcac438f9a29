"""A least-recently-used cache of prompt embeddings, so a repeated prompt skips its text encoder.

Keyed by model (name and path), prompt, negative prompt and whether guidance needs the unconditional
embedding. Each prompt is encoded alone (a batch concatenates the cached tensors), with the pipeline's own
``encode_prompt``: the tensors, hence the pixels, are exactly what the pipeline would compute itself."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import Any

import torch

Key = tuple[str, str, str, str | None, bool, int | None]


def uses_guidance(pipeline: Any, guidance: float) -> bool:
    """What the SD pipeline's ``do_classifier_free_guidance`` will say for this guidance scale."""
    unet = getattr(pipeline, "unet", None)
    time_cond = getattr(getattr(unet, "config", None), "time_cond_proj_dim", None)
    return guidance > 1 and time_cond is None


class PromptEmbeddings:
    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Key, tuple[torch.Tensor, torch.Tensor | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        model_name: str,
        model_path: str,
        pipeline: Any,
        prompt: str,
        negative: str | None,
        guidance: bool,
        seed: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(prompt_embeds, negative_prompt_embeds)`` of one prompt (batch of 1); the negative is None
        without guidance. ``seed`` matters only to a text encoder that lays out a scene per seed
        (gouache-mini's ``layout_seed``); for every other model it is ignored and not part of the key."""
        seeded_layout = getattr(getattr(pipeline, "text_encoder", None), "layout_seed", None)
        if seeded_layout is None:
            seed = None
        key: Key = (model_name, model_path, prompt, negative, guidance, seed)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return cached
            self.misses += 1
        with (
            torch.inference_mode(),
            seeded_layout(seed) if seeded_layout is not None else contextlib.nullcontext(),
        ):
            positive, negative_embeds = pipeline.encode_prompt(
                prompt, _device(pipeline), 1, guidance, negative_prompt=negative
            )
        value = (positive, negative_embeds if guidance else None)
        if self.size > 0:
            with self._lock:
                self._entries[key] = value
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _device(pipeline: Any) -> torch.device:
    """Where the pipeline computes (its accelerator when offloaded): the embeddings are made there."""
    return torch.device(getattr(pipeline, "_execution_device", None) or "cpu")
