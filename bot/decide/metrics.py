"""Triage-quality metrics over a labelled corpus: accuracy, false positives, per-category F1."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.decide.model import CATEGORY_IDS, Decision

NONE = "none"


@dataclass(frozen=True)
class LabelledItem:
    """One corpus record: expected categories (empty = not a threat) and its role."""

    id: str
    title: str
    expected: tuple[str, ...]
    role: str  # report | none | topical
    severity: str | None = None


@dataclass
class EvalResult:
    """Everything ``bugbar eval`` reports."""

    reports: int = 0
    reports_correct: int = 0
    negatives: int = 0
    false_positives: int = 0
    topical: int = 0
    topical_flagged: int = 0
    topical_correct: int = 0
    severity_total: int = 0
    severity_correct: int = 0
    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    fp_items: list[dict[str, Any]] = field(default_factory=list)
    missed_items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Share of threat reports whose top category is one of the expected ones."""
        return self.reports_correct / self.reports if self.reports else 0.0

    @property
    def fp_rate(self) -> float:
        """Share of non-threat issues given any threat category."""
        return self.false_positives / self.negatives if self.negatives else 0.0

    def per_category(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support per category (top prediction vs labels)."""
        out = {}
        for cat in CATEGORY_IDS:
            tp, fp, fn = self.tp[cat], self.fp[cat], self.fn[cat]
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out[cat] = {"precision": precision, "recall": recall, "f1": f1,
                        "support": tp + fn, "tp": tp, "fp": fp, "fn": fn}
        return out

    def add(self, item: LabelledItem, decision: Decision) -> None:
        """Score one decision against its labelled item."""
        top = decision.top.category if decision.top else None
        expected = item.expected
        if item.role == "topical":
            self.topical += 1
            if top:
                self.topical_flagged += 1
                self.topical_correct += top in expected
            return
        if item.role == "report":
            self.reports += 1
            if top in expected:
                self.reports_correct += 1
            else:
                self.missed_items.append({"id": item.id, "title": item.title[:100],
                                          "expected": list(expected), "got": top})
            if item.severity and top in expected and decision.top:
                self.severity_total += 1
                self.severity_correct += decision.top.severity.label == item.severity
        else:
            self.negatives += 1
            if top:
                self.false_positives += 1
                self.fp_items.append({"id": item.id, "title": item.title[:100], "got": top,
                                      "evidence": list(decision.top.evidence[:5])
                                      if decision.top else []})
        if top and top in expected:
            self.tp[top] += 1
        elif top:
            self.fp[top] += 1
        if expected and top not in expected:
            self.fn[expected[0]] += 1
        row = top if top in expected else (expected[0] if expected else NONE)
        self.confusion[(row or NONE, top or NONE)] += 1

    def to_json(self) -> dict[str, Any]:
        """The JSON form of the result."""
        return {
            "reports": self.reports,
            "accuracy": round(self.accuracy, 4),
            "negatives": self.negatives,
            "false_positives": self.false_positives,
            "fp_rate": round(self.fp_rate, 4),
            "topical": {"items": self.topical, "flagged": self.topical_flagged,
                        "flagged_right_category": self.topical_correct},
            "severity": {"checked": self.severity_total, "correct": self.severity_correct},
            "per_category": {k: {m: round(v, 4) if isinstance(v, float) else v
                                 for m, v in d.items()}
                             for k, d in self.per_category().items()},
            "confusion": [{"expected": e, "predicted": p, "count": n}
                          for (e, p), n in sorted(self.confusion.items())],
            "false_positive_items": self.fp_items,
            "missed_reports": self.missed_items,
        }
