"""Benchmark: several ``bugbar serve`` replicas on one PostgreSQL database.

Run explicitly: ``python tests/benchmarks/bench_replicas.py [--replicas 1 2 4] [--issues 120]
[--rate 200] [--seconds 5] [--workers 2]``. Needs the ``postgres`` extra and a PostgreSQL
server (``--admin-url``, default the machine's 127.0.0.1:5432); every database it uses is
created and dropped here. Loopback only; every child process is stopped at the end.

For each replica count N, two phases, each on a fresh database and a fresh fake:

(a) **ack latency**: signed ``issues.opened`` deliveries at ``--rate`` per second for
    ``--seconds`` seconds, open loop (each request due at ``start + i/rate`` whatever happened
    to earlier ones), round-robin over the N replicas, each on a fresh connection; the workers
    triage meanwhile. Latency runs from the due time to the last byte of the answer.
(b) **issues triaged per second end to end**: ``--issues`` distinct issues (the project's own
    corpus texts) posted round-robin over the replicas, 8 in flight; the clock runs from the
    first POST until every delivery is done.

The fake GitHub API (tests/fakes/github_api.py, in a process of its own) answers every request
after 50 ms; the replicas' writes are not paced (production paces them at GitHub's
1 write/s, which then sets the rate whatever the replica count). Each replica is
``bugbar serve --workers N`` with ``BUGBAR_WRITE_INTERVAL=0``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.benchmarks.bench_server import (  # noqa: E402
    BOT,
    HOST,
    REPO,
    SECRET,
    TOKEN,
    deliveries,
    issue_texts,
    pct,
    send,
    stop,
)
from tests.pg import admin_create, admin_drop  # noqa: E402

LATENCY = 0.05


# --------------------------------------------------------------------------- fake role


def run_fake(n: int) -> None:
    """The fake API with ``n`` issues, 50 ms per request; ``stats`` on stdin prints counts."""
    from tests.fakes.github_api import FakeGitHub

    fake = FakeGitHub(tokens=[TOKEN], login=BOT, rate_limit=10_000_000)
    fake.start()
    fake.add_repo(REPO, id=777)
    for title, body in issue_texts(n):
        fake.add_issue(REPO, title, body, user="reporter")
    fake.delay_next(None, r".*", LATENCY, times=10**9)
    print(fake.url, flush=True)
    for line in sys.stdin:
        if line.strip() != "stats":
            break
        per_issue = [sum(c["user"]["login"] == BOT for c in fake.comments(REPO, k))
                     for k in range(1, n + 1)]
        print(json.dumps({"bot_comments": per_issue, "requests": len(fake.requests)}),
              flush=True)
    fake.stop()


def start_fake(n: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, __file__, "--role", "fake", str(n)], cwd=ROOT,
                            text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        proc.kill()
        raise SystemExit("fake API failed to start")
    return proc, line


def fake_stats(fake: subprocess.Popen[str]) -> dict[str, Any]:
    assert fake.stdin is not None and fake.stdout is not None
    fake.stdin.write("stats\n")
    fake.stdin.flush()
    result: dict[str, Any] = json.loads(fake.stdout.readline())
    return result


# --------------------------------------------------------------------------- replicas


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_replicas(n: int, state: str, api_url: str, workers: int, logs: Path
                   ) -> tuple[list[subprocess.Popen[str]], list[int]]:
    procs, ports = [], []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BUGBAR_STATE": state,
           "BUGBAR_GITHUB_TOKEN": TOKEN, "BUGBAR_GITHUB_API_URL": api_url,
           "BUGBAR_GITHUB_WEBHOOK_SECRET": SECRET, "BUGBAR_LOG_LEVEL": "INFO",
           "BUGBAR_WRITE_INTERVAL": "0"}
    for i in range(n):
        port = free_port()
        log = (logs / f"replica-{i}.log").open("w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(port),
             "--workers", str(workers)], cwd=ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, text=True))
        ports.append(port)
    deadline = time.monotonic() + 60
    for proc, port in zip(procs, ports, strict=True):
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"replica on port {port} exited; see {logs}")
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("replicas did not start") from None
                time.sleep(0.05)
    return procs, ports


# --------------------------------------------------------------------------- load


async def open_loop(ports: list[int], requests: list[bytes], rate: float
                    ) -> tuple[list[float], list[int]]:
    """Round-robin over ``ports`` at fixed due times; (latency from due time, status)."""
    loop = asyncio.get_running_loop()
    latency = [0.0] * len(requests)
    status = [0] * len(requests)

    async def one(i: int, due: float) -> None:
        try:
            status[i] = await send(ports[i % len(ports)], requests[i])
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
    return latency, status


async def closed_loop(ports: list[int], requests: list[bytes], concurrency: int) -> list[int]:
    queue = list(enumerate(requests))
    status = [0] * len(requests)

    async def worker() -> None:
        while queue:
            i, req = queue.pop(0)
            try:
                status[i] = await send(ports[i % len(ports)], req)
            except (TimeoutError, OSError):
                status[i] = -1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return status


def wait_done(state: str, total: int, limit: float) -> float | None:
    from bot.store_pg import PgStore

    started = time.perf_counter()
    with PgStore(state, max_connections=1) as store:
        while time.perf_counter() - started < limit:
            s = store.stats()
            if s["pending"] == 0 and s["claimed"] == 0 and s["done"] + s["dead"] >= total:
                return time.perf_counter() - started
            time.sleep(0.05)
    return None


# --------------------------------------------------------------------------- phases


def phase_ack(n: int, opts: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    count = max(1, min(int(opts.rate * opts.seconds), 5000))
    texts = issue_texts(count)
    requests = deliveries(range(1, count + 1), texts)
    db = f"bugbar_bench_ack_{os.getpid()}"
    state, _ = admin_create(opts.admin_url, db)
    fake, url = start_fake(count)
    procs: list[subprocess.Popen[str]] = []
    try:
        procs, ports = start_replicas(n, state, url, opts.workers, tmp)
        latency, status = asyncio.run(open_loop(ports, requests, opts.rate))
    finally:
        for p in procs:
            stop(p)
        stop(fake)
        admin_drop(opts.admin_url, db)
    ms = [x * 1000 for x in latency]
    return {"sent": count, "ok": sum(s == 202 for s in status), "p50": pct(ms, 50),
            "p99": pct(ms, 99), "max": max(ms)}


def phase_e2e(n: int, opts: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    texts = issue_texts(opts.issues)
    requests = deliveries(range(1, opts.issues + 1), texts)
    db = f"bugbar_bench_e2e_{os.getpid()}"
    state, _ = admin_create(opts.admin_url, db)
    fake, url = start_fake(opts.issues)
    procs: list[subprocess.Popen[str]] = []
    try:
        procs, ports = start_replicas(n, state, url, opts.workers, tmp)
        t0 = time.perf_counter()
        status = asyncio.run(closed_loop(ports, requests, 8))
        drained = wait_done(state, opts.issues, 900)
        took = time.perf_counter() - t0 if drained is not None else None
        api = fake_stats(fake)
    finally:
        for p in procs:
            stop(p)
        stop(fake)
        admin_drop(opts.admin_url, db)
    comments = api["bot_comments"]
    return {"ok": sum(s == 202 for s in status), "seconds": took,
            "rate": None if took is None else opts.issues / took,
            "requests": api["requests"], "one_comment": sum(c == 1 for c in comments),
            "more": sum(c > 1 for c in comments)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("bench", "fake"), default="bench")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--issues", type=int, default=120, help="(b) distinct issues")
    parser.add_argument("--rate", type=float, default=200.0, help="(a) deliveries per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="(a) duration")
    parser.add_argument("--workers", type=int, default=2, help="worker threads per replica")
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.role == "fake":
        run_fake(int(opts.args[0]))
        return 0
    import tempfile

    from bot.decide.classify import Classifier
    from bot.decide.model import Issue
    from bot.decide.rules import load_rules

    classifier = Classifier(load_rules())
    threats = sum(classifier.classify(Issue(str(k), t, b, ()), {}).is_threat
                  for k, (t, b) in enumerate(issue_texts(opts.issues), 1))
    print(f"bugbar replicas benchmark — {platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} CPUs (shared by everything, fake API "
          f"and PostgreSQL included), 1-min load {os.getloadavg()[0]:.2f}; fake GitHub API "
          f"{LATENCY * 1000:.0f} ms per request; writes unpaced; {opts.workers} workers per "
          f"replica")
    print()
    print("| replicas | (a) acks at "
          f"{opts.rate:g}/s: 202 of sent | ack p50 ms | ack p99 ms | (b) issues | issues/s "
          "end to end | API requests | issues with 1 bot comment (threats) | with >1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    bad = False
    with tempfile.TemporaryDirectory(prefix="bugbar-replicas-") as tmp:
        for n in opts.replicas:
            ack = phase_ack(n, opts, Path(tmp))
            e2e = phase_e2e(n, opts, Path(tmp))
            rate = "did not drain" if e2e["rate"] is None else f"{e2e['rate']:.1f}"
            print(f"| {n} | {ack['ok']} of {ack['sent']} | {ack['p50']:.1f} | {ack['p99']:.1f} "
                  f"| {opts.issues} | {rate} | {e2e['requests']} | {e2e['one_comment']} "
                  f"({threats}) | {e2e['more']} |", flush=True)
            bad = bad or ack["ok"] != ack["sent"] or e2e["rate"] is None or e2e["more"] > 0 \
                or e2e["one_comment"] != threats
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
