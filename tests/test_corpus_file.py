"""Validate the project's own labelled corpus (bot/data/train_labelled.jsonl).

Checks the file's shape only; scoring the classifier against it is a separate test.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.corpus_schema import LEVELS, SEED_RANGES, load_jsonl

CORPUS = Path(__file__).resolve().parents[1] / "bot" / "data" / "train_labelled.jsonl"

KINDS = {"report", "confuser", "ordinary", "feature-request", "traditional-security"}
KEYS = {"id", "title", "body", "labels", "expect", "severity", "kind", "note"}


ITEMS = load_jsonl(CORPUS)


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
