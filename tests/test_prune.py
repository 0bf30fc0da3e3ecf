"""Retention: ``serve`` prunes done deliveries; ``bugbar deliveries prune`` does it by hand.

Only done deliveries older than the window go; pending, claimed and dead ones stay whatever
their age. The pruner's wait and the store's clock are injected, so nothing sleeps.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.config import Config, ConfigError
from bot.logs import configure_logging
from bot.metrics import Metrics
from bot.server import Pruner, ServerConfig, create_app
from bot.store import Store
from tests.conftest import github_env
from tests.fakes.clock import FakeClock
from tests.fakes.github_api import FakeGitHub

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

Capture = pytest.CaptureFixture[str]
DAY = 86_400.0
TOKEN = "ghp_pruneToken00000000000000000000000000"


def _done(store: Store, delivery_id: str) -> None:
    store.put_delivery("github", delivery_id, "issues", {}, b"{}")
    claimed = store.claim_next("w", 60.0)
    assert claimed is not None and claimed.delivery_id == delivery_id
    store.complete(claimed.pk, "triaged")


def _dead(store: Store, delivery_id: str) -> None:
    store.put_delivery("github", delivery_id, "issues", {}, b"{}")
    claimed = store.claim_next("w", 60.0, max_attempts=1)
    assert claimed is not None and claimed.delivery_id == delivery_id
    assert store.fail(claimed.pk, "boom", 0.0, 1) == "dead"


def _fill(store: Store, clock: FakeClock) -> None:
    """40 days ago: one done, one dead, one claimed (long lease) and one pending behind it (same
    issue, so it cannot be claimed yet); 10 days ago: one more done."""
    clock.now -= 40 * DAY
    _done(store, "old-done")
    _dead(store, "old-dead")
    store.put_delivery("github", "old-claimed", "issues", {}, b"{}", issue_key="github:o/r#9")
    claimed = store.claim_next("w", 100 * DAY)
    assert claimed is not None and claimed.delivery_id == "old-claimed"
    store.put_delivery("github", "old-pending", "issues", {}, b"{}", issue_key="github:o/r#9")
    clock.now += 30 * DAY
    _done(store, "recent-done")
    clock.now += 10 * DAY


def _known(store: Store) -> set[str]:
    """Delivery ids the store still recognises (a put of a known id is refused)."""
    ids = ("old-done", "old-dead", "old-pending", "recent-done", "old-claimed")
    return {i for i in ids if not store.put_delivery("github", i, "issues", {}, b"{}")}


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("INFO", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_pruner_loop_prunes_at_start_then_every_interval(
        tmp_path: Path, log_stream: io.StringIO) -> None:
    clock = FakeClock()
    waits: list[float] = []
    with Store(tmp_path / "s.db", clock=clock) as store:
        _fill(store, clock)

        def wait(stop: threading.Event, timeout: float) -> bool:
            waits.append(timeout)
            clock.now += timeout
            if len(waits) == 1:
                return False
            stop.set()  # third time round: end the loop
            return True

        pruner = Pruner(store, 30 * DAY, every_seconds=3600.0, wait=wait)
        pruner.run_forever()
        assert pruner.runs == 2 and pruner.removed == 1 and waits == [3600.0, 3600.0]
        # The old done delivery is gone (its id is new again); everything else is kept.
        assert store.stats() == {"pending": 1, "claimed": 1, "done": 1, "dead": 1}
        assert [d.delivery_id for d in store.dead_letters()] == ["old-dead"]
        assert _known(store) == {"old-dead", "old-pending", "recent-done", "old-claimed"}
    lines = [line for line in log_stream.getvalue().splitlines() if "pruned" in line]
    assert len(lines) == 1 and '"removed": 1' in lines[0], log_stream.getvalue()


def test_recent_done_goes_once_it_ages_past_the_window(tmp_path: Path) -> None:
    clock = FakeClock()
    with Store(tmp_path / "s.db", clock=clock) as store:
        _fill(store, clock)
        pruner = Pruner(store, 30 * DAY)
        assert pruner.run_once() == 1
        assert pruner.run_once() == 0  # idempotent: nothing left to remove
        clock.now += 21 * DAY  # "recent-done" is now 31 days old
        assert pruner.run_once() == 1
        assert store.stats() == {"pending": 1, "claimed": 1, "done": 0, "dead": 1}


def test_a_store_error_does_not_end_the_loop(tmp_path: Path) -> None:
    clock = FakeClock()
    with Store(tmp_path / "s.db", clock=clock) as store:
        _fill(store, clock)
        real = store.prune
        calls: list[float] = []

        def flaky(older_than_seconds: float) -> int:
            calls.append(older_than_seconds)
            if len(calls) == 1:
                raise OSError("database is away")
            return real(older_than_seconds)

        store.prune = flaky  # type: ignore[method-assign]
        waits: list[float] = []

        def wait(stop: threading.Event, timeout: float) -> bool:
            waits.append(timeout)
            if len(waits) == 2:  # after the second prune: stop
                stop.set()
            return stop.is_set()

        pruner = Pruner(store, 30 * DAY, wait=wait)
        pruner.run_forever()
        assert calls == [30 * DAY, 30 * DAY] and pruner.removed == 1


def test_create_app_prunes_at_start_up(tmp_path: Path) -> None:
    """With a retention window the lifespan starts the pruner, which prunes at once."""
    clock = FakeClock()
    pruned = threading.Event()

    def wait(stop: threading.Event, timeout: float) -> bool:
        pruned.set()  # the first prune has run; block until shutdown
        return stop.wait(5.0)

    config = ServerConfig(workers=0, retention_seconds=30 * DAY, prune_wait=wait)
    with Store(tmp_path / "s.db", clock=clock) as store:
        _fill(store, clock)
        app = create_app(config, store, lambda event: "noop", metrics=Metrics())
        with TestClient(app):
            assert pruned.wait(5.0)
            assert app.state.pruner.removed == 1
        assert store.stats()["done"] == 1
        # No window, no pruner.
        off = create_app(ServerConfig(workers=0), store, lambda event: "noop", metrics=Metrics())
        assert off.state.pruner is None


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(("raw", "days"), [
    ("", 30.0), ("7", 7.0), (" 1.5 ", 1.5), ("0", None), ("0.0", None), ("off", None),
    ("OFF", None),
])
def test_retention_days_values(raw: str, days: float | None) -> None:
    assert Config.from_env({"BUGBAR_RETENTION_DAYS": raw}).retention_days == days


@pytest.mark.parametrize("raw", ["soon", "-3", "nan", "inf", "1e9", "30d", "no"])
def test_bad_retention_days_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env({"BUGBAR_RETENTION_DAYS": raw})
    text = str(info.value)
    assert text.startswith("BUGBAR_RETENTION_DAYS must be") and repr(raw) in text
    assert "\n" not in text



def test_serve_refuses_a_malformed_retention_with_one_line(
        started: list[Any], clean_env: pytest.MonkeyPatch, capsys: Capture) -> None:
    github_env(clean_env, TOKEN)
    clean_env.setenv("BUGBAR_RETENTION_DAYS", "a month")
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bugbar: BUGBAR_RETENTION_DAYS must be")
    assert started == []


@pytest.mark.parametrize(("raw", "seconds"), [(None, 30 * DAY), ("2", 2 * DAY), ("off", None)])
def test_serve_takes_the_window_from_the_environment(
        started: list[Any], clean_env: pytest.MonkeyPatch, raw: str | None,
        seconds: float | None) -> None:
    if raw is not None:
        clean_env.setenv("BUGBAR_RETENTION_DAYS", raw)
    with FakeGitHub(tokens=[TOKEN]) as fake:
        github_env(clean_env, TOKEN, fake.url)
        assert main(["serve", "--port", "0"]) == 0
    [app] = started
    assert app.state.config.retention_seconds == seconds
    assert app.state.config.prune_every_seconds == 3600.0
    if seconds is None:
        assert app.state.pruner is None
    else:
        assert app.state.pruner.retention_seconds == seconds
    app.state.store.close()


# --------------------------------------------------------------------------- the command


@pytest.fixture()
def db(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A state file written 40 and 10 days ago by the wall clock (the command uses it too)."""
    path = tmp_path / "state.db"
    clean_env.setenv("BUGBAR_STATE", str(path))
    clock = FakeClock(time.time())
    with Store(path, clock=clock) as store:
        _fill(store, clock)
    return path


