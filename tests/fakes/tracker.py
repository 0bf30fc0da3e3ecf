"""An in-memory tracker for handler tests; records writes as ``github:o/r#12:+label x``.

One shared fake (prow's fakegithub), so every handler test speaks the same language. The
real-HTTP fakes in this folder test the provider adapters; this one tests decisions.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from bot.decide.render import MARKER_PREFIX
from bot.events.model import IssueRef
from bot.providers.base import (
    Access,
    Comment,
    HandOff,
    HandOffRefused,
    HandOffRequest,
    IssueSnapshot,
    ListPage,
)


@dataclass
class _Issue:
    snapshot: IssueSnapshot
    comments: list[Comment] = field(default_factory=list)


class MemoryTracker:
    """Implements the Tracker protocol over dicts; ``writes`` lists every write in order."""

    def __init__(self, provider: str = "github", identity: str = "bugbar[bot]") -> None:
        self.provider = provider
        self.identity = identity
        self.issues: dict[str, _Issue] = {}
        self.permissions: dict[str, Access] = {}
        self.writes: list[str] = []
        self.reads = 0
        self.fail_permission = False
        self.protect_result: str | None = None
        self.escalate_result: str | None = None
        self.mentions: tuple[str, ...] = ()
        self.refuse_protect = ""
        """Set to a reason: protect raises HandOffRefused with it."""
        self.protect_requests: list[HandOffRequest] = []
        self._ids = itertools.count(1000)

    # -- test helpers -------------------------------------------------------------
    def add_issue(
        self, scope: str, number: int, title: str, body: str, labels: tuple[str, ...] = (),
        *, pull_request: bool = False, confidential: bool = False,
    ) -> IssueRef:
        """Create an issue and return its ref."""
        ref = IssueRef(self.provider, scope, number)
        self.issues[str(ref)] = _Issue(IssueSnapshot(
            ref, title, body, tuple(labels), updated_at=datetime(2026, 1, 1, tzinfo=UTC),
            is_pull_request=pull_request, confidential=confidential))
        return ref

    def edit(self, ref: IssueRef, **changes: object) -> None:
        """Change an issue as a human would (title, body, labels)."""
        item = self.issues[str(ref)]
        item.snapshot = replace(item.snapshot, **changes)  # type: ignore[arg-type]

    def labels(self, ref: IssueRef) -> tuple[str, ...]:
        """The issue's labels now."""
        return self.issues[str(ref)].snapshot.labels

    def comments(self, ref: IssueRef) -> list[Comment]:
        """The issue's comments now."""
        return self.issues[str(ref)].comments

    def add_human_comment(self, ref: IssueRef, author: str, body: str) -> Comment:
        """A comment by someone else."""
        comment = Comment(str(next(self._ids)), body, author)
        self.issues[str(ref)].comments.append(comment)
        return comment

    # -- Tracker protocol ---------------------------------------------------------------
    def bot_identity(self) -> str:
        """The bot's login."""
        return self.identity

    def get_issue(self, ref: IssueRef) -> IssueSnapshot:
        """Fresh copy of the issue."""
        self.reads += 1
        return self.issues[str(ref)].snapshot

    def add_labels(self, ref: IssueRef, labels: list[str]) -> None:
        """Add labels (no duplicates)."""
        item = self.issues[str(ref)]
        new = [lbl for lbl in labels if lbl not in item.snapshot.labels]
        item.snapshot = replace(item.snapshot, labels=item.snapshot.labels + tuple(new))
        self.writes += [f"{ref}:+label {lbl}" for lbl in labels]

    def remove_label(self, ref: IssueRef, label: str) -> None:
        """Remove a label if present."""
        item = self.issues[str(ref)]
        item.snapshot = replace(
            item.snapshot, labels=tuple(x for x in item.snapshot.labels if x != label))
        self.writes.append(f"{ref}:-label {label}")

    def list_comments(self, ref: IssueRef) -> Iterator[Comment]:
        """All comments, oldest first."""
        self.reads += 1
        return iter(list(self.issues[str(ref)].comments))

    def find_bot_comment(self, ref: IssueRef) -> Comment | None:
        """The bot's marked comment."""
        for comment in self.list_comments(ref):
            if comment.author == self.identity and MARKER_PREFIX in comment.body:
                return comment
        return None

    def create_comment(self, ref: IssueRef, body: str) -> Comment:
        """Post as the bot."""
        comment = Comment(str(next(self._ids)), body, self.identity, author_is_bot=True)
        self.issues[str(ref)].comments.append(comment)
        self.writes.append(f"{ref}:comment+ {comment.id}")
        return comment

    def edit_comment(self, ref: IssueRef, comment_id: str, body: str) -> None:
        """Replace a comment's body."""
        comments = self.issues[str(ref)].comments
        for i, c in enumerate(comments):
            if c.id == comment_id:
                comments[i] = replace(c, body=body)
        self.writes.append(f"{ref}:comment~ {comment_id}")

    def react(self, ref: IssueRef, comment_id: str, reaction: str) -> None:
        """Record a reaction."""
        self.writes.append(f"{ref}:reaction+ {comment_id} {reaction}")

    def permission(self, ref: IssueRef, user: str) -> Access:
        """Configured access; raises when told to fail."""
        if self.fail_permission:
            raise RuntimeError("permission check failed")
        return self.permissions.get(user, Access.NONE)

    def list_issues(
        self, scope: str, *, state: str, since: datetime | None, cursor: str | None
    ) -> ListPage:
        """Pages of 100 in number order."""
        self.reads += 1
        items = sorted((i.snapshot for i in self.issues.values() if i.snapshot.ref.scope == scope),
                       key=lambda s: s.ref.number)
        start = int(cursor or 0)
        page = items[start:start + 100]
        nxt = str(start + 100) if start + 100 < len(items) else None
        return ListPage(page, nxt)

    def handoff(self, ref: IssueRef, *, protect: bool) -> HandOff:
        """What the configured results say this tracker does."""
        return HandOff(
            protect="make confidential" if (self.protect_result or self.refuse_protect) else "",
            protect_hides=True,
            escalate="link a security issue" if self.escalate_result else "",
            mentions=self.mentions,
            manual_protect="make the issue confidential",
        )

    def protect(self, ref: IssueRef, request: HandOffRequest) -> str | None:
        """Record and return the configured result."""
        self.protect_requests.append(request)
        if self.refuse_protect:
            raise HandOffRefused(self.refuse_protect)
        if self.protect_result:
            item = self.issues[str(ref)]
            item.snapshot = replace(item.snapshot, confidential=True)
            self.writes.append(f"{ref}:protect")
        return self.protect_result

    def escalate(self, ref: IssueRef, summary: str) -> str | None:
        """Record and return the configured result."""
        if self.escalate_result:
            self.writes.append(f"{ref}:escalate")
        return self.escalate_result
