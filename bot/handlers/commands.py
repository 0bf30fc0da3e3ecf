"""Run the ``/triage`` commands people write in issue comments (triagebot's ``handle_input``).

The pure parser (``bot.decide.commands``) says what a comment asks for; this handler decides
which of those requests are new, who may make them, and whether they make sense for the issue,
then acts: human decisions go into ``IssueState.overrides`` and ``Triage.run`` applies them
(labels and the bot's one comment). A success is acknowledged with a reaction only; refusals,
parse errors, ``explain`` and ``help`` are answered in at most one reply per comment event.

Which commands are new: the store keeps, per comment id, the signatures of the commands (and
errors) in the comment text it last handled. That is the "previous text" for an edit when the
provider does not send one (GitLab, Jira) and it makes a redelivered or duplicated event (Jira
Cloud can send one comment under two delivery ids) a no-op. The signatures are claimed in one
store transaction before anything runs, so two workers holding duplicates cannot both run them;
if running fails, the claim is handed back so the inbox's retry runs the commands again.

The comment text is untrusted and may be confidential: it is never logged, and replies quote
none of the issue's text (``explain`` gives rule phrase names, cue titles and scores).
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.decide.commands import (
    DEFAULT_POLICY,
    HELP,
    PREFIX,
    Command,
    CommandError,
    CommandKind,
    CommandPolicy,
    ParseResult,
    parse_commands,
    render_help,
)
from bot.decide.model import Access, Decision, Issue, Severity
from bot.decide.plan import is_bot_label
from bot.decide.render import MARKER_PREFIX, parse_marker
from bot.decide.rules import RuleSet
from bot.decide.semantic import thresholds_line
from bot.errors import http_status
from bot.events.model import Event, IssueRef
from bot.handlers.triage import Triage, TriageResult
from bot.providers.base import IssueSnapshot, Tracker
from bot.store import Correction, IssueState
from bot.store_base import StateStore as Store

log = logging.getLogger("bugbar.commands")

REACTION = "+1"
"""The neutral reaction name for "done"; adapters map it (GitLab ``thumbsup``, Jira: none)."""

TRUNCATED_SIGNATURE = "truncated"
"""Stands for "the truncation notice was given" among a comment's signatures."""

_CHANGES = frozenset({
    CommandKind.RETRIAGE, CommandKind.SET_CATEGORY, CommandKind.NOT_A_THREAT,
    CommandKind.SET_SEVERITY, CommandKind.SET_ROUTE, CommandKind.RETRY_HANDOFF,
})
"""Commands that change the triage (and so need the issue, overrides and ``Triage.run``)."""

_NO_OVERRIDE = frozenset({CommandKind.RETRIAGE, CommandKind.RETRY_HANDOFF})
"""Commands that re-run triage without recording a human decision."""

_VALID_SUMMARY = "Valid: " + ", ".join(f"`{h.usage}`" for h in HELP.values()) + "."


# --- which commands in a comment are new --------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One command or error of a comment, with the signature it is remembered by."""

    signature: str
    command: Command | None = None
    error: CommandError | None = None


def _error_signature(error: CommandError) -> str:
    # A digest, so the store never holds text from a comment.
    words = " ".join(unicodedata.normalize("NFKC", error.text).casefold().split())
    digest = hashlib.sha256(f"{words}\0{error.message}".encode("utf-8", "surrogatepass"))
    return "error " + digest.hexdigest()[:16]


def _items(result: ParseResult) -> list[_Item]:
    """The commands and errors of a parsed comment, in order, each with its signature.

    A command's signature is its canonical spelling (``/triage severity critical``), so edits
    compare by meaning exactly as ``new_commands`` does.
    """
    lines = [(c.line, _Item(str(c), command=c)) for c in result.commands]
    lines += [(e.line, _Item(_error_signature(e), error=e)) for e in result.errors]
    items = [item for _, item in sorted(lines, key=lambda pair: pair[0])]
    if result.truncated:
        items.append(_Item(TRUNCATED_SIGNATURE))
    return items


def comment_signatures(text: str) -> list[str]:
    """The signatures of every command, error and truncation notice in ``text``."""
    return [item.signature for item in _items(parse_commands(text))]


