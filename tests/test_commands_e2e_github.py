"""Slash commands end to end on GitHub: signed issue_comment deliveries → parse_github → Bot →
Commands → GitHubTracker (PyGithub over real HTTP) → FakeGitHub on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.app import Bot
from bot.decide.classify import Classifier
from bot.decide.render import MARKER_PREFIX
from bot.decide.rules import RuleSet
from bot.events.github import parse_github
from bot.events.model import IssueRef
from bot.handlers.commands import Commands
from bot.providers.github import GitHubTracker
from bot.providers.retry import RetryPolicy, WritePacer
from bot.store import Store
from tests.fakes.github_api import FakeGitHub

SECRET = "It's a Secret to Everybody"
TOKEN = "e2e-token"
REPO = "acme/vision"
BOT = "bugbar-bot"
STEAL = ("Model extraction of our production fraud detection model",
         "An attacker queried the scoring API and trained a substitute model.")


def _user(login: str, uid: int) -> dict[str, Any]:
    return {"login": login, "id": uid, "node_id": f"U_{uid}", "type": "User",
            "site_admin": False, "url": f"https://api.github.com/users/{login}"}


def _payload(action: str, number: int, comment_id: int, body: str, author: str,
             previous: str | None = None) -> dict[str, Any]:
    """An ``issue_comment`` event as GitHub shapes it (the fields bugbar reads and a few
    more), see shared/fixtures/github/webhooks/issue_comment.*.json."""
    owner, name = REPO.split("/")
    sender = _user(author, 5000 + len(author))
    payload: dict[str, Any] = {
        "action": action,
        "issue": {
            "url": f"https://api.github.com/repos/{REPO}/issues/{number}",
            "id": 900 + number, "node_id": f"I_{number}", "number": number,
            "title": STEAL[0], "user": _user("reporter", 77), "labels": [], "state": "open",
            "locked": False, "comments": 1, "author_association": "NONE", "body": STEAL[1],
        },
        "comment": {
            "url": f"https://api.github.com/repos/{REPO}/issues/comments/{comment_id}",
            "id": comment_id, "node_id": f"IC_{comment_id}", "user": sender,
            "author_association": "COLLABORATOR", "performed_via_github_app": None,
            "body": body,
        },
        "repository": {"id": 4242, "node_id": "R_4242", "name": name, "full_name": REPO,
                       "private": False, "owner": _user(owner, 1)},
        "sender": sender,
    }
    if previous is not None:
        payload["changes"] = {"body": {"from": previous}}
    return payload


def _delivery(payload: dict[str, Any], delivery_id: str | None = None
              ) -> tuple[dict[str, str], bytes]:
    """Compact JSON bytes and headers signed the way GitHub signs them."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-GitHub-Event": "issue_comment",
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": f"sha256={signature}",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "Content-Type": "application/json",
    }
    return headers, body


@dataclass
class World:
    fake: FakeGitHub
    bot: Bot
    ref: IssueRef
    number: int

    def comment(self, body: str, author: str) -> int:
        """A person comments on the fake, and GitHub sends the signed created event."""
        comment_id = self.fake.add_comment(REPO, self.number, body, user=author)
        self.deliver("created", comment_id, body, author)
        return comment_id

    def edit(self, comment_id: int, body: str, author: str) -> str:
        previous = self.fake.comment(comment_id)["body"]
        self.fake.edit_comment(comment_id, body)
        return self.deliver("edited", comment_id, body, author, previous)

    def deliver(self, action: str, comment_id: int, body: str, author: str,
                previous: str | None = None) -> str:
        headers, raw = _delivery(_payload(action, self.number, comment_id, body, author,
                                          previous))
        self.outcome = self.bot.process(parse_github(headers, raw, [SECRET]))
        return self.outcome

    def labels(self) -> set[str]:
        return set(self.fake.issue_labels(REPO, self.number))

    def bot_comments(self) -> list[dict[str, Any]]:
        return [c for c in self.fake.comments(REPO, self.number) if c["user"]["login"] == BOT]

    def writes(self) -> int:
        return sum(self.fake.count(m) for m in ("POST", "PATCH", "PUT", "DELETE"))


@pytest.fixture()
def world(min_ruleset: RuleSet, store: Store) -> Iterator[World]:
    with FakeGitHub(tokens=[TOKEN], login=BOT) as fake:
        fake.add_repo(REPO)
        fake.set_permission(REPO, "maint", "triage")
        fake.set_permission(REPO, "reader", "read")
        number = fake.add_issue(REPO, *STEAL, user="reporter")

        def tracker_for(ref: IssueRef, installation_id: int | None) -> GitHubTracker:
            # Never really wait: no back-off sleeps, no 1 s pause between writes.
            return GitHubTracker.from_token(TOKEN, fake.url,
                                            policy=RetryPolicy(sleep=lambda s: None),
                                            pacer=WritePacer(0))

        bot = Bot(Classifier(min_ruleset), store, {"github": tracker_for})
        bot.commands = Commands(bot.triage, store)
        ref = IssueRef("github", REPO, number)
        bot.triage.run(tracker_for(ref, None), ref)  # the issue as triaged on opening
        yield World(fake, bot, ref, number)


