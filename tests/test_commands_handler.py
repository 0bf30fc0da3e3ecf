"""The slash-command handler over the in-memory tracker and a real SQLite store."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import pytest

from bot.app import Bot
from bot.decide.classify import Classifier
from bot.decide.commands import CommandPolicy, new_commands, parse_commands, render_help
from bot.decide.model import Access
from bot.decide.render import MARKER_PREFIX
from bot.decide.rules import RuleSet
from bot.events.model import Event, EventKind, IssueRef
from bot.handlers.commands import Commands, _fresh, _items, comment_signatures
from bot.handlers.triage import Triage
from bot.providers.base import Comment
from bot.store import Store
from tests.fakes.tracker import MemoryTracker

STEAL = ("Model extraction of our production fraud detection model",
         "An attacker queried the scoring API and trained a substitute model.")
"""model-stealing, critical (range important – critical), route ssirp."""
SECRET = "ZX-EXPLOIT-4711"
QUIET = ("Slow dashboard", "The page takes 10 s to load.")

MAINTAINER, STRANGER = "maint", "stranger"


@pytest.fixture(scope="module")
def classifier(min_ruleset: RuleSet) -> Classifier:
    """The small fixed rule set (model-stealing, membership-inference): tuning the shipped
    rules must not move these tests."""
    return Classifier(min_ruleset)


@pytest.fixture()
def triage(classifier: Classifier, store: Store) -> Triage:
    return Triage(classifier, store)


@pytest.fixture()
def commands(triage: Triage, store: Store) -> Commands:
    return Commands(triage, store)


@pytest.fixture()
def tracker() -> MemoryTracker:
    t = MemoryTracker()
    t.permissions = {MAINTAINER: Access.TRIAGE, "reader": Access.READ}
    return t


@pytest.fixture()
def ref(tracker: MemoryTracker, triage: Triage) -> IssueRef:
    """A model-stealing issue the bot has already triaged (labels and its comment)."""
    r = tracker.add_issue("o/r", 1, *STEAL, labels=("bug",))
    triage.run(tracker, r)
    return r


def _event(ref: IssueRef, comment: Comment, *, kind: EventKind = EventKind.COMMENT_CREATED,
           previous: str | None = None, delivery: str = "d1", actor_id: str = "",
           actor_is_bot: bool = False, confidential: bool = False) -> Event:
    return Event(provider=ref.provider, delivery_id=delivery, kind=kind, name="issue_comment",
                 issue=ref, actor=comment.author, actor_id=actor_id, actor_is_bot=actor_is_bot,
                 comment_id=comment.id, comment_body=comment.body,
                 previous_comment_body=previous, confidential=confidential)


def _say(commands: Commands, tracker: MemoryTracker, ref: IssueRef, body: str,
         author: str = MAINTAINER, **kw: object) -> str:
    """Post a human comment and deliver its created event."""
    comment = tracker.add_human_comment(ref, author, body)
    return commands.handle(tracker, _event(ref, comment, **kw))  # type: ignore[arg-type]


def _edit(commands: Commands, tracker: MemoryTracker, ref: IssueRef, comment: Comment,
          body: str, *, send_previous: bool = True, delivery: str = "d2") -> tuple[Comment, str]:
    """Edit a human comment and deliver the edited event (GitHub sends the old text)."""
    comments = tracker.comments(ref)
    new = replace(comment, body=body)
    comments[comments.index(comment)] = new
    event = _event(ref, new, kind=EventKind.COMMENT_EDITED, delivery=delivery,
                   previous=comment.body if send_previous else None)
    return new, commands.handle(tracker, event)


def _bot_comment(tracker: MemoryTracker, ref: IssueRef) -> Comment:
    (comment,) = [c for c in tracker.comments(ref) if MARKER_PREFIX in c.body]
    return comment


def _replies(tracker: MemoryTracker, ref: IssueRef) -> list[Comment]:
    """The bot's comments other than its triage comment."""
    return [c for c in tracker.comments(ref)
            if c.author == tracker.identity and MARKER_PREFIX not in c.body]


