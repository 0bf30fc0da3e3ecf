"""The backlog sweep through the real GitLabTracker (python-gitlab) against FakeGitLab over HTTP.

Requests are counted by the fake (``fake.count()``), effective writes by ``fake.writes``. Retry
waits and write pacing are recorded, never slept. The fake's rate-limit window is made so long
that the ``RateLimit-Remaining`` it reports never rolls over in the middle of a test.
"""

from __future__ import annotations

import io
import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import Bot
from bot.decide.classify import Classifier
from bot.decide.render import MARKER_PREFIX
from bot.decide.rules import RuleSet
from bot.events.gitlab import parse_gitlab
from bot.handlers.commands import Commands
from bot.handlers.sweep import (
    CHANGED,
    REDACTED_TITLE,
    UNCHANGED,
    WITHHELD_TITLE,
    IssueRow,
    Sweep,
    SweepOptions,
    SweepResult,
)
from bot.providers.base import ListPage
from bot.providers.gitlab import GitLabTracker
from bot.providers.retry import RetryPolicy, WritePacer
from bot.store import Store
from bot.sweep_cli import execute, format_summary, open_report
from tests.fakes.gitlab_api import FakeGitLab
from tests.sweep_helpers import BOT_LABELS, STEAL, T0, Sleeps, backlog, run_sweep

PROJECT = "sec/ml"
SCOPE = f"gitlab:{PROJECT}"
HOOK_SECRET = "gl-sweep-hook-secret"


@pytest.fixture()
def fake() -> Iterator[FakeGitLab]:
    # One rate-limit window for the whole test: RateLimit-Remaining only ever goes down.
    with FakeGitLab(rate_limit=100_000, rate_window=1e9) as f:
        f.add_project(PROJECT)
        yield f


def make_tracker(fake: FakeGitLab, sleeps: Sleeps | None = None) -> GitLabTracker:
    policy = RetryPolicy(sleep=sleeps or Sleeps(), jitter=0.0)
    return GitLabTracker(fake.url, fake.token, policy=policy,
                         pacer=WritePacer(0.0, sleep=Sleeps()))


def fill(fake: FakeGitLab, n: int, *, every: int = 10, path: str = PROJECT,
         noted: bool = False) -> list[int]:
    """``n`` issues created in the past, oldest first; every ``every``-th is a threat.
    ``noted``: each has a note by a human (so finding the bot's note costs a request)."""
    iids = [fake.add_issue(path, title, body, created_at=T0 + timedelta(minutes=i))
            for i, title, body in backlog(n, every)]
    if noted:
        for iid in iids:
            fake.add_note(path, iid, "same here")
    return iids


def sweep(classifier: Classifier, store: Store, tracker: Any, scopes: list[str] | None = None,
          **options: Any) -> SweepResult:
    return run_sweep(classifier, store, tracker, scopes or [SCOPE], **options)


def bot_notes(fake: FakeGitLab, iid: int, path: str = PROJECT) -> list[dict[str, Any]]:
    return [n for n in fake.notes(path, iid, include_system=False)
            if n["author"]["username"] == "bugbar-bot" and MARKER_PREFIX in n["body"]]


def bot_labels(fake: FakeGitLab, iid: int, path: str = PROJECT) -> list[str]:
    return [lbl for lbl in fake.labels_of(path, iid) if lbl.startswith(BOT_LABELS)]


def listed_pages(fake: FakeGitLab, path: str = PROJECT) -> list[str]:
    """The ``page`` of every issue-listing request of ``path``, in order."""
    return [r.query.get("page", ["1"])[-1] for r in fake.requests
            if r.method == "GET" and r.decoded_path.endswith(f"/projects/{path}/issues")]


def test_dry_run_writes_nothing(fake: FakeGitLab, classifier: Classifier,
                                store: Store) -> None:
    fill(fake, 120)
    result = sweep(classifier, store, make_tracker(fake))
    assert result.dry_run and result.complete
    assert result.counts[CHANGED] == 12 and result.counts[UNCHANGED] == 108
    assert fake.writes == []
    assert fake.count("POST") == fake.count("PUT") == fake.count("DELETE") == 0
    assert listed_pages(fake) == ["1", "2"]
    # A dry run never leaves a checkpoint an --apply run could mistake for its own.
    assert store.load_checkpoint(f"sweep:apply:{SCOPE}") is None


