"""The bot's own sub-commands: serve, handle-event, deliveries (sweep registers itself too).

Everything here is I/O at the edge: read the environment, build trackers, start the server.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.app import Bot, TrackerFor
from bot.cli import CliError, build_classifier, load_ruleset
from bot.config import Config, ConfigError
from bot.decide.commands import CommandPolicy, PolicyError
from bot.errors import http_status
from bot.events.model import Event, IssueRef, WebhookError
from bot.handlers.triage import ResultListener
from bot.logs import SHORT_SECRET, configure_logging, register_secret
from bot.metrics import Metrics
from bot.preflight import (
    CREDENTIAL_VARIABLES,
    REJECTED,
    UNREACHABLE,
    CredentialCheck,
    check_all,
)
from bot.providers.base import Tracker
from bot.server import Readiness
from bot.store import StoreError
from bot.store_base import StateStore as Store
from bot.store_base import open_store as open_state

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


def retry_policy(config: Config) -> Any:
    """The tracker retry policy with the configured back-off base and settle wait."""
    from bot.providers.retry import RetryPolicy

    return RetryPolicy(base_backoff=config.retry_base_seconds, settle=config.settle_seconds)


def write_pacer(config: Config) -> Any:
    """The write pacer with the configured interval."""
    from bot.providers.retry import WritePacer

    return WritePacer(config.write_interval)


def build_trackers(
    config: Config, metrics: Metrics | None, store: Store | None = None
) -> dict[str, TrackerFor]:
    """One tracker factory per configured provider (the store doubles as the ETag cache)."""
    trackers: dict[str, TrackerFor] = {}
    if config.github_token or config.github_app_id:
        trackers["github"] = _github_factory(config, metrics, store)
    if config.gitlab_url and config.gitlab_token:
        from bot.providers.gitlab import GitLabTracker

        gitlab = GitLabTracker(config.gitlab_url, config.gitlab_token,
                               policy=retry_policy(config), pacer=write_pacer(config),
                               metrics=metrics,
                               confidential_mode=config.gitlab_confidential,
                               mentions=config.gitlab_escalate,
                               assignees=config.gitlab_assignees,
                               escalate_routes=frozenset(config.escalate_routes))
        trackers["gitlab"] = lambda ref, inst: gitlab
    if config.jira_url:
        from bot.providers.jira import JiraTracker

        jira = JiraTracker(config.jira_url, email=config.jira_email or None,
                           token=config.jira_token or None, pat=config.jira_pat or None,
                           policy=retry_policy(config), pacer=write_pacer(config),
                           metrics=metrics,
                           security_level=config.jira_security_level,
                           security_project=config.jira_security_project,
                           watchers=config.jira_escalate, assignee=config.jira_assignee,
                           escalate_routes=frozenset(config.escalate_routes))
        trackers["jira"] = lambda ref, inst: jira
    return trackers


def _github_factory(config: Config, metrics: Metrics | None, store: Store | None) -> TrackerFor:
    from bot.providers.github import GitHubApp, GitHubHandOffSettings, GitHubTracker

    handoff = GitHubHandOffSettings(protect=config.github_protect,
                                    mentions=config.github_escalate,
                                    assignees=config.github_assignees,
                                    escalate_routes=frozenset(config.escalate_routes))

    if config.github_token and config.github_app_id:
        log.warning("BUGBAR_GITHUB_TOKEN and BUGBAR_GITHUB_APP_ID are both set: the token is "
                    "used and the App is not; unset one of them")
    if config.github_token:
        tracker = GitHubTracker.from_token(config.github_token, config.github_api_url,
                                           policy=retry_policy(config),
                                           pacer=write_pacer(config),
                                           metrics=metrics, etag_cache=store,
                                           identity=config.github_identity or None,
                                           handoff=handoff)
        return lambda ref, inst: tracker
    try:
        app = GitHubApp(config.github_app_id, config.github_private_key, config.github_api_url,
                        policy=retry_policy(config), pacer=write_pacer(config),
                        metrics=metrics, etag_cache=store, on_token=register_secret,
                        handoff=handoff)
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
              store: Store, on_result: ResultListener | None = None) -> Bot:
    """The router with its classifier, store, trackers and handlers."""
    from bot.handlers.commands import Commands

    dirs = getattr(args, "rules", None) or list(config.rules_dirs) or None
    classifier = build_classifier(load_ruleset(dirs), args, list(dirs or ()))
    try:
        policy = CommandPolicy.from_dict(dict(config.command_policy))
    except PolicyError as exc:
        raise CliError(f"BUGBAR_COMMAND_POLICY: {exc}") from None
    bot = Bot(classifier=classifier, store=store, trackers=build_trackers(config, metrics, store),
              dry_run=config.dry_run, metrics=metrics, on_result=on_result)
    bot.commands = Commands(bot.triage, store, policy)
    return bot


def open_store(config: Config, *, create: bool = True, workers: int = 0) -> Store:
    """Open the state (a SQLite file or a PostgreSQL URL), with one clear error line.

    ``create=False`` (read-only commands) refuses a SQLite file that does not exist, so a
    misspelt ``--state`` says so instead of showing an empty, freshly created database.
    ``workers``: the server's worker threads, so a PostgreSQL pool is sized for them (each
    holds a connection while claiming or renewing; the web handlers need some too).
    """
    from bot.store_base import is_postgres_url, sqlite_path

    path = config.state_path
    if not is_postgres_url(path):
        with contextlib.suppress(ValueError):  # reported below, with the other cases
            if sqlite_path(path).is_dir():
                raise CliError(f"state {path} is a folder: --state / BUGBAR_STATE names the "
                               f"database file, e.g. {Path(path) / 'bugbar.db'}")
    if not create and not is_postgres_url(path):
        try:
            exists = sqlite_path(path).is_file()
        except ValueError as exc:
            raise CliError(f"{exc} (--state or BUGBAR_STATE)") from None
        if not exists:
            raise CliError(f"state database {path} does not exist (--state or BUGBAR_STATE; "
                           "the bot creates it when it first runs)")
    try:
        if is_postgres_url(path) and workers:
            return open_state(path, max_connections=max(10, 2 * workers + 4))
        return open_state(path)
    except StoreError as exc:
        if "bugbar[postgres]" in str(exc):
            raise CliError(str(exc)) from None
        if is_postgres_url(path):
            raise CliError(f"cannot open state: {exc} (--state or BUGBAR_STATE)") from None
        raise CliError(f"cannot open state {path}: {exc} (--state or BUGBAR_STATE)") from None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot open state {_shown(path)}: {exc} (--state or BUGBAR_STATE)"
                       ) from None
    except sqlite3.Error as exc:  # e.g. a file in a folder bugbar may not write to
        raise CliError(f"cannot open state {_shown(path)}: {exc}; give a file bugbar can "
                       "create and write (--state or BUGBAR_STATE)") from None


def _shown(location: str) -> str:
    """A state location fit to print: a URL's password is masked."""
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    if parts.password:
        return location.replace(f":{parts.password}@", ":***@", 1)
    return location