def _stats(path: Path) -> dict[str, int]:
    with Store(path) as store:
        return store.stats()


def test_deliveries_prune_uses_the_retention_setting(db: Path, capsys: Capture) -> None:
    assert main(["deliveries", "prune"]) == 0
    assert capsys.readouterr().out == "1 done delivery(ies) older than 30 day(s) removed\n"
    assert _stats(db) == {"pending": 1, "claimed": 1, "done": 1, "dead": 1}
    assert main(["deliveries", "prune"]) == 0
    assert capsys.readouterr().out.startswith("0 done")


def test_deliveries_prune_older_than(db: Path, clean_env: pytest.MonkeyPatch,
                                     capsys: Capture) -> None:
    clean_env.setenv("BUGBAR_RETENTION_DAYS", "off")  # --older-than works without a setting
    assert main(["deliveries", "prune", "--older-than", "5"]) == 0
    assert capsys.readouterr().out == "2 done delivery(ies) older than 5 day(s) removed\n"
    # Dead letters and live deliveries stay, however old.
    assert _stats(db) == {"pending": 1, "claimed": 1, "done": 0, "dead": 1}


def test_deliveries_prune_follows_the_environment(db: Path, clean_env: pytest.MonkeyPatch,
                                                  capsys: Capture) -> None:
    clean_env.setenv("BUGBAR_RETENTION_DAYS", "50")
    assert main(["deliveries", "prune"]) == 0
    assert capsys.readouterr().out.startswith("0 done delivery(ies) older than 50 day(s)")
    assert _stats(db)["done"] == 2


@pytest.mark.parametrize(("argv", "env", "needle"), [
    (["deliveries", "prune"], "off", "BUGBAR_RETENTION_DAYS is off"),
    (["deliveries", "prune", "d-1"], None, "deliveries prune takes no id"),
    (["deliveries", "prune", "--all"], None, "deliveries prune takes no id"),
    (["deliveries", "retry", "--all", "--older-than", "3"], None, "--older-than is for"),
], ids=["off", "id", "all", "other-action"])
def test_deliveries_prune_misuse_is_one_line(db: Path, clean_env: pytest.MonkeyPatch,
                                             capsys: Capture, argv: list[str],
                                             env: str | None, needle: str) -> None:
    if env is not None:
        clean_env.setenv("BUGBAR_RETENTION_DAYS", env)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bugbar: ") and needle in err, err
    assert _stats(db)["done"] == 2  # nothing removed


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_deliveries_prune_refuses_a_bad_window(db: Path, value: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["deliveries", "prune", "--older-than", value])
    assert info.value.code == 2
    assert _stats(db)["done"] == 2
