"""The README tells a new user what is true: the install they get, the test command CI runs,
the Action, and no references to files or history the repository does not have."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _first_commands() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", README, re.DOTALL)[:2]


def test_first_command_is_the_regular_install() -> None:
    install, _ = _first_commands()
    # A regular (non-editable) install, with the semantic model the README recommends.
    assert "pip install '.[semantic]' &&" in install
    assert "-e" not in install.split("pip install")[1]
    assert install.endswith("bugbar classify --sample --format text")


def test_second_command_is_what_ci_runs() -> None:
    _, tests = _first_commands()
    assert tests.endswith("pip install -e '.[test]' && python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[test]'" in ci
    assert ci.rstrip().splitlines()[-1] == "python -m pytest"


def test_workflow_uses_the_action() -> None:
    assert "uses: OWNER/bugbar@v1" in README and (ROOT / "action.yml").is_file()
    assert "pip install \"bugbar @ git+" not in README


def test_no_reference_to_files_the_repository_lacks() -> None:
    for text in (README, (ROOT / "bot" / "rules" / "settings.yml").read_text()):
        assert "DESIGN" not in text
    # Docstrings and docs must not send a reader to a design file that is not here either.
    for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "docs").glob("*.md")]:
        assert "DESIGN" not in path.read_text(encoding="utf-8"), path
    for link in re.findall(r"\]\(([^)#:]+)\)", README):
        assert (ROOT / link).exists(), link


def test_numbers_are_current_facts_not_history() -> None:
    for phrase in ("start of the session", "this session", "(was "):
        assert phrase not in README, phrase


def test_ci_workflow_starts_the_postgresql_the_suite_needs() -> None:
    """GitHub sets CI=true, under which the PostgreSQL tests fail instead of skipping when no
    server answers at 127.0.0.1:5432; the workflow must therefore start one (trust auth)."""
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["test"]
    services = job.get("services") or {}
    pg = [s for s in services.values() if str(s.get("image", "")).startswith("postgres")]
    assert pg, "ci.yml runs the suite with CI=true but starts no PostgreSQL service"
    assert "5432:5432" in [str(p) for p in pg[0].get("ports", [])]
    assert pg[0].get("env", {}).get("POSTGRES_HOST_AUTH_METHOD") == "trust"
