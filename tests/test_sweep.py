"""The backlog sweep over the in-memory tracker and a real SQLite store.

Covers the sweep core (bot.handlers.sweep) and its command line, reports and scheduler
(bot.sweep_cli). The same behaviour through real HTTP is in test_sweep_github.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.app import Bot
from bot.cli import main
from bot.config import Config
from bot.decide.classify import Classifier
from bot.decide.render import MARKER_PREFIX
from bot.decide.rules import RuleSet
from bot.events.model import IssueRef
from bot.handlers.sweep import (
    CHANGED,
    PENDING,
    SKIPPED,
    UNCHANGED,
    Sweep,
    SweepOptions,
    SweepResult,
    checkpoint_name,
    parse_scope,
)
from bot.providers.base import ListPage
from bot.providers.retry import RateLimited
from bot.store import Store
from bot.sweep_cli import (
    EXIT_MAX_CHANGES,
    Progress,
    Schedule,
    SweepScheduler,
    execute,
    exit_code,
    format_summary,
    markdown_report,
    open_report,
    parse_duration,
    parse_since,
    serve_hook,
)
from tests.fakes.tracker import MemoryTracker

STEAL = ("Model extraction of our production fraud detection model",
         "An attacker queried the scoring API and trained a substitute model.")
SCOPE = "github:o/r"


class BudgetTracker(MemoryTracker):
    """A MemoryTracker with a request budget like GitHub's: every call costs one request.

    ``rate_limit_remaining`` reports what is left; at zero a call raises RateLimited (what the
    retry layer raises when the wait would be too long).
    """

    def __init__(self, remaining: int = 10_000) -> None:
        super().__init__()
        self.remaining = remaining
        self.calls = 0

    def _spend(self) -> None:
        if self.remaining <= 0:
            raise RateLimited(time.time() + 3600, what="fake", reason="budget exhausted")
        self.remaining -= 1
        self.calls += 1

    def rate_limit_remaining(self) -> int:
        return self.remaining

    def rate_limit_reset(self) -> float:
        return 1_900_000_000.0

    def list_issues(self, scope: str, *, state: str, since: datetime | None,
                    cursor: str | None) -> ListPage:
        self._spend()
        return super().list_issues(scope, state=state, since=since, cursor=cursor)

    def list_comments(self, ref: IssueRef) -> Iterator[Any]:
        self._spend()
        return super().list_comments(ref)

    def add_labels(self, ref: IssueRef, labels: list[str]) -> None:
        self._spend()
        super().add_labels(ref, labels)

    def create_comment(self, ref: IssueRef, body: str) -> Any:
        self._spend()
        return super().create_comment(ref, body)


def backlog(tracker: MemoryTracker, n: int, *, every: int = 10,
            scope: str = "o/r") -> list[IssueRef]:
    """``n`` issues; every ``every``-th one is a model-stealing report, the rest are bugs."""
    refs = []
    for i in range(1, n + 1):
        if i % every == 0:
            refs.append(tracker.add_issue(scope, i, f"{STEAL[0]} #{i}", STEAL[1]))
        else:
            refs.append(tracker.add_issue(scope, i, f"CUDA OOM with batch {i}",
                                          "Traceback: out of memory on the GPU."))
    return refs


def run(classifier: Classifier, store: Store, tracker: MemoryTracker,
        scopes: list[str] | None = None, **options: Any) -> SweepResult:
    return Sweep(classifier, store, lambda provider, scope: tracker,
                 SweepOptions(**options)).run(scopes or [SCOPE])


def bot_comments(tracker: MemoryTracker, ref: IssueRef) -> list[Any]:
    return [c for c in tracker.comments(ref) if MARKER_PREFIX in c.body]


# --------------------------------------------------------------------------- the core


def test_dry_run_writes_nothing_and_reports_what_would_change(
        classifier: Classifier, store: Store, tracker: MemoryTracker) -> None:
    refs = backlog(tracker, 250)
    result = run(classifier, store, tracker)
    assert tracker.writes == []
    assert result.dry_run and result.complete and result.stop_reason is None
    assert result.counts[CHANGED] == 25 and result.counts[UNCHANGED] == 225
    changed = [r for r in result.notable if r.outcome == CHANGED]
    assert len(changed) == 25 and not any(r.applied for r in changed)
    assert "+label threat/model-stealing" in changed[0].actions
    assert any(a.startswith("comment") for a in changed[0].actions)
    assert result.by_category["model-stealing"][CHANGED] == 25
    assert result.by_severity["critical"][CHANGED] == 25
    assert all(store.get_issue_state(str(r)) is None for r in refs)  # nothing remembered


def test_apply_then_unchanged_backlog_costs_only_the_listing(
        classifier: Classifier, store: Store, tracker: MemoryTracker) -> None:
    refs = backlog(tracker, 250)
    first = run(classifier, store, tracker, apply=True)
    assert first.counts[CHANGED] == 25 and first.complete
    for ref in refs[9::10]:
        assert "threat/model-stealing" in tracker.labels(ref)
        assert len(bot_comments(tracker, ref)) == 1
    writes = list(tracker.writes)
    tracker.reads = 0
    second = run(classifier, store, tracker, apply=True)
    assert tracker.writes == writes  # no write
    assert tracker.reads == math.ceil(250 / 100)  # the listing only: no per-issue read
    assert second.counts[UNCHANGED] == 250 and second.counts[CHANGED] == 0
    assert second.notable == []
    # dry runs skip unchanged issues too
    tracker.reads = 0
    assert run(classifier, store, tracker).counts[UNCHANGED] == 250
    assert tracker.reads == 3


def test_edited_issue_is_redecided_and_only_it_is_written(
        classifier: Classifier, store: Store, tracker: MemoryTracker) -> None:
    refs = backlog(tracker, 30)
    run(classifier, store, tracker, apply=True)
    before = len(tracker.writes)
    tracker.edit(refs[0], title=STEAL[0], body=STEAL[1],
                 updated_at=datetime(2026, 2, 1, tzinfo=UTC))
    result = run(classifier, store, tracker, apply=True)
    assert result.counts[CHANGED] == 1
    assert all(w.startswith(f"{refs[0]}:") for w in tracker.writes[before:])


def test_rules_change_redecides_everything(classifier: Classifier, min_ruleset: RuleSet,
                                           store: Store, tracker: MemoryTracker) -> None:
    backlog(tracker, 20)
    run(classifier, store, tracker, apply=True)
    other = Classifier(min_ruleset)
    assert other.ruleset.version != classifier.ruleset.version
    reasons: list[str] = []
    Sweep(other, store, lambda p, s: tracker, SweepOptions(),
          on_row=lambda row: reasons.append(row.reason)).run([SCOPE])
    assert len(reasons) == 20 and "cached" not in reasons
    assert store.get_issue_state("github:o/r#1").rules_version == classifier.ruleset.version


def test_max_changes_stops_before_exceeding_and_reports_the_next(
        classifier: Classifier, store: Store, tracker: MemoryTracker) -> None:
    refs = backlog(tracker, 60)  # six threats: #10 … #60
    result = run(classifier, store, tracker, apply=True, max_changes=2)
    assert result.stop_reason == "max-changes" and exit_code(result) == EXIT_MAX_CHANGES
    touched = {w.split(":")[1] for w in tracker.writes}
    assert touched == {"o/r#10", "o/r#20"}
    pending = [r for r in result.notable if r.outcome == PENDING]
    assert [r.key for r in pending] == [str(refs[29])]
    assert "+label threat/model-stealing" in pending[0].actions and not pending[0].applied
    # the next run carries on from the checkpoint and stops at the cap again
    again = run(classifier, store, tracker, apply=True, max_changes=2)
    assert {w.split(":")[1] for w in tracker.writes} == {"o/r#10", "o/r#20", "o/r#30", "o/r#40"}
    assert again.scopes[0].resumed
    final = run(classifier, store, tracker, apply=True)
    assert final.counts[CHANGED] == 2 and final.complete


def test_max_changes_zero_applies_nothing(classifier: Classifier, store: Store,
                                          tracker: MemoryTracker) -> None:
    backlog(tracker, 15)
    result = run(classifier, store, tracker, apply=True, max_changes=0)
    assert tracker.writes == [] and result.stop_reason == "max-changes"
    assert result.counts[PENDING] == 1 and result.counts[UNCHANGED] == 9


def test_limit_then_resume_covers_the_rest(classifier: Classifier, store: Store,
                                           tracker: MemoryTracker) -> None:
    refs = backlog(tracker, 250)
    first = run(classifier, store, tracker, apply=True, limit=130)
    assert first.scopes[0].examined == 130 and first.stop_reason == "limit"
    saved = store.load_checkpoint(checkpoint_name(SCOPE, True))
    assert saved is not None and saved["cursor"] == "100" and len(saved["done_on_page"]) == 30
    assert saved["counts"]["changed"] == 13
    second = run(classifier, store, tracker, apply=True)
    assert second.scopes[0].resumed and second.scopes[0].earlier["changed"] == 13
    assert second.scopes[0].examined == 120 and second.complete
    assert store.load_checkpoint(checkpoint_name(SCOPE, True)) is None
    assert all(len(bot_comments(tracker, r)) == 1 for r in refs[9::10])
    assert all(store.get_issue_state(str(r)) is not None for r in refs)


def test_dry_run_checkpoints_do_not_touch_apply_runs(classifier: Classifier, store: Store,
                                                     tracker: MemoryTracker) -> None:
    backlog(tracker, 150)
    run(classifier, store, tracker, limit=120)
    assert store.load_checkpoint(checkpoint_name(SCOPE, False)) is not None
    applied = run(classifier, store, tracker, apply=True)
    assert applied.scopes[0].examined == 150 and not applied.scopes[0].resumed


def test_fresh_ignores_the_checkpoint(classifier: Classifier, store: Store,
                                      tracker: MemoryTracker) -> None:
    backlog(tracker, 150)
    run(classifier, store, tracker, limit=120)
    result = run(classifier, store, tracker, fresh=True)
    assert result.scopes[0].examined == 150 and not result.scopes[0].resumed


def test_checkpoint_made_with_other_options_is_ignored(classifier: Classifier, store: Store,
                                                       tracker: MemoryTracker) -> None:
    backlog(tracker, 150)
    run(classifier, store, tracker, limit=120)
    result = run(classifier, store, tracker, issue_state="all")
    assert result.scopes[0].examined == 150


def test_reserve_stops_with_a_checkpoint_and_the_next_run_resumes(
        classifier: Classifier, store: Store) -> None:
    tracker = BudgetTracker(remaining=100)
    refs = backlog(tracker, 250, every=25)
    first = run(classifier, store, tracker, apply=True, reserve=40)
    assert first.stop_reason == "budget" and tracker.remaining == 40
    assert first.resume_after == 1_900_000_000.0
    examined = first.scopes[0].examined
    assert 0 < examined < 250
    tracker.remaining = 10_000  # the budget reset
    second = run(classifier, store, tracker, apply=True, reserve=40)
    assert second.complete and second.scopes[0].resumed
    assert examined + second.scopes[0].examined == 250
    assert all(len(bot_comments(tracker, r)) == 1 for r in refs[24::25])
    assert all(store.get_issue_state(str(r)) is not None for r in refs)


def test_rate_limited_stops_cleanly_and_resumes(classifier: Classifier, store: Store) -> None:
    tracker = BudgetTracker(remaining=60)
    refs = backlog(tracker, 200, every=20)
    first = run(classifier, store, tracker, apply=True, reserve=None)
    assert first.stop_reason == "rate-limited" and first.resume_after is not None
    assert store.load_checkpoint(checkpoint_name(SCOPE, True))["stop_reason"] == "rate-limited"
    tracker.remaining = 10_000
    second = run(classifier, store, tracker, apply=True, reserve=None)
    assert second.complete
    assert all(len(bot_comments(tracker, r)) == 1 for r in refs[19::20])


def test_budget_stop_does_not_stop_other_providers(classifier: Classifier, store: Store) -> None:
    github = BudgetTracker(remaining=5)
    backlog(github, 50)
    jira = MemoryTracker(provider="jira")
    jira.add_issue("SEC", 1, *STEAL)
    trackers = {"github": github, "jira": jira}
    result = Sweep(classifier, store, lambda p, s: trackers[p],
                   SweepOptions(reserve=3)).run([SCOPE, "github:o/other", "jira:SEC"])
    assert [s.stop_reason for s in result.scopes] == ["budget", "budget", None]
    assert result.scopes[2].complete and result.scopes[2].counts[CHANGED] == 1


def test_human_override_and_not_a_threat_are_kept(classifier: Classifier, store: Store,
                                                  tracker: MemoryTracker) -> None:
    a = tracker.add_issue("o/r", 1, *STEAL)
    b = tracker.add_issue("o/r", 2, STEAL[0] + " again", STEAL[1])
    store.update_issue_state(str(a), lambda s: s.overrides.update(
        {"category": "membership-inference"}))
    store.update_issue_state(str(b), lambda s: s.overrides.update({"not_a_threat": "alice"}))
    result = run(classifier, store, tracker, apply=True)
    assert "threat/membership-inference" in tracker.labels(a)
    assert "threat/model-stealing" not in tracker.labels(a)
    assert not any(lbl.startswith("threat/") for lbl in tracker.labels(b))
    assert result.by_category["membership-inference"][CHANGED] == 1


def test_human_removed_label_stays_removed(classifier: Classifier, store: Store,
                                           tracker: MemoryTracker) -> None:
    ref = tracker.add_issue("o/r", 1, *STEAL)
    run(classifier, store, tracker, apply=True)
    tracker.remove_label(ref, "route/ssirp")
    tracker.edit(ref, updated_at=datetime(2026, 3, 1, tzinfo=UTC))
    run(classifier, store, tracker, apply=True)
    assert "route/ssirp" not in tracker.labels(ref)
    assert "threat/model-stealing" in tracker.labels(ref)


def test_opt_out_and_pull_requests_are_skipped(classifier: Classifier, store: Store,
                                               tracker: MemoryTracker) -> None:
    tracker.add_issue("o/r", 1, *STEAL, labels=("bugbar:ignore",))
    tracker.add_issue("o/r", 2, *STEAL, pull_request=True)
    result = run(classifier, store, tracker, apply=True)
    assert tracker.writes == [] and result.counts[SKIPPED] == 2
    assert result.counts[CHANGED] == 0


def test_failing_issue_is_reported_and_the_sweep_goes_on(classifier: Classifier, store: Store,
                                                         tracker: MemoryTracker) -> None:
    refs = backlog(tracker, 20)
    broken = refs[9]
    original = tracker.create_comment

    def create(ref: IssueRef, body: str) -> Any:
        if ref == broken:
            raise RuntimeError("422 Validation Failed")
        return original(ref, body)

    tracker.create_comment = create  # type: ignore[method-assign]
    result = run(classifier, store, tracker, apply=True)
    assert result.counts["error"] == 1 and result.counts[CHANGED] == 1 and exit_code(result) == 1
    assert [r.key for r in result.notable if r.outcome == "error"] == [str(broken)]


def test_wildcard_scope_expands_and_sweeps_every_repo(classifier: Classifier,
                                                      store: Store) -> None:
    class Org(MemoryTracker):
        def expand_scope(self, scope: str) -> list[str]:
            return ["o/a", "o/b"]

    tracker = Org()
    tracker.add_issue("o/a", 1, *STEAL)
    tracker.add_issue("o/b", 1, *STEAL)
    asked: list[str] = []

    def tracker_for(provider: str, scope: str) -> MemoryTracker:
        asked.append(scope)
        return tracker

    result = Sweep(classifier, store, tracker_for, SweepOptions(apply=True)).run(["github:o/*"])
    assert result.scopes[0].repos == 2 and result.counts[CHANGED] == 2
    assert asked == ["o/*", "o/a", "o/b"]  # one tracker per repository


def test_one_failing_repository_does_not_stop_the_others(classifier: Classifier,
                                                        store: Store) -> None:
    class Org(MemoryTracker):
        def expand_scope(self, scope: str) -> list[str]:
            return ["o/a", "o/gone", "o/b"]

        def list_issues(self, scope: str, **kw: Any) -> ListPage:
            if scope == "o/gone":
                raise RuntimeError("404 Not Found")
            return super().list_issues(scope, **kw)

    tracker = Org()
    tracker.add_issue("o/a", 1, *STEAL)
    tracker.add_issue("o/b", 1, *STEAL)
    result = Sweep(classifier, store, lambda p, s: tracker,
                   SweepOptions(apply=True)).run(["github:o/*"])
    assert result.counts[CHANGED] == 2 and exit_code(result) == 1
    assert "o/gone" in (result.scopes[0].error or "")
    assert store.load_checkpoint(checkpoint_name("github:o/*", True)) is None


def test_wildcard_without_expand_support_is_a_scope_error(classifier: Classifier,
                                                          store: Store,
                                                          tracker: MemoryTracker) -> None:
    result = run(classifier, store, tracker, scopes=["github:o/*"])
    assert result.scopes[0].error and "cannot expand" in result.scopes[0].error
    assert exit_code(result) == 1


def test_parse_scope() -> None:
    assert parse_scope("github:o/r") == ("github", "o/r")
    assert parse_scope("gitlab:group/sub/project") == ("gitlab", "group/sub/project")
    assert parse_scope("jira:SEC") == ("jira", "SEC")
    for bad in ("o/r", "github:o", "bitbucket:o/r", "jira:A/B", "github:o/*x", "github:*/r"):
        with pytest.raises(ValueError):
            parse_scope(bad)


class UpdateOrdered(MemoryTracker):
    """Lists least recently updated first and moves an issue to the end when it is written,
    as GitHub's ``sort=updated&direction=asc`` listing does; counts listing calls."""

    def __init__(self) -> None:
        super().__init__()
        self.tick = datetime(2026, 1, 1, tzinfo=UTC)
        self.list_calls = 0

    def _touch(self, ref: IssueRef) -> None:
        self.tick += timedelta(seconds=1)
        self.edit(ref, updated_at=self.tick)

    def add_issue(self, scope: str, number: int, title: str, body: str,  # type: ignore[override]
                  labels: tuple[str, ...] = ()) -> IssueRef:
        ref = super().add_issue(scope, number, title, body, labels)
        self._touch(ref)
        return ref

    def add_labels(self, ref: IssueRef, labels: list[str]) -> None:
        super().add_labels(ref, labels)
        self._touch(ref)

    def list_issues(self, scope: str, *, state: str, since: datetime | None,
                    cursor: str | None) -> ListPage:
        self.list_calls += 1
        items = sorted((i.snapshot for i in self.issues.values()),
                       key=lambda s: (s.updated_at, s.ref.number))
        start = int(cursor or 0)
        nxt = str(start + 100) if start + 100 < len(items) else None
        return ListPage(items[start:start + 100], nxt)


