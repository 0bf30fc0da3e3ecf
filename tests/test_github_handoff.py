"""The GitHub security hand-off end to end: signed deliveries into the real app and ``Bot``,
configured from the environment (``BUGBAR_GITHUB_PROTECT`` / ``_ESCALATE`` / ``_ASSIGNEES``),
and PyGithub over HTTP to ``FakeGitHub``, which answers lock, security advisories,
assignees, private vulnerability reporting and GraphQL ``transferIssue`` like GitHub.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.app_cli import build_trackers
from bot.config import Config, ConfigError
from bot.decide.classify import Classifier
from bot.decide.model import Issue
from bot.decide.render import MARKER_PREFIX, parse_marker
from bot.events.model import IssueRef
from bot.handlers.sweep import CHANGED, UNCHANGED, WITHHELD_TITLE
from bot.handlers.triage import Triage
from bot.providers.base import HandOffRefused, HandOffRequest
from bot.providers.github import GitHubApp, GitHubHandOffSettings, GitHubTracker
from bot.providers.retry import RetryPolicy, WritePacer
from bot.store import Store
from tests.fakes.github_api import FakeGitHub
from tests.sweep_helpers import STEAL as SWEEP_STEAL
from tests.sweep_helpers import Sleeps, run_sweep
from tests.test_github_e2e import (
    BOT,
    HARMLESS,
    REPO,
    STEAL,
    STEAL_PROD,
    TOKEN,
    FakeClock,
    World,
    _user,
    comment_payload,
    issues_payload,
    label_payload,
)

TEAM = "@acme/ml-security"
PRIVATE = "acme/vision-security"


class HandOffWorld(World):
    """The e2e world, with its GitHub tracker built from ``BUGBAR_*`` like ``bugbar serve``."""

    env: dict[str, str] = {}

    def make_tracker(self, timeout: int = 10) -> GitHubTracker:
        config = Config.from_env({"BUGBAR_GITHUB_TOKEN": TOKEN,
                                  "BUGBAR_GITHUB_API_URL": self.fake.url, **self.env})
        built = build_trackers(config, None)["github"](_ref(1), None)
        assert isinstance(built, GitHubTracker)
        # Same settings, with the test's recorded sleeps instead of real ones.
        return GitHubTracker.from_token(
            TOKEN, self.fake.url, policy=RetryPolicy(sleep=self._sleep, jitter=0.0),
            pacer=WritePacer(0.0), timeout=timeout, handoff=built.handoff_settings)


def _ref(number: int) -> IssueRef:
    return IssueRef("github", REPO, number)


@pytest.fixture()
def make_world(tmp_path: Path, classifier: Classifier) -> Iterator[Any]:
    made: list[HandOffWorld] = []
    fakes: list[FakeGitHub] = []

    def make(env: dict[str, str], db: str = "state.db", fake: FakeGitHub | None = None
             ) -> HandOffWorld:
        if fake is None:
            fake = FakeGitHub(tokens=[TOKEN], login=BOT).__enter__()
            fakes.append(fake)
            fake.add_repo(REPO, id=4242)
            fake.add_repo(PRIVATE, id=4243, private=True)
        cls = type("W", (HandOffWorld,), {"env": env})
        world = cls(fake, tmp_path / db, classifier)
        made.append(world)
        return world

    yield make
    for w in made:
        w.client.close()
        w.store.close()
    for f in fakes:
        f.__exit__(None, None, None)


def open_critical(world: World, delivery: str | None = None) -> int:
    n = world.fake.add_issue(REPO, *STEAL_PROD, user="reporter-7")
    r = world.post("issues", issues_payload("opened", n, *STEAL_PROD), delivery)
    assert r.status_code == 202, r.text
    return n


def edit(world: World, n: int, body: str) -> None:
    world.fake.edit_issue(REPO, n, body=body)
    r = world.post("issues", issues_payload("edited", n, STEAL_PROD[0], body,
                                            changes={"body": {"from": STEAL_PROD[1]}}))
    assert r.status_code == 202


def plan_logs(caplog: pytest.LogCaptureFixture) -> list[list[str]]:
    return [list(getattr(r, "plan", [])) for r in caplog.records
            if r.name == "bugbar.triage" and r.getMessage() == "plan"]


# --------------------------------------------------------------------------- the bar


def test_advisory_and_team_mention_once_across_redelivery_and_edit(make_world: Any) -> None:
    world = make_world({"BUGBAR_GITHUB_ESCALATE": TEAM, "BUGBAR_GITHUB_PROTECT": "advisory"})
    n = open_critical(world, delivery="d-1")
    assert world.work() == ["triaged"]

    comment = world.one_bot_comment(n)
    assert comment["body"].count(TEAM) == 1
    advisories = world.fake.advisories(REPO)
    assert len(advisories) == 1
    adv = advisories[0]
    assert adv["state"] == "draft" and adv["severity"] == "critical"
    assert f"https://github.com/{REPO}/issues/{n}" in adv["description"]
    assert "model-stealing" in adv["description"]
    # The reporter's text (exploit details) is not copied into the advisory.
    assert STEAL_PROD[1] not in adv["description"] and "/v1/score" not in adv["description"]
    ghsa = adv["ghsa_id"]
    assert ghsa in comment["body"]
    assert parse_marker(comment["body"]).handoff.protected == f"advisory {ghsa}"
    state = world.store.get_issue_state(f"github:{REPO}#{n}")
    assert state is not None and state.extra["protected"] == f"advisory {ghsa}"

    # GitHub redelivers (same delivery id: deduplicated), the event arrives again under a new
    # id (a manual redelivery reaches triage), then the reporter edits the issue.
    r = world.post("issues", issues_payload("opened", n, *STEAL_PROD), "d-1")
    assert r.status_code in (200, 202)
    world.work()
    r = world.post("issues", issues_payload("opened", n, *STEAL_PROD), "d-2")
    assert r.status_code == 202
    assert world.work() == ["unchanged"]
    edit(world, n, STEAL_PROD[1] + " Also the admin endpoint.")
    world.work()

    assert len(world.fake.advisories(REPO)) == 1
    assert world.fake.count("POST", r"/security-advisories$") == 1
    comment = world.one_bot_comment(n)
    assert comment["body"].count(TEAM) == 1
    assert world.fake.count("POST", r"/issues/\d+/comments$") == 1


def test_without_the_store_the_marker_finds_the_advisory_again(make_world: Any) -> None:
    # GitHub Actions: each run starts with an empty store; the marker remembers the GHSA id.
    env = {"BUGBAR_GITHUB_ESCALATE": TEAM, "BUGBAR_GITHUB_PROTECT": "advisory"}
    first = make_world(env, "run1.db")
    n = open_critical(first)
    assert first.work() == ["triaged"]
    second = make_world(env, "run2.db", fake=first.fake)
    edit(second, n, STEAL_PROD[1] + " (edited)")
    second.work()
    assert len(first.fake.advisories(REPO)) == 1
    assert first.fake.count("GET", r"/security-advisories") == 1  # only before the create
    assert second.one_bot_comment(n)["body"].count(TEAM) == 1


def test_a_timed_out_advisory_post_is_found_by_its_issue_link(make_world: Any) -> None:
    world = make_world({"BUGBAR_GITHUB_PROTECT": "advisory"})
    tracker = world.tracker
    n = world.fake.add_issue(REPO, *STEAL_PROD)
    request = HandOffRequest("model-stealing", "Model Stealing", "critical", ("ssirp",),
                             f"https://github.com/{REPO}/issues/{n}")
    first = tracker.protect(_ref(n), request)
    again = tracker.protect(_ref(n), request)
    assert first == again and len(world.fake.advisories(REPO)) == 1


def test_lock_locks_the_conversation(make_world: Any) -> None:
    world = make_world({"BUGBAR_GITHUB_PROTECT": "lock"})
    n = open_critical(world)
    assert world.work() == ["triaged"]
    issue = world.fake.issue(REPO, n)
    assert issue["locked"] is True
    assert "locked" in world.one_bot_comment(n)["body"]
    edit(world, n, STEAL_PROD[1] + " more")
    world.work()
    assert world.fake.count("PUT", r"/issues/\d+/lock$") == 1
    assert world.fake.advisories(REPO) == []


def test_with_neither_set_nothing_is_promised_or_done(
    make_world: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    world = make_world({})
    caplog.set_level(logging.INFO, logger="bugbar.triage")
    n = open_critical(world)
    assert world.work() == ["triaged"]
    plans = plan_logs(caplog)
    assert plans, "the plan is logged"
    assert not any(re.search(r"protect|escalate", line) for p in plans for line in p)
    assert not any(w.endswith((":lock", "assignee+")) or "advisory+" in w or "transfer" in w
                   for w in world.fake.writes)
    issue = world.fake.issue(REPO, n)
    assert issue["locked"] is False and issue["assignees"] == []
    assert world.fake.advisories(REPO) == [] and world.fake.graphql_queries == []
    assert "cc @" not in world.one_bot_comment(n)["body"]
    # Editing to the same decision writes nothing and is not counted as triaged.
    edit(world, n, STEAL_PROD[1])
    assert world.work() == ["unchanged"]


# --------------------------------------------------------------------------- refusals & more


def test_a_403_is_one_log_line_and_a_manual_step_in_the_comment(
    make_world: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    world = make_world({"BUGBAR_GITHUB_PROTECT": "advisory"})
    world.fake.set_permission(REPO, BOT, "write")  # not an admin: advisories are refused
    caplog.set_level(logging.INFO)
    n = open_critical(world)
    assert world.work() == ["triaged"]
    assert world.fake.count("POST", r"/security-advisories$") == 1
    assert world.sleeps == []  # never retried
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1
    assert getattr(refused[0], "reason", "").startswith("GitHub answered 403")
    body = world.one_bot_comment(n)["body"]
    assert "GitHub answered 403" in body
    assert f"https://github.com/{REPO}/security/advisories/new" in body
    edit(world, n, STEAL_PROD[1] + " again")
    world.work()
    assert world.fake.count("POST", r"/security-advisories$") == 1


def test_transfer_moves_the_issue_once(make_world: Any) -> None:
    world = make_world({"BUGBAR_GITHUB_PROTECT": f"transfer:{PRIVATE}"})
    n = open_critical(world)
    assert world.work() == ["triaged"]
    moved = world.fake.issue(PRIVATE, 1)
    assert moved["title"] == STEAL_PROD[0]
    assert {"threat/model-stealing", "severity/critical"} <= {lb["name"] for lb in
                                                              moved["labels"]}
    assert [c for c in world.fake.comments(PRIVATE, 1) if MARKER_PREFIX in c["body"]]
    state = world.store.get_issue_state(f"github:{REPO}#{n}")
    assert state is not None and state.extra["protected"] == f"transferred {PRIVATE}#1"
    # The old number resolves to the moved issue: a second attempt does not move it again.
    again = world.tracker.protect(_ref(n), HandOffRequest())
    assert again == f"transferred {PRIVATE}#1"
    # A redelivery for the old number: GitHub redirects (301) to the moved issue; nothing is
    # moved, posted or labelled again.
    before = list(world.fake.writes)
    world.post("issues", issues_payload("edited", n, *STEAL_PROD,
                                        changes={"body": {"from": STEAL[1]}}))
    assert world.work() == ["unchanged"]
    assert world.fake.writes == before
    assert sum("transferIssue" in q for q in world.fake.graphql_queries) == 1
    assert len([c for c in world.fake.comments(PRIVATE, 1) if MARKER_PREFIX in c["body"]]) == 1


def test_transfer_refused_asks_a_maintainer_in_the_comment(make_world: Any) -> None:
    world = make_world({"BUGBAR_GITHUB_PROTECT": "transfer:other-org/private"})
    world.fake.add_repo("other-org/private", private=True)
    n = open_critical(world)
    assert world.work() == ["triaged"]
    body = world.one_bot_comment(n)["body"]
    assert "transfer this issue to other-org/private" in body
    assert world.fake.issue(REPO, n)["number"] == n


def test_private_reporting_link_and_assignees(make_world: Any) -> None:
    world = make_world({"BUGBAR_GITHUB_ESCALATE": "alice,@acme/ml-security",
                        "BUGBAR_GITHUB_ASSIGNEES": "alice"})
    world.fake.add_user("alice")
    world.fake.set_permission(REPO, "alice", "write")
    world.fake.set_private_reporting(REPO)
    n = open_critical(world)
    assert world.work() == ["triaged"]
    body = world.one_bot_comment(n)["body"]
    assert f"https://github.com/{REPO}/security/advisories/new" in body
    assert "cc @alice @acme/ml-security" in body
    assert world.fake.issue(REPO, n)["assignees"][0]["login"] == "alice"


def test_escalate_routes_are_configurable(make_world: Any) -> None:
    world = make_world({"BUGBAR_GITHUB_ESCALATE": TEAM, "BUGBAR_ESCALATE_ROUTES": "privacy"})
    n = open_critical(world)  # ssirp, not privacy
    world.work()
    assert TEAM not in world.one_bot_comment(n)["body"]
    m = world.fake.add_issue(REPO, *STEAL)
    world.post("issues", issues_payload("opened", m, *STEAL))
    world.work()
    assert TEAM not in world.one_bot_comment(m)["body"]


@pytest.mark.parametrize("env, message", [
    ({"BUGBAR_GITHUB_PROTECT": "hide"}, "BUGBAR_GITHUB_PROTECT must be"),
    ({"BUGBAR_GITHUB_PROTECT": "transfer:nope"}, "transfer:OWNER/REPO"),
    ({"BUGBAR_GITHUB_ESCALATE": "@acme/ml security"}, "BUGBAR_GITHUB_ESCALATE"),
    ({"BUGBAR_GITHUB_ASSIGNEES": "@acme/team"}, "teams cannot be assigned"),
    ({"BUGBAR_GITLAB_ESCALATE": "@sec/ml team"}, "BUGBAR_GITLAB_ESCALATE"),
    ({"BUGBAR_GITLAB_ASSIGNEES": "a b"}, "BUGBAR_GITLAB_ASSIGNEES"),
    ({"BUGBAR_JIRA_ASSIGNEE": "two words"}, "BUGBAR_JIRA_ASSIGNEE"),
    ({"BUGBAR_ESCALATE_ROUTES": "ssirp,Privacy!"}, "BUGBAR_ESCALATE_ROUTES"),
])
def test_bad_hand_off_settings_are_one_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.from_env(env)


def test_hand_off_settings_default_to_nothing_and_parse_lists() -> None:
    assert (Config.from_env({}).github_protect, Config.from_env({}).github_escalate,
            Config.from_env({}).escalate_routes) == ("none", (), ("ssirp",))
    cfg = Config.from_env({"BUGBAR_GITHUB_ESCALATE": "alice, @acme/ml-security",
                           "BUGBAR_GITLAB_ESCALATE": "sec/ml",
                           "BUGBAR_GITLAB_ASSIGNEES": "@carol,42",
                           "BUGBAR_JIRA_ESCALATE": "5b10ac8d82e05b22cc7d4ef5,712020:abc-def",
                           "BUGBAR_ESCALATE_ROUTES": "ssirp,privacy"})
    assert cfg.github_escalate == ("@alice", "@acme/ml-security")
    assert cfg.gitlab_escalate == ("@sec/ml",) and cfg.gitlab_assignees == ("carol", "42")
    assert cfg.jira_escalate == ("5b10ac8d82e05b22cc7d4ef5", "712020:abc-def")
    assert cfg.escalate_routes == ("ssirp", "privacy")


def test_settings_reject_an_unknown_mode() -> None:
    with pytest.raises(ValueError):
        GitHubHandOffSettings(protect="private")


# --------------------------------------------------------------------------- sweeps


def _sweep_tracker(fake: FakeGitHub, protect: str) -> GitHubTracker:
    return GitHubTracker.from_token(
        TOKEN, fake.url, policy=RetryPolicy(sleep=Sleeps(), jitter=0.0),
        pacer=WritePacer(0.0, sleep=Sleeps()), handoff=GitHubHandOffSettings(protect=protect))


@pytest.mark.parametrize("protect, withheld", [("lock", False), (f"transfer:{PRIVATE}", True),
                                               ("none", False)])
def test_dry_run_withholds_a_title_only_when_apply_would_hide_the_issue(
    tmp_path: Path, classifier: Classifier, protect: str, withheld: bool,
) -> None:
    with FakeGitHub(tokens=[TOKEN], login=BOT) as fake:
        fake.add_repo(REPO)
        fake.add_repo(PRIVATE, private=True)
        n = fake.add_issue(REPO, *SWEEP_STEAL)
        store = Store(tmp_path / "s.db")
        result = run_sweep(classifier, store, _sweep_tracker(fake, protect), [f"github:{REPO}"])
        row = next(r for r in result.notable if r.number == n)
        assert row.outcome == CHANGED
        assert (row.title == WITHHELD_TITLE) is withheld
        assert (row.title == SWEEP_STEAL[0]) is not withheld
        assert any(a.startswith("protect:") for a in row.actions) is (protect != "none")
        assert fake.writes == []
        store.close()


def test_sweep_counts_only_real_writes(tmp_path: Path, classifier: Classifier) -> None:
    with FakeGitHub(tokens=[TOKEN], login=BOT) as fake:
        fake.add_repo(REPO)
        numbers = [fake.add_issue(REPO, f"{SWEEP_STEAL[0]} {i}", SWEEP_STEAL[1])
                   for i in range(3)]
        store = Store(tmp_path / "s.db")
        tracker = _sweep_tracker(fake, "none")
        first = run_sweep(classifier, store, tracker, [f"github:{REPO}"], apply=True)
        assert first.counts[CHANGED] == 3
        # Critical issues that are already triaged: nothing to write on GitHub without a
        # hand-off, so a fresh-state sweep with a cap of 1 examines all three and changes none.
        again = run_sweep(classifier, Store(tmp_path / "t.db"), tracker, [f"github:{REPO}"],
                          apply=True, max_changes=1)
        assert again.counts[CHANGED] == 0 and again.counts[UNCHANGED] == 3
        assert again.complete
        assert all(len([c for c in fake.comments(REPO, n) if MARKER_PREFIX in c["body"]]) == 1
                   for n in numbers)
        store.close()


def test_refusals_are_never_retried(make_world: Any) -> None:
    world = make_world({"BUGBAR_GITHUB_PROTECT": "lock"})
    with pytest.raises(HandOffRefused, match="GitHub answered 404"):
        world.tracker.protect(_ref(999), HandOffRequest())
    assert world.fake.count("PUT", r"/issues/999/lock$") == 1 and world.sleeps == []


def test_an_escalate_route_other_than_ssirp(make_world: Any, classifier: Classifier) -> None:
    text = ("Membership inference against our model",
            "We can infer whether a given person was in the training set from the confidence "
            "scores.")
    routes = classifier.classify(Issue("x", *text)).routes
    assert "privacy" in routes and "ssirp" not in routes, routes
    world = make_world({"BUGBAR_GITHUB_ESCALATE": TEAM, "BUGBAR_ESCALATE_ROUTES": "privacy"})
    n = world.fake.add_issue(REPO, *text)
    world.post("issues", issues_payload("opened", n, *text))
    assert world.work() == ["triaged"]
    assert world.one_bot_comment(n)["body"].count(TEAM) == 1


# --------------------------------------------------------------------------- GitHub App


@pytest.mark.parametrize("permissions, advisories", [
    ({"issues": "write", "metadata": "read"}, 0),
    ({"issues": "write", "metadata": "read", "repository_advisories": "write"}, 1),
])
def test_an_app_needs_the_repository_advisories_permission(
    tmp_path: Path, classifier: Classifier, permissions: dict[str, str], advisories: int,
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    with FakeGitHub(tokens=[], app_id=77, app_slug="bugbar") as fake:
        fake.add_repo(REPO)
        fake.add_installation(5, "acme", permissions=permissions)
        app = GitHubApp(77, pem, fake.url, policy=RetryPolicy(sleep=Sleeps(), jitter=0.0),
                        pacer=WritePacer(0.0),
                        handoff=GitHubHandOffSettings(protect="advisory"))
        n = fake.add_issue(REPO, *STEAL_PROD)
        store = Store(tmp_path / "app.db")
        result = Triage(classifier, store).run(app.for_installation(5), _ref(n))
        store.close()
        assert result.outcome == "triaged"
        assert len(fake.advisories(REPO)) == advisories
        [comment] = fake.comments(REPO, n)
        assert comment["user"]["login"] == "bugbar[bot]"
        refused = "Resource not accessible by integration" in comment["body"]
        assert refused is (advisories == 0)


def test_the_mention_stays_through_a_flip_to_no_threat_and_back(
    make_world: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    world = make_world({"BUGBAR_GITHUB_ESCALATE": TEAM})
    caplog.set_level(logging.INFO, logger="bugbar.triage")
    n = open_critical(world)
    assert world.work() == ["triaged"]
    for title, body in (HARMLESS, STEAL_PROD):
        world.fake.edit_issue(REPO, n, title=title, body=body)
        world.post("issues", issues_payload("edited", n, title, body,
                                            changes={"body": {"from": "x"}}))
        assert world.work() == ["triaged"]
        # The same mention line in every version of the one comment, never added anew.
        assert world.one_bot_comment(n)["body"].count(TEAM) == 1
    escalations = [p for p in plan_logs(caplog) if any("escalate" in x for x in p)]
    assert len(escalations) == 1


def test_a_sweep_report_says_a_refused_step_wrote_nothing(tmp_path: Path,
                                                          classifier: Classifier) -> None:
    with FakeGitHub(tokens=[TOKEN], login=BOT) as fake:
        fake.add_repo(REPO)
        fake.set_permission(REPO, BOT, "write")  # advisories need an admin
        n = fake.add_issue(REPO, *SWEEP_STEAL)
        store = Store(tmp_path / "s.db")
        result = run_sweep(classifier, store, _sweep_tracker(fake, "advisory"),
                           [f"github:{REPO}"], apply=True)
        store.close()
        row = next(r for r in result.notable if r.number == n)
        assert row.outcome == CHANGED and row.applied  # the comment and labels were written
        assert any(a.startswith("protect refused (GitHub answered 403") for a in row.actions)
        assert not any(a.startswith("protect: ") for a in row.actions)
        assert fake.advisories(REPO) == []


# --------------------------------------------------------------------------- retrying a refusal

HOUR = 3600.0
ADVISORY_POSTS = r"/security-advisories$"
COMMENT_EDITS = r"/issues/comments/\d+$"
MANUAL = f"open a draft security advisory at https://github.com/{REPO}/security/advisories/new"


def refused_advisory(make_world: Any) -> tuple[HandOffWorld, int]:
    """A critical issue whose advisory GitHub refused (the bot's account is not an admin)."""
    world = make_world({"BUGBAR_GITHUB_PROTECT": "advisory"})
    world.fake.set_permission(REPO, BOT, "write")
    n = open_critical(world)
    assert world.work() == ["triaged"]
    assert world.fake.count("POST", ADVISORY_POSTS) == 1 and world.fake.advisories(REPO) == []
    body = world.one_bot_comment(n)["body"]
    assert MANUAL in body and parse_marker(body).handoff.refused.startswith("GitHub answered 403")
    return world, n


def marked_comments(world: World, n: int) -> list[dict[str, Any]]:
    return [c for c in world.bot_comments(n) if MARKER_PREFIX in c["body"]]


def command(world: World, n: int, author: str, text: str = "/triage retry-handoff") -> None:
    cid = world.fake.add_comment(REPO, n, text, user=author)
    payload = comment_payload("created", n, cid, text, _user(author, 9000 + len(author)))
    assert world.post("issue_comment", payload).status_code == 202


def refusal_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "bugbar.triage" and "refused" in r.getMessage()]


