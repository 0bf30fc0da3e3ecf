"""PostgreSQL helpers for the tests: reachability, throwaway databases, a clean slate."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit, urlunsplit

TABLES = ("deliveries", "issue_state", "checkpoints", "http_cache", "decisions",
          "checkpoint_leases")


def unavailable(url: str) -> str | None:
    """Why ``url`` cannot be used (psycopg missing, server down), or None if it can."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        return f"psycopg is not installed ({exc.name}); pip install 'bugbar[postgres]'"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return first
    return None


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def admin_create(admin_url: str, name: str) -> tuple[str, str]:
    """Create (or recreate) database ``name``; its URL and name."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(admin_url, name), name


def admin_drop(admin_url: str, name: str) -> None:
    """Drop database ``name`` (sessions still on it are ended)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wipe(url: str) -> None:
    """Empty every bugbar table (schema kept) and drop leftover advisory-lock sessions."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('deliveries') IS NOT NULL").fetchone()
        if exists and exists[0]:
            conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY")


def main(argv: list[str]) -> int:
    """``python -m tests.pg create|drop ADMIN_URL NAME`` (used by .ci/run)."""
    action, admin_url, name = argv
    problem = unavailable(admin_url)
    if problem:
        print(f"tests.pg: PostgreSQL at {admin_url} is not usable: {problem}", file=sys.stderr)
        return 1
    if action == "create":
        admin_create(admin_url, name)
    elif action == "drop":
        admin_drop(admin_url, name)
    else:
        raise SystemExit(f"tests.pg: unknown action {action!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
