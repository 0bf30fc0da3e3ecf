"""End to end: two ``bugbar serve`` replicas on one PostgreSQL database, one killed mid-work.

Two real ``bugbar serve`` processes (a 4 s lease, ``BUGBAR_LEASE_SECONDS``; unpaced writes,
``BUGBAR_WRITE_INTERVAL=0``) share a database and the fake GitHub API. Deliveries alternate
between them; redeliveries go to the other replica; one replica is killed with SIGKILL while
it holds a claim. The bar: every threat issue ends labelled with exactly one bot comment,
nothing is written to the other issues, and every acknowledged delivery is done exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.decide.classify import Classifier
from bot.decide.model import Issue
from tests.fakes.github_api import FakeGitHub

ROOT = Path(__file__).resolve().parents[1]
SECRET = "replica-webhook-secret-3c9d"
TOKEN = "ghp_replicaToken0000000000000000000000000"
BOT = "bugbar-bot"
REPO = "acme/models"
LEASE = 4.0

ISSUES = [
    ("Model extraction through the public scoring API",
     "An attacker queried the scoring API 40,000 times and trained a substitute model that "
     "matches ours; the stolen copy reproduces our confidence scores."),
    ("Training data poisoning via the public feedback form",
     "Anyone can submit labelled examples through the feedback form and they go straight into "
     "nightly retraining, so an attacker can poison the training data with a backdoor trigger."),
    ("Membership inference on the medical model",
     "Using the confidence scores an attacker can tell whether a given patient record was in "
     "the training set: a membership inference attack against the hospital model."),
    ("Pickle model file runs code when loaded",
     "The model hub downloads .pkl checkpoints and unpickles them; a malicious uploaded model "
     "executes arbitrary code on load. This is a supply chain attack on our ML pipeline."),
    ("Dark mode toggle resets after reload", "The settings page forgets the theme choice."),
    ("Typo in the installation guide", "Step 3 says 'pip instal' instead of 'pip install'."),
    ("CSV export drops the last row", "Exporting 10 rows gives a file with 9 rows."),
    ("Add a Dockerfile", "It would be nice to have an official container image."),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _delivery(number: int, title: str, body: str, action: str,
              delivery_id: str | None = None) -> tuple[str, bytes, dict[str, str]]:
    payload = {
        "action": action,
        "issue": {"id": 7_000_000 + number, "number": number, "title": title, "body": body,
                  "state": "open", "labels": [],
                  "user": {"login": "reporter", "id": 42, "type": "User"}},
        "repository": {"id": 777, "name": REPO.split("/")[1], "full_name": REPO,
                       "private": False},
        "sender": {"login": "reporter", "id": 42, "type": "User"},
    }
    if action == "edited":
        payload["changes"] = {"body": {"from": body + " (draft)"}}
    raw = json.dumps(payload).encode()
    did = delivery_id or str(uuid.uuid4())
    headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": did,
               "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET.encode(), raw,
                                                           hashlib.sha256).hexdigest(),
               "Content-Type": "application/json"}
    return did, raw, headers


class Replica:
    """One ``bugbar serve`` process."""

    def __init__(self, state: str, api_url: str, log: Path) -> None:
        self.port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BUGBAR_STATE": state,
               "BUGBAR_GITHUB_TOKEN": TOKEN, "BUGBAR_GITHUB_API_URL": api_url,
               "BUGBAR_GITHUB_WEBHOOK_SECRET": SECRET, "BUGBAR_LOG_LEVEL": "INFO",
               "BUGBAR_LEASE_SECONDS": str(LEASE), "BUGBAR_WRITE_INTERVAL": "0"}
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(self.port),
             "--workers", "2"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, limit: float = 60) -> None:
        deadline = time.monotonic() + limit
        while True:
            assert self.proc.poll() is None, "replica exited at start"
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "replica did not start"
            time.sleep(0.1)

    def post(self, raw: bytes, headers: dict[str, str]) -> int:
        return httpx.post(self.url + "/webhooks/github", content=raw, headers=headers,
                          timeout=30).status_code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture
def pg_state(pg_url: str) -> str:
    from bot.store_base import open_store
    from tests.pg import wipe

    open_store(pg_url).close()
    wipe(pg_url)
    return pg_url


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    gh = FakeGitHub(tokens=[TOKEN], login=BOT, rate_limit=1_000_000)
    gh.start()
    gh.add_repo(REPO, id=777)
    for title, body in ISSUES:
        gh.add_issue(REPO, title, body, user="reporter")
    yield gh
    gh.stop()


def _claimer_of(url: str, issue_key: str) -> str | None:
    """The worker id holding a live claim on a delivery of the issue, if any."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT lease_owner FROM deliveries WHERE state = 'claimed' AND issue_key = %s",
            (issue_key,)).fetchone()
    return None if row is None else str(row[0])


