"""Chaos harness: real ``bugbar serve`` processes against FakeGitHub under random trouble.

Shared by the short, seeded chaos test in the suite (tests/test_chaos.py) and the longer soak
benchmark (tests/benchmarks/bench_soak.py). What one run does:

* a GitHub repository (or, with ``provider="gitlab"``, a GitLab project) of ``issues``
  issues, ``threats`` of them AI/ML threat reports;
* every issue is delivered (``issues.opened``), delivered again with the same delivery id (a
  redelivery), and edited on the tracker then delivered as ``issues.edited``, in a seeded
  random order;
* FakeGitHub answers at random slowly, with a 502 (not carried out), with a 502 after carrying
  the request out (the ambiguous case), or with a 429 and ``Retry-After``;
* ``bugbar serve`` (a subprocess, the installed command) is killed with SIGKILL ``kills``
  times while deliveries are in flight and restarted on the same state file; deliveries whose
  POST failed because the server was down are sent again, as an operator would redeliver.

:func:`check` then lists every broken promise: the exact labels and exactly one bot comment on
every threat issue, nothing on any other, no dead letter, no acknowledged delivery unfinished.
Recovery time is measured from each restart until every delivery acknowledged before the kill
is done.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bot.decide.classify import Classifier
from bot.decide.model import Issue
from bot.decide.plan import desired_labels
from bot.decide.render import MARKER_PREFIX
from tests.fakes._http import Chaos
from tests.fakes.github_api import FakeGitHub

ROOT = Path(__file__).resolve().parents[1]
REPO = "o/r"
TOKEN = "chaos-token"
SECRET = "chaos-webhook-secret"
BOT = "bugbar-bot"
BOT_PREFIXES = ("threat/", "severity/", "route/")

THREATS = [
    ("Model extraction of our production fraud detection model",
     "An attacker queried the scoring API and trained a substitute model that copies ours."),
    ("Training data poisoning through the public feedback form",
     "Someone submitted thousands of mislabelled samples through the feedback form; the nightly "
     "retrain ingested them and the production spam classifier now lets their campaign "
     "through."),
    ("Membership inference against the patient risk model",
     "By querying the hosted model with candidate records an attacker can tell whether a "
     "patient's record was in the training data set."),
]
OTHERS = [
    ("Training crashes with CUDA OOM at batch size {n}",
     "Traceback (most recent call last): RuntimeError: CUDA out of memory."),
    ("Docs: the install page links to an old release ({n})",
     "The quick start still says version 1.2."),
    ("Dashboard loads slowly with 10k runs ({n})", "It takes 40 seconds to render the table."),
]
EDIT = "\n\nUpdate: still reproducible on the latest release."


@dataclass
class Settings:
    """One chaos run."""

    issues: int = 30
    threats: int = 10
    seed: int = 14
    kills: int = 1
    workers: int = 2
    slow: float = 0.05
    fail: float = 0.05
    fail_after: float = 0.03
    rate_limit: float = 0.03
    retry_after: int = 1
    lease_seconds: float = 3.0
    send_pause: float = 0.02
    """Seconds between deliveries sent (GitHub does not send them all at once either)."""
    settle_timeout: float = 120.0
    provider: str = "github"
    """``github`` or ``gitlab``: which tracker (and fake) the server works against."""


@dataclass
class Report:
    """What a run did and what it broke."""

    problems: list[str] = field(default_factory=list)
    deliveries: int = 0
    acked: int = 0
    duplicates: int = 0
    resent: int = 0
    kills: int = 0
    killed_mid_work: int = 0
    """Kills that hit a delivery claimed by a worker (its lease left behind)."""
    recovery_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    bot_comments: int = 0


class _GitHubSide:
    """The chaos run's view of FakeGitHub and GitHub webhooks."""

    name = "github"

    def __init__(self) -> None:
        self.fake = FakeGitHub(tokens=[TOKEN], login=BOT, rate_limit=1_000_000)

    def start(self) -> None:
        self.fake.start()
        self.fake.add_repo(REPO)

    def stop(self) -> None:
        self.fake.stop()

    def env(self) -> dict[str, str]:
        return {"BUGBAR_GITHUB_TOKEN": TOKEN, "BUGBAR_GITHUB_API_URL": self.fake.url,
                "BUGBAR_GITHUB_WEBHOOK_SECRET": SECRET}

    def add_issue(self, title: str, body: str) -> int:
        return self.fake.add_issue(REPO, title, body)

    def edit(self, number: int, body: str) -> None:
        self.fake.edit_issue(REPO, number, body=body)

    def deliver(self, url: str, delivery: str, action: str, number: int, title: str,
                body: str) -> int:
        return post(url, delivery, payload(action, number, title, body))

    def set_chaos(self, chaos: Chaos | None) -> None:
        self.fake.chaos = chaos

    def requests(self) -> int:
        return self.fake.count()

    def labels(self, number: int) -> set[str]:
        return set(self.fake.issue_labels(REPO, number))

    def bot_comments(self, number: int) -> list[str]:
        return [str(c["body"] or "") for c in self.fake.comments(REPO, number)
                if c["user"]["login"] == BOT]


