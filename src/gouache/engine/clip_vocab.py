"""CLIP's tokenizer without a model's tokenizer files: the BPE vocabulary ships with the package.

``configs/clip-vocab/`` holds ``vocab.json.gz`` + ``merges.txt.gz`` (0.5 MB), derived from OpenAI CLIP's
``bpe_simple_vocab_16e6.txt.gz`` exactly as CLIP's tokenizer reads it (``scripts/make_clip_vocab.py``; MIT,
see the folder's NOTICE). They are the files of every diffusers release of SD 1.x, SD 2.x and SDXL, so a
single-file checkpoint's CLIP tokenizers load offline with no ``config`` folder
(:mod:`gouache.engine.single_file`); each family's ``tokenizer_config.json`` (shipped beside its configs)
gives the pad token and the maximum length."""

from __future__ import annotations

import gzip
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

#: The folder of `gouache/engine/configs` that holds the vocabulary.
CLIP_VOCAB = "clip-vocab"


def clip_vocab_dir() -> Path:
    return Path(str(resources.files("gouache.engine").joinpath("configs", CLIP_VOCAB)))


def shipped_clip_tokenizer(settings: Path | None = None) -> Any:
    """A `CLIPTokenizer` on the shipped vocabulary, with the settings (pad token, maximum length) of
    `settings/tokenizer_config.json` when given: the tokenizer of a diffusers release, without its files.
    (The files are written to a temporary folder because transformers reads tokenizers from files.)"""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="gouache-clip-") as tmp:
        for file in ("vocab.json", "merges.txt"):
            (Path(tmp) / file).write_bytes(gzip.decompress((clip_vocab_dir() / f"{file}.gz").read_bytes()))
        if settings is not None and (settings / "tokenizer_config.json").is_file():
            shutil.copyfile(settings / "tokenizer_config.json", Path(tmp) / "tokenizer_config.json")
        return CLIPTokenizer.from_pretrained(tmp, local_files_only=True)