WEBHOOK_SECRET_VARIABLES = {
    "github": "BUGBAR_GITHUB_WEBHOOK_SECRET",
    "gitlab": "BUGBAR_GITLAB_WEBHOOK_SECRET",
    "jira": "BUGBAR_JIRA_WEBHOOK_SECRET",
}


def _webhook_secrets(config: Config) -> dict[str, tuple[str, ...]]:
    return {"github": config.github_webhook_secrets, "gitlab": config.gitlab_webhook_secrets,
            "jira": config.jira_webhook_secrets}


def check_webhook_secret_length(config: Config) -> None:
    """Refuse webhook secrets shorter than 8 characters (``serve``, ``handle-event``).

    A short shared secret is guessable, and the log redaction skips values that short (a
    one-letter secret would blank that letter from every line), so it would also leak.
    """
    for provider, values in _webhook_secrets(config).items():
        if any(len(v) < SHORT_SECRET for v in values):
            raise CliError(f"{WEBHOOK_SECRET_VARIABLES[provider]} is too short: use at least "
                           f"{SHORT_SECRET} characters (e.g. `openssl rand -hex 32`) in both "
                           "the webhook and this variable")


def check_serve_config(config: Config) -> None:
    """Refuse to serve half-configured: every provider needs credentials and a webhook secret.

    A provider with credentials but no secret would answer every delivery 401; one with a
    secret but no credentials would accept deliveries it can never process.
    """
    providers = set(config.providers())
    secrets = {p for p, values in _webhook_secrets(config).items() if values}
    if not providers and not secrets:
        raise CliError("nothing to serve: no tracker is configured; set BUGBAR_GITHUB_TOKEN "
                       "and BUGBAR_GITHUB_WEBHOOK_SECRET (or the GitLab / Jira variables, "
                       "see the README's Configuration)")
    for provider in sorted(providers - secrets):
        raise CliError(f"{WEBHOOK_SECRET_VARIABLES[provider]} is not set: serve cannot verify "
                       f"{provider} deliveries and would refuse them all; set the secret the "
                       "webhook is configured with")
    for provider in sorted(secrets - providers):
        raise CliError(f"{WEBHOOK_SECRET_VARIABLES[provider]} is set but {provider} has no "
                       f"credentials: set {CREDENTIAL_VARIABLES[provider]}")


