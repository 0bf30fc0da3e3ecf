"""The GitHub path end to end, through the real stack wherever it matters.

A signed ``issues`` / ``issue_comment`` delivery goes over HTTP (Starlette's TestClient, or
uvicorn on loopback) into ``create_app``; it is written to a real SQLite file before the 2xx;
a worker (``run_once`` by hand, or the app's own threads) re-parses it and runs the real
``Bot`` with the shipped rules; the ``GitHubTracker`` drives real PyGithub over real HTTP to
``FakeGitHub`` on 127.0.0.1. Retry back-off never really waits: the retry policy's ``sleep`` is
injected and records what it was asked to wait.

Every scenario ends the same way: the issue has the right labels and exactly one bot comment.
The payloads are our own, shaped like GitHub's (shared/fixtures/github/webhooks/*), and the
exact bytes sent are signed with HMAC-SHA256 as GitHub does.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import hmac
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette

import bot.providers.retry as retry_module
from bot.app import Bot
from bot.app_cli import build_bot
from bot.config import Config
from bot.decide.classify import Classifier
from bot.decide.render import MARKER_PREFIX
from bot.handlers.commands import Commands
from bot.metrics import Metrics
from bot.providers.github import GitHubTracker
from bot.providers.retry import RetryPolicy, WritePacer
from bot.server import ServerConfig, WorkerPool, create_app
from bot.store import Store
from tests.fakes.clock import FakeClock
from tests.fakes.github_api import FakeGitHub

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
SECRET = "e2e-hook-secret-0c61d9"
TOKEN = "ghp_e2eToken0000000000000000000000000000"
REPO = "acme/vision"
BOT = "bugbar-bot"
APP_ID = 4242
INSTALLATION = 31337

STEAL = (
    "Model extraction through the public scoring API",
    "Querying /v1/score 40k times lets an attacker train a substitute model.",
)
STEAL_PROD = (
    STEAL[0],
    STEAL[1] + " This is our production model and it was exploited by other users' accounts.",
)
HARMLESS = ("Typo in the README", "The install section says pip instal instead of pip install.")

STEAL_LABELS = {"threat/model-stealing", "severity/important", "route/security"}
STEAL_PROD_LABELS = {"threat/model-stealing", "severity/critical", "route/ssirp"}

COMMENT_POSTS = r"/issues/\d+/comments$"
LABEL_POSTS = r"/issues/\d+/labels$"


# --------------------------------------------------------------------------- payloads


def _user(login: str, uid: int, kind: str = "User") -> dict[str, Any]:
    return {"login": login, "id": uid, "node_id": f"U_{uid}", "type": kind, "site_admin": False,
            "url": f"https://api.github.com/users/{login}"}


def _issue(number: int, title: str, body: str, labels: tuple[str, ...] = (),
           pull_request: bool = False) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "url": f"https://api.github.com/repos/{REPO}/issues/{number}",
        "html_url": f"https://github.com/{REPO}/issues/{number}",
        "id": 7_000_000 + number, "node_id": f"I_{number}", "number": number,
        "title": title, "body": body, "user": _user("reporter-7", 7001),
        "labels": [{"id": 500 + i, "name": name, "color": "ededed", "default": False}
                   for i, name in enumerate(labels)],
        "state": "open", "locked": False, "comments": 0, "author_association": "NONE",
        "created_at": "2026-01-05T10:00:00Z", "updated_at": "2026-01-05T10:00:00Z",
    }
    if pull_request:
        issue["pull_request"] = {"url": f"https://api.github.com/repos/{REPO}/pulls/{number}"}
    return issue


def _envelope(sender: dict[str, Any], installation: int | None) -> dict[str, Any]:
    owner, name = REPO.split("/")
    out: dict[str, Any] = {
        "repository": {"id": 4242, "node_id": "R_4242", "name": name, "full_name": REPO,
                       "private": False, "owner": _user(owner, 1, "Organization")},
        "sender": sender,
    }
    if installation is not None:
        out["installation"] = {"id": installation, "node_id": f"MDIz_{installation}"}
    return out


def issues_payload(action: str, number: int, title: str, body: str, *,
                   labels: tuple[str, ...] = (), sender: dict[str, Any] | None = None,
                   changes: dict[str, Any] | None = None,
                   installation: int | None = None) -> dict[str, Any]:
    """An ``issues`` delivery (opened / edited / reopened)."""
    payload = {"action": action, "issue": _issue(number, title, body, labels),
               **_envelope(sender or _user("reporter-7", 7001), installation)}
    if changes is not None:
        payload["changes"] = changes
    return payload


def comment_payload(action: str, number: int, comment_id: int, text: str,
                    author: dict[str, Any], *, pull_request: bool = False,
                    installation: int | None = None) -> dict[str, Any]:
    """An ``issue_comment`` delivery (also sent for pull-request conversations)."""
    return {
        "action": action,
        "issue": _issue(number, *STEAL, pull_request=pull_request),
        "comment": {"id": comment_id, "node_id": f"IC_{comment_id}", "user": author,
                    "body": text, "author_association": "CONTRIBUTOR",
                    "url": f"https://api.github.com/repos/{REPO}/issues/comments/{comment_id}"},
        **_envelope(author, installation),
    }


def signed(event: str, payload: dict[str, Any], delivery: str | None = None
           ) -> tuple[bytes, dict[str, str]]:
    """The exact bytes GitHub would send and the headers that go with them."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "512340917",
        "X-Hub-Signature-256": f"sha256={digest}",
        "User-Agent": "GitHub-Hookshot/8c1f0e2",
        "Content-Type": "application/json",
    }


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def fast_wait(wake: threading.Event, timeout: float) -> bool:
    return wake.wait(min(timeout, 0.02))


