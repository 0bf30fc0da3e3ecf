"""Tests for bot.server: webhook intake, durable acknowledgement, workers, health and metrics."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from bot.events.model import Event, EventKind
from bot.logs import clear_secrets, configure_logging, register_secret
from bot.metrics import Metrics
from bot.server import ServerConfig, WorkerPool, backoff_delay, create_app, parse_stored
from bot.store import Store
from tests.fakes.clock import FakeClock

with warnings.catch_warnings():
    # Starlette 1.x nags about httpx vs httpx2 at import; the test client works with both.
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

SECRET = "gh-webhook-secret-5f1c2e"
GITLAB_TOKEN = "glpat-like-hook-token-91ab"
JIRA_SECRET = "jira-shared-secret-77de"


class Recorder:
    """A processor that records events and can be told to fail."""

    def __init__(self, fail_times: int = 0, outcome: str = "triaged") -> None:
        self.events: list[Event] = []
        self.fail_times = fail_times
        self.outcome = outcome
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> str:
        with self._lock:
            self.events.append(event)
            if len(self.events) <= self.fail_times:
                raise RuntimeError(f"boom #{len(self.events)}")
        return self.outcome


def issues_payload(number: int = 7, action: str = "opened") -> dict[str, Any]:
    """A minimal GitHub ``issues`` delivery (same shape as GitHub's, our own content)."""
    return {
        "action": action,
        "issue": {
            "id": 900000 + number,
            "number": number,
            "title": "Model extraction through the public scoring API",
            "body": "Querying /v1/score 40k times lets an attacker train a substitute model.",
            "state": "open",
            "labels": [],
            "user": {"login": "reporter-1", "id": 4242, "type": "User"},
        },
        "repository": {
            "id": 123456,
            "name": "scoring-service",
            "full_name": "acme/scoring-service",
            "private": False,
        },
        "sender": {"login": "reporter-1", "id": 4242, "type": "User"},
    }


def gh_headers(
    body: bytes, delivery: str, event: str = "issues", secret: str | None = SECRET
) -> dict[str, str]:
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
    }
    if secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Hub-Signature-256"] = f"sha256={digest}"
    return headers


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def fast_wait(wake: threading.Event, timeout: float) -> bool:
    return wake.wait(min(timeout, 0.01))


def real_wait(wake: threading.Event, timeout: float) -> bool:
    return wake.wait(timeout)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite3"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[Store]:
    s = Store(db_path, clock=clock)
    yield s
    s.close()


@pytest.fixture
def config() -> ServerConfig:
    return ServerConfig(
        github_secrets=[SECRET],
        gitlab_tokens=[GITLAB_TOKEN],
        jira_secrets=[JIRA_SECRET],
        max_body_bytes=64 * 1024,
        workers=2,
        retry_base_seconds=10.0,
        retry_max_seconds=100.0,
        max_attempts=3,
        wait=fast_wait,
        jitter=lambda: 0.5,
        shutdown_timeout=5.0,
    )


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream=stream)
    register_secret(SECRET)
    register_secret(GITLAB_TOKEN)
    register_secret(JIRA_SECRET)
    yield stream
    logging.getLogger().removeHandler(handler)
    clear_secrets()


def make_app(
    config: ServerConfig,
    store: Store,
    processor: Recorder,
    *,
    start_workers: bool = False,
) -> tuple[Starlette, Metrics, WorkerPool]:
    metrics = Metrics()
    app = create_app(config, store, processor, metrics=metrics, start_workers=start_workers)
    return app, metrics, app.state.workers


def post_github(
    client: TestClient | httpx.Client, payload: dict[str, Any], delivery: str, **kw: Any
) -> httpx.Response:
    body = encode(payload)
    return client.post("/webhooks/github", content=body, headers=gh_headers(body, delivery, **kw))


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "headers_secret",
    [None, "wrong-secret", ""],
    ids=["missing", "wrong-secret", "empty-secret"],
)
def test_bad_or_missing_signature_is_401_and_nothing_happens(
    config: ServerConfig,
    store: Store,
    log_stream: io.StringIO,
    headers_secret: str | None,
) -> None:
    processor = Recorder()
    app, metrics, pool = make_app(config, store, processor)
    client = TestClient(app)
    r = post_github(client, issues_payload(), "d-unauth", secret=headers_secret)
    assert r.status_code == 401
    assert r.json()["status"] == "unauthorized"
    assert store.stats() == {"pending": 0, "claimed": 0, "done": 0, "dead": 0}
    assert pool.run_once() is None
    assert processor.events == []
    logged = log_stream.getvalue()
    assert "d-unauth" in logged and "X-Hub-Signature-256" in logged
    assert "Model extraction" not in logged and "substitute model" not in logged
    assert SECRET not in logged
    assert b'outcome="unauthorized"' in metrics.render()


