"""The Store contract (bot/store_base.py), run against SQLite and PostgreSQL alike.

Every public method of :class:`bot.store_base.StateStore` is exercised here on both backends.
The PostgreSQL half uses the server on the machine (see ``pg_url`` in conftest.py): it skips
with one line when none is reachable, and fails instead under ``CI=true``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.store import SCHEMA_VERSION, IssueState, StoreError
from bot.store_base import StateStore, open_store
from tests.fakes.clock import FakeClock

Factory = Callable[..., StateStore]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The state location for this run: a SQLite file or a freshly wiped PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    from tests.pg import wipe

    url: str = request.getfixturevalue("pg_url")
    open_store(url).close()  # migrate first, so there is something to wipe
    wipe(url)
    return url


@pytest.fixture
def make(backend: str) -> Iterator[Factory]:
    """Open stores on the backend (several may share it); all are closed afterwards."""
    opened: list[StateStore] = []

    def factory(clock: Callable[[], float] | None = None) -> StateStore:
        store = open_store(backend, clock=clock)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(make: Factory, clock: FakeClock) -> StateStore:
    return make(clock)


def _put(store: StateStore, delivery_id: str, *, issue: str | None = None,
         provider: str = "github", body: bytes = b"{}") -> bool:
    return store.put_delivery(provider, delivery_id, "issues", {"X-Event": "issues"}, body,
                              issue_key=issue)


# ---------------------------------------------------------------- opening, schema


def test_factory_picks_the_backend(backend: str, store: StateStore) -> None:
    from bot.store import Store

    if backend.startswith("postgresql://"):
        from bot.store_pg import PG_SCHEMA_VERSION, PgStore

        assert isinstance(store, PgStore)
        assert store.schema_version() == PG_SCHEMA_VERSION
    else:
        assert isinstance(store, Store)
        assert store.schema_version() == SCHEMA_VERSION
    assert isinstance(store, StateStore)


def test_sqlite_url_forms(tmp_path: Path) -> None:
    from bot.store import Store

    for target in (f"sqlite://{tmp_path}/a.db", f"sqlite:{tmp_path}/b.db", str(tmp_path / "c.db"),
                   str(tmp_path / "new" / "dir" / "d.db")):
        with open_store(target) as s:
            assert isinstance(s, Store)
    assert {p.name for p in tmp_path.glob("*.db")} == {"a.db", "b.db", "c.db"}
    assert (tmp_path / "new" / "dir" / "d.db").exists()
    with pytest.raises(ValueError):
        open_store("sqlite:")


def _set_version(backend: str, version: int) -> None:
    if backend.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(backend, autocommit=True) as conn:
            conn.execute("UPDATE schema_version SET version = %s", (version,))
    else:
        import sqlite3

        conn = sqlite3.connect(backend)
        conn.execute("UPDATE schema_version SET version = ?", (version,))
        conn.commit()
        conn.close()


def test_newer_schema_is_refused(backend: str, make: Factory) -> None:
    current = make().schema_version()
    _set_version(backend, current + 1)
    try:
        with pytest.raises(StoreError, match="newer"):
            open_store(backend)
    finally:
        _set_version(backend, current)
    assert make().schema_version() == current


def test_replicas_starting_together_migrate_once(backend: str) -> None:
    """Four stores opened at once on a fresh database all see one, complete schema."""
    if backend.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(backend, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS schema_version, deliveries, issue_state,"
                         " checkpoints, http_cache, decisions, checkpoint_leases")
    opened: list[StateStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            opened.append(open_store(backend))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == [] and len(opened) == 4
        assert len({s.schema_version() for s in opened}) == 1
        assert opened[0].put_delivery("github", "x", "issues", {}, b"")
        assert not opened[3].put_delivery("github", "x", "issues", {}, b"")
    finally:
        for s in opened:
            s.close()


def test_reopen_keeps_everything(make: Factory, clock: FakeClock) -> None:
    first = make(clock)
    assert _put(first, "d1")
    first.save_checkpoint("sweep", {"page": 3})
    first.close()
    again = make(clock)
    assert not _put(again, "d1")
    assert again.load_checkpoint("sweep") == {"page": 3}
    assert again.depth() == 1


def test_closed_store_refuses_use(make: Factory) -> None:
    s = make()
    s.close()
    with pytest.raises(StoreError):
        s.depth()


# ---------------------------------------------------------------- inbox


def test_put_is_idempotent_per_provider(store: StateStore) -> None:
    assert _put(store, "abc") is True
    assert _put(store, "abc") is False
    assert _put(store, "abc", provider="gitlab") is True
    assert store.stats()["pending"] == 2


def test_duplicates_recognised_in_every_state(store: StateStore) -> None:
    for name in ("p", "c", "d"):
        _put(store, name)
    done = store.claim_next("w")
    assert done is not None and done.delivery_id == "p"
    store.complete(done.pk, "ok")
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.delivery_id == "c"
    dead = store.claim_next("w")
    assert dead is not None
    assert store.fail(dead.pk, "boom", retry_in=0, max_attempts=1) == "dead"
    assert store.stats() == {"pending": 0, "claimed": 1, "done": 1, "dead": 1}
    for name in ("p", "c", "d"):
        assert _put(store, name) is False


def test_claim_returns_everything_in_arrival_order(store: StateStore, clock: FakeClock) -> None:
    store.put_delivery("github", "first", "issues", {"X-GitHub-Event": "issues"}, b"\x00body1")
    clock.advance(1)
    store.put_delivery("jira", "second", "jira:issue_updated", {}, b"body2")
    clock.advance(1)
    store.put_delivery("gitlab", "third", "Note Hook", {"X-Gitlab-Event": "Note Hook"}, b"3")
    first = store.claim_next("w1")
    assert first is not None
    assert (first.provider, first.delivery_id, first.event_name) == ("github", "first", "issues")
    assert first.headers == {"X-GitHub-Event": "issues"}
    assert first.body == b"\x00body1"
    assert first.attempts == 1
    assert first.received_at == clock.now - 2
    rest = [store.claim_next("w2"), store.claim_next("w3")]
    assert [d.delivery_id for d in rest if d] == ["second", "third"]
    assert store.claim_next("w4") is None


def test_lease_expiry_makes_a_claim_claimable_again(store: StateStore, clock: FakeClock) -> None:
    _put(store, "a")
    first = store.claim_next("w1", lease_seconds=30)
    assert first is not None
    clock.advance(29)
    assert store.claim_next("w2") is None
    clock.advance(1)
    again = store.claim_next("w2", lease_seconds=30)
    assert again is not None and again.pk == first.pk
    assert again.attempts == 2 and again.body == first.body
    # the first worker lost it: its heartbeat says so
    assert store.renew_lease(first.pk, "w1", 30) is False


def test_renew_lease_is_a_heartbeat(store: StateStore, clock: FakeClock) -> None:
    _put(store, "long")
    d = store.claim_next("w1", lease_seconds=10)
    assert d is not None
    for _ in range(5):  # 50 s of work on a 10 s lease, renewed every 8 s
        clock.advance(8)
        assert store.renew_lease(d.pk, "w1", 10) is True
        assert store.claim_next("w2", lease_seconds=10) is None
    store.complete(d.pk, "ok")
    assert store.renew_lease(d.pk, "w1", 10) is False  # done: nothing to renew


def test_repeatedly_expiring_lease_goes_dead(store: StateStore, clock: FakeClock) -> None:
    _put(store, "poison")
    for attempt in range(1, 4):
        d = store.claim_next("w", lease_seconds=10, max_attempts=3)
        assert d is not None and d.attempts == attempt
        clock.advance(10)
    assert store.claim_next("w", lease_seconds=10, max_attempts=3) is None
    (dead,) = store.dead_letters()
    assert dead.attempts == 3 and dead.last_error and "lease expired" in dead.last_error


def test_release_dead_claims(backend: str, store: StateStore, clock: FakeClock) -> None:
    import socket

    host = socket.gethostname()
    for name in ("mine-dead", "mine-alive", "elsewhere"):
        _put(store, name)
    owners = {"mine-dead": f"{host}:999999:0", "mine-alive": f"{host}:1:0",
              "elsewhere": "other-host:42:0"}
    claims = {}
    for name in ("mine-dead", "mine-alive", "elsewhere"):
        d = store.claim_next(owners[name], lease_seconds=300)
        assert d is not None and d.delivery_id == name
        claims[name] = d
    asked: list[str] = []

    def alive(worker: str) -> bool:
        asked.append(worker)
        return worker != owners["mine-dead"] and worker != owners["elsewhere"]

    released = store.release_dead_claims(alive)
    assert owners["mine-dead"] in asked and owners["mine-alive"] in asked
    on_pg = backend.startswith("postgresql://")
    if on_pg:  # only this host's workers are judged; another host's claims run out by lease
        assert released == 1 and owners["elsewhere"] not in asked
    else:  # a SQLite file has no other host: every claim's owner is asked
        assert released == 2 and owners["elsewhere"] in asked
    again = store.claim_next("new", lease_seconds=300)
    assert again is not None and again.delivery_id == "mine-dead"
    assert again.attempts == 2  # the dead worker's attempt still counts
    other = store.claim_next("new", lease_seconds=300)
    assert (other is None) if on_pg else (other is not None and other.delivery_id == "elsewhere")
    assert store.renew_lease(claims["mine-alive"].pk, owners["mine-alive"], 300)
    assert store.release_dead_claims(lambda w: True) == 0


def test_fail_retry_then_dead(store: StateStore, clock: FakeClock) -> None:
    _put(store, "flaky", body=b'{"secret": "do not log me please"}')
    for attempt in range(1, 4):
        d = store.claim_next("w")
        assert d is not None and d.attempts == attempt
        state = store.fail(d.pk, f"HTTP 502 on attempt {attempt}", retry_in=60, max_attempts=3)
        if attempt < 3:
            assert state == "pending" and store.depth() == 1
            clock.advance(59)
            assert store.claim_next("w") is None
            clock.advance(1)
        else:
            assert state == "dead"
    assert store.stats() == {"pending": 0, "claimed": 0, "done": 0, "dead": 1}
    (dead,) = store.dead_letters()
    assert (dead.delivery_id, dead.last_error) == ("flaky", "HTTP 502 on attempt 3")
    assert dead.failed_at == clock.now


def test_fail_truncates_and_redacts_the_body(store: StateStore) -> None:
    body = b'{"issue": {"title": "a long enough body to be recognised"}}'
    _put(store, "e", body=body)
    d = store.claim_next("w")
    assert d is not None
    store.fail(d.pk, "bad payload: " + body.decode() + " " + "x" * 10_000, 0, max_attempts=1)
    (dead,) = store.dead_letters()
    assert dead.last_error is not None and len(dead.last_error) <= 2000
    assert dead.last_error.startswith("bad payload: <body redacted>")


def test_complete_and_fail_of_unknown_or_done(store: StateStore) -> None:
    with pytest.raises(KeyError):
        store.complete(12345, "ok")
    with pytest.raises(KeyError):
        store.fail(12345, "err", 1)
    _put(store, "x")
    d = store.claim_next("w")
    assert d is not None
    store.complete(d.pk, "ok")
    assert store.fail(d.pk, "late failure", 0) == "done"
    assert store.claim_next("w") is None


def test_retry_dead_one_and_all(store: StateStore) -> None:
    for name in ("a", "b", "c"):
        _put(store, name)
        d = store.claim_next("w")
        assert d is not None
        store.fail(d.pk, "nope", retry_in=0, max_attempts=1)
    dead = store.dead_letters()
    assert [x.delivery_id for x in dead] == ["a", "b", "c"]
    assert store.retry_dead(dead[1].pk) == 1
    assert store.retry_dead(dead[1].pk) == 0
    again = store.claim_next("w")
    assert again is not None and again.delivery_id == "b" and again.attempts == 1
    store.complete(again.pk, "ok")
    assert store.retry_dead() == 2
    assert store.dead_letters() == [] and store.depth() == 2


def test_drop_dead_one_and_all(store: StateStore) -> None:
    for name in ("a", "b", "c"):
        _put(store, name)
        d = store.claim_next("w")
        assert d is not None
        store.fail(d.pk, "nope", retry_in=0, max_attempts=1)
    _put(store, "live")
    dead = store.dead_letters()
    assert store.drop_dead(dead[1].pk) == 1
    assert store.drop_dead(dead[1].pk) == 0  # no longer dead
    assert [x.delivery_id for x in store.dead_letters()] == ["a", "c"]
    # A dropped delivery is done, not pending, and its id is still a duplicate.
    assert store.stats()["dead"] == 2 and store.depth() == 1
    assert not _put(store, "b")
    assert store.drop_dead() == 2
    assert store.dead_letters() == [] and store.stats()["dead"] == 0
    assert store.depth() == 1  # the live delivery is untouched
    live = store.claim_next("w")
    assert live is not None and live.delivery_id == "live"
    assert store.retry_dead() == 0  # nothing dropped comes back


def test_depth_age_stats_prune(store: StateStore, clock: FakeClock) -> None:
    assert store.depth() == 0 and store.oldest_pending_age() is None
    _put(store, "old")
    clock.advance(10)
    _put(store, "new")
    clock.advance(5)
    assert store.depth() == 2 and store.oldest_pending_age() == 15
    d = store.claim_next("w")
    assert d is not None and d.delivery_id == "old"
    assert store.stats() == {"pending": 1, "claimed": 1, "done": 0, "dead": 0}
    assert store.oldest_pending_age() == 5
    store.complete(d.pk, "ok")
    clock.advance(100)
    assert store.prune(older_than_seconds=200) == 0
    clock.advance(101)
    assert store.prune(older_than_seconds=200) == 1
    assert store.stats() == {"pending": 1, "claimed": 0, "done": 0, "dead": 0}
    assert _put(store, "old") is True  # a pruned id is new again


def test_prune_removes_only_old_done_deliveries(store: StateStore, clock: FakeClock) -> None:
    """Pending, claimed and dead deliveries stay however old; dropped dead letters are done."""
    _put(store, "dead")
    d = store.claim_next("w", max_attempts=1)
    assert d is not None and store.fail(d.pk, "boom", 0.0, max_attempts=1) == "dead"
    _put(store, "dropped")
    d = store.claim_next("w", max_attempts=1)
    assert d is not None and store.fail(d.pk, "boom", 0.0, max_attempts=1) == "dead"
    assert store.drop_dead(d.pk) == 1
    _put(store, "claimed", issue="github:o/r#1")
    assert store.claim_next("w", lease_seconds=10_000) is not None
    _put(store, "pending", issue="github:o/r#1")  # behind the live claim on the same issue
    _put(store, "done")
    d = store.claim_next("w")
    assert d is not None and d.delivery_id == "done"
    store.complete(d.pk, "ok")
    clock.advance(1_000)
    assert store.prune(older_than_seconds=500) == 2
    assert store.stats() == {"pending": 1, "claimed": 1, "done": 0, "dead": 1}
    assert [x.delivery_id for x in store.dead_letters()] == ["dead"]
    assert not _put(store, "claimed") and not _put(store, "pending") and not _put(store, "dead")


# ---------------------------------------------------------------- per-issue serialisation


def test_one_live_claim_per_issue(store: StateStore, clock: FakeClock) -> None:
    _put(store, "i1-a", issue="github:o/r#1")
    _put(store, "i1-b", issue="github:o/r#1")
    _put(store, "i2-a", issue="github:o/r#2")
    _put(store, "none")
    a = store.claim_next("w1", lease_seconds=30)
    assert a is not None and a.delivery_id == "i1-a"
    b = store.claim_next("w2", lease_seconds=30)
    assert b is not None and b.delivery_id == "i2-a"  # i1-b waits for i1-a
    c = store.claim_next("w3", lease_seconds=30)
    assert c is not None and c.delivery_id == "none"
    assert store.claim_next("w4") is None
    store.complete(a.pk, "ok")
    d = store.claim_next("w4", lease_seconds=30)
    assert d is not None and d.delivery_id == "i1-b"


def test_an_expired_claim_frees_its_issue(store: StateStore, clock: FakeClock) -> None:
    _put(store, "x1", issue="jira:SEC-1")
    _put(store, "x2", issue="jira:SEC-1")
    first = store.claim_next("dies", lease_seconds=10)
    assert first is not None and first.delivery_id == "x1"
    assert store.claim_next("w") is None
    clock.advance(10)
    # the older delivery of the issue comes back first, and holds the issue again
    again = store.claim_next("w", lease_seconds=10)
    assert again is not None and again.delivery_id == "x1"
    assert store.claim_next("w2") is None


def test_failed_delivery_does_not_block_its_issue(store: StateStore, clock: FakeClock) -> None:
    _put(store, "f1", issue="gitlab:g/p#3")
    _put(store, "f2", issue="gitlab:g/p#3")
    d = store.claim_next("w")
    assert d is not None and d.delivery_id == "f1"
    store.fail(d.pk, "HTTP 502", retry_in=60)
    nxt = store.claim_next("w")
    assert nxt is not None and nxt.delivery_id == "f2"


def test_concurrent_claimers_never_overlap_on_an_issue(make: Factory) -> None:
    """Two store instances (two replicas), four threads each, three busy issues."""
    replicas = [make(), make()]
    for i in range(120):
        replicas[i % 2].put_delivery("github", f"d{i}", "issues", {}, b"{}",
                                     issue_key=f"github:o/r#{i % 3}")
    active: dict[str, str] = {}
    processed: list[str] = []
    overlaps: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(store: StateStore, name: str) -> None:
        try:
            barrier.wait()
            idle = 0
            while idle < 50:
                d = store.claim_next(name, lease_seconds=600)
                if d is None:
                    idle += 1
                    time.sleep(0.002)
                    continue
                idle = 0
                issue = f"github:o/r#{int(d.delivery_id[1:]) % 3}"
                with lock:
                    if issue in active:
                        overlaps.append(f"{d.delivery_id} with {active[issue]}")
                    active[issue] = d.delivery_id
                time.sleep(0.0005)  # "work": others try the same issue meanwhile
                with lock:
                    del active[issue]
                    processed.append(d.delivery_id)
                store.complete(d.pk, "ok")
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(replicas[n % 2], f"w{n}"))
               for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert overlaps == []
    assert sorted(processed) == sorted(f"d{i}" for i in range(120))  # each exactly once
    assert replicas[0].stats()["done"] == 120


def test_concurrent_puts_one_row_per_id(make: Factory) -> None:
    replicas = [make(), make()]
    ids = [f"id-{i}" for i in range(30)]
    new: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def putter(n: int) -> None:
        barrier.wait()
        for delivery_id in ids:
            if replicas[n % 2].put_delivery("github", delivery_id, "issues", {}, b"{}"):
                with lock:
                    new.append(delivery_id)

    threads = [threading.Thread(target=putter, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(new) == sorted(ids)
    assert replicas[1].depth() == 30


# ---------------------------------------------------------------- issue state, checkpoints...


def test_issue_state_roundtrip_and_replace(store: StateStore) -> None:
    key = "github:o/r#12"
    assert store.get_issue_state(key) is None
    state = IssueState(
        key=key, applied_labels={"threat/model-stealing", "severity/important"},
        removed_by_human={"route/security"}, comment_id="987654", decision_hash="d" * 64,
        content_hash="c" * 64, updated_at="2024-05-01T12:00:00Z", rules_version="2024.05",
        overrides={"severity": "moderate"}, seen_commands={"c-1": ["severity:moderate"]},
        extra={"jira_link": "SEC-9", "nested": {"n": [1, 2]}},
    )
    store.save_issue_state(state)
    assert store.get_issue_state(key) == state
    store.save_issue_state(IssueState(key=key))
    assert store.get_issue_state(key) == IssueState(key=key)
    store.save_issue_state(IssueState(key="jira:SEC-1", comment_id="p"))
    other = store.get_issue_state("jira:SEC-1")
    assert other is not None and other.comment_id == "p"


def test_update_issue_state_is_atomic_across_instances(make: Factory) -> None:
    replicas = [make(), make()]
    key = "github:o/r#1"

    def add_labels(n: int) -> None:
        for i in range(20):
            def add(s: IssueState, label: str = f"l{n}-{i}") -> None:
                s.applied_labels.add(label)

            replicas[n % 2].update_issue_state(key, add)

    threads = [threading.Thread(target=add_labels, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    state = replicas[0].get_issue_state(key)
    assert state is not None and len(state.applied_labels) == 80

    def boom(s: IssueState) -> None:
        s.comment_id = "should not be saved"
        raise RuntimeError("nope")

    with pytest.raises(RuntimeError):
        replicas[1].update_issue_state(key, boom)
    after = replicas[0].get_issue_state(key)
    assert after is not None and after.comment_id is None
    with pytest.raises(RuntimeError):
        replicas[1].update_issue_state("github:o/r#404", boom)
    assert replicas[0].get_issue_state("github:o/r#404") is None  # nothing left behind

    def rename(s: IssueState) -> None:
        s.key = "other"

    with pytest.raises(ValueError):
        replicas[0].update_issue_state(key, rename)


def test_checkpoints(store: StateStore) -> None:
    assert store.load_checkpoint("github:o/r") is None
    store.save_checkpoint("github:o/r", {"since": "2024-01-01", "page": 2})
    store.save_checkpoint("github:o/r", {"since": "2024-01-01", "page": 3})
    assert store.load_checkpoint("github:o/r") == {"since": "2024-01-01", "page": 3}
    store.clear_checkpoint("github:o/r")
    store.clear_checkpoint("github:o/r")
    assert store.load_checkpoint("github:o/r") is None


def test_etag_cache(store: StateStore) -> None:
    url = "https://api.github.com/repos/o/r/labels"
    assert store.get_etag(url) is None
    store.put_etag(url, 'W/"abc"', '["threat/x"]')
    assert store.get_etag(url) == ('W/"abc"', '["threat/x"]')
    store.put_etag(url, '"def"', "[]")
    assert store.get_etag(url) == ('"def"', "[]")


def test_decisions_log(store: StateStore, clock: FakeClock) -> None:
    first = store.record_decision("github:o/r#1", "d1", '{"threats": []}', dry_run=True)
    clock.advance(1)
    store.record_decision("github:o/r#2", None, '{"threats": ["x"]}', dry_run=False)
    clock.advance(1)
    store.record_decision("github:o/r#1", "d3", '{"threats": ["y"]}', dry_run=True)
    recent = store.recent_decisions(2)
    assert [r.key for r in recent] == ["github:o/r#1", "github:o/r#2"]
    assert recent[0].delivery_id == "d3" and recent[0].dry_run is True
    assert recent[1].delivery_id is None and recent[1].dry_run is False
    assert recent[1].recorded_at == clock.now - 1
    only_one = store.recent_decisions(10, key="github:o/r#1")
    assert [r.decision_json for r in only_one] == ['{"threats": ["y"]}', '{"threats": []}']
    assert only_one[-1].id == first


# ---------------------------------------------------------------- leadership


def test_one_leader_at_a_time(make: Factory) -> None:
    a, b = make(), make()
    assert a.try_lead("periodic-sweep") is True
    assert a.try_lead("periodic-sweep") is True  # keeps it
    assert b.try_lead("periodic-sweep") is False
    assert b.try_lead("other-job") is True  # names are independent
    a.resign("periodic-sweep")
    assert b.try_lead("periodic-sweep") is True
    assert a.try_lead("periodic-sweep") is False
    b.close()  # closing (like dying) lets go
    assert a.try_lead("periodic-sweep") is True


def test_leader_dies_and_another_takes_over(backend: str, tmp_path: Path) -> None:
    """A process holding the lock is killed with SIGKILL; the lock is free again."""
    import os
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    script = (
        "import os, signal, sys\n"
        "from bot.store_base import open_store\n"
        "s = open_store(sys.argv[1])\n"
        "assert s.try_lead('periodic-sweep')\n"
        "print('leading', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, backend], cwd=root, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "leading"
        with open_store(backend) as other:
            assert other.try_lead("periodic-sweep") is False
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            deadline = time.monotonic() + 30  # the server notices the closed socket
            while not other.try_lead("periodic-sweep"):
                assert time.monotonic() < deadline, "lock not released after SIGKILL"
                time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_periodic_sweep_runs_on_the_leader_only(make: Factory) -> None:
    """Two replicas' schedulers: one sweeps; when it dies the other takes over on schedule."""
    from datetime import UTC, datetime, timedelta

    from bot.sweep_cli import Schedule, SweepScheduler

    now = [datetime(2026, 5, 1, 12, 0, tzinfo=UTC)]
    ran: list[str] = []
    a_store, b_store = make(), make()
    a = SweepScheduler(Schedule.parse("1h"), lambda: ran.append("a"), store=a_store,
                       clock=lambda: now[0])
    b = SweepScheduler(Schedule.parse("1h"), lambda: ran.append("b"), store=b_store,
                       clock=lambda: now[0])
    assert a.run_pending() is True
    assert b.run_pending() is False and not b.leading
    now[0] += timedelta(hours=1)
    assert b.run_pending() is False
    assert a.run_pending() is True
    assert ran == ["a", "a"]
    a_store.close()  # the leading replica dies
    now[0] += timedelta(minutes=30)
    deadline = time.monotonic() + 30  # PostgreSQL ends the closed session's lock shortly
    while not b.lead():
        assert time.monotonic() < deadline, "the dead leader's lock was never released"
        time.sleep(0.05)
    assert b.run_pending() is False and b.leading  # leads now, but a swept 30 min ago
    now[0] += timedelta(minutes=30)
    assert b.run_pending() is True
    assert ran == ["a", "a", "b"]


