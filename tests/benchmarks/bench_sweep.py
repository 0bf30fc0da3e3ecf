"""Benchmark: the backlog sweep on FakeGitHub — requests, wall time and peak memory.

Run explicitly: ``python tests/benchmarks/bench_sweep.py [--sizes 2000,5000,10000]``.

For each backlog size N (one repository, every 50th issue an AI/ML threat report, C = 8 % of N
human comments spread over the issues) it runs the real ``GitHubTracker`` against the loopback
FakeGitHub and a real SQLite store:

0. a first dry run (nothing known yet), against the bar ``ceil(N/100) + ceil(C/100) + 5``;
1. the first ``--apply`` sweep (a fresh install: every issue is decided, threats are written);
2. a second sweep (the issues written in (1) changed on GitHub: decided again, no request);
3. the steady state: a sweep of a backlog in which nothing changed.

For (3) it reports the requests used against the bar ``ceil(N/100) + 5``, the wall time, and
the peak Python memory (tracemalloc, in a separate run so tracing does not distort the time).
The sweep streams pages, so the peak should stay flat as N grows. The fake server runs in a
child process, so its own memory (it holds and sorts the whole backlog) is not counted.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.decide.classify import Classifier  # noqa: E402
from bot.decide.rules import load_rules  # noqa: E402
from bot.handlers.sweep import Sweep, SweepOptions, SweepResult  # noqa: E402
from bot.providers.github import GitHubTracker  # noqa: E402
from bot.providers.retry import RetryPolicy, WritePacer  # noqa: E402
from bot.store import Store  # noqa: E402
from tests.fakes.github_api import FakeGitHub  # noqa: E402

TOKEN = "bench-token"
SCOPE = "github:o/r"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
STEAL = ("Model extraction of our production fraud detection model",
         "An attacker queried the scoring API and trained a substitute model that copies ours.")


def comments_for(n: int) -> int:
    """How many human comments a backlog of ``n`` issues holds (80 per 1,000)."""
    return n * 8 // 100


def fill(fake: FakeGitHub, n: int) -> None:
    """``n`` issues updated in the past; every 50th is a model-stealing report; 8 % as many
    comments, spread over the issues."""
    for i in range(1, n + 1):
        when = T0 + timedelta(minutes=i)
        if i % 50 == 0:
            fake.add_issue("o/r", f"{STEAL[0]} #{i}", STEAL[1], updated_at=when)
        else:
            fake.add_issue("o/r", f"Training crashes with CUDA OOM at batch size {i}",
                           "Traceback (most recent call last): RuntimeError: CUDA out of "
                           "memory. Tried to allocate 2.00 GiB. " * 4, labels=["bug"],
                           updated_at=when)
    for k in range(comments_for(n)):
        fake.add_comment("o/r", 1 + (k * 7919) % n, f"same here ({k})")


def _serve_fake(n: int, conn: Connection) -> None:
    """Child process: a FakeGitHub with ``n`` issues, answering reset/count/stop commands."""
    with FakeGitHub(tokens=[TOKEN], rate_limit=10_000_000) as fake:
        fake.add_repo("o/r")
        fill(fake, n)
        conn.send(fake.url)
        while True:
            command = conn.recv()
            if command == "reset":
                fake.reset_log()
                conn.send(None)
            elif command == "count":
                conn.send((fake.count(), len(fake.writes)))
            else:
                break


class RemoteFake:
    """The parent's handle on the child's FakeGitHub."""

    def __init__(self, n: int) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._proc = multiprocessing.Process(target=_serve_fake, args=(n, child), daemon=True)
        self._proc.start()
        self.url: str = self._conn.recv()

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def count(self) -> tuple[int, int]:
        """(requests, writes) since the last reset."""
        self._conn.send("count")
        requests, writes = self._conn.recv()
        return int(requests), int(writes)

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(10)


def _sweep(classifier: Classifier, store: Store, tracker: Any,
           apply: bool = True) -> SweepResult:
    return Sweep(classifier, store, lambda provider, scope: tracker,
                 SweepOptions(apply=apply, reserve=None)).run([SCOPE])


def _timed(fake: RemoteFake, classifier: Classifier, store: Store,
           tracker: Any, apply: bool = True) -> tuple[SweepResult, float, int, int]:
    fake.reset()
    t = time.perf_counter()
    result = _sweep(classifier, store, tracker, apply)
    elapsed = time.perf_counter() - t
    requests, writes = fake.count()
    assert result.complete, result.to_json()
    return result, elapsed, requests, writes


def bench(n: int, classifier: Classifier, workdir: Path) -> dict[str, Any]:
    """All measurements for one backlog size."""
    fake = RemoteFake(n)
    try:
        store = Store(workdir / f"sweep-{n}.db")
        tracker = GitHubTracker.from_token(
            TOKEN, fake.url, policy=RetryPolicy(sleep=lambda s: None), pacer=WritePacer(0.0))
        out: dict[str, Any] = {"n": n, "bar": math.ceil(n / 100) + 5,
                               "dry_bar": math.ceil(n / 100)
                               + math.ceil(comments_for(n) / 100) + 5}
        _, out["dry_s"], out["dry_requests"], writes = _timed(
            fake, classifier, store, tracker, apply=False)
        assert writes == 0
        first, out["first_s"], out["first_requests"], out["first_writes"] = _timed(
            fake, classifier, store, tracker)
        out["changed"] = first.changes
        _, out["second_s"], out["second_requests"], writes = _timed(
            fake, classifier, store, tracker)
        assert writes == 0
        steady, out["steady_s"], out["steady_requests"], writes = _timed(
            fake, classifier, store, tracker)
        assert writes == 0 and steady.counts["unchanged"] == n

        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        _sweep(classifier, store, tracker)
        out["peak_mb"] = (tracemalloc.get_traced_memory()[1] - base) / 2**20
        tracemalloc.stop()
        store.close()
        return out
    finally:
        fake.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,5000,10000",
                        help="comma-separated backlog sizes (default 2000,5000,10000)")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    classifier = Classifier(load_rules())
    # tmpfs when there is one: the first sweep commits one SQLite transaction per issue, and
    # the disk's fsync latency would be measured instead of the sweep.
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() else None
    rows = []
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        for n in sizes:
            print(f"sweeping {n} issues …", file=sys.stderr, flush=True)
            rows.append(bench(n, classifier, Path(tmp)))
    print(f"\nbugbar sweep benchmark, {datetime.now(UTC):%Y-%m-%d}, Python "
          f"{sys.version.split()[0]}, FakeGitHub on loopback, one repository, 1 in 50 a threat\n")
    print("| issues | first dry run: requests (bar) / s | first sweep: requests / writes / s "
          "| 2nd sweep: requests / s | unchanged: requests (bar) | unchanged: s "
          "| unchanged: peak MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['dry_requests']} ({r['dry_bar']}) / {r['dry_s']:.1f} "
              f"| {r['first_requests']:,} / {r['first_writes']:,} / "
              f"{r['first_s']:.1f} | {r['second_requests']} / {r['second_s']:.2f} "
              f"| {r['steady_requests']} ({r['bar']}) | {r['steady_s']:.2f} "
              f"| {r['peak_mb']:.2f} |")
    ok = all(r["steady_requests"] <= r["bar"] for r in rows)
    dry_ok = all(r["dry_requests"] <= r["dry_bar"] for r in rows)
    print(f"\nrequests when nothing changed within ceil(N/100)+5: {'yes' if ok else 'NO'}")
    print(f"first dry run within ceil(N/100)+ceil(C/100)+5: {'yes' if dry_ok else 'NO'}")
    ok = ok and dry_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
