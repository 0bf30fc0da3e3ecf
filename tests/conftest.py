"""Shared fixtures: the shipped rule set (loaded once), a small fixed one, stores, trackers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.decide.classify import Classifier
from bot.decide.rules import RuleSet, load_rules
from bot.store import Store
from tests.fakes.tracker import MemoryTracker

ROOT = Path(__file__).resolve().parents[1]
MIN_RULES = ROOT / "tests" / "fixtures" / "rules_min"


@pytest.fixture(scope="session")
def ruleset() -> RuleSet:
    """The shipped rules (tests of the real configuration)."""
    return load_rules()


@pytest.fixture(scope="session")
def classifier(ruleset: RuleSet) -> Classifier:
    """A classifier over the shipped rules."""
    return Classifier(ruleset)


@pytest.fixture(scope="session")
def min_ruleset() -> RuleSet:
    """A small fixed rule set whose output does not move when the shipped rules are tuned."""
    return load_rules(base_dir=MIN_RULES)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store."""
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture()
def tracker() -> MemoryTracker:
    """An in-memory tracker that records writes."""
    return MemoryTracker()
