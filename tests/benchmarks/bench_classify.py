"""Benchmark: offline classification throughput, rule-load time and peak memory.

Run explicitly: ``python tests/benchmarks/bench_classify.py [--issues N]``. It builds ~2 KB
issues from the project's own corpus (bot/data/train_labelled.jsonl), writes them as JSON Lines
and runs the real ``bugbar classify`` in a child process, so the numbers include JSON parsing
and output, as a user would see them. The own corpus is dense with threat vocabulary (every
2 KB issue holds several reports and confusers), the hard case; when ``../shared/corpus`` is
there, the same run on real issue texts is reported too. Bars (issue 2): ≥ 5,000 issues/s in
one process, rules load < 200 ms, peak memory < 150 MB — with the rules only (``--no-semantic``).

``--semantic`` measures the semantic model instead (issue 11; needs ``bugbar[semantic]``):
issues/s of ``bugbar classify`` with the model on (bar ≥ 50), cold start — process start to the
first decision printed, including training the head (bar < 3 s) — and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "bot" / "data" / "train_labelled.jsonl"
# Optional second workload: real issue texts (not part of the repository; skipped if absent).
SHARED = ROOT.parent / "shared" / "corpus"


def load_texts(paths: list[Path]) -> list[dict[str, str]]:
    """Every record of the given JSON Lines files."""
    return [json.loads(line) for path in paths for line in path.read_text().splitlines()
            if line.strip()]


def make_issues(n: int, size: int = 2048,
                texts: list[dict[str, str]] | None = None) -> list[dict[str, object]]:
    """``n`` issues of about ``size`` characters, cycling through the corpus texts."""
    if texts is None:
        texts = load_texts([CORPUS])
    out = []
    for i in range(n):
        base = texts[i % len(texts)]
        body = base.get("body") or base["title"]
        k = 1
        while len(body) < size:
            body += "\n\n" + (texts[(i + k) % len(texts)].get("body") or "")
            k += 1
        out.append({"id": f"b{i}", "title": base["title"], "body": body[:size], "labels": []})
    return out


def bench_load(repeats: int = 5) -> tuple[float, float]:
    """Median seconds, in a fresh interpreter each time, to (a) read, validate and compile the
    shipped rules and (b) the same including importing the core's modules (cold start)."""
    code = ("import time; t0=time.perf_counter(); from bot.decide.rules import load_rules; "
            "from bot.decide.classify import Classifier; t1=time.perf_counter(); "
            "Classifier(load_rules()); t2=time.perf_counter(); print(t2-t1, t2-t0)")
    runs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
            for _ in range(repeats)]
    return (statistics.median(float(r[0]) for r in runs),
            statistics.median(float(r[1]) for r in runs))


def bench_cli(path: Path, n: int, semantic: bool = False) -> tuple[float, float]:
    """Run ``bugbar classify`` on ``path``; returns (issues per second, peak RSS in MB)."""
    # The child reports its own peak (VmHWM): ru_maxrss survives exec on Linux, so it would
    # also count the parent's memory that the fork copied.
    # BUGBAR_SEMANTIC=0: the rules-only path; =1: the semantic model must load.
    code = ("import os, re, sys; os.environ['BUGBAR_SEMANTIC'] = sys.argv[2]; "
            "from bot.cli import main; rc = main(['classify', sys.argv[1]]);"
            "sys.stdout.flush(); status = open('/proc/self/status').read();"
            "print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr);"
            "sys.exit(rc)")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(path), "1" if semantic else "0"],
                          cwd=ROOT,
                          capture_output=True, check=True)
    elapsed = time.perf_counter() - start
    assert proc.stdout.count(b"\n") == n
    peak_kb = int(proc.stderr.decode().strip().splitlines()[-1])
    return n / elapsed, peak_kb / 1024