class _GitLabSide:
    """The chaos run's view of FakeGitLab and GitLab ``Issue Hook`` deliveries."""

    name = "gitlab"
    project = "team/app"

    def __init__(self) -> None:
        from tests.fakes.gitlab_api import FakeGitLab

        self.fake = FakeGitLab(token=TOKEN)

    def start(self) -> None:
        self.fake.start()
        self.fake.add_project(self.project, visibility="private")

    def stop(self) -> None:
        self.fake.stop()

    def env(self) -> dict[str, str]:
        return {"BUGBAR_GITLAB_URL": self.fake.url, "BUGBAR_GITLAB_TOKEN": TOKEN,
                "BUGBAR_GITLAB_WEBHOOK_SECRET": SECRET}

    def add_issue(self, title: str, body: str) -> int:
        return int(self.fake.add_issue(self.project, title, body))

    def edit(self, number: int, body: str) -> None:
        self.fake.edit_issue(self.project, number, description=body)

    def deliver(self, url: str, delivery: str, action: str, number: int, title: str,
                body: str) -> int:
        issue = self.fake.issue(self.project, number)
        user = {"id": 7001, "name": "Reporter", "username": "reporter-7"}
        namespace, name = self.project.rsplit("/", 1)
        attrs = {"id": issue["id"], "iid": number, "title": title, "description": body,
                 "state": "opened", "confidential": False, "created_at": issue["created_at"],
                 "updated_at": issue["updated_at"], "type": "Issue", "labels": [],
                 "action": "open" if action == "opened" else "update"}
        raw = json.dumps({"object_kind": "issue", "event_type": "issue", "user": user,
                          "project": {"id": 1, "name": name, "namespace": namespace,
                                      "path_with_namespace": self.project,
                                      "web_url": f"{self.fake.url}/{self.project}",
                                      "visibility_level": 0},
                          "object_attributes": attrs, "labels": [], "changes": {}}).encode()
        headers = {"Content-Type": "application/json", "X-Gitlab-Event": "Issue Hook",
                   "X-Gitlab-Token": SECRET, "Idempotency-Key": delivery,
                   "User-Agent": "GitLab/17.9.1"}
        return httpx.post(f"{url}/webhooks/gitlab", content=raw, headers=headers,
                          timeout=10.0).status_code

    def set_chaos(self, chaos: Chaos | None) -> None:
        self.fake.chaos = chaos

    def requests(self) -> int:
        return self.fake.count()

    def labels(self, number: int) -> set[str]:
        return set(self.fake.labels_of(self.project, number))

    def bot_comments(self, number: int) -> list[str]:
        bot_id = self.fake.bot_user["id"]
        return [str(n.get("body") or "")
                for n in self.fake.notes(self.project, number, include_system=False)
                if (n.get("author") or {}).get("id") == bot_id]


def _side(provider: str) -> _GitHubSide | _GitLabSide:
    if provider == "gitlab":
        return _GitLabSide()
    return _GitHubSide()