def test_apply_labels_threats_once_then_unchanged_backlog_is_cheap(
        fake: FakeGitLab, classifier: Classifier, store: Store) -> None:
    n = 250
    iids = fill(fake, n)
    tracker = make_tracker(fake)
    first = sweep(classifier, store, tracker, apply=True)
    assert first.complete and first.counts[CHANGED] == 25 and first.counts[UNCHANGED] == 225
    threats = set(iids[9::10])
    for iid in iids:
        if iid in threats:
            assert "threat/model-stealing" in fake.labels_of(PROJECT, iid), iid
            assert len(bot_notes(fake, iid)) == 1, iid
        else:
            assert bot_labels(fake, iid) == [] and bot_notes(fake, iid) == [], iid
    # The listing is in creation order, which our writes do not change: one pass, 3 pages.
    assert listed_pages(fake) == ["1", "2", "3"]

    # Same tracker (the server's periodic sweep), then a new one (a new `bugbar sweep` process).
    for label, again_tracker in (("same", tracker), ("same", tracker),
                                 ("fresh", make_tracker(fake))):
        fake.clear_log()
        again = sweep(classifier, store, again_tracker, apply=True)
        assert fake.writes == [], label
        assert fake.count() <= math.ceil(n / 100) + 5, (label, [r.path for r in fake.requests])
        assert fake.count("GET", r"/notes") == 0, label  # no per-issue request
        assert again.complete and again.counts[UNCHANGED] == n and again.counts[CHANGED] == 0
    for iid in threats:
        assert len(bot_notes(fake, iid)) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_storm_interrupts_then_next_run_resumes_from_the_checkpoint(
        fake: FakeGitLab, classifier: Classifier, store: Store, status: int) -> None:
    n = 250
    iids = fill(fake, n, every=25)
    sleeps = Sleeps()
    tracker = make_tracker(fake, sleeps)
    pages: list[int] = []

    def on_page(scope: str, page: ListPage) -> None:
        pages.append(len(page.issues))
        if len(pages) == 1:  # after page 1, every attempt at listing page 2 fails
            fake.fail_next("GET", r"/issues$", status, times=tracker.policy.max_attempts,
                           headers=None if status == 429 else {})

    first = Sweep(classifier, store, lambda p, s: tracker, SweepOptions(apply=True),
                  on_page=on_page).run([SCOPE])
    assert not first.complete
    if status == 429:  # Retry-After: 0 five times over: the retry layer gives up, rate limited
        assert first.stop_reason == "rate-limited" and first.resume_after is not None
    else:  # a 5xx storm fails the listing: the scope reports it and keeps its checkpoint
        assert first.stop_reason is None and "listing gitlab:sec/ml failed" in (
            first.scopes[0].error or "")
        assert sleeps.calls == [1.0, 2.0, 4.0, 8.0]  # backed off, never slept for real
    assert first.scopes[0].examined == 100
    assert fake.count("GET", r"/issues$") == 1 + tracker.policy.max_attempts
    saved = store.load_checkpoint(f"sweep:apply:{SCOPE}")
    assert saved is not None and saved["cursor"] == "2" and saved["counts"]["changed"] == 4

    fake.clear_log()
    second = sweep(classifier, store, make_tracker(fake), apply=True)
    assert second.complete and second.scopes[0].resumed
    earlier = {k: v for k, v in second.scopes[0].earlier.items() if v}
    assert earlier == {"changed": 4, "unchanged": 96}
    assert listed_pages(fake) == ["2", "3"]  # page 1 is not read again
    assert second.scopes[0].examined == n - 100
    assert store.load_checkpoint(f"sweep:apply:{SCOPE}") is None
    for iid in iids[24::25]:
        assert "threat/model-stealing" in fake.labels_of(PROJECT, iid)
        assert len(bot_notes(fake, iid)) == 1
    assert all(store.get_issue_state(f"gitlab:{PROJECT}#{i}") is not None for i in iids)


def test_reserve_reached_via_ratelimit_remaining_then_resumed(
        fake: FakeGitLab, classifier: Classifier, store: Store) -> None:
    iids = fill(fake, 150, every=15, noted=True)
    fake.rate_limit = 160  # each new issue costs a notes lookup: the budget runs out mid-page
    tracker = make_tracker(fake)
    first = sweep(classifier, store, tracker, apply=True, reserve=100)
    assert first.stop_reason == "budget" and not first.complete
    assert tracker.rate_limit_remaining() == 100  # stopped at the reserve, not below it
    assert not [r for r in fake.requests if r.status == 429]
    examined = first.scopes[0].examined
    assert 0 < examined < 150
    saved = store.load_checkpoint(f"sweep:apply:{SCOPE}")
    assert saved is not None and saved["stop_reason"] == "budget"

    fake.rate_limit = 100_000  # the window rolled over
    fake.clear_log()
    second = sweep(classifier, store, make_tracker(fake), apply=True, reserve=100)
    assert second.complete and second.scopes[0].resumed
    assert examined + second.scopes[0].examined == 150
    # The interrupted page is listed again, but its finished issues cost nothing more.
    assert fake.count("GET", r"/notes") == 150 - examined
    for iid in iids[14::15]:
        assert len(bot_notes(fake, iid)) == 1 and "threat/model-stealing" in fake.labels_of(
            PROJECT, iid)