def verify_credentials(config: Config, providers: list[str]) -> list[CredentialCheck]:
    """Ask each tracker once whether it accepts the credentials (no retries, short timeout).

    Rejected credentials are a configuration error (exit 2); an unreachable API is left to
    the caller (``handle-event`` stops with exit 1, ``serve`` starts and reports degraded).
    """
    checks = check_all(config, providers)
    for check in checks:
        if check.status == REJECTED:
            raise CliError(check.message())
    return checks


def cmd_serve(args: argparse.Namespace) -> int:
    """``bugbar serve``: webhook server with durable inbox and workers.

    Refuses to start (exit 2) when half-configured or when a tracker rejects the credentials.
    """
    from bot.server import ServerConfig, create_app, serve

    config = load_config(args)
    configure_logging(config.log_level)
    check_webhook_secret_length(config)
    if args.port is None:
        args.port = _env_port()
    check_serve_config(config)
    checks = verify_credentials(config, config.providers())
    for check in checks:
        if check.status == UNREACHABLE:
            log.warning("credential check failed: tracker unreachable; starting anyway",
                        extra={"provider": check.provider, "detail": check.detail})
    store = open_store(config, workers=args.workers)
    metrics = Metrics()
    bot = build_bot(config, args, metrics, store)
    server_config = ServerConfig(
        github_secrets=config.github_webhook_secrets,
        gitlab_tokens=config.gitlab_webhook_secrets,
        jira_secrets=config.jira_webhook_secrets,
        workers=args.workers,
        lease_seconds=config.lease_seconds,
        retry_base_seconds=config.delivery_retry_seconds,
        retention_seconds=(None if config.retention_days is None
                           else config.retention_days * 86_400),
    )
    readiness = Readiness(
        credentials={c.provider: c.status for c in checks},
        recheck=lambda provider: _recheck(config, provider),
        max_inbox_age=(config.ready_max_inbox_age if args.max_inbox_age is None
                       else args.max_inbox_age),
    )
    app = create_app(server_config, store, watch_credentials(bot.process, readiness),
                     metrics=metrics, readiness=readiness)
    for hook in _SERVE_HOOKS:
        hook(app, bot, config, args)
    log.info("serving", extra={"host": args.host, "port": args.port,
                               "providers": sorted(bot.trackers), "dry_run": config.dry_run})
    serve(app, args.host, args.port)
    return 0


def watch_credentials(process: Callable[[Event], str],
                      readiness: Readiness) -> Callable[[Event], str]:
    """The processor, telling ``/readyz`` when a tracker answers 401 mid-run (a revoked or
    expired token): the delivery still fails and is retried as before."""

    def run(event: Event) -> str:
        try:
            return process(event)
        except Exception as exc:
            if http_status(exc) == 401:
                readiness.mark(event.provider, REJECTED)
            raise

    return run


def _env_port() -> int:
    raw = os.environ.get("BUGBAR_PORT", "").strip() or "8080"
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise CliError(f"BUGBAR_PORT must be a port number (0-65535), not {raw!r}")
    return int(raw)


def _recheck(config: Config, provider: str) -> str:
    from bot.preflight import check_credentials

    return check_credentials(config, provider).status


