"""Shared fixtures: the shipped rule set (loaded once), a small fixed one, stores, trackers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# --------------------------------------------------------------------------- PostgreSQL

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
"""Where the tests create their own database when BUGBAR_TEST_PG_URL is not given."""


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database for this test session, or one clear skip line (a failure in CI).

    ``BUGBAR_TEST_PG_URL`` (set by .ci/run, which creates and drops it) names a database to
    use; otherwise one is created on the machine's server and dropped at the end.
    """
    from tests.pg import admin_create, admin_drop, unavailable

    given = os.environ.get("BUGBAR_TEST_PG_URL", "")
    if given:
        problem = unavailable(given)
        if problem:
            _pg_missing(f"BUGBAR_TEST_PG_URL is not usable: {problem}")
        yield given
        return
    problem = unavailable(PG_ADMIN_URL)
    if problem:
        _pg_missing(f"PostgreSQL tests skipped: no server at 127.0.0.1:5432 ({problem})")
    url, name = admin_create(PG_ADMIN_URL, f"bugbar_test_{os.getpid()}")
    try:
        yield url
    finally:
        admin_drop(PG_ADMIN_URL, name)


_PG_SKIPPED: list[str] = []


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No BUGBAR_/GITHUB_ variables from the machine; state in the test's folder. (A module
    may override it: tests/test_config.py's also forbids starting the server.)"""
    for name in list(os.environ):
        if name.startswith("BUGBAR_") or name.startswith("GITHUB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BUGBAR_STATE", str(tmp_path / "state.db"))
    monkeypatch.setenv("BUGBAR_LOG_LEVEL", "ERROR")
    return monkeypatch


def github_env(env: pytest.MonkeyPatch, token: str, api_url: str | None = None) -> None:
    """The variables ``bugbar serve`` needs for GitHub: a token, a webhook secret and, for a
    fake server, its URL."""
    env.setenv("BUGBAR_GITHUB_TOKEN", token)
    env.setenv("BUGBAR_GITHUB_WEBHOOK_SECRET", "hook-secret-0001")
    if api_url is not None:
        env.setenv("BUGBAR_GITHUB_API_URL", api_url)


@pytest.fixture()
def started(clean_env: pytest.MonkeyPatch) -> list[Any]:
    """``bugbar serve`` records the app it built instead of running uvicorn."""
    apps: list[Any] = []
    clean_env.setattr("bot.server.serve", lambda app, host, port: apps.append(app))
    return apps


def _pg_missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the PostgreSQL tests must run)", pytrace=False)
    if not _PG_SKIPPED:
        _PG_SKIPPED.append(message)
    pytest.skip(message)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say once, at the end, why the PostgreSQL half of the suite did not run."""
    for message in _PG_SKIPPED:
        terminalreporter.write_line(message, yellow=True)
