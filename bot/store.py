"""Durable state for bugbar: webhook inbox, per-issue state, checkpoints, HTTP cache, decisions.

Everything lives in one SQLite file in WAL mode with ``synchronous=FULL``, so a delivery for
which :meth:`Store.put_delivery` has returned is on disk and survives ``kill -9`` (and power
loss, as far as the file system honours ``fsync``). That is what lets the web layer answer 2xx
only after the delivery is stored (the README's "Reliability").

Threads: each thread gets its own connection (created lazily, closed when the thread ends or
when :meth:`Store.close` is called). Every write runs in ``BEGIN IMMEDIATE`` so that claiming a
delivery is atomic across threads *and* processes sharing the file; ``busy_timeout`` makes
writers wait for each other instead of failing.

Inbox life cycle of a delivery::

    put_delivery ──► pending ──claim_next──► claimed ──complete──► done ──prune──► (gone)
                       ▲                       │ │
                       └──fail (attempts left)─┘ └─fail (no attempts left)──► dead
                       ▲                                                        │
                       └─────────────────────────retry_dead─────────────────────┤
                                                              done ◄──drop_dead──┘

A ``claimed`` delivery whose lease ran out (its worker died) is claimable again, which is how
work acknowledged just before a crash gets done after restart. Leases are short (15 s by
default) and the worker renews them while it works (:meth:`Store.renew_lease`); at startup
:meth:`Store.release_dead_claims` ends at once the leases of dead processes on this host, so
nothing waits for a lease to run out after ``kill -9`` and a restart. Completed deliveries keep only
their identity, state and outcome (body and headers are dropped) so duplicates are still
recognised until :meth:`Store.prune` removes them.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "DEAD",
    "DEFAULT_LEASE_SECONDS",
    "DONE",
    "DROPPED",
    "CLAIMED",
    "PENDING",
    "DeadLetter",
    "DecisionRecord",
    "Delivery",
    "IssueState",
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
]

PENDING = "pending"
CLAIMED = "claimed"
DONE = "done"
DEAD = "dead"
DROPPED = "dropped"
"""Outcome of a dead letter given up by an operator (``bugbar deliveries drop``)."""
_STATES = (PENDING, CLAIMED, DONE, DEAD)

MAX_ERROR_CHARS = 2000
"""Stored error messages are truncated to this many characters."""
MAX_OUTCOME_CHARS = 2000
BUSY_TIMEOUT_MS = 30_000
DEFAULT_LEASE_SECONDS = 15.0
"""A claim's lease; workers renew it every third of it, so only a dead worker lets it run out."""


class StoreError(Exception):
    """The database cannot be used (newer schema, journal mode refused, ...)."""


@dataclass(frozen=True)
class Delivery:
    """A claimed webhook delivery, as stored by :meth:`Store.put_delivery`."""

    pk: int
    provider: str
    delivery_id: str
    event_name: str
    headers: dict[str, str]
    body: bytes
    attempts: int
    """How many times it has been claimed, this claim included."""
    received_at: float
    """Clock time at which it was first stored."""


@dataclass(frozen=True)
class DeadLetter:
    """A delivery that ran out of attempts (no body; use :meth:`Store.retry_dead` to re-run)."""

    pk: int
    provider: str
    delivery_id: str
    event_name: str
    attempts: int
    last_error: str | None
    received_at: float
    failed_at: float | None


@dataclass(frozen=True)
class DecisionRecord:
    """One row of the decisions log."""

    id: int
    key: str
    delivery_id: str | None
    decision_json: str
    dry_run: bool
    recorded_at: float