def _fresh(items: list[_Item], previous: list[str]) -> list[_Item]:
    """``items`` not already in ``previous``, counted (a second copy of a command is new)."""
    seen = Counter(previous)
    out = []
    for item in items:
        if seen[item.signature]:
            seen[item.signature] -= 1
        else:
            out.append(item)
    return out


# --- what a command does to the human decisions -------------------------------------------


def apply_override(overrides: dict[str, str], command: Command, ruleset: RuleSet) -> None:
    """Record ``command``'s decision in ``overrides`` (keys as ``Classifier`` reads them).

    A new category clears ``not_a_threat`` and a severity override that its seed range does not
    allow; ``not-a-threat`` replaces every earlier human decision, since a category, severity or
    route of "no threat" means nothing.
    """
    kind, arg = command.kind, command.arg or ""
    if kind is CommandKind.SET_CATEGORY:
        overrides.pop("not_a_threat", None)
        overrides["category"] = arg
        level = overrides.get("severity")
        seed = ruleset.settings.seed_ranges.get(arg)
        if level is not None and (seed is None or not seed[0] <= _parse_severity(level) <= seed[1]):
            del overrides["severity"]
    elif kind is CommandKind.NOT_A_THREAT:
        overrides.clear()
        overrides["not_a_threat"] = "1"
    elif kind is CommandKind.SET_SEVERITY:
        overrides["severity"] = arg
    elif kind is CommandKind.SET_ROUTE:
        overrides["route"] = arg


def _parse_severity(text: str) -> int:
    try:
        return Severity.parse(text)
    except ValueError:
        return 0  # outside every range


def _levels(low: Severity, high: Severity) -> str:
    return ", ".join(f"`{s.label}`" for s in Severity if low <= s <= high)


def permission_subject(event: Event) -> str:
    """The user id ``Tracker.permission`` takes: GitHub login, GitLab numeric user id, Jira
    accountId (Cloud) or user key (Data Center)."""
    if event.provider == "github":
        return event.actor
    return event.actor_id or event.actor


# --- one comment event --------------------------------------------------------------------


@dataclass
class _Outcome:
    """What handling one comment produced, collected before anything is written."""

    applied: list[Command] = field(default_factory=list)
    refused: list[tuple[Command, str]] = field(default_factory=list)
    errors: list[CommandError] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    truncated: bool = False

    @property
    def name(self) -> str:
        """The outcome for logs and metrics; the one a person most needs to know wins."""
        if self.refused:
            return "refused"
        if self.errors:
            return "parse-error"
        if self.applied:
            return "commands-applied"
        return "replied" if self.sections or self.truncated else "no-commands"


class _Issue:
    """The issue a comment is on, fetched and looked up only when a command needs it."""

    def __init__(self, tracker: Tracker, ref: IssueRef, store: Store) -> None:
        self.tracker = tracker
        self.ref = ref
        self.store = store
        self._snapshot: IssueSnapshot | None = None
        self._overrides: dict[str, str] | None = None

    @property
    def snapshot(self) -> IssueSnapshot:
        """The issue as the tracker has it now."""
        if self._snapshot is None:
            self._snapshot = self.tracker.get_issue(self.ref)
        return self._snapshot

    @property
    def overrides(self) -> dict[str, str]:
        """The human decisions so far: the store's, else the bot comment marker's (as Triage
        reads them); commands in this comment update this copy as they are accepted."""
        if self._overrides is None:
            self._overrides = dict(base_overrides(self.store, self.tracker, self.ref))
        return self._overrides


def base_overrides(store: Store, tracker: Tracker, ref: IssueRef) -> Mapping[str, str]:
    """The human decisions ``Triage.run`` would use: the store's, else the bot comment's."""
    state = store.get_issue_state(str(ref))
    if state is not None and state.overrides:
        return state.overrides
    comment = tracker.find_bot_comment(ref)
    marker = parse_marker(comment.body) if comment is not None else None
    return marker.overrides if marker is not None else {}