def test_checkpoint_leases(store: StateStore, clock: FakeClock) -> None:
    import socket

    assert store.claim_checkpoint("sweep:apply:github:o/r", "a", 15) is None
    assert store.claim_checkpoint("sweep:apply:github:o/r", "b", 15) == "a"  # held
    assert store.claim_checkpoint("sweep:apply:github:o/r", "a", 15) is None  # its own
    assert store.claim_checkpoint("sweep:other", "b", 15) is None  # names are independent
    clock.advance(10)
    assert store.renew_checkpoint("sweep:apply:github:o/r", "a", 15) is True
    assert store.renew_checkpoint("sweep:apply:github:o/r", "b", 15) is False
    clock.advance(14)
    assert store.claim_checkpoint("sweep:apply:github:o/r", "b", 15) == "a"  # renewed
    clock.advance(1)
    assert store.claim_checkpoint("sweep:apply:github:o/r", "b", 15) is None  # expired
    assert store.renew_checkpoint("sweep:apply:github:o/r", "a", 15) is False  # lost it
    store.release_checkpoint("sweep:apply:github:o/r", "a")  # not a's: no-op
    assert store.claim_checkpoint("sweep:apply:github:o/r", "a", 15) == "b"
    store.release_checkpoint("sweep:apply:github:o/r", "b")
    assert store.claim_checkpoint("sweep:apply:github:o/r", "a", 15) is None
    # a dead owner's checkpoint lease on this host ends at once
    dead = f"{socket.gethostname()}:999999:0"
    assert store.claim_checkpoint("sweep:dead", dead, 15) is None
    assert store.claim_checkpoint("sweep:dead", "c", 15) == dead
    assert store.release_dead_claims(lambda owner: owner != dead) >= 1
    assert store.claim_checkpoint("sweep:dead", "c", 15) is None