def test_listing_that_moves_written_issues_is_read_again(classifier: Classifier,
                                                         store: Store) -> None:
    tracker = UpdateOrdered()
    refs = backlog(tracker, 250)
    result = run(classifier, store, tracker, apply=True)
    # Every write moved an issue to the end, shifting unseen ones onto pages already read;
    # the sweep saw its own writes come back, listed again, and missed nothing.
    assert all("threat/model-stealing" in tracker.labels(r) for r in refs[9::10])
    assert result.counts[CHANGED] == 25 and result.counts[UNCHANGED] == 225  # each once
    assert tracker.list_calls > 3
    single = UpdateOrdered()
    refs = backlog(single, 250)
    run(classifier, Store(store.path.with_name("other.db")), single, apply=True, max_passes=1)
    assert not all("threat/model-stealing" in single.labels(r) for r in refs[9::10])


def test_stable_listing_is_read_once(classifier: Classifier, store: Store) -> None:
    tracker = BudgetTracker()
    backlog(tracker, 250)
    calls: list[str] = []
    original = tracker.list_issues

    def counting(scope: str, **kw: Any) -> ListPage:
        calls.append(scope)
        return original(scope, **kw)

    tracker.list_issues = counting  # type: ignore[method-assign]
    assert run(classifier, store, tracker, apply=True).counts[CHANGED] == 25
    assert len(calls) == 3


