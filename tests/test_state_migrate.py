"""``bugbar state migrate``: a SQLite state file into PostgreSQL; the postgres extra's error."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.store import IssueState, Store, StoreError


@pytest.fixture
def empty_pg(pg_url: str) -> str:
    from bot.store_base import open_store
    from tests.pg import wipe

    open_store(pg_url).close()
    wipe(pg_url)
    return pg_url


def _filled_sqlite(path: Path) -> None:
    clock = [1_700_000_000.0]
    with Store(path, clock=lambda: clock[0]) as s:
        for n, name in enumerate(("done", "claimed", "dead", "pending")):
            s.put_delivery("github", name, "issues", {"X-GitHub-Event": "issues"},
                           f"body of {name}".encode(), issue_key=f"github:o/r#{n}")
            clock[0] += 1
        d = s.claim_next("old-host:1:0", 600)
        assert d is not None and d.delivery_id == "done"
        s.complete(d.pk, "triaged")
        c = s.claim_next("old-host:1:0", 600)
        assert c is not None and c.delivery_id == "claimed"
        x = s.claim_next("old-host:1:0", 600)
        assert x is not None and x.delivery_id == "dead"
        s.fail(x.pk, "HTTP 404", 0, max_attempts=1)
        s.save_issue_state(IssueState(key="github:o/r#1", applied_labels={"threat/x"},
                                      comment_id="77", seen_commands={"c": ["a"]},
                                      extra={"k": [1]}))
        s.save_issue_state(IssueState(key="jira:SEC-2", removed_by_human={"route/y"}))
        s.save_checkpoint("sweep-schedule", {"last_run": "2026-01-01T00:00:00+00:00"})
        s.put_etag("https://api.github.com/repos/o/r/labels", 'W/"e"', "[]")
        for i in range(3):
            s.record_decision(f"github:o/r#{i}", f"d{i}", f'{{"n": {i}}}', dry_run=i == 1)


def test_migrate_copies_everything(tmp_path: Path, empty_pg: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from bot.store_pg import PgStore

    db = tmp_path / "bugbar.db"
    _filled_sqlite(db)
    before = db.read_bytes()
    assert main(["state", "migrate", "--from", str(db), "--to", empty_pg]) == 0
    out = capsys.readouterr().out
    assert "4 deliveries" in out and "2 issue_state" in out and "3 decisions" in out
    assert db.read_bytes() == before  # the file is only read
    with PgStore(empty_pg) as pg:
        assert pg.stats() == {"pending": 1, "claimed": 1, "done": 1, "dead": 1}
        for name in ("done", "claimed", "dead", "pending"):  # every id is known
            assert not pg.put_delivery("github", name, "issues", {}, b"")
        # the stopped process's claim is due at once, in the original order
        first = pg.claim_next("new:1:0", 60)
        second = pg.claim_next("new:1:1", 60)
        assert first is not None and second is not None
        assert (first.delivery_id, first.body, first.attempts) == ("claimed",
                                                                   b"body of claimed", 2)
        assert first.headers == {"X-GitHub-Event": "issues"}
        assert second.delivery_id == "pending"
        (dead,) = pg.dead_letters()
        assert dead.delivery_id == "dead" and dead.last_error == "HTTP 404"
        state = pg.get_issue_state("github:o/r#1")
        assert state == IssueState(key="github:o/r#1", applied_labels={"threat/x"},
                                   comment_id="77", seen_commands={"c": ["a"]},
                                   extra={"k": [1]})
        assert pg.get_issue_state("jira:SEC-2") == IssueState(key="jira:SEC-2",
                                                              removed_by_human={"route/y"})
        assert pg.load_checkpoint("sweep-schedule") == {
            "last_run": "2026-01-01T00:00:00+00:00"}
        assert pg.get_etag("https://api.github.com/repos/o/r/labels") == ('W/"e"', "[]")
        recent = pg.recent_decisions(10)
        assert [(r.key, r.delivery_id, r.dry_run) for r in recent] == [
            ("github:o/r#2", "d2", False), ("github:o/r#1", "d1", True),
            ("github:o/r#0", "d0", False)]
        # new rows continue after the copied ones
        assert pg.record_decision("k", None, "{}", dry_run=False) > recent[0].id
    # a second run refuses: the target is not empty, and nothing changes
    assert main(["state", "migrate", "--from", str(db), "--to", empty_pg]) != 0
    err = capsys.readouterr().err
    assert err.startswith("bugbar: ") and "already holds bugbar state" in err
    assert len(err.strip().splitlines()) == 1


def test_migrate_reads_a_file_from_before_issue_keys(tmp_path: Path, empty_pg: str) -> None:
    from bot.store_pg import PgStore

    db = tmp_path / "old.db"
    with Store(db) as s:
        s.put_delivery("gitlab", "g1", "Issue Hook", {}, b"x")
    conn = sqlite3.connect(db)
    conn.execute("DROP INDEX deliveries_issue")
    conn.execute("ALTER TABLE deliveries DROP COLUMN issue_key")
    conn.execute("UPDATE schema_version SET version = 2")
    conn.commit()
    conn.close()
    assert main(["state", "migrate", "--from", str(db), "--to", empty_pg]) == 0
    with PgStore(empty_pg) as pg:
        d = pg.claim_next("w", 60)
        assert d is not None and d.delivery_id == "g1"


@pytest.mark.parametrize("argv, message", [
    (["--from", "/nope/missing.db", "--to", "postgresql://x@127.0.0.1/y"], "no such file"),
    (["--from", "a.db", "--to", "b.db"], "--to takes a postgresql:// URL"),
    (["--from", "postgresql://x@h/d", "--to", "postgresql://x@h/e"], "not supported"),
    (["--to", "postgresql://x@h/e"], "needs --from"),
])
def test_migrate_bad_arguments_one_line(argv: list[str], message: str, empty_pg: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    argv = [empty_pg if a == "postgresql://x@127.0.0.1/y" else a for a in argv]
    assert main(["state", "migrate", *argv]) != 0
    err = capsys.readouterr().err
    assert err.startswith("bugbar: ") and message in err and err.count("\n") == 1


def test_not_a_state_file(tmp_path: Path, empty_pg: str,
                          capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert main(["state", "migrate", "--from", str(other), "--to", empty_pg]) != 0
    assert "not a bugbar state file" in capsys.readouterr().err


def test_state_info_on_both_backends(tmp_path: Path, empty_pg: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from bot.store import SCHEMA_VERSION
    from bot.store_pg import PG_SCHEMA_VERSION

    Store(tmp_path / "s.db").close()
    assert main(["state", "info", "--state", str(tmp_path / "s.db")]) == 0
    assert capsys.readouterr().out.startswith(
        f"SQLite state at {(tmp_path / 's.db').resolve()}, schema version {SCHEMA_VERSION}")
    secret_url = empty_pg.replace("postgres@", "postgres:hunter2@", 1)
    assert main(["state", "info", "--state", secret_url]) == 0
    out = capsys.readouterr().out
    where = empty_pg.split("@", 1)[1].split("?")[0].replace("127.0.0.1/", "127.0.0.1:5432/")
    assert out.startswith(f"PostgreSQL state at {where}, schema version {PG_SCHEMA_VERSION}")
    assert "hunter2" not in out
    assert "pending 0" in out


def test_unreachable_postgres_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://bugbar:s3cret-pw@127.0.0.1:1/bugbar?connect_timeout=2"
    assert main(["state", "info", "--state", url]) != 0
    err = capsys.readouterr().err
    assert err.startswith("bugbar: cannot open state: PostgreSQL at 127.0.0.1:1/bugbar")
    assert "s3cret-pw" not in err and err.count("\n") == 1


def test_missing_postgres_extra_names_it(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from bot.store_base import open_store

    monkeypatch.setitem(sys.modules, "bot.store_pg", None)  # as if psycopg were absent
    with pytest.raises(StoreError, match=r"pip install 'bugbar\[postgres\]'"):
        open_store("postgresql://u@127.0.0.1/db")
    assert main(["deliveries", "--state", "postgresql://u@127.0.0.1/db"]) != 0
    err = capsys.readouterr().err
    assert err == "bugbar: PostgreSQL state needs the postgres extra: pip install " \
                  "'bugbar[postgres]'\n"