def test_group_wildcard_sweeps_every_project_of_the_group(
        fake: FakeGitLab, classifier: Classifier, store: Store) -> None:
    fake.add_project("sec/sub/tools")
    fake.add_project("sec/old", archived=True)
    fake.add_project("other/x")
    a = fake.add_issue(PROJECT, *STEAL)
    b = fake.add_issue("sec/sub/tools", *STEAL)
    c = fake.add_issue("sec/old", *STEAL)
    d = fake.add_issue("other/x", *STEAL)
    tracker = make_tracker(fake)
    asked: list[str] = []

    def tracker_for(provider: str, scope: str) -> Any:
        asked.append(scope)
        return tracker

    result = Sweep(classifier, store, tracker_for, SweepOptions(apply=True)).run(["gitlab:sec/*"])
    assert result.complete and result.scopes[0].repos == 2 and result.counts[CHANGED] == 2
    assert asked == ["sec/*", PROJECT, "sec/sub/tools"]
    assert "threat/model-stealing" in fake.labels_of(PROJECT, a)
    assert "threat/model-stealing" in fake.labels_of("sec/sub/tools", b)
    assert bot_labels(fake, c, "sec/old") == [] and bot_labels(fake, d, "other/x") == []
    assert {r.scope for r in result.notable} == {f"gitlab:{PROJECT}", "gitlab:sec/sub/tools"}


def _note_hook(fake: FakeGitLab, iid: int, note_id: int, text: str, by: str) -> bytes:
    user = fake.add_user(by)
    issue = fake.issue(PROJECT, iid)
    payload = {
        "object_kind": "note", "event_type": "note",
        "user": {"id": user["id"], "name": user["name"], "username": by},
        "project": {"id": 1, "path_with_namespace": PROJECT, "web_url": f"{fake.url}/{PROJECT}"},
        "object_attributes": {"id": note_id, "note": text, "noteable_type": "Issue",
                              "system": False, "action": "create", "internal": False},
        "issue": {"id": issue["id"], "iid": iid, "title": issue["title"],
                  "description": issue["description"], "state": issue["state"],
                  "confidential": issue["confidential"], "type": "Issue",
                  "labels": [{"title": n} for n in issue["labels"]]},
    }
    return json.dumps(payload).encode()


def test_human_override_is_kept_by_later_sweeps(fake: FakeGitLab, classifier: Classifier,
                                                min_ruleset: RuleSet, store: Store,
                                                tmp_path: Path) -> None:
    iid = fake.add_issue(PROJECT, *STEAL)
    fake.add_member(PROJECT, "rita", "reporter")
    tracker = make_tracker(fake)
    sweep(classifier, store, tracker, apply=True)
    assert "threat/model-stealing" in fake.labels_of(PROJECT, iid)

    # A Reporter recategorises the issue with a slash command, delivered as GitLab sends it.
    bot = Bot(classifier, store, trackers={"gitlab": lambda ref, inst: tracker})
    bot.commands = Commands(bot.triage, store)
    text = "/triage membership-inference"
    note_id = fake.add_note(PROJECT, iid, text, author="rita")
    headers = {"X-Gitlab-Event": "Note Hook", "X-Gitlab-Token": HOOK_SECRET,
               "Idempotency-Key": str(uuid.uuid4())}
    event = parse_gitlab(headers, _note_hook(fake, iid, note_id, text, "rita"), [HOOK_SECRET])
    assert bot.process(event) == "commands-applied"
    wanted = "threat/membership-inference"
    assert wanted in fake.labels_of(PROJECT, iid)
    assert "threat/model-stealing" not in fake.labels_of(PROJECT, iid)

    # The same rules (the note bumped updated_at, so the issue is looked at again), a lost
    # state file (the marker in the bot's note remembers), then other rules (every issue is
    # decided again: the severity may move with them, the human's category stays).
    for label, clf, st in (("same rules", classifier, store),
                           ("no state", classifier, Store(tmp_path / "other.db")),
                           ("new rules", Classifier(min_ruleset), store)):
        fake.clear_log()
        result = sweep(clf, st, tracker, apply=True)
        assert result.complete, label
        if label != "new rules":
            assert result.counts[CHANGED] == 0 and fake.writes == [], label
        assert wanted in fake.labels_of(PROJECT, iid), label
        assert "threat/model-stealing" not in fake.labels_of(PROJECT, iid), label
        assert [r.categories for r in result.notable] in ([], [("membership-inference",)])
    assert len(bot_notes(fake, iid)) == 1