def server_config(**kw: Any) -> ServerConfig:
    base: dict[str, Any] = dict(github_secrets=[SECRET], workers=2, max_attempts=3,
                                retry_base_seconds=10.0, retry_max_seconds=60.0,
                                wait=fast_wait, jitter=lambda: 0.0, shutdown_timeout=10.0)
    base.update(kw)
    return ServerConfig(**base)


# --------------------------------------------------------------------------- the world


class World:
    """FakeGitHub, a real store file, the real Bot and app, and a TestClient in front."""

    def __init__(self, fake: FakeGitHub, db: Path, classifier: Classifier) -> None:
        self.fake = fake
        self.clock = FakeClock(time.time())
        self.store = Store(db, clock=self.clock)
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] = lambda: None
        self.tracker = self.make_tracker()
        self.metrics = Metrics()
        self.bot = Bot(classifier, self.store, {"github": lambda ref, inst: self.tracker},
                       metrics=self.metrics)
        self.bot.commands = Commands(self.bot.triage, self.store)
        self.app: Starlette = create_app(server_config(), self.store, self.bot.process,
                                         metrics=self.metrics)
        self.pool: WorkerPool = self.app.state.workers
        # Without entering it as a context manager, the client does not run the lifespan, so
        # the worker threads stay off and tests drive ``run_once`` by hand.
        self.client = TestClient(self.app)

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.on_sleep()

    def make_tracker(self, timeout: int = 10) -> GitHubTracker:
        return GitHubTracker.from_token(
            TOKEN, self.fake.url, policy=RetryPolicy(sleep=self._sleep, jitter=0.0),
            pacer=WritePacer(0.0), timeout=timeout)

    def post(self, event: str, payload: dict[str, Any], delivery: str | None = None
             ) -> httpx.Response:
        body, headers = signed(event, payload, delivery)
        response: httpx.Response = self.client.post("/webhooks/github", content=body,
                                                    headers=headers)
        return response

    def work(self) -> list[str]:
        """Run the inbox dry (only what is due now); the outcomes in order."""
        outcomes: list[str] = []
        for _ in range(50):
            outcome = self.pool.run_once("test-worker")
            if outcome is None:
                return outcomes
            outcomes.append(outcome)
        raise AssertionError("inbox did not drain")

    def labels(self, number: int) -> set[str]:
        return set(self.fake.issue_labels(REPO, number))

    def bot_comments(self, number: int, login: str = BOT) -> list[dict[str, Any]]:
        return [c for c in self.fake.comments(REPO, number) if c["user"]["login"] == login]

    def one_bot_comment(self, number: int, login: str = BOT) -> dict[str, Any]:
        comments = self.bot_comments(number, login)
        assert len(comments) == 1, comments
        assert MARKER_PREFIX in comments[0]["body"]
        return comments[0]


@pytest.fixture()
def world(tmp_path: Path, classifier: Classifier) -> Iterator[World]:
    with FakeGitHub(tokens=[TOKEN], login=BOT) as fake:
        fake.add_repo(REPO, id=4242)
        w = World(fake, tmp_path / "state.db", classifier)
        try:
            yield w
        finally:
            w.client.close()
            w.store.close()


def open_threat(world: World, text: tuple[str, str] = STEAL,
                labels: tuple[str, ...] = ()) -> int:
    """A reporter opens an issue on GitHub and GitHub delivers ``issues.opened``."""
    n = world.fake.add_issue(REPO, *text, labels=list(labels), user="reporter-7")
    r = world.post("issues", issues_payload("opened", n, *text, labels=labels))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "accepted"
    return n


# --------------------------------------------------------------------------- happy paths


def test_ping_is_200_and_stores_nothing(world: World) -> None:
    r = world.post("ping", {"zen": "Design for failure.", "hook_id": 512340917,
                            "hook": {"type": "Repository", "events": ["issues"]},
                            **_envelope(_user("octo-admin", 9), None)})
    assert r.status_code == 200
    assert r.json() == {"status": "ignored", "reason": "ping"}
    assert world.store.stats() == {"pending": 0, "claimed": 0, "done": 0, "dead": 0}
    assert world.fake.requests == []