def free_port() -> int:
    """A port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bugbar_command() -> list[str]:
    """The installed ``bugbar`` next to this interpreter (what users run), else ``-m``."""
    script = Path(sys.executable).with_name("bugbar")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


class Server:
    """One ``bugbar serve`` subprocess at a time on a given state file."""

    def __init__(self, env: dict[str, str], workdir: Path, workers: int) -> None:
        self.env = env
        self.workdir = workdir
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.starts = 0

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait until ``/healthz`` answers."""
        port = free_port()
        self.starts += 1
        log = (self.workdir / f"serve-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [*bugbar_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(self.workers)],
            cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bugbar serve exited with {self.proc.returncode}: "
                                   + (self.workdir / f"serve-{self.starts}.log").read_text())
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("bugbar serve did not come up")

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no cleanup, claims left behind."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL if it does not go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill9()


def _user(login: str, uid: int) -> dict[str, Any]:
    return {"login": login, "id": uid, "node_id": f"U_{uid}", "type": "User",
            "site_admin": False}


def payload(action: str, number: int, title: str, body: str) -> dict[str, Any]:
    """An ``issues`` delivery as GitHub sends it (our own content)."""
    owner, name = REPO.split("/")
    return {
        "action": action,
        "issue": {"id": 7_000_000 + number, "node_id": f"I_{number}", "number": number,
                  "title": title, "body": body, "user": _user("reporter-7", 7001),
                  "labels": [], "state": "open", "locked": False, "comments": 0,
                  "html_url": f"https://github.com/{REPO}/issues/{number}",
                  "created_at": "2026-01-05T10:00:00Z", "updated_at": "2026-01-05T10:00:00Z"},
        "repository": {"id": 4242, "node_id": "R_4242", "name": name, "full_name": REPO,
                       "private": False, "owner": _user(owner, 1)},
        "sender": _user("reporter-7", 7001),
    }


