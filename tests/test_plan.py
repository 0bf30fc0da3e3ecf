"""Label and comment planning: only the bot's labels, never re-add what a human removed."""

from __future__ import annotations

import pytest

from bot.decide.classify import Classifier
from bot.decide.handoff import RETRY_REFUSED_AFTER, HandOff, HandOffState, retry_due
from bot.decide.model import Issue
from bot.decide.plan import (
    CommentAction,
    desired_labels,
    is_bot_label,
    label_change_matters,
    plan_issue,
)
from bot.decide.render import parse_marker
from bot.decide.rules import RuleSet


@pytest.fixture()
def c(min_ruleset: RuleSet) -> Classifier:
    return Classifier(min_ruleset)


def _threat(c: Classifier):
    return c.classify(Issue("t", "Model extraction of our production model", ""))


def _none(c: Classifier):
    return c.classify(Issue("t", "Typo in README", ""))


def test_new_threat_adds_labels_and_one_comment(c: Classifier) -> None:
    d = _threat(c)
    plan = plan_issue(d, c.ruleset, ["bug"], applied_before=None, existing_marker=None,
                      has_bot_comment=False)
    assert plan.add_labels == ("threat/model-stealing", "severity/critical", "route/ssirp")
    assert plan.remove_labels == ()
    assert plan.comment is CommentAction.CREATE
    assert parse_marker(plan.comment_body).decision_hash == plan.decision_hash
    # A tracker that does no hand-off gets no hand-off steps in its plan.
    assert not plan.protect and not plan.escalate
    assert not any("protect" in x or "escalate" in x for x in plan.describe())


CAPS = HandOff(protect="lock the conversation", escalate="assign alice",
               mentions=("@acme/ml-security",))


def test_hand_off_steps_are_planned_only_as_the_tracker_describes_them(c: Classifier) -> None:
    d = _threat(c)
    plan = plan_issue(d, c.ruleset, [], applied_before=None, existing_marker=None,
                      has_bot_comment=False, handoff=CAPS)
    assert plan.protect and plan.escalate and not plan.protect_hides
    assert "protect: lock the conversation" in plan.describe()
    assert "escalate: mention @acme/ml-security; assign alice" in plan.describe()
    # The mention is in the comment that goes out with the escalation, exactly once.
    assert plan.comment_body.count("@acme/ml-security") == 1
    assert parse_marker(plan.comment_body).handoff.escalated


def test_hand_off_done_is_never_planned_again_and_the_mention_stays(c: Classifier) -> None:
    d = _threat(c)
    done = HandOffState(protected="advisory GHSA-aaaa-bbbb-cccc", escalated=True)
    first = plan_issue(d, c.ruleset, [], applied_before=None, existing_marker=None,
                       has_bot_comment=False, handoff=CAPS, handoff_state=done)
    assert not first.protect and not first.escalate
    assert "GHSA-aaaa-bbbb-cccc" in first.comment_body
    marker = parse_marker(first.comment_body)
    assert marker.handoff == done
    again = plan_issue(d, c.ruleset, list(first.add_labels), applied_before=first.applied_labels,
                       existing_marker=marker, has_bot_comment=True, handoff=CAPS,
                       handoff_state=marker.handoff)
    assert again.is_noop


def test_a_refused_step_is_not_retried_and_the_comment_says_what_to_do(c: Classifier) -> None:
    d = _threat(c)
    caps = HandOff(protect="open a draft security advisory",
                   manual_protect="open a draft advisory at https://github.com/o/r/security")
    plan = plan_issue(d, c.ruleset, [], applied_before=None, existing_marker=None,
                      has_bot_comment=False, handoff=caps,
                      handoff_state=HandOffState(refused="GitHub answered 403"))
    assert not plan.protect
    assert "GitHub answered 403" in plan.comment_body
    assert "open a draft advisory at https://github.com/o/r/security" in plan.comment_body


def test_a_refused_step_is_planned_again_only_when_the_caller_says_retry(
    c: Classifier,
) -> None:
    d = _threat(c)
    caps = HandOff(protect="lock the conversation", manual_protect="lock this conversation")
    refused = HandOffState(refused="GitHub answered 403", refused_at=100.0)
    kept = plan_issue(d, c.ruleset, [], applied_before=None, existing_marker=None,
                      has_bot_comment=False, handoff=caps, handoff_state=refused)
    again = plan_issue(d, c.ruleset, [], applied_before=None, existing_marker=None,
                       has_bot_comment=False, handoff=caps, handoff_state=refused,
                       retry_refused=True)
    assert not kept.protect and again.protect and again.protect_retry
    assert "protect: lock the conversation (again: refused before)" in again.describe()
    # Until the step succeeds the comment still asks for the manual step.
    assert again.comment_body == kept.comment_body and "lock this conversation" in kept.comment_body
    # The refusal's time is the store's business: never in the marker, never a comment edit.
    marker = parse_marker(kept.comment_body)
    assert marker is not None and marker.handoff == HandOffState(refused="GitHub answered 403")
    assert "r" in refused.to_json() and len(refused.to_json()) == 1
    # Done is done: a protected issue is never planned again, retry or not.
    done = plan_issue(d, c.ruleset, [], applied_before=None, existing_marker=None,
                      has_bot_comment=False, handoff=caps, retry_refused=True,
                      handoff_state=HandOffState(protected="locked"))
    assert not done.protect