_SERVE_HOOKS: list[Callable[[Any, Bot, Config, argparse.Namespace], None]] = []
"""Extra work started with the server (the periodic sweep registers here)."""


HANDLED_EVENTS: dict[str, tuple[str, ...]] = {
    "github": ("issues", "issue_comment"),
    "gitlab": ("Issue Hook", "Confidential Issue Hook", "Note Hook", "Confidential Note Hook"),
    "jira": (),  # Jira names the event inside the payload (webhookEvent)
}
_PROVIDER_NAMES = {"github": "GitHub", "gitlab": "GitLab", "jira": "Jira"}


def _check_event_name(provider: str, event: str | None) -> str:
    """The event name handle-event was given, or CliError naming what to pass."""
    handled = HANDLED_EVENTS[provider]
    if provider == "jira":
        return event or ""
    choices = ", ".join(handled)
    if not event:
        hint = " (in GitHub Actions: $GITHUB_EVENT_NAME)" if provider == "github" else ""
        raise CliError(f"handle-event {provider} needs --event NAME: one of {choices}{hint}")
    if event in handled:
        return event
    import difflib

    folded = {h.casefold(): h for h in handled}
    close = difflib.get_close_matches(event.casefold(), list(folded), n=1, cutoff=0.6)
    hint = f"; did you mean {folded[close[0]]!r}?" if close else ""
    if provider == "github" and event in ("schedule", "workflow_dispatch"):
        hint = "; scheduled and manual runs use bugbar sweep github:OWNER/REPO"
    raise CliError(f"--event {event!r} is not an event bugbar handles for {provider} "
                   f"({choices}){hint}")


def _payload_provider(payload: Any) -> str | None:
    """Which tracker a webhook payload comes from, by the keys only that tracker sends."""
    if not isinstance(payload, dict):
        return None
    if "webhookEvent" in payload:
        return "jira"
    if "object_kind" in payload:
        return "gitlab"
    if "repository" in payload and ("sender" in payload or "issue" in payload):
        return "github"
    return None


def _read_payload(path: str, provider: str) -> bytes:
    try:
        body = Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"--payload {path}: cannot read ({exc.strerror})") from None
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"--payload {path}: not JSON ({exc})") from None
    source = _payload_provider(payload)
    if source is not None and source != provider:
        raise CliError(f"--payload {path} looks like a {_PROVIDER_NAMES[source]} webhook, not "
                       f"{_PROVIDER_NAMES[provider]}'s: use bugbar handle-event {source}")
    return body


def _require_credentials(config: Config, provider: str) -> None:
    if provider not in config.providers():
        where = (" (in GitHub Actions the action's token input sets it)"
                 if provider == "github" else "")
        raise CliError(f"no credentials for {provider}: set {CREDENTIAL_VARIABLES[provider]}"
                       f"{where}")


