"""Validate the shape of the sealed held-out sets (tests/corpus/holdout3 … holdout9_intl.jsonl).

The sets measure how the triage generalises to texts it was never built from; they must never be
used to tune rules or the semantic model. These tests check only each set's shape and coverage
against a small table of per-file expectations; they never run bugbar on a set.

Failure messages name item ids only: every check collects the ids that break it and asserts the
list is empty, so a failing run never prints an item's text (pytest would show the operands of a
failing ``assert len(body) <= n``, body included).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.corpus_schema import LEVELS, SEED_RANGES, load_jsonl

CORPUS = Path(__file__).parent / "corpus"

KEYS = {"id", "title", "body", "labels", "expect", "severity", "kind", "lang", "note"}
NON_THREAT_KINDS = frozenset({"confuser", "traditional-security", "ordinary", "feature-request"})
ALL_KINDS = NON_THREAT_KINDS | {"report", "label-only"}
# The international sets carry no label-only items.
INTL_KINDS = NON_THREAT_KINDS | {"report"}
OTHER_LANGS = ("es", "pt", "fr", "de", "zh", "ja", "ru")
# A label-only item carries no evidence in its text; a long body would make it a normal report.
LABEL_ONLY_MAX_BODY = 120

Item = dict[str, Any]


@dataclass(frozen=True)
class Quota:
    """How many items of one language must have a kind in ``kinds`` (exactly, or at least)."""

    kinds: frozenset[str]
    count: int
    exact: bool = False

    def holds(self, items: list[Item]) -> bool:
        """Whether ``items`` meet the quota."""
        n = sum(1 for it in items if it.get("kind") in self.kinds)
        return n == self.count if self.exact else n >= self.count


@dataclass(frozen=True)
class HeldOut:
    """What one held-out file must look like."""

    name: str
    id_pattern: str
    kinds: frozenset[str]
    langs: frozenset[str]  # the language codes used: every one at least once, no other
    min_items: int
    min_reports: int  # past holdout3, nine times ``min_per_category`` (implied, stated)
    min_per_category: int  # reports whose primary category is each of the nine
    min_non_threats: int  # items of a non-threat kind that expect no category
    min_label_only: int = 0  # when > 0, both sides of the label rule must be present
    max_items: int | None = None
    min_non_english: int = 0
    # Per-language quotas, checked for every language in ``quota_langs``.
    quota_langs: tuple[str, ...] = ()
    lang_quotas: tuple[Quota, ...] = ()

    @property
    def path(self) -> Path:
        """Where the file lives."""
        return CORPUS / self.name


def _quotas(
    size: int, reports: int, non_reports: int, *extra: Quota, exact: bool
) -> tuple[Quota, ...]:
    """The per-language size, report and non-report quotas, then ``extra`` ones."""
    return (
        Quota(ALL_KINDS, size, exact),
        Quota(frozenset({"report"}), reports, exact),
        Quota(ALL_KINDS - {"report"}, non_reports, exact),
        *extra,
    )


_EN = frozenset({"en"})
_INTL = frozenset(OTHER_LANGS)
_INTL_10 = _quotas(
    10,
    6,
    4,
    # Two mentions or feature requests, one ordinary ML bug, one traditional security bug.
    Quota(frozenset({"confuser", "feature-request"}), 2, exact=True),
    Quota(frozenset({"ordinary"}), 1, exact=True),
    Quota(frozenset({"traditional-security"}), 1, exact=True),
    exact=True,
)


def _pair(n: int, size: int, reports: int, per_category: int) -> tuple[HeldOut, HeldOut]:
    """Round ``n``'s two files: ``size`` English items (label-only items on both sides of the
    label rule, at least 64 non-threats) and 70 in the seven other languages (ten each)."""
    return (
        HeldOut(
            f"holdout{n}.jsonl", rf"h{n}-\d{{3}}", ALL_KINDS, _EN,
            min_items=size, max_items=size, min_reports=reports, min_per_category=per_category,
            min_non_threats=64, min_label_only=8,
        ),
        HeldOut(
            f"holdout{n}_intl.jsonl", rf"h{n}i-\d{{3}}", INTL_KINDS, _INTL,
            min_items=70, max_items=70, min_reports=42, min_per_category=4, min_non_threats=28,
            quota_langs=OTHER_LANGS, lang_quotas=_INTL_10,
        ),
    )


# One row per sealed file; thresholds are those its own shape test had when the file was added.
SETS = (
    HeldOut(
        "holdout3.jsonl", r"h3-\d{3}", ALL_KINDS, _EN | _INTL,
        min_items=170, min_reports=95, min_per_category=8, min_non_threats=65, min_label_only=10,
        min_non_english=24, quota_langs=OTHER_LANGS, lang_quotas=_quotas(3, 1, 1, exact=False),
    ),
    HeldOut(
        "holdout4.jsonl", r"h4-\d{3}", ALL_KINDS, _EN,
        min_items=160, min_reports=90, min_per_category=10, min_non_threats=60, min_label_only=8,
    ),
    HeldOut(
        "holdout4_intl.jsonl", r"h4i-\d{3}", INTL_KINDS, _INTL,
        min_items=80, min_reports=45, min_per_category=5, min_non_threats=30,
        quota_langs=OTHER_LANGS,
        lang_quotas=_quotas(10, 1, 4, Quota(frozenset({"feature-request"}), 1), exact=False),
    ),
    HeldOut(
        "holdout5.jsonl", r"h5-\d{3}", ALL_KINDS, _EN,
        min_items=140, min_reports=72, min_per_category=8, min_non_threats=55, min_label_only=5,
    ),
    HeldOut(
        "holdout5_intl.jsonl", r"h5i-\d{3}", INTL_KINDS, _INTL,
        min_items=70, min_reports=36, min_per_category=4, min_non_threats=28,
        quota_langs=OTHER_LANGS, lang_quotas=_INTL_10,
    ),
    HeldOut(
        "holdout6.jsonl", r"h6-\d{3}", ALL_KINDS, _EN,
        min_items=150, min_reports=72, min_per_category=8, min_non_threats=70, min_label_only=5,
    ),
    HeldOut(
        "holdout6_intl.jsonl", r"h6i-\d{3}", INTL_KINDS, _INTL,
        min_items=70, max_items=70, min_reports=36, min_per_category=4, min_non_threats=28,
        quota_langs=OTHER_LANGS, lang_quotas=_INTL_10,
    ),
    *_pair(7, size=160, reports=88, per_category=8),
    *_pair(8, size=162, reports=90, per_category=10),
    *_pair(9, size=162, reports=90, per_category=10),
)

each_set = pytest.mark.parametrize("spec", SETS, ids=[s.name for s in SETS])


@functools.cache
def _load(path: Path) -> list[Item]:
    """The items of ``path``, read once per run."""
    return load_jsonl(path)


def _id(it: Item) -> object:
    """The item's id for a failure message (never its text)."""
    return it.get("id")