@dataclass
class IssueState:
    """What the bot knows it did to one issue, keyed by ``str(IssueRef)``."""

    key: str
    applied_labels: set[str] = field(default_factory=set)
    """Labels the bot added and believes are still there."""
    removed_by_human: set[str] = field(default_factory=set)
    """Bot labels a human took off: never re-add them."""
    comment_id: str | None = None
    decision_hash: str | None = None
    content_hash: str | None = None
    updated_at: str | None = None
    """The tracker's own updated-at for the issue when last processed."""
    rules_version: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    """Human decisions: ``category``/``severity``/``route``/``not_a_threat``."""
    seen_commands: dict[str, list[str]] = field(default_factory=dict)
    """Per comment id, the signatures of the commands already executed."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Provider-specific things (e.g. a Jira linked issue key). Must be JSON-serialisable."""


@dataclass(frozen=True)
class Correction:
    """A maintainer's /triage correction with the issue as it was: a labelled example."""

    key: str
    title: str
    body: str
    labels: tuple[str, ...]
    expect: tuple[str, ...]
    """The corrected category, or empty for not-a-threat."""
    confidential: bool = False

    def to_example(self) -> dict[str, Any]:
        """One line of ``bugbar corrections export`` (the tests/corpus/*.jsonl schema)."""
        return {"id": self.key, "title": self.title, "body": self.body,
                "labels": list(self.labels), "expect": list(self.expect),
                "source": "correction"}


# --------------------------------------------------------------------------- schema

_MIGRATIONS: list[list[str]] = [
    # version 1
    [
        """
        CREATE TABLE deliveries (
            pk            INTEGER PRIMARY KEY AUTOINCREMENT,
            provider      TEXT    NOT NULL,
            delivery_id   TEXT    NOT NULL,
            event_name    TEXT    NOT NULL,
            headers       TEXT    NOT NULL DEFAULT '{}',
            body          BLOB,
            state         TEXT    NOT NULL
                          CHECK (state IN ('pending', 'claimed', 'done', 'dead')),
            attempts      INTEGER NOT NULL DEFAULT 0,
            received_at   REAL    NOT NULL,
            available_at  REAL    NOT NULL,
            lease_owner   TEXT,
            outcome       TEXT,
            last_error    TEXT,
            finished_at   REAL,
            UNIQUE (provider, delivery_id)
        )
        """,
        "CREATE INDEX deliveries_due ON deliveries (state, available_at, pk)",
        "CREATE INDEX deliveries_finished ON deliveries (state, finished_at)",
        """
        CREATE TABLE issue_state (
            key              TEXT PRIMARY KEY,
            applied_labels   TEXT NOT NULL DEFAULT '[]',
            removed_by_human TEXT NOT NULL DEFAULT '[]',
            comment_id       TEXT,
            decision_hash    TEXT,
            content_hash     TEXT,
            updated_at       TEXT,
            rules_version    TEXT,
            overrides        TEXT NOT NULL DEFAULT '{}',
            seen_commands    TEXT NOT NULL DEFAULT '{}',
            extra            TEXT NOT NULL DEFAULT '{}',
            stored_at        REAL NOT NULL
        )
        """,
        """
        CREATE TABLE checkpoints (
            name       TEXT PRIMARY KEY,
            data       TEXT NOT NULL,
            updated_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE http_cache (
            url        TEXT PRIMARY KEY,
            etag       TEXT NOT NULL,
            payload    TEXT NOT NULL,
            updated_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE decisions (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            issue_key     TEXT NOT NULL,
            delivery_id   TEXT,
            decision_json TEXT NOT NULL,
            dry_run       INTEGER NOT NULL,
            recorded_at   REAL NOT NULL
        )
        """,
        "CREATE INDEX decisions_issue ON decisions (issue_key, id)",
    ],
    # version 2: leases on sweep checkpoints (one sweep per checkpoint at a time)
    [
        """
        CREATE TABLE checkpoint_leases (
            name       TEXT PRIMARY KEY,
            owner      TEXT NOT NULL,
            expires_at REAL NOT NULL
        )
        """,
    ],
    # version 3: the issue a delivery is about, so claims serialise per issue
    [
        "ALTER TABLE deliveries ADD COLUMN issue_key TEXT",
        "CREATE INDEX deliveries_issue ON deliveries (issue_key, state, available_at)",
    ],
]