class Commands:
    """The ``/triage`` handler: ``handle(tracker, event)`` for comment created/edited events."""

    def __init__(
        self, triage: Triage, store: Store, policy: CommandPolicy = DEFAULT_POLICY
    ) -> None:
        self.triage = triage
        self.store = store
        self.policy = policy

    @property
    def ruleset(self) -> RuleSet:
        """The rules the classifier uses (seed ranges, cues, the opt-out label)."""
        return self.triage.classifier.ruleset

    def handle(self, tracker: Tracker, event: Event) -> str:
        """Run the new commands in a comment event; returns the outcome.

        ``ignored`` / ``ignored-bot`` (no issue; a bot or the bot's own comment),
        ``no-commands``, ``commands-applied``, ``replied`` (explain/help only), ``refused``
        (some command was not allowed or not valid for the issue), ``parse-error``.
        """
        ref = event.issue
        if ref is None:
            return "ignored"
        if self._from_a_bot(tracker, event):
            return "ignored-bot"
        items = _items(parse_commands(event.comment_body))
        previous = self._claim(str(ref), event, [i.signature for i in items])
        fresh = _fresh(items, previous)
        if not fresh:
            return "no-commands"
        try:
            outcome = self._run(tracker, ref, event, fresh)
        except BaseException:
            # Hand the claim back: the inbox retries the delivery and the commands run then.
            self._release(str(ref), event.comment_id, previous, [i.signature for i in items])
            raise
        log.info("commands handled", extra={
            "issue": str(ref), "comment_id": event.comment_id, "outcome": outcome.name,
            "applied": [str(c) for c in outcome.applied],
            "refused": [str(c) for c, _ in outcome.refused],
            "errors": len(outcome.errors),
        })
        return outcome.name

    # -- bookkeeping ------------------------------------------------------------------------

    @staticmethod
    def _from_a_bot(tracker: Tracker, event: Event) -> bool:
        if event.actor_is_bot or MARKER_PREFIX in event.comment_body:
            return True
        return bool(event.actor) and event.actor == tracker.bot_identity()

    def _claim(self, key: str, event: Event, current: list[str]) -> list[str]:
        """Record ``current`` as the comment's handled signatures; return the previous ones.

        The previous state is what the store remembers for this comment, else the commands in
        the provider's previous text (GitHub edits), else nothing (a new comment). One write
        transaction, so duplicates handled at the same time see each other's claim.
        """
        def from_text() -> list[str]:
            text = event.previous_comment_body
            return comment_signatures(text) if text is not None else []

        comment_id = event.comment_id
        if not comment_id:
            return from_text()
        if not current:
            state = self.store.get_issue_state(key)
            if state is None or comment_id not in state.seen_commands:
                return []  # the common case: a comment without commands writes nothing
        previous: list[str] = []

        def mutate(state: IssueState) -> None:
            nonlocal previous
            previous = list(state.seen_commands.get(comment_id, ())) or from_text()
            if current:
                state.seen_commands[comment_id] = list(current)
            else:
                # Every command was edited away: forget the comment, so re-adding one runs it.
                state.seen_commands.pop(comment_id, None)

        self.store.update_issue_state(key, mutate)
        return previous

    def _release(
        self, key: str, comment_id: str, previous: list[str], claimed: list[str]
    ) -> None:
        """Undo ``_claim`` unless another event for the comment has claimed since."""
        if not comment_id:
            return

        def mutate(state: IssueState) -> None:
            if state.seen_commands.get(comment_id, []) != claimed:
                return
            if previous:
                state.seen_commands[comment_id] = list(previous)
            else:
                state.seen_commands.pop(comment_id, None)

        try:
            self.store.update_issue_state(key, mutate)
        except Exception:
            log.exception("could not release a command claim", extra={"issue": key})

    # -- deciding ---------------------------------------------------------------------------

    def _access(self, tracker: Tracker, ref: IssueRef, event: Event,
                fresh: list[_Item]) -> Access | None:
        """The author's access, ``None`` when the check failed; not asked when not needed."""
        needed = max((self.policy.required_access(i.command) for i in fresh if i.command),
                     default=Access.NONE)
        if needed is Access.NONE:
            return Access.NONE
        user = permission_subject(event)
        if not user:
            return Access.NONE
        try:
            return tracker.permission(ref, user)
        except Exception as exc:  # fail closed: whatever went wrong, nothing privileged runs
            log.warning("permission check failed; refusing", extra={
                "issue": str(ref), "actor": event.actor, "error": type(exc).__name__})
            return None

    def _refusal(self, command: Command, access: Access | None) -> str | None:
        needed = self.policy.required_access(command)
        if needed is Access.NONE:
            return None
        if access is None:
            return ("bugbar could not check your permission on this project, so it ran "
                    "nothing that needs one. Post the command again in a new comment to retry.")
        if access >= needed:
            return None
        have = "no access" if access is Access.NONE else f"{access.name.lower()} access"
        return f"needs {needed.name.lower()} access or higher; you have {have}."

    def _check(self, command: Command, issue: _Issue) -> str | None:
        """Why ``command`` cannot apply to this issue now, or ``None``."""
        opt_out = self.ruleset.settings.label_opt_out
        if opt_out in issue.snapshot.labels:
            return (f"the issue has the `{opt_out}` label, so bugbar leaves it alone. "
                    "Remove the label first.")
        if command.kind is CommandKind.SET_CATEGORY and command.arg not in self.ruleset.rules:
            return (f"this deployment's rules have no `{command.arg}` rule, so bugbar cannot "
                    "apply that category.")
        if command.kind not in (CommandKind.SET_SEVERITY, CommandKind.SET_ROUTE):
            return None
        top = self.triage.decide(issue.snapshot, issue.overrides,
                                 self.triage.bot_applied(str(issue.ref))).top
        if top is None:
            what = "a severity" if command.kind is CommandKind.SET_SEVERITY else "a route"
            return (f"this issue has no AI/ML threat category, so it cannot take {what}. "
                    f"Set a category first with `{PREFIX} <category>`.")
        if command.kind is CommandKind.SET_SEVERITY:
            low, high = self.ruleset.rules[top.category].severity_range
            level = command.severity
            if level is None or not low <= level <= high:
                span = low.label if low == high else f"{low.label} – {high.label}"
                return (f"`{command.arg}` is outside the seed range of `{top.category}` "
                        f"({span}). Valid: {_levels(low, high)}.")
        return None

    def _run(self, tracker: Tracker, ref: IssueRef, event: Event, fresh: list[_Item]) -> _Outcome:
        out = _Outcome()
        issue = _Issue(tracker, ref, self.store)
        access = self._access(tracker, ref, event, fresh)
        for item in fresh:
            if item.error is not None:
                out.errors.append(item.error)
            elif item.command is None:
                out.truncated = True
            else:
                self._decide(item.command, access, issue, out)
        if out.applied:
            result = self._apply(tracker, ref, event, issue, out.applied)
            if any(c.kind is CommandKind.RETRY_HANDOFF for c in out.applied):
                out.sections.append(handoff_retry_reply(result))
        reply = self._reply(out, confidential=event.confidential)
        if reply:
            tracker.create_comment(ref, reply)
        return out

    def _decide(self, command: Command, access: Access | None, issue: _Issue,
                out: _Outcome) -> None:
        reason = self._refusal(command, access)
        if reason is None and command.kind in _CHANGES:
            reason = self._check(command, issue)
        if reason is not None:
            out.refused.append((command, reason))
            return
        section: str | None = None
        if command.kind is CommandKind.HELP:
            section = render_help(self.policy)
        elif command.kind is CommandKind.EXPLAIN:
            section = self._explain(issue)
        else:
            apply_override(issue.overrides, command, self.ruleset)
            out.applied.append(command)
        if section is not None and section not in out.sections:
            out.sections.append(section)

    # -- acting -----------------------------------------------------------------------------

    def _apply(self, tracker: Tracker, ref: IssueRef, event: Event, issue: _Issue,
               applied: list[Command]) -> TriageResult:
        """Store the human decisions, re-run triage with them, and acknowledge quietly.
        ``/triage retry-handoff`` makes that run try a refused protect step again at once."""
        if any(c.kind not in _NO_OVERRIDE for c in applied):
            base = dict(issue.overrides)  # already loaded by the checks

            def mutate(state: IssueState) -> None:
                # Replay the commands onto what is stored now, so a concurrent change to
                # another key is kept.
                overrides = dict(state.overrides) if state.overrides else dict(base)
                for command in applied:
                    apply_override(overrides, command, self.ruleset)
                state.overrides = overrides

            self.store.update_issue_state(str(ref), mutate)
            self._keep_correction(event, issue, applied)
        retry = any(c.kind is CommandKind.RETRY_HANDOFF for c in applied)
        result = self.triage.run(tracker, ref, snapshot=issue.snapshot,
                                 delivery_id=event.delivery_id, retry_handoff=retry)
        log.info("triage after commands", extra={"issue": str(ref), "triage": result.outcome})
        if event.comment_id:
            self._acknowledge(tracker, ref, event.comment_id)
        return result

    @staticmethod
    def _acknowledge(tracker: Tracker, ref: IssueRef, comment_id: str) -> None:
        """React to the command's comment; a comment deleted meanwhile (404) needs none.

        The commands have run by now, so failing the event over a courtesy reaction would only
        re-run them; other errors still propagate (and the event is retried).
        """
        try:
            tracker.react(ref, comment_id, REACTION)
        except Exception as exc:
            if http_status(exc) not in (404, 410):
                raise
            log.info("comment gone before its reaction", extra={"issue": str(ref)})

    def _keep_correction(self, event: Event, issue: _Issue, applied: list[Command]) -> None:
        """A category or not-a-threat decision becomes a labelled example (the issue's text
        and labels as they are now), for ``bugbar corrections export``."""
        decisive = [c for c in applied
                    if c.kind in (CommandKind.SET_CATEGORY, CommandKind.NOT_A_THREAT)]
        if not decisive:
            return
        last = decisive[-1]
        expect = (last.arg,) if last.kind is CommandKind.SET_CATEGORY and last.arg else ()
        snap = issue.snapshot
        settings = self.ruleset.settings
        # Labels in the bot's namespaces (threat/*, severity/*, route/*) are the answer, not
        # part of the example.
        labels = tuple(lbl for lbl in snap.labels if not is_bot_label(lbl, settings))
        self.store.record_correction(Correction(
            str(issue.ref), snap.title, snap.body, labels, expect,
            confidential=bool(event.confidential or snap.confidential)))

    def _reply(self, out: _Outcome, *, confidential: bool) -> str:
        """One reply for everything a person needs to read; empty when nothing is."""
        parts: list[str] = []
        if out.refused:
            parts.append("\n".join(["**bugbar did not run:**"] + [
                f"- `{command}`: {reason}" for command, reason in out.refused]))
        if out.errors:
            lines = ["**bugbar did not understand:**"]
            for error in out.errors:
                # An internal note's text must not be repeated in a reply anyone may read.
                message = (f"not a command bugbar can run. {_VALID_SUMMARY}" if confidential
                           else error.message)
                lines.append(f"- line {error.line}: {message}")
            parts.append("\n".join(lines))
        if out.truncated:
            notice = ParseResult(truncated=True).truncation_notice
            if notice:
                parts.append(notice)
        parts.extend(out.sections)
        return "\n\n".join(parts)

    def _explain(self, issue: _Issue) -> str:
        """Evidence, gates and cues behind the decision: rule names and scores only."""
        snap = issue.snapshot
        settings = self.ruleset.settings
        applied = self.triage.bot_applied(str(issue.ref))
        labels = tuple(lbl for lbl in snap.labels if not is_bot_label(lbl, settings)
                       or (applied is not None and lbl not in applied))
        report = self.triage.classifier.explain(Issue(str(snap.ref), snap.title, snap.body,
                                                      labels))
        current = self.triage.decide(snap, issue.overrides, applied)
        return render_explain(report, current, self.ruleset)


