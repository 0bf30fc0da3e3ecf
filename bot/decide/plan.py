"""Decide what should be true on the tracker: the bot's labels and its one comment.

A handler computes a Plan from a decision and what the tracker shows now; a single applier
makes it so. "Nothing to do" is an explicit, empty plan.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.decide.classify import Classifier, decision_hash
from bot.decide.handoff import HandOff, HandOffState, HandOffView
from bot.decide.model import Decision, Severity
from bot.decide.render import Marker, render_comment
from bot.decide.rules import RuleSet, Settings, label_key


class CommentAction(enum.Enum):
    """What to do with the bot's comment."""

    NONE = "none"
    CREATE = "create"
    EDIT = "edit"


@dataclass(frozen=True)
class Plan:
    """Everything the applier should do for one issue, plus the state to remember after."""

    add_labels: tuple[str, ...]
    remove_labels: tuple[str, ...]
    comment: CommentAction
    comment_body: str = ""
    applied_labels: frozenset[str] = field(default_factory=frozenset)
    """The bot's labels that will be on the issue once the plan is applied."""
    removed_by_human: frozenset[str] = field(default_factory=frozenset)
    decision_hash: str = ""
    protect: bool = False
    """Critical or ssirp, and the tracker is set up to protect: do :attr:`protect_step`."""
    escalate: bool = False
    """A route that needs people, and the tracker is set up to escalate."""
    protect_step: str = ""
    """What the tracker's protect step does (from its :class:`HandOff`)."""
    protect_hides: bool = False
    """The protect step takes the issue out of public view."""
    protect_last: bool = False
    """Protect after the comment and labels (a transfer moves the issue)."""
    protect_retry: bool = False
    """The protect step was refused before and is tried again in this run."""
    escalate_write: str = ""
    """The escalation's tracker write besides the comment (assignees, watchers), if any."""
    mentions: tuple[str, ...] = ()
    """Who the comment mentions when escalating."""
    handoff: HandOffView = field(default_factory=HandOffView)
    """What the comment says about the hand-off (and its marker remembers)."""

    @property
    def is_noop(self) -> bool:
        """True when applying the plan would write nothing."""
        return not (self.add_labels or self.remove_labels
                    or self.comment is not CommentAction.NONE or self.protect or self.escalate)

    def describe(self) -> list[str]:
        """Readable lines for logs and dry runs (no issue text); only steps the tracker
        will really perform are listed."""
        out = [f"+label {x}" for x in self.add_labels]
        out += [f"-label {x}" for x in self.remove_labels]
        if self.comment is not CommentAction.NONE:
            out.append(f"comment {self.comment.value}")
        if self.protect:
            again = " (again: refused before)" if self.protect_retry else ""
            out.append(f"protect: {self.protect_step}{again}")
        if self.escalate:
            steps = ([f"mention {' '.join(self.mentions)}"] if self.mentions else [])
            steps += [self.escalate_write] if self.escalate_write else []
            out.append(f"escalate: {'; '.join(steps)}")
        return out or ["nothing to do"]


def _prefix(template: str) -> str:
    return template.split("{", 1)[0]


def is_bot_label(label: str, settings: Settings) -> bool:
    """True for labels in the bot's own namespaces (``threat/*``, ``severity/*``, ``route/*``)."""
    return any(
        label.startswith(_prefix(t))
        for t in (settings.label_threat, settings.label_severity, settings.label_route)
        if _prefix(t)
    )


def human_category(label: str, settings: Settings) -> str | None:
    """The category id a ``threat/<id>`` label names (None for any other label)."""
    prefix, _, suffix = settings.label_threat.partition("{id}")
    if prefix and label.startswith(prefix) and label.endswith(suffix):
        return label[len(prefix): len(label) - len(suffix)] or None
    return None


def label_change_matters(
    classifier: Classifier, added: Iterable[str], removed: Iterable[str]
) -> bool:
    """Can adding ``added`` and removing ``removed`` change the decision on an issue?

    Yes for a label a rule reads (a category's evidence label, a generic ``ml``/``security``
    context label), any label in the threat namespace (a person's ``threat/<id>`` is their
    decision) and the opt-out label coming off; also when the change is unknown (nothing
    named). Labels are compared the way the rules compare them (case, ``_``/``-``/space), so
    a Jira label written with ``_`` for a space still counts. Severity and route labels are
    the bot's output, never its evidence: changing them changes nothing.
    """
    added, removed = tuple(added), tuple(removed)
    if not added and not removed:
        return True
    settings = classifier.ruleset.settings
    threat_prefix = label_key(_prefix(settings.label_threat))

    def read(label: str) -> bool:
        key = label_key(label)
        rules, context = classifier.matcher.read_labels((label,))
        return bool(rules or context or (threat_prefix and key.startswith(threat_prefix)))

    opt_out = label_key(settings.label_opt_out)
    return (any(read(lbl) for lbl in (*added, *removed))
            or any(label_key(lbl) == opt_out for lbl in removed))