def _text(value: object) -> bool:
    """Whether ``value`` is a string with something besides white space."""
    return isinstance(value, str) and bool(value.strip())


def _in_range(cat: str, level: object) -> bool:
    """Whether ``level`` is a severity level inside the seed range of ``cat``."""
    if level not in LEVELS:
        return False
    lo, hi = SEED_RANGES[cat]
    return LEVELS.index(lo) <= LEVELS.index(str(level)) <= LEVELS.index(hi)


def _primary(it: Item) -> str | None:
    """The item's one expected category, or None."""
    expect = it.get("expect")
    return expect[0] if isinstance(expect, list) and expect else None


def test_nine_ids_match_the_package() -> None:
    from bot.decide.model import CATEGORY_IDS

    assert len(SEED_RANGES) == 9  # guards the per-set checks against a shrunken table
    assert set(CATEGORY_IDS) == set(SEED_RANGES)


@each_set
def test_every_line_has_exactly_the_schema(spec: HeldOut) -> None:
    items = _load(spec.path)
    assert len(items) > 0, f"{spec.name} is empty"
    bad_keys = [(_id(it), sorted(set(it) ^ KEYS)) for it in items if set(it) != KEYS]
    assert not bad_keys, bad_keys
    bad = [
        _id(it)
        for it in items
        if not (
            _text(it["title"])
            and isinstance(it["body"], str)
            and isinstance(it["labels"], list)
            and all(_text(lb) for lb in it["labels"])
            and isinstance(it["expect"], list)
            and len(it["expect"]) <= 1  # one primary category or none
            and all(cat in SEED_RANGES for cat in it["expect"])
            and it["kind"] in spec.kinds
            and isinstance(it["lang"], str)
            and len(it["lang"]) == 2
            and it["lang"] in spec.langs
            and _text(it["note"])
        )
    ]
    assert not bad, bad


