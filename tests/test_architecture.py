"""The decision core stays pure: nothing in bot/decide imports network, clock or env I/O."""

from __future__ import annotations

import ast
from pathlib import Path

DECIDE = Path(__file__).resolve().parents[1] / "bot" / "decide"
FORBIDDEN = {
    "socket", "http", "urllib", "requests", "httpx", "sqlite3", "subprocess", "threading",
    "asyncio", "time", "datetime", "random", "github", "gitlab", "jira", "tenacity",
    "starlette", "uvicorn", "prometheus_client", "logging", "bot.store", "bot.providers",
    "bot.handlers", "bot.events", "bot.server", "bot.cli",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_decide_imports_no_io() -> None:
    offenders = []
    for path in sorted(DECIDE.glob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                offenders.append(f"{path.name}: {name}")
    assert not offenders, offenders


def test_decide_reads_no_environment() -> None:
    for path in sorted(DECIDE.glob("*.py")):
        text = path.read_text()
        assert "os.environ" not in text and "getenv" not in text, path.name


def test_forbidden_list_would_catch_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import requests\nfrom bot.store import Store\n")
    assert {"requests", "bot.store"} <= _imports(bad)
