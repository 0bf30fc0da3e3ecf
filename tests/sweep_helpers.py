"""Helpers shared by the sweep tests against the fake trackers (test_sweep_{github,gitlab,jira}).

Only what is really the same across the three lives here; per-provider helpers (how an issue
is seeded, what counts as a bot comment) stay in each test file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from bot.decide.classify import Classifier
from bot.handlers.sweep import Sweep, SweepOptions, SweepResult
from bot.store import Store

STEAL = ("Model extraction of our production fraud detection model",
         "An attacker queried the scoring API and trained a substitute model.")
T0 = datetime(2025, 6, 1, tzinfo=UTC)
BOT_LABELS = ("threat/", "severity/", "route/")


class Sleeps:
    """Records waits instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def backlog(n: int, every: int = 10) -> Iterator[tuple[int, str, str]]:
    """``(i, title, body)`` for ``i`` in 1..n; every ``every``-th issue is a threat."""
    for i in range(1, n + 1):
        if i % every == 0:
            yield i, f"{STEAL[0]} #{i}", STEAL[1]
        else:
            yield i, f"CUDA OOM with batch {i}", "Traceback: out of memory."


def run_sweep(classifier: Classifier, store: Store, tracker: Any, scopes: list[str],
              **options: Any) -> SweepResult:
    """One sweep of ``scopes`` where every scope is served by ``tracker``."""
    return Sweep(classifier, store, lambda provider, scope: tracker,
                 SweepOptions(**options)).run(scopes)
