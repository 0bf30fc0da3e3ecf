"""What users install: the wheel, in a fresh virtualenv, used from an empty folder.

The wheel is built once per session (``pip wheel --no-deps`` from a copy of the tracked
sources, so nothing in this checkout leaks in) and installed into a new venv without system
site-packages; dependencies come from the package index as pip is configured. Every command
then runs from an empty temporary folder: the rules and sample data must come from the wheel.
``handle-event`` talks to the fake GitHub over loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import __version__
from bot.decide.render import MARKER_PREFIX
from tests.fakes.github_api import FakeGitHub
from tests.test_github_e2e import REPO, STEAL, TOKEN, issues_payload

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "bot")
RULE_FILES = 10  # nine categories + settings.yml


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a clean copy of the sources (no build dirs, caches or .so).

    ``.ci/run`` builds it from the clean clone before anything else and names it in
    ``BUGBAR_TEST_WHEEL``; then that wheel, the one CI built, is the one tested.
    """
    given = os.environ.get("BUGBAR_TEST_WHEEL")
    if given:
        path = Path(given)
        assert path.is_file() and path.name.startswith("bugbar-"), f"BUGBAR_TEST_WHEEL={given}"
        return path
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.so", "*.c", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist),
                 str(src)], cwd=src)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [built] = dist.glob("bugbar-*.whl")
    return built


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with the wheel and its dependencies."""
    env_dir = tmp_path_factory.mktemp("venv")
    # No pip inside (ensurepip takes seconds): this interpreter's pip installs into it.
    venv.EnvBuilder(with_pip=False, system_site_packages=False, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    proc = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                 str(wheel)], cwd=env_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env_dir / "bin" / "bugbar"


@pytest.fixture()
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BUGBAR_", "GITHUB_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def bugbar(exe: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _run([str(exe), *args], cwd=cwd, env=_env(**env), timeout=120)


def test_wheel_carries_rules_sample_data_and_license(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    rules = [n for n in names if n.startswith("bot/rules/") and n.endswith(".yml")]
    assert len(rules) == RULE_FILES, rules
    assert "bot/data/sample_issues.jsonl" in names and "bot/py.typed" in names
    # The semantic model's training examples, prebuilt head and code ship in the wheel.
    assert {"bot/data/train_labelled.jsonl", "bot/data/train_plain.jsonl",
            "bot/data/semantic_head.npz", "bot/semantic/model.py"} <= set(names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text and f"Version: {__version__}" in text


def test_version_classify_and_rule_tests_from_an_empty_folder(installed: Path,
                                                              empty: Path) -> None:
    proc = bugbar(installed, empty, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"bugbar {__version__}"

    proc = bugbar(installed, empty, "classify", "--sample")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) >= 10 and any(d["threats"] for d in lines)
    assert any(not d["threats"] for d in lines)
    # Installed without [semantic]: the rules alone, and one info line saying so.
    assert proc.stderr.strip().splitlines() == [
        "bugbar: info: semantic model not installed (pip install 'bugbar[semantic]'); "
        "triaging with the rules only"], proc.stderr
    proc = bugbar(installed, empty, "classify", "--sample", BUGBAR_SEMANTIC="1")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "pip install 'bugbar[semantic]'" in proc.stderr and "Traceback" not in proc.stderr

    proc = bugbar(installed, empty, "rules", "test")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith(" failed") and ", 0 failed" in proc.stdout

    # --rules adds a folder over the shipped rules (which still come from the wheel).
    extra = empty.parent / "my-rules"
    extra.mkdir()
    (extra / "settings.yml").write_text("threshold: 1.2\n")
    proc = bugbar(installed, empty, "rules", "lint", "--rules", str(extra))
    assert proc.returncode == 0 and proc.stdout.startswith(f"ok: {RULE_FILES - 1} rules")
    assert sorted(p.name for p in empty.iterdir()) == []  # nothing written where it ran


@pytest.fixture()
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub(tokens=[TOKEN], login="bugbar-bot") as fake:
        fake.add_repo(REPO, id=4242)
        yield fake


def test_handle_event_dry_run_against_the_fake_github(installed: Path, empty: Path,
                                                      fake_github: FakeGitHub) -> None:
    n = fake_github.add_issue(REPO, *STEAL)
    event = empty.parent / "event.json"
    event.write_text(json.dumps(issues_payload("opened", n, *STEAL)))
    env = {"BUGBAR_GITHUB_TOKEN": TOKEN, "BUGBAR_GITHUB_API_URL": fake_github.url,
           "BUGBAR_LOG_LEVEL": "WARNING"}
    argv = ["handle-event", "github", "--event", "issues", "--payload", str(event)]

    proc = bugbar(installed, empty, *argv, "--dry-run", "--format", "text", **env)
    assert proc.returncode == 0, proc.stderr
    assert fake_github.writes == []
    assert "would add labels: threat/model-stealing" in proc.stdout
    assert "would create the comment:" in proc.stdout and MARKER_PREFIX in proc.stdout

    # Misconfigurations: one line each, non-zero, and still no write.
    proc = bugbar(installed, empty, *[("issue" if a == "issues" else a) for a in argv], **env)
    assert proc.returncode == 2 and "did you mean 'issues'" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr

    proc = bugbar(installed, empty, *argv, **{**env, "BUGBAR_GITHUB_TOKEN": ""})
    assert proc.returncode == 2 and "no credentials for github" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr

    proc = bugbar(installed, empty, *argv, **{**env, "BUGBAR_GITHUB_TOKEN": "ghp_rejected"})
    assert proc.returncode == 2 and "rejected the credentials" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert fake_github.writes == []


def test_serve_without_webhook_secret_refuses_to_start(installed: Path, empty: Path) -> None:
    proc = bugbar(installed, empty, "serve", "--port", "0", BUGBAR_GITHUB_TOKEN=TOKEN)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "BUGBAR_GITHUB_WEBHOOK_SECRET" in proc.stderr
    assert "Traceback" not in proc.stderr