# --- the retry-handoff reply ----------------------------------------------------------------


def handoff_retry_reply(result: TriageResult) -> str:
    """What ``/triage retry-handoff`` did, for the reply: the step, and the tracker's answer
    (its status and message, as the bot's comment already shows them); no issue text."""
    plan, done = result.plan, result.handoff
    if plan is not None and plan.protect:
        step = plan.protect_step
        if result.outcome == "dry-run":
            return f"**Hand-off:** dry run: bugbar would try again to {step}; nothing was written."
        if done is not None and done.protected:
            return (f"**Hand-off:** done: bugbar could {step} this time ({done.protected}); "
                    "its comment no longer asks for the manual step.")
        if done is not None and done.refused:
            todo = plan.handoff.manual_protect or "take this report out of public view by hand"
            return (f"**Hand-off:** refused again ({done.refused}). Give the bot's account the "
                    f"permission this step needs and retry, or a maintainer should {todo}.")
        return f"**Hand-off:** bugbar tried again to {step}; the tracker reported nothing done."
    if done is not None and done.protected:
        return f"**Hand-off:** nothing to retry: it is already done ({done.protected})."
    if done is not None and done.refused:
        return ("**Hand-off:** nothing to retry: the current decision (not critical, not "
                "`ssirp`) or this deployment's settings no longer call for the refused step.")
    return "**Hand-off:** nothing to retry: no hand-off step was refused on this issue."


