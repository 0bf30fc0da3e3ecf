"""The web server: webhook intake into the durable inbox, worker threads, health and metrics.

Request flow for ``POST /webhooks/{github,gitlab,jira}`` (DESIGN.md §3):

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
process that died are picked up by the next one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import random
import secrets
import socket
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

from bot.events.common import DEFAULT_MAX_BYTES, get_header
from bot.events.github import parse_github
from bot.events.gitlab import parse_gitlab
from bot.events.jira import TOKEN_HEADER as JIRA_TOKEN_HEADER
from bot.events.jira import parse_jira
from bot.events.model import Event, EventKind, WebhookError
from bot.logs import log_context, redact
from bot.metrics import CONTENT_TYPE, Metrics
from bot.store import DEAD, Delivery
from bot.store_base import StateStore as Store

__all__ = [
    "PROVIDERS",
    "Processor",
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


def _wait_on(wake: threading.Event, timeout: float) -> bool:
    return wake.wait(timeout)


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
    lease_seconds: float = 300.0
    """How long a claimed delivery is reserved; after that another worker may take it (so a
    processor that outlasts it may run twice: processing is idempotent by design)."""
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 900.0
    max_attempts: int = 5
    poll_seconds: float = 1.0
    """Idle workers look for due retries this often; new deliveries wake them at once."""
    wait: Callable[[threading.Event, float], object] = _wait_on
    """How an idle worker waits: ``wait(wake_event, timeout)``. Tests inject a fast one."""
    jitter: Callable[[], float] = random.random
    """A number in [0, 1) that spreads retries; tests inject a constant."""
    shutdown_timeout: float = 30.0


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
        self._prefix = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

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
            return self._handle(delivery)

    def _handle(self, delivery: Delivery) -> str:
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
            return self._failed(delivery, event, exc)
        self.metrics.observe_processing(delivery.provider, self.clock() - started)
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
) -> Starlette:
    """Build the Starlette app; workers start and stop with the app's lifespan.

    ``clock`` (monotonic seconds) times acknowledgements and processing. With
    ``start_workers=False`` nothing is processed until ``app.state.workers`` is driven by hand
    (``run_once``) or started. ``app.state`` also carries ``store``, ``metrics`` and ``config``.
    """
    parsers = _verifying_parsers(config)
    pool = WorkerPool(config, store, processor, metrics, clock)

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
        try:
            yield
        finally:
            if pool.started:
                await run_in_threadpool(pool.stop)

    app = Starlette(
        routes=[
            Route("/webhooks/{provider}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.workers = pool
    app.state.store = store
    app.state.metrics = metrics
    app.state.config = config
    return app


def serve(app: Starlette, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run ``app`` under uvicorn until interrupted (blocking).

    ``log_config=None`` leaves logging to :func:`bot.logs.configure_logging`, so uvicorn's
    access log goes through the same JSON formatter and redaction (Jira may send its shared
    secret in the query string).
    """
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_config=None, proxy_headers=False)
