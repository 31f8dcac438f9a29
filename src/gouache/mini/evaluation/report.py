"""An evaluation's report: per-metric accuracy (with counts), a per-kind breakdown, every scene's verdicts.

Written as JSON (``gouache eval --out``) and printed as a Rich table, one row per scene kind.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from gouache.mini.evaluation.scoring import SceneResult
from gouache.mini.scenes.vocabulary import KINDS

if TYPE_CHECKING:
    from rich.table import Table

METRICS = ("colour", "shape", "relation", "count", "position", "background", "text", "determinism")


@dataclass
class MetricScore:
    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None

    def add(self, ok: bool) -> None:
        self.correct += int(ok)
        self.total += 1

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "correct": self.correct, "total": self.total}


@dataclass
class EvalReport:
    """Per-metric accuracy (with counts), a per-kind breakdown and every scene's verdicts."""

    n: int
    seed: int
    size: int
    model: str | None = None
    metrics: dict[str, MetricScore] = field(default_factory=dict)
    by_kind: dict[str, dict[str, MetricScore]] = field(default_factory=dict)
    text_cer: float | None = None
    seconds: float = 0.0
    scenes: list[SceneResult] = field(default_factory=list)

    def accuracy(self, metric: str, kind: str | None = None) -> float | None:
        table = self.metrics if kind is None else self.by_kind.get(kind, {})
        score = table.get(metric)
        return score.accuracy if score else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "n": self.n,
            "seed": self.seed,
            "size": self.size,
            "seconds": round(self.seconds, 2),
            "metrics": {m: s.to_dict() for m, s in self.metrics.items()},
            "text_cer": self.text_cer,
            "by_kind": {k: {m: s.to_dict() for m, s in v.items()} for k, v in self.by_kind.items()},
            "scenes": [asdict(s) for s in self.scenes],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=float)


def aggregate(report: EvalReport) -> None:
    report.metrics = {}
    report.by_kind = {}
    cers = []
    for scene in report.scenes:
        for metric, outcomes in scene.trials.items():
            for ok in outcomes:
                report.metrics.setdefault(metric, MetricScore()).add(ok)
                report.by_kind.setdefault(scene.kind, {}).setdefault(metric, MetricScore()).add(ok)
        if scene.text_cer is not None:
            cers.append(scene.text_cer)
    report.text_cer = sum(cers) / len(cers) if cers else None
    report.metrics = {m: report.metrics[m] for m in METRICS if m in report.metrics}


def _fmt(score: MetricScore | None) -> str:
    if score is None or not score.total:
        return "-"
    return f"{100 * (score.accuracy or 0.0):.0f}% ({score.correct}/{score.total})"


def report_table(report: EvalReport) -> Table:
    """The report as a Rich table: one row per kind and an overall row, one column per metric."""
    from rich.table import Table

    title = f"gouache eval: {report.model or 'images'}, n={report.n}, seed={report.seed}"
    table = Table(title=title)
    table.add_column("kind")
    metrics = [m for m in METRICS if m in report.metrics]
    for metric in metrics:
        table.add_column(metric, justify="right")
    table.add_column("text CER", justify="right")
    for kind in KINDS:
        if kind in report.by_kind:
            row = report.by_kind[kind]
            cers = [s.text_cer for s in report.scenes if s.kind == kind and s.text_cer is not None]
            cer = f"{sum(cers) / len(cers):.2f}" if cers else "-"
            table.add_row(kind, *(_fmt(row.get(m)) for m in metrics), cer)
    overall_cer = "-" if report.text_cer is None else f"{report.text_cer:.2f}"
    table.add_row("all", *(_fmt(report.metrics.get(m)) for m in metrics), overall_cer, style="bold")
    return table