def cmd_handle_event(args: argparse.Namespace) -> int:
    """``bugbar handle-event PROVIDER --event NAME --payload FILE``: one event, no server.

    For CI use (GitHub Actions with ``GITHUB_TOKEN``): the payload comes from the runner, which
    GitHub already authenticated, so no signature is checked. Prints the decision, the plan
    and the full comment text (JSON, or ``--format text``); ``--summary`` and ``--output``
    append them to the Actions job summary and step outputs.
    """
    from bot.ci import (
        EventReport,
        append_file,
        decision_output,
        format_text,
        markdown_summary,
        write_outputs,
    )
    from bot.events.model import EventKind
    from bot.handlers.triage import TriageResult
    from bot.server import parse_stored

    config = load_config(args)
    configure_logging(config.log_level, stream=sys.stderr)
    check_webhook_secret_length(config)
    event_name = _check_event_name(args.provider, args.event)
    body = _read_payload(args.payload, args.provider)
    delivery = "cli-" + hashlib.sha256(body).hexdigest()[:16]
    headers = _event_headers(args.provider, event_name, delivery)
    try:
        event = parse_stored(args.provider, headers, body)
    except WebhookError as exc:
        raise CliError(f"--payload {args.payload}: {exc.message}") from None
    if args.provider == "jira" and event_name and event.name != event_name:
        raise CliError(f"--event {event_name!r} does not match the payload's webhookEvent "
                       f"{event.name!r}")
    works = event.kind not in (EventKind.PING, EventKind.IGNORED)
    if args.provider == "github" and event.issue is None and event.kind is not EventKind.PING:
        # GitLab and Jira parsers refuse such payloads themselves; GitHub's ignores them.
        raise CliError(f"--payload {args.payload} is not a {args.provider} {event.name} event "
                       "about an issue (no issue or repository in it); pass the file the "
                       "tracker sent (in GitHub Actions: $GITHUB_EVENT_PATH)")
    _require_credentials(config, args.provider)
    if works:
        for check in verify_credentials(config, [args.provider]):
            if check.status == UNREACHABLE:
                raise CliError(check.message(), code=1)
    results: list[tuple[IssueRef, TriageResult]] = []
    store = open_store(config)
    try:
        bot = build_bot(config, args, None, store,
                        on_result=lambda ref, res: results.append((ref, res)))
        outcome = bot.process(event)
    finally:
        store.close()
    report = EventReport(provider=args.provider, event=event.name or event_name,
                         delivery=delivery, outcome=outcome, dry_run=config.dry_run,
                         results=results, reason=event.ignore_reason,
                         issue=str(event.issue) if event.issue else None)
    if args.format == "text":
        sys.stdout.write(format_text(report))
    else:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    try:
        if args.summary:
            append_file(args.summary, markdown_summary(report))
        if args.output:
            write_outputs(args.output, decision_output(report))
    except OSError as exc:
        raise CliError(f"cannot write {exc.filename}: {exc.strerror} (--summary / --output)",
                       code=1) from None
    return 0


def _event_headers(provider: str, event: str, delivery: str) -> dict[str, str]:
    if provider == "github":
        return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
                "Content-Type": "application/json"}
    if provider == "gitlab":
        return {"X-Gitlab-Event": event, "Idempotency-Key": delivery}
    return {"X-Atlassian-Webhook-Identifier": delivery}


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _days(text: str) -> float:
    """An argparse type: a number of days above 0 (fractions allowed)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not 0 < value <= 36_500:
        raise argparse.ArgumentTypeError("must be a number of days above 0 (at most 36500)")
    return value


def _prune(store: Store, config: Config, older_than: float | None) -> int:
    """``bugbar deliveries prune``: delete done deliveries older than the window."""
    days = config.retention_days if older_than is None else older_than
    if days is None:
        raise CliError("deliveries prune: BUGBAR_RETENTION_DAYS is off, so there is no "
                       "retention window; give one with --older-than DAYS")
    removed = store.prune(days * 86_400)
    # Only done deliveries go; their ids are no longer recognised as duplicates.
    print(f"{removed} done delivery(ies) older than {days:g} day(s) removed")
    return 0


def _find_dead(store: Store, ident: str, action: str = "retry") -> int:
    """The number of the dead letter ``ident`` names: ``7``, ``#7`` or its delivery id."""
    dead = store.dead_letters()
    by_id = [d.pk for d in dead if d.delivery_id == ident]
    if by_id:
        return by_id[0]
    number = ident.removeprefix("#")
    if number.isdigit() and any(d.pk == int(number) for d in dead):
        return int(number)
    known = ", ".join(f"#{d.pk} ({d.delivery_id})" for d in dead[:5]) or "none"
    raise CliError(f"deliveries {action}: no dead delivery {ident!r} (dead letters: {known}; "
                   "bugbar deliveries lists them)")