# --- corrections (issue 11): a maintainer's /triage category or not-a-threat, kept as a
# labelled example. Its own migration step; IF NOT EXISTS keeps it safe in any step order.
_MIGRATIONS.append([
    """
    CREATE TABLE IF NOT EXISTS corrections (
        issue_key     TEXT PRIMARY KEY,
        title         TEXT NOT NULL,
        body          TEXT NOT NULL,
        labels        TEXT NOT NULL DEFAULT '[]',
        expect        TEXT NOT NULL DEFAULT '[]',
        confidential  INTEGER NOT NULL DEFAULT 0,
        recorded_at   REAL NOT NULL
    )
    """,
])

SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema version this code writes; older files are migrated on open."""


class _ConnHolder:
    """Owns one thread's connection; closing happens when the thread's locals are dropped."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn: sqlite3.Connection | None = conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown, already closed
            self.close()


def _set_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL and return the journal mode SQLite reports.

    On a new file, processes opening it at the same moment race for the switch, and SQLite
    answers "database is locked" at once without calling the busy handler; try again for
    up to the busy timeout (the switch itself takes microseconds).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    if len(text) <= limit:
        return text
    return text[: limit - 15] + "… [truncated]"


def failure_text(error: str, body: bytes | None) -> str:
    """The error kept with a failed delivery: the body redacted if it appears, then cut."""
    if body and len(body) >= 16:
        error = error.replace(bytes(body).decode("utf-8", "replace"), "<body redacted>")
    return truncate(error, MAX_ERROR_CHARS)


# --------------------------------------------------------------------------- store


