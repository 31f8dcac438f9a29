"""What the finishing pipeline is asked for, beside the format: plain data on the engine boundary."""

from __future__ import annotations

from dataclasses import dataclass

#: Raster formats Pillow encodes, and the two made from a raster (an animation, a vector tracing).
FORMATS = ("png", "jpeg", "webp", "gif", "svg")


@dataclass(frozen=True)
class Animation:
    """An animated GIF: `frames` frames (the first is the rendered image) of `duration_ms` each, looping."""

    frames: int = 9
    duration_ms: int = 200
    #: How far each frame moves from the one before (image-to-image strength).
    motion: float = 0.25


@dataclass(frozen=True)
class GenerationParameters:
    """What made the image, written into the file when metadata is on (A1111 / InvokeAI readers)."""

    prompt: str
    negative_prompt: str
    steps: int
    sampler: str
    cfg_scale: float
    seed: int
    width: int
    height: int
    model: str


@dataclass(frozen=True)
class ProvenanceKeys:
    """The C2PA signer: the leaf certificate chain (leaf first, PEM) and its private key (PEM)."""

    cert_chain: bytes
    private_key: bytes

    def __repr__(self) -> str:  # the key is never logged
        return "ProvenanceKeys(<redacted>)"


@dataclass(frozen=True)
class OutputOptions:
    """``background``: "opaque" or "transparent". ``metadata``: the generation parameters to write into
    the file (None: off; each image's own seed replaces ``seed``). ``provenance``: sign a C2PA manifest with
    these keys (None: off). ``animation``: for gif."""

    background: str = "opaque"
    animation: Animation | None = None
    metadata: GenerationParameters | None = None
    provenance: ProvenanceKeys | None = None

    def cache_fields(self) -> dict[str, object]:
        """What changes the bytes, for the result cache's key (never the key itself)."""
        anim = self.animation
        return {
            "background": self.background,
            "animation": None if anim is None else [anim.frames, anim.duration_ms, anim.motion],
            "metadata": self.metadata is not None,
            "signed": self.provenance is not None,
        }
