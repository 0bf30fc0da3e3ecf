"""Triage one issue: fetch it fresh, decide, plan, and apply the plan through the tracker.

The same code serves webhooks, slash commands (``/triage`` re-runs it) and the backlog sweep.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from bot.decide.classify import Classifier
from bot.decide.handoff import HandOffState, retry_due
from bot.decide.model import Decision, Issue
from bot.decide.plan import (
    CommentAction,
    Plan,
    human_category,
    is_bot_label,
    plan_issue,
    wants_protect,
)
from bot.decide.render import Marker, parse_marker
from bot.decide.rules import RuleSet, Settings
from bot.events.model import IssueRef
from bot.lease import ensure_held
from bot.providers.base import (
    Comment,
    HandOffRefused,
    HandOffRequest,
    IssueGone,
    IssueSnapshot,
    Tracker,
)
from bot.store import IssueState
from bot.store_base import StateStore as Store

log = logging.getLogger("bugbar.triage")


class DecisionMetrics(Protocol):
    """The part of the metrics the triage handler reports to."""

    def decision(self, provider: str, category: str, severity: str) -> None:
        """Count one decision."""


@dataclass(frozen=True)
class TriageResult:
    """What happened to one issue."""

    outcome: str
    """triaged (something was written) | unchanged | opted-out | skipped-pull-request |
    dry-run | held | gone (the issue was deleted; nothing to do)"""
    decision: Decision | None = None
    plan: Plan | None = None
    writes: int = 0
    """Tracker writes really made (a refused hand-off step is not one)."""
    handoff: HandOffState | None = None
    """The hand-off state after this run."""


def handoff_state(state: IssueState | None, marker: Marker | None) -> HandOffState:
    """What the hand-off already did: the store and the marker together (either may be
    missing: GitHub Actions has no store, a deleted comment has no marker)."""
    extra = state.extra if state is not None else {}
    from_marker = marker.handoff if marker is not None else HandOffState()
    try:
        refused_at = float(extra.get("protect_refused_at") or 0)
    except (TypeError, ValueError):
        refused_at = 0.0
    if not math.isfinite(refused_at):
        refused_at = 0.0  # unreadable: treat the time as unknown (one retry, then recorded)
    return HandOffState(
        protected=str(extra.get("protected") or "") or from_marker.protected,
        refused=str(extra.get("protect_refused") or "") or from_marker.refused,
        escalated=bool(extra.get("escalated")) or from_marker.escalated,
        refused_at=refused_at,
    )


def refusal_retry_due(state: IssueState | None, now: float) -> bool:
    """The store remembers a refused protect step that may be tried again now (the sweep
    triages such an issue even when nothing else about it changed)."""
    done = handoff_state(state, None)
    return not done.protected and retry_due(done.refused, done.refused_at, now)


@dataclass(frozen=True)
class CommentHint:
    """The bot's comment on one issue as a bulk read found it (``None``: it has none).

    The sweep passes it instead of a per-issue read. Before it *creates* a comment on the word
    of a hint, triage looks once more (a webhook may have commented since the bulk read), so a
    stale hint can cost a request but never a second comment.
    """

    comment: Comment | None


def decision_record(decision: Decision, plan: Plan) -> dict[str, object]:
    """What the decision log keeps: the decision, the plan and exactly what it writes.

    The comment text is the rendered comment (it quotes nothing from the issue), so a dry run's
    record shows what ``--apply`` would post, and ``bugbar decisions`` can print it.
    """
    return {
        **decision.to_json(),
        "plan": plan.describe(),
        "add_labels": list(plan.add_labels),
        "remove_labels": list(plan.remove_labels),
        "comment_action": plan.comment.value,
        "comment": plan.comment_body if plan.comment is not CommentAction.NONE else None,
    }


def log_gone(exc: IssueGone) -> None:
    """The one info line for an event about a deleted issue."""
    log.info("issue was deleted; nothing to do", extra={"issue": str(exc.ref),
                                                        "reason": exc.reason})


ResultListener = Callable[[IssueRef, TriageResult], None]
"""Told about every triage run (``handle-event`` prints what was decided and planned)."""


# Striped per-issue locks: webhook workers, slash commands and an in-server sweep may reach the
# same issue at once; serialising them per issue keeps "find the comment, else create it" atomic
# within this process (bounded memory: 256 stripes, not one lock per issue ever seen).
_STRIPES = [threading.Lock() for _ in range(256)]


def issue_lock(key: str) -> threading.Lock:
    """The lock serialising work on one issue in this process."""
    return _STRIPES[zlib.crc32(key.encode()) % len(_STRIPES)]


def state_knows_comment(state: IssueState | None) -> bool:
    """Does the store know the bot's comment and decision (no read needed to plan)?"""
    return bool(state is not None and state.comment_id and state.decision_hash)


