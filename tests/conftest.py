"""Shared fixtures: the shipped rule set (loaded once), a small fixed one, stores, trackers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.decide.classify import Classifier
from bot.decide.rules import RuleSet, load_rules
from bot.store import Store
from tests.fakes.tracker import MemoryTracker

ROOT = Path(__file__).resolve().parents[1]
MIN_RULES = ROOT / "tests" / "fixtures" / "rules_min"


@pytest.fixture(scope="session", autouse=True)
def _semantic_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Heads the semantic model trains during the tests are cached in a temporary folder,
    never in the user's ~/.cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


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
