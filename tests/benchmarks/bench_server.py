"""Benchmark: webhook acknowledgement latency and end-to-end triage throughput of the server.

Run explicitly: ``python tests/benchmarks/bench_server.py [--rate 100] [--seconds 10]
[--issues 600] [--workers 2]``. Not collected by pytest. Loopback only; every loop is bounded
in count and time, and the two child processes are stopped at the end.

Three processes on 127.0.0.1:

* **fake** — ``FakeGitHub`` (tests/fakes/github_api.py) seeded with the issues, in a process of
  its own so its HTTP handling shares no GIL with the server or the load generator;
* **server** — what ``bugbar serve`` runs (``build_bot`` → ``create_app`` with the CLI's
  ``ServerConfig``, uvicorn, JSON logging at INFO to a file, a real SQLite state file with
  ``synchronous=FULL``), its ``GitHubTracker`` talking to the fake with a token. The one
  difference: the write pacer is 0 instead of GitHub's 1 write/s (see (b));
* **this process** — the load generator. Every delivery is signed (HMAC-SHA256 over the exact
  bytes) and sent on a fresh connection, as GitHub does.

(a) Acknowledgement latency at a steady rate, **open loop**: request *i* is due at
``start + i/rate`` whatever happened to earlier ones, and its latency runs from that due time to
the last byte of the answer. A slow answer therefore cannot hold back later requests and hide
its own cost (coordinated omission). Workers run meanwhile, as in production. Goal: p99 < 50 ms.

(b) Issues triaged per second end to end: distinct issues (the project's own corpus,
bot/data/train_labelled.jsonl, threat and non-threat texts), sent as fast as the server takes
them; the clock runs from the first POST until the inbox is empty (every delivery done), with
the shipped rules and the pacer at 0. Real GitHub asks for one write per second, which the
pacer enforces in production; the table shows what that implies.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "bot" / "data" / "train_labelled.jsonl"
SECRET = "bench-webhook-secret-6a1f"
TOKEN = "ghp_benchToken000000000000000000000000000"
REPO = "acme/bench"
BOT = "bugbar-bot"
HOST = "127.0.0.1"


# --------------------------------------------------------------------------- shared


def issue_texts(n: int) -> list[tuple[str, str]]:
    """``n`` distinct issue texts cycling through the corpus (issue number ``i + 1``)."""
    items = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    out = []
    for i in range(n):
        item = items[i % len(items)]
        body = (item["body"] or "") + f"\n\n(reported on build {1000 + i})"
        out.append((str(item["title"]), body))
    return out


def child(role: str, *args: str, stderr: Any = None) -> tuple[subprocess.Popen[str], str]:
    """Start this script in ``role``; returns the process and the first line it prints."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--role", role, *args], cwd=ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
        # Rules only, like the classifier below that counts the expected threats.
        env={**os.environ, "PYTHONPATH": str(ROOT), "BUGBAR_SEMANTIC": "0"})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise SystemExit(f"{role} process failed to start")
    return proc, line.strip()


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop a child this script started (by its own handle)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --------------------------------------------------------------------------- fake role


def run_fake(n: int) -> None:
    from tests.fakes.github_api import FakeGitHub

    fake = FakeGitHub(tokens=[TOKEN], login=BOT, rate_limit=10_000_000)
    fake.start()
    fake.add_repo(REPO, id=777)
    for title, body in issue_texts(n):
        fake.add_issue(REPO, title, body, user="reporter")
    print(fake.url, flush=True)
    for line in sys.stdin:  # a tiny control channel: "stats" or "quit"
        if line.strip() != "stats":
            break
        with fake._lock:  # a consistent snapshot
            per_issue = [sum(c["user"]["login"] == BOT for c in fake.comments(REPO, k))
                         for k in range(1, n + 1)]
            labelled = sum(any(lb.startswith("threat/") for lb in fake.issue_labels(REPO, k))
                           for k in range(1, n + 1))
            methods: dict[str, int] = {}
            for req in fake.requests:
                methods[req.method] = methods.get(req.method, 0) + 1
            errors = sum(req.status >= 400 for req in fake.requests)
        print(json.dumps({"bot_comments": per_issue, "labelled": labelled, "methods": methods,
                          "errors": errors}), flush=True)
    fake.stop()