def content_hash(snapshot: IssueSnapshot) -> str:
    """Digest of what triage reads (title and body): unchanged text needs no new decision."""
    data = snapshot.title + "\0" + snapshot.body
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class _Planned:
    decision: Decision
    plan: Plan
    done: HandOffState
    """What the hand-off already did."""
    replan: Callable[[HandOffState], Plan]
    """The same plan for another hand-off state (after a protect step, for the comment)."""


class Triage:
    """Decide and apply, for one issue at a time."""

    def __init__(
        self,
        classifier: Classifier,
        store: Store,
        *,
        dry_run: bool = False,
        metrics: DecisionMetrics | None = None,
        on_result: ResultListener | None = None,
    ) -> None:
        self.classifier = classifier
        self.store = store
        self.dry_run = dry_run
        self.metrics = metrics
        self.on_result = on_result

    @property
    def settings(self) -> Settings:
        """The rule set's settings."""
        return self.classifier.ruleset.settings

    def decide(
        self, snapshot: IssueSnapshot, overrides: Mapping[str, str],
        bot_applied: Iterable[str] | None = None,
    ) -> Decision:
        """Classify the issue's current text and labels; the bot's own labels are not evidence.

        ``bot_applied`` is what the store or the marker says the bot applied (None: unknown).
        A ``threat/<id>`` label the bot did not apply was set by a person: it is evidence and,
        unless a ``/triage`` decision says otherwise, that person's choice of category. When
        the bot's labels are unknown, every label in its namespaces is left out, as before.
        """
        applied = set(bot_applied) if bot_applied is not None else None
        labels = tuple(lbl for lbl in snapshot.labels
                       if not is_bot_label(lbl, self.settings)
                       or (applied is not None and lbl not in applied
                           and human_category(lbl, self.settings) is not None))
        issue = Issue(str(snapshot.ref), snapshot.title, snapshot.body, labels)
        chosen = [c for lbl in labels if (c := human_category(lbl, self.settings))
                  and c in self.classifier.ruleset.rules]
        if not chosen or overrides.get("category") or overrides.get("not_a_threat"):
            return self.classifier.classify(issue, overrides)
        decision = self.classifier.classify(issue, {**overrides, "category": chosen[0]})
        # The label decided the category, but it is not a /triage decision: kept out of the
        # decision's overrides, so the comment's marker (which the next run reads when the
        # store has none) never keeps the category alive after the label comes off.
        return replace(decision, overrides={k: v for k, v in decision.overrides.items()
                                            if k != "category"})

    def bot_applied(self, key: str, marker: Marker | None = None) -> set[str] | None:
        """The bot's labels on an issue as the store (else the marker) remembers them."""
        state = self.store.get_issue_state(key)
        if state is not None and state.decision_hash:
            return set(state.applied_labels)
        if marker is not None and marker.applied is not None:
            return set(marker.applied)
        return None

    def run(
        self,
        tracker: Tracker,
        ref: IssueRef,
        *,
        snapshot: IssueSnapshot | None = None,
        delivery_id: str = "",
        trust_state: bool = False,
        hint: CommentHint | None = None,
        hold_changes: bool = False,
        retry_handoff: bool = False,
    ) -> TriageResult:
        """Triage ``ref``. ``snapshot`` skips the fetch (the sweep has it from the listing);
        ``trust_state`` lets the store stand in for re-reading the bot's comment, and ``hint``
        (a bulk read) does the same when the store does not know it. With ``hold_changes`` a
        plan that would write is returned as ``held`` and not applied, while a no-op is
        recorded as usual (the sweep past its ``max_changes`` cap). ``retry_handoff`` tries a
        refused protect step again now, not waiting for the hourly retry
        (``/triage retry-handoff``)."""
        with issue_lock(str(ref)):
            result = self._run(tracker, ref, snapshot, delivery_id, trust_state, hint,
                               hold_changes, retry_handoff)
        if self.on_result is not None:
            self.on_result(ref, result)
        return result

    def _run(
        self, tracker: Tracker, ref: IssueRef, snapshot: IssueSnapshot | None,
        delivery_id: str, trust_state: bool, hint: CommentHint | None = None,
        hold_changes: bool = False, retry_handoff: bool = False,
    ) -> TriageResult:
        try:
            snap = snapshot or tracker.get_issue(ref)
        except IssueGone as exc:
            # A definite answer (an admin deleted it, e.g. spam): done, not a failure to retry.
            log_gone(exc)
            return TriageResult("gone")
        if snap.is_pull_request:
            return TriageResult("skipped-pull-request")
        if self.settings.label_opt_out in snap.labels:
            log.info("opt-out label present; leaving the issue alone", extra={"issue": str(ref)})
            return TriageResult("opted-out")
        key = str(ref)
        state = self.store.get_issue_state(key)
        comment_id, marker, hinted = self._bot_comment(tracker, ref, state, trust_state, hint)
        planned = self._plan(tracker, snap, state, comment_id, marker, retry_handoff)
        if (hinted and planned.plan.comment is CommentAction.CREATE and not self.dry_run
                and not hold_changes):
            # The bulk read may predate a comment a webhook just posted: look before creating.
            existing = tracker.find_bot_comment(ref)
            if existing is not None:
                comment_id, marker = existing.id, parse_marker(existing.body)
                planned = self._plan(tracker, snap, state, comment_id, marker, retry_handoff)
        decision, plan, done = planned.decision, planned.plan, planned.done
        if self.metrics is not None:
            for threat in decision.threats:
                self.metrics.decision(ref.provider, threat.category, threat.severity.label)
        log.info("plan", extra={"issue": key, "plan": plan.describe(),
                                "categories": [t.category for t in decision.threats]})
        if self.dry_run or (hold_changes and not plan.is_noop):
            self.store.record_decision(key, delivery_id or None,
                                       json.dumps(decision_record(decision, plan)), True)
            return TriageResult("dry-run" if self.dry_run else "held", decision, plan)
        # Only the /triage decisions are stored: a category taken from a person's label lasts
        # as long as the label does.
        stored = (state.overrides if state and state.overrides
                  else (marker.overrides if marker else {}))
        if plan.is_noop:
            self._remember(key, snap, plan, comment_id, decision, stored)
            return TriageResult("unchanged", decision, plan, handoff=done)
        request = _request(decision, self.classifier.ruleset, snap)
        comment_id, writes, done = self._apply(tracker, ref, plan, comment_id, done,
                                               planned.replan, request)
        self._remember(key, snap, plan, comment_id, decision, stored)
        if not writes:
            # Only real writes count as triaged: outcome, metrics and sweep caps follow this.
            return TriageResult("unchanged", decision, plan, handoff=done)
        self.store.record_decision(key, delivery_id or None,
                                   json.dumps(decision_record(decision, plan)), False)
        return TriageResult("triaged", decision, plan, writes, done)

    def _plan(
        self, tracker: Tracker, snap: IssueSnapshot, state: IssueState | None,
        comment_id: str | None, marker: Marker | None, retry_handoff: bool = False,
    ) -> _Planned:
        overrides = (state.overrides if state and state.overrides
                     else (marker.overrides if marker else {}))
        # What the bot applied before: the store knows; without it, the marker remembers. A
        # state that triage never wrote (only slash-command bookkeeping) knows nothing of labels.
        applied_before = (state.applied_labels if state is not None and state.decision_hash
                          else (set(marker.applied) if marker and marker.applied is not None
                                else None))
        if applied_before is None and comment_id is None:
            applied_before = set()  # the bot never wrote here: every label is a person's
        decision = self.decide(snap, overrides, applied_before)
        done = handoff_state(state, marker)
        # A refused protect step is tried again once its refusal is an hour old (a maintainer
        # may have fixed the token), or at once when a maintainer asks; at most once per run.
        retry = bool(done.refused) and (
            retry_handoff or retry_due(done.refused, done.refused_at, self.store.now()))
        needs_protect = wants_protect(decision, snap.confidential, done, retry)
        # Asked for every decision: a comment that turns into "no threat" keeps the mention
        # line it had, so a later flip back to a threat never mentions anyone a second time.
        caps = tracker.handoff(snap.ref, protect=needs_protect)

        def replan(now_done: HandOffState) -> Plan:
            return plan_issue(
                decision,
                self.classifier.ruleset,
                snap.labels,
                applied_before=applied_before,
                removed_by_human=state.removed_by_human if state else (),
                existing_marker=marker,
                has_bot_comment=comment_id is not None,
                already_protected=snap.confidential,
                handoff=caps,
                handoff_state=now_done,
                retry_refused=retry,
            )

        return _Planned(decision, replan(done), done, replan)

    def _bot_comment(
        self, tracker: Tracker, ref: IssueRef, state: IssueState | None, trust_state: bool,
        hint: CommentHint | None,
    ) -> tuple[str | None, Marker | None, bool]:
        """``(comment id, marker, came from a hint)``."""
        if trust_state and state_knows_comment(state):
            assert state is not None and state.comment_id is not None
            # The store already knows the bot's comment and what it says: no request needed.
            marker = Marker(state.rules_version or "", state.decision_hash or "",
                            dict(state.overrides), threat=bool(state.applied_labels),
                            handoff=handoff_state(state, None))
            return state.comment_id, marker, False
        if hint is not None:
            if hint.comment is None:
                return None, None, True
            return hint.comment.id, parse_marker(hint.comment.body), True
        existing = tracker.find_bot_comment(ref)
        if existing is None:
            return None, None, False
        return existing.id, parse_marker(existing.body), False

    def _apply(
        self, tracker: Tracker, ref: IssueRef, plan: Plan, comment_id: str | None,
        done: HandOffState, make_plan: Callable[[HandOffState], Plan], request: HandOffRequest,
    ) -> tuple[str | None, int, HandOffState]:
        """Apply ``plan``; returns the comment id, the number of real writes and the hand-off
        state after. A protect step that shapes the comment (advisory id, a refusal to do by
        hand) runs first and the comment is planned again with its result."""
        key = str(ref)
        writes = 0
        comment_plan = plan
        if plan.protect and not plan.protect_last:
            done, wrote = self._protect(tracker, ref, plan, done, request)
            writes += wrote
            comment_plan = make_plan(done)
        # Labels before the comment: the comment's marker records the labels the bot applied,
        # and a run killed between the two must not leave a marker claiming labels that are
        # not there (the re-run would take them for labels a human removed, and never add
        # them). Before each write the worker's lease is checked: once it is lost another
        # worker owns this delivery.
        if plan.add_labels:
            ensure_held()
            tracker.add_labels(ref, list(plan.add_labels))
            writes += 1
        for label in plan.remove_labels:
            ensure_held()
            tracker.remove_label(ref, label)
            writes += 1
        # Then the comment: a failure after it is retried, and the retry finds the comment by
        # its marker and edits (or leaves) it; it never posts a second one.
        ensure_held()
        if comment_plan.comment is CommentAction.CREATE:
            new_id = tracker.create_comment(ref, comment_plan.comment_body).id
            comment_id = new_id
            self.store.update_issue_state(key, lambda s: setattr(s, "comment_id", new_id))
            writes += 1
        elif comment_plan.comment is CommentAction.EDIT and comment_id is not None:
            tracker.edit_comment(ref, comment_id, comment_plan.comment_body)
            writes += 1
        if plan.escalate:
            if plan.escalate_write:
                summary = f"AI/ML threat needing incident response: {ref}"
                ensure_held()
                if tracker.escalate(ref, summary):
                    writes += 1
            # The mention went out with the comment written above; never again.
            done = replace(done, escalated=True)
            self.store.update_issue_state(key, lambda s: s.extra.__setitem__("escalated", "1"))
            log.info("escalated issue", extra={"issue": key, "mentions": list(plan.mentions),
                                               "action": plan.escalate_write})
        if plan.protect and plan.protect_last:
            done, wrote = self._protect(tracker, ref, plan, done, request)
            writes += wrote
            if comment_id is not None and (done.refused or (plan.protect_retry and wrote)):
                # Tell a maintainer in the one comment what to do by hand; or, when a retry
                # moved the issue, drop that request from the comment where it now lives.
                again = make_plan(done)
                if again.comment is not CommentAction.NONE:
                    ensure_held()
                    tracker.edit_comment(moved_to(done.protected, ref), comment_id,
                                         again.comment_body)
                    writes += 1
        return comment_id, writes, done

    def _protect(self, tracker: Tracker, ref: IssueRef, plan: Plan, done: HandOffState,
                 request: HandOffRequest) -> tuple[HandOffState, int]:
        key = str(ref)
        ensure_held()
        try:
            result = tracker.protect(ref, request) or ""
        except HandOffRefused as exc:
            reason = exc.reason
            now = self.store.now()

            def refused(state: IssueState) -> None:
                state.extra["protect_refused"] = reason
                state.extra["protect_refused_at"] = repr(now)

            # One line, no retry in this run: the comment carries the manual step instead, and
            # a later triage tries again once the refusal is an hour old.
            message = ("hand-off step refused again by the tracker; the comment still asks a "
                       "maintainer to do it by hand" if plan.protect_retry else
                       "hand-off step refused by the tracker; the comment asks a maintainer "
                       "to do it by hand")
            log.warning(message, extra={"issue": key, "step": plan.protect_step,
                                        "reason": reason})
            self.store.update_issue_state(key, refused)
            return replace(done, refused=reason, refused_at=now), 0
        if not result:
            return done, 0

        def protected(state: IssueState) -> None:
            state.extra["protected"] = result
            state.extra.pop("protect_refused", None)
            state.extra.pop("protect_refused_at", None)

        self.store.update_issue_state(key, protected)
        log.info("protected issue", extra={"issue": key, "action": result,
                                           "after_refusal": plan.protect_retry})
        return replace(done, protected=result, refused="", refused_at=0.0), 1

    def _remember(
        self, key: str, snap: IssueSnapshot, plan: Plan, comment_id: str | None,
        decision: Decision, overrides: Mapping[str, str],
    ) -> None:
        def mutate(state: IssueState) -> None:
            state.applied_labels = set(plan.applied_labels)
            state.removed_by_human = set(plan.removed_by_human)
            state.comment_id = comment_id or state.comment_id
            state.decision_hash = plan.decision_hash
            state.content_hash = content_hash(snap)
            state.updated_at = snap.updated_at.isoformat() if snap.updated_at else None
            state.rules_version = decision.rules_version
            state.overrides = {k: v for k, v in decision.overrides.items()
                               if k in overrides}

        self.store.update_issue_state(key, mutate)


def moved_to(protected: str, ref: IssueRef) -> IssueRef:
    """Where a protect step's result (``transferred OWNER/REPO#N``) says the issue lives now;
    ``ref`` when it did not move."""
    if not protected.startswith("transferred "):
        return ref
    scope, _, number = protected.removeprefix("transferred ").rpartition("#")
    if not scope or not number.isdigit():
        return ref
    return IssueRef(ref.provider, scope, int(number))


def _request(decision: Decision, ruleset: RuleSet, snap: IssueSnapshot) -> HandOffRequest:
    """The triage a hand-off step may carry: category, severity, routes and the issue link."""
    top = decision.threats[0] if decision.threats else None
    rule = ruleset.rules.get(top.category) if top else None
    return HandOffRequest(
        category=top.category if top else "",
        category_title=rule.title if rule else "",
        severity=decision.severity.label if decision.severity else "",
        routes=tuple(decision.routes),
        issue_url=snap.url,
    )