# --- the explain reply --------------------------------------------------------------------


def _phrases(names: list[Any]) -> str:
    return ", ".join(f"“{n}”" for n in names)


def _describe(decision: Decision) -> str:
    if not decision.is_threat:
        return "no AI/ML threat"
    threats = ", ".join(f"`{t.category}` ({t.severity.label})" for t in decision.threats)
    routes = ", ".join(f"`{r}`" for r in decision.routes) or "none"
    return f"{threats}; route {routes}"


def render_explain(report: Mapping[str, Any], current: Decision, ruleset: RuleSet) -> str:
    """The ``/triage explain`` reply from ``Classifier.explain``'s report.

    Everything in it comes from the rules (phrase, gate and cue names, titles) or is a number:
    the report names what matched, never the issue text around it.
    """
    settings = ruleset.settings
    lines = ["### Why bugbar decided this", "", f"**Decision:** {_describe(current)}."]
    if current.overrides:
        set_by = ", ".join(f"{k.replace('_', ' ')}: {v}"
                           for k, v in sorted(current.overrides.items()))
        lines.append(f"**Set by a maintainer:** {set_by}. Without it the rules alone give: "
                     f"{_rules_alone(report)}.")
    gates = report.get("gates") or []
    factor = report.get("gate_factor", 1.0)
    gate_text = f"gates {_phrases(list(gates))} (score factor {factor})" if gates else "no gates"
    lines.append(f"**Threshold:** {report.get('threshold')}; {gate_text}.")
    cue_titles = [settings.cues[c].title if c in settings.cues else c
                  for c in report.get("cues") or []]
    lines.append(f"**Severity cues:** {', '.join(cue_titles) or 'none'}.")
    categories = report.get("categories") or []
    if categories:
        lines += ["", "| Category | Score | Fired | Evidence (rule phrases: where, weight) |",
                  "| --- | --- | --- | --- |"]
        for cat in categories:
            evidence = ", ".join(
                f"“{e['signal']}” ({e['where']}, {e['weight']})" for e in cat["evidence"])
            unanchored = cat.get("ignored_without_ml_context") or []
            if unanchored:
                evidence += ("; " if evidence else "") + \
                    f"ignored without ML context: {_phrases(unanchored)}"
            held = cat.get("held_by") or []
            fired = ("yes" if cat["fired"] else
                     f"no: held by gate {_phrases(list(held))}" if held else "no")
            lines.append(f"| `{cat['category']}` | {cat['score']} | {fired} | "
                         f"{evidence or '—'} |")
    else:
        lines += ["", "No rule phrase of any category matched."]
    extra: list[str] = []
    if report.get("confusers"):
        extra.append(f"**Confusers (phrases that look like a threat but are not one):** "
                     f"{_phrases(list(report['confusers']))}.")
    if report.get("traditional"):
        extra.append(f"**Traditional security bug words:** "
                     f"{_phrases(list(report['traditional']))}.")
    if report.get("truncated"):
        extra.append(f"Only the first {settings.max_input_chars} characters were read.")
    semantic = report.get("semantic")
    if semantic:
        top = list(semantic["scores"].items())[:3]
        extra.append("**Semantic model (similarity to known reports):** "
                     + ", ".join(f"`{c}` {p:.2f}" for c, p in top) + "; it "
                     + thresholds_line(semantic) + ".")
    if extra:
        lines += [""] + extra
    return "\n".join(lines)


def _rules_alone(report: Mapping[str, Any]) -> str:
    decision = report.get("decision") or {}
    threats = decision.get("threats") or []
    if not threats:
        return "no AI/ML threat"
    return ", ".join(f"`{t['category']}` ({t['severity']})" for t in threats)


__all__ = ["REACTION", "Commands", "apply_override", "base_overrides", "comment_signatures",
           "handoff_retry_reply", "permission_subject", "render_explain"]
