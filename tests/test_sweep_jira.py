"""The backlog sweep through the real JiraTracker (the ``jira`` library) against FakeJira over
HTTP, on both flavours: Cloud pages with ``/search/jql`` and ``nextPageToken``, Data Center
with ``/search`` and ``startAt``.

Requests are counted by the fake (``fake.count()``), effective writes by ``fake.writes``. Retry
waits and write pacing are recorded, never slept.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.decide.classify import Classifier
from bot.events.model import Event, EventKind, IssueRef
from bot.handlers.commands import Commands
from bot.handlers.sweep import CHANGED, UNCHANGED, Sweep, SweepOptions, SweepResult
from bot.handlers.triage import Triage
from bot.providers.base import ListPage
from bot.providers.jira import PROPERTY_KEY, JiraTracker
from bot.providers.retry import RetryPolicy, WritePacer
from bot.store import Store
from tests.fakes.jira_api import FakeJira
from tests.sweep_helpers import BOT_LABELS, STEAL, Sleeps, backlog, run_sweep

SCOPE = "jira:PROJ"


@pytest.fixture(params=["cloud", "dc"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeJira]:
    with FakeJira(request.param) as f:
        f.add_project("PROJ", name="Product")
        f.add_user("alice")
        f.grant("alice", "PROJ", "BROWSE_PROJECTS", "ADD_COMMENTS", "EDIT_ISSUES")
        yield f


def make_tracker(fake: FakeJira, sleeps: Sleeps | None = None) -> JiraTracker:
    bot = fake.user("bot")
    creds: dict[str, Any] = (
        {"email": bot.email, "token": bot.token} if fake.flavour == "cloud"
        else {"pat": bot.token}
    )
    policy = RetryPolicy(sleep=sleeps or Sleeps(), jitter=0.0)
    return JiraTracker(fake.url, policy=policy, pacer=WritePacer(0.0, sleep=Sleeps()), **creds)


def fill(fake: FakeJira, n: int, *, every: int = 10) -> list[str]:
    """``n`` issues in key order; every ``every``-th is a threat."""
    return [fake.add_issue("PROJ", title, body, reporter="alice")
            for _, title, body in backlog(n, every)]


def sweep(classifier: Classifier, store: Store, tracker: Any, **options: Any) -> SweepResult:
    return run_sweep(classifier, store, tracker, [SCOPE], **options)


def search_path(fake: FakeJira) -> str:
    return r"/search/jql\?" if fake.flavour == "cloud" else r"/search\?"


def first_page_reads(fake: FakeJira) -> int:
    """Listing requests for the first page (no cursor)."""
    if fake.flavour == "cloud":
        return sum(1 for r in fake.requests if r.method == "GET"
                   and "/search/jql?" in r.path and "nextPageToken=" not in r.path)
    return fake.count("GET", r"/search\?(.*&)?startAt=0(&|$)")


def bot_comments(fake: FakeJira, key: str) -> list[dict[str, Any]]:
    return [c for c in fake.issue(key)["comments"] if c["author"] == "bot"]


def bot_labels(fake: FakeJira, key: str) -> list[str]:
    return sorted(lbl for lbl in fake.issue(key)["labels"] if lbl.startswith(BOT_LABELS))


def assert_triaged_once(fake: FakeJira, key: str, category: str = "model-stealing") -> None:
    issue = fake.issue(key)
    assert f"threat/{category}" in issue["labels"], key
    comments = bot_comments(fake, key)
    assert len(comments) == 1, key
    assert issue["properties"][PROPERTY_KEY]["comment_id"] == comments[0]["id"]


def test_dry_run_writes_nothing(fake: FakeJira, classifier: Classifier, store: Store) -> None:
    fill(fake, 120)
    result = sweep(classifier, store, make_tracker(fake))
    assert result.dry_run and result.complete
    assert result.counts[CHANGED] == 12 and result.counts[UNCHANGED] == 108
    assert fake.writes == []
    assert fake.count("POST") == fake.count("PUT") == fake.count("DELETE") == 0
    assert fake.count("GET", search_path(fake)) == 2


def test_apply_then_unchanged_backlog_is_cheap(fake: FakeJira, classifier: Classifier,
                                               store: Store) -> None:
    n = 250
    keys = fill(fake, n)
    tracker = make_tracker(fake)
    first = sweep(classifier, store, tracker, apply=True)
    assert first.complete and first.counts[CHANGED] == 25 and first.counts[UNCHANGED] == 225
    threats = set(keys[9::10])
    for key in keys:
        if key in threats:
            assert_triaged_once(fake, key)
        else:
            assert bot_labels(fake, key) == [] and bot_comments(fake, key) == [], key
    assert fake.count("GET", search_path(fake)) == 3  # key order: our writes move nothing

    for label, again_tracker in (("same", tracker), ("same", tracker),
                                 ("fresh", make_tracker(fake))):
        fake.clear_log()
        again = sweep(classifier, store, again_tracker, apply=True)
        assert fake.writes == [], label
        assert fake.count() <= math.ceil(n / 100) + 5, (label, [r.path for r in fake.requests])
        assert fake.count("GET", r"/issue/") == 0, label  # no per-issue request
        assert again.complete and again.counts[UNCHANGED] == n and again.counts[CHANGED] == 0
    for key in threats:
        assert len(bot_comments(fake, key)) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_storm_interrupts_then_next_run_resumes_from_the_checkpoint(
        fake: FakeJira, classifier: Classifier, store: Store, status: int) -> None:
    n = 230
    keys = fill(fake, n, every=23)
    sleeps = Sleeps()
    tracker = make_tracker(fake, sleeps)
    second_page = r"/search/jql\?.*nextPageToken=" if fake.flavour == "cloud" \
        else r"/search\?.*startAt=100"
    attempts = tracker.policy.max_attempts
    pages: list[int] = []

    def on_page(scope: str, page: ListPage) -> None:
        pages.append(len(page.issues))
        if len(pages) == 1:  # every attempt at page 2 fails
            fake.fail_next("GET", second_page, status, times=attempts,
                           headers=None if status == 429 else {})

    first = Sweep(classifier, store, lambda p, s: tracker, SweepOptions(apply=True),
                  on_page=on_page).run([SCOPE])
    assert not first.complete and first.scopes[0].examined == 100
    if status == 429:  # Retry-After: 1, five times: the retry layer gives up, rate limited
        assert first.stop_reason == "rate-limited" and first.resume_after is not None
        assert sleeps.calls == [1.0] * (attempts - 1)
    else:  # a 5xx storm fails the listing: reported as the scope's error, checkpoint kept
        assert first.stop_reason is None and "listing jira:PROJ failed" in (
            first.scopes[0].error or "")
        assert sleeps.calls == [1.0, 2.0, 4.0, 8.0]
    assert fake.count("GET", second_page) == attempts
    saved = store.load_checkpoint(f"sweep:apply:{SCOPE}")
    assert saved is not None and saved["cursor"] and saved["counts"]["changed"] == 4

    assert first_page_reads(fake) == 1
    fake.clear_log()
    second = sweep(classifier, store, make_tracker(fake), apply=True)
    assert second.complete and second.scopes[0].resumed
    assert first_page_reads(fake) == 0  # page 1 is not read again
    assert fake.count("GET", search_path(fake)) == 2
    assert second.scopes[0].examined == n - 100
    assert store.load_checkpoint(f"sweep:apply:{SCOPE}") is None
    for key in keys[22::23]:
        assert_triaged_once(fake, key)
    assert all(store.get_issue_state(f"jira:{k}") is not None for k in keys)


def test_human_override_is_kept_by_later_sweeps(fake: FakeJira, classifier: Classifier,
                                                store: Store, tmp_path: Path) -> None:
    key = fake.add_issue("PROJ", *STEAL, reporter="alice")
    tracker = make_tracker(fake)
    sweep(classifier, store, tracker, apply=True)
    assert_triaged_once(fake, key)

    # Alice (Edit Issues) recategorises it with a slash command.
    text = "/triage membership-inference"
    comment_id = fake.add_comment(key, text, author="alice")
    who = fake.user_id("alice")
    event = Event(provider="jira", delivery_id="d-1", kind=EventKind.COMMENT_CREATED,
                  name="comment_created", issue=IssueRef("jira", "PROJ", 1, key), actor=who,
                  actor_id=fake.user("alice").key if fake.flavour == "dc" else who,
                  comment_id=comment_id, comment_body=text)
    commands = Commands(Triage(classifier, store), store)
    assert commands.handle(tracker, event) == "commands-applied"
    wanted = "threat/membership-inference"
    assert wanted in fake.issue(key)["labels"]
    assert "threat/model-stealing" not in fake.issue(key)["labels"]

    # Same rules (the comment bumped `updated`), then a lost state file (the `bugbar` property
    # remembers the override).
    for label, st in (("same state", store), ("no state", Store(tmp_path / "other.db"))):
        fake.clear_log()
        result = sweep(classifier, st, make_tracker(fake), apply=True)
        assert result.complete and result.counts[CHANGED] == 0, label
        assert fake.writes == [], label
        assert wanted in fake.issue(key)["labels"], label
        assert "threat/model-stealing" not in fake.issue(key)["labels"], label
    assert_triaged_once(fake, key, "membership-inference")


def test_expired_cloud_page_token_in_the_checkpoint_lists_from_the_top(
        classifier: Classifier, store: Store) -> None:
    """A Cloud ``nextPageToken`` saved in a checkpoint can expire before the next run; the
    sweep then lists from the top once instead of failing on that token in every run."""
    with FakeJira("cloud") as fake:
        fake.add_project("PROJ")
        keys = fill(fake, 230, every=23)
        first = sweep(classifier, store, make_tracker(fake), apply=True, limit=150)
        assert first.stop_reason == "limit"
        saved = store.load_checkpoint(f"sweep:apply:{SCOPE}")
        assert saved is not None and saved["cursor"]
        fake._tokens.clear()  # the fake keeps its page tokens here: all of them expire

        # Jira is down as well: listing from the top fails too, and the saved place is kept.
        fake.fail_next("GET", r"/search/jql", 503, headers={}, times=10)
        down = sweep(classifier, store, make_tracker(fake), apply=True)
        assert down.scopes[0].error and not down.complete
        kept = store.load_checkpoint(f"sweep:apply:{SCOPE}")
        assert kept is not None and kept["cursor"] == saved["cursor"]
        assert kept["done_on_page"] == saved["done_on_page"]

        fake.clear_log()
        second = sweep(classifier, store, make_tracker(fake), apply=True)
        assert second.complete and second.scopes[0].resumed and not second.errors
        # The expired token once, then pages 2 and 3 of the listing from the top.
        assert fake.count("GET", r"/search/jql\?.*nextPageToken=") == 3
        assert first.scopes[0].examined + second.scopes[0].examined == 230
        assert first.counts[CHANGED] + second.counts[CHANGED] == 10
        for key in keys[22::23]:
            assert_triaged_once(fake, key)
        # The listing carries comments and the bugbar property: an issue is read on its own
        # only to look once more before a comment is created.
        assert fake.count("GET", r"/issue/") == second.counts[CHANGED]


def test_first_dry_run_reads_no_issue_on_its_own(fake: FakeJira, classifier: Classifier,
                                                 store: Store) -> None:
    """Search results carry the comments and the bugbar property (``fields=comment``,
    ``properties=bugbar``): the bot's comment of every listed issue is known from the listing,
    so a first dry run costs the listing and the bot's identity, whatever the comments."""
    keys = fill(fake, 250, every=10)
    for k, key in enumerate(keys):
        if k % 3 == 0:
            fake.add_comment(key, "same here", author="alice")
    result = sweep(classifier, store, make_tracker(fake))
    assert result.complete and result.counts[CHANGED] == 25
    assert fake.count("GET", r"/issue/") == 0
    assert fake.count() <= math.ceil(250 / 100) + 5


def test_bot_comment_from_the_listing_is_kept_not_doubled(fake: FakeJira, classifier: Classifier,
                                                          tmp_path: Path) -> None:
    keys = fill(fake, 40, every=10)
    first = Store(tmp_path / "a.db")
    sweep(classifier, first, make_tracker(fake), apply=True)
    first.close()
    fake.clear_log()
    other = Store(tmp_path / "b.db")  # a state file that knows nothing of those comments
    result = sweep(classifier, other, make_tracker(fake), apply=True)
    other.close()
    assert result.complete and fake.count("POST", r"/comment") == 0
    for key in keys[9::10]:
        assert len(bot_comments(fake, key)) == 1
