"""GitLabTracker against FakeGitLab: real python-gitlab over loopback HTTP, no real waiting.

Retries are the shared layer's (``bot.providers.retry``) with an injected sleep; every test
that involves a failure counts the requests the fake saw, so python-gitlab retrying on its own
would show up as an extra request (and, for 429s, as a call to its own sleep, which is patched
to fail the test).
"""

from __future__ import annotations

import logging
import re
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import gitlab
import pytest
from gitlab import exceptions as glexc

from bot.decide.classify import Classifier
from bot.decide.model import Access
from bot.decide.render import MARKER_PREFIX
from bot.events.model import IssueRef
from bot.handlers.triage import Triage
from bot.providers.base import HandOffRequest, IssueGone, Tracker
from bot.providers.gitlab import GitLabTracker, access_from_level, classify_gitlab_failure
from bot.providers.retry import Action, RateLimited, RetryPolicy, WritePacer
from bot.store import Store
from tests.fakes.gitlab_api import FakeGitLab

PUBLIC = "sec/ml/models"
PRIVATE = "sec/internal-tools"
STEAL = ("Model extraction of our production fraud detection model",
         "An attacker queried the scoring API and trained a substitute model.")
MARKED = f"{MARKER_PREFIX}rules=1 hash=ab -->\nbugbar says hi"


class RecordingMetrics:
    """Collects what the adapter reports."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.remaining: list[float] = []

    def api_call(self, provider: str, method: str, status: int | str) -> None:
        self.calls.append((provider, method, str(status)))

    def rate_limit(self, provider: str, remaining: float) -> None:
        self.remaining.append(remaining)


@pytest.fixture()
def fake() -> Iterator[FakeGitLab]:
    with FakeGitLab() as f:
        f.add_project(PUBLIC, visibility="public")
        f.add_project(PRIVATE, visibility="private")
        yield f


@pytest.fixture()
def sleeps() -> list[float]:
    return []


@pytest.fixture()
def metrics() -> RecordingMetrics:
    return RecordingMetrics()


@pytest.fixture(autouse=True)
def no_client_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-gitlab's own retry loop sleeps through ``gitlab.utils.time``: it must not run."""
    def boom(seconds: float) -> None:
        raise AssertionError(f"python-gitlab slept {seconds}s on its own")

    monkeypatch.setattr(gitlab.utils, "time", types.SimpleNamespace(sleep=boom,
                                                                    time=lambda: 0.0))


def make_tracker(fake: FakeGitLab, sleeps: list[float], **kwargs: Any) -> GitLabTracker:
    policy = kwargs.pop("policy", None) or RetryPolicy(
        sleep=sleeps.append, rand=lambda: 0.0, clock=lambda: 1_000_000.0)
    pacer = kwargs.pop("pacer", None) or WritePacer(0.0)
    return GitLabTracker(fake.url, fake.token, policy=policy, pacer=pacer, **kwargs)


@pytest.fixture()
def tracker(fake: FakeGitLab, sleeps: list[float], metrics: RecordingMetrics) -> GitLabTracker:
    return make_tracker(fake, sleeps, metrics=metrics)


def ref(scope: str, iid: int) -> IssueRef:
    return IssueRef("gitlab", scope, iid)


# -- reading -------------------------------------------------------------------------------


def test_is_a_tracker_and_asks_its_identity_once(fake: FakeGitLab,
                                                 tracker: GitLabTracker) -> None:
    as_tracker: Tracker = tracker
    assert as_tracker.provider == "gitlab"
    assert as_tracker.bot_identity() == "bugbar-bot"
    assert tracker.bot_identity() == "bugbar-bot"
    assert fake.count("GET", r"/api/v4/user$") == 1