def _reactions(tracker: MemoryTracker) -> list[str]:
    return [w for w in tracker.writes if ":reaction+ " in w]


def _bot_labels(tracker: MemoryTracker, ref: IssueRef) -> set[str]:
    return {lbl for lbl in tracker.labels(ref) if lbl.split("/")[0] in
            ("threat", "severity", "route")}


# --- permissions --------------------------------------------------------------------------


def test_maintainer_sets_severity_quietly(commands: Commands, tracker: MemoryTracker,
                                          ref: IssueRef, store: Store) -> None:
    bot_comment = _bot_comment(tracker, ref)
    before = len(tracker.writes)
    assert _say(commands, tracker, ref, "Looks milder.\n/triage severity important") \
        == "commands-applied"
    assert _bot_labels(tracker, ref) == {"threat/model-stealing", "severity/important",
                                         "route/security"}
    new = tracker.writes[before:]
    assert f"github:o/r#1:comment~ {bot_comment.id}" in new  # edited in place
    assert not any(":comment+" in w for w in new)  # no extra comment
    assert len(_reactions(tracker)) == 1 and _reactions(tracker)[0].endswith(" +1")
    assert "Set by a maintainer" in _bot_comment(tracker, ref).body
    assert store.get_issue_state(str(ref)).overrides == {"severity": "important"}


@dataclass(frozen=True)
class Refusal:
    name: str
    author: str
    fail_permission: bool
    reason: str


