"""The commands that read the state database: ``deliveries`` and ``decisions``.

They never create a database (a misspelt ``--state`` is an error, not an empty listing), accept
the ids the listing shows, and print errors whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.decisions import format_decisions, issue_key
from bot.store import Store

Capture = pytest.CaptureFixture[str]
LONG_CAUSE = "the real cause is at the very end of this message: 502 Bad Gateway from the proxy"


@pytest.fixture()
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state file with two dead letters and one pending delivery."""
    for name in list(os.environ):
        if name.startswith("BUGBAR_"):
            monkeypatch.delenv(name)
    path = tmp_path / "state.db"
    monkeypatch.setenv("BUGBAR_STATE", str(path))
    with Store(path) as store:
        for delivery in ("d-0001", "d-0002"):
            store.put_delivery("github", delivery, "issues", {}, b"{}")
            claimed = store.claim_next("w", 60.0, max_attempts=1)
            assert claimed is not None
            store.fail(claimed.pk, "GithubException: " + "x" * 150 + " " + LONG_CAUSE, 0.0, 1)
        store.put_delivery("github", "d-0003", "issues", {}, b"{}")
    yield path


def _states(path: Path) -> dict[str, int]:
    with Store(path) as store:
        return store.stats()


def test_listing_shows_the_whole_error(db: Path, capsys: Capture) -> None:
    assert main(["deliveries"]) == 0
    out = capsys.readouterr().out
    assert "inbox: claimed 0, dead 2, done 0, pending 1" in out
    assert "d-0001" in out and LONG_CAUSE in out


def test_retry_by_delivery_id_as_listed(db: Path, capsys: Capture) -> None:
    assert main(["deliveries", "retry", "d-0002"]) == 0
    assert capsys.readouterr().out == "1 delivery(ies) queued again\n"
    assert _states(db)["dead"] == 1 and _states(db)["pending"] == 2


def test_retry_by_number_with_or_without_hash(db: Path, capsys: Capture) -> None:
    assert main(["deliveries", "retry", "#1"]) == 0
    assert main(["deliveries", "retry", "2"]) == 0
    assert _states(db)["dead"] == 0


