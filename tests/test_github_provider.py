"""GitHubTracker and the shared retry layer against FakeGitHub over real HTTP.

Waits are recorded, never slept: every policy and pacer gets a recording ``sleep``. The only
real waiting is PyGithub's own 1 s socket timeout in the timeout tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import Auth, Github, GithubException, UnknownObjectException

from bot.decide.render import MARKER_PREFIX
from bot.events.model import IssueRef
from bot.providers.base import Access, HandOffRequest, IssueGone, Tracker
from bot.providers.github import GitHubApp, GitHubTracker, classify_failure
from bot.providers.retry import (
    Action,
    Failure,
    RateLimited,
    RetryPolicy,
    WritePacer,
    call_with_retry,
)
from tests.fakes.github_api import FakeGitHub

TOKEN = "t0k-secret-value"
MARKER = f"{MARKER_PREFIX}rules=1.0 hash=abc123 state=e30= -->"


class Sleeps:
    """A recording sleep; ``then`` runs on each call (e.g. to move the fake's clock)."""

    def __init__(self, then: Callable[[float], None] | None = None) -> None:
        self.calls: list[float] = []
        self.then = then

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.then is not None:
            self.then(seconds)


class RecordingMetrics:
    """Satisfies bot.providers.retry.ApiMetrics."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int | str]] = []
        self.budget: list[float] = []

    def api_call(self, provider: str, method: str, status: int | str) -> None:
        self.calls.append((provider, method, status))

    def rate_limit(self, provider: str, remaining: float) -> None:
        self.budget.append(remaining)


class FakeClock:
    """A monotonic clock that only moves when the pacer 'sleeps'."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture()
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(tokens=[TOKEN], login="bugbar-bot") as f:
        f.add_repo("o/r", id=1000)
        yield f


@pytest.fixture()
def sleeps() -> Sleeps:
    return Sleeps()


def make(fake: FakeGitHub, sleeps: Sleeps, *, timeout: int = 5,
         metrics: RecordingMetrics | None = None, etag_cache: Any = None,
         **policy: Any) -> GitHubTracker:
    return GitHubTracker.from_token(
        TOKEN, fake.url, policy=RetryPolicy(sleep=sleeps, jitter=0.0, **policy),
        pacer=WritePacer(0.0, sleep=sleeps), metrics=metrics, etag_cache=etag_cache,
        timeout=timeout)


def ref(number: int, scope: str = "o/r") -> IssueRef:
    return IssueRef("github", scope, number)


# ----------------------------------------------------------------------------- Tracker methods


def test_is_a_tracker_and_knows_its_identity(fake: FakeGitHub, sleeps: Sleeps) -> None:
    tracker: Tracker = make(fake, sleeps)
    assert tracker.provider == "github"
    assert tracker.bot_identity() == "bugbar-bot"
    assert tracker.bot_identity() == "bugbar-bot"
    assert fake.count("GET", r"^/user$") == 1


def test_get_issue_and_pull_request_flag(fake: FakeGitHub, sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "Model stealing", "query the API", labels=["bug"], user="eve",
                       updated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    pr = fake.add_issue("o/r", "a PR", "diff", pull_request=True)
    t = make(fake, sleeps)
    snap = t.get_issue(ref(n))
    assert (snap.title, snap.body, snap.labels, snap.author, snap.state) == (
        "Model stealing", "query the API", ("bug",), "eve", "open")
    assert snap.updated_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert snap.url == "https://github.com/o/r/issues/1" and not snap.is_pull_request
    assert t.get_issue(ref(pr)).is_pull_request


def test_add_labels_with_slashes_in_one_request(fake: FakeGitHub, sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b")
    t = make(fake, sleeps)
    t.add_labels(ref(n), ["threat/model-stealing", "severity/critical"])
    assert fake.writes == ["github:o/r#1:+label threat/model-stealing",
                           "github:o/r#1:+label severity/critical"]
    assert fake.count("POST", r"/labels$") == 1
    t.add_labels(ref(n), [])
    assert fake.count("POST") == 1


def test_remove_label_with_slash_and_absent_label(fake: FakeGitHub, sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b", labels=["threat/data-poisoning", "bug"])
    t = make(fake, sleeps)
    t.remove_label(ref(n), "threat/data-poisoning")
    assert fake.issue_labels("o/r", n) == ["bug"]
    t.remove_label(ref(n), "threat/data-poisoning")  # 404 "Label does not exist": fine
    assert fake.count("DELETE", status=404) == 1 and sleeps.calls == []
    with pytest.raises(UnknownObjectException):
        t.remove_label(ref(99), "bug")  # a missing issue is an error


def test_list_comments_paginates_oldest_first(fake: FakeGitHub, sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b")
    ids = [fake.add_comment("o/r", n, f"c{i}", user="alice") for i in range(130)]
    t = make(fake, sleeps)
    comments = list(t.list_comments(ref(n)))
    assert [c.id for c in comments] == [str(i) for i in ids]
    assert comments[0].body == "c0" and comments[0].author == "alice"
    assert not comments[0].author_is_bot
    assert fake.count("GET", r"/comments") == 2


def test_find_bot_comment_ignores_forged_marker(fake: FakeGitHub, sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b")
    fake.add_comment("o/r", n, f"haha {MARKER}", user="mallory")
    fake.add_comment("o/r", n, "plain bot note", user="bugbar-bot")
    t = make(fake, sleeps)
    assert t.find_bot_comment(ref(n)) is None
    real = fake.add_comment("o/r", n, f"triage\n{MARKER}", user="bugbar-bot")
    found = t.find_bot_comment(ref(n))
    assert found is not None and found.id == str(real) and found.author == "bugbar-bot"
    assert found.author_is_bot and MARKER in found.body


def test_create_edit_and_react(fake: FakeGitHub, sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b")
    t = make(fake, sleeps)
    c = t.create_comment(ref(n), f"hello\n{MARKER}")
    assert c.author == "bugbar-bot" and c.author_is_bot
    t.edit_comment(ref(n), c.id, f"edited\n{MARKER}")
    assert fake.comment(int(c.id))["body"] == f"edited\n{MARKER}"
    human = fake.add_comment("o/r", n, "/triage severity critical", user="alice")
    t.react(ref(n), str(human), "+1")
    t.react(ref(n), str(human), "+1")  # GitHub answers 200 for an existing reaction
    assert fake.reactions(human) == [("bugbar-bot", "+1")]
    assert fake.writes == [f"github:o/r#1:comment+ {c.id}", f"github:o/r#1:comment~ {c.id}",
                           f"github:o/r#1:reaction+ {human} +1"]
    with pytest.raises(ValueError):
        t.react(ref(n), str(human), "thumbsup")


@pytest.mark.parametrize(("role", "access"), [
    ("admin", Access.ADMIN), ("maintain", Access.MAINTAIN), ("write", Access.WRITE),
    ("triage", Access.TRIAGE), ("read", Access.READ), ("none", Access.NONE),
])
def test_permission_uses_role_name(fake: FakeGitHub, sleeps: Sleeps, role: str,
                                   access: Access) -> None:
    fake.set_permission("o/r", "carol", role)
    assert make(fake, sleeps).permission(ref(1), "carol") is access


def test_permission_failures_raise(fake: FakeGitHub, sleeps: Sleeps) -> None:
    t = make(fake, sleeps)
    fake.fail_next("GET", r"/permission$", 500, times=5)
    with pytest.raises(GithubException) as err:
        t.permission(ref(1), "carol")
    assert err.value.status == 500 and len(sleeps.calls) == 4
    fake.set_permission("o/r", "bugbar-bot", "read")  # may not read others' permissions
    with pytest.raises(GithubException) as err:
        t.permission(ref(1), "carol")
    assert err.value.status == 403
    with pytest.raises(ValueError):
        t.permission(ref(1), "../../admin")


def test_list_issues_pages_with_cursors(fake: FakeGitHub, sleeps: Sleeps) -> None:
    for i in range(250):
        fake.add_issue("o/r", f"issue {i}", "b", pull_request=i % 50 == 0,
                       updated_at=1_700_000_000 + i)
    t = make(fake, sleeps)
    pages, cursor = [], None
    while True:
        page = t.list_issues("o/r", state="open", since=None, cursor=cursor)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [len(p.issues) for p in pages] == [100, 100, 50]
    assert fake.count("GET", r"/issues\?") == 3
    assert pages[0].next_cursor is not None and "/repositories/1000/issues" in pages[0].next_cursor
    numbers = [s.ref.number for p in pages for s in p.issues]
    assert numbers == list(range(1, 251))  # least recently updated first
    assert {s.ref.number for p in pages for s in p.issues if s.is_pull_request} == {
        1, 51, 101, 151, 201}
    with pytest.raises(ValueError):
        t.list_issues("o/r", state="open", since=None, cursor="https://evil.example/x")


def test_list_issues_since_and_conditional_requests(fake: FakeGitHub, sleeps: Sleeps) -> None:
    fake.add_issue("o/r", "old", "b", updated_at=datetime(2025, 1, 1, tzinfo=UTC))
    fake.add_issue("o/r", "new", "b", updated_at=datetime(2026, 1, 1, tzinfo=UTC))
    cache: dict[str, tuple[str, str]] = {}

    class Cache:
        def get_etag(self, url: str) -> tuple[str, str] | None:
            return cache.get(url)

        def put_etag(self, url: str, etag: str, payload: str) -> None:
            cache[url] = (etag, payload)

    t = make(fake, sleeps, etag_cache=Cache())
    since = datetime(2025, 6, 1, tzinfo=UTC)
    first = t.list_issues("o/r", state="all", since=since, cursor=None)
    assert [s.title for s in first.issues] == ["new"] and first.etag
    budget = t.rate_limit_remaining()
    again = t.list_issues("o/r", state="all", since=since, cursor=None)
    # 304: the cached page is current, so its issues come back without spending budget.
    assert again.not_modified and again.next_cursor is None
    assert [i.ref.number for i in again.issues] == [i.ref.number for i in first.issues]
    assert again.etag == first.etag
    assert t.rate_limit_remaining() == budget  # a 304 is free
    assert fake.count("GET", r"/issues\?", status=304) == 1


def test_expand_scope_org_user_and_plain(fake: FakeGitHub, sleeps: Sleeps) -> None:
    fake.add_repo("o/a")
    fake.add_repo("o/hidden", private=True)
    fake.set_permission("o/hidden", "bugbar-bot", "none")
    fake.add_repo("bugbar-bot/mine", owner_type="User", private=True)
    fake.add_repo("carol/pub", owner_type="User")
    t = make(fake, sleeps)
    assert t.expand_scope("o/*") == ["o/a", "o/r"]
    assert t.expand_scope("bugbar-bot/*") == ["bugbar-bot/mine"]
    assert t.expand_scope("carol/*") == ["carol/pub"]
    assert t.expand_scope("o/r") == ["o/r"]
    with pytest.raises(ValueError):
        t.expand_scope("../x")


def test_protect_and_escalate_do_nothing(fake: FakeGitHub, sleeps: Sleeps) -> None:
    t = make(fake, sleeps)
    assert t.protect(ref(1), HandOffRequest()) is None and t.escalate(ref(1), "s") is None
    assert fake.requests == []


def test_rate_limit_remaining_and_metrics(fake: FakeGitHub, sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b")
    metrics = RecordingMetrics()
    t = make(fake, sleeps, metrics=metrics)
    assert t.rate_limit_remaining() is None
    fake.set_rate_limit(remaining=42)
    t.get_issue(ref(n))
    assert t.rate_limit_remaining() == 41 == fake.remaining
    t.add_labels(ref(n), ["x"])
    assert t.rate_limit_remaining() == 40
    assert metrics.calls == [("github", "GET", 200), ("github", "POST", 200)]
    assert metrics.budget == [41, 40]
    assert t.rate_limit_reset() == int(fake.reset_at)


# ----------------------------------------------------------------------------- retries


def test_pygithub_retry_and_throttle_are_switched_off(fake: FakeGitHub, sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b")
    default = Github(auth=Auth.Token(TOKEN), base_url=fake.url)  # GithubRetry, 0.25 s/1 s pauses
    t = GitHubTracker(default, policy=RetryPolicy(max_attempts=1, sleep=sleeps),
                      pacer=WritePacer(0.0))
    fake.fail_next("GET", r"/issues/1$", 502, times=3)
    started = time.monotonic()
    with pytest.raises(GithubException):
        t.get_issue(ref(n))
    for label in "abc":
        t.add_labels(ref(n), [label])
    assert fake.count("GET", r"/issues/1$") == 1  # PyGithub did not retry behind our back
    assert time.monotonic() - started < 1.0  # nor pause between writes


def test_502_then_success(fake: FakeGitHub, sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b")
    metrics = RecordingMetrics()
    fake.fail_next("GET", r"/issues/1$", 502)
    assert make(fake, sleeps, metrics=metrics).get_issue(ref(n)).title == "t"
    assert sleeps.calls == [1.0]
    assert metrics.calls == [("github", "GET", 502), ("github", "GET", 200)]


def test_5xx_backs_off_exponentially_then_gives_up(fake: FakeGitHub, sleeps: Sleeps) -> None:
    fake.add_issue("o/r", "t", "b")
    fake.fail_next("GET", r"/issues/1$", 503, times=10)
    with pytest.raises(GithubException) as err:
        make(fake, sleeps, max_attempts=4).get_issue(ref(1))
    assert err.value.status == 503
    assert sleeps.calls == [1.0, 2.0, 4.0] and fake.count("GET", r"/issues/1$") == 4


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_limit_with_retry_after(fake: FakeGitHub, sleeps: Sleeps, status: int) -> None:
    n = fake.add_issue("o/r", "t", "b")
    fake.fail_secondary_rate_limit("POST", r"/labels$", retry_after=7, status=status,
                                   content_creation=True)
    make(fake, sleeps).add_labels(ref(n), ["x"])
    assert sleeps.calls == [7.0]
    assert fake.count("POST", r"/labels$") == 2 and fake.issue_labels("o/r", n) == ["x"]


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_limit_without_retry_after_waits_a_minute_then_doubles(
        fake: FakeGitHub, sleeps: Sleeps, status: int) -> None:
    # PyGithub's own GithubRetry would not retry a 429 without Retry-After at all.
    n = fake.add_issue("o/r", "t", "b")
    fake.fail_secondary_rate_limit("GET", r"/issues/1$", retry_after=None, status=status,
                                   times=2)
    make(fake, sleeps).get_issue(ref(n))
    assert sleeps.calls == [60.0, 120.0]


def test_secondary_limit_beyond_budget_raises_rate_limited(fake: FakeGitHub,
                                                           sleeps: Sleeps) -> None:
    fake.add_issue("o/r", "t", "b")
    fake.fail_secondary_rate_limit("GET", r"/issues/1$", retry_after=None, times=10)
    with pytest.raises(RateLimited):
        make(fake, sleeps, max_wait=200).get_issue(ref(1))
    assert sleeps.calls == [60.0, 120.0]


def test_primary_limit_sleeps_until_reset(fake: FakeGitHub) -> None:
    n = fake.add_issue("o/r", "t", "b")
    sleeps = Sleeps(then=fake.advance)  # time passes on the server while we wait
    t = make(fake, sleeps)
    fake.set_rate_limit(remaining=0, reset_in=30)
    assert t.get_issue(ref(n)).title == "t"
    assert len(sleeps.calls) == 1 and 29.0 <= sleeps.calls[0] <= 32.0  # reset + 1 s margin
    assert fake.count("GET", r"/issues/1$", status=403) == 1


def test_primary_limit_beyond_max_wait_raises_rate_limited(fake: FakeGitHub,
                                                           sleeps: Sleeps) -> None:
    fake.add_issue("o/r", "t", "b")
    fake.set_rate_limit(remaining=0, reset_in=3600)
    with pytest.raises(RateLimited) as err:
        make(fake, sleeps, max_wait=300).get_issue(ref(1))
    assert sleeps.calls == [] and fake.count("GET") == 1
    assert abs(err.value.reset_at - (int(fake.reset_at) + 1)) <= 2


def test_timeout_then_success(fake: FakeGitHub, sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b")
    metrics = RecordingMetrics()
    fake.delay_next("GET", r"/issues/1$", 1.6)
    assert make(fake, sleeps, timeout=1, metrics=metrics).get_issue(ref(n)).title == "t"
    assert sleeps.calls == [1.0]
    assert metrics.calls[0] == ("github", "GET", "timeout")


@pytest.mark.parametrize(("status", "method", "path"), [
    (404, "GET", r"/issues/1$"), (422, "POST", r"/labels$"), (401, "GET", r"/issues/1$"),
    (410, "GET", r"/issues/1$"),
])
def test_other_4xx_are_not_retried(fake: FakeGitHub, sleeps: Sleeps, status: int, method: str,
                                   path: str) -> None:
    n = fake.add_issue("o/r", "t", "b")
    fake.fail_next(method, path, status)
    t = make(fake, sleeps)
    with pytest.raises((GithubException, IssueGone)) as err:
        if method == "GET":
            t.get_issue(ref(n))
        else:
            t.add_labels(ref(n), ["x"])
    # 410 Gone on an issue: the definite answer IssueGone, raised from the 410.
    exc = err.value.__cause__ if isinstance(err.value, IssueGone) else err.value
    assert isinstance(exc, GithubException) and exc.status == status
    assert isinstance(err.value, IssueGone) == (status == 410)
    assert fake.count(method, path) == 1 and sleeps.calls == []


def test_comment_post_timeout_after_creation_posts_once(fake: FakeGitHub) -> None:
    n = fake.add_issue("o/r", "t", "b")
    fake.add_comment("o/r", n, f"forged {MARKER}", user="mallory")

    def let_server_finish(_: float) -> None:
        # Stands in for the back-off: by the time we look, GitHub has stored the comment.
        deadline = time.monotonic() + 5
        while fake.count("POST", r"/comments$", status=201) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)

    sleeps = Sleeps(then=let_server_finish)
    fake.delay_next("POST", r"/issues/1/comments$", 1.5)
    body = f"triage result\n{MARKER}"
    comment = make(fake, sleeps, timeout=1).create_comment(ref(n), body)
    bot_comments = [c for c in fake.comments("o/r", n) if c["user"]["login"] == "bugbar-bot"]
    assert len(bot_comments) == 1 and comment.id == str(bot_comments[0]["id"])
    assert fake.count("POST", r"/comments$") == 1 and sleeps.calls == [1.0, 10.0]  # + settle


def test_comment_post_5xx_before_creation_posts_after_looking(fake: FakeGitHub,
                                                              sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b")
    fake.fail_next("POST", r"/issues/1/comments$", 502)
    comment = make(fake, sleeps).create_comment(ref(n), "a command reply")
    assert [c["id"] for c in fake.comments("o/r", n)] == [int(comment.id)]
    assert fake.count("GET", r"/issues/1/comments") == 1  # looked before re-posting
    assert fake.count("POST", r"/comments$") == 2


def test_write_pacing_between_writes(fake: FakeGitHub, sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b")
    clock = FakeClock()
    t = GitHubTracker.from_token(
        TOKEN, fake.url, policy=RetryPolicy(sleep=sleeps, jitter=0.0),
        pacer=WritePacer(1.0, clock=clock, sleep=clock.sleep))
    t.get_issue(ref(n))
    t.add_labels(ref(n), ["a"])
    assert clock.sleeps == []  # reads are not paced, the first write goes at once
    t.add_labels(ref(n), ["b"])
    t.remove_label(ref(n), "a")
    assert clock.sleeps == [1.0, 1.0]
    clock.now += 5
    t.add_labels(ref(n), ["c"])
    assert clock.sleeps == [1.0, 1.0]


def test_logs_carry_no_token_and_no_issue_text(fake: FakeGitHub, sleeps: Sleeps,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    n = fake.add_issue("o/r", "t", "PRIVATE-ISSUE-TEXT")
    fake.fail_next("GET", r"/issues/1$", 502)
    t = make(fake, sleeps)
    t.get_issue(ref(n))
    t.create_comment(ref(n), "PRIVATE-COMMENT-TEXT")
    dump = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert caplog.records
    for secret in (TOKEN, "PRIVATE-ISSUE-TEXT", "PRIVATE-COMMENT-TEXT"):
        assert secret not in dump


# ----------------------------------------------------------------------------- GitHub App


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.fixture()
def app_fake(app_key: tuple[str, str]) -> Iterator[FakeGitHub]:
    with FakeGitHub(tokens=[], app_id=4242, app_slug="bugbar", app_public_key=app_key[1]) as f:
        f.add_repo("o/r", id=1000)
        f.add_repo("o/other")
        f.add_repo("x/elsewhere")
        f.add_installation(77, "o")
        f.add_installation(88, "x", repos=["x/elsewhere"])
        yield f


BAD_KEY = "-----BEGIN PRIVATE KEY-----\nMIIsecretbutbroken\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize("key", [BAD_KEY, "not a key at all", ""])
def test_app_refuses_a_malformed_key_up_front_without_echoing_it(key: str) -> None:
    with pytest.raises(ValueError) as err:
        GitHubApp(4242, key, "http://127.0.0.1:9")
    assert "PEM private key" in str(err.value)
    assert "MIIsecret" not in str(err.value)


def test_serve_setup_turns_a_malformed_key_into_one_config_error() -> None:
    from bot.app_cli import build_trackers
    from bot.cli import CliError
    from bot.config import Config

    with pytest.raises(CliError, match="BUGBAR_GITHUB_PRIVATE_KEY: not a PEM private key"):
        build_trackers(Config(github_app_id="4242", github_private_key=BAD_KEY), None)


def test_token_and_app_both_set_is_said_out_loud(
    app_key: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    from bot.app_cli import build_trackers
    from bot.config import Config

    config = Config(github_token=TOKEN, github_app_id="4242", github_private_key=app_key[0])
    with caplog.at_level(logging.WARNING, logger="bugbar.cli"):
        trackers = build_trackers(config, None)
    tracker = trackers["github"](IssueRef("github", "o/r", 1), None)
    assert isinstance(tracker, GitHubTracker)
    assert any("both set" in r.getMessage() for r in caplog.records)


def make_app(fake: FakeGitHub, key: str, sleeps: Sleeps, **kw: Any) -> GitHubApp:
    return GitHubApp(4242, key, fake.url, policy=RetryPolicy(sleep=sleeps, jitter=0.0),
                     pacer=WritePacer(0.0, sleep=sleeps), **kw)


def test_app_comments_as_bot_and_reuses_its_token(app_fake: FakeGitHub,
                                                  app_key: tuple[str, str],
                                                  sleeps: Sleeps) -> None:
    issued: list[str] = []
    app = make_app(app_fake, app_key[0], sleeps, on_token=issued.append)
    n = app_fake.add_issue("o/r", "t", "b")
    t = app.for_repo("o/r")
    assert t is app.for_installation(77) and t.installation_id == 77
    assert t.bot_identity() == "bugbar[bot]"
    c = t.create_comment(ref(n), f"triage\n{MARKER}")
    assert app_fake.comment(int(c.id))["user"]["login"] == "bugbar[bot]"
    assert t.find_bot_comment(ref(n)) == c
    t.add_labels(ref(n), ["threat/model-stealing"])
    assert len(app_fake.installation_tokens) == 1 == len(issued)
    assert issued == app_fake.installation_tokens
    assert t.expand_scope("o/*") == ["o/other", "o/r"]
    assert app.for_repo("x/elsewhere").expand_scope("x/*") == ["x/elsewhere"]
    assert app_fake.count("GET", r"/repos/o/r/installation") == 1


def test_app_recovers_from_token_expiry_mid_run(app_fake: FakeGitHub, app_key: tuple[str, str],
                                                sleeps: Sleeps) -> None:
    app = make_app(app_fake, app_key[0], sleeps)
    n = app_fake.add_issue("o/r", "t", "b")
    t = app.for_installation(77)
    t.get_issue(ref(n))
    app_fake.expire_installation_tokens()
    t.add_labels(ref(n), ["x"])
    assert app_fake.issue_labels("o/r", n) == ["x"]
    assert len(app_fake.installation_tokens) == 2
    assert app_fake.count("POST", r"/labels$", status=401) == 1 and sleeps.calls == []


def test_app_refreshes_token_before_it_expires(app_fake: FakeGitHub, app_key: tuple[str, str],
                                               sleeps: Sleeps) -> None:
    offset = [0.0]
    app = make_app(app_fake, app_key[0], sleeps, refresh_margin=300,
                   clock=lambda: time.time() + offset[0])
    n = app_fake.add_issue("o/r", "t", "b")
    t = app.for_installation(77)
    t.get_issue(ref(n))
    offset[0] = 3600 - 200  # within the margin of the 1 h lifetime
    t.get_issue(ref(n))
    assert len(app_fake.installation_tokens) == 2
    assert app_fake.count(status=401) == 0


# ----------------------------------------------------------------------------- retry layer


def test_retry_layer_gives_up_at_once_and_classifies_plain_errors() -> None:
    sleeps = Sleeps()
    calls = []

    def boom() -> None:
        calls.append(1)
        raise KeyError("x")

    with pytest.raises(KeyError):
        call_with_retry(boom, RetryPolicy(sleep=sleeps), classify_failure, what="t")
    assert calls == [1] and sleeps.calls == []
    assert classify_failure(TimeoutError()).action is Action.BACKOFF
    assert classify_failure(ConnectionResetError()).action is Action.BACKOFF


def test_retry_layer_http_date_retry_after_and_jitter_bounds() -> None:
    exc = GithubException(503, {"message": "x"}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    failure = classify_failure(exc)
    assert failure.action is Action.RETRY_AFTER and failure.reset_at == 1445412480.0
    assert not failure.rate_limited
    sleeps = Sleeps()
    attempts = iter([ValueError(), ValueError(), None])

    def flaky() -> str:
        err = next(attempts)
        if err is not None:
            raise err
        return "ok"

    policy = RetryPolicy(sleep=sleeps, jitter=0.5, rand=lambda: 1.0, base_backoff=2.0)
    assert call_with_retry(flaky, policy, lambda e: Failure.backoff(reason="x"), what="t") == "ok"
    assert sleeps.calls == [3.0, 6.0]


@pytest.mark.parametrize(
    ("exc", "ambiguous"),
    [
        (GithubException(502, {"message": "Bad Gateway"}, None), True),
        (GithubException(422, {"message": "Validation Failed"}, None), False),
        (requests.exceptions.ReadTimeout(), True),
        (requests.exceptions.ConnectionError(), True),
        (ValueError("bug"), False),
        (GithubException(403, {"message": "secondary rate limit"}, {"Retry-After": "3"}), False),
        (GithubException(429, {"message": "Too Many Requests"}, None), False),
        (requests.exceptions.ConnectTimeout(), False),
        (requests.exceptions.ConnectionError(ConnectionRefusedError(111, "refused")), False),
        (ConnectionResetError(104, "Connection reset by peer"), True),
    ],
    ids=["5xx", "4xx", "timeout", "dropped", "other", "403-rate-limit", "429",
         "connect-timeout", "refused", "reset"],
)
def test_maybe_delivered(exc: BaseException, ambiguous: bool) -> None:
    from bot.providers.retry import maybe_delivered

    assert maybe_delivered(exc) is ambiguous


def test_settle_waits_follow_only_ambiguous_failures(fake: FakeGitHub, sleeps: Sleeps) -> None:
    """Two 502s and a secondary-rate-limit 403 before the POST goes through: the back-off and
    Retry-After waits, plus one settle wait after each 502 and none after the 403."""
    n = fake.add_issue("o/r", "t", "b")
    fake.fail_next("POST", r"/issues/1/comments$", 502, times=2)
    fake.fail_secondary_rate_limit("POST", r"/issues/1/comments$", retry_after=3)
    clock_calls: list[float] = []

    def clock() -> float:
        clock_calls.append(1.0)
        return 1_700_000_000.0

    tracker = make(fake, sleeps, clock=clock)
    comment = tracker.create_comment(ref(n), f"triage\n{MARKER}")
    assert sleeps.calls == [1.0, 10.0, 2.0, 10.0, 3.0]  # back-off, settle, back-off, settle, 403
    assert sum(sleeps.calls) == 26.0  # was 36: a settle wait after the 403 too
    assert [c["id"] for c in fake.comments("o/r", n)] == [int(comment.id)]
    assert fake.count("POST", r"/comments$") == 4
    assert fake.count("GET", r"/issues/1/comments") == 3  # looked before each re-post


def test_rate_limited_post_retries_without_settle_or_look(fake: FakeGitHub,
                                                          sleeps: Sleeps) -> None:
    n = fake.add_issue("o/r", "t", "b")
    fake.fail_secondary_rate_limit("POST", r"/issues/1/comments$", retry_after=7, status=429)
    make(fake, sleeps).create_comment(ref(n), f"triage\n{MARKER}")
    assert sleeps.calls == [7.0]  # exactly the Retry-After: a 429 was not carried out
    assert fake.count("GET", r"/issues/1/comments") == 0
    assert len(fake.comments("o/r", n)) == 1


# ----------------------------------------------------------------------------- deleted issues


def test_deleted_issue_is_gone_after_one_request(fake: FakeGitHub, sleeps: Sleeps) -> None:
    """GitHub answers 410 Gone for an issue deleted from a readable repository: a definite
    answer (IssueGone), one request, no retry."""
    n = fake.add_issue("o/r", "spam", "buy now")
    fake.delete_issue("o/r", n)
    t = make(fake, sleeps)
    with pytest.raises(IssueGone) as err:
        t.get_issue(ref(n))
    assert err.value.ref == ref(n) and "410" in err.value.reason
    assert fake.count("GET", rf"/issues/{n}$", status=410) == 1 and sleeps.calls == []


def test_missing_issue_or_repository_is_not_gone(fake: FakeGitHub, sleeps: Sleeps) -> None:
    """404 (never existed, or no access to the repository) and 401 stay errors."""
    t = make(fake, sleeps)
    for missing in (ref(99), ref(1, "o/no-access")):
        with pytest.raises(UnknownObjectException) as err:
            t.get_issue(missing)
        assert not isinstance(err.value, IssueGone) and err.value.status == 404
    n = fake.add_issue("o/r", "title", "body")
    fake.fail_next("GET", rf"/issues/{n}$", 401)
    with pytest.raises(GithubException) as err401:
        t.get_issue(ref(n))
    assert err401.value.status == 401
    assert sleeps.calls == []
