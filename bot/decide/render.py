"""Render the bot's one comment, and read back the hidden marker it carries.

The comment names the category, the seed range, the suggested severity with the cues behind
it, the route with its guidance, the rule phrases that matched, references and how to correct
it. It quotes nothing from the issue itself: evidence is the rule's own phrase names, so
exploit details a reporter posted are never repeated by the bot.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.decide.classify import decision_hash
from bot.decide.handoff import HandOffState, HandOffView, handoff_lines, mention_line
from bot.decide.model import Decision, Severity
from bot.decide.rules import RuleSet

MARKER_PREFIX = "<!-- bugbar:v1 "
_MARKER_RE = re.compile(
    r"<!-- bugbar:v1 rules=(?P<rules>[\w.+-]{1,64}) hash=(?P<hash>[0-9a-f]{1,64})"
    r"(?: state=(?P<state>[A-Za-z0-9_=-]{0,8192}))? -->"
)


@dataclass(frozen=True)
class Marker:
    """What the bot stored in its own comment: rules version, decision hash, human decisions."""

    rules_version: str
    decision_hash: str
    overrides: dict[str, str] = field(default_factory=dict)
    threat: bool = True
    applied: tuple[str, ...] | None = None
    """The bot's labels when the comment was written: lets a bot without its store (GitHub
    Actions, a lost database) tell a label a human removed from one it never added."""
    handoff: HandOffState = field(default_factory=HandOffState)
    """What the security hand-off already did (advisory id, lock, mention)."""


def render_marker(decision: Decision, applied: Iterable[str] | None = None,
                  handoff: HandOffState | None = None) -> str:
    """The hidden HTML comment identifying the bot's comment and carrying its state."""
    state: dict[str, object] = {"o": decision.overrides, "t": int(decision.is_threat)}
    if applied is not None:
        state["a"] = sorted(applied)
    if handoff is not None and handoff.to_json():
        state["h"] = handoff.to_json()
    blob = base64.urlsafe_b64encode(json.dumps(state, sort_keys=True).encode()).decode()
    return (f"{MARKER_PREFIX}rules={decision.rules_version} hash={decision_hash(decision)} "
            f"state={blob} -->")


def parse_marker(body: str) -> Marker | None:
    """Find the marker in a comment body; None when absent or malformed.

    Only comments written by the bot's own identity may be trusted with this: anyone can type a
    marker into a comment, so the caller checks the author first.
    """
    m = _MARKER_RE.search(body or "")
    if not m:
        return None
    overrides: dict[str, str] = {}
    threat = True
    applied: tuple[str, ...] | None = None
    handoff = HandOffState()
    if m.group("state"):
        try:
            state = json.loads(base64.urlsafe_b64decode(m.group("state").encode()))
        except (ValueError, binascii.Error):
            state = {}
        if isinstance(state, dict):
            raw = state.get("o", {})
            if isinstance(raw, dict):
                overrides = {str(k): str(v) for k, v in raw.items()
                             if isinstance(v, str | int) and str(k) in
                             ("category", "severity", "route", "not_a_threat")}
            threat = bool(state.get("t", 1))
            raw_applied = state.get("a")
            if isinstance(raw_applied, list) and all(isinstance(x, str) for x in raw_applied):
                applied = tuple(raw_applied)
            handoff = HandOffState.from_json(state.get("h"))
    return Marker(m.group("rules"), m.group("hash"), overrides, threat, applied, handoff)


def _level(sev: Severity) -> str:
    return sev.label.capitalize()


def _refs(refs: dict[str, object]) -> str:
    parts = []
    if refs.get("bug_bar"):
        parts.append(f"SDL AI/ML bug bar: {refs['bug_bar']}")
    for key, name in (("atlas", "MITRE ATLAS"), ("owasp_ml", "OWASP ML Top 10"),
                      ("owasp_llm", "OWASP LLM Top 10"), ("nist", "NIST AI 100-2")):
        ids = refs.get(key)
        if isinstance(ids, list) and ids:
            parts.append(f"{name} {', '.join(str(i) for i in ids)}")
    return " · ".join(parts)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end == -1 else text[: end + 1]