REFUSALS = [
    Refusal("read access", "reader", False, "needs triage access or higher; you have read"),
    Refusal("no access", STRANGER, False, "you have no access"),
    Refusal("check fails: closed", MAINTAINER, True, "could not check your permission"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=lambda c: c.name)
def test_refused_with_one_reply_and_nothing_changes(
    case: Refusal, commands: Commands, tracker: MemoryTracker, ref: IssueRef, store: Store
) -> None:
    tracker.fail_permission = case.fail_permission
    labels = tracker.labels(ref)
    bot_body = _bot_comment(tracker, ref).body
    state = store.get_issue_state(str(ref))
    body = ("/triage severity important\n/triage route privacy\n/triage not-a-threat\n"
            "/triage data-poisoning")
    before = len(tracker.writes)
    assert _say(commands, tracker, ref, body, author=case.author) == "refused"
    assert [w.split(":")[-1].split()[0] for w in tracker.writes[before:]] == ["comment+"]
    (reply,) = _replies(tracker, ref)
    assert case.reason in reply.body
    assert reply.body.count("- `/triage") == 4  # every command named in the one reply
    assert tracker.labels(ref) == labels
    assert _bot_comment(tracker, ref).body == bot_body
    assert store.get_issue_state(str(ref)).overrides == state.overrides == {}


def test_anyone_may_ask_for_help_and_explain_without_a_permission_request(
    commands: Commands, tracker: MemoryTracker, ref: IssueRef
) -> None:
    tracker.fail_permission = True  # would refuse if it were asked
    assert _say(commands, tracker, ref, "/triage help\n/triage explain", author=STRANGER) \
        == "replied"
    (reply,) = _replies(tracker, ref)
    assert render_help() in reply.body and "Why bugbar decided this" in reply.body


def test_policy_raises_the_bar(triage: Triage, store: Store, tracker: MemoryTracker,
                               ref: IssueRef) -> None:
    strict = Commands(triage, store, CommandPolicy.from_dict({"severity": "write",
                                                              "help": "read"}))
    assert _say(strict, tracker, ref, "/triage severity important") == "refused"
    assert "needs write access or higher; you have triage access" in \
        _replies(tracker, ref)[0].body
    assert _say(strict, tracker, ref, "/triage help", author=STRANGER) == "refused"
    assert _say(strict, tracker, ref, "/triage help", author="reader") == "replied"
    assert "People with write access or higher" in _replies(tracker, ref)[-1].body


# --- what the commands do -------------------------------------------------------------------


@dataclass(frozen=True)
class BadSeverity:
    name: str
    issue: tuple[str, str]
    command: str
    says: tuple[str, ...]


BAD_SEVERITIES = [
    BadSeverity("below the range", STEAL, "/triage severity low",
                ("outside the seed range of `model-stealing` (important – critical)",
                 "Valid: `important`, `critical`")),
    BadSeverity("range of a category set just before", STEAL,
                "/triage membership-inference\n/triage severity low",
                ("`membership-inference` (moderate – critical)",
                 "Valid: `moderate`, `important`, `critical`")),
    BadSeverity("no threat", QUIET, "/triage severity critical",
                ("no AI/ML threat category", "Set a category first")),
]


@pytest.mark.parametrize("case", BAD_SEVERITIES, ids=lambda c: c.name)
def test_severity_outside_the_seed_range_is_refused(
    case: BadSeverity, commands: Commands, tracker: MemoryTracker, triage: Triage
) -> None:
    r = tracker.add_issue("o/r", 7, *case.issue)
    triage.run(tracker, r)
    labels = tracker.labels(r)
    assert _say(commands, tracker, r, case.command) == "refused"
    (reply,) = _replies(tracker, r)
    for text in case.says:
        assert text in reply.body
    if "\n" not in case.command:
        assert tracker.labels(r) == labels


def test_category_change_survives_issue_edits(commands: Commands, tracker: MemoryTracker,
                                              ref: IssueRef, triage: Triage) -> None:
    assert _say(commands, tracker, ref, "/triage threat/membership-inference") \
        == "commands-applied"
    assert "threat/membership-inference" in tracker.labels(ref)
    assert "threat/model-stealing" not in tracker.labels(ref)
    tracker.edit(ref, body=STEAL[1] + " It also copied the model weights, clearly stealing.")
    triage.run(tracker, ref)
    assert "threat/membership-inference" in tracker.labels(ref)
    assert "threat/model-stealing" not in tracker.labels(ref)
    assert "category: membership-inference" in _bot_comment(tracker, ref).body


def test_not_a_threat_clears_labels_and_they_stay_off(
    commands: Commands, tracker: MemoryTracker, ref: IssueRef, triage: Triage
) -> None:
    assert _say(commands, tracker, ref, "/triage not-a-threat") == "commands-applied"
    assert tracker.labels(ref) == ("bug",)
    assert "not an AI/ML threat" in _bot_comment(tracker, ref).body
    tracker.edit(ref, body=STEAL[1] + " Also a substitute model of the fraud model.")
    triage.run(tracker, ref)
    assert tracker.labels(ref) == ("bug",)
    # ...and neither severity nor route can be set on it.
    assert _say(commands, tracker, ref, "/triage route privacy") == "refused"
    # A category brings it back as a threat.
    assert _say(commands, tracker, ref, "/triage membership-inference") == "commands-applied"
    assert "threat/membership-inference" in tracker.labels(ref)


def test_category_without_a_rule_is_refused(commands: Commands, tracker: MemoryTracker,
                                            ref: IssueRef) -> None:
    labels = tracker.labels(ref)
    assert _say(commands, tracker, ref, "/triage data-poisoning") == "refused"
    assert "no `data-poisoning` rule" in _replies(tracker, ref)[0].body
    assert tracker.labels(ref) == labels


def test_several_commands_in_one_comment(commands: Commands, tracker: MemoryTracker,
                                         ref: IssueRef, store: Store) -> None:
    body = "/triage membership-inference\n/triage severity moderate\n/triage route privacy"
    assert _say(commands, tracker, ref, body) == "commands-applied"
    assert _bot_labels(tracker, ref) == {"threat/membership-inference", "severity/moderate",
                                         "route/privacy"}
    assert len(_reactions(tracker)) == 1 and _replies(tracker, ref) == []
    assert store.get_issue_state(str(ref)).overrides == {
        "category": "membership-inference", "severity": "moderate", "route": "privacy"}


def test_mixed_comment_applies_what_it_may_and_replies_once(
    commands: Commands, tracker: MemoryTracker, ref: IssueRef
) -> None:
    body = "/triage severity important\n/triage severty low\n/triage severity low\n/triage help"
    assert _say(commands, tracker, ref, body) == "refused"
    assert "severity/important" in tracker.labels(ref)
    assert len(_reactions(tracker)) == 1
    (reply,) = _replies(tracker, ref)
    assert "Unknown command" in reply.body and "outside the seed range" in reply.body
    assert "### `/triage` commands" in reply.body


def test_category_change_drops_a_severity_the_new_range_forbids(
    commands: Commands, tracker: MemoryTracker, ref: IssueRef, store: Store
) -> None:
    _say(commands, tracker, ref, "/triage membership-inference\n/triage severity moderate")
    _say(commands, tracker, ref, "/triage model-stealing")
    assert store.get_issue_state(str(ref)).overrides == {"category": "model-stealing"}
    assert "severity/critical" in tracker.labels(ref)


def test_retriage_runs_on_current_text(commands: Commands, tracker: MemoryTracker,
                                       triage: Triage) -> None:
    r = tracker.add_issue("o/r", 3, *QUIET)
    triage.run(tracker, r)
    tracker.edit(r, title=STEAL[0], body=STEAL[1])  # an edit whose webhook was lost
    assert _say(commands, tracker, r, "/triage") == "commands-applied"
    assert "threat/model-stealing" in tracker.labels(r)


def test_opted_out_issue_refuses_changes(commands: Commands, tracker: MemoryTracker) -> None:
    r = tracker.add_issue("o/r", 4, *STEAL, labels=("bugbar:ignore",))
    assert _say(commands, tracker, r, "/triage model-stealing") == "refused"
    assert "`bugbar:ignore`" in _replies(tracker, r)[0].body
    assert tracker.labels(r) == ("bugbar:ignore",)


def test_explain_gives_evidence_never_issue_text(commands: Commands, tracker: MemoryTracker,
                                                 triage: Triage) -> None:
    title = f"Model extraction of our production fraud detection model {SECRET}"
    body = f"Run exploit_{SECRET}.py; it trained a substitute model via the scoring API."
    r = tracker.add_issue("o/r", 5, title, body)
    triage.run(tracker, r)
    assert _say(commands, tracker, r, "/triage explain", author=STRANGER) == "replied"
    (reply,) = _replies(tracker, r)
    assert "`model-stealing`" in reply.body
    assert "“model extraction” (title" in reply.body and "“substitute model”" in reply.body
    assert "deployed service" in reply.body  # a cue title
    assert SECRET.lower() not in reply.body.lower()
    assert "exploit_" not in reply.body and "scoring API" not in reply.body


def test_explain_shows_human_decisions(commands: Commands, tracker: MemoryTracker,
                                       ref: IssueRef) -> None:
    _say(commands, tracker, ref, "/triage severity important")
    _say(commands, tracker, ref, "/triage explain")
    reply = _replies(tracker, ref)[-1].body
    assert "`model-stealing` (important)" in reply
    assert "Set by a maintainer:** severity: important" in reply
    assert "rules alone give: `model-stealing` (critical)" in reply


def test_help_reply(commands: Commands, tracker: MemoryTracker, ref: IssueRef) -> None:
    assert _say(commands, tracker, ref, "/triage help\n/triage help") == "replied"
    (reply,) = _replies(tracker, ref)
    assert reply.body == render_help()  # asked twice, answered once
    assert _reactions(tracker) == []


def test_parse_error_reply_lists_what_is_valid(commands: Commands, tracker: MemoryTracker,
                                               ref: IssueRef) -> None:
    labels = tracker.labels(ref)
    assert _say(commands, tracker, ref, "/triage severity urgent @everyone") == "parse-error"
    (reply,) = _replies(tracker, ref)
    assert "Unknown severity level `urgent`" in reply.body
    assert "Valid: `low`, `moderate`, `important`, `critical`" in reply.body
    assert tracker.labels(ref) == labels


def test_parse_error_on_an_internal_note_does_not_repeat_it(
    commands: Commands, tracker: MemoryTracker, ref: IssueRef
) -> None:
    _say(commands, tracker, ref, f"/triage {SECRET}", confidential=True)
    (reply,) = _replies(tracker, ref)
    assert SECRET.lower() not in reply.body.lower() and "line 1" in reply.body


@pytest.mark.parametrize("body", [
    "```\n/triage not-a-threat\n```",
    "~~~\n/triage not-a-threat",
    "    /triage not-a-threat",
    "> /triage not-a-threat",
    "<!--\n/triage not-a-threat\n-->",
    "Please do not run `/triage\nnot-a-threat` here",
    "The word /triaged is not a command",
], ids=["fence", "unclosed-fence", "indented", "quote", "html-comment", "code-span", "word"])
def test_command_in_code_or_quote_does_nothing(body: str, commands: Commands,
                                               tracker: MemoryTracker, ref: IssueRef,
                                               store: Store) -> None:
    before = list(tracker.writes)
    assert _say(commands, tracker, ref, body) == "no-commands"
    assert tracker.writes == before
    assert store.get_issue_state(str(ref)).seen_commands == {}


# --- events: edits, redeliveries, providers -------------------------------------------------


@pytest.mark.parametrize("send_previous", [True, False], ids=["github-previous-text",
                                                               "gitlab-jira-no-previous"])
def test_edit_runs_only_added_commands(send_previous: bool, commands: Commands,
                                       tracker: MemoryTracker, ref: IssueRef) -> None:
    first = tracker.add_human_comment(ref, MAINTAINER, "/triage severity important")
    assert commands.handle(tracker, _event(ref, first)) == "commands-applied"
    # Someone else moves the severity back; re-running the old command would undo that.
    assert _say(commands, tracker, ref, "/triage severity critical") == "commands-applied"
    edited, outcome = _edit(commands, tracker, ref, first,
                            "/triage severity important\n\ntypo fixed", send_previous=send_previous)
    assert outcome == "no-commands"
    _, outcome = _edit(commands, tracker, ref, edited,
                       edited.body + "\n/triage route privacy", send_previous=send_previous,
                       delivery="d3")
    assert outcome == "commands-applied"
    assert {"severity/critical", "route/privacy"} <= set(tracker.labels(ref))
    assert "severity/important" not in tracker.labels(ref)


def test_edit_that_brings_a_removed_command_back_runs_it(
    commands: Commands, tracker: MemoryTracker, ref: IssueRef
) -> None:
    first = tracker.add_human_comment(ref, MAINTAINER, "/triage severity important")
    commands.handle(tracker, _event(ref, first))
    gone, _ = _edit(commands, tracker, ref, first, "never mind", send_previous=False)
    _say(commands, tracker, ref, "/triage severity critical")
    _, outcome = _edit(commands, tracker, ref, gone, "/triage severity important",
                       send_previous=False, delivery="d3")
    assert outcome == "commands-applied"
    assert "severity/important" in tracker.labels(ref)


@pytest.mark.parametrize("body,author", [
    ("/triage severity important", MAINTAINER),
    ("/triage severity important", STRANGER),
    ("/triage explain", STRANGER),
    ("/triage sevrity low", MAINTAINER),
], ids=["applied", "refused", "explain", "parse-error"])
def test_same_comment_delivered_twice_runs_once(body: str, author: str, commands: Commands,
                                                tracker: MemoryTracker, ref: IssueRef) -> None:
    comment = tracker.add_human_comment(ref, author, body)
    assert commands.handle(tracker, _event(ref, comment, delivery="jira-1")) != "no-commands"
    writes = list(tracker.writes)
    # A redelivery (same id) and Jira Cloud's duplicate under another delivery id.
    for delivery in ("jira-1", "jira-2"):
        assert commands.handle(tracker, _event(ref, comment, delivery=delivery)) == "no-commands"
    assert tracker.writes == writes


def test_gitlab_event_without_previous_text(commands: Commands, store: Store,
                                            triage: Triage) -> None:
    gl = MemoryTracker(provider="gitlab", identity="bugbar-bot")
    gl.permissions = {"42": Access.TRIAGE}  # GitLab permissions are looked up by user id
    r = gl.add_issue("group/project", 9, *STEAL)
    triage.run(gl, r)
    note = gl.add_human_comment(r, "maintainer-name", "/triage route privacy")
    assert commands.handle(gl, _event(r, note, actor_id="42")) == "commands-applied"
    assert "route/privacy" in gl.labels(r)
    assert gl.writes[-1] == f"gitlab:group/project#9:reaction+ {note.id} +1"
    # Edited (GitLab sends no previous text): only the added command runs.
    edited = replace(note, body=note.body + "\n/triage severity important")
    assert commands.handle(gl, _event(r, edited, kind=EventKind.COMMENT_EDITED,
                                      actor_id="42", delivery="d2")) == "commands-applied"
    assert store.get_issue_state(str(r)).overrides == {"route": "privacy",
                                                       "severity": "important"}
    assert [w for w in gl.writes if "reaction" in w] == [
        f"gitlab:group/project#9:reaction+ {note.id} +1"] * 2


def test_failure_hands_the_claim_back_so_a_retry_runs(
    commands: Commands, tracker: MemoryTracker, ref: IssueRef
) -> None:
    comment = tracker.add_human_comment(ref, MAINTAINER, "/triage severity important")
    real = tracker.get_issue

    def broken(r: IssueRef) -> object:
        raise ConnectionError("tracker down")

    tracker.get_issue = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        commands.handle(tracker, _event(ref, comment))
    tracker.get_issue = real  # type: ignore[method-assign]
    assert commands.handle(tracker, _event(ref, comment)) == "commands-applied"
    assert "severity/important" in tracker.labels(ref)


@pytest.mark.parametrize("old,new", [
    ("/triage severity low", "/triage severity low\n/triage route privacy"),
    ("/TRIAGE threat/model-stealing", "/triage model-stealing"),
    ("/triage explain", "/triage explain\n/triage explain"),
    ("/triage bogus\n/triage help", "/triage bogus\n/triage bogus\n/triage help"),
    ("```\n/triage help\n```", "/triage help"),
    ("", "/triage\n/triage not-a-threat"),
])
def test_signature_diff_agrees_with_new_commands(old: str, new: str) -> None:
    """The stored per-comment signatures stand in for the previous text exactly."""
    fresh = _fresh(_items(parse_commands(new)), comment_signatures(old))
    expected = new_commands(old, new)
    assert [i.command for i in fresh if i.command] == list(expected.commands)
    assert [i.error for i in fresh if i.error] == list(expected.errors)


# --- whose comments count ---------------------------------------------------------------


@pytest.mark.parametrize("author,is_bot,body", [
    ("bugbar[bot]", False, "/triage not-a-threat"),
    ("other-bot[bot]", True, "/triage not-a-threat"),
    (MAINTAINER, False, f"{MARKER_PREFIX}rules=x hash=ab -->\n/triage not-a-threat"),
], ids=["own-identity", "another-bot", "carries-the-marker"])
def test_bot_comments_are_ignored(author: str, is_bot: bool, body: str, commands: Commands,
                                  tracker: MemoryTracker, ref: IssueRef) -> None:
    tracker.permissions[author] = Access.ADMIN
    comment = tracker.add_human_comment(ref, author, body)
    before = list(tracker.writes)
    assert commands.handle(tracker, _event(ref, comment, actor_is_bot=is_bot)) == "ignored-bot"
    assert tracker.writes == before


def test_router_sends_comments_here_and_drops_its_own(
    classifier: Classifier, store: Store, tracker: MemoryTracker, ref: IssueRef
) -> None:
    bot = Bot(classifier, store, {"github": lambda r, i: tracker})
    bot.commands = Commands(bot.triage, store)
    human = tracker.add_human_comment(ref, MAINTAINER, "/triage severity important")
    assert bot.process(_event(ref, human)) == "commands-applied"
    own = tracker.add_human_comment(ref, tracker.identity, "/triage not-a-threat")
    assert bot.process(_event(ref, own, delivery="d9")) == "ignored-self"


def test_replies_never_contain_a_command(commands: Commands, tracker: MemoryTracker,
                                        ref: IssueRef) -> None:
    body = ("/triage help\n/triage explain\n/triage severity low\n/triage bogus\n"
            "/triage route privacy\n/triage not-a-threat")
    _say(commands, tracker, ref, body, author="reader")
    (reply,) = _replies(tracker, ref)
    parsed = parse_commands(reply.body)
    assert parsed.commands == () and parsed.errors == ()


def test_store_lost_command_still_removes_the_bots_labels(
    classifier: Classifier, tmp_path, tracker: MemoryTracker
) -> None:
    r = tracker.add_issue("o/r", 6, *STEAL, labels=("bug",))
    Triage(classifier, Store(tmp_path / "old.db")).run(tracker, r)
    fresh = Store(tmp_path / "new.db")  # a new database: only the marker remembers
    handler = Commands(Triage(classifier, fresh), fresh)
    assert _say(handler, tracker, r, "/triage not-a-threat") == "commands-applied"
    assert tracker.labels(r) == ("bug",)


def test_comment_text_is_never_logged(commands: Commands, tracker: MemoryTracker,
                                      ref: IssueRef, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _say(commands, tracker, ref, f"{SECRET}\n/triage severity important\n/triage x{SECRET}")
    _say(commands, tracker, ref, f"/triage severity low {SECRET}", author=STRANGER)
    assert caplog.records
    for record in caplog.records:
        assert SECRET.lower() not in str(vars(record)).lower()


def test_corrections_are_kept_as_labelled_examples(commands: Commands, tracker: MemoryTracker,
                                                   ref: IssueRef, store: Store,
                                                   tmp_path, capsys) -> None:
    import json

    from bot.cli import evaluate, main

    # A severity or route is not a correction of the category: nothing kept.
    _say(commands, tracker, ref, "/triage severity important")
    assert store.corrections() == []
    _say(commands, tracker, ref, "/triage not-a-threat")
    other = tracker.add_issue("o/r", 2, *QUIET, labels=("question",))
    _say(commands, tracker, other, "/triage membership-inference")
    # A stranger's command is refused and kept nowhere.
    third = tracker.add_issue("o/r", 3, *QUIET)
    _say(commands, tracker, third, "/triage model-stealing", author=STRANGER)
    kept = {c.key: c for c in store.corrections()}
    assert set(kept) == {str(ref), str(other)}
    assert kept[str(ref)].expect == () and kept[str(ref)].title == STEAL[0]
    assert kept[str(ref)].labels == ("bug",)  # the bot's threat/severity/route labels are not
    assert kept[str(other)].expect == ("membership-inference",)
    assert kept[str(other)].labels == ("question",)
    # The export is the corpus schema, one line each, and `bugbar eval` reads it.
    out = tmp_path / "corrections.jsonl"
    assert main(["corrections", "export", "--state", str(store.path), "--output", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert {tuple(sorted(x)) for x in lines} == {
        ("body", "expect", "id", "labels", "source", "title")}
    assert {x["id"]: x["expect"] for x in lines} == {str(ref): [],
                                                     str(other): ["membership-inference"]}
    assert all(x["source"] == "correction" for x in lines)
    result = evaluate(commands.triage.classifier, [out])
    assert result.reports == 1 and result.negatives == 1
    # A later correction on the same issue replaces the earlier answer.
    _say(commands, tracker, ref, "/triage model-stealing")
    assert {c.key: c.expect for c in store.corrections()}[str(ref)] == ("model-stealing",)


def test_corrections_on_confidential_issues_stay_out_of_the_export(
        commands: Commands, tracker: MemoryTracker, store: Store, capsys) -> None:
    from bot.cli import main

    secret = tracker.add_issue("o/r", 9, *STEAL)
    _say(commands, tracker, secret, "/triage not-a-threat", confidential=True)
    capsys.readouterr()
    assert main(["corrections", "export", "--state", str(store.path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "1 confidential left out" in captured.err
    assert main(["corrections", "export", "--state", str(store.path),
                 "--include-confidential"]) == 0
    assert STEAL[0] in capsys.readouterr().out
