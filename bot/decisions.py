"""``bugbar decisions``: the decision log as people read it (decision, plan, comment text)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.store import DecisionRecord

_PROVIDERS = ("github", "gitlab", "jira")
_JIRA_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-\d+$")
_KEY = re.compile(r"^(?:(?:github|gitlab):[^\s#/]+(?:/[^\s#/]+)+#\d+|jira:[A-Z][A-Z0-9_]*-\d+)$")


def issue_key(text: str) -> str:
    """The log's key for an issue: ``github:owner/repo#12``, ``gitlab:g/p#3``, ``jira:KEY-7``.

    Without a provider prefix, ``KEY-7`` is taken as Jira and ``owner/repo#12`` as GitHub.
    Raises ``ValueError`` for anything else (e.g. ``owner/repo`` without a number), which
    could only ever match nothing.
    """
    spec = text.strip()
    key = spec if spec.split(":", 1)[0] in _PROVIDERS else (
        f"jira:{spec}" if _JIRA_KEY.match(spec) else f"github:{spec}")
    if not _KEY.match(key):
        raise ValueError(f"{text!r} is not an issue: use github:owner/repo#12, "
                         "gitlab:group/project#3 or jira:KEY-7")
    return key


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _decision_line(data: dict[str, Any]) -> str:
    threats = data.get("threats") or []
    if not threats:
        return "not an AI/ML threat"
    cats = ", ".join(f"{t.get('category')} ({float(t.get('score') or 0):.2f})" for t in threats)
    route = "+".join(data.get("route") or []) or "-"
    return f"{cats}; severity {data.get('severity') or '-'}; route {route}"


def format_decisions(records: Sequence[DecisionRecord], *, with_comment: bool = True) -> str:
    """Readable blocks, newest first: header, decision, plan and (optionally) the comment."""
    out: list[str] = []
    for rec in records:
        try:
            data = json.loads(rec.decision_json)
        except json.JSONDecodeError:
            data = {}
        mode = "dry run (nothing written)" if rec.dry_run else "applied"
        delivery = f"  delivery {rec.delivery_id}" if rec.delivery_id else ""
        out.append(f"#{rec.id}  {_when(rec.recorded_at)}  {rec.key}  {mode}{delivery}")
        out.append(f"  decision: {_decision_line(data)}")
        out.append(f"  plan: {'; '.join(data.get('plan') or ['nothing to do'])}")
        comment = data.get("comment")
        if with_comment and isinstance(comment, str):
            action = data.get("comment_action") or "write"
            out.append(f"  comment ({action}):")
            out += [f"    | {line}" for line in comment.splitlines()]
        elif with_comment and "comment" not in data:
            out.append("  comment: not recorded (logged by an older bugbar)")
        out.append("")
    return "\n".join(out)