def render_comment(
    decision: Decision, ruleset: RuleSet, applied: Iterable[str] | None = None,
    handoff: HandOffView | None = None,
) -> str:
    """The Markdown body of the bot's comment for ``decision`` (threat or not).

    ``handoff`` adds the security hand-off: mentions, what was done, the private reporting
    link, and what a maintainer must do by hand when the tracker refused a step.
    """
    settings = ruleset.settings
    view = handoff or HandOffView()
    lines = [render_marker(decision, applied, view.state)]
    if not decision.is_threat:
        lines.append("### bugbar triage: no AI/ML threat found")
        lines.append("")
        if decision.overrides.get("not_a_threat"):
            lines.append("A maintainer marked this issue as **not an AI/ML threat**; "
                         "bugbar removed its labels and will keep them off.")
        else:
            lines.append("After the latest changes this issue no longer matches an AI/ML threat "
                         "category of the bug bar, so bugbar removed its labels.")
        for note in decision.notes:
            if "maintainer" not in note:
                lines.append("")
                lines.append(note)
        for line in mention_line(view):
            lines += ["", line]
        lines.append("")
        lines.append("To re-run triage comment `/triage`; to set a category, "
                     "`/triage <category>` (see `/triage help`).")
        return "\n".join(lines) + "\n"

    top = decision.threats[0]
    rule = ruleset.rules[top.category]
    low, high = rule.severity_range
    seed = _level(low) if low == high else f"{_level(low)} – {_level(high)}"
    lines.append(f"### bugbar triage: possible AI/ML threat — {rule.title}")
    lines.append("")
    lines.append(f"**Category:** `{rule.id}` ({rule.title}). {_first_sentence(rule.description)}")
    lines.append("")
    cue_titles = [settings.cues[c].title if c in settings.cues else c for c in top.cues]
    why = f" Cues: {', '.join(cue_titles)}." if cue_titles else " No severity cues found; " \
        "the rule's default applies."
    lines.append(f"**Suggested severity:** **{_level(top.severity)}** "
                 f"(seed range {seed}).{why}")
    if decision.severity and decision.severity != top.severity:
        lines.append(f"Overall severity across matched categories: "
                     f"**{_level(decision.severity)}**.")
    lines.append("")
    for route in decision.routes:
        info = settings.routes.get(route)
        if info:
            lines.append(f"**Route: {info.title}** (`route/{route}`) — {info.guidance}")
        else:
            lines.append(f"**Route:** `{route}`")
        lines.append("")
    facts = []
    if top.evidence:
        quoted = ", ".join(f"“{e}”" for e in top.evidence[:8])
        facts.append(f"**Evidence (rule phrases that matched):** {quoted}")
    refs = _refs(dict(rule.references))
    if refs:
        facts.append(f"**References:** {refs}")
    if len(decision.threats) > 1:
        others = ", ".join(f"`{t.category}` ({_level(t.severity)})" for t in decision.threats[1:])
        facts.append(f"**Also matched:** {others}")
    if decision.overrides:
        set_by = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in
                           sorted(decision.overrides.items()))
        facts.append(f"**Set by a maintainer:** {set_by}")
    for fact in facts:
        lines += [fact, ""]
    for line in handoff_lines(view):
        lines += [line, ""]
    if view.private_report_url:
        private = ("Please send reproduction details privately through this repository's "
                   f"vulnerability reporting: {view.private_report_url} (not in this issue).")
    else:
        private = ("If this report is public, please move reproduction details to private "
                   "vulnerability reporting.")
    lines.append(private + " Correct the triage with `/triage <category>`, "
                 "`/triage severity <level>`, `/triage route <route>` or "
                 "`/triage not-a-threat`; `/triage explain` shows why; `/triage help` lists all.")
    lines.append("")
    lines.append(f"<sub>Heuristic suggestion by bugbar, {settings.source}; rules "
                 f"{decision.rules_version}. A human triager decides.</sub>")
    return "\n".join(lines) + "\n"