def test_signature_over_other_bytes_is_401(config: ServerConfig, store: Store) -> None:
    app, _, _ = make_app(config, store, Recorder())
    signed = encode(issues_payload())
    sent = signed.replace(b"opened", b"edited")
    r = TestClient(app).post(
        "/webhooks/github", content=sent, headers=gh_headers(signed, "d-tampered")
    )
    assert r.status_code == 401
    assert store.stats()["pending"] == 0


@pytest.mark.parametrize(
    ("body", "drop_header"),
    [
        (b"{not json", None),
        (b"[1, 2, 3]", None),
        (json.dumps({"action": "opened", "issue": {"number": 1}}).encode(), None),
        (json.dumps(issues_payload()).encode(), "X-GitHub-Event"),
    ],
    ids=["bad-json", "not-object", "missing-repository", "missing-event-header"],
)
def test_malformed_is_400_and_not_stored(
    config: ServerConfig, store: Store, body: bytes, drop_header: str | None
) -> None:
    app, metrics, _ = make_app(config, store, Recorder())
    headers = gh_headers(body, "d-malformed")
    if drop_header:
        del headers[drop_header]
    r = TestClient(app).post("/webhooks/github", content=body, headers=headers)
    assert r.status_code == 400
    assert r.json()["status"] == "malformed"
    assert store.stats()["pending"] == 0
    assert b'outcome="malformed"' in metrics.render()


def test_oversize_content_length_is_413_before_reading(config: ServerConfig, store: Store) -> None:
    app, metrics, _ = make_app(config, store, Recorder())
    payload = issues_payload()
    payload["issue"]["body"] = "x" * (config.max_body_bytes + 1)
    r = post_github(TestClient(app), payload, "d-big")  # correctly signed: size alone refuses
    assert r.status_code == 413
    assert r.json()["status"] == "too_large"
    assert store.stats()["pending"] == 0
    assert b'outcome="too_large"' in metrics.render()


def test_oversize_chunked_is_413(config: ServerConfig, store: Store) -> None:
    consumed: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(20):
            consumed.append(i)
            yield b"x" * 16 * 1024

    app, _, _ = make_app(config, store, Recorder())
    r = TestClient(app).post(
        "/webhooks/github", content=chunks(), headers=gh_headers(b"", "d-chunked")
    )
    assert r.status_code == 413
    assert store.stats()["pending"] == 0


def test_invalid_content_length_is_400(config: ServerConfig, store: Store) -> None:
    app, _, _ = make_app(config, store, Recorder())
    body = encode(issues_payload())
    headers = {**gh_headers(body, "d-cl"), "Content-Length": "12abc"}
    # Starlette's test transport passes the header through as given.
    r = TestClient(app).post("/webhooks/github", content=body, headers=headers)
    assert r.status_code == 400


def test_unknown_provider_is_404_and_get_is_405(config: ServerConfig, store: Store) -> None:
    app, _, _ = make_app(config, store, Recorder())
    client = TestClient(app)
    assert client.post("/webhooks/bitbucket", content=b"{}").status_code == 404
    assert client.get("/webhooks/github").status_code == 405


def test_ping_and_ignored_events_are_answered_without_storing(
    config: ServerConfig, store: Store
) -> None:
    app, metrics, _ = make_app(config, store, Recorder())
    client = TestClient(app)
    ping = post_github(
        client, {"zen": "Keep it logically awesome.", "hook_id": 1}, "p1", event="ping"
    )
    assert ping.status_code == 200
    assert ping.json() == {"status": "ignored", "reason": "ping"}
    push = post_github(client, {"ref": "refs/heads/main"}, "p2", event="push")
    assert push.status_code == 200 and push.json()["status"] == "ignored"
    assert store.stats() == {"pending": 0, "claimed": 0, "done": 0, "dead": 0}
    assert b'event="ping",outcome="ignored"' in metrics.render()


# --------------------------------------------------------------------------- acceptance


