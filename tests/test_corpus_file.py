"""Validate the project's own labelled corpus (bot/data/train_labelled.jsonl).

Checks the file's shape only; scoring the classifier against it is a separate test.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "bot" / "data" / "train_labelled.jsonl"

# The nine fixed category ids (shared/DESIGN.md §1) and their seed severity ranges.
SEED_RANGES = {
    "data-poisoning": ("important", "critical"),
    "model-stealing": ("important", "critical"),
    "model-inversion": ("critical", "critical"),
    "physical-adversarial-example": ("critical", "critical"),
    "ml-supply-chain": ("critical", "critical"),
    "malicious-ml-provider": ("critical", "critical"),
    "neural-net-reprogramming": ("important", "critical"),
    "adversarial-perturbation": ("important", "critical"),
    "membership-inference": ("moderate", "critical"),
}
LEVELS = ["low", "moderate", "important", "critical"]
KINDS = {"report", "confuser", "ordinary", "feature-request", "traditional-security"}
KEYS = {"id", "title", "body", "labels", "expect", "severity", "kind", "note"}


def _load() -> list[dict]:
    items = []
    with CORPUS.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            assert line.strip(), f"line {n} is blank"
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:  # pragma: no cover - failure path
                pytest.fail(f"line {n} does not parse: {exc}")
    return items


ITEMS = _load()


def test_every_line_has_the_schema() -> None:
    for it in ITEMS:
        assert set(it) == KEYS, it.get("id")
        assert isinstance(it["title"], str) and it["title"].strip(), it["id"]
        assert isinstance(it["body"], str), it["id"]
        assert isinstance(it["labels"], list), it["id"]
        assert all(isinstance(lb, str) for lb in it["labels"]), it["id"]
        assert isinstance(it["expect"], list), it["id"]
        assert it["kind"] in KINDS, it["id"]


def test_ids_unique() -> None:
    dupes = [i for i, c in Counter(it["id"] for it in ITEMS).items() if c > 1]
    assert not dupes


def test_expect_ids_are_the_nine_categories() -> None:
    for it in ITEMS:
        for cat in it["expect"]:
            assert cat in SEED_RANGES, (it["id"], cat)
        assert len(set(it["expect"])) == len(it["expect"]), it["id"]


def test_nine_ids_match_the_package() -> None:
    from bot.decide.model import CATEGORY_IDS

    assert set(CATEGORY_IDS) == set(SEED_RANGES)


def test_size_and_coverage() -> None:
    assert len(ITEMS) >= 150
    per_cat = Counter(cat for it in ITEMS for cat in it["expect"])
    for cat in SEED_RANGES:
        assert per_cat[cat] >= 5, (cat, per_cat[cat])
    assert {it["kind"] for it in ITEMS} == KINDS


def test_severity_agrees_with_expect() -> None:
    for it in ITEMS:
        if not it["expect"]:
            assert it["severity"] is None, it["id"]
            assert it["kind"] != "report", it["id"]
            continue
        assert it["kind"] == "report", it["id"]
        lo, hi = SEED_RANGES[it["expect"][0]]
        assert it["severity"] in LEVELS, it["id"]
        assert LEVELS.index(lo) <= LEVELS.index(it["severity"]) <= LEVELS.index(hi), it["id"]