def test_wrong_signature_is_401_and_github_is_never_called(world: World) -> None:
    n = world.fake.add_issue(REPO, *STEAL)
    body, headers = signed("issues", issues_payload("opened", n, *STEAL))
    headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    assert world.client.post("/webhooks/github", content=body, headers=headers).status_code == 401
    assert world.work() == []
    assert world.store.stats()["pending"] == 0 and world.fake.requests == []


def test_opened_threat_issue_gets_labels_and_one_comment_from_the_worker_threads(
    world: World,
) -> None:
    with world.client:  # lifespan: the app's own worker threads run
        n = open_threat(world)
        wait_for(lambda: world.store.stats()["done"] == 1)
    assert world.labels(n) == STEAL_LABELS
    comment = world.one_bot_comment(n)
    assert "model-stealing" in comment["body"]
    assert world.fake.count("POST", COMMENT_POSTS) == 1
    assert world.sleeps == []
    text = world.metrics.render().decode()
    assert 'outcome="triaged",provider="github"} 1.0' in text


def test_edit_that_changes_the_decision_edits_the_same_comment(world: World) -> None:
    n = open_threat(world)
    assert world.work() == ["triaged"]
    before = world.one_bot_comment(n)

    world.fake.edit_issue(REPO, n, body=STEAL_PROD[1])
    r = world.post("issues", issues_payload("edited", n, *STEAL_PROD,
                                            labels=tuple(sorted(STEAL_LABELS)),
                                            changes={"body": {"from": STEAL[1]}}))
    assert r.status_code == 202
    assert world.work() == ["triaged"]

    assert world.labels(n) == STEAL_PROD_LABELS
    after = world.one_bot_comment(n)
    assert after["id"] == before["id"] and after["body"] != before["body"]
    assert "critical" in after["body"].lower()
    assert world.fake.count("POST", COMMENT_POSTS) == 1
    assert world.fake.count("PATCH", r"/issues/comments/\d+$") == 1


def test_edit_to_no_longer_match_removes_only_the_bot_labels(world: World) -> None:
    n = open_threat(world, labels=("needs-info",))
    assert world.work() == ["triaged"]
    assert world.labels(n) == STEAL_LABELS | {"needs-info"}
    first = world.one_bot_comment(n)
    # A maintainer adds a label in the bot's namespace by hand: it is theirs, not the bot's.
    world.fake.edit_issue(REPO, n, labels=[*world.fake.issue_labels(REPO, n), "route/privacy"])

    world.fake.edit_issue(REPO, n, title=HARMLESS[0], body=HARMLESS[1])
    r = world.post("issues", issues_payload(
        "edited", n, *HARMLESS, labels=("needs-info", "route/privacy"),
        changes={"title": {"from": STEAL[0]}, "body": {"from": STEAL[1]}}))
    assert r.status_code == 202
    assert world.work() == ["triaged"]

    assert world.labels(n) == {"needs-info", "route/privacy"}
    comment = world.one_bot_comment(n)
    assert comment["id"] == first["id"]
    assert "no longer matches" in comment["body"]
    removed = sorted(w for w in world.fake.writes if ":-label " in w)
    assert removed == sorted(f"github:{REPO}#{n}:-label {x}" for x in STEAL_LABELS)


def test_opt_out_label_and_bot_senders_are_ignored(world: World) -> None:
    opted = open_threat(world, labels=("bugbar:ignore",))
    n = world.fake.add_issue(REPO, *STEAL)
    dependabot = _user("dependabot[bot]", 49699333, "Bot")
    itself = _user(BOT, 8001)  # the token's own account, a plain user
    for sender in (dependabot, itself):
        r = world.post("issues", issues_payload("opened", n, *STEAL, sender=sender))
        assert r.status_code == 202
    # The bot's own comment coming back as an event.
    echo = comment_payload("created", n, 99001, f"{MARKER_PREFIX} -->\nhello", itself)
    assert world.post("issue_comment", echo).status_code == 202

    assert world.work() == ["opted-out", "ignored-bot", "ignored-self", "ignored-self"]
    assert world.fake.writes == []
    assert world.labels(opted) == {"bugbar:ignore"} and world.labels(n) == set()
    assert world.bot_comments(opted) == [] and world.bot_comments(n) == []