# --------------------------------------------------------------------------- reports


def _confidential_backlog(tracker: MemoryTracker) -> None:
    tracker.add_issue("o/r", 1, "Secret: " + STEAL[0], STEAL[1], confidential=True)
    # Not critical (a dry run withholds the titles --apply would hide): its title is shown,
    # made inert.
    tracker.add_issue("o/r", 2, "=HYPERLINK(\"x\") @maintainers <b>| Model extraction of the "
                      "demo classifier", STEAL[1])
    tracker.add_issue("o/r", 3, "Slow dashboard", "The page takes 10 s to load.")


def test_reports_in_three_formats_redact_confidential_titles(
        classifier: Classifier, store: Store, tracker: MemoryTracker, tmp_path: Path) -> None:
    _confidential_backlog(tracker)
    paths = {ext: tmp_path / f"report.{ext}" for ext in ("md", "json", "csv")}
    for ext, path in paths.items():
        out = io.StringIO()
        code, result = execute([SCOPE], SweepOptions(fresh=True), classifier=classifier,
                               store=store, tracker_for=lambda p, s: tracker,
                               report=open_report(path), progress=Progress(enabled=False),
                               out=out)
        assert code == 0 and f"report: {path}" in out.getvalue()
        assert not path.with_name(path.name + ".partial").exists()
        text = path.read_text()
        assert "Secret" not in text and "(confidential)" in text, ext
    doc = json.loads(paths["json"].read_text())
    assert [i["key"] for i in doc["issues"]] == ["github:o/r#1", "github:o/r#2", "github:o/r#3"]
    assert doc["summary"]["counts"]["changed"] == 2 and doc["summary"]["dry_run"] is True
    rows = list(csv.DictReader(paths["csv"].open()))
    assert rows[0]["title"] == "(confidential)" and rows[0]["confidential"] == "yes"
    assert rows[1]["title"].startswith("'=HYPERLINK")  # no spreadsheet formula
    assert rows[1]["categories"] == "model-stealing"
    md = paths["md"].read_text()
    assert "## By category" in md and "## By severity" in md
    assert "@\u200bmaintainers" in md and "<b>" not in md and "\\|" in md
    assert "github:o/r#3" not in md  # unchanged issues are counted, not listed


