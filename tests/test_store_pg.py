"""PostgreSQL-only behaviour: connections the server drops, and the leader session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.store_pg import PgStore


@pytest.fixture
def pg(pg_url: str) -> Iterator[str]:
    from tests.pg import wipe

    PgStore(pg_url).close()
    wipe(pg_url)
    yield pg_url


def _terminate_others(url: str, where: str = "") -> int:
    """End every other session on the database (as a server restart or failover would)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()" + where
        ).fetchall()
    return len(rows)


def test_a_dropped_pooled_connection_does_not_fail_the_ack(pg: str) -> None:
    with PgStore(pg, max_connections=1) as store:
        assert store.put_delivery("github", "before", "issues", {}, b"x")
        assert _terminate_others(pg) >= 1  # the pool's one idle connection is now dead
        # the next insert finds it dead, takes a fresh connection and goes on
        assert store.put_delivery("github", "after", "issues", {}, b"y")
        assert not store.put_delivery("github", "after", "issues", {}, b"y")
        assert store.depth() == 2


def test_leadership_is_lost_with_its_session(pg: str) -> None:
    with PgStore(pg) as a, PgStore(pg) as b:
        assert a.try_lead("periodic-sweep")
        assert not b.try_lead("periodic-sweep")
        # the leader's dedicated session goes away (its host vanished, a failover...)
        _terminate_others(pg, " AND query LIKE '%pg_try_advisory_lock%'")
        assert b.try_lead("periodic-sweep")
        assert not a.try_lead("periodic-sweep")  # a notices it lost the lock


def test_credentials_never_appear_in_errors(pg: str) -> None:
    from bot.store import StoreError

    url = pg.replace("postgres@", "postgres:hunter2-secret@").replace(":5432/", ":1/")
    with pytest.raises(StoreError) as info:
        PgStore(url + "?connect_timeout=1", connect_timeout=1)
    assert "hunter2-secret" not in str(info.value)
    assert str(info.value).startswith("PostgreSQL at 127.0.0.1:1/")


def test_serve_sizes_the_pool_for_its_workers(pg: str) -> None:
    from dataclasses import replace

    from bot.app_cli import open_store
    from bot.config import Config

    config = replace(Config(), state_path=pg)
    for workers, size in ((0, 10), (2, 10), (8, 20)):
        store = open_store(config, workers=workers)
        try:
            assert isinstance(store, PgStore)
            assert store._pool.max_size == size
        finally:
            store.close()


@pytest.mark.parametrize("change", ["port", "database"])
def test_a_wrong_url_names_the_cause(pg: str, change: str, caplog: pytest.LogCaptureFixture,
                                     ) -> None:
    """The libpq reason (refused, no such database), not the pool's "incomplete after 10 s",
    and no retry log lines from the pool before the one error."""
    from bot.store import StoreError

    base = pg.rsplit("/", 1)[0]
    url = pg.replace(":5432/", ":1/") if change == "port" else base + "/no_such_db_x"
    with pytest.raises(StoreError) as info:
        PgStore(url)
    message = str(info.value)
    assert "pool initialization incomplete" not in message
    assert ("refused" in message) if change == "port" else ('"no_such_db_x" does not exist'
                                                             in message)
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]
