"""The narrow tracker interface the handlers use, and the value types it returns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.decide.handoff import HandOff
from bot.decide.model import Access
from bot.events.model import IssueRef

__all__ = ["Access", "BotCommentIndex", "Comment", "HandOff", "HandOffRefused", "HandOffRequest",
           "IssueGone", "IssueSnapshot", "ListPage", "Tracker"]


@dataclass(frozen=True)
class IssueSnapshot:
    """An issue as fetched from the tracker (fresh, not from a webhook payload)."""

    ref: IssueRef
    title: str
    body: str
    labels: tuple[str, ...]
    state: str = "open"
    author: str = ""
    updated_at: datetime | None = None
    is_pull_request: bool = False
    confidential: bool = False
    url: str = ""
    comment_count: int | None = None
    """Comments on the issue as the listing reported them (None: the tracker did not say).
    Zero means there is no bot comment to look for."""
    created_at: datetime | None = None
    bot_comment: Comment | None = None
    """The bot's comment as the listing showed it (Jira embeds comments and the bugbar
    property in search results); meaningful only with ``bot_comment_known``."""
    bot_comment_known: bool = False


@dataclass(frozen=True)
class Comment:
    """A comment on an issue."""

    id: str
    body: str
    author: str
    author_is_bot: bool = False


@dataclass(frozen=True)
class ListPage:
    """One page of a backlog listing, with the cursor to resume from."""

    issues: list[IssueSnapshot]
    next_cursor: str | None
    not_modified: bool = False
    etag: str | None = None


@dataclass(frozen=True)
class BotCommentIndex:
    """The bot's marked comments in one repository, from a bulk read of its comments.

    Optional tracker method ``bot_comment_index(scope, *, since, max_pages)`` returns it
    (GitHub: the repository-wide comment stream). It covers every issue created at or after
    ``since``: their comments were all written, hence last updated, after it.
    """

    comments: dict[int, Comment]
    """Issue number → the first comment by the bot carrying the marker."""
    since: datetime | None
    complete: bool
    """False when ``max_pages`` stopped the read: then only ``pages`` is worth reading."""
    pages: int | None
    """How many requests the whole read takes (None: unknown)."""


@dataclass(frozen=True)
class HandOffRequest:
    """What a protect/escalate step may tell the tracker: the triage, never the issue text."""

    category: str = ""
    category_title: str = ""
    severity: str = ""
    routes: tuple[str, ...] = ()
    issue_url: str = ""


class HandOffRefused(Exception):  # noqa: N818 - a refusal, not a bug
    """The tracker refused a hand-off step (403/404): not retried in this run; the comment
    says what a maintainer should do by hand, and triage tries again an hour later or on
    ``/triage retry-handoff``. ``reason`` is short and safe to show in public."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IssueGone(Exception):  # noqa: N818 - a definite answer, not a bug
    """The issue was deleted (an admin removed spam, say) while its project is still readable.

    A definite answer, never retried: the delivery ends with the outcome ``gone``. Losing
    access to the project itself (401, or a 403/404 on the project) is NOT this: it stays an
    error, so it reaches dead letters and readiness. Raised by :meth:`Tracker.get_issue`.
    """

    def __init__(self, ref: IssueRef, reason: str) -> None:
        super().__init__(f"{ref}: {reason}")
        self.ref = ref
        self.reason = reason


class Tracker(Protocol):
    """What the handlers need from a tracker. Each adapter implements exactly this."""

    provider: str

    def bot_identity(self) -> str:
        """The login/name the bot acts as (to recognise its own comments)."""
        ...

    def get_issue(self, ref: IssueRef) -> IssueSnapshot:
        """Fetch the issue fresh (webhook payloads go stale). Raises :class:`IssueGone` when
        the tracker says the issue was deleted and its project is still readable."""
        ...

    def add_labels(self, ref: IssueRef, labels: list[str]) -> None:
        """Add labels, creating them on the project when the tracker needs that."""
        ...

    def remove_label(self, ref: IssueRef, label: str) -> None:
        """Remove one label; a label that is already gone is not an error."""
        ...

    def list_comments(self, ref: IssueRef) -> Iterator[Comment]:
        """Every comment on the issue, oldest first."""
        ...

    def find_bot_comment(self, ref: IssueRef) -> Comment | None:
        """The bot's own triage comment, body including its marker, or None.

        GitHub/GitLab: the first comment by the bot's identity carrying the marker. Jira: the
        comment named by the issue entity property, with the marker rebuilt from the property.
        """
        ...

    def create_comment(self, ref: IssueRef, body: str) -> Comment:
        """Post a new comment. A body carrying the bot marker is the bot's triage comment."""
        ...

    def edit_comment(self, ref: IssueRef, comment_id: str, body: str) -> None:
        """Replace a comment's text."""
        ...

    def react(self, ref: IssueRef, comment_id: str, reaction: str) -> None:
        """Acknowledge a command quietly (GitHub/GitLab reaction; Jira: no-op)."""
        ...

    def permission(self, ref: IssueRef, user: str) -> Access:
        """The user's access on the project; raises on failure (callers fail closed)."""
        ...

    def list_issues(
        self, scope: str, *, state: str, since: datetime | None, cursor: str | None
    ) -> ListPage:
        """One page (100 issues) of the backlog, newest-updated order not required."""
        ...

    def handoff(self, ref: IssueRef, *, protect: bool) -> HandOff:
        """What this tracker will really do for ``ref`` under its configuration: the planner
        lists only these steps. ``protect`` says the issue needs protecting, so the adapter
        may spend a request to find out whether it would (GitLab: project visibility)."""
        ...

    def protect(self, ref: IssueRef, request: HandOffRequest) -> str | None:
        """Take a critical/ssirp issue out of public view where configured (GitLab
        confidential, Jira security level, GitHub lock/advisory/transfer); returns what was
        done, or None. Raises :class:`HandOffRefused` on a 403/404."""
        ...

    def escalate(self, ref: IssueRef, summary: str) -> str | None:
        """Hand an issue on a route that needs people to the security team where configured
        (Jira: a linked issue / assignee / watchers; GitHub/GitLab: assignees; mentions are in
        the comment); returns what was done, or None."""
        ...
