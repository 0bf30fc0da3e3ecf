"""``bugbar handle-event`` as a CI step: what it prints, what it refuses, and how it fails.

Runs the real command (``bot.cli.main``) in process against ``FakeGitHub`` over real HTTP:
dry runs show the decision, labels and full comment text and write nothing; misconfigured
runs (a misspelt ``--event``, a payload from another tracker, no token, a rejected token, an
unreachable API) end with one ``bugbar:`` line and a non-zero exit, fast, without retries.
"""

from __future__ import annotations

import functools
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bot.providers.retry as retry_module
from bot.cli import main
from bot.decide.render import MARKER_PREFIX
from bot.providers.retry import RetryPolicy
from bot.store import Store
from tests.fakes.github_api import FakeGitHub
from tests.test_github_e2e import (
    BOT,
    REPO,
    STEAL,
    STEAL_LABELS,
    TERSE,
    TOKEN,
    _user,
    comment_payload,
    issues_payload,
    label_payload,
)

Capture = pytest.CaptureFixture[str]


@pytest.fixture()
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(tokens=[TOKEN], login=BOT) as server:
        server.add_repo(REPO, id=4242)
        yield server


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeGitHub) -> Path:
    """A clean BUGBAR_* environment pointing at the fake; retries and pacing never sleep."""
    import os

    for name in list(os.environ):
        if name.startswith(("BUGBAR_", "GITHUB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BUGBAR_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("BUGBAR_GITHUB_API_URL", fake.url)
    monkeypatch.setenv("BUGBAR_STATE", str(tmp_path / "state.db"))
    monkeypatch.setenv("BUGBAR_LOG_LEVEL", "WARNING")

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s: a retry or a pacing wait")

    monkeypatch.setattr(retry_module, "RetryPolicy",
                        functools.partial(RetryPolicy, sleep=no_sleep, settle=0.0))
    monkeypatch.setenv("BUGBAR_WRITE_INTERVAL", "0")
    monkeypatch.setenv("BUGBAR_SETTLE_SECONDS", "0")
    monkeypatch.setattr(time, "sleep", no_sleep)
    return tmp_path


def payload_file(tmp_path: Path, payload: dict[str, Any], name: str = "event.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return str(path)


def one_error_line(capsys: Capture) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bugbar: ") and "Traceback" not in err
    return lines[0]


def test_dry_run_prints_decision_labels_and_comment_and_writes_nothing(
        env: Path, fake: FakeGitHub, capsys: Capture) -> None:
    n = fake.add_issue(REPO, *STEAL)
    path = payload_file(env, issues_payload("opened", n, *STEAL))
    assert main(["handle-event", "github", "--event", "issues", "--payload", path,
                 "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert fake.writes == []
    assert out["outcome"] == "dry-run" and out["dry_run"] is True
    assert out["issue"] == f"github:{REPO}#{n}"
    assert out["decision"]["threats"][0]["category"] == "model-stealing"
    assert set(out["add_labels"]) == STEAL_LABELS
    assert out["comment_action"] == "create"
    assert MARKER_PREFIX in out["comment"] and "model" in out["comment"].lower()

    # The decision log keeps the same comment text, and `bugbar decisions` shows it.
    with Store(env / "state.db") as store:
        [record] = store.recent_decisions(key=f"github:{REPO}#{n}")
    logged = json.loads(record.decision_json)
    assert record.dry_run and logged["comment"] == out["comment"]
    assert set(logged["add_labels"]) == STEAL_LABELS
    assert main(["decisions", f"{REPO}#{n}"]) == 0
    shown = capsys.readouterr().out
    assert "dry run (nothing written)" in shown and "+label threat/model-stealing" in shown
    first_line = out["comment"].splitlines()[0]
    assert f"    | {first_line}" in shown


def test_text_format_shows_the_comment_a_person_can_read(
        env: Path, fake: FakeGitHub, capsys: Capture) -> None:
    n = fake.add_issue(REPO, *STEAL)
    path = payload_file(env, issues_payload("opened", n, *STEAL))
    assert main(["handle-event", "github", "--event", "issues", "--payload", path,
                 "--dry-run", "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "dry run, nothing was written" in out
    assert "would add labels: threat/model-stealing" in out
    assert "would create the comment:" in out and "    | " in out
    assert fake.writes == []


def test_summary_and_outputs_for_github_actions(env: Path, fake: FakeGitHub,
                                                capsys: Capture) -> None:
    n = fake.add_issue(REPO, *STEAL)
    path = payload_file(env, issues_payload("opened", n, *STEAL))
    summary, outputs = env / "summary.md", env / "outputs.txt"
    summary.write_text("earlier step\n")
    assert main(["handle-event", "github", "--event", "issues", "--payload", path, "--dry-run",
                 "--summary", str(summary), "--output", str(outputs)]) == 0
    printed = json.loads(capsys.readouterr().out)
    md = summary.read_text()
    assert md.startswith("earlier step\n")  # appended, never overwritten
    assert "| category | `model-stealing`" in md and "| labels to add |" in md
    assert "<details><summary>Comment text</summary>" in md
    lines = outputs.read_text().splitlines()
    values: dict[str, str] = {}
    i = 0
    while i < len(lines):  # name<<DELIM / value / DELIM blocks, as the runner reads them
        name, delim = lines[i].split("<<")
        end = lines.index(delim, i + 1)
        values[name] = "\n".join(lines[i + 1:end])
        i = end + 1
    assert values["outcome"] == "dry-run"
    assert json.loads(values["decision"]) == printed


def test_misspelt_event_is_one_line_and_exit_2(env: Path, fake: FakeGitHub,
                                               capsys: Capture) -> None:
    n = fake.add_issue(REPO, *STEAL)
    path = payload_file(env, issues_payload("opened", n, *STEAL))
    assert main(["handle-event", "github", "--event", "issue", "--payload", path]) == 2
    line = one_error_line(capsys)
    assert "--event 'issue'" in line and "did you mean 'issues'" in line
    assert fake.requests == [] and not (env / "state.db").exists()


def test_scheduled_event_points_to_sweep(env: Path, capsys: Capture) -> None:
    path = payload_file(env, {"schedule": "17 3 * * *", "repository": {"full_name": REPO}})
    assert main(["handle-event", "github", "--event", "schedule", "--payload", path]) == 2
    assert "bugbar sweep" in one_error_line(capsys)


def test_event_name_is_required_for_github(env: Path, capsys: Capture) -> None:
    path = payload_file(env, issues_payload("opened", 1, *STEAL))
    assert main(["handle-event", "github", "--payload", path]) == 2
    assert "needs --event NAME" in one_error_line(capsys)


@pytest.mark.parametrize(("payload", "source"), [
    ({"object_kind": "issue", "event_type": "issue", "project": {"id": 1},
      "object_attributes": {"iid": 1, "action": "open"}}, "GitLab"),
    ({"webhookEvent": "jira:issue_created", "issue": {"key": "SEC-1"}}, "Jira"),
], ids=["gitlab", "jira"])
def test_payload_from_another_tracker_is_refused(env: Path, fake: FakeGitHub, capsys: Capture,
                                                 payload: dict[str, Any], source: str) -> None:
    path = payload_file(env, payload)
    assert main(["handle-event", "github", "--event", "issues", "--payload", path]) == 2
    line = one_error_line(capsys)
    assert f"looks like a {source} webhook" in line
    assert fake.requests == []


def test_payload_without_an_issue_is_refused(env: Path, fake: FakeGitHub,
                                             capsys: Capture) -> None:
    path = payload_file(env, {"action": "opened", "sender": {"login": "x"}})
    assert main(["handle-event", "github", "--event", "issues", "--payload", path]) == 2
    assert "payload field repository is missing" in one_error_line(capsys)
    # An action bugbar ignores would pass the parser: the missing issue is still an error.
    path = payload_file(env, {"action": "deleted", "sender": {"login": "x"}})
    assert main(["handle-event", "github", "--event", "issues", "--payload", path]) == 2
    assert "not a github issues event about an issue" in one_error_line(capsys)
    assert fake.requests == []


def test_ignored_action_is_fine_and_says_why(env: Path, fake: FakeGitHub,
                                             capsys: Capture) -> None:
    n = fake.add_issue(REPO, *STEAL)
    path = payload_file(env, issues_payload("closed", n, *STEAL))
    assert main(["handle-event", "github", "--event", "issues", "--payload", path]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] == "ignored" and out["reason"] == "action closed not handled"
    assert out["issue"] == f"github:{REPO}#{n}" and out["decision"] is None
    assert fake.writes == []


def test_missing_token_is_one_line_naming_the_variable(
        env: Path, fake: FakeGitHub, capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUGBAR_GITHUB_TOKEN")
    n = fake.add_issue(REPO, *STEAL)
    path = payload_file(env, issues_payload("opened", n, *STEAL))
    assert main(["handle-event", "github", "--event", "issues", "--payload", path]) == 2
    line = one_error_line(capsys)
    assert "no credentials for github" in line and "BUGBAR_GITHUB_TOKEN" in line
    assert fake.requests == []


def test_rejected_token_fails_at_once_with_one_line(
        env: Path, fake: FakeGitHub, capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUGBAR_GITHUB_TOKEN", "ghp_wrongwrongwrongwrongwrongwrong0000000")
    n = fake.add_issue(REPO, *STEAL)
    path = payload_file(env, issues_payload("opened", n, *STEAL))
    assert main(["handle-event", "github", "--event", "issues", "--payload", path]) == 2
    line = one_error_line(capsys)
    assert "rejected the credentials" in line and "BUGBAR_GITHUB_TOKEN" in line
    assert "HTTP 401" in line and "wrongwrong" not in line
    assert [r.path for r in fake.requests] == ["/rate_limit"]  # one request, no retries
    assert fake.writes == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_api_fails_fast_with_exit_1(
        env: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUGBAR_GITHUB_API_URL", f"http://127.0.0.1:{_closed_port()}")
    path = payload_file(env, issues_payload("opened", 1, *STEAL))
    # time.sleep raises in this test: a retry with back-off would fail it.
    assert main(["handle-event", "github", "--event", "issues", "--payload", path]) == 1
    line = one_error_line(capsys)
    assert "cannot reach the API" in line and "BUGBAR_GITHUB_API_URL" in line


def test_comment_deleted_before_its_reaction_is_not_an_error(
        env: Path, fake: FakeGitHub, capsys: Capture) -> None:
    n = fake.add_issue(REPO, *STEAL)
    fake.set_permission(REPO, "maint", "maintain")
    # The person wrote "/triage" and deleted the comment before bugbar ran: GitHub answers
    # the reaction with 404.
    payload = comment_payload("created", n, 987654, "/triage", _user("maint", 77))
    path = payload_file(env, payload)
    assert main(["handle-event", "github", "--event", "issue_comment",
                 "--payload", path]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    out = json.loads(captured.out)
    assert out["issue"] == f"github:{REPO}#{n}"
    assert set(fake.issue_labels(REPO, n)) == STEAL_LABELS  # the command itself ran


def test_tracker_failure_mid_run_is_one_line_exit_1_traceback_with_debug(
        env: Path, fake: FakeGitHub, capsys: Capture) -> None:
    path = payload_file(env, issues_payload("opened", 999, *STEAL))  # no such issue: 404
    argv = ["handle-event", "github", "--event", "issues", "--payload", path]
    assert main(argv) == 1
    line = one_error_line(capsys)
    assert "github: the tracker answered 404" in line and "--debug" in line
    assert main([*argv, "--debug"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bugbar: github: the tracker answered 404")
    assert "Traceback (most recent call last)" in err and TOKEN not in err


def test_gitlab_event_typo_and_github_payload_for_gitlab(env: Path, capsys: Capture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUGBAR_GITLAB_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("BUGBAR_GITLAB_TOKEN", "glpat-x")
    gitlab_payload = payload_file(env, {"object_kind": "issue", "project": {"id": 1},
                                        "object_attributes": {"iid": 1, "action": "open"}})
    assert main(["handle-event", "gitlab", "--event", "Issue hook",
                 "--payload", gitlab_payload]) == 2
    assert "did you mean 'Issue Hook'?" in one_error_line(capsys)
    github_payload = payload_file(env, issues_payload("opened", 1, *STEAL), "gh.json")
    assert main(["handle-event", "gitlab", "--event", "Issue Hook",
                 "--payload", github_payload]) == 2
    assert "looks like a GitHub webhook, not GitLab's" in one_error_line(capsys)


def test_log_level_debug_shows_the_traceback(env: Path, fake: FakeGitHub, capsys: Capture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUGBAR_LOG_LEVEL", "debug")
    path = payload_file(env, issues_payload("opened", 999, *STEAL))
    assert main(["handle-event", "github", "--event", "issues", "--payload", path]) == 1
    err = capsys.readouterr().err
    assert "bugbar: github: the tracker answered 404" in err and "Traceback" in err
    assert TOKEN not in err


def test_short_webhook_secret_is_one_line_and_exit_2(env: Path, fake: FakeGitHub,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: Capture) -> None:
    """A webhook secret under 8 characters would be guessable and (the log redaction skips
    such values) unredacted: refused before any request, naming the variable."""
    n = fake.add_issue(REPO, *STEAL)
    path = payload_file(env, issues_payload("opened", n, *STEAL))
    monkeypatch.setenv("BUGBAR_GITHUB_WEBHOOK_SECRET", "s")
    assert main(["handle-event", "github", "--event", "issues", "--payload", path]) == 2
    line = one_error_line(capsys)
    assert "BUGBAR_GITHUB_WEBHOOK_SECRET is too short" in line
    assert fake.requests == [] and not (env / "state.db").exists()


def test_label_events_in_github_actions(env: Path, fake: FakeGitHub, capsys: Capture) -> None:
    """The workflow subscribes to ``labeled``/``unlabeled``: a person's threat label triages
    the issue, a label no rule reads writes nothing and asks nothing of the issue."""
    n = fake.add_issue(REPO, *TERSE, labels=["threat/model-stealing"])
    path = payload_file(env, label_payload("labeled", n, TERSE, "threat/model-stealing",
                                           labels=("threat/model-stealing",)))
    assert main(["handle-event", "github", "--event", "issues", "--payload", path]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] == "triaged"
    assert set(fake.issue_labels(REPO, n)) == STEAL_LABELS
    assert [c["user"]["login"] for c in fake.comments(REPO, n)] == [BOT]

    writes = list(fake.writes)
    fake.edit_issue(REPO, n, labels=[*fake.issue_labels(REPO, n), "good first issue"])
    path = payload_file(env, label_payload("labeled", n, TERSE, "good first issue",
                                           labels=tuple(fake.issue_labels(REPO, n))))
    issue_reads = fake.count("GET", rf"/issues/{n}$")
    assert main(["handle-event", "github", "--event", "issues", "--payload", path]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "ignored-label"
    assert fake.writes == writes and fake.count("GET", rf"/issues/{n}$") == issue_reads
