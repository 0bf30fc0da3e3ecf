"""PostgreSQL state (``BUGBAR_STATE=postgresql://…``): one inbox shared by several replicas.

The same contract as the SQLite :class:`bot.store.Store` (see :mod:`bot.store_base`), on
psycopg 3 with a :class:`psycopg_pool.ConnectionPool`. Every write is one transaction that is
committed (``synchronous_commit`` as the server sets it, ``on`` by default) before the method
returns, so a delivery acknowledged by any replica survives the loss of that replica.

Claims (why this is not a queue library: see docs/deploy.md, "Why not procrastinate or
pgqueuer"): ``SELECT … FOR UPDATE SKIP LOCKED`` takes the oldest due row that no other
transaction is looking at; the claim is a lease (``available_at`` in the future) that the worker
renews as a heartbeat, so a replica that dies loses its claims within one lease. Per-issue
serialisation: each delivery carries the issue it is about, a claim skips issues that have a
live claim, and claimers of one issue queue on ``pg_try_advisory_xact_lock`` for the moment of
claiming (then look again), so two deliveries of one issue are never processed at once,
whichever replicas hold them.

Times are the injectable ``clock`` of the process (seconds since the epoch), as in the SQLite
store; replicas must keep their clocks in sync (NTP) for leases to mean the same to all.

Leadership (:meth:`PgStore.try_lead`): a session-level ``pg_try_advisory_lock`` on a dedicated
connection, outside the pool. PostgreSQL drops it when that session ends, which is when the
replica dies (TCP keepalives are set so a vanished host is noticed within about 30 s).
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from bot.store import (
    CLAIMED,
    DEAD,
    DONE,
    DROPPED,
    MAX_OUTCOME_CHARS,
    PENDING,
    Correction,
    DeadLetter,
    DecisionRecord,
    Delivery,
    IssueState,
    StoreError,
    failure_text,
    truncate,
)

__all__ = ["PG_SCHEMA_VERSION", "PgStore"]

_STATES = (PENDING, CLAIMED, DONE, DEAD)
_LOCK_NS = 0x0B0B  # first key of bugbar's two-key advisory locks
_MIGRATION_LOCK = 1  # second key: schema migrations
_CLAIM_SCAN_LIMIT = 64
"""Rows one claim looks at before giving up (skipped: issue busy at this very moment)."""

_MIGRATIONS: list[list[str]] = [
    # version 1
    [
        """
        CREATE TABLE deliveries (
            pk           BIGSERIAL PRIMARY KEY,
            provider     TEXT NOT NULL,
            delivery_id  TEXT NOT NULL,
            event_name   TEXT NOT NULL,
            headers      TEXT NOT NULL DEFAULT '{}',
            body         BYTEA,
            state        TEXT NOT NULL
                         CHECK (state IN ('pending', 'claimed', 'done', 'dead')),
            attempts     INTEGER NOT NULL DEFAULT 0,
            received_at  DOUBLE PRECISION NOT NULL,
            available_at DOUBLE PRECISION NOT NULL,
            lease_owner  TEXT,
            outcome      TEXT,
            last_error   TEXT,
            finished_at  DOUBLE PRECISION,
            issue_key    TEXT,
            UNIQUE (provider, delivery_id)
        )
        """,
        "CREATE INDEX deliveries_due ON deliveries (pk) WHERE state IN ('pending', 'claimed')",
        "CREATE INDEX deliveries_live ON deliveries (issue_key, available_at)"
        " WHERE state = 'claimed'",
        "CREATE INDEX deliveries_state ON deliveries (state, finished_at)",
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
            stored_at        DOUBLE PRECISION NOT NULL
        )
        """,
        """
        CREATE TABLE checkpoints (
            name       TEXT PRIMARY KEY,
            data       TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )
        """,
        """
        CREATE TABLE http_cache (
            url        TEXT PRIMARY KEY,
            etag       TEXT NOT NULL,
            payload    TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )
        """,
        """
        CREATE TABLE decisions (
            id            BIGSERIAL PRIMARY KEY,
            issue_key     TEXT NOT NULL,
            delivery_id   TEXT,
            decision_json TEXT NOT NULL,
            dry_run       BOOLEAN NOT NULL,
            recorded_at   DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX decisions_issue ON decisions (issue_key, id)",
        """
        CREATE TABLE checkpoint_leases (
            name       TEXT PRIMARY KEY,
            owner      TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )
        """,
    ],
]

# --- corrections (issue 11): the same table as the SQLite store's, its own migration step.
_MIGRATIONS.append([
    """
    CREATE TABLE IF NOT EXISTS corrections (
        issue_key     TEXT PRIMARY KEY,
        title         TEXT NOT NULL,
        body          TEXT NOT NULL,
        labels        TEXT NOT NULL DEFAULT '[]',
        expect        TEXT NOT NULL DEFAULT '[]',
        confidential  BOOLEAN NOT NULL DEFAULT FALSE,
        recorded_at   DOUBLE PRECISION NOT NULL
    )
    """,
])

PG_SCHEMA_VERSION = len(_MIGRATIONS)
"""The PostgreSQL schema version this code writes; older databases are migrated on open."""

_ISSUE_COLUMNS = (
    "key, applied_labels, removed_by_human, comment_id, decision_hash, content_hash,"
    " updated_at, rules_version, overrides, seen_commands, extra"
)
_DELIVERY_COLUMNS = "pk, provider, delivery_id, event_name, headers, body, attempts, received_at"


def _lead_key(name: str) -> int:
    """A stable int4 for a leader name (crc32, folded into the signed range)."""
    value = zlib.crc32(f"bugbar-lead:{name}".encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def _issue_from_row(row: tuple[Any, ...]) -> IssueState:
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


def _delivery_from_row(row: tuple[Any, ...]) -> Delivery:
    return Delivery(
        pk=int(row[0]),
        provider=str(row[1]),
        delivery_id=str(row[2]),
        event_name=str(row[3]),
        headers=dict(json.loads(row[4])),
        body=bytes(row[5] or b""),
        attempts=int(row[6]),
        received_at=float(row[7]),
    )


class PgStore:
    """The bot's durable state in PostgreSQL. Safe to share between threads and replicas.

    ``url`` is a libpq URL (``postgresql://user@host:5432/db``); ``max_connections`` bounds the
    pool (give it at least the number of worker threads plus two). ``clock`` as in
    :class:`bot.store.Store`.
    """

    def __init__(
        self,
        url: str,
        clock: Callable[[], float] = time.time,
        *,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self._clock = clock
        self._closed = False
        self._leads: dict[str, psycopg.Connection[Any]] = {}
        self._leads_lock = threading.Lock()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, max_connections),
            timeout=connect_timeout,
            kwargs={"autocommit": True},
            open=False,
            name="bugbar",
        )
        try:
            # One plain connection first: a wrong host, port, database or password then fails
            # at once with libpq's own reason, instead of after the pool's whole timeout with
            # "pool initialization incomplete" and a log line per reconnect attempt.
            psycopg.connect(url, autocommit=True,
                            connect_timeout=max(1, round(connect_timeout))).close()
            self._pool.open(wait=True, timeout=connect_timeout)
            self._migrate()
        except (psycopg.Error, PoolTimeout) as exc:
            self._pool.close()
            raise StoreError(f"PostgreSQL at {self.where}: {_reason(exc)}") from None
        except BaseException:
            self._pool.close()
            raise

    @property
    def where(self) -> str:
        """Host, port and database, without credentials (for messages)."""
        try:
            info = psycopg.conninfo.conninfo_to_dict(self.url)
        except psycopg.Error:
            return "the configured URL"
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    # ------------------------------------------------------------------ connections

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in autocommit mode: each statement commits on its own (one
        round trip for the single-statement methods, which are atomic by themselves)."""
        if self._closed:
            raise StoreError("store is closed")
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on a pooled connection: committed on exit, rolled back on error."""
        with self._conn() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """Close the pool and the leader sessions. The store cannot be used afterwards."""
        self._closed = True
        for name in list(self._leads):
            self.resign(name)
        self._pool.close()

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self._pool.connection() as conn, conn.transaction():
            # Replicas starting together migrate one at a time (released at commit).
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_NS, _MIGRATION_LOCK))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
            )
            row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
            current = int(row[0]) if row else 0
            if current > PG_SCHEMA_VERSION:
                raise StoreError(
                    f"PostgreSQL at {self.where}: schema version {current} is newer than this "
                    f"bugbar supports ({PG_SCHEMA_VERSION})"
                )
            for version in range(current + 1, PG_SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version - 1]:
                    conn.execute(statement)  # our own constants
            conn.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                (PG_SCHEMA_VERSION,),
            )

    def now(self) -> float:
        """The store's clock (seconds since the epoch; injectable, so tests move time)."""
        return self._clock()

    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        with self._conn() as conn:
            row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
        assert row is not None
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
        """Store a delivery durably (committed before return); False if seen before.

        A pooled connection found dead (the server restarted since it was last used) is
        replaced and the insert tried once more, so the webhook answer does not fail for it.
        If the first try did commit, the second finds the row and answers "seen before":
        either way the delivery is stored.
        """
        now = self._clock()
        params = (provider, delivery_id, event_name, json.dumps(headers_subset, sort_keys=True),
                  bytes(body), PENDING, now, now, issue_key)
        for attempt in (1, 2):
            try:
                with self._conn() as conn:
                    cur = conn.execute(
                        "INSERT INTO deliveries (provider, delivery_id, event_name, headers, body,"
                        " state, attempts, received_at, available_at, issue_key)"
                        " VALUES (%s, %s, %s, %s, %s, %s, 0, %s, %s, %s)"
                        " ON CONFLICT (provider, delivery_id) DO NOTHING",
                        params,
                    )
                    return cur.rowcount == 1
            except psycopg.OperationalError:
                if attempt == 2 or self._closed:
                    raise
        raise AssertionError("unreachable")

    def claim_next(
        self, worker_id: str, lease_seconds: float = 60, *, max_attempts: int = 5
    ) -> Delivery | None:
        """Lease the oldest due delivery whose issue has no live claim (see the module doc)."""
        now = self._clock()
        skipped: list[int] = []
        with self._tx() as conn:
            for _ in range(_CLAIM_SCAN_LIMIT):
                # 1. the oldest due row nobody else is looking at, and (for its issue) the
                #    advisory lock that makes claimers of one issue take turns until commit
                row = conn.execute(
                    "WITH c AS MATERIALIZED (SELECT pk, state, attempts, issue_key"
                    " FROM deliveries AS d"
                    " WHERE state IN ('pending', 'claimed') AND available_at <= %s"
                    " AND NOT (pk = ANY(%s))"
                    " AND (issue_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries AS o"
                    "  WHERE o.state = 'claimed' AND o.issue_key = d.issue_key"
                    "  AND o.available_at > %s))"
                    " ORDER BY pk LIMIT 1 FOR UPDATE SKIP LOCKED)"
                    " SELECT pk, state, attempts, issue_key IS NULL"
                    " OR pg_try_advisory_xact_lock(%s, hashtext(issue_key)) FROM c",
                    (now, skipped, now, _LOCK_NS),
                ).fetchone()
                if row is None:
                    return None
                pk, state, attempts, turn = int(row[0]), str(row[1]), int(row[2]), bool(row[3])
                if state == CLAIMED and attempts >= max_attempts:
                    conn.execute(
                        "UPDATE deliveries SET state = %s, lease_owner = NULL, finished_at = %s,"
                        " last_error = %s WHERE pk = %s",
                        (DEAD, now, f"lease expired after {max_attempts} attempts (worker died?)",
                         pk),
                    )
                    continue
                if not turn:  # another transaction is claiming for this issue right now
                    skipped.append(pk)
                    continue
                # 2. claim it unless its issue got a live claim meanwhile: this statement's
                #    snapshot is taken after the lock, so it sees claims committed before it
                got = conn.execute(
                    "UPDATE deliveries AS d SET state = %s, lease_owner = %s, available_at = %s,"
                    " attempts = attempts + 1 WHERE pk = %s AND (issue_key IS NULL OR NOT EXISTS"
                    " (SELECT 1 FROM deliveries AS o WHERE o.state = 'claimed'"
                    "  AND o.issue_key = d.issue_key AND o.available_at > %s AND o.pk <> d.pk))"
                    f" RETURNING {_DELIVERY_COLUMNS}",
                    (CLAIMED, worker_id, now + lease_seconds, pk, now),
                ).fetchone()
                if got is None:
                    skipped.append(pk)
                    continue
                return _delivery_from_row(got)
        return None

    def renew_lease(self, delivery_pk: int, worker_id: str, lease_seconds: float) -> bool:
        """Heartbeat: extend the claim; False if ``worker_id`` no longer holds it."""
        now = self._clock()
        with self._conn() as conn:
            cur = conn.execute(
                "UPDATE deliveries SET available_at = %s WHERE pk = %s AND state = %s"
                " AND lease_owner = %s",
                (now + lease_seconds, delivery_pk, CLAIMED, worker_id),
            )
            return cur.rowcount == 1

    def release_dead_claims(self, is_alive: Callable[[str], bool]) -> int:
        """End now the leases (deliveries and checkpoints) of this host's dead owners.

        Only this host's owners (ids ``host:pid:…``) can be judged; the leases of other
        replicas are left to run out. Released deliveries keep their counted attempt.
        Returns how many leases were released.
        """
        import socket

        now = self._clock()
        prefix = socket.gethostname() + ":"
        released = 0
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT pk, lease_owner FROM deliveries WHERE state = %s AND available_at > %s"
                " AND starts_with(lease_owner, %s) FOR UPDATE SKIP LOCKED",
                (CLAIMED, now, prefix),
            ).fetchall()
            for pk, owner in rows:
                if is_alive(str(owner)):
                    continue
                conn.execute(
                    "UPDATE deliveries SET available_at = %s, lease_owner = NULL WHERE pk = %s",
                    (now, pk),
                )
                released += 1
            leases = conn.execute(
                "SELECT name, owner FROM checkpoint_leases WHERE expires_at > %s"
                " AND starts_with(owner, %s) FOR UPDATE SKIP LOCKED",
                (now, prefix),
            ).fetchall()
            for name, owner in leases:
                if not is_alive(str(owner)):
                    released += conn.execute(
                        "DELETE FROM checkpoint_leases WHERE name = %s AND owner = %s",
                        (name, owner),
                    ).rowcount
        return released

    def complete(self, delivery_pk: int, outcome: str) -> None:
        """Mark done; body, headers and error dropped, id kept. KeyError if unknown."""
        now = self._clock()
        with self._conn() as conn:
            cur = conn.execute(
                "UPDATE deliveries SET state = %s, outcome = %s, body = NULL, headers = '{}',"
                " last_error = NULL, lease_owner = NULL, finished_at = %s WHERE pk = %s",
                (DONE, truncate(outcome, MAX_OUTCOME_CHARS), now, delivery_pk),
            )
            if cur.rowcount != 1:
                raise KeyError(delivery_pk)

    def fail(self, delivery_pk: int, error: str, retry_in: float, max_attempts: int = 5) -> str:
        """Record a failed attempt; ``pending`` (retry at ``now + retry_in``) or ``dead``."""
        now = self._clock()
        with self._tx() as conn:
            row = conn.execute(
                "SELECT state, attempts, body FROM deliveries WHERE pk = %s FOR UPDATE",
                (delivery_pk,),
            ).fetchone()
            if row is None:
                raise KeyError(delivery_pk)
            state, attempts, body = str(row[0]), int(row[1]), row[2]
            if state == DONE:
                return DONE
            error = failure_text(error, body)
            if attempts >= max_attempts:
                conn.execute(
                    "UPDATE deliveries SET state = %s, last_error = %s, lease_owner = NULL,"
                    " finished_at = %s WHERE pk = %s",
                    (DEAD, error, now, delivery_pk),
                )
                return DEAD
            conn.execute(
                "UPDATE deliveries SET state = %s, last_error = %s, lease_owner = NULL,"
                " available_at = %s WHERE pk = %s",
                (PENDING, error, now + max(0.0, retry_in), delivery_pk),
            )
            return PENDING

    def dead_letters(self) -> list[DeadLetter]:
        """Deliveries that ran out of attempts, oldest first."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT pk, provider, delivery_id, event_name, attempts, last_error, received_at,"
                " finished_at FROM deliveries WHERE state = %s ORDER BY pk",
                (DEAD,),
            ).fetchall()
        return [
            DeadLetter(pk=int(r[0]), provider=str(r[1]), delivery_id=str(r[2]),
                       event_name=str(r[3]), attempts=int(r[4]), last_error=r[5],
                       received_at=float(r[6]),
                       failed_at=None if r[7] is None else float(r[7]))
            for r in rows
        ]

    def retry_dead(self, pk: int | None = None) -> int:
        """Requeue one dead delivery (or all) with fresh attempts; return how many."""
        now = self._clock()
        with self._conn() as conn:
            if pk is None:
                cur = conn.execute(
                    "UPDATE deliveries SET state = %s, attempts = 0, available_at = %s,"
                    " finished_at = NULL WHERE state = %s",
                    (PENDING, now, DEAD),
                )
            else:
                cur = conn.execute(
                    "UPDATE deliveries SET state = %s, attempts = 0, available_at = %s,"
                    " finished_at = NULL WHERE state = %s AND pk = %s",
                    (PENDING, now, DEAD, pk),
                )
            return cur.rowcount

    def drop_dead(self, pk: int | None = None) -> int:
        """Give up one dead delivery (or all): done, outcome ``dropped``, id kept."""
        now = self._clock()
        sql = ("UPDATE deliveries SET state = %s, outcome = %s, body = NULL, headers = '{}',"
               " last_error = NULL, lease_owner = NULL, finished_at = %s WHERE state = %s")
        params: tuple[Any, ...] = (DONE, DROPPED, now, DEAD)
        if pk is not None:
            sql += " AND pk = %s"
            params += (pk,)
        with self._conn() as conn:
            return conn.execute(sql, params).rowcount

    def depth(self) -> int:
        """Pending deliveries (including those waiting for a retry time)."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE state = %s", (PENDING,)
            ).fetchone()
        return int(row[0]) if row else 0

    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest pending delivery was received, or None."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT MIN(received_at) FROM deliveries WHERE state = %s", (PENDING,)
            ).fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, self._clock() - float(row[0]))

    def stats(self) -> dict[str, int]:
        """Delivery counts by state; every state is present."""
        counts = dict.fromkeys(_STATES, 0)
        with self._conn() as conn:
            for state, n in conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"):
                counts[str(state)] = int(n)
        return counts

    def prune(self, older_than_seconds: float) -> int:
        """Delete deliveries completed more than that long ago; return how many."""
        cutoff = self._clock() - older_than_seconds
        with self._conn() as conn:
            return conn.execute(
                "DELETE FROM deliveries WHERE state = %s AND finished_at < %s", (DONE, cutoff)
            ).rowcount

    # ------------------------------------------------------------------ checkpoint leases

    def claim_checkpoint(self, name: str, owner: str, lease_seconds: float) -> str | None:
        """Take the lease on sweep checkpoint ``name``; None on success, else the holder.

        Free, expired, or already ``owner``'s: taken until ``now + lease_seconds``. Held by
        another live lease: refused, and that owner is returned.
        """
        now = self._clock()
        with self._conn() as conn:
            # One statement: insert, or take over an expired/own lease; a live lease of
            # someone else leaves the row alone and RETURNING gives nothing.
            row = conn.execute(
                "INSERT INTO checkpoint_leases (name, owner, expires_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at"
                " WHERE checkpoint_leases.owner = excluded.owner"
                " OR checkpoint_leases.expires_at <= %s RETURNING owner",
                (name, owner, now + lease_seconds, now),
            ).fetchone()
            if row is not None:
                return None
            holder = conn.execute(
                "SELECT owner FROM checkpoint_leases WHERE name = %s", (name,)
            ).fetchone()
        return str(holder[0]) if holder else "unknown"

    def renew_checkpoint(self, name: str, owner: str, lease_seconds: float) -> bool:
        """Extend ``owner``'s lease on checkpoint ``name``; False if it lost it."""
        now = self._clock()
        with self._conn() as conn:
            return conn.execute(
                "UPDATE checkpoint_leases SET expires_at = %s WHERE name = %s AND owner = %s",
                (now + lease_seconds, name, owner),
            ).rowcount == 1

    def release_checkpoint(self, name: str, owner: str) -> None:
        """Give the lease on checkpoint ``name`` back (no-op unless ``owner`` holds it)."""
        with self._conn() as conn:
            conn.execute(
                "DELETE FROM checkpoint_leases WHERE name = %s AND owner = %s", (name, owner)
            )

    # ------------------------------------------------------------------ issue state

    def get_issue_state(self, key: str) -> IssueState | None:
        """The stored state for ``key``, or None."""
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT {_ISSUE_COLUMNS} FROM issue_state WHERE key = %s", (key,)
            ).fetchone()
        return None if row is None else _issue_from_row(row)

    def _write_issue(self, conn: psycopg.Connection[Any], state: IssueState) -> None:
        conn.execute(
            f"INSERT INTO issue_state ({_ISSUE_COLUMNS}, stored_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (key) DO UPDATE SET applied_labels = excluded.applied_labels,"
            " removed_by_human = excluded.removed_by_human, comment_id = excluded.comment_id,"
            " decision_hash = excluded.decision_hash, content_hash = excluded.content_hash,"
            " updated_at = excluded.updated_at, rules_version = excluded.rules_version,"
            " overrides = excluded.overrides, seen_commands = excluded.seen_commands,"
            " extra = excluded.extra, stored_at = excluded.stored_at",
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

    def save_issue_state(self, state: IssueState) -> None:
        """Insert or replace the state for ``state.key`` (last writer wins)."""
        with self._conn() as conn:
            self._write_issue(conn, state)

    def update_issue_state(self, key: str, mutate: Callable[[IssueState], None]) -> IssueState:
        """Atomic read-modify-write under the row's lock; nothing saved if ``mutate`` raises."""
        with self._tx() as conn:
            # Make sure a row exists to lock (rolled back with everything else on error).
            conn.execute(
                "INSERT INTO issue_state (key, stored_at) VALUES (%s, %s)"
                " ON CONFLICT (key) DO NOTHING",
                (key, self._clock()),
            )
            row = conn.execute(
                f"SELECT {_ISSUE_COLUMNS} FROM issue_state WHERE key = %s FOR UPDATE", (key,)
            ).fetchone()
            assert row is not None
            state = _issue_from_row(row)
            mutate(state)
            if state.key != key:
                raise ValueError(f"update_issue_state: key changed from {key!r}")
            self._write_issue(conn, state)
        return state

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, name: str, data: dict[str, Any]) -> None:
        """Store (replace) a checkpoint. ``data`` must be JSON-serialisable."""
        payload = json.dumps(data, sort_keys=True)
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO checkpoints (name, data, updated_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET data = excluded.data,"
                " updated_at = excluded.updated_at",
                (name, payload, self._clock()),
            )

    def load_checkpoint(self, name: str) -> dict[str, Any] | None:
        """The checkpoint saved under ``name``, or None."""
        with self._conn() as conn:
            row = conn.execute("SELECT data FROM checkpoints WHERE name = %s", (name,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def clear_checkpoint(self, name: str) -> None:
        """Forget the checkpoint ``name`` (no error if absent)."""
        with self._conn() as conn:
            conn.execute("DELETE FROM checkpoints WHERE name = %s", (name,))

    # ------------------------------------------------------------------ HTTP cache

    def get_etag(self, url: str) -> tuple[str, str] | None:
        """``(etag, payload)`` cached for ``url``, or None."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT etag, payload FROM http_cache WHERE url = %s", (url,)
            ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def put_etag(self, url: str, etag: str, payload: str) -> None:
        """Cache the ETag and payload returned for ``url``."""
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO http_cache (url, etag, payload, updated_at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (url) DO UPDATE SET etag = excluded.etag,"
                " payload = excluded.payload, updated_at = excluded.updated_at",
                (url, etag, payload, self._clock()),
            )

    # ------------------------------------------------------------------ corrections (issue 11)

    def record_correction(self, correction: Correction) -> None:
        """Keep a maintainer's correction as a labelled example; the latest per issue wins."""
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO corrections (issue_key, title, body, labels, expect, confidential,"
                " recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (issue_key)"
                " DO UPDATE SET title = excluded.title, body = excluded.body,"
                " labels = excluded.labels, expect = excluded.expect,"
                " confidential = excluded.confidential, recorded_at = excluded.recorded_at",
                (correction.key, correction.title, correction.body,
                 json.dumps(list(correction.labels)), json.dumps(list(correction.expect)),
                 bool(correction.confidential), self._clock()),
            )

    def corrections(self) -> list[Correction]:
        """Every kept correction, oldest first."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT issue_key, title, body, labels, expect, confidential FROM corrections"
                " ORDER BY recorded_at, issue_key").fetchall()
        return [Correction(str(r[0]), str(r[1]), str(r[2]), tuple(json.loads(r[3])),
                           tuple(json.loads(r[4])), bool(r[5])) for r in rows]

    # ------------------------------------------------------------------ decisions log

    def record_decision(
        self, key: str, delivery_id: str | None, decision_json: str, dry_run: bool
    ) -> int:
        """Append a decision (or a dry-run plan) to the log; return its id."""
        with self._conn() as conn:
            row = conn.execute(
                "INSERT INTO decisions (issue_key, delivery_id, decision_json, dry_run,"
                " recorded_at) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (key, delivery_id, decision_json, bool(dry_run), self._clock()),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def recent_decisions(self, limit: int = 50, key: str | None = None) -> list[DecisionRecord]:
        """The latest ``limit`` decisions, newest first (optionally for one issue)."""
        with self._conn() as conn:
            if key is None:
                rows = conn.execute(
                    "SELECT id, issue_key, delivery_id, decision_json, dry_run, recorded_at"
                    " FROM decisions ORDER BY id DESC LIMIT %s",
                    (limit,),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT id, issue_key, delivery_id, decision_json, dry_run, recorded_at"
                    " FROM decisions WHERE issue_key = %s ORDER BY id DESC LIMIT %s",
                    (key, limit),
                ).fetchall()
        return [
            DecisionRecord(id=int(r[0]), key=str(r[1]), delivery_id=r[2],
                           decision_json=str(r[3]), dry_run=bool(r[4]),
                           recorded_at=float(r[5]))
            for r in rows
        ]

    # ------------------------------------------------------------------ leadership

    def try_lead(self, name: str) -> bool:
        """Take (or keep) the leader lock ``name``: a session advisory lock on a dedicated
        connection. True while held; a lost connection means lost leadership."""
        with self._leads_lock:
            if self._closed:
                return False
            conn = self._leads.get(name)
            if conn is not None:
                try:
                    conn.execute("SELECT 1")
                    return True
                except psycopg.Error:
                    self._leads.pop(name, None)
                    _close_quietly(conn)
            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                       keepalives=1, keepalives_idle=10,
                                       keepalives_interval=5, keepalives_count=3)
            except psycopg.Error:
                return False
            try:
                # The server's side of the keepalive: a vanished host ends the session (and
                # its lock) within ~25 s instead of the OS default of hours.
                conn.execute("SET tcp_keepalives_idle = 10")
                conn.execute("SET tcp_keepalives_interval = 5")
                conn.execute("SET tcp_keepalives_count = 3")
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_NS, _lead_key(name))
                ).fetchone()
            except psycopg.Error:
                _close_quietly(conn)
                return False
            if not row or not row[0]:
                _close_quietly(conn)
                return False
            self._leads[name] = conn
            return True

    def resign(self, name: str) -> None:
        """Give up the leader lock ``name`` (closing its session releases it)."""
        with self._leads_lock:
            conn = self._leads.pop(name, None)
        if conn is not None:
            # Unlock first: closing alone frees the lock only once the server has noticed the
            # session ended, and another replica asking meanwhile would be refused.
            with suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_NS, _lead_key(name)))
            _close_quietly(conn)

    # ------------------------------------------------------------------ migration from SQLite

    def import_sqlite(self, path: str) -> dict[str, int]:
        """Copy a SQLite state file into this (empty) database, in one transaction.

        Everything is copied: deliveries in every state (claims become due at once: the
        process that held them is stopped), issue state, checkpoints, ETags and decisions, in
        their original order. The file is opened read-only and left as it was. Raises
        :class:`StoreError` if this database already holds state or the file is not a bugbar
        state file. Returns rows copied per table.
        """
        import sqlite3
        from pathlib import Path

        source = Path(path)
        if not source.is_file():
            raise StoreError(f"{path}: no such file")
        try:
            src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open ({exc})") from None
        counts: dict[str, int] = {}
        try:
            tables = {r[0] for r in
                      src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = {"deliveries", "issue_state", "checkpoints", "http_cache",
                       "decisions"} - tables
            if missing:
                raise StoreError(f"{path}: not a bugbar state file "
                                 f"(no {', '.join(sorted(missing))} table)")
            columns = {r[1] for r in src.execute("PRAGMA table_info(deliveries)")}
            issue_col = "issue_key" if "issue_key" in columns else "NULL"
            now = self._clock()
            with self._tx() as conn:
                held = conn.execute(
                    "SELECT (SELECT COUNT(*) FROM deliveries) + (SELECT COUNT(*) FROM issue_state)"
                    " + (SELECT COUNT(*) FROM checkpoints) + (SELECT COUNT(*) FROM http_cache)"
                    " + (SELECT COUNT(*) FROM decisions)"
                ).fetchone()
                if held and held[0]:
                    raise StoreError(f"PostgreSQL at {self.where} already holds bugbar state: "
                                     "migrate into an empty database")
                with conn.cursor() as cur:
                    rows = src.execute(
                        "SELECT provider, delivery_id, event_name, headers, body, state, attempts,"
                        " received_at, available_at, lease_owner, outcome, last_error,"
                        f" finished_at, {issue_col} FROM deliveries ORDER BY pk"
                    ).fetchall()
                    fixed = []
                    for r in rows:
                        row = list(r)
                        if row[5] == CLAIMED:  # its process is stopped: due now
                            row[8], row[9] = min(float(row[8]), now), None
                        row[4] = None if row[4] is None else bytes(row[4])
                        fixed.append(tuple(row))
                    cur.executemany(
                        "INSERT INTO deliveries (provider, delivery_id, event_name, headers, body,"
                        " state, attempts, received_at, available_at, lease_owner, outcome,"
                        " last_error, finished_at, issue_key) VALUES"
                        " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", fixed)
                    counts["deliveries"] = len(fixed)
                    rows = src.execute(
                        f"SELECT {_ISSUE_COLUMNS}, stored_at FROM issue_state ORDER BY key"
                    ).fetchall()
                    cur.executemany(
                        f"INSERT INTO issue_state ({_ISSUE_COLUMNS}, stored_at) VALUES"
                        " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
                    counts["issue_state"] = len(rows)
                    rows = src.execute("SELECT name, data, updated_at FROM checkpoints").fetchall()
                    cur.executemany("INSERT INTO checkpoints (name, data, updated_at)"
                                    " VALUES (%s, %s, %s)", rows)
                    counts["checkpoints"] = len(rows)
                    rows = src.execute(
                        "SELECT url, etag, payload, updated_at FROM http_cache").fetchall()
                    cur.executemany("INSERT INTO http_cache (url, etag, payload, updated_at)"
                                    " VALUES (%s, %s, %s, %s)", rows)
                    counts["http_cache"] = len(rows)
                    rows = [
                        (r[0], r[1], r[2], bool(r[3]), r[4])
                        for r in src.execute(
                            "SELECT issue_key, delivery_id, decision_json, dry_run, recorded_at"
                            " FROM decisions ORDER BY id")
                    ]
                    cur.executemany("INSERT INTO decisions (issue_key, delivery_id, decision_json,"
                                    " dry_run, recorded_at) VALUES (%s, %s, %s, %s, %s)", rows)
                    counts["decisions"] = len(rows)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot read ({exc})") from None
        finally:
            src.close()
        return counts


def _close_quietly(conn: psycopg.Connection[Any]) -> None:
    with suppress(psycopg.Error):
        conn.close()


def _reason(exc: BaseException) -> str:
    """A one-line reason without the URL (which may hold a password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
