"""End to end on Jira Cloud and Data Center: signed webhook bytes → parse_jira → durable inbox →
Bot (triage, slash commands) → JiraTracker → the ``jira`` library → FakeJira over loopback HTTP.

Payloads are written here in the shape Jira sends (``jira:issue_created``,
``jira:issue_updated`` with a changelog, Cloud ``comment_created`` with its trimmed issue, Data
Center comments as ``jira:issue_updated``/``issue_commented``; see
https://developer.atlassian.com/cloud/jira/platform/webhooks/), built from the fake's current
issue so the text the webhook carries and the text the API returns agree. Users are named the
way each flavour names them today: Cloud by ``accountId`` only, Data Center by ``name``/``key``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import Bot
from bot.decide.classify import Classifier
from bot.events.jira import parse_jira
from bot.events.model import Event, EventKind
from bot.handlers.commands import Commands
from bot.providers.jira import PROPERTY_KEY, JiraTracker
from bot.providers.retry import RetryPolicy, WritePacer
from bot.store import Store
from tests.fakes.jira_api import FakeJira

SECRET = "jira-e2e-hook-secret"
STEAL = ("Model extraction of our production fraud detection model",
         "An attacker queried the scoring API and trained a substitute model.")
MILD = ("Model extraction via the API", "substitute model")
BOT_LABELS = ("threat/", "severity/", "route/")


@pytest.fixture(params=["cloud", "dc"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeJira]:
    with FakeJira(request.param) as f:
        f.add_project("PROJ", name="Product")
        f.add_project("SEC", name="Security")
        f.add_security_level("PROJ", id="10001", name="Embargoed")
        for who in ("alice", "bob"):
            f.add_user(who)
            f.grant(who, "PROJ", "BROWSE_PROJECTS", "ADD_COMMENTS")
        f.grant("alice", "PROJ", "EDIT_ISSUES")
        yield f


def make_tracker(fake: FakeJira) -> JiraTracker:
    bot = fake.user("bot")
    creds: dict[str, Any] = (
        {"email": bot.email, "token": bot.token} if fake.flavour == "cloud"
        else {"pat": bot.token}
    )
    policy = RetryPolicy(sleep=lambda s: None, rand=lambda: 0.0)
    return JiraTracker(fake.url, policy=policy, pacer=WritePacer(0.0), security_level="10001",
                       security_project="SEC", **creds)


def make_bot(classifier: Classifier, store: Store, tracker: JiraTracker) -> Bot:
    bot = Bot(classifier, store, trackers={"jira": lambda ref, inst: tracker})
    bot.commands = Commands(bot.triage, store)
    return bot


class Hooks:
    """Builds Jira webhooks and delivers them the way the server does: parse, store, process."""

    def __init__(self, fake: FakeJira, store: Store, bot: Bot) -> None:
        self.fake = fake
        self.store = store
        self.bot = bot
        self.cloud = fake.flavour == "cloud"
        self.ms = 1_767_225_600_000

    def user(self, handle: str) -> dict[str, Any]:
        u = self.fake.user(handle)
        if self.cloud:
            return {"self": f"{self.fake.url}/rest/api/2/user?accountId={u.account_id}",
                    "accountId": u.account_id, "accountType": "atlassian",
                    "displayName": u.display_name, "active": True, "timeZone": "Etc/UTC"}
        return {"self": f"{self.fake.url}/rest/api/2/user?username={u.handle}",
                "name": u.handle, "key": u.key, "emailAddress": u.email,
                "displayName": u.display_name, "active": True, "timeZone": "Etc/UTC"}

    def issue(self, key: str, *, trimmed: bool = False) -> dict[str, Any]:
        i = self.fake.issue(key)
        fields: dict[str, Any] = {
            "summary": i["summary"],
            "issuetype": {"id": "10002", "name": "Bug", "subtask": False},
            "project": {"id": "10000", "key": i["project"], "name": "Product",
                        "projectTypeKey": "software"},
            "assignee": None,
            "priority": {"id": "3", "name": "Medium"},
            "status": {"id": "10000", "name": "To Do",
                       "statusCategory": {"id": 2, "key": "new", "name": "To Do"}},
        }
        if not trimmed:
            fields.update({
                "description": i["description"], "labels": i["labels"],
                "security": {"id": i["security"]} if i["security"] else None,
                "reporter": self.user(i["reporter"]), "created": "2026-01-01T00:00:00.000+0000",
                "updated": "2026-01-01T00:00:00.000+0000", "issuelinks": [], "resolution": None,
            })
        return {"id": i["id"], "self": f"{self.fake.url}/rest/api/2/issue/{i['id']}",
                "key": key, "fields": fields}

    def envelope(self, name: str, type_name: str | None, by: str) -> dict[str, Any]:
        self.ms += 1000
        payload: dict[str, Any] = {"timestamp": self.ms, "webhookEvent": name,
                                   "user": self.user(by)}
        if type_name is not None:
            payload["issue_event_type_name"] = type_name
        return payload

    def issue_created(self, key: str, *, by: str = "alice") -> bytes:
        payload = self.envelope("jira:issue_created", "issue_created", by)
        i = self.fake.issue(key)
        payload["issue"] = self.issue(key)
        payload["changelog"] = {"id": str(self.ms % 100_000), "items": [
            {"field": "summary", "fieldtype": "jira", "fieldId": "summary", "from": None,
             "fromString": None, "to": None, "toString": i["summary"]}]}
        return json.dumps(payload).encode()

    def issue_updated(self, key: str, changed: dict[str, tuple[str, str]], *,
                      by: str = "alice") -> bytes:
        payload = self.envelope("jira:issue_updated", "issue_updated", by)
        payload["issue"] = self.issue(key)
        payload["changelog"] = {"id": str(self.ms % 100_000), "items": [
            {"field": name, "fieldtype": "jira", "fieldId": name, "from": None,
             "fromString": old, "to": None, "toString": new}
            for name, (old, new) in changed.items()]}
        return json.dumps(payload).encode()

    def comment_created(self, key: str, comment_id: str, *, by: str) -> bytes:
        """Cloud: ``comment_created`` with a trimmed issue; DC: ``jira:issue_updated`` with
        ``issue_commented`` and the full issue."""
        text = next(c["body"] for c in self.fake.issue(key)["comments"] if c["id"] == comment_id)
        comment = {"self": f"{self.fake.url}/rest/api/2/issue/{key}/comment/{comment_id}",
                   "id": comment_id, "author": self.user(by), "body": text,
                   "updateAuthor": self.user(by), "created": "2026-01-02T00:00:00.000+0000",
                   "updated": "2026-01-02T00:00:00.000+0000"}
        if self.cloud:
            payload = self.envelope("comment_created", None, by)
            del payload["user"]  # Cloud comment events carry no top-level user
            payload["issue"] = self.issue(key, trimmed=True)
            comment["jsdPublic"] = True
        else:
            payload = self.envelope("jira:issue_updated", "issue_commented", by)
            payload["issue"] = self.issue(key)
        payload["comment"] = comment
        return json.dumps(payload).encode()

    def deliver(self, body: bytes, identifier: str | None = None) -> tuple[Event, str]:
        """One signed delivery; returns the event and the outcome (``duplicate`` if deduped)."""
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "X-Atlassian-Webhook-Identifier": identifier or str(uuid.uuid4()),
            "X-Atlassian-Webhook-Flow": "Primary",
            "X-Hub-Signature": "sha256=" + hmac.new(SECRET.encode(), body,
                                                    hashlib.sha256).hexdigest(),
        }
        event = parse_jira(headers, body, [SECRET])
        if not self.store.put_delivery("jira", event.delivery_id, event.name, {}, body):
            return event, "duplicate"
        return event, self.bot.process(event)


@pytest.fixture()
def tracker(fake: FakeJira) -> JiraTracker:
    return make_tracker(fake)


@pytest.fixture()
def hooks(fake: FakeJira, store: Store, classifier: Classifier, tracker: JiraTracker) -> Hooks:
    return Hooks(fake, store, make_bot(classifier, store, tracker))


def bot_labels(fake: FakeJira, key: str) -> list[str]:
    return sorted(lbl for lbl in fake.issue(key)["labels"] if lbl.startswith(BOT_LABELS))


def bot_comments(fake: FakeJira, key: str) -> list[dict[str, Any]]:
    return [c for c in fake.issue(key)["comments"] if c["author"] == "bot"]


def test_new_threat_gets_labels_and_exactly_one_comment(fake: FakeJira, hooks: Hooks) -> None:
    key = fake.add_issue("PROJ", *MILD, labels=["bug"], reporter="alice")
    event, outcome = hooks.deliver(hooks.issue_created(key))
    assert event.kind is EventKind.ISSUE_OPENED and outcome == "triaged"
    assert fake.issue(key)["labels"] == ["bug", "threat/model-stealing", "severity/important",
                                         "route/security"]
    comments = bot_comments(fake, key)
    assert len(comments) == 1 and comments[0]["body"].startswith("h3. bugbar triage")
    assert "<!--" not in comments[0]["body"]
    prop = fake.issue(key)["properties"][PROPERTY_KEY]
    assert prop["comment_id"] == comments[0]["id"] and prop["marker"].startswith("<!-- bugbar")
    # Not critical: no security level, no escalation.
    assert fake.issue(key)["security"] is None and fake.issue_keys("SEC") == []


def test_redelivery_and_own_writes_write_nothing(fake: FakeJira, hooks: Hooks) -> None:
    key = fake.add_issue("PROJ", *MILD, reporter="alice")
    body = hooks.issue_created(key)
    event, outcome = hooks.deliver(body, identifier="wh-1")
    assert outcome == "triaged"
    writes = list(fake.writes)
    # Jira retries with the same X-Atlassian-Webhook-Identifier: the inbox drops it.
    assert hooks.deliver(body, identifier="wh-1")[1] == "duplicate"
    # The same event processed again anyway (a worker retry): nothing new is written.
    assert hooks.bot.process(event) == "unchanged"
    # Our own writes come back: a labels-only update, and the bot's own comment.
    labels = hooks.issue_updated(key, {"labels": ("", "threat/model-stealing")}, by="bot")
    event, outcome = hooks.deliver(labels)
    assert event.kind is EventKind.ISSUE_LABELED and outcome == "ignored-self"
    mine = bot_comments(fake, key)[0]["id"]
    assert hooks.deliver(hooks.comment_created(key, mine, by="bot"))[1] in (
        "ignored-self", "ignored-bot")
    assert fake.writes == writes and len(bot_comments(fake, key)) == 1


def test_edit_that_changes_the_decision_edits_the_same_comment(fake: FakeJira,
                                                               hooks: Hooks) -> None:
    key = fake.add_issue("PROJ", *MILD, reporter="alice")
    hooks.deliver(hooks.issue_created(key))
    first = bot_comments(fake, key)[0]
    fake.clear_log()
    fake.edit_issue(key, description=STEAL[1] + " It is our production fraud model.")
    _, outcome = hooks.deliver(hooks.issue_updated(key, {"description": (MILD[1], "...")}))
    assert outcome == "triaged"
    comments = bot_comments(fake, key)
    assert [c["id"] for c in comments] == [first["id"]] and comments[0]["body"] != first["body"]
    assert f"jira:{key}:comment~ {first['id']}" in fake.writes
    assert not [w for w in fake.writes if "comment+" in w]
    assert "severity/critical" in fake.issue(key)["labels"]
    assert "severity/important" not in fake.issue(key)["labels"]


def test_edit_that_no_longer_matches_removes_labels(fake: FakeJira, hooks: Hooks) -> None:
    key = fake.add_issue("PROJ", *MILD, labels=["bug"], reporter="alice")
    hooks.deliver(hooks.issue_created(key))
    assert bot_labels(fake, key)
    fake.edit_issue(key, summary="Slow dashboard", description="The page takes 10 s.")
    changes = {"summary": (MILD[0], "Slow dashboard"), "description": (MILD[1], "The page...")}
    assert hooks.deliver(hooks.issue_updated(key, changes))[1] == "triaged"
    assert fake.issue(key)["labels"] == ["bug"]
    comments = bot_comments(fake, key)
    assert len(comments) == 1 and "no longer matches" in comments[0]["body"]


def test_critical_threat_gets_the_security_level(fake: FakeJira, hooks: Hooks) -> None:
    key = fake.add_issue("PROJ", *STEAL, reporter="alice")
    assert hooks.deliver(hooks.issue_created(key))[1] == "triaged"
    assert "severity/critical" in fake.issue(key)["labels"]
    assert fake.issue(key)["security"] == "10001"
    assert f"jira:{key}:security 10001" in fake.writes
    # Restricted now: the next delivery is marked confidential and asks for nothing again.
    before = list(fake.writes)
    event, outcome = hooks.deliver(hooks.issue_updated(key, {"description": ("a", "b")}))
    assert event.confidential and outcome == "unchanged"
    assert fake.writes == before


def test_ssirp_creates_one_linked_security_issue(fake: FakeJira, hooks: Hooks,
                                                 classifier: Classifier, tmp_path: Path) -> None:
    key = fake.add_issue("PROJ", *STEAL, reporter="alice")
    assert hooks.deliver(hooks.issue_created(key))[1] == "triaged"
    assert "route/ssirp" in fake.issue(key)["labels"]
    assert fake.issue_keys("SEC") == ["SEC-1"]
    sec = fake.issue("SEC-1")
    assert sec["links"] == [("SEC-1", "Relates", key)] and sec["description"] is None
    assert STEAL[1] not in json.dumps(sec, default=str)  # the reporter's text is not copied
    # A text edit that keeps the decision, then the same issue with a lost store.
    fake.edit_issue(key, description=STEAL[1] + " Again.")
    hooks.deliver(hooks.issue_updated(key, {"description": (STEAL[1], "...")}))
    fresh = Store(tmp_path / "fresh.db")
    try:
        other = Hooks(fake, fresh, make_bot(classifier, fresh, make_tracker(fake)))
        before = list(fake.writes)
        assert other.deliver(other.issue_created(key))[1] in ("triaged", "unchanged")
        assert fake.writes == before  # the link is found: no issue, no comment, no label
    finally:
        fresh.close()
    assert fake.issue_keys("SEC") == ["SEC-1"] and len(bot_comments(fake, key)) == 1


def test_commands_with_and_without_edit_permission(fake: FakeJira, hooks: Hooks) -> None:
    key = fake.add_issue("PROJ", *MILD, reporter="alice")
    hooks.deliver(hooks.issue_created(key))
    assert "severity/important" in fake.issue(key)["labels"]
    text = "/triage severity critical"

    refused = fake.add_comment(key, text, author="bob")  # no EDIT_ISSUES → READ
    assert hooks.deliver(hooks.comment_created(key, refused, by="bob"))[1] == "refused"
    assert "severity/important" in fake.issue(key)["labels"]
    replies = [c for c in bot_comments(fake, key)
               if c["id"] != fake.issue(key)["properties"][PROPERTY_KEY]["comment_id"]]
    assert len(replies) == 1 and "triage access" in replies[0]["body"]
    assert replies[0]["body"].startswith("*bugbar did not run:*")  # wiki markup, not Markdown
    # The same comment again under a new delivery id (Cloud sends comments twice): no reply.
    hooks.deliver(hooks.comment_created(key, refused, by="bob"))
    assert len(bot_comments(fake, key)) == 2

    triage_comment = fake.issue(key)["properties"][PROPERTY_KEY]["comment_id"]
    applied = fake.add_comment(key, text, author="alice")  # EDIT_ISSUES → TRIAGE
    assert hooks.deliver(hooks.comment_created(key, applied, by="alice"))[1] == (
        "commands-applied")
    labels = fake.issue(key)["labels"]
    assert "severity/critical" in labels and "severity/important" not in labels
    assert fake.issue(key)["properties"][PROPERTY_KEY]["comment_id"] == triage_comment
    assert len(bot_comments(fake, key)) == 2  # the triage comment was edited, no reaction


def test_escalation_assigns_and_adds_watchers_once(fake: FakeJira, store: Store,
                                                   classifier: Classifier) -> None:
    # BUGBAR_JIRA_ASSIGNEE / BUGBAR_JIRA_ESCALATE: account ids on Cloud, usernames on DC.
    fake.grant("bot", "PROJ", "ASSIGN_ISSUES", "MANAGE_WATCHERS")
    fake.grant("bob", "PROJ", "ASSIGNABLE_USER")
    base = make_tracker(fake)
    tracker = JiraTracker(fake.url, policy=base.policy, pacer=base.pacer,
                          assignee=fake.user_id("bob"),
                          watchers=(fake.user_id("alice"), fake.user_id("bob")),
                          **({"email": fake.user("bot").email, "token": fake.user("bot").token}
                             if fake.flavour == "cloud" else {"pat": fake.user("bot").token}))
    hooks = Hooks(fake, store, make_bot(classifier, store, tracker))
    mild = fake.add_issue("PROJ", *MILD, reporter="alice")
    hooks.deliver(hooks.issue_created(mild))
    assert fake.issue(mild)["assignee"] is None and fake.issue(mild)["watchers"] == []
    key = fake.add_issue("PROJ", *STEAL, reporter="alice")
    assert hooks.deliver(hooks.issue_created(key))[1] == "triaged"
    assert fake.issue(key)["assignee"] == "bob"
    assert fake.issue(key)["watchers"] == ["alice", "bob"]
    fake.edit_issue(key, description=STEAL[1] + " Again.")
    before = len(fake.writes)
    hooks.deliver(hooks.issue_updated(key, {"description": (STEAL[1], "...")}))
    assert not [w for w in fake.writes[before:] if "watcher" in w or "assignee" in w]


def test_escalation_steps_jira_refuses_are_skipped(fake: FakeJira, store: Store,
                                                   classifier: Classifier,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    base = make_tracker(fake)
    tracker = JiraTracker(fake.url, policy=base.policy, pacer=base.pacer,
                          assignee=fake.user_id("bob"), watchers=(fake.user_id("alice"),),
                          **({"email": fake.user("bot").email, "token": fake.user("bot").token}
                             if fake.flavour == "cloud" else {"pat": fake.user("bot").token}))
    hooks = Hooks(fake, store, make_bot(classifier, store, tracker))
    key = fake.add_issue("PROJ", *STEAL, reporter="alice")
    assert hooks.deliver(hooks.issue_created(key))[1] == "triaged"  # labels and comment
    assert fake.issue(key)["assignee"] is None and fake.issue(key)["watchers"] == []
    assert len([r for r in caplog.records if "refused an escalation" in r.getMessage()]) == 2
    assert len(bot_comments(fake, key)) == 1


# --------------------------------------------------------------------------- label changes

TERSE = ("Unusual traffic on the scoring endpoint",
         "Lots of requests from a few accounts since Monday.")


def relabel(fake: FakeJira, hooks: Hooks, key: str, labels: list[str], *,
            by: str = "alice") -> tuple[Event, str]:
    """``by`` sets the issue's labels; Jira sends ``jira:issue_updated`` whose changelog has
    one ``labels`` item with the whole set before and after, space-separated."""
    before = " ".join(fake.issue(key)["labels"])
    fake.edit_issue(key, labels=labels)
    return hooks.deliver(hooks.issue_updated(key, {"labels": (before, " ".join(labels))},
                                             by=by))


def test_a_persons_threat_label_triages_once_and_unlabelling_re_decides(
        fake: FakeJira, hooks: Hooks) -> None:
    key = fake.add_issue("PROJ", *TERSE, labels=["bug"], reporter="alice")
    assert hooks.deliver(hooks.issue_created(key))[1] == "unchanged"
    assert bot_comments(fake, key) == [] and fake.writes == []

    event, outcome = relabel(fake, hooks, key, ["bug", "threat/model-stealing"])
    assert event.kind is EventKind.ISSUE_LABELED
    assert event.labels_added == ("threat/model-stealing",)
    assert outcome == "triaged"
    assert bot_labels(fake, key) == ["route/security", "severity/important",
                                     "threat/model-stealing"]
    [comment] = bot_comments(fake, key)
    assert "model-stealing" in comment["body"]
    writes = list(fake.writes)

    # The bot's label write comes back as an update by the bot. It added severity and route
    # only (the threat label is the person's): no rule reads those. Had it added a threat
    # label, its author drops it (test_redelivery_and_own_writes_write_nothing).
    ours = list(fake.issue(key)["labels"])
    mine = hooks.issue_updated(key, {"labels": ("bug threat/model-stealing", " ".join(ours))},
                               by="bot")
    assert hooks.deliver(mine)[1] == "ignored-label"
    # A label no rule reads: nothing asked, nothing written.
    requests = len(fake.requests)
    assert relabel(fake, hooks, key, [*ours, "customer-x"])[1] == "ignored-label"
    assert len(fake.requests) == requests and fake.writes == writes

    # The person takes their threat label off: nothing in the text, so the bot's own labels
    # go and the same comment says so.
    keep = [x for x in fake.issue(key)["labels"] if x != "threat/model-stealing"]
    assert relabel(fake, hooks, key, keep)[1] == "triaged"
    assert fake.issue(key)["labels"] == ["bug", "customer-x"]
    [edited] = bot_comments(fake, key)
    assert edited["id"] == comment["id"] and "no longer matches" in edited["body"]
    assert not [w for w in fake.writes if "comment+" in w and w not in writes]


def test_the_bots_own_threat_label_is_known_by_account_id_beside_an_old_name(
        classifier: Classifier, store: Store) -> None:
    """Some Cloud payloads still carry ``name``/``key`` beside ``accountId``; the bot is
    known by its ``accountId`` (what ``/myself`` names it by on Cloud) all the same."""
    with FakeJira("cloud") as fake:
        fake.add_project("PROJ", name="Product")
        fake.add_user("alice")
        fake.grant("alice", "PROJ", "BROWSE_PROJECTS", "ADD_COMMENTS", "EDIT_ISSUES")
        hooks = Hooks(fake, store, make_bot(classifier, store, make_tracker(fake)))
        key = fake.add_issue("PROJ", *MILD, reporter="alice")
        assert hooks.deliver(hooks.issue_created(key))[1] == "triaged"
        writes = list(fake.writes)
        payload = json.loads(hooks.issue_updated(key, {"labels": ("", "threat/model-stealing")},
                                                 by="bot"))
        payload["user"].update(name="bugbar-service", key="bugbar-service")
        event, outcome = hooks.deliver(json.dumps(payload).encode())
        assert event.actor == "bugbar-service" and outcome == "ignored-self"
        assert fake.writes == writes
