"""Shape checks for bot/data/train_plain*.jsonl, the semantic model's training examples.

The file is hand-written data; these checks catch the mistakes that would silently teach the
model wrong things: a typo in a category id, a severity outside its category's seed range,
a threat without a severity, duplicated ids, or a category with too few examples to learn from.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from bot.decide.rules import load_rules
from tests.corpus_schema import LEVELS, SEED_RANGES, load_jsonl

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "bot" / "data"
FILES = sorted(DATA_DIR.glob("train_plain*.jsonl"))
KINDS = {"report", "confuser", "traditional-security", "ordinary", "feature-request", "label-only"}
THREAT_KINDS = {"report", "label-only"}
KEYS = {"id", "title", "body", "labels", "expect", "severity", "kind", "lang", "note"}


def _seed_ranges() -> dict[str, tuple[str, str]]:
    # The shipped rule set is the single source of the seed ranges (bot/rules/*.yml).
    seed = load_rules().settings.seed_ranges
    return {cat: (low.name.lower(), high.name.lower()) for cat, (low, high) in seed.items()}


ITEMS = [item for path in FILES for item in load_jsonl(path)]
RANGES = _seed_ranges()


def test_seed_ranges_are_the_nine_categories() -> None:
    # Guards the test itself: if settings.yml lost a category, the range checks would be vacuous.
    assert len(RANGES) == 9
    assert RANGES == SEED_RANGES  # the shipped rules keep the bug bar's table


def test_every_line_has_the_schema() -> None:
    for item in ITEMS:
        assert set(item) == KEYS, item.get("id")
        assert isinstance(item["title"], str) and item["title"].strip(), item["id"]
        assert isinstance(item["body"], str), item["id"]
        assert isinstance(item["labels"], list), item["id"]
        assert all(isinstance(label, str) for label in item["labels"]), item["id"]
        assert item["kind"] in KINDS, item["id"]
        assert re.fullmatch(r"[a-z]{2}", item["lang"]), item["id"]
        assert isinstance(item["note"], str) and item["note"].strip(), item["id"]


def test_ids_are_unique_and_well_formed() -> None:
    ids = [item["id"] for item in ITEMS]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"tp-\d{4,5}", i) for i in ids)


def test_titles_are_unique() -> None:
    # A repeated title usually means a pasted duplicate, which would over-weight one example.
    titles = [item["title"].strip().lower() for item in ITEMS]
    duplicates = [t for t, n in Counter(titles).items() if n > 1]
    assert duplicates == []


def test_expect_ids_are_the_nine_categories() -> None:
    for item in ITEMS:
        expect = item["expect"]
        assert len(expect) == len(set(expect)), item["id"]
        assert set(expect) <= set(RANGES), item["id"]


def test_threats_have_a_severity_inside_the_primary_seed_range() -> None:
    for item in ITEMS:
        if not item["expect"]:
            continue
        low, high = RANGES[item["expect"][0]]
        assert item["severity"] in LEVELS, item["id"]
        rank = LEVELS.index(item["severity"])
        assert LEVELS.index(low) <= rank <= LEVELS.index(high), item["id"]


def test_kind_agrees_with_expect() -> None:
    for item in ITEMS:
        if item["expect"]:
            assert item["kind"] in THREAT_KINDS, item["id"]
        else:
            assert item["kind"] not in THREAT_KINDS, item["id"]
            assert item["severity"] is None, item["id"]


def test_label_only_items_carry_a_label() -> None:
    label_only = [item for item in ITEMS if item["kind"] == "label-only"]
    for item in label_only:
        assert item["labels"], item["id"]


@pytest.mark.parametrize("category", sorted(_seed_ranges()))
def test_at_least_twenty_reports_per_category(category: str) -> None:
    reports = [i for i in ITEMS if i["kind"] == "report" and i["expect"][:1] == [category]]
    assert len(reports) >= 20, (category, len(reports))


def test_non_threats_are_well_represented() -> None:
    # A linear head learns "not a threat" only from examples of it, including the near misses.
    kinds = Counter(item["kind"] for item in ITEMS)
    assert sum(n for k, n in kinds.items() if k not in THREAT_KINDS) >= 160
    for kind in ("confuser", "traditional-security", "ordinary", "feature-request"):
        assert kinds[kind] >= 10, kind


def test_label_only_and_other_languages_are_present() -> None:
    # The head must learn that a tracker label alone can carry a threat, and that threats are
    # reported in other languages too.
    kinds = Counter(item["kind"] for item in ITEMS)
    assert kinds["label-only"] >= 20
    langs = Counter(item["lang"] for item in ITEMS if item["lang"] != "en")
    assert sum(langs.values()) >= 40
    assert len(langs) >= 5


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def test_no_item_repeats_the_labelled_test_corpus_or_the_samples() -> None:
    # Training texts must not reappear in the sets the bot is measured on (the held-out sets
    # included: training on them would make their numbers worthless).
    others: set[str] = set()
    held_out = sorted((ROOT / "tests" / "corpus").glob("holdout*.jsonl"))
    for path in (DATA_DIR / "train_labelled.jsonl", DATA_DIR / "sample_issues.jsonl", *held_out):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                others.add(_norm(row.get("title", "")))
                if len(row.get("body", "")) > 40:
                    others.add(_norm(row["body"]))
    for item in ITEMS:
        assert _norm(item["title"]) not in others, item["id"]
        if len(item["body"]) > 40:
            assert _norm(item["body"]) not in others, item["id"]