def cmd_deliveries(args: argparse.Namespace) -> int:
    """``bugbar deliveries [list|retry|drop|prune]``: the dead-letter queue and clean-up."""
    config = load_config(args)
    if args.action == "list" and args.id is not None:
        raise CliError(f"deliveries list takes no id (got {args.id!r}); "
                       f"to queue one again: bugbar deliveries retry {args.id}")
    if args.action == "prune" and (args.id is not None or args.all):
        raise CliError("deliveries prune takes no id and no --all: it removes every done "
                       "delivery older than --older-than DAYS (default BUGBAR_RETENTION_DAYS)")
    if args.older_than is not None and args.action != "prune":
        raise CliError(f"--older-than is for bugbar deliveries prune, not {args.action}")
    store = open_store(config, create=False)
    try:
        if args.action == "prune":
            return _prune(store, config, args.older_than)
        if args.action in ("retry", "drop"):
            if args.all == (args.id is not None):
                raise CliError(f"deliveries {args.action} needs one delivery (number or id, "
                               "as bugbar deliveries lists them) or --all")
            pk = None if args.all else _find_dead(store, args.id, args.action)
            if args.action == "retry":
                print(f"{store.retry_dead(pk)} delivery(ies) queued again")
            else:
                # Dropped, not deleted: the id stays known, so a redelivery is a duplicate.
                print(f"{store.drop_dead(pk)} dead delivery(ies) dropped (not run; "
                      "no longer dead letters)")
            return 0
        stats = store.stats()
        print(f"inbox: {', '.join(f'{k} {v}' for k, v in sorted(stats.items()))}")
        for dead in store.dead_letters():
            # The whole error: its cause is usually at the end.
            print(f"#{dead.pk}\t{dead.provider}\t{dead.event_name}\t{dead.delivery_id}\t"
                  f"attempts {dead.attempts}")
            print(f"    last error: {' '.join((dead.last_error or '-').split())}")
        return 0
    finally:
        store.close()


def cmd_decisions(args: argparse.Namespace) -> int:
    """``bugbar decisions [ISSUE]``: the decision log, newest first, with plan and comment."""
    from bot.decisions import format_decisions, issue_key

    config = load_config(args)
    store = open_store(config, create=False)
    try:
        try:
            key = issue_key(args.issue) if args.issue else None
        except ValueError as exc:
            raise CliError(f"decisions: {exc}") from None
        records = store.recent_decisions(limit=args.limit, key=key)
    finally:
        store.close()
    if args.format == "json":
        for rec in records:
            print(json.dumps({"id": rec.id, "issue": rec.key, "delivery": rec.delivery_id,
                              "dry_run": rec.dry_run, "recorded_at": rec.recorded_at,
                              "decision": json.loads(rec.decision_json)}, ensure_ascii=False))
        return 0
    if not records:
        where = f" for {key}" if key else ""
        print(f"bugbar: no decisions recorded{where} in {config.state_path}", file=sys.stderr)
        return 0
    sys.stdout.write(format_decisions(records, with_comment=not args.brief))
    return 0