def test_accepted_is_stored_before_202_then_processed_once(
    config: ServerConfig, store: Store, log_stream: io.StringIO
) -> None:
    processor = Recorder()
    app, metrics, _ = make_app(config, store, processor, start_workers=True)
    with TestClient(app) as client:
        r = post_github(client, issues_payload(number=7), "d-ok")
        assert r.status_code == 202
        assert r.json() == {"status": "accepted", "delivery_id": "d-ok"}
        wait_for(lambda: store.stats()["done"] == 1)
    assert len(processor.events) == 1
    event = processor.events[0]
    assert (event.kind, event.delivery_id, event.name) == (EventKind.ISSUE_OPENED, "d-ok", "issues")
    assert event.issue is not None and str(event.issue) == "github:acme/scoring-service#7"
    text = metrics.render().decode()
    assert (
        'bugbar_deliveries_total{event="issues",outcome="accepted",provider="github"} 1.0' in text
    )
    assert 'bugbar_deliveries_total{event="issues",outcome="triaged",provider="github"} 1.0' in text
    assert 'bugbar_processing_seconds_count{provider="github"} 1.0' in text
    assert "bugbar_ack_seconds_count 1.0" in text
    worker_lines = [
        json.loads(line)
        for line in log_stream.getvalue().splitlines()
        if "delivery processed" in line
    ]
    assert worker_lines and worker_lines[0]["delivery_id"] == "d-ok"
    assert worker_lines[0]["provider"] == "github"


def test_ack_happens_only_after_durable_store(config: ServerConfig, db_path: Path) -> None:
    class FailingStore(Store):
        def put_delivery(self, *args: Any, **kwargs: Any) -> bool:
            raise OSError("disk full")

    broken = FailingStore(db_path)
    try:
        app, _, _ = make_app(config, broken, Recorder())
        r = post_github(TestClient(app), issues_payload(), "d-disk")
        assert r.status_code == 503
    finally:
        broken.close()


def test_accepted_row_is_on_disk_when_202_arrives(
    config: ServerConfig, store: Store, db_path: Path
) -> None:
    app, _, _ = make_app(config, store, Recorder())
    r = post_github(TestClient(app), issues_payload(), "d-disk-ok")
    assert r.status_code == 202
    other = Store(db_path)  # a second connection sees the committed row
    try:
        assert other.stats()["pending"] == 1
    finally:
        other.close()


def test_duplicate_delivery_is_2xx_and_no_second_call(config: ServerConfig, store: Store) -> None:
    processor = Recorder()
    app, metrics, pool = make_app(config, store, processor)
    client = TestClient(app)
    assert post_github(client, issues_payload(), "d-dup").status_code == 202
    again = post_github(client, issues_payload(), "d-dup")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert pool.run_once() == "triaged"
    assert pool.run_once() is None
    after_done = post_github(client, issues_payload(), "d-dup")
    assert after_done.json()["status"] == "duplicate"
    assert pool.run_once() is None
    assert len(processor.events) == 1
    assert b'outcome="duplicate",provider="github"} 2.0' in metrics.render()


def test_failures_back_off_then_dead_letter(
    config: ServerConfig, store: Store, clock: FakeClock
) -> None:
    processor = Recorder(fail_times=99)
    app, metrics, pool = make_app(config, store, processor)
    assert post_github(TestClient(app), issues_payload(), "d-fail").status_code == 202

    # jitter 0.5 → delay = 0.75 × base·2^(n-1): 7.5 s after attempt 1, 15 s after attempt 2.
    assert pool.run_once() == "failed"
    assert pool.run_once() is None
    clock.advance(7.4)
    assert pool.run_once() is None
    clock.advance(0.2)
    assert pool.run_once() == "failed"
    clock.advance(14.9)
    assert pool.run_once() is None
    clock.advance(0.2)
    assert pool.run_once() == "dead"
    clock.advance(1000)
    assert pool.run_once() is None

    assert len(processor.events) == 3
    dead = store.dead_letters()
    assert [(d.delivery_id, d.attempts) for d in dead] == [("d-fail", 3)]
    assert dead[0].last_error is not None and "RuntimeError: boom #3" in dead[0].last_error
    text = metrics.render().decode()
    assert 'outcome="failed",provider="github"} 2.0' in text
    assert 'outcome="dead",provider="github"} 1.0' in text

    assert store.retry_dead() == 1  # an operator requeues it; this time it works
    processor.fail_times = 0
    processor.events.clear()
    assert pool.run_once() == "triaged"