def test_pull_request_events_are_ignored(world: World) -> None:
    pr = world.fake.add_issue(REPO, *STEAL, pull_request=True)
    r = world.post("pull_request", {"action": "opened", "number": pr,
                                    "pull_request": {"number": pr, "title": STEAL[0]},
                                    **_envelope(_user("reporter-7", 7001), None)})
    assert r.status_code == 200 and r.json()["status"] == "ignored"
    on_pr = comment_payload("created", pr, 99002, "nice model", _user("reporter-7", 7001),
                            pull_request=True)
    r = world.post("issue_comment", on_pr)
    assert r.status_code == 200 and r.json() == {"status": "ignored", "reason": "pull request"}
    assert world.store.stats()["pending"] == 0
    # Should an issues event ever name a pull request, the fresh fetch says so and triage skips.
    assert world.post("issues", issues_payload("opened", pr, *STEAL)).status_code == 202
    assert world.work() == ["skipped-pull-request"]
    assert world.fake.writes == [] and world.bot_comments(pr) == []


def test_plain_comment_on_a_triaged_issue_changes_nothing(world: World) -> None:
    n = open_threat(world)
    assert world.work() == ["triaged"]
    writes = list(world.fake.writes)
    cid = world.fake.add_comment(REPO, n, "Thanks, looking into it.", user="reporter-7")
    payload = comment_payload("created", n, cid, "Thanks, looking into it.",
                              _user("reporter-7", 7001))
    assert world.post("issue_comment", payload).status_code == 202
    assert world.work() == ["no-commands"]
    assert world.fake.writes == writes
    world.one_bot_comment(n)


# --------------------------------------------------------------------------- faults


def test_502_on_the_label_post_is_retried(world: World) -> None:
    world.fake.fail_next("POST", LABEL_POSTS, 502)
    n = open_threat(world)
    assert world.work() == ["triaged"]
    assert world.labels(n) == STEAL_LABELS
    world.one_bot_comment(n)
    assert world.fake.count("POST", LABEL_POSTS, status=502) == 1
    assert world.fake.count("POST", LABEL_POSTS) == 2
    assert world.sleeps == [1.0]  # one back-off of base_backoff, no jitter


def test_secondary_rate_limit_on_the_comment_post_waits_retry_after(world: World) -> None:
    world.fake.fail_secondary_rate_limit("POST", COMMENT_POSTS, retry_after=37,
                                         content_creation=True)
    n = open_threat(world)
    assert world.work() == ["triaged"]
    assert world.sleeps == [37.0]
    assert world.fake.count("POST", COMMENT_POSTS, status=403) == 1
    world.one_bot_comment(n)
    assert world.labels(n) == STEAL_LABELS


def test_timeout_on_a_comment_post_that_github_carried_out_leaves_one_comment(
    world: World,
) -> None:
    world.tracker = world.make_tracker(timeout=1)
    world.fake.delay_next("POST", COMMENT_POSTS, 1.6)
    # The injected back-off stands for time passing: by the time the retry looks, GitHub has
    # finished the slow request (the comment exists although the client saw a timeout).
    world.on_sleep = lambda: wait_for(lambda: world.fake.count("POST", COMMENT_POSTS) == 1)
    n = open_threat(world)
    assert world.work() == ["triaged"]
    world.one_bot_comment(n)
    assert world.fake.count("POST", COMMENT_POSTS) == 1  # never posted a second time
    assert world.sleeps == [1.0, 10.0]  # back-off, then the settle wait before looking
    assert world.labels(n) == STEAL_LABELS


def test_404_on_get_issue_becomes_a_dead_letter_then_retry_dead_after_the_fix(
    world: World,
) -> None:
    n = world.fake.add_issue(REPO, *STEAL)
    world.fake.fail_next("GET", rf"/repos/{REPO}/issues/{n}$", 404, times=3)
    r = world.post("issues", issues_payload("opened", n, *STEAL), delivery="d-404")
    assert r.status_code == 202

    # jitter 0: the inbox waits base/2 · 2^(attempt-1) = 5 s, then 10 s.
    assert world.work() == ["failed"]
    assert world.work() == []
    world.clock.advance(5.0)
    assert world.work() == ["failed"]
    world.clock.advance(10.0)
    assert world.work() == ["dead"]
    world.clock.advance(3600.0)
    assert world.work() == []

    [dead] = world.store.dead_letters()
    assert (dead.delivery_id, dead.event_name, dead.attempts) == ("d-404", "issues", 3)
    assert dead.last_error is not None and "404" in dead.last_error
    assert world.fake.writes == [] and world.sleeps == []  # a 404 is not retried in the call
    assert world.fake.count("GET", rf"/issues/{n}$", status=404) == 3

    # The cause is fixed (the token can see the repository again); the operator requeues.
    assert world.store.retry_dead(dead.pk) == 1
    assert world.work() == ["triaged"]
    assert world.store.dead_letters() == []
    assert world.labels(n) == STEAL_LABELS
    world.one_bot_comment(n)