def test_retry_is_due_an_hour_after_the_refusal() -> None:
    assert not retry_due("", 0.0, 10_000.0)
    assert retry_due("GitHub answered 403", 0.0, 10_000.0)  # time unknown: once, then recorded
    assert not retry_due("GitHub answered 403", 10_000.0, 10_000.0 + RETRY_REFUSED_AFTER - 1)
    assert retry_due("GitHub answered 403", 10_000.0, 10_000.0 + RETRY_REFUSED_AFTER)


def test_escalation_newly_needed_edits_the_existing_comment(c: Classifier) -> None:
    d = _threat(c)
    first = plan_issue(d, c.ruleset, [], applied_before=None, existing_marker=None,
                       has_bot_comment=False)
    plan = plan_issue(d, c.ruleset, list(first.add_labels), applied_before=first.applied_labels,
                      existing_marker=parse_marker(first.comment_body), has_bot_comment=True,
                      handoff=HandOff(mentions=("@sec",)))
    assert plan.escalate and plan.comment is CommentAction.EDIT
    assert plan.comment_body.count("@sec") == 1


def test_same_decision_again_is_a_noop(c: Classifier) -> None:
    d = _threat(c)
    first = plan_issue(d, c.ruleset, [], applied_before=None, existing_marker=None,
                       has_bot_comment=False)
    again = plan_issue(d, c.ruleset, list(first.add_labels), applied_before=first.applied_labels,
                       existing_marker=parse_marker(first.comment_body), has_bot_comment=True,
                       already_protected=True, already_escalated=True)
    assert again.is_noop
    assert again.describe() == ["nothing to do"]


def test_human_removed_label_is_not_re_added(c: Classifier) -> None:
    d = _threat(c)
    applied = set(desired_labels(d, c.ruleset.settings))
    current = applied - {"severity/critical"}
    plan = plan_issue(d, c.ruleset, current, applied_before=applied, existing_marker=None,
                      has_bot_comment=False)
    assert "severity/critical" not in plan.add_labels
    assert "severity/critical" in plan.removed_by_human


def test_other_labels_untouched_and_stale_bot_labels_removed(c: Classifier) -> None:
    d = _none(c)
    current = ["bug", "threat/model-stealing", "severity/critical", "route/ssirp", "help wanted"]
    plan = plan_issue(d, c.ruleset, current, applied_before=set(current[1:4]),
                      existing_marker=None, has_bot_comment=True)
    assert set(plan.remove_labels) == {"threat/model-stealing", "severity/critical",
                                       "route/ssirp"}
    assert plan.add_labels == ()
    assert plan.comment is CommentAction.EDIT
    assert "no longer matches" in plan.comment_body


def test_bot_namespace_label_added_by_a_human_is_left_alone(c: Classifier) -> None:
    d = _none(c)
    plan = plan_issue(d, c.ruleset, ["threat/data-poisoning"], applied_before=set(),
                      existing_marker=None, has_bot_comment=False)
    assert plan.remove_labels == ()


def test_no_threat_and_no_comment_stays_quiet(c: Classifier) -> None:
    plan = plan_issue(_none(c), c.ruleset, ["bug"], applied_before=None, existing_marker=None,
                      has_bot_comment=False)
    assert plan.is_noop


def test_no_threat_comment_not_rewritten(c: Classifier) -> None:
    d = _none(c)
    first = plan_issue(d, c.ruleset, [], applied_before=set(), existing_marker=None,
                       has_bot_comment=True)
    marker = parse_marker(first.comment_body)
    assert marker is not None and marker.threat is False
    again = plan_issue(d, c.ruleset, [], applied_before=set(), existing_marker=marker,
                       has_bot_comment=True)
    assert again.comment is CommentAction.NONE


def test_is_bot_label(min_ruleset: RuleSet) -> None:
    s = min_ruleset.settings
    assert is_bot_label("threat/x", s) and is_bot_label("route/abuse", s)
    assert not is_bot_label("security", s) and not is_bot_label("threatened", s)


@pytest.mark.parametrize(
    ("added", "removed", "matters"),
    [
        pytest.param(("model-stealing",), (), True, id="rule-evidence-label"),
        pytest.param(("Prompt Injection",), (), True, id="evidence-any-case-and-space"),
        pytest.param((), ("ml-supply-chain",), True, id="evidence-removed"),
        pytest.param(("threat/model-stealing",), (), True, id="threat-label"),
        pytest.param((), ("threat/model-stealing",), True, id="threat-label-removed"),
        pytest.param(("threat/some-new-thing",), (), True, id="threat-namespace-unknown-id"),
        pytest.param(("security",), (), True, id="context-label"),
        pytest.param(("area/ml-serving",), (), True, id="context-glob"),
        pytest.param((), ("bugbar:ignore",), True, id="opt-out-removed"),
        pytest.param((), (), True, id="unknown-change"),
        pytest.param(("good first issue",), (), False, id="irrelevant"),
        pytest.param(("bugbar:ignore",), (), False, id="opt-out-added"),
        pytest.param(("severity/critical", "route/ssirp"), (), False, id="bot-output-labels"),
        pytest.param(("needs-info",), ("wontfix",), False, id="irrelevant-both-ways"),
    ],
)
def test_label_change_matters_only_for_labels_the_rules_read(
    classifier: Classifier, added: tuple[str, ...], removed: tuple[str, ...], matters: bool
) -> None:
    assert label_change_matters(classifier, added, removed) is matters