def test_confidential_titles_are_redacted_in_every_report(
        fake: FakeGitLab, classifier: Classifier, store: Store, tmp_path: Path) -> None:
    public = "sec/public"
    fake.add_project(public, visibility="public")
    secret = "Embargoed: weights of model X exfiltrated via the scoring API"
    hidden = fake.add_issue(public, secret, STEAL[1], confidential=True)
    open_ = fake.add_issue(public, *STEAL)  # critical, public: the sweep makes it confidential
    plain = fake.add_issue(public, "Broken link in the README", "404 on the docs link.")
    tracker = make_tracker(fake)
    rows: list[IssueRow] = []
    out = io.StringIO()
    reports = {ext: open_report(tmp_path / f"sweep.{ext}") for ext in ("json", "md", "csv")}

    class Fanout:
        path = tmp_path / "sweep.json"

        def row(self, row: IssueRow) -> None:
            rows.append(row)
            for r in reports.values():
                r.row(row)

        def close(self, result: SweepResult) -> None:
            for r in reports.values():
                r.close(result)

        def abort(self) -> None:  # pragma: no cover - the sweep does not fail here
            for r in reports.values():
                r.abort()

    code, result = execute([f"gitlab:{public}"], SweepOptions(apply=True),
                           classifier=classifier, store=store,
                           tracker_for=lambda p, s: tracker, report=Fanout(), out=out)
    assert code == 0 and result.complete
    assert fake.issue(public, open_)["confidential"] is True
    by_number = {r.number: r for r in rows}
    assert by_number[hidden].title == REDACTED_TITLE and by_number[hidden].confidential
    assert by_number[plain].title == "Broken link in the README"
    texts = {ext: (tmp_path / f"sweep.{ext}").read_text() for ext in reports}
    texts["summary"] = out.getvalue() + format_summary(result)
    for name, text in texts.items():
        assert secret not in text and "weights of model X" not in text, name
        assert STEAL[0] not in text and STEAL[0][:40] not in text, name
    doc = json.loads(texts["json"])
    assert {i["number"]: i["title"] for i in doc["issues"]}[hidden] == REDACTED_TITLE


def test_dry_run_withholds_titles_that_apply_would_make_confidential(
        fake: FakeGitLab, classifier: Classifier, store: Store, tmp_path: Path) -> None:
    public = "sec/public"
    fake.add_project(public, visibility="public")
    critical = fake.add_issue(public, *STEAL)  # --apply would make it confidential
    plain = fake.add_issue(public, "Broken link in the README", "404 on the docs link.")
    rows: list[IssueRow] = []
    report = open_report(tmp_path / "sweep.md")

    class Collect:
        path = tmp_path / "sweep.md"

        def row(self, row: IssueRow) -> None:
            rows.append(row)
            report.row(row)

        def close(self, result: SweepResult) -> None:
            report.close(result)

        def abort(self) -> None:  # pragma: no cover - the sweep does not fail here
            report.abort()

    code, result = execute([f"gitlab:{public}"], SweepOptions(apply=False),
                           classifier=classifier, store=store,
                           tracker_for=lambda p, s: make_tracker(fake), report=Collect(),
                           out=io.StringIO())
    assert code == 0 and result.complete
    assert fake.issue(public, critical)["confidential"] is False  # a dry run writes nothing
    by_number = {r.number: r for r in rows}
    assert by_number[critical].title == WITHHELD_TITLE
    assert not by_number[critical].confidential
    assert by_number[plain].title == "Broken link in the README"
    text = (tmp_path / "sweep.md").read_text()
    assert STEAL[0] not in text and WITHHELD_TITLE in text


def test_budget_stop_does_not_outlive_the_rate_limit_window(
        fake: FakeGitLab, classifier: Classifier, store: Store) -> None:
    """In ``serve --sweep-every`` the sweep reuses the webhooks' tracker. After a budget stop
    the tracker still holds the low ``RateLimit-Remaining`` of its last answer; once the
    window has reset (``RateLimit-Reset`` has passed) the next sweep must go on, not stop on
    that stale count before sending a single request."""
    fill(fake, 150, every=15, noted=True)
    fake.rate_limit = 160
    tracker = make_tracker(fake)
    first = sweep(classifier, store, tracker, apply=True, reserve=100)
    assert first.stop_reason == "budget"
    reset = tracker.rate_limit_reset()
    assert reset is not None

    fake.rate_limit = 100_000
    fake.clear_log()
    before_reset = datetime.fromtimestamp(reset - 60, UTC)
    early = Sweep(classifier, store, lambda p, s: tracker, SweepOptions(apply=True, reserve=100),
                  clock=lambda: before_reset).run([SCOPE])
    assert early.stop_reason == "budget" and fake.count() == 0  # still inside the window
    after_reset = datetime.fromtimestamp(reset + 1, UTC)
    later = Sweep(classifier, store, lambda p, s: tracker, SweepOptions(apply=True, reserve=100),
                  clock=lambda: after_reset).run([SCOPE])
    assert later.complete and later.scopes[0].resumed
    assert first.scopes[0].examined + later.scopes[0].examined == 150
