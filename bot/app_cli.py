"""The bot's own sub-commands: serve, handle-event, deliveries (sweep registers itself too).

Everything here is I/O at the edge: read the environment, build trackers, start the server.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.app import Bot, TrackerFor
from bot.cli import CliError, build_classifier, load_ruleset
from bot.config import Config, ConfigError
from bot.decide.commands import CommandPolicy, PolicyError
from bot.events.model import IssueRef, WebhookError
from bot.logs import configure_logging, register_secret
from bot.metrics import Metrics
from bot.providers.base import Tracker
from bot.store import Store, StoreError

log = logging.getLogger("bugbar.cli")


def load_config(args: argparse.Namespace) -> Config:
    """Config from the environment, with command-line overrides; secrets registered for
    redaction before anything is logged."""
    try:
        config = Config.from_env()
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    for secret in config.secrets:
        register_secret(secret)
    if getattr(args, "dry_run", False):
        config = _replace(config, dry_run=True)
    if getattr(args, "state", None):
        config = _replace(config, state_path=args.state)
    return config


def _replace(config: Config, **changes: Any) -> Config:
    from dataclasses import replace

    return replace(config, **changes)


def build_trackers(
    config: Config, metrics: Metrics | None, store: Store | None = None
) -> dict[str, TrackerFor]:
    """One tracker factory per configured provider (the store doubles as the ETag cache)."""
    trackers: dict[str, TrackerFor] = {}
    if config.github_token or config.github_app_id:
        trackers["github"] = _github_factory(config, metrics, store)
    if config.gitlab_url and config.gitlab_token:
        from bot.providers.gitlab import GitLabTracker
        from bot.providers.retry import RetryPolicy, WritePacer

        gitlab = GitLabTracker(config.gitlab_url, config.gitlab_token, policy=RetryPolicy(),
                               pacer=WritePacer(), metrics=metrics,
                               confidential_mode=config.gitlab_confidential)
        trackers["gitlab"] = lambda ref, inst: gitlab
    if config.jira_url:
        from bot.providers.jira import JiraTracker
        from bot.providers.retry import RetryPolicy, WritePacer

        jira = JiraTracker(config.jira_url, email=config.jira_email or None,
                           token=config.jira_token or None, pat=config.jira_pat or None,
                           policy=RetryPolicy(), pacer=WritePacer(), metrics=metrics,
                           security_level=config.jira_security_level,
                           security_project=config.jira_security_project)
        trackers["jira"] = lambda ref, inst: jira
    return trackers


def _github_factory(config: Config, metrics: Metrics | None, store: Store | None) -> TrackerFor:
    from bot.providers.github import GitHubApp, GitHubTracker
    from bot.providers.retry import RetryPolicy, WritePacer

    if config.github_token and config.github_app_id:
        log.warning("BUGBAR_GITHUB_TOKEN and BUGBAR_GITHUB_APP_ID are both set: the token is "
                    "used and the App is not; unset one of them")
    if config.github_token:
        tracker = GitHubTracker.from_token(config.github_token, config.github_api_url,
                                           policy=RetryPolicy(), pacer=WritePacer(),
                                           metrics=metrics, etag_cache=store,
                                           identity=config.github_identity or None)
        return lambda ref, inst: tracker
    try:
        app = GitHubApp(config.github_app_id, config.github_private_key, config.github_api_url,
                        policy=RetryPolicy(), pacer=WritePacer(), metrics=metrics,
                        etag_cache=store, on_token=register_secret)
    except ValueError as exc:
        raise CliError(f"BUGBAR_GITHUB_PRIVATE_KEY: {exc}") from None

    def for_issue(ref: IssueRef, installation_id: int | None) -> Tracker:
        if installation_id is not None:
            return app.for_installation(installation_id)
        if ref.scope.endswith("/*"):
            return app.for_owner(ref.scope[:-2])
        return app.for_repo(ref.scope)

    return for_issue


def build_bot(config: Config, args: argparse.Namespace, metrics: Metrics | None,
              store: Store) -> Bot:
    """The router with its classifier, store, trackers and handlers."""
    from bot.handlers.commands import Commands

    dirs = getattr(args, "rules", None) or list(config.rules_dirs) or None
    classifier = build_classifier(load_ruleset(dirs), args, list(dirs or ()))
    try:
        policy = CommandPolicy.from_dict(dict(config.command_policy))
    except PolicyError as exc:
        raise CliError(f"BUGBAR_COMMAND_POLICY: {exc}") from None
    bot = Bot(classifier=classifier, store=store, trackers=build_trackers(config, metrics, store),
              dry_run=config.dry_run, metrics=metrics)
    bot.commands = Commands(bot.triage, store, policy)
    return bot


def open_store(config: Config) -> Store:
    """Open the SQLite state, with a clear error instead of a traceback."""
    try:
        Path(config.state_path).parent.mkdir(parents=True, exist_ok=True)
        return Store(config.state_path)
    except (StoreError, OSError) as exc:
        raise CliError(f"cannot open state {config.state_path}: {exc}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    """``bugbar serve``: webhook server with durable inbox and workers."""
    from bot.server import ServerConfig, create_app, serve

    config = load_config(args)
    configure_logging(config.log_level)
    store = open_store(config)
    metrics = Metrics()
    bot = build_bot(config, args, metrics, store)
    if not bot.trackers:
        log.warning("no tracker credentials configured; deliveries will fail until they are")
    server_config = ServerConfig(
        github_secrets=config.github_webhook_secrets,
        gitlab_tokens=config.gitlab_webhook_secrets,
        jira_secrets=config.jira_webhook_secrets,
        workers=args.workers,
    )
    app = create_app(server_config, store, bot.process, metrics=metrics)
    for hook in _SERVE_HOOKS:
        hook(app, bot, config, args)
    log.info("serving", extra={"host": args.host, "port": args.port,
                               "providers": sorted(bot.trackers), "dry_run": config.dry_run})
    serve(app, args.host, args.port)
    return 0


_SERVE_HOOKS: list[Callable[[Any, Bot, Config, argparse.Namespace], None]] = []
"""Extra work started with the server (the periodic sweep registers here)."""


def cmd_handle_event(args: argparse.Namespace) -> int:
    """``bugbar handle-event PROVIDER --event NAME --payload FILE``: one event, no server.

    For CI use (GitHub Actions with ``GITHUB_TOKEN``): the payload comes from the runner, which
    GitHub already authenticated, so no signature is checked.
    """
    from bot.server import parse_stored

    config = load_config(args)
    configure_logging(config.log_level, stream=sys.stderr)
    try:
        body = Path(args.payload).read_bytes()
    except OSError as exc:
        raise CliError(f"{args.payload}: cannot read ({exc.strerror})") from None
    delivery = "cli-" + hashlib.sha256(body).hexdigest()[:16]
    headers = _event_headers(args.provider, args.event, delivery)
    try:
        event = parse_stored(args.provider, headers, body)
    except WebhookError as exc:
        raise CliError(f"{args.payload}: {exc.message}") from None
    store = open_store(config)
    try:
        bot = build_bot(config, args, None, store)
        outcome = bot.process(event)
    finally:
        store.close()
    print(json.dumps({"event": args.event, "delivery": delivery, "outcome": outcome}))
    return 0


def _event_headers(provider: str, event: str, delivery: str) -> dict[str, str]:
    if provider == "github":
        return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
                "Content-Type": "application/json"}
    if provider == "gitlab":
        return {"X-Gitlab-Event": event, "Idempotency-Key": delivery}
    return {"X-Atlassian-Webhook-Identifier": delivery}


def cmd_deliveries(args: argparse.Namespace) -> int:
    """``bugbar deliveries [list|retry]``: the dead-letter queue."""
    config = load_config(args)
    store = open_store(config)
    try:
        if args.action == "retry":
            pk = None if args.all else args.id
            if pk is None and not args.all:
                raise CliError("deliveries retry needs a delivery number or --all")
            count = store.retry_dead(pk)
            print(f"{count} delivery(ies) queued again")
            return 0
        stats = store.stats()
        print(f"inbox: {', '.join(f'{k} {v}' for k, v in sorted(stats.items()))}")
        for dead in store.dead_letters():
            print(f"#{dead.pk}\t{dead.provider}\t{dead.event_name}\t{dead.delivery_id}\t"
                  f"attempts {dead.attempts}\t{(dead.last_error or '')[:120]}")
        return 0
    finally:
        store.close()


def register(sub: Any, rules_opt: argparse.ArgumentParser) -> None:
    """Add serve, handle-event and deliveries to the ``bugbar`` parser."""
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument("--state", help="SQLite state file (default $BUGBAR_STATE or bugbar.db)")
    dry = argparse.ArgumentParser(add_help=False)
    dry.add_argument("--dry-run", action="store_true",
                     help="record and log the plan, write nothing (also BUGBAR_DRY_RUN=1)")

    p = sub.add_parser("serve", parents=[rules_opt, state, dry], help="run the webhook server")
    p.add_argument("--host", default=os.environ.get("BUGBAR_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("BUGBAR_PORT", "8080")))
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("handle-event", parents=[rules_opt, state, dry],
                       help="process one event from a file (CI use)")
    p.add_argument("provider", choices=("github", "gitlab", "jira"))
    p.add_argument("--event", required=True, help="event name, e.g. issues, issue_comment")
    p.add_argument("--payload", required=True, help="the event's JSON payload file")
    p.set_defaults(func=cmd_handle_event)

    p = sub.add_parser("deliveries", parents=[state], help="list or retry dead deliveries")
    p.add_argument("action", nargs="?", choices=("list", "retry"), default="list")
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=cmd_deliveries)

    for extra in _EXTRA_REGISTRATIONS:
        extra(sub, rules_opt, state, dry)


_EXTRA_REGISTRATIONS: list[Callable[..., None]] = []
