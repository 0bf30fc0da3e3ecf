"""The backlog sweep through the real GitHubTracker against FakeGitHub over HTTP.

Requests are counted by the fake (``fake.count()``), writes by ``fake.writes``. Retry waits
and write pacing are recorded, never slept.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.cli import main
from bot.decide.classify import Classifier
from bot.decide.render import MARKER_PREFIX
from bot.decide.rules import RuleSet
from bot.handlers.sweep import CHANGED, PENDING, UNCHANGED, Sweep, SweepOptions, SweepResult
from bot.providers.base import ListPage
from bot.store import Store
from tests.fakes.github_api import FakeGitHub
from tests.sweep_helpers import STEAL, T0, Sleeps, backlog, run_sweep

github = pytest.importorskip("bot.providers.github")
retry = pytest.importorskip("bot.providers.retry")

TOKEN = "t0k-sweep"
SCOPE = "github:o/r"


@pytest.fixture()
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(tokens=[TOKEN], login="bugbar-bot") as f:
        f.add_repo("o/r", id=1000)
        yield f


def make_tracker(fake: FakeGitHub, **kw: Any) -> Any:
    policy = retry.RetryPolicy(sleep=Sleeps(), jitter=0.0, max_wait=5.0)
    return github.GitHubTracker.from_token(TOKEN, fake.url, policy=policy,
                                           pacer=retry.WritePacer(0.0, sleep=Sleeps()), **kw)


def fill(fake: FakeGitHub, n: int, *, every: int = 10, repo: str = "o/r") -> list[int]:
    """``n`` issues last updated in the past, oldest first; every ``every``-th is a threat."""
    return [fake.add_issue(repo, title, body, updated_at=T0 + timedelta(minutes=i))
            for i, title, body in backlog(n, every)]


def sweep(classifier: Classifier, store: Store, tracker: Any, scopes: list[str] | None = None,
          **options: Any) -> SweepResult:
    return run_sweep(classifier, store, tracker, scopes or [SCOPE], **options)


def bot_comments(fake: FakeGitHub, number: int, repo: str = "o/r") -> list[dict[str, Any]]:
    return [c for c in fake.comments(repo, number) if MARKER_PREFIX in (c["body"] or "")]


def test_dry_run_writes_nothing(fake: FakeGitHub, classifier: Classifier, store: Store) -> None:
    fill(fake, 120)
    result = sweep(classifier, store, make_tracker(fake))
    assert fake.writes == []
    assert result.counts[CHANGED] == 12 and result.complete
    assert fake.count("GET", r"/issues\?") == 2


def test_apply_then_unchanged_backlog_is_cheap(fake: FakeGitHub, classifier: Classifier,
                                               store: Store) -> None:
    n = 250
    numbers = fill(fake, n)
    tracker = make_tracker(fake)
    first = sweep(classifier, store, tracker, apply=True)
    assert first.complete and first.counts[CHANGED] == 25 and first.counts[UNCHANGED] == 225
    # Every threat is labelled in ONE sweep, although each write moved the issue to the end of
    # GitHub's updated-ordered listing (the sweep notices and lists the repository again).
    for number in numbers[9::10]:
        assert "threat/model-stealing" in fake.issue_labels("o/r", number)
        assert len(bot_comments(fake, number)) == 1
    for sweep_no in (2, 3):
        fake.reset_log()
        again = sweep(classifier, store, tracker, apply=True)
        assert fake.writes == [], sweep_no
        assert fake.count() <= math.ceil(n / 100) + 5, (sweep_no, fake.requests)
        assert fake.count("GET", r"/comments") == 0  # no per-issue request
        assert again.counts[UNCHANGED] == n and again.counts[CHANGED] == 0


def test_max_changes_caps_the_writes(fake: FakeGitHub, classifier: Classifier,
                                     store: Store) -> None:
    numbers = fill(fake, 100)
    result = sweep(classifier, store, make_tracker(fake), apply=True, max_changes=3)
    assert result.stop_reason == "max-changes"
    touched = {w.split(":")[1].split(":")[0] for w in fake.writes}
    assert touched == {f"o/r#{numbers[k]}" for k in (9, 19, 29)}
    pending = [r for r in result.notable if r.outcome == PENDING]
    assert [r.key for r in pending] == [f"github:o/r#{numbers[39]}"]


def test_reserve_is_respected(fake: FakeGitHub, classifier: Classifier, store: Store) -> None:
    fill(fake, 150, every=1)  # all threats: a look, a comment and labels per issue
    fake.set_rate_limit(remaining=600)
    result = sweep(classifier, store, make_tracker(fake), apply=True, reserve=500)
    assert result.stop_reason == "budget" and not result.complete
    assert 500 - 3 <= fake.remaining <= 500  # checked before each issue (3 requests each)
    assert result.resume_after is not None
    assert store.load_checkpoint(f"sweep:apply:{SCOPE}") is not None


def test_interrupted_by_the_rate_limit_then_resumed(fake: FakeGitHub, classifier: Classifier,
                                                   store: Store) -> None:
    numbers = fill(fake, 230, every=23)
    fake.set_rate_limit(remaining=20, reset_in=600)  # the sweep needs ~35
    tracker = make_tracker(fake)
    first = sweep(classifier, store, tracker, apply=True, reserve=None)
    assert first.stop_reason == "rate-limited" and first.resume_after is not None
    saved = store.load_checkpoint(f"sweep:apply:{SCOPE}")
    assert saved is not None and saved["stop_reason"] == "rate-limited"
    done_first = first.scopes[0].examined
    assert 0 < done_first < 230

    fake.advance(601)  # the budget resets
    second = sweep(classifier, store, tracker, apply=True, reserve=None)
    assert second.complete and second.scopes[0].resumed
    assert store.load_checkpoint(f"sweep:apply:{SCOPE}") is None
    for number in numbers[22::23]:
        assert "threat/model-stealing" in fake.issue_labels("o/r", number)
        assert len(bot_comments(fake, number)) == 1
    assert all(store.get_issue_state(f"github:o/r#{n}") is not None for n in numbers)


def test_owner_wildcard_sweeps_every_repository(fake: FakeGitHub, classifier: Classifier,
                                                store: Store) -> None:
    fake.add_repo("o/other")
    fake.add_repo("x/elsewhere")
    a = fake.add_issue("o/r", *STEAL)
    b = fake.add_issue("o/other", *STEAL)
    c = fake.add_issue("x/elsewhere", *STEAL)
    tracker = make_tracker(fake)
    asked: list[str] = []

    def tracker_for(provider: str, scope: str) -> Any:
        asked.append(scope)
        return tracker

    result = Sweep(classifier, store, tracker_for, SweepOptions(apply=True)).run(["github:o/*"])
    assert result.complete and result.scopes[0].repos == 2 and result.counts[CHANGED] == 2
    assert asked == ["o/*", "o/other", "o/r"]
    assert "threat/model-stealing" in fake.issue_labels("o/r", a)
    assert "threat/model-stealing" in fake.issue_labels("o/other", b)
    assert fake.issue_labels("x/elsewhere", c) == []


def test_app_token_expiry_mid_sweep(classifier: Classifier, store: Store) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with FakeGitHub(tokens=[], app_id=4242, app_slug="bugbar", app_public_key=public) as fake:
        fake.add_repo("o/r")
        fake.add_installation(77, "o")
        numbers = fill(fake, 250, every=50)
        app = github.GitHubApp(4242, private, fake.url,
                               policy=retry.RetryPolicy(sleep=Sleeps(), jitter=0.0),
                               pacer=retry.WritePacer(0.0, sleep=Sleeps()))
        pages: list[int] = []

        def on_page(scope: str, page: ListPage) -> None:
            pages.append(len(page.issues))
            if len(pages) == 1:
                fake.expire_installation_tokens()  # the hour is up, mid-sweep

        result = Sweep(classifier, store, lambda p, s: app.for_repo(s),
                       SweepOptions(apply=True), on_page=on_page).run([SCOPE])
        assert result.complete and result.counts[CHANGED] == 5
        assert len(fake.installation_tokens) == 2 and fake.count(status=401) == 1
        for number in numbers[49::50]:
            assert len(bot_comments(fake, number)) == 1


def test_etag_cache_makes_an_unchanged_sweep_free(fake: FakeGitHub, classifier: Classifier,
                                                  min_ruleset: RuleSet, store: Store) -> None:
    fill(fake, 150)
    tracker = make_tracker(fake, etag_cache=store)
    sweep(classifier, store, tracker, apply=True)
    sweep(classifier, store, tracker, apply=True)  # pages changed by our writes: read again
    fake.reset_log()
    before = fake.remaining
    third = sweep(classifier, store, tracker, apply=True)
    assert fake.count() == 2 and fake.count(status=304) == 2
    assert fake.remaining == before  # 304s cost no budget
    assert third.complete and third.scopes[0].pages_not_modified == 2
    assert third.scopes[0].pages_unverified == 0
    # New rules: a 304 page comes with its cached issues, so they are decided again under the
    # new rules without re-reading the listing (nothing unverified, nothing skipped).
    other = Sweep(Classifier(min_ruleset), store, lambda p, s: tracker, SweepOptions()).run([SCOPE])
    assert other.scopes[0].pages_unverified == 0
    assert sum(other.scopes[0].counts.values()) == 150


def test_cli_end_to_end(fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    n = fake.add_issue("o/r", *STEAL)
    fake.add_issue("o/r", "Slow dashboard", "The page takes 10 s to load.")
    for name in ("BUGBAR_GITHUB_APP_ID", "BUGBAR_GITLAB_URL", "BUGBAR_JIRA_URL",
                 "BUGBAR_DRY_RUN", "BUGBAR_RULES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BUGBAR_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("BUGBAR_GITHUB_API_URL", fake.url)
    state = str(tmp_path / "state.db")
    report = tmp_path / "plan.json"
    assert main(["sweep", SCOPE, "--state", state, "--report", str(report), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "DRY RUN" in out and "model-stealing" in out
    assert fake.writes == []
    doc = json.loads(report.read_text())
    assert doc["summary"]["counts"]["changed"] == 1 and len(doc["issues"]) == 2
    assert main(["sweep", SCOPE, "--state", state, "--apply", "--quiet"]) == 0
    assert "threat/model-stealing" in fake.issue_labels("o/r", n)
    assert main(["sweep", SCOPE, "--state", state, "--apply", "--max-changes", "0",
                 "--quiet"]) == 0  # nothing left to change: the cap is never reached


# --------------------------------------------------------------------------- bulk comment reads


def _with_comments(fake: FakeGitHub, numbers: list[int], total: int, step: int) -> None:
    for k in range(total):
        fake.add_comment("o/r", numbers[(k * step) % len(numbers)], f"same here ({k})")


def test_first_dry_run_reads_comments_in_bulk(fake: FakeGitHub, classifier: Classifier,
                                              store: Store) -> None:
    """The bar: 1,000 issues holding 80 comments, at most ceil(N/100) + ceil(C/100) + 5."""
    numbers = fill(fake, 1000, every=50)
    _with_comments(fake, numbers, 80, 7)
    result = sweep(classifier, store, make_tracker(fake))
    assert result.complete and result.counts[CHANGED] == 20
    assert fake.count() <= math.ceil(1000 / 100) + math.ceil(80 / 100) + 5
    assert fake.count("GET", r"/issues/\d+/comments") == 0  # no per-issue read
    assert fake.count("GET", r"/issues/comments") == 1  # the repository's comment stream


def test_bulk_read_finds_an_existing_bot_comment(fake: FakeGitHub, classifier: Classifier,
                                                 tmp_path: Path) -> None:
    """A bot comment the store does not know (another state file, a lost database) is found in
    the stream: it is kept, not posted twice, and not one issue is read on its own."""
    numbers = fill(fake, 150, every=10)
    _with_comments(fake, numbers, 40, 3)
    first = Store(tmp_path / "first.db")
    sweep(classifier, first, make_tracker(fake), apply=True)
    first.close()
    fake.reset_log()
    again = Store(tmp_path / "second.db")
    result = sweep(classifier, again, make_tracker(fake), apply=True)
    again.close()
    assert result.complete and fake.writes == []
    assert fake.count("GET", r"/issues/\d+/comments") == 0
    assert fake.count("GET", r"/issues/comments") == 1
    for number in numbers[9::10]:
        assert len(bot_comments(fake, number)) == 1


def test_stale_bulk_read_never_posts_a_second_comment(fake: FakeGitHub, classifier: Classifier,
                                                      store: Store) -> None:
    """A webhook comments after the stream was read: the sweep looks again before creating."""
    numbers = fill(fake, 30, every=10)
    _with_comments(fake, numbers, 30, 1)
    posted: list[int] = []

    def on_row(row: Any) -> None:
        if row.number == numbers[0] and not posted:  # the stream is read by now
            body = f"## AI/ML security triage\n{MARKER_PREFIX} posted by a webhook -->"
            posted.append(fake.add_comment("o/r", numbers[9], body, user="bugbar-bot"))

    result = Sweep(classifier, store, lambda p, s: make_tracker(fake),
                   SweepOptions(apply=True, reserve=None), on_row=on_row).run([SCOPE])
    assert result.complete and posted
    assert [c["id"] for c in bot_comments(fake, numbers[9])] == posted  # edited, not doubled
    assert len(bot_comments(fake, numbers[19])) == 1


def test_capped_then_full_then_unchanged_costs_only_the_listing(
        fake: FakeGitHub, classifier: Classifier, store: Store) -> None:
    n = 1000
    numbers = fill(fake, n, every=50)
    _with_comments(fake, numbers, 80, 7)
    tracker = make_tracker(fake)
    capped = sweep(classifier, store, tracker, apply=True, max_changes=5)
    assert capped.stop_reason == "max-changes" and capped.changes == 5
    full = sweep(classifier, store, tracker, apply=True)
    assert full.complete and full.changes == 15
    fake.reset_log()
    # Our writes moved the written issues' updated_at: they are decided again, from the store;
    # every other issue is known unchanged without a request.
    reasons: Counter[str] = Counter()
    steady = Sweep(classifier, store, lambda p, s: make_tracker(fake),
                   SweepOptions(apply=True, reserve=None),
                   on_row=lambda row: reasons.update([row.reason])).run([SCOPE])
    assert steady.complete and steady.counts[UNCHANGED] == n
    assert set(reasons) <= {"cached", "checked"} and reasons["checked"] <= 20
    assert fake.count() <= math.ceil(n / 100) + 5
    assert fake.count("GET", r"/comments") == 0
    for number in numbers[49::50]:
        assert len(bot_comments(fake, number)) == 1


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_any_sequence_of_capped_interrupted_resumed_runs(
        fake: FakeGitHub, classifier: Classifier, store: Store, seed: int) -> None:
    """Random caps, limits and crashes (an exception out of the sweep mid-page, as kill -9
    would leave it), then a run to the end: the next unchanged sweep costs only the listing,
    and every threat has exactly one bot comment."""
    import random

    rng = random.Random(seed)
    n = 320
    numbers = fill(fake, n, every=16)
    _with_comments(fake, numbers, 60, 11)
    tracker = make_tracker(fake)

    class Crash(Exception):
        pass

    for _ in range(rng.randint(3, 6)):
        kind = rng.choice(["cap", "limit", "crash", "dry"])
        options: dict[str, Any] = {"apply": kind != "dry", "reserve": None}
        if kind == "cap":
            options["max_changes"] = rng.randint(0, 4)
        elif kind == "limit":
            options["limit"] = rng.randint(1, 150)
        crash_after = rng.randint(1, 200) if kind == "crash" else None

        def on_row(row: Any, crash_after: int | None = crash_after,
                   seen: list[int] = [0]) -> None:  # noqa: B006 - one counter per run
            seen[0] += 1
            if crash_after is not None and seen[0] >= crash_after:
                raise Crash

        with contextlib.suppress(Crash):
            Sweep(classifier, store, lambda p, s: tracker, SweepOptions(**options),
                  on_row=on_row).run([SCOPE])
    last = sweep(classifier, store, tracker, apply=True)
    assert last.complete, last.to_json()
    fake.reset_log()
    steady = sweep(classifier, store, make_tracker(fake), apply=True)
    assert steady.complete and steady.counts[UNCHANGED] == n
    assert fake.count() <= math.ceil(n / 100) + 5
    assert fake.count("GET", r"/comments") == 0
    for number in numbers:
        expected = 1 if numbers.index(number) % 16 == 15 else 0
        assert len(bot_comments(fake, number)) == expected


def test_resweep_of_a_few_changed_issues_reads_them_one_by_one(
        fake: FakeGitHub, classifier: Classifier, store: Store) -> None:
    """A known issue changed in a repository with a long comment stream: probing the stream
    (one request) shows it is longer than reading that issue alone, so the issue is read."""
    numbers = fill(fake, 150, every=10)
    _with_comments(fake, numbers, 300, 1)  # 3 pages of stream
    tracker = make_tracker(fake)
    assert sweep(classifier, store, tracker, apply=True).complete
    sweep(classifier, store, tracker, apply=True)  # takes in the updated_at our writes moved
    fake.edit_issue("o/r", numbers[0], body="Traceback: out of memory, now on two GPUs.")
    fake.reset_log()
    result = sweep(classifier, store, tracker, apply=True)
    assert result.complete and fake.writes == []
    assert fake.count("GET", r"/issues/comments\?") == 1  # the probe
    assert fake.count("GET", rf"/issues/{numbers[0]}/comments") == 1
