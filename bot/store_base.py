"""The Store contract every state backend keeps, and :func:`open_store`, the one way to open one.

Two backends implement :class:`StateStore`:

* :class:`bot.store.Store` — one SQLite file (the embedded default, ``BUGBAR_STATE=bugbar.db``
  or ``sqlite:///path/bugbar.db``);
* :class:`bot.store_pg.PgStore` — PostgreSQL (``BUGBAR_STATE=postgresql://…``), for several
  replicas of ``bugbar serve`` sharing one inbox. Needs the ``bugbar[postgres]`` extra.

The contract (tests/test_store_contract.py runs the same tests against both):

* ``put_delivery`` returns only once the delivery is durable; a ``(provider, delivery_id)``
  seen before (in any state, until pruned) is refused as a duplicate;
* ``claim_next`` leases the oldest due delivery to one worker; deliveries of one issue
  (``issue_key``) are never under two live claims at once; ``renew_lease`` is the heartbeat;
  an expired lease makes the delivery claimable again, ``max_attempts`` expiries make it dead;
* ``complete`` / ``fail`` (retry at ``now + retry_in`` or dead), ``dead_letters``,
  ``retry_dead``, ``drop_dead``, ``depth``, ``oldest_pending_age``, ``stats``, ``prune``;
* issue state (atomic ``update_issue_state``), checkpoints and their leases (one sweep per
  checkpoint at a time), ETags, the decisions log;
* ``try_lead`` / ``resign``: a named leader lock, released when its holder dies;
* ``record_correction`` / ``corrections``: maintainers' /triage corrections as labelled examples.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

from bot.store import Correction, DeadLetter, DecisionRecord, Delivery, IssueState

__all__ = [
    "POSTGRES_EXTRA_HINT",
    "StateStore",
    "is_postgres_url",
    "open_store",
    "sqlite_path",
]

POSTGRES_EXTRA_HINT = (
    "PostgreSQL state needs the postgres extra: pip install 'bugbar[postgres]'"
)


@runtime_checkable
class StateStore(Protocol):
    """What the server, the handlers and the sweep need from durable state."""

    def close(self) -> None:
        """Release connections (and leader locks); the store cannot be used afterwards."""

    def __enter__(self) -> Self:
        """``with open_store(...) as store:`` closes it at the end."""

    def __exit__(self, *exc: object) -> None:
        """Close."""

    def schema_version(self) -> int:
        """The schema version recorded in the database."""

    def now(self) -> float:
        """The store's clock (seconds since the epoch; injectable, so tests move time)."""

    # inbox
    def put_delivery(self, provider: str, delivery_id: str, event_name: str,
                     headers_subset: dict[str, str], body: bytes,
                     issue_key: str | None = None) -> bool:
        """Store durably; False for a duplicate ``(provider, delivery_id)``."""

    def claim_next(self, worker_id: str, lease_seconds: float = 60, *,
                   max_attempts: int = 5) -> Delivery | None:
        """Lease the oldest due delivery whose issue has no live claim."""

    def renew_lease(self, delivery_pk: int, worker_id: str, lease_seconds: float) -> bool:
        """Extend ``worker_id``'s claim; False if it no longer holds it."""

    def release_dead_claims(self, is_alive: Callable[[str], bool]) -> int:
        """Make claims of dead workers claimable now; return how many."""

    def complete(self, delivery_pk: int, outcome: str) -> None:
        """Mark done (body dropped, id kept for duplicate detection)."""

    def fail(self, delivery_pk: int, error: str, retry_in: float, max_attempts: int = 5) -> str:
        """Back to pending at ``now + retry_in``, or dead; returns the new state."""

    def dead_letters(self) -> list[DeadLetter]:
        """Deliveries that ran out of attempts, oldest first."""

    def retry_dead(self, pk: int | None = None) -> int:
        """Requeue one (or every) dead delivery with fresh attempts."""

    def drop_dead(self, pk: int | None = None) -> int:
        """Give up one (or every) dead delivery: done, outcome ``dropped``, id kept."""

    def depth(self) -> int:
        """Pending deliveries."""

    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest pending delivery arrived."""

    def stats(self) -> dict[str, int]:
        """Delivery counts by state."""

    def prune(self, older_than_seconds: float) -> int:
        """Delete deliveries done longer ago than that."""

    # issue state
    def get_issue_state(self, key: str) -> IssueState | None:
        """The stored state for one issue."""

    def save_issue_state(self, state: IssueState) -> None:
        """Insert or replace."""

    def update_issue_state(self, key: str, mutate: Callable[[IssueState], None]) -> IssueState:
        """Atomic read-modify-write."""

    # checkpoints
    def save_checkpoint(self, name: str, data: dict[str, Any]) -> None:
        """Store (replace) a checkpoint."""

    def load_checkpoint(self, name: str) -> dict[str, Any] | None:
        """A saved checkpoint, or None."""

    def clear_checkpoint(self, name: str) -> None:
        """Forget a checkpoint."""

    def claim_checkpoint(self, name: str, owner: str, lease_seconds: float) -> str | None:
        """Take the lease on a sweep checkpoint; None on success, else its holder."""

    def renew_checkpoint(self, name: str, owner: str, lease_seconds: float) -> bool:
        """Extend ``owner``'s checkpoint lease; False if it lost it."""

    def release_checkpoint(self, name: str, owner: str) -> None:
        """Give a checkpoint lease back."""

    # HTTP cache
    def get_etag(self, url: str) -> tuple[str, str] | None:
        """``(etag, payload)`` for ``url``."""

    def put_etag(self, url: str, etag: str, payload: str) -> None:
        """Cache an ETag."""

    # decisions
    def record_decision(self, key: str, delivery_id: str | None, decision_json: str,
                        dry_run: bool) -> int:
        """Append to the decisions log."""

    def recent_decisions(self, limit: int = 50, key: str | None = None) -> list[DecisionRecord]:
        """Newest first."""

    # corrections (issue 11)
    def record_correction(self, correction: Correction) -> None:
        """Keep a maintainer's /triage correction as a labelled example (latest per issue)."""

    def corrections(self) -> list[Correction]:
        """Every kept correction, oldest first."""

    # leadership
    def try_lead(self, name: str) -> bool:
        """Take or keep the leader lock ``name``; True while held."""

    def resign(self, name: str) -> None:
        """Give the leader lock up."""


