"""``action.yml``: a composite action that installs bugbar from its own checkout and runs
``handle-event`` or ``sweep`` depending on the event.

The structure is checked from the parsed YAML, and the Triage step's script is run with bash
the way the runner runs it: its ``env:`` block evaluated (inputs, ``github.*``, ``runner.temp``)
and the runner's files (``GITHUB_EVENT_PATH``, ``GITHUB_STEP_SUMMARY``, ``GITHUB_OUTPUT``) in
place. One run goes all the way to the fake GitHub; the others record the command line.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.decide.render import MARKER_PREFIX
from tests.fakes.github_api import FakeGitHub
from tests.test_github_e2e import REPO, STEAL, TOKEN, issues_payload

ROOT = Path(__file__).resolve().parents[1]
ACTION: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text())
STEPS: list[dict[str, Any]] = ACTION["runs"]["steps"]
BASH = shutil.which("bash")
_EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def step(step_id: str) -> dict[str, Any]:
    return next(s for s in STEPS if s.get("id") == step_id)


def test_composite_action_structure() -> None:
    assert ACTION["name"] == "bugbar" and ACTION["description"]
    assert ACTION["runs"]["using"] == "composite"
    inputs = ACTION["inputs"]
    for name in ("token", "dry-run", "max-changes", "reserve", "rules", "state"):
        assert name in inputs and inputs[name]["description"], name
    assert inputs["token"]["default"] == "${{ github.token }}"
    assert inputs["dry-run"]["default"] == "false"
    assert ACTION["outputs"]["decision"]["value"] == "${{ steps.bugbar.outputs.decision }}"
    assert STEPS[0]["uses"].startswith("actions/setup-python@")
    install = STEPS[1]
    assert install["env"]["BUGBAR_SOURCE"] == "${{ github.action_path }}"
    # With the semantic model: the Action is how most GitHub users run bugbar.
    assert 'pip install --quiet --disable-pip-version-check "$BUGBAR_SOURCE[semantic]"' \
        in install["run"]
    assert " -e " not in install["run"]  # a real install: the wheel path users get
    for s in STEPS[1:]:
        assert s["shell"] == "bash"
        # Inputs reach scripts only through env: nothing to inject into the shell.
        assert "${{" not in s["run"], s["name"]


def test_every_input_is_used() -> None:
    text = json.dumps(STEPS)
    for name in ACTION["inputs"]:
        assert f"inputs.{name}" in text, name


def _evaluate(expr: str, inputs: dict[str, str], context: dict[str, str]) -> str:
    if expr.startswith("inputs."):
        name = expr.removeprefix("inputs.")
        value = inputs.get(name, ACTION["inputs"][name].get("default", ""))
        return _EXPR.sub(lambda m: _evaluate(m.group(1), inputs, context), str(value))
    return context[expr]


def run_step(tmp_path: Path, event_name: str, bugbar_bin: Path, *,
             inputs: dict[str, str] | None = None, payload: dict[str, Any] | None = None,
             api_url: str = "https://api.github.com") -> subprocess.CompletedProcess[str]:
    """Run the Triage step's script as the runner would."""
    assert BASH is not None
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(payload or {}))
    runner_temp = tmp_path / "runner-temp"
    (runner_temp / "bugbar-venv" / "bin").mkdir(parents=True, exist_ok=True)
    target = runner_temp / "bugbar-venv" / "bin" / "bugbar"
    shutil.copy2(bugbar_bin, target)
    context = {"github.token": TOKEN, "github.api_url": api_url,
               "runner.temp": str(runner_temp), "github.action_path": str(ROOT)}
    triage = step("bugbar")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BUGBAR_", "GITHUB_", "INPUT_"))}
    for name, value in triage["env"].items():
        env[name] = _EXPR.sub(lambda m: _evaluate(m.group(1), inputs or {}, context), value)
    env.update(GITHUB_ACTIONS="true", GITHUB_EVENT_NAME=event_name,
               GITHUB_EVENT_PATH=str(event_path), GITHUB_REPOSITORY=REPO,
               GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"),
               GITHUB_OUTPUT=str(tmp_path / "output.txt"), PYTHONPATH=str(ROOT),
               BUGBAR_LOG_LEVEL="WARNING")
    return subprocess.run([BASH, "-e", "-c", triage["run"]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def recorder(tmp_path: Path) -> Path:
    """A stand-in for the installed ``bugbar`` that writes its arguments to a file."""
    script = tmp_path / "record-bugbar"
    script.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done '
                      f'> {shlex.quote(str(tmp_path / "argv.txt"))}\n'
                      'env | grep "^BUGBAR_" | sort > '
                      f'{shlex.quote(str(tmp_path / "env.txt"))}\n')
    script.chmod(0o755)
    return script


def _argv(tmp_path: Path) -> list[str]:
    return (tmp_path / "argv.txt").read_text().splitlines()


def _env(tmp_path: Path) -> dict[str, str]:
    lines = (tmp_path / "env.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


@pytest.mark.parametrize(("event", "inputs", "expected"), [
    ("issues", {}, ["handle-event", "github", "--event", "issues", "--payload", "EVENT"]),
    ("issue_comment", {"dry-run": "true"},
     ["handle-event", "github", "--event", "issue_comment", "--payload", "EVENT", "--dry-run"]),
    ("schedule", {}, ["sweep", f"github:{REPO}", "--quiet", "--reserve", "100",
                      "--max-changes", "50", "--apply"]),
    ("workflow_dispatch", {"dry-run": "true", "max-changes": "", "reserve": "7"},
     ["sweep", f"github:{REPO}", "--quiet", "--reserve", "7"]),
], ids=["issues", "comment-dry-run", "schedule", "dispatch-dry-run"])
def test_event_picks_the_command(tmp_path: Path, recorder: Path, event: str,
                                 inputs: dict[str, str], expected: list[str]) -> None:
    proc = run_step(tmp_path, event, recorder, inputs=inputs)
    assert proc.returncode == 0, proc.stderr
    tail = ["--summary", str(tmp_path / "summary.md"), "--output", str(tmp_path / "output.txt")]
    want = [str(tmp_path / "event.json") if a == "EVENT" else a for a in expected]
    assert _argv(tmp_path) == want + tail


def test_inputs_become_bugbar_variables(tmp_path: Path, recorder: Path) -> None:
    inputs = {"token": "ghp_fromsecret", "rules": ".github/bugbar-rules", "state": "s.db",
              "identity": "my-bot", "api-url": "https://ghe.example/api/v3"}
    assert run_step(tmp_path, "issues", recorder, inputs=inputs).returncode == 0
    env = _env(tmp_path)
    assert env["BUGBAR_GITHUB_TOKEN"] == "ghp_fromsecret"
    assert env["BUGBAR_RULES"] == ".github/bugbar-rules" and env["BUGBAR_STATE"] == "s.db"
    assert env["BUGBAR_GITHUB_IDENTITY"] == "my-bot"
    assert env["BUGBAR_GITHUB_API_URL"] == "https://ghe.example/api/v3"
    # Empty optional inputs are unset, not empty: bugbar's own defaults apply.
    assert run_step(tmp_path, "issues", recorder).returncode == 0
    env = _env(tmp_path)
    assert "BUGBAR_RULES" not in env and "BUGBAR_GITHUB_IDENTITY" not in env
    assert env["BUGBAR_GITHUB_TOKEN"] == TOKEN


@pytest.fixture()
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(tokens=[TOKEN], login="bugbar-bot") as server:
        server.add_repo(REPO, id=4242)
        yield server


@pytest.fixture()
def real_bugbar(tmp_path: Path) -> Path:
    script = tmp_path / "real-bugbar"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m bot.cli "$@"\n')
    script.chmod(0o755)
    return script


def _outputs(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    values, i = {}, 0
    while i < len(lines):
        name, delim = lines[i].split("<<")
        end = lines.index(delim, i + 1)
        values[name] = "\n".join(lines[i + 1:end])
        i = end + 1
    return values


def test_issue_event_dry_run_writes_summary_and_decision_output(
        tmp_path: Path, fake: FakeGitHub, real_bugbar: Path) -> None:
    n = fake.add_issue(REPO, *STEAL)
    proc = run_step(tmp_path, "issues", real_bugbar, api_url=fake.url,
                    inputs={"dry-run": "true", "identity": "bugbar-bot",
                            "state": str(tmp_path / "bugbar.db")},
                    payload=issues_payload("opened", n, *STEAL))
    assert proc.returncode == 0, proc.stderr
    assert fake.writes == []
    summary = (tmp_path / "summary.md").read_text()
    assert "dry run: nothing was written" in summary
    assert "| category | `model-stealing`" in summary and MARKER_PREFIX in summary
    outputs = _outputs(tmp_path / "output.txt")
    assert outputs["outcome"] == "dry-run"
    decision = json.loads(outputs["decision"])
    assert decision["decision"]["threats"][0]["category"] == "model-stealing"
    assert decision["comment"] and "threat/model-stealing" in decision["add_labels"]


def test_unhandled_event_fails_the_step_with_one_line(tmp_path: Path, fake: FakeGitHub,
                                                      real_bugbar: Path) -> None:
    proc = run_step(tmp_path, "pull_request", real_bugbar, api_url=fake.url,
                    payload={"action": "opened", "repository": {"full_name": REPO}})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "--event 'pull_request' is not an event bugbar handles" in proc.stderr
