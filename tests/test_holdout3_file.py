"""Validate the shape of the third held-out set (tests/corpus/holdout3.jsonl).

The set measures how the triage generalises; it must never be used to tune rules or the
semantic model. This test checks only its shape and coverage, never what bugbar says about it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.corpus_schema import LEVELS, SEED_RANGES, load_jsonl

HOLDOUT = Path(__file__).parent / "corpus" / "holdout3.jsonl"

KINDS = {"report", "confuser", "traditional-security", "ordinary", "feature-request", "label-only"}
NON_THREAT_KINDS = KINDS - {"report", "label-only"}
KEYS = {"id", "title", "body", "labels", "expect", "severity", "kind", "lang", "note"}
OTHER_LANGS = ("es", "pt", "fr", "de", "zh", "ja", "ru")


ITEMS = load_jsonl(HOLDOUT)


def test_every_line_has_the_schema() -> None:
    for it in ITEMS:
        assert set(it) == KEYS, it.get("id")
        assert isinstance(it["id"], str) and it["id"].startswith("h3-"), it["id"]
        assert isinstance(it["title"], str) and it["title"].strip(), it["id"]
        assert isinstance(it["body"], str), it["id"]
        assert isinstance(it["labels"], list), it["id"]
        assert all(isinstance(lb, str) and lb for lb in it["labels"]), it["id"]
        assert isinstance(it["expect"], list), it["id"]
        assert it["kind"] in KINDS, it["id"]
        assert isinstance(it["lang"], str) and len(it["lang"]) == 2, it["id"]
        assert isinstance(it["note"], str) and it["note"].strip(), it["id"]


def test_ids_unique_and_numbered() -> None:
    ids = [it["id"] for it in ITEMS]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 6 and i[3:].isdigit() for i in ids), ids


def test_expect_ids_are_the_nine_categories() -> None:
    for it in ITEMS:
        for cat in it["expect"]:
            assert cat in SEED_RANGES, (it["id"], cat)
        assert len(set(it["expect"])) == len(it["expect"]), it["id"]


def test_nine_ids_match_the_package() -> None:
    from bot.decide.model import CATEGORY_IDS

    assert set(CATEGORY_IDS) == set(SEED_RANGES)


def test_size_and_coverage() -> None:
    assert len(ITEMS) >= 170
    reports = [it for it in ITEMS if it["kind"] == "report"]
    assert len(reports) >= 95
    per_cat = Counter(it["expect"][0] for it in reports)
    for cat in SEED_RANGES:
        assert per_cat[cat] >= 8, (cat, per_cat[cat])
    non_threats = [it for it in ITEMS if not it["expect"]]
    assert len([it for it in non_threats if it["kind"] in NON_THREAT_KINDS]) >= 65
    label_only = [it for it in ITEMS if it["kind"] == "label-only"]
    assert len(label_only) >= 10
    # Both sides of the label rule: labels that name a category, and generic labels alone.
    assert any(it["expect"] for it in label_only)
    assert any(not it["expect"] for it in label_only)
    assert {it["kind"] for it in ITEMS} == KINDS


def test_languages() -> None:
    langs = Counter(it["lang"] for it in ITEMS)
    assert sum(c for lang, c in langs.items() if lang != "en") >= 24
    for lang in OTHER_LANGS:
        assert langs[lang] >= 3, (lang, langs[lang])
        kinds = {it["kind"] == "report" for it in ITEMS if it["lang"] == lang}
        assert kinds == {True, False}, lang  # threat reports and non-threats in each language


def test_severity_agrees_with_expect() -> None:
    for it in ITEMS:
        if not it["expect"]:
            assert it["severity"] is None, it["id"]
            assert it["kind"] != "report", it["id"]
            continue
        assert it["kind"] in {"report", "label-only"}, it["id"]
        lo, hi = SEED_RANGES[it["expect"][0]]
        assert it["severity"] in LEVELS, it["id"]
        assert LEVELS.index(lo) <= LEVELS.index(it["severity"]) <= LEVELS.index(hi), it["id"]
