"""Accuracy floor on the project's own labelled corpus (bot/data/train_labelled.jsonl)."""

from __future__ import annotations

from pathlib import Path

from bot.cli import evaluate
from bot.decide.classify import Classifier

CORPUS = Path(__file__).resolve().parents[1] / "bot" / "data" / "train_labelled.jsonl"

# Floors sit a little under the measured numbers (README "Triage quality"): a rule change
# that loses real accuracy fails here, while ordinary tuning has room to move.
MIN_ACCURACY = 0.85
MAX_FP_RATE = 0.05


def test_own_corpus_floor(classifier: Classifier) -> None:
    result = evaluate(classifier, [CORPUS])
    assert result.reports >= 70 and result.negatives >= 90
    report = (f"accuracy {result.accuracy:.3f}, fp rate {result.fp_rate:.3f}; "
              f"missed {result.missed_items[:5]}; fps {result.fp_items[:5]}")
    assert result.accuracy >= MIN_ACCURACY, report
    assert result.fp_rate <= MAX_FP_RATE, report


def test_every_category_recalled_at_least_once(classifier: Classifier) -> None:
    result = evaluate(classifier, [CORPUS])
    for category, m in result.per_category().items():
        assert m["tp"] >= 1, category
