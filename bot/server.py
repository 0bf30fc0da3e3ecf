"""The web server: webhook intake into the durable inbox, worker threads, health and metrics.

Request flow for ``POST /webhooks/{github,gitlab,jira}`` (the README's "Running it"):

1. size: a ``Content-Length`` over the cap is refused with 413 before reading; a body (chunked
   or not) is read only up to the cap, then 413;
2. the provider's parser verifies the credential first (401: nothing stored, only the claimed
   delivery id and the reason are logged), then parses (400 when malformed);
3. ``ping`` and events bugbar does not act on are answered 200 ``{"status": "ignored"}`` without
   being stored: there is no work to lose, and storing every push/PR event would only grow the
   database;
4. everything else is stored with :meth:`Store.put_delivery` (fsynced), and only then answered
   202 ``{"status": "accepted"}``; a delivery id seen before gets 200 ``{"status": "duplicate"}``
   and no work. If the store fails the answer is 503 so the sender retries.

Workers claim deliveries from the store, re-parse the stored body, call the processor and mark
the delivery done, or failed with exponential back-off and jitter; after ``max_attempts`` it is
a dead letter (:meth:`Store.dead_letters`). Because the inbox is durable, deliveries stored by a
process that died are picked up by the next one: a claim's lease is short (``lease_seconds``,
15 s) and renewed every third of it while the worker works, and at startup the claims of dead
processes on this host are released at once (:meth:`Store.release_dead_claims`).

A worker whose lease was lost (it stalled past the lease and another worker took the
delivery) records no outcome, and tracker writes check the lease first
(:func:`bot.lease.ensure_held`). A write already in flight when the lease ends can still land;
the new owner then finds the marked comment and the labels and reaches the same decision, so
re-running is idempotent (one comment, no label twice).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.background import BackgroundLoop, wait_on
from bot.events.common import DEFAULT_MAX_BYTES, get_header
from bot.events.github import parse_github
from bot.events.gitlab import parse_gitlab
from bot.events.jira import TOKEN_HEADER as JIRA_TOKEN_HEADER
from bot.events.jira import parse_jira
from bot.events.model import Event, EventKind, WebhookError
from bot.lease import Heartbeat, LeaseLost, held, is_alive, owner_prefix
from bot.logs import log_context, redact
from bot.metrics import CONTENT_TYPE, Metrics
from bot.store import DEAD, DEFAULT_LEASE_SECONDS, Delivery
from bot.store_base import StateStore as Store

__all__ = [
    "PROVIDERS",
    "Processor",
    "Pruner",
    "Readiness",
    "ServerConfig",
    "WorkerPool",
    "backoff_delay",
    "create_app",
    "parse_stored",
    "serve",
]

log = logging.getLogger(__name__)

Processor = Callable[[Event], str]
"""Does the real work for one event and returns an outcome (``triaged``, ``noop``...); raises
on failure, which makes the delivery retry."""

PROVIDERS = ("github", "gitlab", "jira")

# What a stored delivery keeps besides its body: the headers the parsers read to name the event,
# derive the delivery id and decode the body. Credentials (X-Gitlab-Token is the plain secret)
# are never stored; re-parsing does not need them (see parse_stored).
_KEEP_HEADERS: dict[str, tuple[str, ...]] = {
    "github": ("X-GitHub-Event", "X-GitHub-Delivery", "Content-Type"),
    "gitlab": ("X-Gitlab-Event", "Idempotency-Key", "webhook-id", "Content-Type"),
    "jira": ("X-Atlassian-Webhook-Identifier", "Content-Type"),
}
# Where each provider puts its delivery id, for logging refused requests.
_ID_HEADERS: dict[str, tuple[str, ...]] = {
    "github": ("X-GitHub-Delivery",),
    "gitlab": ("Idempotency-Key", "webhook-id", "X-Gitlab-Webhook-UUID"),
    "jira": ("X-Atlassian-Webhook-Identifier",),
}
_CREDENTIAL_HEADERS = frozenset(
    {"x-hub-signature-256", "x-hub-signature", "x-gitlab-token", JIRA_TOKEN_HEADER.lower()}
    | {"webhook-signature", "webhook-timestamp", "authorization"}
)
_REFUSED = {401: "unauthorized", 400: "malformed", 413: "too_large"}


@dataclass(frozen=True)
class ServerConfig:
    """Web server and worker settings. Empty secret lists refuse every delivery of that provider.

    Secrets are left out of ``repr`` so logging a config cannot leak them.
    """

    github_secrets: Sequence[str] = field(default=(), repr=False)
    """Accepted GitHub webhook secrets (several, for rotation)."""
    gitlab_tokens: Sequence[str] = field(default=(), repr=False)
    """Accepted ``X-Gitlab-Token`` values."""
    gitlab_signing_tokens: Sequence[str] = field(default=(), repr=False)
    """When set, GitLab's Standard-Webhooks signature is required as well."""
    jira_secrets: Sequence[str] = field(default=(), repr=False)
    """Jira webhook secrets (HMAC signing secret or shared token)."""
    max_body_bytes: int = DEFAULT_MAX_BYTES
    workers: int = 2
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    """How long a claim lasts without a heartbeat: the most a dead worker's delivery waits.
    Workers renew it every ``heartbeat_seconds`` while they work."""
    heartbeat_seconds: float | None = None
    """How often a working worker renews its lease; None: a third of ``lease_seconds``."""
    heartbeat_wait: Callable[[threading.Event, float], object] = wait_on
    """How a heartbeat waits between renewals: ``wait(stop_event, timeout)``."""
    release_dead_claims: bool = True
    """At start, free at once the claims of dead processes on this host (after ``kill -9``)."""
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 900.0
    max_attempts: int = 5
    poll_seconds: float = 1.0
    """Idle workers look for due retries this often; new deliveries wake them at once."""
    wait: Callable[[threading.Event, float], object] = wait_on
    """How an idle worker waits: ``wait(wake_event, timeout)``. Tests inject a fast one."""
    jitter: Callable[[], float] = random.random
    """A number in [0, 1) that spreads retries; tests inject a constant."""
    shutdown_timeout: float = 30.0
    retention_seconds: float | None = None
    """Done deliveries older than this are deleted at start and every ``prune_every_seconds``
    (:class:`Pruner`); None keeps them. ``bugbar serve`` sets it from ``BUGBAR_RETENTION_DAYS``."""
    prune_every_seconds: float = 3600.0
    prune_wait: Callable[[threading.Event, float], object] = wait_on
    """How the pruner waits between runs: ``wait(stop_event, timeout)``. Tests inject a fast one
    (the cutoff comes from the store's clock, which tests inject too)."""