def test_worker_threads_retry_with_injected_clock(
    config: ServerConfig, store: Store, clock: FakeClock
) -> None:
    processor = Recorder(fail_times=1)
    app, _, _ = make_app(config, store, processor, start_workers=True)
    with TestClient(app) as client:
        assert post_github(client, issues_payload(), "d-retry").status_code == 202
        wait_for(lambda: len(processor.events) == 1 and store.stats()["pending"] == 1)
        clock.advance(7.5)  # the back-off; workers poll and pick it up
        wait_for(lambda: store.stats()["done"] == 1)
    assert len(processor.events) == 2


def test_stored_but_unprocessed_delivery_survives_restart(
    config: ServerConfig, db_path: Path
) -> None:
    first_store = Store(db_path)
    first = Recorder()
    app1, _, _ = make_app(config, first_store, first, start_workers=False)
    assert post_github(TestClient(app1), issues_payload(number=11), "d-crash").status_code == 202
    first_store.close()  # the process "dies" before any worker ran
    assert first.events == []

    second_store = Store(db_path)
    try:
        second = Recorder()
        app2, _, _ = make_app(config, second_store, second, start_workers=True)
        with TestClient(app2):
            wait_for(lambda: second_store.stats()["done"] == 1)
        assert [e.delivery_id for e in second.events] == ["d-crash"]
        assert second.events[0].issue is not None and second.events[0].issue.number == 11
    finally:
        second_store.close()


def test_new_delivery_wakes_idle_workers(config: ServerConfig, store: Store) -> None:
    slow_poll = dataclasses.replace(config, wait=real_wait, poll_seconds=30.0)
    processor = Recorder()
    app, _, _ = make_app(slow_poll, store, processor, start_workers=True)
    with TestClient(app) as client:
        time.sleep(0.05)  # let the workers go idle on their 30-second wait
        started = time.monotonic()
        assert post_github(client, issues_payload(), "d-wake").status_code == 202
        wait_for(lambda: store.stats()["done"] == 1, timeout=5.0)
        assert time.monotonic() - started < 5.0


def test_graceful_shutdown_stops_workers(config: ServerConfig, store: Store) -> None:
    app, _, pool = make_app(config, store, Recorder(), start_workers=True)
    with TestClient(app):
        wait_for(lambda: pool.alive == config.workers)
    assert pool.alive == 0 and not pool.started


# --------------------------------------------------------------------------- other providers


def test_gitlab_delivery_is_stored_without_its_token_and_reparsed(
    config: ServerConfig, store: Store
) -> None:
    payload = {
        "object_kind": "issue",
        "event_type": "issue",
        "user": {"id": 5, "username": "reporter"},
        "project": {"id": 9, "path_with_namespace": "ml/platform"},
        "object_attributes": {"id": 77, "iid": 3, "action": "open", "title": "t"},
    }
    body = encode(payload)
    headers = {
        "X-Gitlab-Event": "Issue Hook",
        "X-Gitlab-Token": GITLAB_TOKEN,
        "Idempotency-Key": "gl-1",
        "Content-Type": "application/json",
    }
    processor = Recorder()
    app, _, pool = make_app(config, store, processor)
    client = TestClient(app)
    wrong = {**headers, "X-Gitlab-Token": "nope"}
    assert client.post("/webhooks/gitlab", content=body, headers=wrong).status_code == 401
    assert client.post("/webhooks/gitlab", content=body, headers=headers).status_code == 202
    claimed = store.claim_next("inspect", 0.0)  # lease 0: immediately claimable again
    assert claimed is not None
    assert GITLAB_TOKEN not in json.dumps(claimed.headers)
    assert claimed.headers["X-Gitlab-Event"] == "Issue Hook"
    assert pool.run_once() == "triaged"
    event = processor.events[0]
    assert (event.kind, event.delivery_id) == (EventKind.ISSUE_OPENED, "gl-1")
    assert event.issue is not None and str(event.issue) == "gitlab:ml/platform#3"


