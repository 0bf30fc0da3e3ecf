"""Chaos in the suite: real ``bugbar serve`` processes; FakeGitHub and FakeGitLab answering
502 (before and after doing the work), 429 with Retry-After and slowly at random;
redeliveries, edits and a ``kill -9`` mid-run. Seeded, so a failure replays; short leases, no
write pacing and fast retry waits (environment settings), so it takes seconds. The longer soak
with more issues and kills is tests/benchmarks/bench_soak.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.decide.classify import Classifier
from tests import chaos


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_exactly_one_outcome_under_chaos_and_kill_9(tmp_path: Path, classifier: Classifier,
                                                    provider: str) -> None:
    settings = chaos.Settings(issues=30, threats=10, seed=14, kills=1, provider=provider)
    report = chaos.run(settings, tmp_path, classifier)
    assert report.problems == []
    assert report.kills == 1 and report.killed_mid_work == 1  # a claim was left behind
    assert len(report.recovery_seconds) == 1  # ... and finished after the restart
    assert report.bot_comments == 10  # exactly one on each threat issue, none elsewhere
    assert report.acked + report.duplicates >= 90 and report.duplicates >= 25
    # The chaos really happened: every kind of trouble was served.
    assert all(report.faults.get(k, 0) > 0 for k in ("slow", "fail", "fail_after",
                                                      "rate_limit")), report.faults