def test_summary_table(classifier: Classifier, store: Store, tracker: MemoryTracker) -> None:
    _confidential_backlog(tracker)
    result = run(classifier, store, tracker)
    text = format_summary(result)
    assert "DRY RUN" in text and "model-stealing" in text and "critical" in text
    assert "Secret" not in text
    header = next(line for line in text.splitlines() if line.startswith("scope"))
    assert header.split() == ["scope", "examined", "changed", "unchanged", "skipped",
                              "pending", "error", "status"]
    assert "finished" in text.splitlines()[-1]


def test_markdown_report_of_a_stopped_sweep(classifier: Classifier, store: Store,
                                            tracker: MemoryTracker) -> None:
    backlog(tracker, 30)
    result = run(classifier, store, tracker, apply=True, max_changes=1)
    md = markdown_report(result)
    assert "stopped before exceeding --max-changes" in md and "pending" in md


def test_unknown_report_extension_is_refused(tmp_path: Path) -> None:
    from bot.cli import CliError

    with pytest.raises(CliError, match=".md, .json or .csv"):
        open_report(tmp_path / "r.txt")


def test_progress_bar_counts_rows(classifier: Classifier, store: Store,
                                  tracker: MemoryTracker) -> None:
    backlog(tracker, 30)
    stream = io.StringIO()
    progress = Progress(stream, enabled=True, mininterval=0)
    execute([SCOPE], SweepOptions(), classifier=classifier, store=store,
            tracker_for=lambda p, s: tracker, progress=progress, out=io.StringIO())
    assert "30 issues" in stream.getvalue() and "github:o/r" in stream.getvalue()


