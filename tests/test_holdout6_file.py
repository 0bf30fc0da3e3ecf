"""Validate the shape of the sixth held-out set (tests/corpus/holdout6.jsonl).

The set was written without looking at the rules, the training examples, the other corpora or the
shared corpus, so it measures how the triage generalises to texts it was never built from. It must
never be used to tune anything. This test checks only its shape and coverage; it never runs bugbar.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from tests.corpus_schema import LEVELS, SEED_RANGES, load_jsonl

HOLDOUT = Path(__file__).parent / "corpus" / "holdout6.jsonl"

KEYS = {"id", "title", "body", "labels", "expect", "severity", "kind", "lang", "note"}
THREAT_KINDS = {"report", "label-only"}
NON_THREAT_KINDS = {"confuser", "traditional-security", "ordinary", "feature-request"}
KINDS = THREAT_KINDS | NON_THREAT_KINDS
ID_RE = re.compile(r"h6-\d{3}")
# A label-only item carries no evidence in its text; a long body would make it a normal report.
LABEL_ONLY_MAX_BODY = 120

ITEMS: list[dict[str, Any]] = load_jsonl(HOLDOUT)


def _in_range(cat: str, level: object) -> bool:
    """Whether ``level`` is a severity level inside the seed range of ``cat``."""
    if level not in LEVELS:
        return False
    lo, hi = SEED_RANGES[cat]
    return LEVELS.index(lo) <= LEVELS.index(str(level)) <= LEVELS.index(hi)


def test_every_line_has_exactly_the_schema() -> None:
    assert ITEMS, "holdout6.jsonl is empty"
    for it in ITEMS:
        assert set(it) == KEYS, (it.get("id"), sorted(set(it) ^ KEYS))
        assert isinstance(it["title"], str) and it["title"].strip(), it["id"]
        assert isinstance(it["body"], str), it["id"]
        assert isinstance(it["labels"], list), it["id"]
        assert all(isinstance(lb, str) and lb.strip() for lb in it["labels"]), it["id"]
        assert isinstance(it["expect"], list), it["id"]
        assert len(it["expect"]) <= 1, it["id"]  # one primary category or none
        assert it["kind"] in KINDS, (it["id"], it["kind"])
        assert it["lang"] == "en", it["id"]
        assert isinstance(it["note"], str) and it["note"].strip(), it["id"]


def test_ids_unique_and_numbered() -> None:
    ids = [it["id"] for it in ITEMS]
    assert len(set(ids)) == len(ids), [i for i, n in Counter(ids).items() if n > 1]
    bad = [i for i in ids if not (isinstance(i, str) and ID_RE.fullmatch(i))]
    assert not bad, bad


def test_expect_uses_only_the_nine_category_ids() -> None:
    assert len(SEED_RANGES) == 9
    for it in ITEMS:
        for cat in it["expect"]:
            assert cat in SEED_RANGES, (it["id"], cat)


def test_size_and_coverage() -> None:
    assert len(ITEMS) >= 150
    reports = [it for it in ITEMS if it["kind"] == "report"]
    per_cat = Counter(it["expect"][0] for it in reports)
    for cat in SEED_RANGES:
        assert per_cat[cat] >= 8, (cat, per_cat[cat])
    non_threats = [it for it in ITEMS if not it["expect"] and it["kind"] in NON_THREAT_KINDS]
    assert len(non_threats) >= 70
    assert len([it for it in ITEMS if it["kind"] == "label-only"]) >= 5
    assert {it["kind"] for it in ITEMS} == KINDS


def test_kind_agrees_with_expect() -> None:
    for it in ITEMS:
        if it["kind"] == "report":
            assert it["expect"], it["id"]
        elif it["kind"] in NON_THREAT_KINDS:
            assert it["expect"] == [], it["id"]


def test_severity_inside_seed_range_for_threats_and_null_otherwise() -> None:
    for it in ITEMS:
        if it["expect"]:
            assert _in_range(it["expect"][0], it["severity"]), (it["id"], it["severity"])
        else:
            assert it["severity"] is None, it["id"]


def test_label_only_items_rest_on_labels() -> None:
    label_only = [it for it in ITEMS if it["kind"] == "label-only"]
    for it in label_only:
        assert it["labels"], it["id"]
        assert len(it["body"]) <= LABEL_ONLY_MAX_BODY, it["id"]
        if it["expect"]:
            # Labels alone are weak evidence: the floor of the category's range.
            assert it["severity"] == SEED_RANGES[it["expect"][0]][0], it["id"]
    # Both sides of the label rule: a category-naming label, and generic labels alone.
    assert any(it["expect"] for it in label_only)
    assert any(not it["expect"] for it in label_only)


def test_threats_and_non_threats_are_shuffled() -> None:
    # A set sorted by kind would let a reader guess answers from position.
    first, second = ITEMS[: len(ITEMS) // 2], ITEMS[len(ITEMS) // 2 :]
    for half in (first, second):
        assert any(it["expect"] for it in half)
        assert any(not it["expect"] for it in half)


def test_titles_are_distinct() -> None:
    titles = Counter(it["title"].strip().lower() for it in ITEMS)
    assert not [t for t, n in titles.items() if n > 1]