def test_jira_delivery_with_query_secret(config: ServerConfig, store: Store) -> None:
    payload = {
        "timestamp": 1700000000123,
        "webhookEvent": "jira:issue_created",
        "user": {"accountId": "abc", "displayName": "Reporter"},
        "issue": {"id": "10001", "key": "SEC-42", "fields": {"project": {"key": "SEC"}}},
    }
    body = encode(payload)
    headers = {"X-Atlassian-Webhook-Identifier": "jira-1", "Content-Type": "application/json"}
    processor = Recorder()
    app, _, pool = make_app(config, store, processor)
    client = TestClient(app)
    assert client.post("/webhooks/jira", content=body, headers=headers).status_code == 401
    ok = client.post(f"/webhooks/jira?secret={JIRA_SECRET}", content=body, headers=headers)
    assert ok.status_code == 202
    assert pool.run_once() == "triaged"
    event = processor.events[0]
    assert (event.kind, event.delivery_id) == (EventKind.ISSUE_OPENED, "jira-1")
    assert event.issue is not None and event.issue.key == "SEC-42"


def test_parse_stored_ignores_credentials_in_stored_headers() -> None:
    body = encode(issues_payload())
    stale = gh_headers(body, "d-x", secret="rotated-away")
    event = parse_stored("github", stale, body)
    assert event.kind is EventKind.ISSUE_OPENED and event.delivery_id == "d-x"


# --------------------------------------------------------------------------- health, metrics


def test_healthz_reports_depth_and_503_when_store_unreadable(
    config: ServerConfig, db_path: Path
) -> None:
    s = Store(db_path)
    app, _, _ = make_app(config, s, Recorder())
    client = TestClient(app)
    post_github(client, issues_payload(), "h1")
    post_github(client, issues_payload(), "h2")
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["inbox_depth"] == 2
    s.close()
    assert client.get("/healthz").status_code == 503


def test_metrics_endpoint(config: ServerConfig, store: Store, clock: FakeClock) -> None:
    app, metrics, _ = make_app(config, store, Recorder())
    client = TestClient(app)
    post_github(client, issues_payload(), "m1")
    post_github(client, issues_payload(), "m2", secret="bad")
    clock.advance(42)
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'bugbar_deliveries_total{event="issues",outcome="accepted",provider="github"} 1.0' in text
    )
    assert (
        'bugbar_deliveries_total{event="unknown",outcome="unauthorized",provider="github"}' in text
    )
    assert "bugbar_inbox_depth 1.0" in text
    assert "bugbar_inbox_oldest_age_seconds 42.0" in text
    assert "bugbar_ack_seconds_bucket" in text


def test_backoff_delay_is_exponential_capped_and_jittered() -> None:
    assert backoff_delay(1, 2.0, 60.0, 0.0) == 1.0
    assert backoff_delay(1, 2.0, 60.0, 1.0) == 2.0
    assert backoff_delay(3, 2.0, 60.0, 0.5) == 6.0
    assert backoff_delay(50, 2.0, 60.0, 1.0) == 60.0
    assert backoff_delay(10_000, 2.0, 60.0, 0.0) == 30.0


# --------------------------------------------------------------------------- real HTTP


def test_real_uvicorn_server(config: ServerConfig, store: Store) -> None:
    processor = Recorder()
    app, _, _ = make_app(config, store, processor, start_workers=True)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started)
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            assert client.get("/healthz").json()["status"] == "ok"
            assert post_github(client, issues_payload(), "d-http").status_code == 202
            assert post_github(client, issues_payload(), "d-http").status_code == 200
            assert post_github(client, issues_payload(), "d-h2", secret="x").status_code == 401

            def chunks() -> Iterator[bytes]:
                for _ in range(8):
                    yield b"y" * 16 * 1024

            big = client.post(
                "/webhooks/github", content=chunks(), headers=gh_headers(b"", "d-big-chunked")
            )
            assert big.status_code == 413
            huge = b"z" * (config.max_body_bytes + 1)
            declared = client.post(
                "/webhooks/github", content=huge, headers=gh_headers(huge, "d-big-declared")
            )
            assert declared.status_code == 413
            wait_for(lambda: store.stats()["done"] == 1)
            assert "bugbar_deliveries_total" in client.get("/metrics").text
    finally:
        server.should_exit = True
        thread.join(10)
    assert not thread.is_alive()
    assert [e.delivery_id for e in processor.events] == ["d-http"]


def test_config_repr_hides_secrets() -> None:
    text = repr(ServerConfig(github_secrets=[SECRET], gitlab_tokens=[GITLAB_TOKEN]))
    assert SECRET not in text and GITLAB_TOKEN not in text


# --------------------------------------------------------------------------- leases