def test_get_issue_snapshot(fake: FakeGitLab, tracker: GitLabTracker) -> None:
    iid = fake.add_issue(PUBLIC, "Title", "Body", labels=["bug", "team::ml"], author="carol")
    closed = fake.add_issue(PUBLIC, "Old", "", state="closed", confidential=True)
    snap = tracker.get_issue(ref(PUBLIC, iid))
    assert (snap.title, snap.body, snap.labels, snap.state, snap.author) == (
        "Title", "Body", ("bug", "team::ml"), "open", "carol")
    assert snap.ref == ref(PUBLIC, iid) and not snap.confidential and not snap.is_pull_request
    assert snap.updated_at is not None and snap.updated_at.tzinfo is not None
    assert snap.url.endswith(f"/{PUBLIC}/-/issues/{iid}")
    other = tracker.get_issue(ref(PUBLIC, closed))
    assert (other.state, other.confidential, other.body) == ("closed", True, "")


def test_list_comments_oldest_first_without_system_notes_over_pages(
    fake: FakeGitLab, tracker: GitLabTracker
) -> None:
    iid = fake.add_issue(PUBLIC, "t", "b")
    for n in range(230):
        fake.add_note(PUBLIC, iid, f"note {n}", author="dave")
    fake.add_note(PUBLIC, iid, "added ~bug label", system=True)
    comments = list(tracker.list_comments(ref(PUBLIC, iid)))
    assert [c.body for c in comments] == [f"note {n}" for n in range(230)]
    assert {c.author for c in comments} == {"dave"} and not any(c.author_is_bot for c in comments)
    notes = [r for r in fake.requests if r.path.endswith("/notes")]
    assert len(notes) == 3
    assert all(r.query["sort"] == ["asc"] and r.query["per_page"] == ["100"] for r in notes)


# -- labels --------------------------------------------------------------------------------


def test_add_labels_with_slashes_and_scopes_and_remove(fake: FakeGitLab,
                                                       tracker: GitLabTracker) -> None:
    iid = fake.add_issue(PUBLIC, "t", "b", labels=["bug"])
    r = ref(PUBLIC, iid)
    tracker.add_labels(r, ["threat/model-stealing", "severity::critical", "route/ssirp"])
    assert fake.labels_of(PUBLIC, iid) == ["bug", "route/ssirp", "severity::critical",
                                           "threat/model-stealing"]
    put = [q for q in fake.requests if q.method == "PUT"][-1]
    assert put.body == {"add_labels": "threat/model-stealing,severity::critical,route/ssirp"}
    assert "threat/model-stealing" in fake.project_labels(PUBLIC)  # created on the fly
    fake.clear_log()
    tracker.add_labels(r, ["threat/model-stealing"])  # already there: no change
    tracker.remove_label(r, "route/ssirp")
    tracker.remove_label(r, "never-there")  # not an error
    assert fake.writes == [f"gitlab:{PUBLIC}#{iid}:-label route/ssirp"]
    assert fake.labels_of(PUBLIC, iid) == ["bug", "severity::critical", "threat/model-stealing"]


def test_label_with_comma_is_refused_before_any_request(fake: FakeGitLab,
                                                        tracker: GitLabTracker) -> None:
    iid = fake.add_issue(PUBLIC, "t", "b")
    with pytest.raises(ValueError):
        tracker.add_labels(ref(PUBLIC, iid), ["a,b"])
    assert fake.count("PUT") == 0


# -- the bot's note ------------------------------------------------------------------------


def test_create_find_edit_the_one_note(fake: FakeGitLab, tracker: GitLabTracker) -> None:
    iid = fake.add_issue(PUBLIC, "t", "b")
    r = ref(PUBLIC, iid)
    assert tracker.find_bot_comment(r) is None
    created = tracker.create_comment(r, MARKED)
    assert created.author == "bugbar-bot" and created.author_is_bot
    found = tracker.find_bot_comment(r)
    assert found is not None and found.id == created.id and found.body == MARKED
    tracker.edit_comment(r, created.id, MARKED + " (edited)")
    assert [n["body"] for n in fake.notes(PUBLIC, iid, include_system=False)] == [
        MARKED + " (edited)"]
    assert fake.writes == [f"gitlab:{PUBLIC}#{iid}:note+ {created.id}",
                           f"gitlab:{PUBLIC}#{iid}:note~ {created.id}"]