def cmd_corrections(args: argparse.Namespace) -> int:
    """``bugbar corrections export [--output FILE]``: maintainers' /triage corrections as
    labelled examples, JSON Lines in the tests/corpus schema (``bugbar eval`` reads it).
    Confidential issues are left out unless ``--include-confidential``."""
    config = load_config(args)
    store = open_store(config, create=False)
    try:
        kept = store.corrections()
    finally:
        store.close()
    rows = [c for c in kept if args.include_confidential or not c.confidential]
    lines = "".join(json.dumps(c.to_example(), ensure_ascii=False) + "\n" for c in rows)
    if args.output:
        try:
            Path(args.output).write_text(lines, encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{args.output}: cannot write ({exc.strerror})") from None
    else:
        sys.stdout.write(lines)
    skipped = len(kept) - len(rows)
    print(f"bugbar: {len(rows)} correction(s) exported"
          + (f", {skipped} confidential left out (--include-confidential)" if skipped else ""),
          file=sys.stderr)
    return 0


def register(sub: Any, rules_opt: argparse.ArgumentParser) -> None:
    """Add serve, handle-event, deliveries and decisions to the ``bugbar`` parser."""
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument("--state", metavar="PATH",
                       help="state: a SQLite file or a postgresql:// URL "
                            "(default $BUGBAR_STATE or bugbar.db)")
    dry = argparse.ArgumentParser(add_help=False)
    dry.add_argument("--dry-run", action="store_true",
                     help="record and log the plan, write nothing (also BUGBAR_DRY_RUN=1)")

    p = sub.add_parser("serve", parents=[rules_opt, state, dry], help="run the webhook server",
                       description="Serve POST /webhooks/github|gitlab|jira, /healthz "
                                   "(liveness), /readyz (readiness report) and /metrics. "
                                   "Refuses to start half-configured or with rejected "
                                   "credentials.")
    p.add_argument("--host", default=os.environ.get("BUGBAR_HOST", "127.0.0.1"),
                   help="address to listen on (default $BUGBAR_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None,
                   help="port (default $BUGBAR_PORT or 8080)")
    p.add_argument("--workers", type=int, default=2,
                   help="worker threads processing the inbox (default 2)")
    p.add_argument("--max-inbox-age", type=float, metavar="SECONDS",
                   help="/readyz reports degraded when the oldest pending delivery is older "
                        "(default $BUGBAR_READY_MAX_INBOX_AGE or 600)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("handle-event", parents=[rules_opt, state, dry],
                       help="process one event from a file (CI use)",
                       description="Process one webhook payload without a server (GitHub "
                                   "Actions: --event \"$GITHUB_EVENT_NAME\" --payload "
                                   "\"$GITHUB_EVENT_PATH\"). Prints the decision, the plan "
                                   "and the comment text.")
    p.add_argument("provider", choices=("github", "gitlab", "jira"), help="the tracker")
    p.add_argument("--event", metavar="NAME",
                   help="event name: issues or issue_comment (GitHub); Issue Hook, Note Hook "
                        "(GitLab); optional for Jira (the payload names it)")
    p.add_argument("--payload", required=True, metavar="FILE",
                   help="the event's JSON payload file")
    p.add_argument("--format", choices=("json", "text"), default="json",
                   help="json: one line with decision, plan and comment (default); text: "
                        "readable")
    p.add_argument("--summary", metavar="FILE",
                   help="append a Markdown decision table (e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument("--output", metavar="FILE",
                   help="append step outputs decision (JSON) and outcome (e.g. $GITHUB_OUTPUT)")
    p.set_defaults(func=cmd_handle_event)

    p = sub.add_parser("deliveries", parents=[state],
                       help="list, retry or drop dead deliveries; prune done ones",
                       description="List the inbox and its dead letters, queue dead letters "
                                   "again (retry), or give them up (drop: they are not run, "
                                   "stop counting as dead letters in /readyz, and a "
                                   "redelivery of the same id is still ignored). prune: delete "
                                   "done deliveries older than --older-than DAYS (default "
                                   "BUGBAR_RETENTION_DAYS, 30); pending, claimed and dead ones "
                                   "are kept. serve does this by itself every hour.")
    p.add_argument("action", nargs="?", choices=("list", "retry", "drop", "prune"),
                   default="list", help="list (default), retry, drop or prune")
    p.add_argument("id", nargs="?", metavar="ID",
                   help="the dead letter to retry or drop: its number (7 or #7) or delivery id")
    p.add_argument("--all", action="store_true", help="retry or drop every dead letter")
    p.add_argument("--older-than", type=_days, metavar="DAYS",
                   help="prune: remove done deliveries finished more than DAYS ago "
                        "(default $BUGBAR_RETENTION_DAYS or 30)")
    p.set_defaults(func=cmd_deliveries)

    p = sub.add_parser("decisions", parents=[state],
                       help="list recorded decisions with plan and comment",
                       description="The decision log (newest first): what was decided, "
                                   "planned and written (or, in a dry run, would be).")
    p.add_argument("issue", nargs="?", metavar="ISSUE",
                   help="only this issue: github:owner/repo#12, gitlab:group/project#3, "
                        "jira:KEY-7 (owner/repo#12 and KEY-7 work too)")
    p.add_argument("--limit", type=_positive, default=20, metavar="N",
                   help="show the latest N (default 20)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or one JSON object per decision")
    p.add_argument("--brief", action="store_true", help="leave out the comment text")
    p.set_defaults(func=cmd_decisions)

    p = sub.add_parser("corrections", parents=[state],
                       help="export maintainers' /triage corrections as labelled examples",
                       description="Every /triage <category> or not-a-threat a maintainer ran, "
                                   "with the issue's title, body and labels at the time, as JSON "
                                   "Lines in the corpus schema that bugbar eval reads.")
    p.add_argument("action", choices=("export",), help="export (write the examples)")
    p.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--include-confidential", action="store_true",
                   help="also export corrections on confidential issues")
    p.set_defaults(func=cmd_corrections)

    for extra in _EXTRA_REGISTRATIONS:
        extra(sub, rules_opt, state, dry)


_EXTRA_REGISTRATIONS: list[Callable[..., None]] = []
