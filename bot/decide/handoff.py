"""The security hand-off: what a tracker really does for issues that need protecting or people.

A tracker describes its hand-off under the current configuration as a :class:`HandOff`; the
planner reads it, so a plan only lists steps the tracker will perform. What was done is kept
as a :class:`HandOffState` (in the store and in the comment's marker), so a redelivery, an edit
or a sweep never does a step twice. A refused protect step is tried again at most once an hour
per issue (:data:`RETRY_REFUSED_AFTER`), or at once on ``/triage retry-handoff``.
:func:`handoff_lines` renders the comment's hand-off section from both; it never quotes the
issue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_ESCALATE_ROUTES = frozenset({"ssirp"})

RETRY_REFUSED_AFTER = 3600.0
"""Seconds after a refusal before a triage run of the issue tries the protect step again (a
maintainer may have fixed the token's permissions; an hour keeps edits from hammering)."""


def retry_due(refused: str, refused_at: float, now: float) -> bool:
    """A refused protect step may be tried again now (unknown time: yes, once, then it is
    recorded)."""
    return bool(refused) and now - refused_at >= RETRY_REFUSED_AFTER


@dataclass(frozen=True)
class HandOff:
    """A tracker's hand-off capabilities for one issue, under its configuration."""

    protect: str = ""
    """What the protect step does ("lock the conversation"); empty: the tracker will not."""
    protect_hides: bool = False
    """The protect step takes the issue out of public view (confidential, security level,
    moved to a private repository): a dry-run report withholds its title."""
    protect_last: bool = False
    """Run the protect step after the comment and labels (a transfer moves the issue away)."""
    escalate: str = ""
    """What the escalate write does ("assign alice"); empty: no write besides mentions."""
    mentions: tuple[str, ...] = ()
    """Users/teams mentioned in the comment for escalated routes (``@acme/ml-security``)."""
    escalate_routes: frozenset[str] = DEFAULT_ESCALATE_ROUTES
    """The routes that need people."""
    private_report_url: str = ""
    """Where reporters send details privately (GitHub private vulnerability reporting)."""
    manual_protect: str = ""
    """What a maintainer should do by hand when the protect step is refused."""

    @property
    def escalates(self) -> bool:
        """True when escalation does anything at all (a mention or a write)."""
        return bool(self.escalate or self.mentions)


@dataclass(frozen=True)
class HandOffState:
    """What the bot already did for the issue (from the store, else from its marker)."""

    protected: str = ""
    """The protect step's result (``locked``, ``advisory GHSA-…``, ``confidential``)."""
    refused: str = ""
    """The tracker refused the protect step (403/404): the reason, shown with the manual step."""
    escalated: bool = False
    """The escalation (mention and/or write) was done: never repeated, the mention stays."""
    refused_at: float = field(default=0.0, compare=False)
    """When the last refusal happened (the store's clock; 0: unknown, e.g. only the marker
    knows). Kept in the store, not the marker, and not compared: it decides when the step
    may be tried again, never what the comment says."""

    def to_json(self) -> dict[str, object]:
        """Short keys for the marker (only what is set)."""
        out: dict[str, object] = {}
        if self.protected:
            out["p"] = self.protected
        if self.refused:
            out["r"] = self.refused
        if self.escalated:
            out["e"] = 1
        return out

    @classmethod
    def from_json(cls, data: object) -> HandOffState:
        """Read :meth:`to_json` back; anything malformed reads as nothing done."""
        if not isinstance(data, dict):
            return cls()
        protected = data.get("p")
        refused = data.get("r")
        return cls(protected=protected[:200] if isinstance(protected, str) else "",
                   refused=refused[:200] if isinstance(refused, str) else "",
                   escalated=bool(data.get("e")))


@dataclass(frozen=True)
class HandOffView:
    """What the comment shows about the hand-off."""

    mentions: tuple[str, ...] = ()
    state: HandOffState = field(default_factory=HandOffState)
    private_report_url: str = ""
    manual_protect: str = ""


def mention_line(view: HandOffView) -> list[str]:
    """The mention, once escalated: written in the same words on every later edit (also when
    the decision becomes "no threat"), so an edit never adds it anew."""
    if view.mentions and view.state.escalated:
        return [f"cc {' '.join(view.mentions)} (security contacts for reports that need "
                "people)."]
    return []


def handoff_lines(view: HandOffView) -> list[str]:
    """The comment's hand-off paragraph(s); empty when there is nothing to say."""
    lines = mention_line(view)
    protected = view.state.protected
    if protected == "locked":
        lines.append("The conversation is locked so that no further exploit details are "
                     "posted in public; maintainers can still comment.")
    elif protected.startswith("advisory "):
        lines.append(f"A draft security advisory ({protected.split(' ', 1)[1]}) is open for "
                     "maintainers to continue privately.")
    if view.state.refused:
        todo = view.manual_protect or "take this report out of public view by hand"
        lines.append(f"bugbar could not do this itself ({view.state.refused}); a maintainer "
                     f"should {todo}.")
    return lines