def test_delivery_for_a_deleted_issue_is_done_gone_and_readyz_stays_ready(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    """An admin deleted the issue (spam) before the worker got to it: GitHub answers 410
    Gone. The delivery ends ``done`` with outcome ``gone`` at the first attempt (no dead
    letter, no retry), one info line says so, and /readyz stays ready."""
    n = world.fake.add_issue(REPO, *STEAL)
    world.fake.delete_issue(REPO, n)
    r = world.post("issues", issues_payload("opened", n, *STEAL), delivery="d-gone")
    assert r.status_code == 202
    with caplog.at_level(logging.INFO):
        assert world.work() == ["gone"]
    world.clock.advance(3600.0)
    assert world.work() == []
    assert world.store.dead_letters() == []
    assert world.store.stats()["done"] == 1 and world.store.stats()["dead"] == 0
    [(state, outcome)] = world.store._conn().execute(
        "SELECT state, outcome FROM deliveries WHERE delivery_id = 'd-gone'").fetchall()
    assert (state, outcome) == ("done", "gone")
    assert world.fake.count("GET", rf"/issues/{n}$", status=410) == 1
    assert world.fake.writes == [] and world.sleeps == []
    gone = [rec for rec in caplog.records if rec.getMessage() == "issue was deleted; nothing to do"]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    ready = world.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


def test_the_same_delivery_twice_is_processed_once(world: World) -> None:
    n = world.fake.add_issue(REPO, *STEAL)
    payload = issues_payload("opened", n, *STEAL)
    guid = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    first, again = world.post("issues", payload, guid), world.post("issues", payload, guid)
    assert first.status_code == 202
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert world.work() == ["triaged"]
    writes = list(world.fake.writes)
    # GitHub redelivers the same GUID after it was processed ("Redeliver" in the UI).
    late = world.post("issues", payload, guid)
    assert late.status_code == 200 and late.json()["status"] == "duplicate"
    assert world.work() == []
    assert world.fake.writes == writes
    assert sum(w.split(":")[-1].startswith("comment+") for w in writes) == 1
    assert sum(":+label " in w for w in writes) == 3 and len(writes) == 4
    assert world.fake.count("POST") == 2  # one comment, one labels call
    world.one_bot_comment(n)


# --------------------------------------------------------------------------- kill -9


CHILD = r'''
"""Acknowledge deliveries over real HTTP, then hang in the worker until SIGKILLed."""
import pathlib
import socket
import sys
import threading

import uvicorn

from bot.metrics import Metrics
from bot.server import ServerConfig, create_app
from bot.store import Store

state, secret, flag = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])


def processor(event):
    # The delivery is claimed (its lease runs) and this worker never finishes it.
    flag.write_text(event.delivery_id)
    threading.Event().wait()
    return "unreachable"


config = ServerConfig(github_secrets=[secret], workers=1, lease_seconds=1.0, poll_seconds=0.05)
app = create_app(config, Store(state), processor, metrics=Metrics())
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(64)
print(sock.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on")).run(sockets=[sock])
'''


def test_kill_9_between_ack_and_work_loses_nothing(
    world: World, tmp_path: Path, classifier: Classifier
) -> None:
    db = tmp_path / "shared.db"
    script = tmp_path / "ack_then_die.py"
    script.write_text(CHILD)
    flag = tmp_path / "claimed"
    a = world.fake.add_issue(REPO, *STEAL)
    b = world.fake.add_issue(REPO, *STEAL_PROD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with (tmp_path / "child.log").open("wb") as log:
        child = subprocess.Popen([sys.executable, str(script), str(db), SECRET, str(flag)],
                                 cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=log)
        try:
            assert child.stdout is not None
            port = int(child.stdout.readline() or b"0")
            assert port, (tmp_path / "child.log").read_text()
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as http:
                body, headers = signed("issues", issues_payload("opened", a, *STEAL), "d-a")
                assert http.post("/webhooks/github", content=body,
                                 headers=headers).status_code == 202
                wait_for(flag.exists)  # A is claimed by the child's only worker, in progress
                body, headers = signed("issues", issues_payload("opened", b, *STEAL_PROD), "d-b")
                assert http.post("/webhooks/github", content=body,
                                 headers=headers).status_code == 202  # B: acked, not started
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
            if child.stdout is not None:
                child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert world.fake.writes == []

    store = Store(db)  # a new process would open the same file; the real clock runs leases
    try:
        assert store.stats() == {"pending": 1, "claimed": 1, "done": 0, "dead": 0}
        metrics = Metrics()
        bot = Bot(classifier, store, {"github": lambda ref, inst: world.tracker}, metrics=metrics)
        app = create_app(server_config(), store, bot.process, metrics=metrics)
        with TestClient(app):  # workers start; B at once, A when the dead worker's lease ends
            wait_for(lambda: store.stats()["done"] == 2, timeout=15.0)
        assert store.stats() == {"pending": 0, "claimed": 0, "done": 2, "dead": 0}
    finally:
        store.close()
    assert world.labels(a) == STEAL_LABELS
    assert world.labels(b) == STEAL_PROD_LABELS
    world.one_bot_comment(a)
    world.one_bot_comment(b)
    assert world.fake.count("POST", COMMENT_POSTS) == 2


# --------------------------------------------------------------------------- GitHub Actions


def _bugbar() -> list[str]:
    """The installed ``bugbar`` console script next to this interpreter, else ``-m``."""
    script = Path(sys.executable).with_name("bugbar")
    if script.exists():
        return [str(script)]
    found = shutil.which("bugbar")
    return [found] if found else [sys.executable, "-m", "bot.cli"]


def test_github_actions_handle_event(world: World, tmp_path: Path) -> None:
    n = world.fake.add_issue(REPO, *STEAL)
    event_file = tmp_path / "event.json"  # what the runner puts at $GITHUB_EVENT_PATH
    event_file.write_text(json.dumps(issues_payload("opened", n, *STEAL)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUGBAR_")}
    env.update(BUGBAR_GITHUB_TOKEN=TOKEN, BUGBAR_GITHUB_API_URL=world.fake.url,
               BUGBAR_STATE=str(tmp_path / "actions.db"), BUGBAR_LOG_LEVEL="WARNING",
               PYTHONPATH=str(ROOT))
    cmd = [*_bugbar(), "handle-event", "github", "--event", "issues",
           "--payload", str(event_file)]

    def run(*extra: str, **env_over: str) -> dict[str, Any]:
        proc = subprocess.run([*cmd, *extra], cwd=ROOT, env={**env, **env_over},
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert TOKEN not in proc.stdout + proc.stderr
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    assert run("--dry-run")["outcome"] == "dry-run"
    assert world.fake.writes == []

    result = run()
    assert result["outcome"] == "triaged" and result["delivery"].startswith("cli-")
    assert world.labels(n) == STEAL_LABELS
    world.one_bot_comment(n)
    writes = list(world.fake.writes)

    assert run()["outcome"] == "unchanged"
    # Actions runners start empty: without the state file the comment's marker is enough.
    assert run(BUGBAR_STATE=str(tmp_path / "fresh-runner.db"))["outcome"] == "unchanged"
    assert world.fake.writes == writes
    world.one_bot_comment(n)


# --------------------------------------------------------------------------- GitHub App


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def test_github_app_acts_as_its_bot_with_an_installation_token(
    tmp_path: Path, app_key: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    # The CLI's own wiring (build_bot → GitHubApp → for_installation), with its retry sleeps
    # recorded and the 1 s write pacing off (BUGBAR_WRITE_INTERVAL=0).
    monkeypatch.setattr(retry_module, "RetryPolicy",
                        functools.partial(RetryPolicy, sleep=sleeps.append, jitter=0.0))
    with FakeGitHub(tokens=[], app_id=APP_ID, app_slug="bugbar",
                    app_public_key=app_key[1]) as fake:
        fake.add_repo(REPO, id=4242)
        fake.add_installation(INSTALLATION, "acme")
        n = fake.add_issue(REPO, *STEAL)
        config = Config(github_app_id=str(APP_ID), github_private_key=app_key[0],
                        github_api_url=fake.url, github_webhook_secrets=(SECRET,),
                        state_path=str(tmp_path / "app.db"), write_interval=0.0)
        store = Store(config.state_path)
        try:
            metrics = Metrics()
            bot = build_bot(config, argparse.Namespace(rules=None), metrics, store)
            app = create_app(server_config(github_secrets=config.github_webhook_secrets),
                             store, bot.process, metrics=metrics, start_workers=False)
            pool: WorkerPool = app.state.workers
            with TestClient(app) as client:
                def post(event: str, payload: dict[str, Any]) -> int:
                    body, headers = signed(event, payload)
                    status: int = client.post("/webhooks/github", content=body,
                                              headers=headers).status_code
                    return status

                assert post("issues", issues_payload("opened", n, *STEAL,
                                                     installation=INSTALLATION)) == 202
                assert pool.run_once() == "triaged"
                [comment] = fake.comments(REPO, n)
                assert comment["user"]["login"] == "bugbar[bot]"
                assert comment["user"]["type"] == "Bot"
                assert comment["performed_via_github_app"] is not None
                assert set(fake.issue_labels(REPO, n)) == STEAL_LABELS

                # Our own comment comes back as an event from bugbar[bot]: ignored.
                echo = comment_payload("created", n, int(comment["id"]), comment["body"],
                                       _user("bugbar[bot]", 900001, "Bot"),
                                       installation=INSTALLATION)
                assert post("issue_comment", echo) == 202
                assert pool.run_once() == "ignored-bot"

                # An edit later: the same installation token is reused, the comment edited.
                fake.edit_issue(REPO, n, body=STEAL_PROD[1])
                assert post("issues", issues_payload(
                    "edited", n, *STEAL_PROD, installation=INSTALLATION,
                    changes={"body": {"from": STEAL[1]}})) == 202
                assert pool.run_once() == "triaged"
                assert pool.run_once() is None
        finally:
            store.close()

        [edited] = fake.comments(REPO, n)
        assert edited["id"] == comment["id"] and "critical" in edited["body"].lower()
        assert set(fake.issue_labels(REPO, n)) == STEAL_PROD_LABELS
        assert len(fake.installation_tokens) == 1
        assert fake.count("POST", rf"/app/installations/{INSTALLATION}/access_tokens$") == 1
        # The installation came from the delivery: no lookup of the repository's installation.
        assert fake.count("GET", r"/installation$") == 0
        token = fake.installation_tokens[0]
        writes = [(req, hdrs) for req, hdrs in zip(fake.requests, fake.request_headers,
                                                   strict=True)
                  if req.method in ("POST", "PATCH", "DELETE") and "/repos/" in req.path]
        assert writes, fake.requests
        for _req, hdrs in writes:
            auth = {k.lower(): v for k, v in hdrs.items()}["authorization"]
            assert auth == f"token {token}"
        assert sleeps == []


# --------------------------------------------------------------------------- label changes

TERSE = ("Unusual traffic on the scoring endpoint",
         "Lots of requests from a few accounts since Monday.")
MAINTAINER = _user("mlsec-lead", 7002)


def label_payload(action: str, number: int, text: tuple[str, str], label: str, *,
                  labels: tuple[str, ...], sender: dict[str, Any] = MAINTAINER
                  ) -> dict[str, Any]:
    """An ``issues`` ``labeled``/``unlabeled`` delivery: the issue as it is after the change,
    and the one label that changed (GitHub sends one delivery per label)."""
    payload = issues_payload(action, number, *text, labels=labels, sender=sender)
    payload["label"] = {"id": 6_000_000 + len(label), "node_id": f"LA_{label}", "name": label,
                        "url": f"https://api.github.com/repos/{REPO}/labels/{label}",
                        "color": "b60205", "default": False, "description": None}
    return payload


def person_labels(world: World, n: int, text: tuple[str, str], label: str) -> None:
    """A maintainer adds ``label`` on GitHub and GitHub delivers ``issues.labeled``."""
    now = [*world.fake.issue_labels(REPO, n), label]
    world.fake.edit_issue(REPO, n, labels=now)
    r = world.post("issues", label_payload("labeled", n, text, label, labels=tuple(now)))
    assert r.status_code == 202 and r.json()["status"] == "accepted"


def person_unlabels(world: World, n: int, text: tuple[str, str], label: str) -> None:
    now = [x for x in world.fake.issue_labels(REPO, n) if x != label]
    world.fake.edit_issue(REPO, n, labels=now)
    r = world.post("issues", label_payload("unlabeled", n, text, label, labels=tuple(now)))
    assert r.status_code == 202 and r.json()["status"] == "accepted"


def test_a_person_labelling_a_terse_issue_threat_triages_it_once(world: World) -> None:
    n = open_threat(world, TERSE)
    assert world.work() == ["unchanged"]  # nothing in the text: no label, no comment
    assert world.fake.writes == [] and world.bot_comments(n) == []

    person_labels(world, n, TERSE, "threat/model-stealing")
    assert world.work() == ["triaged"]
    assert world.labels(n) == STEAL_LABELS
    comment = world.one_bot_comment(n)
    assert "model-stealing" in comment["body"]
    assert world.fake.count("POST", COMMENT_POSTS) == 1
    # The person's label is theirs: the bot added only severity and route.
    added = sorted(w.split(":+label ")[1] for w in world.fake.writes if ":+label " in w)
    assert added == ["route/security", "severity/important"]
    state = world.store.get_issue_state(f"github:{REPO}#{n}")
    assert state is not None
    assert set(state.applied_labels) == {"route/security", "severity/important"}
    writes = list(world.fake.writes)

    # The bot's own label writes come back, one delivery per label, from the bot's account
    # (a token's plain user, or an App's [bot]): no triage, no request, no write. Severity
    # and route labels are no rule's evidence in any case.
    app_bot = _user("bugbar[bot]", 900001, "Bot")
    for label, sender in (("severity/important", _user(BOT, 8001)),
                          ("route/security", app_bot)):
        r = world.post("issues", label_payload("labeled", n, TERSE, label,
                                               labels=tuple(sorted(STEAL_LABELS)),
                                               sender=sender))
        assert r.status_code == 202
    requests = len(world.fake.requests)
    assert world.work() == ["ignored-label", "ignored-bot"]
    assert len(world.fake.requests) == requests
    assert world.fake.writes == writes and len(world.bot_comments(n)) == 1

    # Another label a rule reads: re-decided, the same decision, nothing written.
    person_labels(world, n, TERSE, "model-extraction")
    assert world.work() == ["unchanged"]
    assert world.fake.writes == writes
    world.one_bot_comment(n)


def test_irrelevant_label_change_is_ignored_without_a_request(world: World) -> None:
    n = open_threat(world)
    assert world.work() == ["triaged"]
    writes, requests = list(world.fake.writes), len(world.fake.requests)
    person_labels(world, n, STEAL, "good first issue")
    person_unlabels(world, n, STEAL, "good first issue")
    # Severity and route labels are the bot's output, never evidence.
    person_labels(world, n, STEAL, "severity/low")
    assert world.work() == ["ignored-label"] * 3
    assert len(world.fake.requests) == requests and world.fake.writes == writes
    assert world.labels(n) == STEAL_LABELS | {"severity/low"}
    world.one_bot_comment(n)


def test_unlabelling_the_persons_threat_label_re_decides(world: World) -> None:
    n = open_threat(world, TERSE, labels=("needs-info",))
    assert world.work() == ["unchanged"]
    person_labels(world, n, TERSE, "threat/model-stealing")
    assert world.work() == ["triaged"]
    first = world.one_bot_comment(n)

    person_unlabels(world, n, TERSE, "threat/model-stealing")
    assert world.work() == ["triaged"]
    # Nothing in the text is a threat any more: the bot takes its own labels off and says so
    # in the same comment; the person's other label stays.
    assert world.labels(n) == {"needs-info"}
    after = world.one_bot_comment(n)
    assert after["id"] == first["id"] and "no longer matches" in after["body"]
    assert world.fake.count("POST", COMMENT_POSTS) == 1
    assert world.fake.count("PATCH", r"/issues/comments/\d+$") == 1

    # The redelivered unlabel (same GUID) is a duplicate; a fresh copy of it writes nothing.
    writes = list(world.fake.writes)
    payload = label_payload("unlabeled", n, TERSE, "threat/model-stealing",
                            labels=("needs-info",))
    assert world.post("issues", payload, "guid-unlabel-1").status_code == 202
    assert world.post("issues", payload, "guid-unlabel-1").json()["status"] == "duplicate"
    assert world.work() == ["unchanged"]
    assert world.fake.writes == writes


def test_unlabelling_an_evidence_label_takes_the_bots_labels_off(world: World) -> None:
    n = open_threat(world, TERSE)
    assert world.work() == ["unchanged"]
    person_labels(world, n, TERSE, "model-stealing")  # a rule's evidence label, not threat/*
    assert world.work() == ["triaged"]
    assert world.labels(n) == STEAL_LABELS | {"model-stealing"}
    first = world.one_bot_comment(n)
    # The bot's own threat label comes back from its own account: dropped by the sender.
    writes = list(world.fake.writes)
    echo = label_payload("labeled", n, TERSE, "threat/model-stealing",
                         labels=tuple(world.labels(n)), sender=_user(BOT, 8001))
    assert world.post("issues", echo).status_code == 202
    assert world.work() == ["ignored-self"]
    assert world.fake.writes == writes

    person_unlabels(world, n, TERSE, "model-stealing")
    assert world.work() == ["triaged"]
    assert world.labels(n) == set()
    after = world.one_bot_comment(n)
    assert after["id"] == first["id"] and "no longer matches" in after["body"]
    assert world.fake.count("POST", COMMENT_POSTS) == 1


def test_a_persons_threat_label_beats_the_text(world: World) -> None:
    """A maintainer re-files a prompt-injection report as model stealing by label: the
    category is theirs, the bot's old threat label goes, the one comment is edited."""
    text = ("Jailbreak of the support assistant",
            "A prompt injection in a customer message makes the chatbot ignore its system "
            "prompt and reveal internal notes.")
    n = open_threat(world, text)
    assert world.work() == ["triaged"]
    before = world.labels(n)
    assert "threat/adversarial-perturbation" in before
    first = world.one_bot_comment(n)

    person_labels(world, n, text, "threat/model-stealing")
    assert world.work() == ["triaged"]
    labels = world.labels(n)
    assert "threat/model-stealing" in labels
    assert "threat/adversarial-perturbation" not in labels
    after = world.one_bot_comment(n)
    assert after["id"] == first["id"] and "model-stealing" in after["body"]
    assert world.fake.count("POST", COMMENT_POSTS) == 1


def test_taking_the_opt_out_label_off_triages_and_putting_it_on_does_not(world: World) -> None:
    n = open_threat(world, labels=("bugbar:ignore",))
    assert world.work() == ["opted-out"]
    person_unlabels(world, n, STEAL, "bugbar:ignore")
    assert world.work() == ["triaged"]
    assert world.labels(n) == STEAL_LABELS
    world.one_bot_comment(n)
    writes, requests = list(world.fake.writes), len(world.fake.requests)
    person_labels(world, n, STEAL, "bugbar:ignore")  # from now on left alone, as it is
    assert world.work() == ["ignored-label"]
    assert world.fake.writes == writes and len(world.fake.requests) == requests