def test_progress_is_quiet_without_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(stream)
    assert not progress.enabled
    progress.close()
    assert stream.getvalue() == ""


# --------------------------------------------------------------------------- command line


def test_cli_rejects_bad_scopes_and_missing_credentials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("BUGBAR_GITHUB_TOKEN", "BUGBAR_GITHUB_APP_ID", "BUGBAR_GITLAB_URL",
                 "BUGBAR_JIRA_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["sweep", "o/r", "--state", str(tmp_path / "s.db")]) == 2
    assert "a scope is github:owner/repo" in capsys.readouterr().err
    assert main(["sweep", "github:o/r", "--state", str(tmp_path / "s.db")]) == 2
    assert "no credentials configured for github" in capsys.readouterr().err
    assert main(["sweep", "github:o/r", "--since", "yesterday"]) == 2
    assert "not a date" in capsys.readouterr().err


def test_parse_since_and_duration() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-01-31") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_since("2026-01-31T12:00:00Z") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    with pytest.raises(ValueError):
        parse_duration("soon")


# --------------------------------------------------------------------------- schedule


class FakeTime:
    """A clock that only moves when the scheduler waits."""

    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        self.waits: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += timedelta(seconds=seconds)
        return len(self.waits) > 50  # stop eventually


def test_schedule_parses_periods_and_cron() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    day = Schedule.parse("24h")
    assert day.every == timedelta(hours=24)
    assert day.next_run(None, now) == now
    assert day.next_run(now, now) == now + timedelta(hours=24)
    cron = Schedule.parse("0 3 * * *")
    assert cron.next_run(None, now) == datetime(2026, 5, 2, 3, 0, tzinfo=UTC)
    # a slot missed while the server was down is caught up once
    assert cron.next_run(now - timedelta(days=3), now) < now
    for bad in ("30s", "every day", "61 3 * * *", "* * *"):
        with pytest.raises(ValueError):
            Schedule.parse(bad)


def test_scheduler_runs_on_time_and_remembers_the_last_run(store: Store) -> None:
    clock = FakeTime()
    ran: list[datetime] = []
    scheduler = SweepScheduler(Schedule.parse("24h"), lambda: ran.append(clock()) or None,
                               store=store, clock=clock, wait=clock.wait)
    scheduler.run_forever()
    assert ran[0] == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert all(b - a == timedelta(hours=24) for a, b in zip(ran, ran[1:], strict=False))
    assert max(clock.waits) <= 3600  # wakes up at least hourly
    # a restarted server does not sweep again before the period is over
    again = SweepScheduler(Schedule.parse("24h"), lambda: None, store=store, clock=clock)
    assert again.next_due() == ran[-1] + timedelta(hours=24)


def test_scheduler_retries_a_rate_limited_sweep_when_the_limit_resets(store: Store) -> None:
    clock = FakeTime()
    reset = clock.now + timedelta(minutes=40)
    result = SweepResult(dry_run=False, rules_version="x", started_at=clock.now,
                         stop_reason="budget", resume_after=reset.timestamp())
    scheduler = SweepScheduler(Schedule.parse("24h"), lambda: result, store=store, clock=clock)
    assert scheduler.run_pending()
    assert scheduler.next_due() == reset


def test_scheduler_thread_does_not_block_and_survives_a_failing_sweep() -> None:
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def job() -> None:
        calls.append(1)
        started.set()
        release.wait(5)
        raise RuntimeError("tracker down")

    scheduler = SweepScheduler(Schedule.parse("1h"), job)
    t0 = time.monotonic()
    scheduler.start()
    assert time.monotonic() - t0 < 0.5  # start() returns while the sweep runs
    assert started.wait(5)
    # the caller (the web server) goes on with its own work meanwhile
    assert sum(range(1000)) == 499500
    release.set()
    assert scheduler.stop(timeout=5)
    assert calls == [1] and scheduler.last_run is not None


def test_serve_hook_starts_the_periodic_sweep(classifier: Classifier, store: Store,
                                              tracker: MemoryTracker,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ref = tracker.add_issue("o/r", 1, *STEAL)
    bot = Bot(classifier=classifier, store=store, trackers={"github": lambda r, i: tracker})
    app = SimpleNamespace(state=SimpleNamespace())
    parser_args = SimpleNamespace(sweep_every="24h", sweep_scope=[SCOPE], sweep_max_changes=None,
                                  sweep_reserve=500, sweep_report=None)
    serve_hook(app, bot, Config(), parser_args)  # type: ignore[arg-type]
    scheduler: SweepScheduler = app.state.sweeper
    deadline = time.monotonic() + 10
    while scheduler.runs == 0 or scheduler.last_result is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert scheduler.stop(timeout=5)
    assert scheduler.last_result.counts[CHANGED] == 1
    assert "threat/model-stealing" in tracker.labels(ref)  # the server applies
    # without --sweep-every nothing starts
    quiet = SimpleNamespace(state=SimpleNamespace())
    monkeypatch.delenv("BUGBAR_SWEEP_EVERY", raising=False)
    serve_hook(quiet, bot, Config(), replace_ns(parser_args, sweep_every=None))  # type: ignore[arg-type]
    assert not hasattr(quiet.state, "sweeper")


def test_serve_hook_dry_run_config_and_bad_options(classifier: Classifier, store: Store,
                                                   tracker: MemoryTracker) -> None:
    from bot.cli import CliError

    bot = Bot(classifier=classifier, store=store, trackers={"github": lambda r, i: tracker})
    args = SimpleNamespace(sweep_every="24h", sweep_scope=None, sweep_max_changes=None,
                           sweep_reserve=500, sweep_report=None)
    with pytest.raises(CliError, match="--sweep-scope"):
        serve_hook(SimpleNamespace(state=SimpleNamespace()), bot, Config(), args)  # type: ignore[arg-type]
    with pytest.raises(CliError, match="cron"):
        serve_hook(SimpleNamespace(state=SimpleNamespace()), bot, Config(),  # type: ignore[arg-type]
                   replace_ns(args, sweep_every="daily", sweep_scope=[SCOPE]))
    ref = tracker.add_issue("o/r", 1, *STEAL)
    app = SimpleNamespace(state=SimpleNamespace())
    serve_hook(app, bot, replace(Config(), dry_run=True),  # type: ignore[arg-type]
               replace_ns(args, sweep_scope=[SCOPE]))
    deadline = time.monotonic() + 10
    while app.state.sweeper.last_result is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert app.state.sweeper.stop(timeout=5)
    assert app.state.sweeper.last_result.dry_run and tracker.writes == []
    assert ref


def test_serve_parser_accepts_the_sweep_options() -> None:
    from bot.cli import _load_extensions, build_parser

    _load_extensions()
    args = build_parser().parse_args(["serve", "--sweep-every", "0 3 * * *",
                                      "--sweep-scope", SCOPE, "--sweep-scope", "jira:SEC"])
    assert args.sweep_every == "0 3 * * *" and args.sweep_scope == [SCOPE, "jira:SEC"]
    args = build_parser().parse_args(["sweep", SCOPE, "--issue-state", "all", "--state", "x.db"])
    assert args.issue_state == "all" and args.state == "x.db" and not args.apply


def replace_ns(ns: SimpleNamespace, **changes: Any) -> SimpleNamespace:
    return SimpleNamespace(**{**vars(ns), **changes})


# --------------------------------------------------------------------------- checkpoint leases


def test_second_sweep_of_a_running_scope_is_refused(classifier: Classifier, store: Store,
                                                    tracker: MemoryTracker) -> None:
    import socket

    refs = backlog(tracker, 50)
    name = checkpoint_name(SCOPE, True)
    alive = f"{socket.gethostname()}:1:still-running:sweep"  # another host's view: alive
    assert store.claim_checkpoint(name, "other-host:42:x:sweep", 15) is None
    refused = run(classifier, store, tracker, apply=True)
    assert refused.scopes[0].error is not None and "another sweep" in refused.scopes[0].error
    assert refused.counts[CHANGED] == 0 and tracker.writes == []
    assert store.claim_checkpoint(name, alive, 15) == "other-host:42:x:sweep"
    store.release_checkpoint(name, "other-host:42:x:sweep")
    done = run(classifier, store, tracker, apply=True)
    assert done.complete and done.counts[CHANGED] == 5
    assert all(len(bot_comments(tracker, r)) == 1 for r in refs[9::10])
    assert store.claim_checkpoint(name, "next", 15) is None  # released when the sweep ended


def test_sweep_killed_on_this_host_is_resumed_at_once(classifier: Classifier, store: Store,
                                                      tracker: MemoryTracker) -> None:
    import socket

    refs = backlog(tracker, 250)
    first = run(classifier, store, tracker, apply=True, limit=130)
    assert first.stop_reason == "limit"
    name = checkpoint_name(SCOPE, True)
    # As if that sweep had been killed holding its lease: a pid that no longer exists.
    dead = f"{socket.gethostname()}:99999999:1:sweep"
    assert store.claim_checkpoint(name, dead, 15) is None
    second = run(classifier, store, tracker, apply=True)  # no waiting for the lease
    assert second.scopes[0].resumed and second.complete
    assert second.scopes[0].examined == 120
    assert all(len(bot_comments(tracker, r)) == 1 for r in refs[9::10])


def test_sweep_renews_its_checkpoint_lease_and_stops_when_it_lost_it(
        classifier: Classifier, store: Store, tracker: MemoryTracker) -> None:
    backlog(tracker, 250)
    name = checkpoint_name(SCOPE, True)
    beats: list[Any] = []
    pages: list[str] = []

    def on_page(scope: str, page: ListPage) -> None:
        pages.append(scope)
        if len(pages) == 2:
            assert beats[0].beat()  # the heartbeat renews while the sweep holds it
            store.release_checkpoint(name, "me")  # ... until someone else takes it over
            assert store.claim_checkpoint(name, "usurper", 15) is None
            assert not beats[0].beat()

    sweep = Sweep(classifier, store, lambda p, s: tracker, SweepOptions(apply=True),
                  owner="me", heartbeat=beats.append, on_page=on_page)
    result = sweep.run([SCOPE])
    assert result.scopes[0].error is not None and "lost the lease" in result.scopes[0].error
    assert store.claim_checkpoint(name, "x", 15) == "usurper"  # left to its new holder