def is_postgres_url(target: str) -> bool:
    """True for ``postgresql://…`` and ``postgres://…`` state locations."""
    return target.startswith(("postgresql://", "postgres://"))


def sqlite_path(target: str) -> Path:
    """The file behind a path or a ``sqlite:`` URL (``sqlite:///abs.db``, ``sqlite:rel.db``)."""
    if target.startswith("sqlite:"):
        rest = target[len("sqlite:"):]
        if rest.startswith("//"):
            rest = rest[2:]  # sqlite:///abs/path -> /abs/path; sqlite://rel -> rel
        if not rest or rest.endswith("/"):
            raise ValueError("sqlite: needs a file, e.g. sqlite:///var/lib/bugbar/bugbar.db")
        return Path(rest)
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", target)
    if scheme:
        # Not a file name: "mysql://db/x" would otherwise become the folders ./mysql:/db.
        raise ValueError(f"{scheme.group(1)}:// is not a state bugbar can use: give a SQLite "
                         "file (bugbar.db, sqlite:///path/bugbar.db) or a postgresql:// URL")
    return Path(target)


def open_store(target: str | Path, clock: Callable[[], float] | None = None,
               **options: Any) -> StateStore:
    """Open the state named by ``BUGBAR_STATE``: a PostgreSQL URL or a SQLite file.

    Raises :class:`bot.store.StoreError` when the database cannot be used, ``OSError`` for a
    file that cannot be created, ``ValueError`` for a malformed location. ``options`` go to the
    PostgreSQL store (e.g. ``max_connections``).
    """
    text = str(target)
    if is_postgres_url(text):
        try:
            from bot.store_pg import PgStore
        except ImportError as exc:
            from bot.store import StoreError

            raise StoreError(POSTGRES_EXTRA_HINT) from exc
        if clock is None:
            return PgStore(text, **options)
        return PgStore(text, clock=clock, **options)
    from bot.store import Store

    path = sqlite_path(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Store(path) if clock is None else Store(path, clock=clock)
