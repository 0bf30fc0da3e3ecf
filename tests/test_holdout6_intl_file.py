"""Validate the shape of the sixth, non-English held-out set (tests/corpus/holdout6_intl.jsonl).

The set measures how triage generalises to issues written natively in seven languages; it must
never be used to tune rules or the semantic model. This test checks only its shape and coverage,
never what bugbar says about it.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from tests.corpus_schema import LEVELS, SEED_RANGES, load_jsonl

HOLDOUT = Path(__file__).parent / "corpus" / "holdout6_intl.jsonl"

KINDS = {"report", "confuser", "traditional-security", "ordinary", "feature-request"}
KEYS = {"id", "title", "body", "labels", "expect", "severity", "kind", "lang", "note"}
LANGS = ("es", "pt", "fr", "de", "zh", "ja", "ru")
ID_RE = re.compile(r"h6i-\d{3}")

ITEMS: list[dict[str, Any]] = load_jsonl(HOLDOUT)


def test_every_line_has_exactly_the_schema_keys() -> None:
    for it in ITEMS:
        assert set(it) == KEYS, it.get("id")
        assert isinstance(it["title"], str) and it["title"].strip(), it["id"]
        assert isinstance(it["body"], str), it["id"]
        assert isinstance(it["labels"], list), it["id"]
        assert all(isinstance(lb, str) and lb for lb in it["labels"]), it["id"]
        assert isinstance(it["expect"], list), it["id"]
        assert it["kind"] in KINDS, it["id"]
        assert it["lang"] in LANGS, it["id"]
        assert isinstance(it["note"], str) and it["note"].strip(), it["id"]


def test_ids_unique_and_numbered() -> None:
    ids = [it["id"] for it in ITEMS]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(i, str) and ID_RE.fullmatch(i) for i in ids), ids


def test_expect_is_at_most_one_of_the_nine_categories() -> None:
    assert len(SEED_RANGES) == 9  # guards the check below against a shrunken table
    for it in ITEMS:
        assert len(it["expect"]) <= 1, it["id"]
        for cat in it["expect"]:
            assert cat in SEED_RANGES, (it["id"], cat)


def test_kind_agrees_with_expect() -> None:
    # A report is a threat; every other kind is labelled "not an AI/ML threat".
    for it in ITEMS:
        assert (it["kind"] == "report") == bool(it["expect"]), it["id"]


def test_severity_inside_seed_range_or_null() -> None:
    for it in ITEMS:
        if not it["expect"]:
            assert it["severity"] is None, it["id"]
            continue
        lo, hi = SEED_RANGES[it["expect"][0]]
        assert it["severity"] in LEVELS, it["id"]
        rank = LEVELS.index(it["severity"])
        assert LEVELS.index(lo) <= rank <= LEVELS.index(hi), it["id"]


def test_size_and_category_coverage() -> None:
    assert len(ITEMS) == 70
    per_cat = Counter(it["expect"][0] for it in ITEMS if it["expect"])
    for cat in SEED_RANGES:
        assert per_cat[cat] >= 4, (cat, per_cat[cat])
    assert sum(1 for it in ITEMS if not it["expect"]) >= 28
    assert {it["kind"] for it in ITEMS} == KINDS


def test_ten_per_language_with_both_sides() -> None:
    langs = Counter(it["lang"] for it in ITEMS)
    assert set(langs) == set(LANGS), langs
    for lang in LANGS:
        assert langs[lang] == 10, (lang, langs[lang])
        mine = [it for it in ITEMS if it["lang"] == lang]
        kinds = Counter(it["kind"] for it in mine)
        assert kinds["report"] == 6, (lang, kinds)
        # Two mentions or feature requests, one ordinary ML bug, one traditional security bug.
        assert kinds["confuser"] + kinds["feature-request"] == 2, (lang, kinds)
        assert kinds["ordinary"] == 1, (lang, kinds)
        assert kinds["traditional-security"] == 1, (lang, kinds)


def test_titles_are_not_repeated() -> None:
    titles = Counter(it["title"].strip().lower() for it in ITEMS)
    assert not [t for t, n in titles.items() if n > 1]