def test_scheduler_survives_a_store_that_cannot_lead(make: Factory) -> None:
    from datetime import UTC, datetime

    from bot.sweep_cli import Schedule, SweepScheduler

    store = make()
    ran: list[int] = []
    scheduler = SweepScheduler(Schedule.parse("1h"), lambda: ran.append(1), store=store,
                               clock=lambda: datetime(2026, 5, 1, tzinfo=UTC))

    def broken(name: str) -> bool:
        raise OSError("database unreachable")

    store.try_lead = broken  # type: ignore[method-assign]
    assert scheduler.run_pending() is False and not scheduler.leading and ran == []


def test_corrections_are_kept_latest_per_issue(store: StateStore, clock: FakeClock) -> None:
    from bot.store import Correction

    assert store.corrections() == []
    store.record_correction(Correction("github:o/r#1", "T", "B", ("bug",), ("model-stealing",)))
    clock.advance(1)
    store.record_correction(Correction("github:o/r#2", "T2", "", (), (), confidential=True))
    clock.advance(1)
    store.record_correction(Correction("github:o/r#1", "T1", "B1", (), ()))
    kept = store.corrections()
    assert [c.key for c in kept] == ["github:o/r#2", "github:o/r#1"]
    assert kept[0].confidential and kept[0].expect == ()
    assert kept[1] == Correction("github:o/r#1", "T1", "B1", (), ())
    assert kept[1].to_example() == {"id": "github:o/r#1", "title": "T1", "body": "B1",
                                    "labels": [], "expect": [], "source": "correction"}
