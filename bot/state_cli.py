"""``bugbar state``: look at the state and move it from a SQLite file to PostgreSQL.

* ``bugbar state migrate --from bugbar.db --to postgresql://…`` copies everything (inbox in
  every state, issue state, checkpoints, ETags, decisions) into an empty PostgreSQL database in
  one transaction; the file is only read. Stop ``bugbar serve`` first, migrate, then start the
  replicas with ``BUGBAR_STATE=postgresql://…`` (docs/deploy.md).
* ``bugbar state info [--state …]`` prints the backend, schema version and inbox counts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.cli import CliError

__all__ = ["register"]


def cmd_state(args: argparse.Namespace) -> int:
    """Dispatch ``bugbar state ACTION``."""
    if args.action == "migrate":
        return _migrate(args)
    return _info(args)


def _migrate(args: argparse.Namespace) -> int:
    from bot.store import StoreError
    from bot.store_base import is_postgres_url, sqlite_path

    source, target = args.source, args.target
    if not source or not target:
        raise CliError("state migrate needs --from FILE.db and --to postgresql://…")
    if is_postgres_url(source):
        raise CliError("state migrate --from takes the SQLite file (PostgreSQL to SQLite is "
                       "not supported)")
    if not is_postgres_url(target):
        raise CliError("state migrate --to takes a postgresql:// URL")
    try:
        path = sqlite_path(source)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    store = _open_pg(target)
    try:
        counts = store.import_sqlite(str(path))
    except StoreError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    print(f"copied {path} to PostgreSQL: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    return 0


def _open_pg(url: str) -> Any:
    from bot.store import StoreError
    from bot.store_base import POSTGRES_EXTRA_HINT

    try:
        from bot.store_pg import PgStore
    except ImportError:
        raise CliError(POSTGRES_EXTRA_HINT) from None
    try:
        return PgStore(url)
    except StoreError as exc:
        raise CliError(f"cannot open state: {exc}") from None


def _info(args: argparse.Namespace) -> int:
    from bot.app_cli import load_config, open_store

    config = load_config(args)
    store = open_store(config, create=False)
    try:
        kind = type(store).__name__
        backend = "PostgreSQL" if kind == "PgStore" else "SQLite"
        stats = store.stats()
        # Which state this is, so a user sees at once the file or database the variable picked
        # (PgStore.where carries no password).
        where = getattr(store, "where", None) or str(Path(config.state_path).resolve())
        print(f"{backend} state at {where}, schema version {store.schema_version()}")
        print("inbox: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))
    finally:
        store.close()
    return 0


def register(sub: Any, rules_opt: argparse.ArgumentParser) -> None:
    """Add ``bugbar state`` to the command line."""
    p = sub.add_parser("state", help="show the state, or migrate it from SQLite to PostgreSQL",
                       description="migrate: copy a SQLite state file into an empty PostgreSQL "
                                   "database (stop bugbar serve first). info: backend, schema "
                                   "version and inbox counts of --state / $BUGBAR_STATE.")
    p.add_argument("action", choices=("migrate", "info"),
                   help="info: show the state; migrate: copy SQLite into PostgreSQL")
    p.add_argument("--from", dest="source", metavar="FILE", help="migrate: the SQLite file")
    p.add_argument("--to", dest="target", metavar="URL", help="migrate: postgresql://…")
    p.add_argument("--state", help="info: state to show (default $BUGBAR_STATE or bugbar.db)")
    p.set_defaults(func=cmd_state)