class Store:
    """The bot's durable store (one SQLite file). Safe to share between threads and processes.

    ``clock`` returns seconds since the epoch; tests inject a fake one to expire leases and
    retry delays without sleeping.
    """

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._local = threading.local()
        self._holders: weakref.WeakSet[_ConnHolder] = weakref.WeakSet()
        self._holders_lock = threading.Lock()
        # Threads of this process queue here for SQLite's write lock. Left to SQLite alone, a
        # writer that finds the lock taken sleeps in its busy handler (1, 2, 5 … 100 ms, not
        # woken when the lock frees), and a worker holding the lock can be stalled by the GIL,
        # so a webhook acknowledgement could wait hundreds of ms behind the workers. Other
        # processes sharing the file still wait on busy_timeout.
        self._write_lock = threading.RLock()
        self._closed = False
        self._leads: dict[str, BinaryIO] = {}
        self._migrate()

    # ------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # autocommit; transactions are explicit BEGIN IMMEDIATE
            check_same_thread=False,  # only so close() may close it from another thread
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = _set_wal(conn)
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: SQLite refused WAL journal mode (got {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("store is closed")
        holder: _ConnHolder | None = getattr(self._local, "holder", None)
        if holder is None or holder.conn is None:
            holder = _ConnHolder(self._connect())
            self._local.holder = holder
            with self._holders_lock:
                self._holders.add(holder)
        assert holder.conn is not None
        return holder.conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from the start."""
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close every connection this store opened. The store cannot be used afterwards."""
        self._closed = True
        for name in list(self._leads):
            self.resign(name)
        with self._holders_lock:
            holders = list(self._holders)
        for holder in holders:
            holder.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
            )
            row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {current} is newer than this bugbar "
                    f"supports ({SCHEMA_VERSION})"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version - 1]:
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (SCHEMA_VERSION,),
            )

    def now(self) -> float:
        """The store's clock (seconds since the epoch; injectable, so tests move time)."""
        return self._clock()

    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        row = self._conn().execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ inbox

    def put_delivery(
        self,
        provider: str,
        delivery_id: str,
        event_name: str,
        headers_subset: dict[str, str],
        body: bytes,
        issue_key: str | None = None,
    ) -> bool:
        """Store a delivery durably; True if new, False if ``(provider, delivery_id)`` was seen.

        Duplicates are recognised whatever state the earlier copy is in (until it is pruned).
        The row is committed (and fsynced) before this returns. ``issue_key`` (``str(IssueRef)``)
        names the issue the delivery is about: deliveries of one issue are never claimed at the
        same time (see :meth:`claim_next`).
        """
        now = self._clock()
        with self._write_lock:
            cur = self._conn().execute(
                "INSERT INTO deliveries (provider, delivery_id, event_name, headers, body, state,"
                " attempts, received_at, available_at, issue_key)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"
                " ON CONFLICT (provider, delivery_id) DO NOTHING",
                (
                    provider,
                    delivery_id,
                    event_name,
                    json.dumps(headers_subset, sort_keys=True),
                    bytes(body),
                    PENDING,
                    now,
                    now,
                    issue_key,
                ),
            )
        return cur.rowcount == 1

    def claim_next(
        self,
        worker_id: str,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        *,
        max_attempts: int = 5,
    ) -> Delivery | None:
        """Atomically take the oldest due delivery and lease it to ``worker_id``.

        Due means pending with its retry time reached, or claimed with an expired lease (the
        worker died). ``attempts`` is incremented. A delivery whose lease expired after
        ``max_attempts`` claims is moved to ``dead`` instead (it probably kills its worker).
        A delivery whose issue has another delivery under a live claim waits for that one.
        """
        now = self._clock()
        with self._write() as conn:
            conn.execute(
                "UPDATE deliveries SET state = ?, lease_owner = NULL, finished_at = ?,"
                " last_error = ? WHERE state = ? AND available_at <= ? AND attempts >= ?",
                (
                    DEAD,
                    now,
                    f"lease expired after {max_attempts} attempts (worker died?)",
                    CLAIMED,
                    now,
                    max_attempts,
                ),
            )
            row = conn.execute(
                "SELECT pk FROM deliveries AS d WHERE state IN (?, ?) AND available_at <= ?"
                " AND (issue_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries AS c"
                " WHERE c.issue_key = d.issue_key AND c.state = ? AND c.available_at > ?))"
                " ORDER BY pk LIMIT 1",
                (PENDING, CLAIMED, now, CLAIMED, now),
            ).fetchone()
            if row is None:
                return None
            got = conn.execute(
                "UPDATE deliveries SET state = ?, lease_owner = ?, available_at = ?,"
                " attempts = attempts + 1 WHERE pk = ?"
                " RETURNING pk, provider, delivery_id, event_name, headers, body, attempts,"
                " received_at",
                (CLAIMED, worker_id, now + lease_seconds, row[0]),
            ).fetchone()
        return Delivery(
            pk=int(got[0]),
            provider=str(got[1]),
            delivery_id=str(got[2]),
            event_name=str(got[3]),
            headers=dict(json.loads(got[4])),
            body=bytes(got[5] or b""),
            attempts=int(got[6]),
            received_at=float(got[7]),
        )

    def complete(self, delivery_pk: int, outcome: str) -> None:
        """Mark a delivery done; its body, headers and error are dropped, its id kept.

        Raises ``KeyError`` if there is no such delivery.
        """
        now = self._clock()
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE deliveries SET state = ?, outcome = ?, body = NULL, headers = '{}',"
                " last_error = NULL, lease_owner = NULL, finished_at = ? WHERE pk = ?",
                (DONE, truncate(outcome, MAX_OUTCOME_CHARS), now, delivery_pk),
            )
            if cur.rowcount != 1:
                raise KeyError(delivery_pk)

    def fail(self, delivery_pk: int, error: str, retry_in: float, max_attempts: int = 5) -> str:
        """Record a failed attempt; return the new state (``pending`` or ``dead``).

        With attempts left the delivery goes back to pending, claimable from
        ``now + retry_in``; otherwise it goes to ``dead``. The error is truncated, and if the
        body itself appears in it, it is redacted. A delivery already done is left alone.
        Raises ``KeyError`` if there is no such delivery.
        """
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                "SELECT state, attempts, body FROM deliveries WHERE pk = ?", (delivery_pk,)
            ).fetchone()
            if row is None:
                raise KeyError(delivery_pk)
            state, attempts, body = str(row[0]), int(row[1]), row[2]
            if state == DONE:
                return DONE
            error = failure_text(error, body)
            if attempts >= max_attempts:
                conn.execute(
                    "UPDATE deliveries SET state = ?, last_error = ?, lease_owner = NULL,"
                    " finished_at = ? WHERE pk = ?",
                    (DEAD, error, now, delivery_pk),
                )
                return DEAD
            conn.execute(
                "UPDATE deliveries SET state = ?, last_error = ?, lease_owner = NULL,"
                " available_at = ? WHERE pk = ?",
                (PENDING, error, now + max(0.0, retry_in), delivery_pk),
            )
            return PENDING

    def dead_letters(self) -> list[DeadLetter]:
        """Deliveries that ran out of attempts, oldest first."""
        rows = (
            self._conn()
            .execute(
                "SELECT pk, provider, delivery_id, event_name, attempts, last_error, received_at,"
                " finished_at FROM deliveries WHERE state = ? ORDER BY pk",
                (DEAD,),
            )
            .fetchall()
        )
        return [
            DeadLetter(
                pk=int(r[0]),
                provider=str(r[1]),
                delivery_id=str(r[2]),
                event_name=str(r[3]),
                attempts=int(r[4]),
                last_error=r[5],
                received_at=float(r[6]),
                failed_at=None if r[7] is None else float(r[7]),
            )
            for r in rows
        ]

    def retry_dead(self, pk: int | None = None) -> int:
        """Put one dead delivery (or all, with ``pk=None``) back to pending with fresh attempts.

        Returns how many were requeued.
        """
        now = self._clock()
        sql = (
            "UPDATE deliveries SET state = ?, attempts = 0, available_at = ?, finished_at = NULL"
            " WHERE state = ?"
        )
        params: tuple[Any, ...] = (PENDING, now, DEAD)
        if pk is not None:
            sql += " AND pk = ?"
            params += (pk,)
        with self._write() as conn:
            return conn.execute(sql, params).rowcount

    def drop_dead(self, pk: int | None = None) -> int:
        """Give up one dead delivery (or all, with ``pk=None``); return how many.

        A dropped delivery becomes ``done`` with outcome ``dropped``: its body, headers and
        error go, its id stays, so a redelivery of it is still recognised as a duplicate until
        :meth:`prune` removes it, and it no longer counts as a dead letter (``/readyz``).
        """
        now = self._clock()
        sql = (
            "UPDATE deliveries SET state = ?, outcome = ?, body = NULL, headers = '{}',"
            " last_error = NULL, lease_owner = NULL, finished_at = ? WHERE state = ?"
        )
        params: tuple[Any, ...] = (DONE, DROPPED, now, DEAD)
        if pk is not None:
            sql += " AND pk = ?"
            params += (pk,)
        with self._write() as conn:
            return conn.execute(sql, params).rowcount

    def depth(self) -> int:
        """Number of pending deliveries (including those waiting for a retry time)."""
        row = (
            self._conn()
            .execute("SELECT COUNT(*) FROM deliveries WHERE state = ?", (PENDING,))
            .fetchone()
        )
        return int(row[0])

    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest pending delivery was received, or None if none is pending."""
        row = (
            self._conn()
            .execute("SELECT MIN(received_at) FROM deliveries WHERE state = ?", (PENDING,))
            .fetchone()
        )
        if row[0] is None:
            return None
        return max(0.0, self._clock() - float(row[0]))

    def stats(self) -> dict[str, int]:
        """Delivery counts by state; every state is present (zero if none)."""
        counts = dict.fromkeys(_STATES, 0)
        for state, n in self._conn().execute(
            "SELECT state, COUNT(*) FROM deliveries GROUP BY state"
        ):
            counts[str(state)] = int(n)
        return counts

    def prune(self, older_than_seconds: float) -> int:
        """Delete deliveries completed more than ``older_than_seconds`` ago; return how many.

        A pruned delivery id is no longer recognised as a duplicate, so keep this window longer
        than any provider's redelivery horizon.
        """
        cutoff = self._clock() - older_than_seconds
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM deliveries WHERE state = ? AND finished_at < ?", (DONE, cutoff)
            ).rowcount

    # ------------------------------------------------------------------ leases (issue 14)
    # Mirrored by the PostgreSQL store: renew_lease, release_dead_claims, and the checkpoint
    # leases below (claim_checkpoint, renew_checkpoint, release_checkpoint).

    def renew_lease(self, delivery_pk: int, worker_id: str, lease_seconds: float) -> bool:
        """Extend ``worker_id``'s claim on a delivery to ``now + lease_seconds``.

        False if the worker no longer holds it (it was completed, failed, or its lease ran out
        and another worker claimed it): the worker must then not record an outcome.
        """
        now = self._clock()
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE deliveries SET available_at = ? WHERE pk = ? AND state = ?"
                " AND lease_owner = ?",
                (now + lease_seconds, delivery_pk, CLAIMED, worker_id),
            )
            return cur.rowcount == 1

    def release_dead_claims(self, is_alive: Callable[[str], bool]) -> int:
        """End now the leases (deliveries and checkpoints) of owners ``is_alive`` says are dead.

        Meant for startup: a process killed with ``kill -9`` leaves its claims behind, and
        they become claimable at once instead of after their lease. A released delivery stays
        ``claimed`` with its lease expired, so :meth:`claim_next` treats it exactly like any
        other expired lease: its ``attempts`` keep the claim that died. That is deliberate: a
        delivery that kills its worker (out of memory, a crash in a C extension) looks the
        same from here as an operator's ``kill -9``, and it must still end as a dead letter
        after ``max_attempts`` rather than take the service down forever. An occasional
        restart costs one of five attempts. Returns how many leases were released.
        """
        now = self._clock()
        released = 0
        with self._write() as conn:
            rows = conn.execute(
                "SELECT pk, lease_owner FROM deliveries WHERE state = ? AND available_at > ?",
                (CLAIMED, now),
            ).fetchall()
            for pk, owner in rows:
                if owner is not None and not is_alive(str(owner)):
                    released += conn.execute(
                        "UPDATE deliveries SET available_at = ? WHERE pk = ? AND state = ?"
                        " AND lease_owner = ?",
                        (now, pk, CLAIMED, owner),
                    ).rowcount
            for name, owner in conn.execute(
                "SELECT name, owner FROM checkpoint_leases WHERE expires_at > ?", (now,)
            ).fetchall():
                if not is_alive(str(owner)):
                    released += conn.execute(
                        "DELETE FROM checkpoint_leases WHERE name = ? AND owner = ?",
                        (name, owner),
                    ).rowcount
        return released

    def claim_checkpoint(self, name: str, owner: str, lease_seconds: float) -> str | None:
        """Take the lease on sweep checkpoint ``name``; None on success, else the holder.

        Free, expired, or already ``owner``'s: taken (``now + lease_seconds``). Held by
        another live lease: refused, and its owner is returned so the caller can say who.
        """
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                "SELECT owner, expires_at FROM checkpoint_leases WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and str(row[0]) != owner and float(row[1]) > now:
                return str(row[0])
            conn.execute(
                "INSERT OR REPLACE INTO checkpoint_leases (name, owner, expires_at)"
                " VALUES (?, ?, ?)",
                (name, owner, now + lease_seconds),
            )
        return None

    def renew_checkpoint(self, name: str, owner: str, lease_seconds: float) -> bool:
        """Extend ``owner``'s lease on checkpoint ``name``; False if it lost it."""
        now = self._clock()
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE checkpoint_leases SET expires_at = ? WHERE name = ? AND owner = ?",
                (now + lease_seconds, name, owner),
            )
            return cur.rowcount == 1

    def release_checkpoint(self, name: str, owner: str) -> None:
        """Give the lease on checkpoint ``name`` back (no-op unless ``owner`` holds it)."""
        with self._write() as conn:
            conn.execute(
                "DELETE FROM checkpoint_leases WHERE name = ? AND owner = ?", (name, owner)
            )

    # ------------------------------------------------------------------ issue state

    @staticmethod
    def _issue_from_row(row: sqlite3.Row | tuple[Any, ...]) -> IssueState:
        return IssueState(
            key=str(row[0]),
            applied_labels=set(json.loads(row[1])),
            removed_by_human=set(json.loads(row[2])),
            comment_id=row[3],
            decision_hash=row[4],
            content_hash=row[5],
            updated_at=row[6],
            rules_version=row[7],
            overrides=dict(json.loads(row[8])),
            seen_commands={k: list(v) for k, v in json.loads(row[9]).items()},
            extra=dict(json.loads(row[10])),
        )

    _ISSUE_COLUMNS = (
        "key, applied_labels, removed_by_human, comment_id, decision_hash, content_hash,"
        " updated_at, rules_version, overrides, seen_commands, extra"
    )

    def _load_issue(self, conn: sqlite3.Connection, key: str) -> IssueState | None:
        row = conn.execute(
            f"SELECT {self._ISSUE_COLUMNS} FROM issue_state WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else self._issue_from_row(row)

    def _write_issue(self, conn: sqlite3.Connection, state: IssueState) -> None:
        conn.execute(
            f"INSERT OR REPLACE INTO issue_state ({self._ISSUE_COLUMNS}, stored_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                state.key,
                json.dumps(sorted(state.applied_labels)),
                json.dumps(sorted(state.removed_by_human)),
                state.comment_id,
                state.decision_hash,
                state.content_hash,
                state.updated_at,
                state.rules_version,
                json.dumps(state.overrides, sort_keys=True),
                json.dumps(state.seen_commands, sort_keys=True),
                json.dumps(state.extra, sort_keys=True),
                self._clock(),
            ),
        )

    def get_issue_state(self, key: str) -> IssueState | None:
        """The stored state for ``key`` (``str(IssueRef)``), or None if the bot never saw it."""
        return self._load_issue(self._conn(), key)

    def save_issue_state(self, state: IssueState) -> None:
        """Insert or replace the state for ``state.key`` (last writer wins)."""
        with self._write() as conn:
            self._write_issue(conn, state)

    def update_issue_state(self, key: str, mutate: Callable[[IssueState], None]) -> IssueState:
        """Atomic read-modify-write: ``mutate`` edits the current (or a fresh) state in place.

        Runs under the database write lock, so concurrent updates to the same issue do not
        lose each other's changes. Keep ``mutate`` quick (no network calls). If it raises,
        nothing is saved.
        """
        with self._write() as conn:
            state = self._load_issue(conn, key) or IssueState(key=key)
            mutate(state)
            if state.key != key:
                raise ValueError(f"update_issue_state: key changed from {key!r}")
            self._write_issue(conn, state)
        return state

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, name: str, data: dict[str, Any]) -> None:
        """Store (replace) a sweep checkpoint. ``data`` must be JSON-serialisable."""
        payload = json.dumps(data, sort_keys=True)
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO checkpoints (name, data, updated_at) VALUES (?, ?, ?)",
                (name, payload, self._clock()),
            )

    def load_checkpoint(self, name: str) -> dict[str, Any] | None:
        """The checkpoint saved under ``name``, or None."""
        row = (
            self._conn().execute("SELECT data FROM checkpoints WHERE name = ?", (name,)).fetchone()
        )
        return None if row is None else dict(json.loads(row[0]))

    def clear_checkpoint(self, name: str) -> None:
        """Forget the checkpoint ``name`` (no error if absent)."""
        with self._write() as conn:
            conn.execute("DELETE FROM checkpoints WHERE name = ?", (name,))

    # ------------------------------------------------------------------ HTTP cache

    def get_etag(self, url: str) -> tuple[str, str] | None:
        """``(etag, payload)`` cached for ``url``, or None."""
        row = (
            self._conn()
            .execute("SELECT etag, payload FROM http_cache WHERE url = ?", (url,))
            .fetchone()
        )
        return None if row is None else (str(row[0]), str(row[1]))

    def put_etag(self, url: str, etag: str, payload: str) -> None:
        """Cache the ETag and the body (or a summary of it) returned for ``url``."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO http_cache (url, etag, payload, updated_at)"
                " VALUES (?, ?, ?, ?)",
                (url, etag, payload, self._clock()),
            )

    # ------------------------------------------------------------------ corrections (issue 11)

    def record_correction(self, correction: Correction) -> None:
        """Keep a maintainer's correction as a labelled example; the latest one per issue wins
        (a later /triage on the same issue replaces the earlier answer)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO corrections (issue_key, title, body, labels, expect, confidential,"
                " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (issue_key) DO UPDATE"
                " SET title = excluded.title, body = excluded.body, labels = excluded.labels,"
                " expect = excluded.expect, confidential = excluded.confidential,"
                " recorded_at = excluded.recorded_at",
                (correction.key, correction.title, correction.body,
                 json.dumps(list(correction.labels)), json.dumps(list(correction.expect)),
                 int(correction.confidential), self._clock()),
            )

    def corrections(self) -> list[Correction]:
        """Every kept correction, oldest first."""
        rows = self._conn().execute(
            "SELECT issue_key, title, body, labels, expect, confidential FROM corrections"
            " ORDER BY recorded_at, issue_key").fetchall()
        return [Correction(str(r[0]), str(r[1]), str(r[2]), tuple(json.loads(r[3])),
                           tuple(json.loads(r[4])), bool(r[5])) for r in rows]

    # ------------------------------------------------------------------ decisions log

    def record_decision(
        self, key: str, delivery_id: str | None, decision_json: str, dry_run: bool
    ) -> int:
        """Append a decision (or, in dry-run mode, a plan) to the log; return its id."""
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO decisions (issue_key, delivery_id, decision_json, dry_run,"
                " recorded_at) VALUES (?, ?, ?, ?, ?)",
                (key, delivery_id, decision_json, int(dry_run), self._clock()),
            )
            return int(cur.lastrowid or 0)

    def recent_decisions(self, limit: int = 50, key: str | None = None) -> list[DecisionRecord]:
        """The latest ``limit`` decisions, newest first (optionally for one issue only)."""
        sql = (
            "SELECT id, issue_key, delivery_id, decision_json, dry_run, recorded_at FROM decisions"
        )
        params: tuple[Any, ...] = ()
        if key is not None:
            sql += " WHERE issue_key = ?"
            params = (key,)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self._conn().execute(sql, (*params, limit)).fetchall()
        return [
            DecisionRecord(
                id=int(r[0]),
                key=str(r[1]),
                delivery_id=r[2],
                decision_json=str(r[3]),
                dry_run=bool(r[4]),
                recorded_at=float(r[5]),
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ leadership

    def try_lead(self, name: str) -> bool:
        """Hold (or keep holding) the leader lock ``name``; True while this store holds it.

        For jobs that one process at a time should run (the periodic sweep). Here it is an
        ``flock`` on a file beside the database, released by the kernel if the process dies.
        """
        import fcntl

        with self._holders_lock:
            leads = self._leads
            if name in leads:
                return True
            lock_path = self.path.with_name(f"{self.path.name}.lead-{name}")
            handle: BinaryIO = lock_path.open("a+b")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
            leads[name] = handle
            return True

    def resign(self, name: str) -> None:
        """Let go of the leader lock ``name`` (no error if not held)."""
        with self._holders_lock:
            handle = self._leads.pop(name, None)
        if handle is not None:
            handle.close()
