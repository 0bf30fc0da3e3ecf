"""Wiring: turn a normalised Event into work on the right tracker, through the handlers.

This is the thin router (bedevere's ``__main__``): it knows which handler serves which event
and which tracker serves which provider, and nothing about how either does its job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.decide.classify import Classifier
from bot.decide.plan import label_change_matters
from bot.events.model import Event, EventKind, IssueRef
from bot.handlers.triage import (
    DecisionMetrics,
    ResultListener,
    Triage,
    log_gone,
    refusal_retry_due,
)
from bot.providers.base import IssueGone, Tracker
from bot.providers.recording import DryRunTracker
from bot.store_base import StateStore as Store

log = logging.getLogger("bugbar.app")

ISSUE_EVENTS = {EventKind.ISSUE_OPENED, EventKind.ISSUE_EDITED, EventKind.ISSUE_REOPENED,
                EventKind.ISSUE_LABELED}
COMMENT_EVENTS = {EventKind.COMMENT_CREATED, EventKind.COMMENT_EDITED}

TrackerFor = Callable[[IssueRef, int | None], Tracker]
"""Give the tracker for an issue (``installation_id`` for GitHub Apps, else None)."""


class CommentHandler(Protocol):
    """The slash-command handler, as the router sees it."""

    def handle(self, tracker: Tracker, event: Event) -> str:
        """Run the commands in a comment event; returns the outcome."""


@dataclass
class Bot:
    """Everything needed to process events: classifier, store, trackers, handlers."""

    classifier: Classifier
    store: Store
    trackers: Mapping[str, TrackerFor]
    dry_run: bool = False
    metrics: DecisionMetrics | None = None
    commands: CommentHandler | None = None
    on_result: ResultListener | None = None
    """Told about every triage run (``handle-event`` prints the decision and plan)."""
    triage: Triage = field(init=False)

    def __post_init__(self) -> None:
        self.triage = Triage(self.classifier, self.store, dry_run=self.dry_run,
                             metrics=self.metrics, on_result=self.on_result)

    def tracker(self, ref: IssueRef, installation_id: int | None = None) -> Tracker:
        """The tracker for ``ref``; in dry-run mode one that records instead of writing."""
        factory = self.trackers.get(ref.provider)
        if factory is None:
            raise LookupError(f"no credentials configured for {ref.provider}")
        tracker = factory(ref, installation_id)
        return DryRunTracker(tracker) if self.dry_run else tracker

    def process(self, event: Event) -> str:
        """Do the work for one event; returns an outcome for logs and metrics."""
        if event.kind in (EventKind.PING, EventKind.IGNORED) or event.issue is None:
            return "ignored"
        if event.actor_is_bot:
            # Bots, including this one: our own label and comment writes come back as events.
            return "ignored-bot"
        if (event.kind is EventKind.ISSUE_LABELED
                and not label_change_matters(self.classifier, event.labels_added,
                                             event.labels_removed)
                and not refusal_retry_due(self.store.get_issue_state(str(event.issue)),
                                          self.store.now())):
            # No rule reads these labels: the decision cannot move, so no request at all
            # (unless a refused hand-off step is due another try: that needs a triage run).
            return "ignored-label"
        tracker = self.tracker(event.issue, event.installation_id)
        if event.actor and _from_self(event, tracker.bot_identity()):
            return "ignored-self"
        if event.kind in ISSUE_EVENTS:
            return self.triage.run(tracker, event.issue, delivery_id=event.delivery_id).outcome
        if event.kind in COMMENT_EVENTS:
            if self.commands is None:
                return "ignored"
            try:
                return self.commands.handle(tracker, event)
            except IssueGone as exc:  # deleted after the comment was written: nothing to do
                log_gone(exc)
                return "gone"
        return "ignored"


def _from_self(event: Event, identity: str) -> bool:
    """Did the bot itself cause ``event`` (its own label and comment writes come back)?

    Jira Cloud names the bot by ``accountId``, which a payload may carry beside an old-style
    ``name``: the event's user id is compared too there (elsewhere ids are numbers, never a
    login)."""
    if not identity:
        return False
    return event.actor == identity or (event.provider == "jira" and event.actor_id == identity)