# --------------------------------------------------------------------------- server role


def run_server(state: str, api_url: str, workers: int, log_path: str) -> None:
    """``bugbar serve`` as cmd_serve wires it, with the write pacer at 0."""
    import uvicorn

    from bot.app_cli import build_bot, open_store
    from bot.config import Config
    from bot.logs import configure_logging
    from bot.metrics import Metrics
    from bot.server import ServerConfig, create_app

    config = Config(github_token=TOKEN, github_api_url=api_url,
                    github_webhook_secrets=(SECRET,), state_path=state, write_interval=0.0)
    log_file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as we do
    configure_logging(config.log_level, stream=log_file)
    store = open_store(config)
    metrics = Metrics()
    bot = build_bot(config, argparse.Namespace(rules=None), metrics, store)
    server_config = ServerConfig(github_secrets=config.github_webhook_secrets, workers=workers)
    app = create_app(server_config, store, bot.process, metrics=metrics)
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(1024)
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_config=None, proxy_headers=False,
                                  lifespan="on")).run(sockets=[sock])


# --------------------------------------------------------------------------- load generator


def deliveries(numbers: range, texts: list[tuple[str, str]]) -> list[bytes]:
    """Signed ``issues.opened`` requests (raw HTTP/1.1 bytes) for the issue numbers."""
    out = []
    for number in numbers:
        title, body = texts[number - 1]
        payload = {
            "action": "opened",
            "issue": {"id": 5_000_000 + number, "number": number, "title": title, "body": body,
                      "state": "open", "labels": [], "user": {"login": "reporter", "id": 42,
                                                             "type": "User"}},
            "repository": {"id": 777, "name": REPO.split("/")[1], "full_name": REPO,
                           "private": False},
            "sender": {"login": "reporter", "id": 42, "type": "User"},
        }
        raw = json.dumps(payload, separators=(",", ":")).encode()
        sig = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        head = (f"POST /webhooks/github HTTP/1.1\r\nHost: {HOST}\r\n"
                f"User-Agent: GitHub-Hookshot/bench\r\nContent-Type: application/json\r\n"
                f"X-GitHub-Event: issues\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
                f"X-Hub-Signature-256: sha256={sig}\r\nContent-Length: {len(raw)}\r\n"
                f"Connection: close\r\n\r\n")
        out.append(head.encode() + raw)
    return out


