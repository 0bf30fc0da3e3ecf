"""What ``handle-event`` and ``sweep`` hand to CI: the decision as JSON, readable text, a job
summary (Markdown for ``$GITHUB_STEP_SUMMARY``) and step outputs (``$GITHUB_OUTPUT``).

Nothing here quotes the issue: the decision names categories, the plan names labels, and the
bot's comment is built from the rules' own words (it never repeats the reporter's text), so an
Actions log or job summary of a confidential issue leaks no more than its key.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.events.model import IssueRef
from bot.handlers.triage import TriageResult, decision_record


@dataclass(frozen=True)
class EventReport:
    """One processed event: its outcome and every issue triage decided along the way."""

    provider: str
    event: str
    delivery: str
    outcome: str
    dry_run: bool
    results: Sequence[tuple[IssueRef, TriageResult]] = ()
    reason: str = ""
    """Why an ignored event was ignored (``action closed not handled``, ``pull request``)."""
    issue: str | None = None
    """The issue the event is about (also when nothing was triaged)."""

    def to_json(self) -> dict[str, Any]:
        """The one JSON line ``handle-event`` prints (and the Action's ``decision`` output).

        ``issue``/``decision``/``comment`` describe the last issue triaged (events touch one);
        ``issues`` lists them all.
        """
        issues = [_issue_json(ref, res) for ref, res in self.results]
        last = issues[-1] if issues else {}
        out: dict[str, Any] = {
            "event": self.event, "delivery": self.delivery, "outcome": self.outcome,
            "provider": self.provider, "dry_run": self.dry_run,
            "issue": last.get("issue", self.issue), "decision": last.get("decision"),
            "plan": last.get("plan", []), "add_labels": last.get("add_labels", []),
            "remove_labels": last.get("remove_labels", []),
            "comment_action": last.get("comment_action", "none"),
            "comment": last.get("comment"), "issues": issues,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def _issue_json(ref: IssueRef, result: TriageResult) -> dict[str, Any]:
    out: dict[str, Any] = {"issue": str(ref), "outcome": result.outcome, "decision": None,
                           "plan": [], "add_labels": [], "remove_labels": [],
                           "comment_action": "none", "comment": None}
    if result.decision is not None and result.plan is not None:
        record = decision_record(result.decision, result.plan)
        decision = {k: record[k] for k in ("threats", "severity", "route")}
        out.update(decision=decision, plan=record["plan"], add_labels=record["add_labels"],
                   remove_labels=record["remove_labels"],
                   comment_action=record["comment_action"], comment=record["comment"])
    elif result.decision is not None:
        out["decision"] = {k: v for k, v in result.decision.to_json().items() if k != "id"}
    return out


def _decision_words(decision: dict[str, Any] | None) -> str:
    if not decision or not decision.get("threats"):
        return "not an AI/ML threat"
    cats = ", ".join(f"{t['category']} ({t['score']:.2f})" for t in decision["threats"])
    return (f"{cats}; severity {decision.get('severity') or '-'}; route "
            f"{'+'.join(decision.get('route') or []) or '-'}")


def format_text(report: EventReport) -> str:
    """Readable lines for a terminal: per issue the decision, labels and full comment text."""
    would = "would " if report.dry_run else ""
    head = f"{report.provider} {report.event}: {report.outcome}"
    if report.dry_run:
        head = f"{report.provider} {report.event}: dry run, nothing was written"
    if report.reason:
        head += f" ({report.reason})"
    lines = [head]
    for ref, result in report.results:
        item = _issue_json(ref, result)
        lines.append(f"{item['issue']}: {item['outcome']}")
        lines.append(f"  decision: {_decision_words(item['decision'])}")
        if item["add_labels"]:
            lines.append(f"  {would}add labels: {', '.join(item['add_labels'])}")
        if item["remove_labels"]:
            lines.append(f"  {would}remove labels: {', '.join(item['remove_labels'])}")
        extra = [p for p in item["plan"] if not p.startswith(("+label", "-label", "comment"))]
        for step in extra:
            lines.append(f"  {would}{step}")
        if item["comment"] is not None:
            lines.append(f"  {would}{item['comment_action']} the comment:")
            lines += [f"    | {line}" for line in item["comment"].splitlines()]
        elif not item["plan"] or item["plan"] == ["nothing to do"]:
            lines.append("  nothing to write")
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "-"


def _fence(body: str) -> str:
    """A fence longer than any run of backticks or tildes in ``body``."""
    longest = 0
    for line in body.splitlines():
        stripped = line.lstrip()
        longest = max(longest, len(stripped) - len(stripped.lstrip("~")))
    return "~" * max(4, longest + 1)


def markdown_summary(report: EventReport) -> str:
    """The job summary: a decision table per issue and the comment text (folded)."""
    mode = " (dry run: nothing was written)" if report.dry_run else ""
    lines = [f"### bugbar: {report.provider} `{_md_cell(report.event)}` → "
             f"**{report.outcome}**{mode}", ""]
    if report.reason:
        lines += [f"Ignored: {_md_cell(report.reason)}", ""]
    for ref, result in report.results:
        item = _issue_json(ref, result)
        decision = item["decision"] or {}
        threats = decision.get("threats") or []
        rows = [
            ("issue", f"`{_md_cell(item['issue'])}`"),
            ("outcome", item["outcome"]),
            ("category", ", ".join(f"`{t['category']}` ({t['score']:.2f})" for t in threats)
             or "not an AI/ML threat"),
            ("severity", decision.get("severity") or "-"),
            ("route", ", ".join(decision.get("route") or []) or "-"),
            ("labels to add" if report.dry_run else "labels added",
             ", ".join(f"`{x}`" for x in item["add_labels"]) or "-"),
            ("labels to remove" if report.dry_run else "labels removed",
             ", ".join(f"`{x}`" for x in item["remove_labels"]) or "-"),
            ("comment", item["comment_action"]),
        ]
        lines += ["| | |", "|---|---|"]
        lines += [f"| {name} | {_md_cell(str(value))} |" for name, value in rows]
        if item["comment"] is not None:
            fence = _fence(item["comment"])
            lines += ["", "<details><summary>Comment text</summary>", "",
                      f"{fence}markdown", item["comment"], fence, "", "</details>"]
        lines.append("")
    return "\n".join(lines) + "\n"


def append_file(path: str | Path, text: str) -> None:
    """Append to a file the runner created (``$GITHUB_STEP_SUMMARY``); OSError propagates."""
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(text)


def github_output(values: dict[str, str]) -> str:
    """``name<<DELIM`` blocks for ``$GITHUB_OUTPUT``; a random delimiter per value, so no value
    can end its block early and set another output."""
    out = []
    for name, value in values.items():
        delim = f"bugbar_{secrets.token_hex(8)}"
        out.append(f"{name}<<{delim}\n{value}\n{delim}\n")
    return "".join(out)


def write_outputs(path: str | Path, values: dict[str, str]) -> None:
    """Append step outputs to ``path`` (``$GITHUB_OUTPUT``)."""
    append_file(path, github_output(values))


def decision_output(report: EventReport) -> dict[str, str]:
    """The Action's outputs for one event: ``decision`` (JSON), ``outcome``."""
    return {"decision": json.dumps(report.to_json(), ensure_ascii=False),
            "outcome": report.outcome}