@pytest.mark.parametrize("ident", ["99", "d-9999", "3"], ids=["number", "id", "not-dead"])
def test_retry_of_an_unknown_delivery_is_an_error(db: Path, capsys: Capture,
                                                  ident: str) -> None:
    assert main(["deliveries", "retry", ident]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no dead delivery {ident!r}" in err
    assert "#1 (d-0001)" in err  # what could be retried instead
    assert _states(db)["dead"] == 2


def test_retry_needs_an_id_or_all(db: Path, capsys: Capture) -> None:
    assert main(["deliveries", "retry"]) == 2
    assert "or --all" in capsys.readouterr().err
    assert main(["deliveries", "retry", "--all"]) == 0
    assert _states(db)["dead"] == 0


def test_drop_one_dead_letter_by_id_then_all(db: Path, capsys: Capture) -> None:
    assert main(["deliveries", "drop", "d-0001"]) == 0
    assert capsys.readouterr().out.startswith("1 dead delivery(ies) dropped")
    assert _states(db) == {"claimed": 0, "dead": 1, "done": 1, "pending": 1}
    assert main(["deliveries", "drop", "d-0001"]) == 2  # already dropped: not a dead letter
    assert "deliveries drop: no dead delivery 'd-0001'" in capsys.readouterr().err
    assert main(["deliveries", "drop", "--all"]) == 0
    assert _states(db) == {"claimed": 0, "dead": 0, "done": 2, "pending": 1}
    assert main(["deliveries", "retry", "--all"]) == 0  # nothing dropped comes back
    assert _states(db)["pending"] == 1
    with Store(db) as store:  # the dropped id is still known: a redelivery is a duplicate
        assert not store.put_delivery("github", "d-0002", "issues", {}, b"{}")


def test_drop_needs_an_id_or_all(db: Path, capsys: Capture) -> None:
    assert main(["deliveries", "drop"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deliveries drop needs one delivery" in err
    assert _states(db)["dead"] == 2


@pytest.mark.parametrize("argv", [["deliveries"], ["deliveries", "retry", "--all"],
                                  ["deliveries", "drop", "--all"], ["decisions"]],
                         ids=["list", "retry", "drop", "decisions"])
def test_a_misspelt_state_file_is_not_created(db: Path, tmp_path: Path, capsys: Capture,
                                              argv: list[str]) -> None:
    typo = tmp_path / "typo.db"
    assert main([*argv, "--state", str(typo)]) == 2
    err = capsys.readouterr().err
    assert f"state database {typo} does not exist" in err and err.count("\n") == 1
    assert not typo.exists()


# --------------------------------------------------------------------------- decisions


def _record(store: Store, key: str, dry_run: bool, comment: str | None) -> None:
    data = {"id": key, "threats": [{"category": "model-stealing", "score": 0.82,
                                    "severity": "important", "evidence": ["x"]}],
            "severity": "important", "route": ["security"],
            "plan": ["+label threat/model-stealing", "comment create"],
            "add_labels": ["threat/model-stealing"], "remove_labels": [],
            "comment_action": "create", "comment": comment}
    store.record_decision(key, "d-1", json.dumps(data), dry_run)


def test_decisions_lists_plan_and_comment(db: Path, capsys: Capture) -> None:
    with Store(db) as store:
        _record(store, "github:o/r#1", True, "**bugbar** line one\nline two")
        _record(store, "jira:SEC-4", False, None)
    assert main(["decisions"]) == 0
    out = capsys.readouterr().out
    assert out.index("jira:SEC-4") < out.index("github:o/r#1")  # newest first
    assert "github:o/r#1  dry run (nothing written)" in out
    assert "model-stealing (0.82); severity important; route security" in out
    assert "    | **bugbar** line one\n    | line two" in out
    assert main(["decisions", "SEC-4", "--format", "json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["issue"] == "jira:SEC-4"


def test_decisions_for_an_issue_without_any(db: Path, capsys: Capture) -> None:
    assert main(["decisions", "o/r#5"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no decisions recorded for github:o/r#5" in captured.err


def test_issue_keys() -> None:
    assert issue_key("o/r#12") == "github:o/r#12"
    assert issue_key("gitlab:g/p#3") == "gitlab:g/p#3"
    assert issue_key("SEC-7") == "jira:SEC-7"
    assert issue_key("gitlab:g/sub/p#3") == "gitlab:g/sub/p#3"


@pytest.mark.parametrize("spec", ["o/r", "github:o/r", "o/r#x", "jira:sec-7", "#12"])
def test_a_key_that_can_match_nothing_is_an_error(db: Path, capsys: Capture, spec: str) -> None:
    assert main(["decisions", spec]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"decisions: {spec!r} is not an issue" in err


def test_limit_must_be_positive(db: Path, capsys: Capture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["decisions", "--limit", "-1"])
    assert info.value.code == 2
    assert "--limit: must be at least 1" in capsys.readouterr().err


def test_old_records_without_comment_say_so() -> None:
    from bot.store import DecisionRecord

    rec = DecisionRecord(1, "github:o/r#1", None, json.dumps({"threats": [], "plan": []}),
                         False, 0.0)
    text = format_decisions([rec])
    assert "not an AI/ML threat" in text and "not recorded" in text


# --------------------------------------------------------------------------- wrong state


@pytest.mark.parametrize("create", [False, True], ids=["read", "create"])
def test_a_state_that_is_not_a_file_is_one_usage_error(tmp_path: Path, monkeypatch:
                                                       pytest.MonkeyPatch, create: bool) -> None:
    """A folder, another database's URL or an unwritable place: exit 2 naming BUGBAR_STATE,
    never an sqlite3 error with exit 1, never a folder called ``mysql:``."""
    from dataclasses import replace

    from bot.app_cli import open_store
    from bot.cli import CliError
    from bot.config import Config

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "state"
    folder.mkdir()
    cases = {str(folder): "is a folder", "mysql://db/bugbar": "mysql:// is not a state",
             "sqlite:///": "sqlite: needs a file"}
    if create:
        cases["/proc/bugbar.db"] = "give a file bugbar can create and write"
    for state, words in cases.items():
        with pytest.raises(CliError) as info:
            open_store(replace(Config(), state_path=state), create=create)
        assert words in str(info.value) and "BUGBAR_STATE" in str(info.value), state
        assert info.value.code == 2
    assert not (tmp_path / "mysql:").exists()