def test_marker_in_someone_elses_note_is_never_trusted(fake: FakeGitLab,
                                                       tracker: GitLabTracker) -> None:
    iid = fake.add_issue(PUBLIC, "t", "b")
    r = ref(PUBLIC, iid)
    fake.add_note(PUBLIC, iid, MARKED, author="mallory")
    assert tracker.find_bot_comment(r) is None
    mine = tracker.create_comment(r, MARKED)
    fake.add_note(PUBLIC, iid, MARKED, author="mallory")
    found = tracker.find_bot_comment(r)
    assert found is not None and found.id == mine.id


def test_react_maps_plus_one_and_repeats_quietly(fake: FakeGitLab,
                                                 tracker: GitLabTracker) -> None:
    iid = fake.add_issue(PUBLIC, "t", "b")
    note = fake.add_note(PUBLIC, iid, "/triage severity critical", author="rita")
    tracker.react(ref(PUBLIC, iid), str(note), "+1")
    tracker.react(ref(PUBLIC, iid), str(note), "+1")  # "already been taken": fine
    tracker.react(ref(PUBLIC, iid), "", "eyes")
    assert fake.writes == [f"gitlab:{PUBLIC}#{iid}:award+ {note} thumbsup",
                           f"gitlab:{PUBLIC}#{iid}:award+ issue eyes"]


def test_timed_out_note_is_found_not_posted_twice(fake: FakeGitLab) -> None:
    """A POST that times out may still be applied; the retry finds it instead of reposting."""
    import time

    iid = fake.add_issue(PUBLIC, "t", "b")
    metrics = RecordingMetrics()
    policy = RetryPolicy(base_backoff=1.0, rand=lambda: 0.0, sleep=time.sleep, settle=0.3)
    tracker = GitLabTracker(fake.url, fake.token, policy=policy, pacer=WritePacer(0.0),
                            metrics=metrics, timeout=0.3)
    tracker.bot_identity()
    fake.delay_next("POST", r"/notes$", 0.5)
    created = tracker.create_comment(ref(PUBLIC, iid), MARKED)
    notes = fake.notes(PUBLIC, iid, include_system=False)
    assert [n["id"] for n in notes] == [int(created.id)]
    assert fake.count("POST", r"/notes$") == 1
    assert ("gitlab", "POST", "timeout") in metrics.calls


def test_dropped_connection_is_retried(fake: FakeGitLab, tracker: GitLabTracker,
                                       sleeps: list[float]) -> None:
    iid = fake.add_issue(PUBLIC, "t", "b")
    tracker.bot_identity()
    fake.drop_next("POST", r"/notes$")
    tracker.create_comment(ref(PUBLIC, iid), MARKED)
    assert len(fake.notes(PUBLIC, iid, include_system=False)) == 1
    assert sleeps == [1.0, 10.0]  # back-off, then the settle wait before looking


# -- permissions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "expected"), [
    (0, Access.NONE), (5, Access.NONE), (10, Access.READ), (15, Access.READ),
    (20, Access.TRIAGE), (30, Access.WRITE), (40, Access.MAINTAIN), (50, Access.ADMIN),
])
def test_access_levels(level: int, expected: Access) -> None:
    assert access_from_level(level) is expected


def test_reporter_guest_inherited_and_strangers(fake: FakeGitLab,
                                                tracker: GitLabTracker) -> None:
    r = ref(PUBLIC, fake.add_issue(PUBLIC, "t", "b"))
    fake.add_member(PUBLIC, "rita", "reporter")
    fake.add_member(PUBLIC, "gus", "guest")
    fake.add_member("sec", "olga", "owner")  # top group: inherited by sec/ml/models
    fake.add_user("stranger")
    assert tracker.permission(r, "rita") is Access.TRIAGE
    assert tracker.permission(r, "gus") is Access.READ
    assert tracker.permission(r, "olga") is Access.ADMIN
    assert tracker.permission(r, "stranger") is Access.NONE  # 404 from members/all
    assert tracker.permission(r, "nobody-by-that-name") is Access.NONE
    rita_id = fake.add_user("rita")["id"]
    assert tracker.permission(r, str(rita_id)) is Access.TRIAGE  # the webhook's user id
    assert fake.count("GET", r"/users$") == 5  # the id needed no lookup