def test_heartbeat_keeps_a_long_delivery_claimed(config: ServerConfig, store: Store,
                                                 clock: FakeClock) -> None:
    """50 s of work on a 15 s lease: renewed every 5 s, nobody else gets the delivery."""
    fast_beat = dataclasses.replace(config, workers=1, heartbeat_seconds=0.005)
    intruder_got: list[object] = []
    pool_ref: list[WorkerPool] = []

    def slow(event: Event) -> str:
        for _ in range(10):
            before = pool_ref[0].beats_seen()
            clock.advance(5)  # a third of the lease passes...
            wait_for(lambda b=before: pool_ref[0].beats_seen() > b)  # ...and a beat renews it
            intruder_got.append(store.claim_next("intruder", 15))
        return "triaged"

    app, _, pool = make_app(fast_beat, store, Recorder(), start_workers=False)
    pool.processor = slow
    pool_ref.append(pool)
    with TestClient(app) as client:
        assert post_github(client, issues_payload(), "d-long").status_code == 202
        pool.start()
        wait_for(lambda: store.stats()["done"] == 1)
    assert intruder_got == [None] * 10
    assert pool.lost_leases == 0


def test_worker_that_lost_its_lease_records_no_outcome(config: ServerConfig, store: Store,
                                                       clock: FakeClock) -> None:
    from bot.lease import ensure_held

    writes: list[str] = []
    taken: list[object] = []

    def stalls(event: Event) -> str:
        clock.advance(16)  # stalled past the lease (no heartbeat: run_once drives by hand)
        taken.append(store.claim_next("other-worker", 15))
        ensure_held()  # the check before a tracker write
        writes.append("comment")
        return "triaged"

    app, metrics, pool = make_app(config, store, Recorder())
    pool.processor = stalls
    assert post_github(TestClient(app), issues_payload(), "d-stall").status_code == 202
    # The final renewal finds the lease gone: neither "done" nor "failed" is recorded.
    assert pool.run_once("w1") == "lease_lost"
    assert writes == ["comment"]  # by hand, nothing renewed: the write was not stopped ...
    assert store.stats() == {"pending": 0, "claimed": 1, "done": 0, "dead": 0}
    assert pool.lost_leases == 1
    assert 'outcome="lease_lost"' in metrics.render().decode()
    [other] = taken
    assert other is not None and store.renew_lease(other.pk, "other-worker", 15)  # type: ignore[attr-defined]


def test_lost_lease_stops_tracker_writes(config: ServerConfig, store: Store,
                                         clock: FakeClock) -> None:
    from bot.lease import ensure_held

    writes: list[str] = []

    def stalls(event: Event) -> str:
        clock.advance(16)
        assert store.claim_next("other-worker", 15) is not None
        assert not pool.heartbeat_now()  # what the heartbeat thread finds on its next beat
        ensure_held()
        writes.append("comment")
        return "triaged"

    app, _, pool = make_app(config, store, Recorder())
    pool.processor = stalls
    assert post_github(TestClient(app), issues_payload(), "d-stall2").status_code == 202
    assert pool.run_once("w1") == "lease_lost"
    assert writes == []  # LeaseLost before the write
    assert store.stats()["claimed"] == 1  # the other worker's claim is untouched


def test_start_releases_claims_of_dead_processes(config: ServerConfig, store: Store) -> None:
    processor = Recorder()
    app, _, pool = make_app(config, store, processor)
    assert post_github(TestClient(app), issues_payload(), "d-orphan").status_code == 202
    # Claimed by a process of this host that no longer exists (pid beyond pid_max).
    import socket

    assert store.claim_next(f"{socket.gethostname()}:99999999:1:0", 15) is not None
    pool.start()
    try:
        wait_for(lambda: store.stats()["done"] == 1)  # no clock advance: released at start
    finally:
        pool.stop()
    assert [e.delivery_id for e in processor.events] == ["d-orphan"]


def test_is_alive_reads_host_pid_and_start_time() -> None:
    import os
    import socket

    from bot.lease import is_alive, owner_prefix

    me = owner_prefix()
    host, pid, token = me.split(":")
    assert host == socket.gethostname() and int(pid) == os.getpid()
    assert is_alive(me + ":0")
    assert not is_alive(f"{host}:{pid}:not-{token}:0")  # same pid, earlier process
    assert not is_alive(f"{host}:99999999:{token}:0")  # no such process
    if os.path.exists("/proc/1/stat"):
        assert not is_alive(f"{host}:1:wrong-start:0")  # pid reused by another process
    assert is_alive(f"other-host:{pid}:{token}:0")  # cannot tell: its lease runs out
    assert is_alive("manual") and is_alive("w1")