def test_permissions_fixed_the_next_edit_opens_the_advisory_and_drops_the_manual_step(
    make_world: Any,
) -> None:
    world, n = refused_advisory(make_world)
    world.fake.set_permission(REPO, BOT, "admin")  # the maintainer fixes the permission
    world.clock.advance(HOUR + 1)
    edits = world.fake.count("PATCH", COMMENT_EDITS)
    edit(world, n, STEAL_PROD[1] + " more")
    assert world.work() == ["triaged"]
    assert world.fake.count("POST", ADVISORY_POSTS) == 2  # the refused one, and this one
    [advisory] = world.fake.advisories(REPO)
    comment = world.one_bot_comment(n)
    body = comment["body"]
    assert advisory["ghsa_id"] in body and MANUAL not in body
    assert "could not do this itself" not in body
    assert world.fake.count("PATCH", COMMENT_EDITS) == edits + 1  # the one comment, edited
    marker = parse_marker(body)
    assert marker.handoff.protected == f"advisory {advisory['ghsa_id']}"
    assert not marker.handoff.refused
    state = world.store.get_issue_state(f"github:{REPO}#{n}")
    assert state is not None and state.extra["protected"] == marker.handoff.protected
    assert "protect_refused" not in state.extra and "protect_refused_at" not in state.extra
    # Done: later edits, hours on, never open another.
    world.clock.advance(3 * HOUR)
    edit(world, n, STEAL_PROD[1] + " more and more")
    world.work()
    assert world.fake.count("POST", ADVISORY_POSTS) == 2 and len(marked_comments(world, n)) == 1