def desired_labels(decision: Decision, settings: Settings) -> list[str]:
    """The bot's labels for ``decision``, in a stable order."""
    if not decision.is_threat:
        return []
    out = [settings.label_threat.format(id=t.category) for t in decision.threats]
    if decision.severity is not None:
        out.append(settings.label_severity.format(level=decision.severity.label))
    out += [settings.label_route.format(route=r) for r in decision.routes]
    return out


def wants_protect(decision: Decision, already_protected: bool, done: HandOffState,
                  retry: bool = False) -> bool:
    """A critical or ssirp threat not yet out of public view, nor refused by the tracker
    (unless ``retry``: the refusal is old enough, or a maintainer asked, to try again)."""
    critical = decision.severity is Severity.CRITICAL or "ssirp" in decision.routes
    return (critical and not already_protected and not done.protected
            and (retry or not done.refused))


def plan_issue(
    decision: Decision,
    ruleset: RuleSet,
    current_labels: Iterable[str],
    *,
    applied_before: Iterable[str] | None,
    removed_by_human: Iterable[str] = (),
    existing_marker: Marker | None,
    has_bot_comment: bool,
    already_protected: bool = False,
    already_escalated: bool = False,
    handoff: HandOff | None = None,
    handoff_state: HandOffState | None = None,
    retry_refused: bool = False,
) -> Plan:
    """Compute the plan for one issue.

    ``applied_before`` is what the store says the bot applied (None when the store has no
    record). A bot label the bot applied that is missing now was removed by a human: it is
    remembered and never re-added. Bot-namespace labels a human added are left alone.

    ``handoff`` is what the tracker does for critical/ssirp issues under its configuration
    (nothing when None); ``handoff_state`` what it already did. A step the tracker would not
    perform is never planned. ``retry_refused`` plans a protect step the tracker refused
    before once more (the caller decides when: hourly, or on a maintainer's command).
    """
    caps = handoff or HandOff()
    done = handoff_state or HandOffState()
    settings = ruleset.settings
    current = set(current_labels)
    desired = desired_labels(decision, settings)
    human_removed = set(removed_by_human)
    if applied_before is not None:
        applied = set(applied_before)
        human_removed |= {lbl for lbl in applied if lbl not in current}
    else:
        applied = {lbl for lbl in current if is_bot_label(lbl, settings)}
    # A label the human removed stays off only while we would still add it; once the decision
    # moves on, forget it so a later, different decision can use the label again.
    human_removed &= set(desired)
    add = [lbl for lbl in desired if lbl not in current and lbl not in human_removed]
    remove = sorted(
        lbl for lbl in current
        if is_bot_label(lbl, settings) and lbl not in desired and lbl in applied
    )
    now_applied = (applied & current | set(add)) - set(remove)
    now_applied &= set(desired)

    digest = decision_hash(decision)
    protect = bool(caps.protect) and wants_protect(decision, already_protected, done,
                                                   retry_refused)
    needs_people = any(r in caps.escalate_routes for r in decision.routes)
    escalate = (needs_people and caps.escalates and not already_escalated
                and not done.escalated)
    # The mention is in the comment from the moment of escalation on, in the same words. The
    # comment only records an escalation that shows in it (a mention); a write-only one (an
    # assignee, a linked issue) is remembered by the store and is idempotent on the tracker.
    # A transfer is not shown: the comment moved with the issue, where it needs no saying (and
    # an edit through the old repository's address would not reach it).
    shown = HandOffState("" if done.protected.startswith("transferred ") else done.protected,
                         done.refused, bool(caps.mentions) and (done.escalated or escalate))
    view = HandOffView(caps.mentions if shown.escalated else (), shown,
                       caps.private_report_url, caps.manual_protect)

    action = CommentAction.NONE
    body = ""
    changed = (existing_marker is None or existing_marker.decision_hash != digest
               or existing_marker.handoff != shown)
    if has_bot_comment:
        # Edit in place when the decision changed, including "no longer a threat" (but a
        # comment that already says "no threat" is not rewritten for another non-threat).
        was_threat = existing_marker is None or existing_marker.threat
        if changed and (decision.is_threat or was_threat):
            action = CommentAction.EDIT
    elif decision.is_threat:
        action = CommentAction.CREATE
    if action is not CommentAction.NONE:
        body = render_comment(decision, ruleset, now_applied, view)
    return Plan(
        add_labels=tuple(add),
        remove_labels=tuple(remove),
        comment=action,
        comment_body=body,
        applied_labels=frozenset(now_applied),
        removed_by_human=frozenset(human_removed),
        decision_hash=digest,
        protect=protect,
        escalate=escalate,
        protect_step=caps.protect if protect else "",
        protect_hides=protect and caps.protect_hides,
        protect_last=caps.protect_last,
        protect_retry=protect and bool(done.refused),
        escalate_write=caps.escalate if escalate else "",
        mentions=caps.mentions if escalate else (),
        handoff=view,
    )
