"""End to end on GitLab: webhook bytes → parse_gitlab → durable inbox → Bot → GitLabTracker →
python-gitlab → FakeGitLab over loopback HTTP.

The payloads are written here in the shape GitLab sends (``Issue Hook`` / ``Note Hook``, see
https://docs.gitlab.com/user/project/integrations/webhook_events/), built from the fake's
current issue so the text the webhook carries and the text the API returns agree.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bot.app import Bot
from bot.decide.classify import Classifier
from bot.decide.render import MARKER_PREFIX
from bot.events.gitlab import parse_gitlab
from bot.events.model import Event, EventKind
from bot.providers.gitlab import GitLabTracker
from bot.providers.retry import RetryPolicy, WritePacer
from bot.store import Store
from tests.fakes.gitlab_api import FakeGitLab

SECRET = "gl-hook-secret-0b7e"
PUBLIC = "sec/ml/models"
PRIVATE = "sec/internal-tools"
STEAL = ("Model extraction of our production fraud detection model",
         "An attacker queried the scoring API and trained a substitute model.")
MILD = ("Model extraction via the API", "substitute model")
BOT_LABELS = ("threat/", "severity/", "route/")


@pytest.fixture()
def fake() -> Iterator[FakeGitLab]:
    with FakeGitLab() as f:
        f.add_project(PUBLIC, visibility="public")
        f.add_project(PRIVATE, visibility="private")
        yield f


@pytest.fixture()
def tracker(fake: FakeGitLab) -> GitLabTracker:
    policy = RetryPolicy(sleep=lambda s: None, rand=lambda: 0.0)
    return GitLabTracker(fake.url, fake.token, policy=policy, pacer=WritePacer(0.0))


@pytest.fixture()
def bot(classifier: Classifier, store: Store, tracker: GitLabTracker) -> Bot:
    return Bot(classifier, store, trackers={"gitlab": lambda ref, inst: tracker})


class Hooks:
    """Builds and delivers GitLab webhooks the way the server does: parse, store, process."""

    def __init__(self, fake: FakeGitLab, store: Store, bot: Bot) -> None:
        self.fake = fake
        self.store = store
        self.bot = bot

    def _user(self, username: str) -> dict[str, Any]:
        user = self.fake.add_user(username)
        return {"id": user["id"], "name": user["name"], "username": username,
                "avatar_url": user["avatar_url"], "email": "[REDACTED]"}

    def _project(self, path: str) -> dict[str, Any]:
        web = f"{self.fake.url}/{path}"
        namespace, name = path.rsplit("/", 1)
        return {"id": 1, "name": name, "description": "", "web_url": web, "avatar_url": None,
                "git_ssh_url": f"git@example.com:{path}.git", "git_http_url": f"{web}.git",
                "namespace": namespace, "visibility_level": 20 if path == PUBLIC else 0,
                "path_with_namespace": path, "default_branch": "main", "homepage": web,
                "url": f"git@example.com:{path}.git", "ssh_url": f"git@example.com:{path}.git",
                "http_url": f"{web}.git"}

    def _issue(self, path: str, iid: int) -> dict[str, Any]:
        issue = self.fake.issue(path, iid)
        return {"id": issue["id"], "iid": iid, "title": issue["title"],
                "description": issue["description"], "state": issue["state"],
                "confidential": issue["confidential"], "created_at": issue["created_at"],
                "updated_at": issue["updated_at"], "url": issue["web_url"],
                "type": "Issue", "labels": [{"title": n} for n in issue["labels"]]}

    def issue_hook(self, path: str, iid: int, action: str, *, by: str = "alice",
                   changes: dict[str, Any] | None = None) -> bytes:
        attrs = {**self._issue(path, iid), "action": action}
        payload = {"object_kind": "issue", "event_type": "issue", "user": self._user(by),
                   "project": self._project(path), "object_attributes": attrs,
                   "labels": attrs["labels"], "changes": changes or {}}
        return json.dumps(payload).encode()

    def note_hook(self, path: str, iid: int, note_id: int, text: str, *, by: str,
                  action: str = "create") -> bytes:
        attrs = {"id": note_id, "note": text, "noteable_type": "Issue", "system": False,
                 "action": action, "internal": False, "url": f"{self.fake.url}/{path}"}
        payload = {"object_kind": "note", "event_type": "note", "user": self._user(by),
                   "project": self._project(path), "object_attributes": attrs,
                   "issue": self._issue(path, iid)}
        return json.dumps(payload).encode()

    def deliver(self, event_name: str, body: bytes, key: str | None = None) -> tuple[Event, str]:
        """One delivery; returns the event and the outcome (``duplicate`` when deduped)."""
        headers = {"Content-Type": "application/json", "User-Agent": "GitLab/17.9.1",
                   "X-Gitlab-Event": event_name, "X-Gitlab-Token": SECRET,
                   "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
                   "Idempotency-Key": key or str(uuid.uuid4())}
        event = parse_gitlab(headers, body, [SECRET])
        if not self.store.put_delivery("gitlab", event.delivery_id, event_name, {}, body):
            return event, "duplicate"
        return event, self.bot.process(event)


@pytest.fixture()
def hooks(fake: FakeGitLab, store: Store, bot: Bot) -> Hooks:
    return Hooks(fake, store, bot)


def bot_notes(fake: FakeGitLab, path: str, iid: int) -> list[dict[str, Any]]:
    return [n for n in fake.notes(path, iid, include_system=False)
            if n["author"]["username"] == "bugbar-bot" and MARKER_PREFIX in n["body"]]


def bot_labels(fake: FakeGitLab, path: str, iid: int) -> list[str]:
    return [lbl for lbl in fake.labels_of(path, iid) if lbl.startswith(BOT_LABELS)]


def test_new_threat_gets_labels_and_exactly_one_note(fake: FakeGitLab, hooks: Hooks) -> None:
    iid = fake.add_issue(PRIVATE, *MILD, labels=["bug"])
    event, outcome = hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "open"))
    assert event.kind is EventKind.ISSUE_OPENED and outcome == "triaged"
    assert fake.labels_of(PRIVATE, iid) == ["bug", "route/security", "severity/important",
                                            "threat/model-stealing"]
    notes = bot_notes(fake, PRIVATE, iid)
    assert len(notes) == 1 and "model-stealing" in notes[0]["body"]
    assert fake.issue(PRIVATE, iid)["confidential"] is False


def test_redelivery_and_replays_write_nothing(fake: FakeGitLab, hooks: Hooks,
                                              bot: Bot) -> None:
    iid = fake.add_issue(PRIVATE, *MILD)
    body = hooks.issue_hook(PRIVATE, iid, "open")
    event, outcome = hooks.deliver("Issue Hook", body, key="idem-1")
    assert outcome == "triaged"
    writes = list(fake.writes)
    # GitLab resends with the same Idempotency-Key: the inbox drops it.
    assert hooks.deliver("Issue Hook", body, key="idem-1")[1] == "duplicate"
    # The same event processed twice anyway (a worker retry): nothing new is written.
    assert bot.process(event) == "unchanged"
    # Our own writes come back as hooks: a label-only update and the bot's own note.
    label_change = {"labels": {"previous": [], "current": [{"title": "threat/model-stealing"}]}}
    ev, outcome = hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "update",
                                                               by="bugbar-bot",
                                                               changes=label_change))
    assert ev.kind is EventKind.ISSUE_LABELED and outcome == "ignored-self"
    note = bot_notes(fake, PRIVATE, iid)[0]
    ev, outcome = hooks.deliver("Note Hook", hooks.note_hook(PRIVATE, iid, note["id"],
                                                             note["body"], by="bugbar-bot"))
    assert outcome == "ignored-self"
    assert fake.writes == writes
    assert len(bot_notes(fake, PRIVATE, iid)) == 1


def test_edit_that_changes_the_decision_edits_the_same_note(fake: FakeGitLab,
                                                            hooks: Hooks) -> None:
    iid = fake.add_issue(PRIVATE, *MILD)
    hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "open"))
    first = bot_notes(fake, PRIVATE, iid)[0]
    fake.clear_log()
    fake.edit_issue(PRIVATE, iid, description=STEAL[1] + " It is our production fraud model.")
    changes = {"description": {"previous": MILD[1], "current": "..."}}
    _, outcome = hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "update",
                                                              changes=changes))
    assert outcome == "triaged"
    notes = bot_notes(fake, PRIVATE, iid)
    assert [n["id"] for n in notes] == [first["id"]] and notes[0]["body"] != first["body"]
    assert f"gitlab:{PRIVATE}#{iid}:note~ {first['id']}" in fake.writes
    assert not [w for w in fake.writes if "note+" in w]
    assert "severity/critical" in fake.labels_of(PRIVATE, iid)
    assert "severity/important" not in fake.labels_of(PRIVATE, iid)


def test_edit_that_no_longer_matches_removes_labels_and_updates_note(fake: FakeGitLab,
                                                                     hooks: Hooks) -> None:
    iid = fake.add_issue(PRIVATE, *MILD, labels=["bug"])
    hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "open"))
    assert bot_labels(fake, PRIVATE, iid)
    fake.edit_issue(PRIVATE, iid, title="Slow dashboard", description="The page takes 10 s.")
    changes = {"title": {"previous": MILD[0], "current": "Slow dashboard"},
               "description": {"previous": MILD[1], "current": "The page takes 10 s."}}
    _, outcome = hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "update",
                                                              changes=changes))
    assert outcome == "triaged"
    assert fake.labels_of(PRIVATE, iid) == ["bug"]
    notes = bot_notes(fake, PRIVATE, iid)
    assert len(notes) == 1 and "no longer matches" in notes[0]["body"]


def test_critical_threat_on_public_project_becomes_confidential(fake: FakeGitLab,
                                                                hooks: Hooks) -> None:
    pub = fake.add_issue(PUBLIC, *STEAL)
    priv = fake.add_issue(PRIVATE, *STEAL)
    assert hooks.deliver("Issue Hook", hooks.issue_hook(PUBLIC, pub, "open"))[1] == "triaged"
    assert hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, priv, "open"))[1] == "triaged"
    assert fake.issue(PUBLIC, pub)["confidential"] is True
    assert fake.issue(PRIVATE, priv)["confidential"] is False
    assert "severity/critical" in fake.labels_of(PUBLIC, pub)
    # Once confidential, GitLab sends "Confidential Issue Hook"; a replay asks nothing again.
    before = list(fake.writes)
    body = hooks.issue_hook(PUBLIC, pub, "update", changes={"description": {}})
    event, outcome = hooks.deliver("Confidential Issue Hook", body)
    assert event.confidential and outcome == "unchanged"
    assert fake.writes == before


# -- slash commands: Reporter vs Guest -------------------------------------------------------


@pytest.fixture()
def commands_bot(bot: Bot, store: Store) -> Bot:
    from bot.handlers.commands import Commands

    bot.commands = Commands(bot.triage, store)
    return bot


def test_reporter_sets_severity_guest_is_refused_once(fake: FakeGitLab, hooks: Hooks,
                                                      commands_bot: Bot) -> None:
    fake.add_member(PRIVATE, "rita", "reporter")
    fake.add_member(PRIVATE, "gus", "guest")
    iid = fake.add_issue(PRIVATE, *MILD)
    hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "open"))
    assert "severity/important" in fake.labels_of(PRIVATE, iid)

    text = "/triage severity critical"
    guest_note = fake.add_note(PRIVATE, iid, text, author="gus")
    _, outcome = hooks.deliver("Note Hook", hooks.note_hook(PRIVATE, iid, guest_note, text,
                                                            by="gus"))
    assert outcome == "refused"
    assert "severity/important" in fake.labels_of(PRIVATE, iid)
    replies = [n for n in fake.notes(PRIVATE, iid, include_system=False)
               if n["author"]["username"] == "bugbar-bot" and MARKER_PREFIX not in n["body"]]
    assert len(replies) == 1 and "triage access" in replies[0]["body"]
    # The same comment delivered again (a resend with a new key): no second reply.
    hooks.deliver("Note Hook", hooks.note_hook(PRIVATE, iid, guest_note, text, by="gus"))
    assert len([n for n in fake.notes(PRIVATE, iid, include_system=False)
                if n["author"]["username"] == "bugbar-bot"]) == 2

    reporter_note = fake.add_note(PRIVATE, iid, text, author="rita")
    _, outcome = hooks.deliver("Note Hook", hooks.note_hook(PRIVATE, iid, reporter_note, text,
                                                            by="rita"))
    assert outcome == "commands-applied"
    assert "severity/critical" in fake.labels_of(PRIVATE, iid)
    assert "severity/important" not in fake.labels_of(PRIVATE, iid)
    assert f"gitlab:{PRIVATE}#{iid}:award+ {reporter_note} thumbsup" in fake.writes
    assert len(bot_notes(fake, PRIVATE, iid)) == 1
    # GitLab (16.11+) fires a Note Hook on edits, without the previous text: an edit that
    # keeps the command does not run it again.
    before = list(fake.writes)
    edited = text + "\n\nthanks!"
    _, outcome = hooks.deliver("Note Hook", hooks.note_hook(PRIVATE, iid, reporter_note, edited,
                                                            by="rita", action="update"))
    assert outcome == "no-commands" and fake.writes == before


def test_escalation_mentions_the_group_once_and_assigns(fake: FakeGitLab, store: Store,
                                                        classifier: Classifier) -> None:
    # BUGBAR_GITLAB_ESCALATE=@sec/ml-security, BUGBAR_GITLAB_ASSIGNEES=carol (username or id).
    carol = fake.add_user("carol")
    fake.add_member(PRIVATE, "carol", "developer")
    policy = RetryPolicy(sleep=lambda s: None, rand=lambda: 0.0)
    tracker = GitLabTracker(fake.url, fake.token, policy=policy, pacer=WritePacer(0.0),
                            mentions=("@sec/ml-security",), assignees=("carol",))
    hooks = Hooks(fake, store, Bot(classifier, store, trackers={"gitlab": lambda r, i: tracker}))
    mild = fake.add_issue(PRIVATE, *MILD)
    hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, mild, "open"))
    assert "@sec/ml-security" not in bot_notes(fake, PRIVATE, mild)[0]["body"]
    iid = fake.add_issue(PRIVATE, *STEAL)
    assert hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "open"))[1] == "triaged"
    note = bot_notes(fake, PRIVATE, iid)[0]
    assert note["body"].count("@sec/ml-security") == 1
    assert [a["id"] for a in fake.issue(PRIVATE, iid)["assignees"]] == [carol["id"]]
    # An edit that changes the decision edits the note; the mention stays, written once.
    fake.edit_issue(PRIVATE, iid, description=STEAL[1] + " It also leaks PII.")
    hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "update",
                                                 changes={"description": {}}))
    notes = bot_notes(fake, PRIVATE, iid)
    assert len(notes) == 1 and notes[0]["body"].count("@sec/ml-security") == 1
    assert len([w for w in fake.writes if ":assignees " in w]) == 1


# --------------------------------------------------------------------------- label changes

ODD = ("Odd answers from the support bot",
       "It replied with something strange after a customer message yesterday.")


def _label_objects(path: str, names: list[str]) -> list[dict[str, Any]]:
    """Label objects as ``changes.labels`` carries them."""
    return [{"id": 4000 + i, "title": n, "color": "#6699cc", "project_id": 1,
             "created_at": "2026-01-05T10:00:00Z", "updated_at": "2026-01-05T10:00:00Z",
             "template": False, "description": None, "type": "ProjectLabel", "group_id": None}
            for i, n in enumerate(names)]


def relabel(fake: FakeGitLab, hooks: Hooks, path: str, iid: int, labels: list[str], *,
            by: str = "alice") -> tuple[Event, str]:
    """``by`` sets the issue's labels in GitLab, which sends an Issue Hook ``update`` whose
    ``changes`` name ``labels`` (and ``updated_at``) only."""
    before = fake.labels_of(path, iid)
    fake.edit_issue(path, iid, labels=",".join(labels), by=by)
    changes = {"labels": {"previous": _label_objects(path, before),
                          "current": _label_objects(path, fake.labels_of(path, iid))},
               "updated_at": {"previous": "2026-01-05 10:00:00 UTC",
                              "current": "2026-01-05 10:05:00 UTC"}}
    return hooks.deliver("Issue Hook", hooks.issue_hook(path, iid, "update", by=by,
                                                        changes=changes))


def test_label_changes_by_a_person_re_triage_once_and_the_bots_own_are_dropped(
        fake: FakeGitLab, hooks: Hooks) -> None:
    iid = fake.add_issue(PRIVATE, *ODD, labels=["bug"])
    assert hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "open"))[1] == "unchanged"
    assert bot_notes(fake, PRIVATE, iid) == [] and fake.writes == []

    event, outcome = relabel(fake, hooks, PRIVATE, iid, ["bug", "prompt-injection"])
    assert event.kind is EventKind.ISSUE_LABELED
    assert event.labels_added == ("prompt-injection",)
    assert outcome == "triaged"
    assert bot_labels(fake, PRIVATE, iid) == ["route/security", "severity/important",
                                              "threat/adversarial-perturbation"]
    [note] = bot_notes(fake, PRIVATE, iid)
    assert "adversarial-perturbation" in note["body"]
    writes = list(fake.writes)

    # GitLab reports the bot's label write as an update by the bot: dropped by its author.
    ours = sorted(fake.labels_of(PRIVATE, iid))
    mine = {"labels": {"previous": _label_objects(PRIVATE, ["bug", "prompt-injection"]),
                       "current": _label_objects(PRIVATE, ours)}}
    ev, outcome = hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "update",
                                                               by="bugbar-bot", changes=mine))
    assert ev.labels_added == ("route/security", "severity/important",
                               "threat/adversarial-perturbation")
    assert outcome == "ignored-self"

    # A label no rule reads: no request at all.
    requests = len(fake.requests)
    assert relabel(fake, hooks, PRIVATE, iid, [*ours, "frontend"])[1] == "ignored-label"
    assert len(fake.requests) == requests
    assert fake.writes == writes and len(bot_notes(fake, PRIVATE, iid)) == 1

    # The person takes their evidence label off: re-decided, the bot's labels follow, the
    # same note is edited (never a second one).
    keep = [x for x in fake.labels_of(PRIVATE, iid) if x != "prompt-injection"]
    assert relabel(fake, hooks, PRIVATE, iid, keep)[1] == "triaged"
    assert fake.labels_of(PRIVATE, iid) == ["bug", "frontend"]
    [edited] = bot_notes(fake, PRIVATE, iid)
    assert edited["id"] == note["id"] and "no longer matches" in edited["body"]
    assert not [w for w in fake.writes[len(writes):] if "note+" in w]


def test_a_persons_threat_label_is_their_decision_on_gitlab(fake: FakeGitLab,
                                                           hooks: Hooks, store: Store) -> None:
    iid = fake.add_issue(PRIVATE, *ODD)
    hooks.deliver("Issue Hook", hooks.issue_hook(PRIVATE, iid, "open"))
    assert relabel(fake, hooks, PRIVATE, iid, ["threat/model-stealing"])[1] == "triaged"
    assert bot_labels(fake, PRIVATE, iid) == ["route/security", "severity/important",
                                              "threat/model-stealing"]
    state = store.get_issue_state(f"gitlab:{PRIVATE}#{iid}")
    assert state is not None and "threat/model-stealing" not in state.applied_labels
    assert "category" not in state.overrides
    assert len(bot_notes(fake, PRIVATE, iid)) == 1
    # Taken off again: nothing in the text, so the bot's labels go and the note says so.
    assert relabel(fake, hooks, PRIVATE, iid, [])[1] == "triaged"
    assert fake.labels_of(PRIVATE, iid) == []
    [note] = bot_notes(fake, PRIVATE, iid)
    assert "no longer matches" in note["body"]