@each_set
def test_ids_unique_and_numbered(spec: HeldOut) -> None:
    ids = [_id(it) for it in _load(spec.path)]
    repeated = [i for i, n in Counter(map(str, ids)).items() if n > 1]
    assert not repeated, repeated
    bad = [i for i in ids if not (isinstance(i, str) and re.fullmatch(spec.id_pattern, i))]
    assert not bad, bad


@each_set
def test_kind_agrees_with_expect(spec: HeldOut) -> None:
    # A report is a threat, the non-threat kinds are not; a label-only item may be either.
    items = _load(spec.path)
    bad = [_id(it) for it in items if it["kind"] == "report" and not it["expect"]]
    bad += [_id(it) for it in items if it["kind"] in NON_THREAT_KINDS and it["expect"]]
    assert not bad, bad


@each_set
def test_severity_inside_seed_range_for_threats_and_null_otherwise(spec: HeldOut) -> None:
    bad = []
    for it in _load(spec.path):
        cat = _primary(it)
        ok = it["severity"] is None if cat is None else _in_range(cat, it["severity"])
        if not ok:
            bad.append(_id(it))
    assert not bad, bad


@each_set
def test_size_and_coverage(spec: HeldOut) -> None:
    # Counts are taken into ints first: pytest would show the list behind a failing len().
    items = _load(spec.path)
    size = len(items)
    assert size >= spec.min_items, (spec.name, size)
    if spec.max_items is not None:
        assert size <= spec.max_items, (spec.name, size)
    reports = [it for it in items if it["kind"] == "report"]
    n_reports = len(reports)
    assert n_reports >= spec.min_reports, (spec.name, n_reports)
    per_cat = Counter(_primary(it) for it in reports)
    short = {cat: per_cat[cat] for cat in SEED_RANGES if per_cat[cat] < spec.min_per_category}
    assert not short, (spec.name, short)
    non_threats = sum(1 for it in items if not it["expect"] and it["kind"] in NON_THREAT_KINDS)
    assert non_threats >= spec.min_non_threats, (spec.name, non_threats)
    label_only = sum(1 for it in items if it["kind"] == "label-only")
    assert label_only >= spec.min_label_only, (spec.name, label_only)
    kinds = {it["kind"] for it in items}
    assert kinds == spec.kinds, (spec.name, sorted(kinds ^ spec.kinds))


@each_set
def test_label_only_items_rest_on_labels(spec: HeldOut) -> None:
    label_only = [it for it in _load(spec.path) if it["kind"] == "label-only"]
    bad = [
        _id(it)
        for it in label_only
        if not it["labels"]
        or len(it["body"]) > LABEL_ONLY_MAX_BODY
        # Labels alone are weak evidence: the floor of the category's range.
        or (it["expect"] and it["severity"] != SEED_RANGES[it["expect"][0]][0])
    ]
    assert not bad, bad
    if spec.min_label_only:
        # Both sides of the label rule: a category-naming label, and generic labels alone.
        sides = {bool(it["expect"]) for it in label_only}
        assert sides == {True, False}, spec.name


@each_set
def test_languages(spec: HeldOut) -> None:
    items = _load(spec.path)
    langs = Counter(it["lang"] for it in items)
    assert set(langs) == spec.langs, (spec.name, langs)
    non_english = sum(n for lang, n in langs.items() if lang != "en")
    assert non_english >= spec.min_non_english, (spec.name, non_english)
    broken = []
    for lang in spec.quota_langs:
        mine = [it for it in items if it["lang"] == lang]
        kinds = Counter(it["kind"] for it in mine)
        broken += [(lang, sorted(q.kinds), kinds) for q in spec.lang_quotas if not q.holds(mine)]
    assert not broken, broken


@each_set
def test_threats_and_non_threats_are_shuffled(spec: HeldOut) -> None:
    # A set sorted by kind would let a reader guess answers from position.
    items = _load(spec.path)
    middle = len(items) // 2
    for part, half in enumerate((items[:middle], items[middle:])):
        sides = {bool(it["expect"]) for it in half}
        assert sides == {True, False}, (spec.name, part)


@each_set
def test_titles_are_distinct(spec: HeldOut) -> None:
    titles = Counter(it["title"].strip().lower() for it in _load(spec.path))
    # Count the repeats rather than list them: a title is item text.
    assert sum(1 for n in titles.values() if n > 1) == 0, spec.name