def bench_cold_start(repeats: int = 5) -> float:
    """Median seconds from starting ``bugbar classify`` (semantic model required) to its
    first decision on stdout: interpreter, imports, rules, embeddings, training the head."""
    issue = json.dumps({"id": "1", "title": "Anyone can push rows into the refit table",
                        "body": "The nightly refit learns whatever rows get inserted."})
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "classify", "-"], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env={**os.environ, "BUGBAR_SEMANTIC": "1"})
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write((issue + "\n").encode())
        proc.stdin.close()
        line = proc.stdout.readline()
        runs.append(time.perf_counter() - start)
        assert line.startswith(b'{"id": "1"'), line
        proc.wait()
    return statistics.median(runs)


def bench_semantic(args: argparse.Namespace) -> None:
    """The ``--semantic`` table."""
    issues = make_issues(args.issues)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "issues.jsonl"
        path.write_text("".join(json.dumps(i) + "\n" for i in issues))
        runs = [bench_cli(path, len(issues), semantic=True) for _ in range(max(1, args.repeat))]
    rates = [r for r, _ in runs]
    cold = bench_cold_start()
    print(f"issues: {len(issues)} of ~2 KB, semantic model on")
    print(f"bugbar classify (end to end, one process): {statistics.median(rates):,.0f} issues/s"
          f"   (bar >= 50)   [median of {len(rates)}: {min(rates):,.0f}-{max(rates):,.0f}]")
    print(f"cold start to the first decision (median of 5): {cold:.2f} s   (bar < 3 s)")
    print(f"peak memory of bugbar classify:            {max(p for _, p in runs):.0f} MB")


def bench_in_process(issues: list[dict[str, object]]) -> float:
    """Issues per second for the classifier alone (no JSON, no process start)."""
    from bot.decide.classify import Classifier
    from bot.decide.model import Issue
    from bot.decide.rules import load_rules

    c = Classifier(load_rules())
    items = [Issue(str(i["id"]), str(i["title"]), str(i["body"])) for i in issues]
    start = time.perf_counter()
    for item in items:
        c.classify(item)
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    """Print the benchmark table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--issues", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each end-to-end measurement; the median is reported "
                             "(a shared 2-core machine swings by 20 %% between runs)")
    parser.add_argument("--semantic", action="store_true",
                        help="measure the semantic model (default issues: 5,000)")
    args = parser.parse_args()
    if args.semantic:
        if args.issues == 50_000:
            args.issues = 5_000
        bench_semantic(args)
        return
    issues = make_issues(args.issues)
    avg = sum(len(str(i["body"])) + len(str(i["title"])) for i in issues) / len(issues)

    def median_rate(items: list[dict[str, object]]) -> tuple[float, float, float, float]:
        """(median, lowest, highest issues/s, peak MB) over ``--repeat`` runs."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "issues.jsonl"
            path.write_text("".join(json.dumps(i) + "\n" for i in items))
            runs = [bench_cli(path, len(items)) for _ in range(max(1, args.repeat))]
        rates = [r for r, _ in runs]
        return statistics.median(rates), min(rates), max(rates), max(p for _, p in runs)

    rate, low, high, peak = median_rate(issues)
    real = None
    if SHARED.is_dir():
        texts = load_texts(sorted(SHARED.glob("*.jsonl")))
        real = median_rate(make_issues(min(args.issues, 20_000), texts=texts))
    load, cold = bench_load()
    inproc = bench_in_process(issues[:20_000])
    print(f"issues: {len(issues)} of {avg:.0f} chars on average")
    print(f"bugbar classify (end to end, one process): {rate:,.0f} issues/s   (bar >= 5,000)"
          f"   [median of {args.repeat}: {low:,.0f}-{high:,.0f}]")
    if real is None:
        print(f"real issue texts: {SHARED} not found, skipped")
    else:
        print(f"  the same on real issue texts (../shared/corpus): {real[0]:,.0f} issues/s"
              f"   [{real[1]:,.0f}-{real[2]:,.0f}]")
    print(f"classifier alone (in process):             {inproc:,.0f} issues/s")
    print(f"rules load + compile (median of 5):        {load * 1000:.0f} ms   (bar < 200 ms)")
    print(f"  the same with the core's imports (cold):  {cold * 1000:.0f} ms")
    print(f"peak memory of bugbar classify:            {peak:.0f} MB   (bar < 150 MB)")


if __name__ == "__main__":
    main()
