"""The cost calculator: hosted-equivalent dollars from a price table (TOML, overridable), local dollars from
CPU time and energy. Pure functions of their inputs, so `gouache cost estimate` answers before spending."""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gouache.service.usage import PARTIAL_IMAGE_TOKENS

#: Dollars are rounded to 1e-8: exact for token prices in cents per million tokens, and they print cleanly.
DECIMALS = 8


class PriceTableError(ValueError):
    """The price table file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class PriceTable:
    """Per-image prices by quality at listed sizes, and per-million-token prices."""

    images: dict[str, list[tuple[int, float]]]  # quality -> [(pixels, dollars)], ascending pixels
    tokens: dict[str, float]
    currency: str = "usd"
    #: The Batch API's price as a share of the interactive price (OpenAI's batches cost half).
    batch_discount: float = 0.5

    @classmethod
    def load(cls, override: Path | None = None) -> PriceTable:
        shipped = resources.files("gouache.service.policies").joinpath("prices.toml").read_text()
        data = tomllib.loads(shipped)
        if override is not None:
            try:
                extra = tomllib.loads(Path(override).read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise PriceTableError(f"Cannot read the price table {override}: {exc}") from exc
            data = _merge(data, extra)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriceTable:
        images: dict[str, list[tuple[int, float]]] = {}
        for quality, sizes in (data.get("images") or {}).items():
            points = []
            for size, price in sizes.items():
                try:
                    width, height = (int(v) for v in str(size).lower().split("x"))
                    points.append((width * height, float(price)))
                except (TypeError, ValueError) as exc:
                    raise PriceTableError(f"Bad price entry images.{quality}.{size!r} = {price!r}") from exc
            if points:
                images[quality] = sorted(points)
        if not images:
            raise PriceTableError("The price table lists no image prices.")
        tokens = {k: float(v) for k, v in (data.get("tokens") or {}).items()}
        try:
            batch_discount = float(data.get("batch_discount", 0.5))
        except (TypeError, ValueError) as exc:
            raise PriceTableError(f"Bad batch_discount {data.get('batch_discount')!r}") from exc
        if not 0 <= batch_discount <= 1:
            raise PriceTableError(f"batch_discount must be within 0..1, got {batch_discount}")
        return cls(
            images=images,
            tokens=tokens,
            currency=str(data.get("currency", "usd")),
            batch_discount=batch_discount,
        )

    def image_price(self, quality: str, width: int, height: int) -> float:
        """One image at this quality and size."""
        points = self.images.get(quality)
        if points is None:
            # A tier the table does not list (xhigh, max on some catalog models): priced as the dearest one.
            points = max(self.images.values(), key=lambda p: p[0][1])
        pixels = width * height
        if pixels <= points[0][0]:
            return points[0][1]
        for (p0, c0), (p1, c1) in itertools.pairwise(points):
            if pixels <= p1:
                return c0 + (c1 - c0) * (pixels - p0) / (p1 - p0)
        last_pixels, last_price = points[-1]
        return last_price * pixels / last_pixels

    def per_token(self, kind: str) -> float:
        """Dollars per token of a kind (`text_input`, `text_output`, `image_input`, `image_output`)."""
        return self.tokens.get(kind, 0.0) / 1_000_000


@dataclass(frozen=True)
class LocalRates:
    """What running here costs: CPU time at a $/CPU-hour rate plus the machine's energy over wall time."""

    cpu_hour_usd: float
    watts: float
    kwh_usd: float

    def cost(self, wall_s: float, cpu_s: float) -> float:
        energy_kwh = self.watts * wall_s / 3600 / 1000
        return round(cpu_s / 3600 * self.cpu_hour_usd + energy_kwh * self.kwh_usd, DECIMALS)


def images_cost(
    prices: PriceTable,
    quality: str,
    width: int,
    height: int,
    n: int,
    input_image_tokens: int = 0,
    partial_images: int = 0,
) -> float:
    """Hosted-equivalent dollars of one Images API request (known before any compute)."""
    cost = prices.image_price(quality, width, height) * n
    cost += input_image_tokens * prices.per_token("image_input")
    cost += partial_images * PARTIAL_IMAGE_TOKENS * prices.per_token("image_output")
    return round(cost, DECIMALS)


def text_cost(prices: PriceTable, input_tokens: int, output_tokens: int) -> float:
    """Hosted-equivalent dollars of a Responses turn's text (the mainline model's tokens)."""
    return round(
        input_tokens * prices.per_token("text_input") + output_tokens * prices.per_token("text_output"),
        DECIMALS,
    )


def format_usd(value: float) -> str:
    """A decimal string without exponent or float noise, e.g. `0.02`, `0.026667`, `0`."""
    text = f"{round(value, DECIMALS):.{DECIMALS}f}".rstrip("0").rstrip(".")
    return text or "0"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class EstimateLine:
    item: str
    quantity: int
    unit_usd: float

    @property
    def total_usd(self) -> float:
        return round(self.quantity * self.unit_usd, DECIMALS)


@dataclass(frozen=True)
class Estimate:
    lines: tuple[EstimateLine, ...]

    @property
    def total_usd(self) -> float:
        return round(sum(line.total_usd for line in self.lines), DECIMALS)


def parse_size(size: str) -> tuple[int, int]:
    """`WxH` (or `auto`, priced as 1024x1024) for estimates; any positive edges are accepted."""
    if size == "auto":
        return 1024, 1024
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"size must be WIDTHxHEIGHT or auto, not {size!r}") from exc
    if width <= 0 or height <= 0:
        raise ValueError(f"size must have positive edges, not {size!r}")
    return width, height


def estimate(
    prices: PriceTable,
    size: str,
    quality: str,
    n: int = 1,
    turns: int = 0,
    input_tokens: int = 0,
    output_tokens: int = 0,
) -> Estimate:
    """What a request (`turns=0`) or a Responses conversation of `turns` turns, each making `n` images with
    `input_tokens`/`output_tokens` of text, would cost on the hosted API. `quality=auto` is priced as high,
    the most it can resolve to."""
    width, height = parse_size(size)
    priced = "high" if quality == "auto" else quality
    if priced not in prices.images:
        raise ValueError(f"quality must be one of {', '.join([*prices.images, 'auto'])}, not {quality!r}")
    images = n * max(turns, 1)
    lines = [
        EstimateLine(f"images {width}x{height} {priced}", images, prices.image_price(priced, width, height))
    ]
    if turns:
        lines.append(EstimateLine("text input tokens", input_tokens * turns, prices.per_token("text_input")))
        lines.append(
            EstimateLine("text output tokens", output_tokens * turns, prices.per_token("text_output"))
        )
    return Estimate(tuple(lines))