def test_still_refused_writes_nothing_and_logs_one_line(
    make_world: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    world, n = refused_advisory(make_world)
    world.clock.advance(HOUR + 1)
    edit(world, n, STEAL_PROD[1])
    writes, edits = list(world.fake.writes), world.fake.count("PATCH", COMMENT_EDITS)
    caplog.set_level(logging.INFO, logger="bugbar.triage")
    caplog.clear()
    assert world.work() == ["unchanged"]  # nothing written: not counted as triaged
    assert world.fake.count("POST", ADVISORY_POSTS) == 2  # tried once, not in a loop
    assert world.fake.writes == writes and world.fake.count("PATCH", COMMENT_EDITS) == edits
    [line] = refusal_logs(caplog)
    assert "again" in line.getMessage() and world.sleeps == []
    assert MANUAL in world.one_bot_comment(n)["body"]
    # The new refusal restarts the hour: an edit 59 minutes later does not ask GitHub.
    world.clock.advance(HOUR - 60)
    edit(world, n, STEAL_PROD[1] + " again")
    world.work()
    assert world.fake.count("POST", ADVISORY_POSTS) == 2


def test_within_the_hour_a_refusal_is_not_tried_again(make_world: Any) -> None:
    world, n = refused_advisory(make_world)
    world.fake.set_permission(REPO, BOT, "admin")
    world.clock.advance(HOUR - 60)
    edit(world, n, STEAL_PROD[1] + " more")
    world.work()
    assert world.fake.count("POST", ADVISORY_POSTS) == 1 and world.fake.advisories(REPO) == []
    assert MANUAL in world.one_bot_comment(n)["body"]


def test_retry_handoff_command_forces_it_and_replies(make_world: Any) -> None:
    world, n = refused_advisory(make_world)
    world.fake.set_permission(REPO, BOT, "admin")
    world.fake.set_permission(REPO, "sec-lead", "maintain")
    command(world, n, "sec-lead")  # within the hour: only the command can make it happen now
    assert world.work() == ["commands-applied"]
    assert world.fake.count("POST", ADVISORY_POSTS) == 2
    [advisory] = world.fake.advisories(REPO)
    [marked] = marked_comments(world, n)
    assert advisory["ghsa_id"] in marked["body"] and MANUAL not in marked["body"]
    replies = [c for c in world.bot_comments(n) if MARKER_PREFIX not in c["body"]]
    assert len(replies) == 1
    assert "**Hand-off:** done" in replies[0]["body"]
    assert advisory["ghsa_id"] in replies[0]["body"]
    # Asked again: nothing to retry, nothing written on GitHub besides the reply.
    command(world, n, "sec-lead")
    world.work()
    assert world.fake.count("POST", ADVISORY_POSTS) == 2
    last = [c for c in world.bot_comments(n) if MARKER_PREFIX not in c["body"]][-1]
    assert "nothing to retry: it is already done" in last["body"]


def test_retry_handoff_command_still_refused_says_so(make_world: Any) -> None:
    world, n = refused_advisory(make_world)
    world.fake.set_permission(REPO, "sec-lead", "maintain")
    edits = world.fake.count("PATCH", COMMENT_EDITS)
    command(world, n, "sec-lead")
    world.work()
    assert world.fake.count("POST", ADVISORY_POSTS) == 2
    assert world.fake.count("PATCH", COMMENT_EDITS) == edits  # the comment already says it
    reply = [c for c in world.bot_comments(n) if MARKER_PREFIX not in c["body"]][-1]["body"]
    assert "refused again (GitHub answered 403" in reply and MANUAL in reply


def test_retry_handoff_from_someone_without_triage_access_is_refused(make_world: Any) -> None:
    world, n = refused_advisory(make_world)
    world.fake.set_permission(REPO, BOT, "admin")
    world.fake.set_permission(REPO, "passer-by", "read")
    command(world, n, "passer-by")
    assert world.work() == ["refused"]
    assert world.fake.count("POST", ADVISORY_POSTS) == 1 and world.fake.advisories(REPO) == []
    reply = [c for c in world.bot_comments(n) if MARKER_PREFIX not in c["body"]][-1]["body"]
    assert "`/triage retry-handoff`: needs triage access" in reply


def test_a_sweep_retries_hourly_and_a_dry_run_only_plans_it(tmp_path: Path,
                                                            classifier: Classifier) -> None:
    clock = FakeClock()
    with FakeGitHub(tokens=[TOKEN], login=BOT) as fake:
        fake.add_repo(REPO)
        fake.set_permission(REPO, BOT, "write")
        n = fake.add_issue(REPO, *SWEEP_STEAL)
        store = Store(tmp_path / "s.db", clock=clock)
        tracker = _sweep_tracker(fake, "advisory")
        run_sweep(classifier, store, tracker, [f"github:{REPO}"], apply=True)
        assert fake.count("POST", ADVISORY_POSTS) == 1
        fake.set_permission(REPO, BOT, "admin")
        # Within the hour the sweep passes over the unchanged issue.
        run_sweep(classifier, store, tracker, [f"github:{REPO}"], apply=True)
        assert fake.count("POST", ADVISORY_POSTS) == 1
        clock.advance(HOUR + 1)
        writes = list(fake.writes)
        dry = run_sweep(classifier, store, tracker, [f"github:{REPO}"])
        row = next(r for r in dry.notable if r.number == n)
        assert "protect: open a draft security advisory (again: refused before)" in row.actions
        assert fake.writes == writes and fake.count("POST", ADVISORY_POSTS) == 1
        state = store.get_issue_state(f"github:{REPO}#{n}")
        assert state is not None and state.extra.get("protect_refused")
        applied = run_sweep(classifier, store, tracker, [f"github:{REPO}"], apply=True)
        row = next(r for r in applied.notable if r.number == n)
        assert row.outcome == CHANGED
        [advisory] = fake.advisories(REPO)
        [marked] = [c for c in fake.comments(REPO, n) if MARKER_PREFIX in c["body"]]
        assert advisory["ghsa_id"] in marked["body"] and "could not do this" not in marked["body"]
        store.close()


def test_a_refused_transfer_retried_fixes_the_comment_where_the_issue_now_lives(
    make_world: Any,
) -> None:
    world = make_world({"BUGBAR_GITHUB_PROTECT": f"transfer:{PRIVATE}"})
    world.fake.set_permission(PRIVATE, BOT, "read")  # may not write to the private repository
    n = open_critical(world)
    assert world.work() == ["triaged"]
    assert f"transfer this issue to {PRIVATE}" in world.one_bot_comment(n)["body"]
    world.fake.set_permission(PRIVATE, BOT, "write")
    world.clock.advance(HOUR + 1)
    edit(world, n, STEAL_PROD[1] + " more")
    assert world.work() == ["triaged"]
    assert sum("transferIssue(" in q for q in world.fake.graphql_queries) == 2
    [moved] = [c for c in world.fake.comments(PRIVATE, 1) if MARKER_PREFIX in c["body"]]
    assert "transfer this issue" not in moved["body"]
    assert "could not do this itself" not in moved["body"]
    state = world.store.get_issue_state(f"github:{REPO}#{n}")
    assert state is not None and state.extra["protected"] == f"transferred {PRIVATE}#1"
    assert "protect_refused" not in state.extra


def test_a_label_change_no_rule_reads_retries_only_when_due(make_world: Any) -> None:
    world, n = refused_advisory(make_world)
    world.fake.set_permission(REPO, BOT, "admin")
    labels = tuple(world.labels(n)) + ("needs-info",)
    payload = label_payload("labeled", n, STEAL_PROD, "needs-info", labels=labels)
    assert world.post("issues", payload).status_code == 202
    assert world.work() == ["ignored-label"]  # within the hour: no request at all
    assert world.fake.count("POST", ADVISORY_POSTS) == 1
    world.clock.advance(HOUR + 1)
    payload = label_payload("labeled", n, STEAL_PROD, "needs-info", labels=labels)
    assert world.post("issues", payload).status_code == 202
    assert world.work() == ["triaged"]
    assert len(world.fake.advisories(REPO)) == 1
    assert MANUAL not in world.one_bot_comment(n)["body"]