def test_permission_failure_raises(fake: FakeGitLab, tracker: GitLabTracker,
                                   sleeps: list[float]) -> None:
    r = ref(PUBLIC, fake.add_issue(PUBLIC, "t", "b"))
    fake.add_member(PUBLIC, "rita", "reporter")
    fake.fail_next("GET", r"/members/all/", 403)
    with pytest.raises(glexc.GitlabHttpError):
        tracker.permission(r, "rita")
    assert sleeps == []
    fake.fail_next("GET", r"/members/all/", 503, times=10)
    with pytest.raises(glexc.GitlabHttpError):
        tracker.permission(r, "rita")
    assert fake.count("GET", r"/members/all/") == 1 + 5  # policy.max_attempts


# -- retries: ours, never python-gitlab's ---------------------------------------------------


def test_429_retry_after_is_waited_once_by_our_layer(fake: FakeGitLab, tracker: GitLabTracker,
                                                     sleeps: list[float],
                                                     metrics: RecordingMetrics) -> None:
    iid = fake.add_issue(PUBLIC, "t", "b")
    fake.fail_next("GET", rf"/issues/{iid}$", 429,
                   headers={"Retry-After": "7", "RateLimit-Remaining": "0"})
    assert tracker.get_issue(ref(PUBLIC, iid)).title == "t"
    assert sleeps == [7.0]
    assert fake.count("GET", rf"/issues/{iid}$") == 2
    assert ("gitlab", "GET", "429") in metrics.calls and ("gitlab", "GET", "200") in metrics.calls


def test_429_without_retry_after_waits_for_the_reset(fake: FakeGitLab, tracker: GitLabTracker,
                                                     sleeps: list[float]) -> None:
    iid = fake.add_issue(PUBLIC, "t", "b")
    fake.fail_next("GET", rf"/issues/{iid}$", 429,
                   headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "1000030"})
    tracker.get_issue(ref(PUBLIC, iid))
    assert sleeps == [31.0]  # reset - clock + 1 s margin


def test_note_limit_429_backs_off_and_writes_once(fake: FakeGitLab, tracker: GitLabTracker,
                                                  sleeps: list[float]) -> None:
    """GitLab's 60-notes-a-minute limit answers 429 with no Retry-After."""
    iid = fake.add_issue(PUBLIC, "t", "b")
    tracker.bot_identity()
    fake.fail_next("POST", r"/notes$", 429, headers={}, body={"message": {"error": "too many"}})
    tracker.create_comment(ref(PUBLIC, iid), MARKED)
    assert sleeps == [5.0]
    assert len(fake.notes(PUBLIC, iid, include_system=False)) == 1


def test_persistent_429_raises_rate_limited(fake: FakeGitLab, sleeps: list[float]) -> None:
    policy = RetryPolicy(sleep=sleeps.append, rand=lambda: 0.0, max_wait=100.0)
    tracker = make_tracker(fake, sleeps, policy=policy)
    iid = fake.add_issue(PUBLIC, "t", "b")
    fake.fail_next("GET", rf"/issues/{iid}$", 429, headers={"Retry-After": "60"}, times=5)
    with pytest.raises(RateLimited):
        tracker.get_issue(ref(PUBLIC, iid))
    assert sleeps == [60.0]