def post(url: str, delivery: str, body: dict[str, Any]) -> int:
    """Send one signed ``issues`` delivery; the HTTP status (raises if nobody answers)."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": delivery,
               "X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json",
               "User-Agent": "GitHub-Hookshot/chaos"}
    return httpx.post(f"{url}/webhooks/github", content=raw, headers=headers,
                      timeout=10.0).status_code


def _states(state: Path) -> dict[str, str]:
    """delivery id → inbox state, read straight from the SQLite file."""
    if not state.exists():
        return {}
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=30)
    try:
        return {str(d): str(s) for d, s in conn.execute(
            "SELECT delivery_id, state FROM deliveries")}
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def expected_labels(classifier: Classifier, title: str, body: str) -> set[str]:
    """The labels the bot must leave on an issue with this text (default label templates)."""
    decision = classifier.classify(Issue("x", title, body, ()))
    return set(desired_labels(decision, classifier.ruleset.settings))


def run(settings: Settings, workdir: Path, classifier: Classifier) -> Report:
    """One chaos run; the report lists what went wrong (empty ``problems``: nothing)."""
    rng = random.Random(settings.seed)
    report = Report()
    started = time.monotonic()
    side = _side(settings.provider)
    side.start()
    try:
        _run(settings, workdir, classifier, side, rng, report)
    finally:
        side.stop()
    report.seconds = time.monotonic() - started
    return report


def _run(settings: Settings, workdir: Path, classifier: Classifier,
         side: _GitHubSide | _GitLabSide, rng: random.Random, report: Report) -> None:
    texts: dict[int, tuple[str, str]] = {}
    threat_slots = set(rng.sample(range(settings.issues), settings.threats))
    for i in range(settings.issues):
        title, body = (THREATS[i % len(THREATS)] if i in threat_slots
                       else OTHERS[i % len(OTHERS)])
        number = side.add_issue(title.format(n=i), body)
        texts[number] = (title.format(n=i), body)
    # Every issue: opened, the same delivery again, edited; in a random interleaving.
    events: list[tuple[float, str, int]] = []
    for number in texts:
        at = rng.random()
        events += [(at, "opened", number), (at + rng.random(), "again", number),
                   (at + rng.random(), "edited", number)]
    events.sort()
    report.deliveries = len(events)
    kill_points = sorted(rng.sample(range(len(events) // 5, len(events)), settings.kills))

    state = workdir / "state.db"
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("BUGBAR_", "GITHUB_"))}
    env.update(side.env())
    env.update({"PYTHONPATH": str(ROOT), "BUGBAR_STATE": str(state),
                "BUGBAR_LOG_LEVEL": "WARNING",
                "BUGBAR_LEASE_SECONDS": str(settings.lease_seconds),
                "BUGBAR_WRITE_INTERVAL": "0", "BUGBAR_RETRY_BASE_SECONDS": "0.05",
                "BUGBAR_SETTLE_SECONDS": "0.2", "BUGBAR_DELIVERY_RETRY_SECONDS": "0.2"})
    server = Server(env, workdir, settings.workers)
    server.start()
    chaos = Chaos(seed=settings.seed, slow=settings.slow, fail=settings.fail,
                  fail_after=settings.fail_after, rate_limit=settings.rate_limit,
                  retry_after=settings.retry_after)
    side.set_chaos(chaos)
    acked: set[str] = set()
    try:
        for index, (_, kind, number) in enumerate(events):
            if kill_points and index == kill_points[0]:
                kill_points.pop(0)
                # Kill while a worker holds a claim (work in flight), if one comes soon.
                if _wait(lambda: "claimed" in _states(state).values(), 5.0):
                    report.killed_mid_work += 1
                server.kill9()
                report.kills += 1
                before_kill = set(acked)
                restarted = time.monotonic()  # recovery counts the process start too
                server.start()
                if _wait(lambda b=before_kill: all(  # type: ignore[misc]
                        _states(state).get(d) == "done" for d in b), settings.settle_timeout):
                    report.recovery_seconds.append(time.monotonic() - restarted)
                else:
                    report.problems.append("deliveries acked before a kill were not "
                                           f"finished within {settings.settle_timeout} s")
            title, body = texts[number]
            if kind == "edited":
                body += EDIT
                texts[number] = (title, body)
                side.edit(number, body)
            delivery = f"{'edit' if kind == 'edited' else 'open'}-{number}"
            action = "edited" if kind == "edited" else "opened"
            for _attempt in range(3):
                try:
                    status = side.deliver(server.url, delivery, action, number, title, body)
                except httpx.HTTPError:
                    report.resent += 1
                    time.sleep(0.2)
                    continue
                if status == 202:
                    acked.add(delivery)
                    report.acked += 1
                elif status == 200:
                    report.duplicates += 1
                else:
                    report.problems.append(f"delivery {delivery} answered {status}")
                break
            else:
                report.problems.append(f"delivery {delivery} could not be sent")
            time.sleep(settings.send_pause)
        if not _wait(lambda: all(_states(state).get(d) == "done" for d in acked),
                     settings.settle_timeout):
            left = {d: _states(state).get(d) for d in acked}
            report.problems.append("not every acked delivery finished: " + ", ".join(
                f"{d}={s}" for d, s in sorted(left.items()) if s != "done"))
    finally:
        server.stop()
        side.set_chaos(None)
    report.faults = dict(chaos.counts)
    report.requests = side.requests()
    report.problems += check(side, texts, classifier, _states(state))
    report.bot_comments = sum(
        1 for n in texts for body in side.bot_comments(n) if MARKER_PREFIX in body)


def check(side: _GitHubSide | _GitLabSide, texts: dict[int, tuple[str, str]],
          classifier: Classifier, inbox: dict[str, str]) -> list[str]:
    """Every broken promise, one line each."""
    problems = []
    for number, (title, body) in sorted(texts.items()):
        want = expected_labels(classifier, title, body)
        got = {lb for lb in side.labels(number) if lb.startswith(BOT_PREFIXES)}
        mine = side.bot_comments(number)
        if got != want:
            problems.append(f"#{number}: labels {sorted(got)}, expected {sorted(want)}")
        if want and len(mine) != 1:
            problems.append(f"#{number}: {len(mine)} bot comments on a threat issue")
        if not want and mine:
            problems.append(f"#{number}: {len(mine)} bot comments on a non-threat issue")
    dead = sorted(d for d, s in inbox.items() if s == "dead")
    if dead:
        problems.append(f"dead letters: {dead}")
    return problems