def test_maintainer_sets_severity(world: World) -> None:
    assert "severity/critical" in world.labels()
    (bot_comment,) = world.bot_comments()
    world.fake.reset_log()
    comment_id = world.comment("/triage severity important", "maint")
    assert world.outcome == "commands-applied"
    assert {"threat/model-stealing", "severity/important", "route/security"} <= world.labels()
    assert "severity/critical" not in world.labels()
    (after,) = world.bot_comments()  # edited in place, no second comment, no reply
    assert after["id"] == bot_comment["id"] and "Set by a maintainer" in after["body"]
    assert world.fake.reactions(comment_id) == [(BOT, "+1")]
    assert world.fake.count("GET", r"/collaborators/maint/permission") == 1


def test_stranger_refused_with_one_reply(world: World) -> None:
    labels = world.labels()
    (bot_comment,) = world.bot_comments()
    world.fake.reset_log()
    comment_id = world.comment("/triage not-a-threat\n/triage severity important", "reader")
    assert world.outcome == "refused"
    assert world.labels() == labels
    bots = world.bot_comments()
    assert len(bots) == 2 and bots[0] == bot_comment
    assert "needs triage access or higher; you have read access" in bots[1]["body"]
    assert MARKER_PREFIX not in bots[1]["body"]
    assert world.fake.reactions(comment_id) == []
    assert world.writes() == 1  # the reply, nothing else


def test_command_in_a_code_block_does_nothing(world: World) -> None:
    world.fake.reset_log()
    world.comment("Try this:\n```\n/triage not-a-threat\n```\nand `/triage help`", "maint")
    assert world.outcome == "no-commands"
    assert world.writes() == 0
    assert world.fake.count("GET", "/permission") == 0


def test_edited_comment_does_not_repeat_its_commands(world: World) -> None:
    comment_id = world.comment("/triage severity important", "maint")
    world.comment("/triage severity critical", "maint")  # someone changes it again
    assert "severity/critical" in world.labels()
    world.fake.reset_log()
    assert world.edit(comment_id, "/triage severity important\nfixed a typo", "maint") \
        == "no-commands"
    assert world.writes() == 0
    assert world.edit(comment_id, "/triage severity important\n/triage route privacy",
                      "maint") == "commands-applied"
    assert {"severity/critical", "route/privacy"} <= world.labels()
    assert "severity/important" not in world.labels()


def test_issue_edit_and_sweep_keep_the_humans_choice(world: World, min_ruleset: RuleSet,
                                                     store: Store) -> None:
    from bot.handlers.sweep import Sweep, SweepOptions

    world.comment("/triage membership-inference", "maint")
    assert world.outcome == "commands-applied"
    human = {"threat/membership-inference"}
    assert human <= world.labels() and "threat/model-stealing" not in world.labels()
    # The reporter edits the issue: the text still says model stealing, the human's call stays.
    world.fake.edit_issue(REPO, world.number, body=STEAL[1] + " (more details)")
    world.bot.triage.run(world.bot.tracker(world.ref), world.ref)
    assert human <= world.labels() and "threat/model-stealing" not in world.labels()
    # Another edit whose webhook never arrived: the sweep decides the issue again (its text
    # changed) with the same decision code, keeps the human's choice and writes nothing.
    world.fake.edit_issue(REPO, world.number, body=STEAL[1] + " (and a stack trace)")
    world.fake.reset_log()
    rows = []
    sweep = Sweep(Classifier(min_ruleset), store, lambda provider, scope: world.bot.tracker(
        IssueRef("github", scope, 0)), SweepOptions(apply=True, reserve=None),
        on_row=rows.append)
    result = sweep.run([f"github:{REPO}"])
    assert result.complete
    (row,) = rows
    assert row.reason != "cached"  # decided again, not skipped as unchanged
    assert row.categories == ("membership-inference",)
    assert human <= world.labels() and "threat/model-stealing" not in world.labels()
    assert world.writes() == 0
    (bot_comment,) = world.bot_comments()
    assert "Set by a maintainer" in bot_comment["body"]


def test_command_on_an_issue_deleted_since_is_gone(world: World) -> None:
    """The issue was deleted after the comment was written: GitHub's 410 Gone ends the
    event with outcome ``gone`` (not an error to retry) and nothing is written."""
    body = "/triage severity important"
    comment_id = world.fake.add_comment(REPO, world.number, body, user="maint")
    world.fake.delete_issue(REPO, world.number)
    world.fake.reset_log()
    assert world.deliver("created", comment_id, body, "maint") == "gone"
    assert world.writes() == 0
    assert world.fake.count("GET", rf"/issues/{world.number}$") == 1