def _deliveries(url: str) -> list[dict[str, Any]]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT delivery_id, state, attempts, outcome FROM deliveries ORDER BY pk").fetchall()
    return [{"id": r[0], "state": r[1], "attempts": r[2], "outcome": r[3]} for r in rows]


def test_two_replicas_one_killed_mid_work(pg_state: str, fake: FakeGitHub, tmp_path: Path,
                                          classifier: Classifier) -> None:
    threats = {n for n, (title, body) in enumerate(ISSUES, 1)
               if classifier.classify(Issue(str(n), title, body, ()), {}).is_threat}
    assert len(threats) >= 3, "the threat texts no longer classify as threats"
    # Issue 1's first read stalls, so the replica that claims it is surely mid-work when killed
    # (a read: the killed replica's request must not land a write after its death).
    fake.delay_next("GET", rf"/repos/{REPO}/issues/1(\?|$)", 15, times=1)
    fake.delay_next(None, r".*", 0.05, times=10**9)  # every other request: 50 ms
    a = Replica(pg_state, fake.url, tmp_path / "a.log")
    b = Replica(pg_state, fake.url, tmp_path / "b.log")
    acked: list[str] = []
    try:
        a.wait_ready()
        b.wait_ready()
        # Deliveries alternate between the replicas: opened on one, edited on the other.
        redeliveries: list[tuple[bytes, dict[str, str]]] = []
        for n, (title, body) in enumerate(ISSUES, 1):
            for step, action in enumerate(("opened", "edited")):
                did, raw, headers = _delivery(n, title, body, action)
                assert (a, b)[(n + step) % 2].post(raw, headers) == 202
                acked.append(did)
                redeliveries.append((raw, headers))
        # Whichever replica claimed issue 1 is stuck reading it: kill that one, mid-work.
        deadline = time.monotonic() + 30
        while not (owner := _claimer_of(pg_state, f"github:{REPO}#1")):
            assert time.monotonic() < deadline, "nobody claimed issue 1"
            time.sleep(0.02)
        victim, survivor = (a, b) if f":{a.proc.pid}:" in owner else (b, a)
        assert f":{victim.proc.pid}:" in owner
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        # GitHub redelivers (or a person clicks "Redeliver"): the survivor knows them all.
        for raw, headers in redeliveries[::3]:
            assert survivor.post(raw, headers) == 200
        deadline = time.monotonic() + 90
        while True:
            rows = _deliveries(pg_state)
            if all(r["state"] in ("done", "dead") for r in rows):
                break
            assert time.monotonic() < deadline, f"inbox not drained: {rows}"
            time.sleep(0.1)
    finally:
        a.stop()
        b.stop()
    rows = _deliveries(pg_state)
    assert sorted(r["id"] for r in rows) == sorted(acked)  # nothing lost, nothing extra
    assert all(r["state"] == "done" for r in rows), rows  # every one processed, none dead
    taken_over = [r for r in rows if r["attempts"] >= 2]
    assert taken_over, "no delivery was taken over from the killed replica"
    for n in range(1, len(ISSUES) + 1):
        mine = [c for c in fake.comments(REPO, n) if c["user"]["login"] == BOT]
        labels = fake.issue_labels(REPO, n)
        if n in threats:
            assert len(mine) == 1, (n, [c["body"][:80] for c in mine])
            assert any(label.startswith("threat/") for label in labels), (n, labels)
        else:
            assert mine == [] and not any(lb.startswith("threat/") for lb in labels), (n, labels)
