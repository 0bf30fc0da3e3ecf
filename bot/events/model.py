"""The one normalised event every provider's webhook is turned into."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class EventKind(enum.Enum):
    """What happened, independent of the provider."""

    ISSUE_OPENED = "issue_opened"
    ISSUE_EDITED = "issue_edited"
    ISSUE_REOPENED = "issue_reopened"
    ISSUE_LABELED = "issue_labeled"
    """Only labels changed (added and/or removed): see ``labels_added``/``labels_removed``."""
    COMMENT_CREATED = "comment_created"
    COMMENT_EDITED = "comment_edited"
    PING = "ping"
    IGNORED = "ignored"
    """A delivery we accept (2xx) but do nothing with: other events, PRs, work items."""


class WebhookError(Exception):
    """A delivery that must be refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class IssueRef:
    """Where an issue lives: provider, project scope and number/key.

    ``scope`` is ``owner/repo`` (GitHub), ``group/project`` path (GitLab) or the project key
    (Jira). ``number`` is the issue number (GitHub/GitLab ``iid``); for Jira it is the numeric
    part and ``key`` holds ``PROJ-123``.
    """

    provider: str
    scope: str
    number: int
    key: str = ""

    def __str__(self) -> str:
        if self.key:
            return f"{self.provider}:{self.key}"
        return f"{self.provider}:{self.scope}#{self.number}"


@dataclass(frozen=True)
class Event:
    """One webhook delivery, normalised. Carries no secrets; ``payload`` is the parsed JSON."""

    provider: str
    delivery_id: str
    kind: EventKind
    name: str
    """The provider's own event name (``issues``, ``Note Hook``, ``jira:issue_updated``)."""
    action: str = ""
    issue: IssueRef | None = None
    actor: str = ""
    actor_is_bot: bool = False
    actor_id: str = ""
    """Provider user id (GitLab numeric id, Jira accountId); permission checks may need it."""
    comment_id: str = ""
    comment_body: str = ""
    previous_comment_body: str | None = None
    """For edited comments: the text before the edit, when the provider sends it."""
    installation_id: int | None = None
    confidential: bool = False
    """The text must not be quoted in public: a confidential/restricted issue, or an internal
    (GitLab internal note, Jira restricted or non-public comment) comment."""
    changed_fields: tuple[str, ...] = ()
    """What the provider says changed, by its own names, sorted: GitHub/GitLab ``changes`` keys,
    Jira changelog ``field`` values (Jira lists the initial fields on creation too); empty when
    not sent."""
    labels_added: tuple[str, ...] = ()
    """Labels this change added, by the tracker's own names (GitHub ``labeled``, GitLab
    ``changes.labels``, Jira's ``labels`` changelog item); empty when not sent."""
    labels_removed: tuple[str, ...] = ()
    """Labels this change removed, the same way."""
    ignore_reason: str = ""
    """For ``IGNORED`` events: why, in a few words (``pull request``, ``system note``)."""
    payload: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
