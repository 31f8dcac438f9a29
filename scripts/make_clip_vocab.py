"""Derive CLIP's tokenizer files (``vocab.json`` + ``merges.txt``, as in every diffusers release of SD 1.x,
SD 2.x and SDXL) from CLIP's BPE vocabulary and write them, gzipped, into the package
(``src/gouache/engine/configs/clip-vocab/``), where single-file checkpoints find them.

    .venv/bin/python scripts/make_clip_vocab.py /opt/pypi/files/open_clip_torch-3.3.0-py3-none-any.whl

The source is ``bpe_simple_vocab_16e6.txt.gz`` (OpenAI's CLIP, MIT), read from inside the open_clip wheel
(or given as the .txt.gz itself); open_clip is not installed. The derivation is CLIP's own
(``clip/simple_tokenizer.py``): the merges are lines 1 to 48894 of the file; the vocabulary is the 256
byte-level characters, the same with ``</w>``, one token per merge, then ``<|startoftext|>`` and
``<|endoftext|>`` (49408 tokens). The gzip files carry no timestamp, so reruns give the same bytes."""

from __future__ import annotations

import gzip
import io
import json
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src/gouache/engine/configs/clip-vocab"
MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible map from bytes to printable characters."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def derive(bpe_gz: bytes) -> tuple[dict[str, int], list[str]]:
    lines = gzip.decompress(bpe_gz).decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(merge.split()) for merge in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(vocab)}, merges


def read_source(path: Path) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(MEMBER)
    return path.read_bytes()


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as fh:
        fh.write(data)
    return buf.getvalue()


def main(source: str) -> None:
    encoder, merges = derive(read_source(Path(source)))
    assert len(encoder) == 49408 and len(merges) == 48894
    OUT.mkdir(parents=True, exist_ok=True)
    vocab_json = json.dumps(encoder, ensure_ascii=False, separators=(",", ":")).encode()
    merges_txt = ("#version: 0.2\n" + "\n".join(merges) + "\n").encode()
    (OUT / "vocab.json.gz").write_bytes(_gzip(vocab_json))
    (OUT / "merges.txt.gz").write_bytes(_gzip(merges_txt))
    print(f"wrote {OUT}/vocab.json.gz and merges.txt.gz ({len(encoder)} tokens, {len(merges)} merges)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/opt/pypi/files/open_clip_torch-3.3.0-py3-none-any.whl")
