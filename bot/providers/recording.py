"""Dry run: a tracker that reads through to the real one and records writes instead."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from bot.events.model import IssueRef
from bot.providers.base import (
    Access,
    Comment,
    HandOff,
    HandOffRequest,
    IssueSnapshot,
    ListPage,
    Tracker,
)

log = logging.getLogger("bugbar.dry_run")


class DryRunTracker:
    """Wraps a tracker: every read goes through, every write is logged and recorded only."""

    def __init__(self, inner: Tracker) -> None:
        self.inner = inner
        self.provider = inner.provider
        self.writes: list[str] = []

    def _record(self, ref: IssueRef, what: str) -> None:
        line = f"{ref}:{what}"
        self.writes.append(line)
        log.info("dry run: would write", extra={"write": line})

    def bot_identity(self) -> str:
        """The wrapped tracker's identity."""
        return self.inner.bot_identity()

    def get_issue(self, ref: IssueRef) -> IssueSnapshot:
        """Read through."""
        return self.inner.get_issue(ref)

    def add_labels(self, ref: IssueRef, labels: list[str]) -> None:
        """Record only."""
        for label in labels:
            self._record(ref, f"+label {label}")

    def remove_label(self, ref: IssueRef, label: str) -> None:
        """Record only."""
        self._record(ref, f"-label {label}")

    def list_comments(self, ref: IssueRef) -> Iterator[Comment]:
        """Read through."""
        return self.inner.list_comments(ref)

    def find_bot_comment(self, ref: IssueRef) -> Comment | None:
        """Read through."""
        return self.inner.find_bot_comment(ref)

    def create_comment(self, ref: IssueRef, body: str) -> Comment:
        """Record only; returns a placeholder comment."""
        self._record(ref, "comment+")
        return Comment(id="dry-run", body=body, author=self.bot_identity(), author_is_bot=True)

    def edit_comment(self, ref: IssueRef, comment_id: str, body: str) -> None:
        """Record only."""
        self._record(ref, f"comment~ {comment_id}")

    def react(self, ref: IssueRef, comment_id: str, reaction: str) -> None:
        """Record only."""
        self._record(ref, f"reaction+ {comment_id} {reaction}")

    def permission(self, ref: IssueRef, user: str) -> Access:
        """Read through."""
        return self.inner.permission(ref, user)

    def list_issues(
        self, scope: str, *, state: str, since: datetime | None, cursor: str | None
    ) -> ListPage:
        """Read through."""
        return self.inner.list_issues(scope, state=state, since=since, cursor=cursor)

    def handoff(self, ref: IssueRef, *, protect: bool) -> HandOff:
        """Read through: the dry run plans what the real tracker would do."""
        return self.inner.handoff(ref, protect=protect)

    def protect(self, ref: IssueRef, request: HandOffRequest) -> str | None:
        """Record only."""
        self._record(ref, "protect")
        return None

    def escalate(self, ref: IssueRef, summary: str) -> str | None:
        """Record only."""
        self._record(ref, "escalate")
        return None