def test_5xx_is_retried_with_backoff(fake: FakeGitLab, tracker: GitLabTracker,
                                     sleeps: list[float]) -> None:
    iid = fake.add_issue(PUBLIC, "t", "b")
    fake.fail_next("PUT", rf"/issues/{iid}$", 502)
    fake.fail_next("PUT", rf"/issues/{iid}$", 500)
    tracker.add_labels(ref(PUBLIC, iid), ["threat/model-stealing"])
    assert sleeps == [1.0, 2.0]
    assert fake.count("PUT") == 3
    assert fake.labels_of(PUBLIC, iid) == ["threat/model-stealing"]


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_4xx_is_not_retried(fake: FakeGitLab, tracker: GitLabTracker, sleeps: list[float],
                            status: int) -> None:
    iid = fake.add_issue(PUBLIC, "t", "b")
    fake.fail_next("PUT", rf"/issues/{iid}$", status)
    with pytest.raises(glexc.GitlabError) as err:
        tracker.add_labels(ref(PUBLIC, iid), ["x"])
    assert err.value.response_code == status
    assert fake.count("PUT") == 1 and sleeps == []


def test_revoked_token_is_not_retried(fake: FakeGitLab, tracker: GitLabTracker,
                                      sleeps: list[float]) -> None:
    fake.revoke_token(fake.token)
    with pytest.raises(glexc.GitlabAuthenticationError):
        tracker.bot_identity()
    assert fake.count() == 1 and sleeps == []


def test_classifier_reads_http_dates_and_unknown_errors() -> None:
    exc = glexc.GitlabHttpError("Retry later", 429)
    exc.response_headers = {"retry-after": "Thu, 01 Jan 1970 00:00:10 GMT"}  # type: ignore[attr-defined]
    failure = classify_gitlab_failure(exc, now=4.0)
    assert failure.action is Action.RETRY_AFTER and failure.seconds == 6.0
    assert classify_gitlab_failure(ValueError("x")).action is Action.GIVE_UP
    assert classify_gitlab_failure(glexc.GitlabHttpError("", 503)).action is Action.BACKOFF


