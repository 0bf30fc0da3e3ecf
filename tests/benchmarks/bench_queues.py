"""Benchmark: bugbar's PostgreSQL inbox against procrastinate and pgqueuer, on this machine.

Run explicitly: ``python tests/benchmarks/bench_queues.py [--jobs 2000] [--consumers 4]
[--admin-url postgresql://postgres@127.0.0.1:5432/postgres]``. Needs the ``postgres`` extra
plus ``pip install procrastinate pgqueuer`` (benchmark only; bugbar does not depend on them).
Each queue gets a database of its own, created and dropped here.

The same work for each, as close to how bugbar would use it as each library allows:

* **ack**: one delivery stored and committed, one at a time (what the webhook answer waits
  for): p50 / p99 latency over ``--acks`` inserts, each with a delivery id (dedupe key) and an
  issue key (per-issue lock where the library has one);
* **drain**: ``--jobs`` stored deliveries (over ``--issues`` issues) claimed and completed by
  ``--consumers`` concurrent consumers, each on its own connection; jobs per second.

bugbar's store is driven by threads (that is how the server's workers call it), the two
libraries by asyncio tasks (their native mode), each consumer with its own connection.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.pg import admin_create, admin_drop  # noqa: E402

BODY = b'{"action":"opened","issue":{"number":1,"title":"x"}}' * 20  # ~1 KB, a small webhook


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# --------------------------------------------------------------------------- bugbar


def bench_bugbar(url: str, acks: int, jobs: int, issues: int, consumers: int) -> dict[str, float]:
    from bot.store_pg import PgStore

    store = PgStore(url, max_connections=consumers + 2)
    try:
        lat = []
        for i in range(acks):
            t0 = time.perf_counter()
            store.put_delivery("github", f"ack-{i}", "issues", {}, BODY,
                               issue_key=f"github:o/r#{i % issues}")
            lat.append(time.perf_counter() - t0)
        drain_all(store)
        for i in range(jobs):
            store.put_delivery("github", f"job-{i}", "issues", {}, BODY,
                               issue_key=f"github:o/r#{i % issues}")
        done = [0] * consumers

        def consumer(n: int) -> None:
            while (d := store.claim_next(f"bench:{n}", 60, max_attempts=5)) is not None:
                store.complete(d.pk, "ok")
                done[n] += 1

        t0 = time.perf_counter()
        threads = [threading.Thread(target=consumer, args=(n,)) for n in range(consumers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - t0
        assert sum(done) == jobs, (sum(done), jobs)
        return {"p50": pct(lat, 50), "p99": pct(lat, 99), "drain": jobs / took}
    finally:
        store.close()


def drain_all(store: Any) -> None:
    while (d := store.claim_next("bench:warm", 60)) is not None:
        store.complete(d.pk, "ok")


# --------------------------------------------------------------------------- procrastinate


async def bench_procrastinate(url: str, acks: int, jobs: int, issues: int,
                              consumers: int) -> dict[str, float]:
    import logging

    import procrastinate
    from procrastinate.jobs import Status

    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # its "App in __main__" note
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=url, max_size=consumers + 2))

    @app.task(name="deliver", queue="inbox")
    def deliver(delivery_id: str, body: str) -> None:  # pragma: no cover - never run here
        return None

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        body = base64.b64encode(BODY).decode()
        lat = []
        for i in range(acks):
            t0 = time.perf_counter()
            await deliver.configure(lock=f"github:o/r#{i % issues}",
                                    queueing_lock=f"ack-{i}").defer_async(
                delivery_id=f"ack-{i}", body=body)
            lat.append(time.perf_counter() - t0)
        worker = await app.job_manager.register_worker()
        while (job := await app.job_manager.fetch_job(queues=None, worker_id=worker)):
            await app.job_manager.finish_job(job, Status.SUCCEEDED, delete_job=False)
        for i in range(jobs):
            await deliver.configure(lock=f"github:o/r#{i % issues}",
                                    queueing_lock=f"job-{i}").defer_async(
                delivery_id=f"job-{i}", body=body)
        done = [0] * consumers

        async def consumer(n: int) -> None:
            wid = await app.job_manager.register_worker()
            idle = 0
            while idle < 20:  # the per-lock rule can hide work for a moment
                job = await app.job_manager.fetch_job(queues=None, worker_id=wid)
                if job is None:
                    idle += 1
                    await asyncio.sleep(0.001)
                    continue
                idle = 0
                await app.job_manager.finish_job(job, Status.SUCCEEDED, delete_job=False)
                done[n] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(consumer(n) for n in range(consumers)))
        took = time.perf_counter() - t0
        assert sum(done) == jobs, (sum(done), jobs)
        return {"p50": pct(lat, 50), "p99": pct(lat, 99), "drain": jobs / took}


# --------------------------------------------------------------------------- pgqueuer


async def bench_pgqueuer(url: str, acks: int, jobs: int, issues: int,
                         consumers: int) -> dict[str, float]:
    import psycopg
    from pgqueuer.queries import EntrypointExecutionParameter, Queries

    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True)
             for _ in range(consumers + 1)]
    try:
        q = Queries.from_psycopg_connection(conns[0])
        await q.install()
        lat = []
        for i in range(acks):
            t0 = time.perf_counter()
            await q.enqueue("deliver", BODY, dedupe_key=f"ack-{i}")
            lat.append(time.perf_counter() - t0)
        params = {"deliver": EntrypointExecutionParameter(concurrency_limit=0)}
        qm_id = uuid.uuid4()

        async def take(queries: Any) -> Any:
            got = await queries.dequeue(batch_size=1, entrypoints=params,
                                        queue_manager_id=qm_id, global_concurrency_limit=None,
                                        heartbeat_timeout=timedelta(seconds=60))
            return got[0] if got else None

        while (job := await take(q)) is not None:
            await q.log_jobs([(job, "successful", None)])
        for i in range(jobs):
            await q.enqueue("deliver", BODY, dedupe_key=f"job-{i}")
        done = [0] * consumers

        async def consumer(n: int) -> None:
            mine = Queries.from_psycopg_connection(conns[n + 1])
            while (job := await take(mine)) is not None:
                await mine.log_jobs([(job, "successful", None)])
                done[n] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(consumer(n) for n in range(consumers)))
        took = time.perf_counter() - t0
        assert sum(done) == jobs, (sum(done), jobs)
        return {"p50": pct(lat, 50), "p99": pct(lat, 99), "drain": jobs / took}
    finally:
        for c in conns:
            await c.close()


# --------------------------------------------------------------------------- main


def server_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def run(name: str, admin_url: str, fn: Callable[[str], dict[str, float] | Awaitable[Any]]
        ) -> dict[str, float] | str:
    db = f"bugbar_bench_{name}_{os.getpid()}"
    url, _ = admin_create(admin_url, db)
    try:
        result = fn(url)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        assert isinstance(result, dict)
        return result
    except ImportError as exc:
        return f"not installed ({exc.name})"
    finally:
        admin_drop(admin_url, db)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--acks", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--issues", type=int, default=200)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="runs per queue (median shown)")
    opts = parser.parse_args()
    a, j, i, c = opts.acks, opts.jobs, opts.issues, opts.consumers
    candidates: dict[str, Callable[[str], Any]] = {
        "bugbar PgStore (SKIP LOCKED)": lambda u: bench_bugbar(u, a, j, i, c),
        "procrastinate": lambda u: bench_procrastinate(u, a, j, i, c),
        "pgqueuer": lambda u: bench_pgqueuer(u, a, j, i, c),
    }
    print(f"queue benchmark: PostgreSQL {server_version(opts.admin_url)}, {a} acks one at a "
          f"time; {j} jobs over {i} issues drained by {c} "
          f"consumers; median of {opts.rounds} rounds; {os.cpu_count()} CPUs, 1-min load "
          f"{os.getloadavg()[0]:.2f}")
    print("| queue | ack p50 ms | ack p99 ms | claim+complete jobs/s |")
    print("|---|---|---|---|")
    # Rounds interleave the queues: the disk's fsync time drifts with whatever else the machine
    # does, and every queue should see the same drift.
    results: dict[str, list[dict[str, float] | str]] = {name: [] for name in candidates}
    for _ in range(opts.rounds):
        for name, fn in candidates.items():
            results[name].append(run(name.split()[0], opts.admin_url, fn))
    for name, rounds in results.items():
        if any(isinstance(r, str) for r in rounds):
            print(f"| {name} | {next(r for r in rounds if isinstance(r, str))} | | |")
            continue
        med = {k: statistics.median(float(r[k]) for r in rounds if isinstance(r, dict))
               for k in ("p50", "p99", "drain")}
        print(f"| {name} | {med['p50'] * 1000:.2f} | {med['p99'] * 1000:.2f} | "
              f"{med['drain']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