def backoff_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential, capped, "equal jitter".

    Half the delay is fixed and half is random (``jitter`` in [0, 1)), so retries of deliveries
    that failed together spread out but never come back immediately.
    """
    exp = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 62))
    return exp / 2 + (exp / 2) * min(max(jitter, 0.0), 1.0)


# --------------------------------------------------------------------------- parsing


ParseFn = Callable[[Mapping[str, str], bytes, Mapping[str, str]], Event]


def _verifying_parsers(config: ServerConfig) -> dict[str, ParseFn]:
    cap = config.max_body_bytes

    def github(headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> Event:
        return parse_github(headers, body, list(config.github_secrets), max_bytes=cap)

    def gitlab(headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> Event:
        return parse_gitlab(
            headers,
            body,
            list(config.gitlab_tokens),
            max_bytes=cap,
            signing_tokens=list(config.gitlab_signing_tokens),
        )

    def jira(headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> Event:
        return parse_jira(headers, body, list(config.jira_secrets), max_bytes=cap, query=query)

    return {"github": github, "gitlab": gitlab, "jira": jira}


def parse_stored(provider: str, headers: Mapping[str, str], body: bytes) -> Event:
    """Re-parse a stored delivery into an Event; its credential was verified on receipt.

    The original credential is not stored (a GitLab token is the secret itself, and a GitLab
    signature expires after five minutes), so the stored bytes are re-attested with a one-shot
    random key and passed through the very same public parser. That keeps one parsing path
    and needs no unverified entry point in ``bot.events``. Raises ``WebhookError`` if the
    stored delivery does not parse (it did when it was stored; a parser change could break it).
    """
    key = secrets.token_hex(32)
    clean = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
    cap = max(len(body), 1)
    if provider == "github":
        digest = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        clean["X-Hub-Signature-256"] = f"sha256={digest}"
        return parse_github(clean, body, [key], max_bytes=cap)
    if provider == "gitlab":
        clean["X-Gitlab-Token"] = key
        return parse_gitlab(clean, body, [key], max_bytes=cap)
    if provider == "jira":
        clean[JIRA_TOKEN_HEADER] = key
        return parse_jira(clean, body, [key], max_bytes=cap)
    raise WebhookError(400, f"unknown provider {provider!r}")


def _claimed_id(provider: str, headers: Mapping[str, str]) -> str:
    """The delivery id an unverified request claims, made safe to log."""
    for name in _ID_HEADERS.get(provider, ()):
        value = get_header(headers, name)
        if value:
            return "".join(c for c in value[:100] if c.isprintable())
    return ""


# --------------------------------------------------------------------------- housekeeping


class Pruner(BackgroundLoop):
    """Deletes done deliveries older than the retention window: at start, then every interval.

    Only ``done`` deliveries go (:meth:`StateStore.prune`); pending, claimed and dead ones are
    never touched. Every replica on a shared PostgreSQL database runs its own pruner, with no
    leader lock: the DELETE is idempotent and cheap (an index on ``(state, finished_at)``), so
    several replicas pruning at once only find less to remove, and pruning goes on as long as
    any replica is up.
    """

    thread_name = "bugbar-prune"

    def __init__(self, store: Store, retention_seconds: float, every_seconds: float = 3600.0,
                 wait: Callable[[threading.Event, float], object] = wait_on) -> None:
        super().__init__()
        self.store = store
        self.retention_seconds = retention_seconds
        self.every_seconds = every_seconds
        self._wait = wait
        self.runs = 0
        self.removed = 0

    def run_once(self) -> int:
        """Prune now; how many deliveries were removed (one log line when any were)."""
        removed = self.store.prune(self.retention_seconds)
        self.runs += 1
        self.removed += removed
        if removed:
            log.info("pruned done deliveries", extra={
                "removed": removed, "retention_days": round(self.retention_seconds / 86_400, 3)})
        return removed

    def run_forever(self) -> None:
        """Prune, wait an interval, repeat until :meth:`stop`."""
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the database is away: try again next interval
                log.exception("pruning done deliveries failed")
            self._wait(self._stop, self.every_seconds)


# --------------------------------------------------------------------------- workers


class WorkerPool:
    """Threads that drain the store's inbox through the processor."""

    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        processor: Processor,
        metrics: Metrics,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config
        self.store = store
        self.processor = processor
        self.metrics = metrics
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # host:pid:start:n — release_dead_claims and bot.lease.is_alive read it back.
        self._prefix = owner_prefix()
        self.lost_leases = 0
        self._beats: dict[int, Heartbeat] = {}
        self._beats_done = 0
        self._beats_lock = threading.Lock()

    @property
    def started(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return bool(self._threads)

    @property
    def alive(self) -> int:
        """Worker threads currently running."""
        return sum(t.is_alive() for t in self._threads)

    def notify(self) -> None:
        """Wake idle workers: a delivery was just stored."""
        self._wake.set()

    def start(self) -> None:
        """Start ``config.workers`` threads (no-op if already started)."""
        if self._threads:
            return
        self._stop.clear()
        if self.config.release_dead_claims:
            try:
                released = self.store.release_dead_claims(is_alive)
            except Exception:
                log.exception("could not release the claims of dead processes")
            else:
                if released:
                    log.warning("released claims held by dead processes",
                                extra={"released": released})
        for i in range(max(0, self.config.workers)):
            thread = threading.Thread(
                target=self._loop, args=(f"{self._prefix}:{i}",), name=f"bugbar-worker-{i}"
            )
            thread.daemon = True  # a hung processor must not keep the process alive forever
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask workers to finish their current delivery and exit; True if all have.

        A worker still busy after ``timeout`` keeps its lease; the delivery is claimed again
        after the lease expires (here or in the next process), so nothing is lost.
        """
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + (self.config.shutdown_timeout if timeout is None else timeout)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stopped = self.alive == 0
        if stopped:
            self._threads = []
        else:
            log.warning("workers still busy at shutdown", extra={"busy": self.alive})
        return stopped

    def _loop(self, worker_id: str) -> None:
        while not self._stop.is_set():
            try:
                outcome = self.run_once(worker_id)
            except Exception:  # store trouble: keep the worker alive, try again after a pause
                log.exception("worker iteration failed", extra={"worker": worker_id})
                outcome = None
            if outcome is None and not self._stop.is_set():
                self.config.wait(self._wake, self.config.poll_seconds)
                # Cleared only after waking and before claiming, so a delivery stored after
                # this point sets the event again and is not missed.
                self._wake.clear()

    def run_once(self, worker_id: str = "manual") -> str | None:
        """Claim and handle one due delivery; its outcome label, or None if nothing was due."""
        delivery = self.store.claim_next(
            worker_id, self.config.lease_seconds, max_attempts=self.config.max_attempts
        )
        if delivery is None:
            return None
        with log_context(
            delivery_id=delivery.delivery_id,
            provider=delivery.provider,
            attempt=delivery.attempts,
        ):
            beat = self.heartbeat(delivery, worker_id)
            with self._beats_lock:
                self._beats[delivery.pk] = beat
            if self._threads:
                beat.start()
            try:
                with held(beat):
                    return self._handle(delivery, beat)
            finally:
                beat.stop()
                with self._beats_lock:
                    self._beats.pop(delivery.pk, None)
                    self._beats_done += beat.beats

    def beats_seen(self) -> int:
        """Lease renewals so far (finished and running work)."""
        with self._beats_lock:
            return self._beats_done + sum(b.beats for b in self._beats.values())

    def heartbeat_now(self) -> bool:
        """Renew every running lease once (what the heartbeat threads do); False if one is
        lost. For tests and for callers that drive :meth:`run_once` by hand."""
        with self._beats_lock:
            beats = list(self._beats.values())
        return all([b.beat() for b in beats])

    def heartbeat(self, delivery: Delivery, worker_id: str) -> Heartbeat:
        """The (not yet started) heartbeat renewing ``worker_id``'s lease on ``delivery``."""
        lease = self.config.lease_seconds
        interval = self.config.heartbeat_seconds or lease / 3
        return Heartbeat(
            f"delivery {delivery.pk}",
            lambda: self.store.renew_lease(delivery.pk, worker_id, lease),
            interval,
            wait=self.config.heartbeat_wait,
        )

    def _lost(self, delivery: Delivery, event_name: str, beat: Heartbeat) -> str:
        # Another worker holds the delivery now (or already finished it): recording "done" or
        # "failed" here would be a second outcome, and "failed" would even requeue it.
        self.lost_leases += 1
        self.metrics.delivery(delivery.provider, event_name, "lease_lost")
        log.warning("lease lost while working; leaving the delivery to its new owner",
                    extra={"event": event_name})
        return "lease_lost"

    def _handle(self, delivery: Delivery, beat: Heartbeat) -> str:
        try:
            event = parse_stored(delivery.provider, delivery.headers, delivery.body)
        except WebhookError as exc:
            # Deterministic: it will never parse, so retrying only delays the dead letter.
            self.store.fail(delivery.pk, f"stored delivery no longer parses: {exc.message}", 0, 1)
            self.metrics.delivery(delivery.provider, delivery.event_name, "dead")
            log.error("stored delivery does not parse", extra={"reason": exc.message})
            return "dead"
        started = self.clock()
        try:
            outcome = self.processor(event)
        except Exception as exc:
            self.metrics.observe_processing(delivery.provider, self.clock() - started)
            if isinstance(exc, LeaseLost) or not beat.beat():
                return self._lost(delivery, event.name, beat)
            return self._failed(delivery, event, exc)
        self.metrics.observe_processing(delivery.provider, self.clock() - started)
        # One last renewal doubles as the check that the delivery is still ours.
        if not beat.beat():
            return self._lost(delivery, event.name, beat)
        self.store.complete(delivery.pk, outcome)
        self.metrics.delivery(delivery.provider, event.name, outcome)
        log.info("delivery processed", extra={"event": event.name, "outcome": outcome})
        return outcome

    def _failed(self, delivery: Delivery, event: Event, exc: Exception) -> str:
        delay = backoff_delay(
            delivery.attempts,
            self.config.retry_base_seconds,
            self.config.retry_max_seconds,
            self.config.jitter(),
        )
        error = redact(f"{type(exc).__name__}: {exc}")
        state = self.store.fail(delivery.pk, error, delay, self.config.max_attempts)
        label = "dead" if state == DEAD else "failed"
        self.metrics.delivery(delivery.provider, event.name, label)
        fields: dict[str, Any] = {"event": event.name, "error": error, "state": state}
        if state == DEAD:
            log.error("delivery failed for the last time: dead letter", extra=fields, exc_info=exc)
        else:
            fields["retry_in"] = round(delay, 3)
            log.warning("delivery failed; will retry", extra=fields, exc_info=exc)
        return label


# --------------------------------------------------------------------------- readiness


@dataclass
class Readiness:
    """What ``GET /readyz`` reports beyond liveness: can this server do its work?

    Degraded (503) when a tracker rejected the credentials or could not be reached at start-up,
    when dead letters wait for a person (``bugbar deliveries``), or when the oldest pending
    delivery is older than ``max_inbox_age`` seconds (workers stuck or far behind). A tracker
    that was unreachable is asked again, at most every ``recheck_seconds``.
    """

    credentials: dict[str, str] = field(default_factory=dict)
    """Per provider: ok | rejected | unreachable (from the start-up check)."""
    recheck: Callable[[str], str] | None = None
    """Asks one provider again; returns its new status."""
    max_inbox_age: float = 600.0
    recheck_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _checked_at: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def credential_status(self) -> dict[str, str]:
        """Current per-provider status, re-asking unreachable trackers now and then."""
        with self._lock:
            due = [p for p, status in self.credentials.items()
                   if status != "ok" and self.recheck is not None
                   and self.clock() - self._checked_at.get(p, float("-inf"))
                   >= self.recheck_seconds]
            for provider in due:
                self._checked_at[provider] = self.clock()
        for provider in due:
            assert self.recheck is not None
            status = self.recheck(provider)
            with self._lock:
                self.credentials[provider] = status
        with self._lock:
            return dict(self.credentials)

    def mark(self, provider: str, status: str) -> None:
        """Record what a delivery just learnt (a 401 mid-run: the token was revoked)."""
        with self._lock:
            if self.credentials.get(provider) != status:
                self.credentials[provider] = status
                self._checked_at[provider] = self.clock()

    def report(self, store: Store, workers_ok: bool) -> tuple[bool, dict[str, Any]]:
        """``(ready, detail)`` for ``/readyz``."""
        problems: list[str] = []
        credentials = self.credential_status()
        for provider, status in sorted(credentials.items()):
            if status != "ok":
                problems.append(f"{provider} credentials {status}")
        stats = store.stats()
        oldest = store.oldest_pending_age()
        if stats.get(DEAD, 0):
            problems.append(f"{stats[DEAD]} dead letter(s): see bugbar deliveries")
        if oldest is not None and oldest > self.max_inbox_age:
            problems.append(f"oldest pending delivery is {oldest:.0f} s old "
                            f"(limit {self.max_inbox_age:.0f} s)")
        if not workers_ok:
            problems.append("worker threads have stopped")
        detail: dict[str, Any] = {
            "status": "degraded" if problems else "ready",
            "problems": problems,
            "credentials": credentials,
            "inbox": stats,
            "oldest_pending_seconds": None if oldest is None else round(oldest, 1),
            "max_inbox_age_seconds": self.max_inbox_age,
        }
        return not problems, detail


# --------------------------------------------------------------------------- app


def _json(http_status: int, /, **content: Any) -> JSONResponse:
    return JSONResponse(content, status_code=http_status)


async def _read_capped(request: Request, cap: int) -> bytes | None:
    """The request body, or None as soon as it grows past ``cap`` bytes (the rest is not read)."""
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > cap:
            return None
    return bytes(buf)


def create_app(
    config: ServerConfig,
    store: Store,
    processor: Processor,
    *,
    metrics: Metrics,
    clock: Callable[[], float] = time.perf_counter,
    start_workers: bool = True,
    readiness: Readiness | None = None,
) -> Starlette:
    """Build the Starlette app; workers start and stop with the app's lifespan.

    ``clock`` (monotonic seconds) times acknowledgements and processing. With
    ``start_workers=False`` no background thread starts (workers, :class:`Pruner`): nothing is
    processed until ``app.state.workers`` is driven by hand
    (``run_once``) or started. ``app.state`` also carries ``store``, ``metrics`` and ``config``.
    ``readiness`` sets what ``/readyz`` checks (default: inbox only, no credential status).
    """
    ready_view = readiness or Readiness()
    parsers = _verifying_parsers(config)
    pool = WorkerPool(config, store, processor, metrics, clock)
    pruner = (None if config.retention_seconds is None else
              Pruner(store, config.retention_seconds, config.prune_every_seconds,
                     config.prune_wait))

    def accept(
        provider: str, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> tuple[str, Event]:
        event = parsers[provider](headers, body, query)
        if event.kind in (EventKind.PING, EventKind.IGNORED):
            return "ignored", event
        subset = {}
        for name in _KEEP_HEADERS[provider]:
            value = get_header(headers, name)
            if value is not None:
                subset[name] = value
        # The issue goes with the delivery so that claims serialise per issue (any replica).
        issue_key = None if event.issue is None else str(event.issue)
        is_new = store.put_delivery(provider, event.delivery_id, event.name, subset, body,
                                    issue_key=issue_key)
        return ("accepted" if is_new else "duplicate"), event

    def refuse(provider: str, status: int, reason: str, headers: Mapping[str, str]) -> Response:
        outcome = _REFUSED.get(status, "rejected")
        metrics.delivery(provider, "unknown", outcome)
        log.warning(
            "delivery refused",
            extra={
                "provider": provider,
                "delivery_id": _claimed_id(provider, headers),
                "status": status,
                "reason": reason,
            },
        )
        return _json(status, status=outcome, error=reason)

    async def webhook(request: Request) -> Response:
        started = clock()
        provider = str(request.path_params["provider"])
        if provider not in parsers:
            return _json(404, status="not_found", error=f"unknown provider {provider!r}")
        headers = request.headers
        cap = config.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None:
            if not (declared.strip().isascii() and declared.strip().isdigit()):
                return refuse(provider, 400, "invalid Content-Length", headers)
            if int(declared) > cap:
                return refuse(provider, 413, f"payload exceeds the {cap}-byte limit", headers)
        try:
            body = await _read_capped(request, cap)
        except ClientDisconnect:
            return refuse(provider, 400, "client disconnected mid-body", headers)
        if body is None:
            return refuse(provider, 413, f"payload exceeds the {cap}-byte limit", headers)
        try:
            outcome, event = await run_in_threadpool(
                accept, provider, headers, body, dict(request.query_params)
            )
        except WebhookError as exc:
            return refuse(provider, exc.status, exc.message, headers)
        except Exception:
            log.exception(
                "could not store delivery",
                extra={"provider": provider, "delivery_id": _claimed_id(provider, headers)},
            )
            metrics.delivery(provider, "unknown", "store_error")
            return _json(503, status="unavailable", error="could not store the delivery")
        metrics.delivery(provider, event.name, outcome)
        fields = {"provider": provider, "delivery_id": event.delivery_id, "event": event.name}
        if outcome == "accepted":
            pool.notify()
            log.info("delivery accepted", extra={**fields, "kind": event.kind.value})
            response = _json(202, status="accepted", delivery_id=event.delivery_id)
        elif outcome == "duplicate":
            log.info("duplicate delivery", extra=fields)
            response = _json(200, status="duplicate", delivery_id=event.delivery_id)
        else:
            reason = "ping" if event.kind is EventKind.PING else event.ignore_reason
            log.info("delivery ignored", extra={**fields, "reason": reason})
            response = _json(200, status="ignored", reason=reason)
        metrics.observe_ack(clock() - started)
        return response

    async def healthz(request: Request) -> Response:
        try:
            depth = await run_in_threadpool(store.depth)
        except Exception:
            log.exception("health check: store unreadable")
            return _json(503, status="error", error="store unavailable")
        if pool.started and pool.alive < config.workers:
            return _json(503, status="degraded", inbox_depth=depth, workers_alive=pool.alive)
        return _json(200, status="ok", inbox_depth=depth, workers_alive=pool.alive)

    async def readyz(request: Request) -> Response:
        workers_ok = not (pool.started and pool.alive < config.workers)
        try:
            ready, detail = await run_in_threadpool(ready_view.report, store, workers_ok)
        except Exception:
            log.exception("readiness check: store unreadable")
            return _json(503, status="degraded", problems=["store unavailable"])
        return JSONResponse(detail, status_code=200 if ready else 503)

    def scrape() -> bytes:
        try:
            metrics.set_inbox(store.depth(), store.oldest_pending_age())
        except Exception:
            log.exception("metrics: store unreadable; inbox gauges are stale")
        return metrics.render()

    async def metrics_endpoint(request: Request) -> Response:
        return Response(await run_in_threadpool(scrape), media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if start_workers:
            pool.start()
            if pruner is not None:
                pruner.start()
        try:
            yield
        finally:
            if pruner is not None:
                await run_in_threadpool(pruner.stop)
            if pool.started:
                await run_in_threadpool(pool.stop)

    app = Starlette(
        routes=[
            Route("/webhooks/{provider}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.workers = pool
    app.state.pruner = pruner
    app.state.store = store
    app.state.metrics = metrics
    app.state.config = config
    app.state.readiness = ready_view
    return app


def serve(app: Starlette, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run ``app`` under uvicorn until interrupted (blocking).

    ``log_config=None`` leaves logging to :func:`bot.logs.configure_logging`, so uvicorn's
    access log goes through the same JSON formatter and redaction (Jira may send its shared
    secret in the query string).
    """
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_config=None, proxy_headers=False)