def test_logs_carry_no_token_and_no_issue_text(fake: FakeGitLab, tracker: GitLabTracker,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    iid = fake.add_issue(PUBLIC, "t", "PRIVATE-ISSUE-TEXT")
    tracker.bot_identity()
    fake.fail_next("GET", rf"/issues/{iid}$", 502)
    fake.fail_next("POST", r"/notes$", 503)
    tracker.get_issue(ref(PUBLIC, iid))
    tracker.create_comment(ref(PUBLIC, iid), "PRIVATE-COMMENT-TEXT")
    dump = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert caplog.records
    for secret in (fake.token, "PRIVATE-ISSUE-TEXT", "PRIVATE-COMMENT-TEXT"):
        assert secret not in dump


def test_writes_are_paced_reads_are_not(fake: FakeGitLab, sleeps: list[float]) -> None:
    paced: list[float] = []
    pacer = WritePacer(1.0, clock=lambda: 50.0, sleep=paced.append)
    tracker = make_tracker(fake, sleeps, pacer=pacer)
    iid = fake.add_issue(PUBLIC, "t", "b")
    r = ref(PUBLIC, iid)
    tracker.get_issue(r)
    tracker.add_labels(r, ["a"])
    tracker.remove_label(r, "a")
    tracker.get_issue(r)
    assert paced == [1.0]


def test_metrics_and_rate_limit_remaining(fake: FakeGitLab, tracker: GitLabTracker,
                                          metrics: RecordingMetrics) -> None:
    assert tracker.rate_limit_remaining() is None
    tracker.bot_identity()
    tracker.bot_identity()
    assert tracker.rate_limit_remaining() == 1999
    assert metrics.calls == [("gitlab", "GET", "200")] and metrics.remaining == [1999.0]


# -- backlog -------------------------------------------------------------------------------


def test_pagination_over_250_issues_survives_writes_between_pages(
    fake: FakeGitLab, tracker: GitLabTracker
) -> None:
    for n in range(250):
        fake.add_issue(PUBLIC, f"issue {n}", "b")
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = tracker.list_issues(PUBLIC, state="open", since=None, cursor=cursor)
        pages += 1
        seen += [s.ref.number for s in page.issues]
        if pages == 1:
            # The sweep labels an issue from page 1: it must not shift later pages.
            tracker.add_labels(page.issues[0].ref, ["threat/data-poisoning"])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3 and seen == list(range(1, 251))
    lists = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/issues")]
    assert [r.query["page"] for r in lists] == [["1"], ["2"], ["3"]]
    assert all(r.query["per_page"] == ["100"] and r.query["state"] == ["opened"] for r in lists)


def test_list_issues_since_and_state(fake: FakeGitLab, tracker: GitLabTracker) -> None:
    old = datetime(2025, 1, 1, tzinfo=UTC)
    fake.add_issue(PUBLIC, "old", "b", created_at=old, updated_at=old)
    new = fake.add_issue(PUBLIC, "new", "b", created_at=old,
                         updated_at=old + timedelta(days=30))
    closed = fake.add_issue(PUBLIC, "closed", "b", state="closed",
                            updated_at=old + timedelta(days=30))
    page = tracker.list_issues(PUBLIC, state="open", since=old + timedelta(days=1), cursor=None)
    assert [s.ref.number for s in page.issues] == [new] and page.next_cursor is None
    page = tracker.list_issues(PUBLIC, state="all", since=old + timedelta(days=1), cursor=None)
    assert [s.ref.number for s in page.issues] == [new, closed]
    assert page.issues[1].state == "closed"
    with pytest.raises(ValueError):
        tracker.list_issues(PUBLIC, state="bogus", since=None, cursor=None)


def test_next_link_cursor_only_to_this_gitlab(fake: FakeGitLab, tracker: GitLabTracker) -> None:
    with pytest.raises(ValueError):
        tracker.list_issues(PUBLIC, state="all", since=None,
                            cursor="https://evil.example/api/v4/projects/1/issues?cursor=x")
    assert fake.count() == 0


def test_expand_scope_includes_subgroups_excludes_archived(fake: FakeGitLab,
                                                           tracker: GitLabTracker) -> None:
    fake.add_project("sec/ml/deep/vision")
    fake.add_project("sec/old", archived=True)
    fake.add_project("other/thing")
    assert sorted(tracker.expand_scope("sec/*")) == sorted(
        [PUBLIC, PRIVATE, "sec/ml/deep/vision"])
    assert tracker.expand_scope(PUBLIC) == [PUBLIC]


# -- protect, and what the bot says in public ------------------------------------------------


@pytest.mark.parametrize(("mode", "project", "expected"), [
    ("public", PUBLIC, "confidential"),
    ("public", PRIVATE, None),
    ("always", PRIVATE, "confidential"),
    ("never", PUBLIC, None),
])
def test_protect_modes(fake: FakeGitLab, sleeps: list[float], mode: str, project: str,
                       expected: str | None) -> None:
    tracker = make_tracker(fake, sleeps, confidential_mode=mode)
    iid = fake.add_issue(project, "t", "b")
    assert tracker.protect(ref(project, iid), HandOffRequest()) == expected
    assert fake.issue(project, iid)["confidential"] is (expected is not None)


def test_bad_confidential_mode(fake: FakeGitLab, sleeps: list[float]) -> None:
    with pytest.raises(ValueError):
        make_tracker(fake, sleeps, confidential_mode="sometimes")


def test_critical_decision_makes_public_issue_confidential_not_private(
    fake: FakeGitLab, tracker: GitLabTracker, classifier: Classifier, store: Store
) -> None:
    triage = Triage(classifier, store)
    pub = ref(PUBLIC, fake.add_issue(PUBLIC, *STEAL))
    priv = ref(PRIVATE, fake.add_issue(PRIVATE, *STEAL))
    assert triage.run(tracker, pub).decision.severity.label == "critical"  # type: ignore[union-attr]
    assert triage.run(tracker, priv).decision.severity.label == "critical"  # type: ignore[union-attr]
    assert fake.issue(PUBLIC, pub.number)["confidential"] is True
    assert fake.issue(PRIVATE, priv.number)["confidential"] is False
    assert f"gitlab:{PUBLIC}#{pub.number}:confidential true" in fake.writes
    assert not any(w.startswith(f"gitlab:{PRIVATE}") and "confidential" in w
                   for w in fake.writes)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def test_public_note_repeats_nothing_from_the_issue(fake: FakeGitLab, tracker: GitLabTracker,
                                                    classifier: Classifier,
                                                    store: Store) -> None:
    title = "Model extraction of the acme-ranker v7 production model via /v2/score"
    body = ("Steps: loop 40000 queries against https://api.acme.example/v2/score with "
            "token sk-live-Zq81Xy, then trained a substitute model with 97.3% agreement. "
            "Script attached: steal_ranker.py --target acme-ranker --budget 40000")
    iid = fake.add_issue(PUBLIC, title, body)
    triage = Triage(classifier, store)
    assert triage.run(tracker, ref(PUBLIC, iid)).outcome == "triaged"
    notes = fake.notes(PUBLIC, iid, include_system=False)
    assert len(notes) == 1
    note = notes[0]["body"]
    for secret in ("acme", "sk-live", "Zq81Xy", "40000", "97.3", "steal_ranker", "/v2/score",
                   "api.acme.example"):
        assert secret.lower() not in note.lower()
    # No run of five words from the report appears in the note (rule phrases are shorter).
    note_text = " ".join(_words(note))
    report = _words(title + " " + body)
    shingles = {" ".join(report[i:i + 5]) for i in range(len(report) - 4)}
    assert not [s for s in shingles if s in note_text]


def test_settle_waits_follow_only_ambiguous_failures(fake: FakeGitLab, tracker: GitLabTracker,
                                                     sleeps: list[float]) -> None:
    """Two 502s, then a 429 with Retry-After: back-off and settle after each 502, only the
    Retry-After after the 429 (nothing is in flight after a refusal)."""
    iid = fake.add_issue(PUBLIC, "t", "b")
    tracker.bot_identity()
    fake.fail_next("POST", r"/notes$", 502, times=2)
    fake.fail_next("POST", r"/notes$", 429, headers={"Retry-After": "4"})
    tracker.create_comment(ref(PUBLIC, iid), MARKED)
    assert len(fake.notes(PUBLIC, iid, include_system=False)) == 1
    assert sleeps == [1.0, 10.0, 2.0, 10.0, 4.0]


# --------------------------------------------------------------------------- deleted issues


def test_deleted_issue_is_gone_after_one_project_check(fake: FakeGitLab, sleeps: list[float],
                                                       tracker: GitLabTracker) -> None:
    """GitLab answers 404 for a deleted issue; the project still being readable (one more
    GET, only on this path) makes it IssueGone: no retry."""
    iid = fake.add_issue(PUBLIC, "spam", "buy now")
    fake.delete_issue(PUBLIC, iid)
    with pytest.raises(IssueGone) as err:
        tracker.get_issue(ref(PUBLIC, iid))
    assert err.value.ref == ref(PUBLIC, iid)
    assert fake.count("GET", rf"/issues/{iid}$") == 1
    assert fake.count("GET", r"/projects/[^/]+$") == 1 and sleeps == []


def test_no_access_to_the_project_is_not_gone(fake: FakeGitLab, sleeps: list[float],
                                              tracker: GitLabTracker) -> None:
    """A 404 on a project the bot cannot read (or that does not exist) stays an error, and a
    401 asks nothing more."""
    fake.add_project("sec/hidden", visibility="private", bot_access=None)
    for scope in ("sec/hidden", "sec/never-existed"):
        with pytest.raises(glexc.GitlabGetError) as err:
            tracker.get_issue(ref(scope, 1))
        assert err.value.response_code == 404 and not isinstance(err.value, IssueGone)
    assert fake.count("GET", r"/projects/[^/]+$") == 2
    iid = fake.add_issue(PUBLIC, "title", "body")
    fake.revoke_token(fake.token)
    with pytest.raises(glexc.GitlabError) as err401:
        tracker.get_issue(ref(PUBLIC, iid))
    assert err401.value.response_code == 401
    assert fake.count("GET", r"/projects/[^/]+$") == 2 and sleeps == []