def pings(n: int) -> list[bytes]:
    """Signed ``ping`` requests (answered 200, not stored), for warming up."""
    raw = b'{"zen":"Anything added dilutes everything else.","hook_id":1}'
    sig = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return [(f"POST /webhooks/github HTTP/1.1\r\nHost: {HOST}\r\n"
             f"Content-Type: application/json\r\nX-GitHub-Event: ping\r\n"
             f"X-GitHub-Delivery: {uuid.uuid4()}\r\nX-Hub-Signature-256: sha256={sig}\r\n"
             f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n").encode() + raw
            for _ in range(n)]


async def send(port: int, request: bytes) -> int:
    """One request on a fresh connection; the HTTP status."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


async def open_loop(port: int, requests: list[bytes], rate: float
                    ) -> tuple[list[float], list[float], list[int]]:
    """Send at fixed due times; (latency from due time, start lateness, status) per request."""
    loop = asyncio.get_running_loop()
    latency = [0.0] * len(requests)
    late = [0.0] * len(requests)
    status = [0] * len(requests)

    async def one(i: int, due: float) -> None:
        late[i] = loop.time() - due
        try:
            status[i] = await send(port, requests[i])
        except (TimeoutError, OSError):
            status[i] = -1
        latency[i] = loop.time() - due

    start = loop.time() + 0.2
    tasks = []
    for i in range(len(requests)):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    return latency, late, status


async def closed_loop(port: int, requests: list[bytes], concurrency: int) -> list[int]:
    """Send everything as fast as the server answers, ``concurrency`` at a time."""
    queue = list(enumerate(requests))
    status = [0] * len(requests)

    async def worker() -> None:
        while queue:
            i, req = queue.pop(0)
            try:
                status[i] = await send(port, req)
            except (TimeoutError, OSError):
                status[i] = -1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return status


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def wait_drained(state: Path, total: int, limit: float) -> float | None:
    """Seconds until ``total`` deliveries are done and none is pending or claimed."""
    from bot.store import Store

    started = time.perf_counter()
    store = Store(state)
    try:
        while time.perf_counter() - started < limit:
            s = store.stats()
            if s["pending"] == 0 and s["claimed"] == 0 and s["done"] + s["dead"] >= total:
                return time.perf_counter() - started
            time.sleep(0.02)
        return None
    finally:
        store.close()


def inbox(state: Path) -> dict[str, int]:
    from bot.store import Store

    with Store(state) as store:
        return store.stats()


def fake_stats(fake: subprocess.Popen[str]) -> dict[str, Any]:
    assert fake.stdin is not None and fake.stdout is not None
    fake.stdin.write("stats\n")
    fake.stdin.flush()
    result: dict[str, Any] = json.loads(fake.stdout.readline())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("bench", "fake", "server"), default="bench")
    parser.add_argument("--rate", type=float, default=100.0, help="(a) deliveries per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="(a) duration")
    parser.add_argument("--issues", type=int, default=600, help="(b) distinct issues")
    parser.add_argument("--workers", type=int, default=2, help="server worker threads")
    parser.add_argument("--concurrency", type=int, default=8, help="(b) requests in flight")
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.role == "fake":
        run_fake(int(opts.args[0]))
        return 0
    if opts.role == "server":
        run_server(opts.args[0], opts.args[1], int(opts.args[2]), opts.args[3])
        return 0

    load_before = os.getloadavg()[0]
    n_a = max(1, min(int(opts.rate * opts.seconds), 5000))  # bounded
    n_b = max(1, min(opts.issues, 5000))
    texts = issue_texts(n_a + n_b)
    from bot.decide.classify import Classifier
    from bot.decide.model import Issue
    from bot.decide.rules import load_rules

    classifier = Classifier(load_rules())
    threats_b = sum(classifier.classify(Issue(str(k), *texts[k - 1], ()), {}).is_threat
                    for k in range(n_a + 1, n_a + n_b + 1))
    threats_all = threats_b + sum(classifier.classify(Issue(str(k), *texts[k - 1], ()),
                                                      {}).is_threat
                                  for k in range(1, n_a + 1))
    requests_a = deliveries(range(1, n_a + 1), texts)
    requests_b = deliveries(range(n_a + 1, n_a + n_b + 1), texts)

    with tempfile.TemporaryDirectory(prefix="bugbar-bench-") as tmp:
        state = Path(tmp) / "bugbar.db"
        log_path = Path(tmp) / "server.log"
        fake, fake_url = child("fake", str(n_a + n_b))
        server = None
        try:
            server, port_text = child("server", str(state), fake_url, str(opts.workers),
                                      str(log_path), stderr=subprocess.DEVNULL)
            port = int(port_text)
            # Wait until the server answers (bounded), then a short warm-up outside the numbers.
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection((HOST, port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("server did not start") from None
                    time.sleep(0.05)
            asyncio.run(closed_loop(port, pings(20), 1))  # warm-up, not counted

            # (a) open-loop acknowledgement latency, workers busy meanwhile.
            t0 = time.perf_counter()
            latency, late, status_a = asyncio.run(open_loop(port, requests_a, opts.rate))
            sent_for = time.perf_counter() - t0
            backlog = inbox(state)
            drain_a = wait_drained(state, n_a, limit=300)

            # (b) end-to-end throughput on distinct issues, from the first POST to empty inbox.
            t1 = time.perf_counter()
            status_b = asyncio.run(closed_loop(port, requests_b, opts.concurrency))
            posted_for = time.perf_counter() - t1
            drained_b = wait_drained(state, n_a + n_b, limit=600)
            e2e = time.perf_counter() - t1 if drained_b is not None else None
            final = inbox(state)
            api = fake_stats(fake)
        finally:
            if server is not None:
                stop(server)
            stop(fake)

    ms = [x * 1000 for x in latency]
    ok_a = sum(s == 202 for s in status_a)
    ok_b = sum(s == 202 for s in status_b)
    per_issue = api["bot_comments"]
    total_issues = n_a + n_b
    writes = sum(api["methods"].get(m, 0) for m in ("POST", "PATCH", "PUT", "DELETE"))
    reqs = sum(api["methods"].values())
    writes_per_issue = writes / total_issues
    writes_per_threat = writes / max(threats_all, 1)
    print(f"bugbar server benchmark — {platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, loopback; uvicorn + "
          f"{opts.workers} workers, SQLite state file (WAL, synchronous=FULL), shipped rules, "
          f"JSON logs at INFO to a file")
    print(f"1-min load average before the run: {load_before:.2f} (other work on the machine "
          f"shows up in the tails; compare runs on a quiet machine)")
    print()
    print(f"(a) ack latency, open loop at {opts.rate:g} deliveries/s for {opts.seconds:g} s "
          f"(signed issues.opened, fresh connection each)")
    print("    | sent | 202  | p50 ms | p90 ms | p99 ms | max ms | goal p99 |")
    print("    |------|------|--------|--------|--------|--------|----------|")
    print(f"    | {n_a:4d} | {ok_a:4d} | {pct(ms, 50):6.1f} | {pct(ms, 90):6.1f} | "
          f"{pct(ms, 99):6.1f} | {max(ms):6.1f} | < 50 ms {'ok' if pct(ms, 99) < 50 else 'MISSED'}"
          f" |")
    print(f"    sending took {sent_for:.1f} s; generator start lateness max "
          f"{max(late) * 1000:.1f} ms, mean {statistics.mean(late) * 1000:.2f} ms; inbox after "
          f"the last ack: {backlog['pending']} pending, {backlog['claimed']} claimed, "
          f"{backlog['done']} done; drained {drain_a if drain_a is None else f'{drain_a:.1f} s'}"
          f" later")
    print()
    print(f"(b) end to end: {n_b} distinct issues ({threats_b} threat, {n_b - threats_b} not), "
          f"{opts.concurrency} in flight, write pacer 0")
    if e2e is None:
        print("    did not drain within the time limit")
    else:
        print("    | issues | 202  | POSTs took s | first POST → inbox empty s | issues/s |")
        print("    |--------|------|--------------|----------------------------|----------|")
        print(f"    | {n_b:6d} | {ok_b:4d} | {posted_for:12.2f} | {e2e:26.2f} | "
              f"{n_b / e2e:8.1f} |")
    print(f"    GitHub API over both phases: {reqs} requests ({reqs / total_issues:.2f}/issue), "
          f"{writes} writes ({writes_per_issue:.2f}/issue, {writes_per_threat:.2f} per threat "
          f"issue); API errors {api['errors']}")
    print(f"    paced at GitHub's 1 write/s (WritePacer(1.0), production default): at most "
          f"{1 / max(writes_per_issue, 1e-9):.2f} issues/s for this mix "
          f"({1 / max(writes_per_threat, 1e-9):.2f} threat issues/s) — pacing, not the server, "
          f"sets the rate")
    more = sum(c > 1 for c in per_issue)
    print(f"    check: inbox {final}; {sum(c == 1 for c in per_issue)} issues with one bot "
          f"comment ({threats_all} threats expected), {more} with more than one, "
          f"{api['labelled']} with threat labels")
    bad = (ok_a != n_a or ok_b != n_b or e2e is None or more or final["dead"]
           or sum(c == 1 for c in per_issue) != threats_all)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
