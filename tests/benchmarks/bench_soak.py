"""Soak benchmark: the chaos run of tests/chaos.py, longer, with more issues and more kills.

Run explicitly: ``python tests/benchmarks/bench_soak.py [--issues 150] [--kills 4] [--seeds 1,2]
[--providers github,gitlab]``.

Each seed is one run per tracker: real ``bugbar serve`` subprocesses against FakeGitHub or
FakeGitLab, every issue
delivered twice and edited once, random 502s (before and after the work is done), 429s with
``Retry-After: 1`` and slow answers, and ``kill -9`` of the server at random points while a
worker holds a claim, each followed by a restart on the same state file. It prints a Markdown
table: deliveries, faults served, kills, the slowest recovery (restart until every delivery
acknowledged before the kill is done; bar 40 s) and any broken promise (wrong labels, not
exactly one bot comment on a threat issue, anything on another issue, a dead letter, an
acknowledged delivery left unfinished). Exit status 1 if anything broke.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.decide.classify import Classifier  # noqa: E402
from bot.decide.rules import load_rules  # noqa: E402
from tests import chaos  # noqa: E402

RECOVERY_BAR = 40.0


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=150)
    parser.add_argument("--threat-share", type=float, default=1 / 3)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--providers", default="github,gitlab",
                        help="trackers to soak, comma-separated (github, gitlab)")
    parser.add_argument("--lease", type=float, default=15.0,
                        help="BUGBAR_LEASE_SECONDS for the servers (default: the shipped 15)")
    args = parser.parse_args(argv)
    classifier = Classifier(load_rules())
    rows = []
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    for provider in providers:
        for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
            settings = chaos.Settings(issues=args.issues,
                                      threats=round(args.issues * args.threat_share),
                                      seed=seed, kills=args.kills, lease_seconds=args.lease,
                                      settle_timeout=300.0, provider=provider)
            print(f"{provider} seed {seed}: {settings.issues} issues, {settings.kills} kills …",
                  file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                rows.append((settings, chaos.run(settings, Path(tmp), classifier)))
    print(f"\nbugbar soak, {datetime.now(UTC):%Y-%m-%d}, Python {sys.version.split()[0]}, "
          "bugbar serve (2 workers) vs the fake trackers on loopback\n")
    print("| tracker | seed | issues (threats) | deliveries sent / acked / duplicate "
          "| faults served (slow / 502 / 502 after work / 429) | kills (mid-work) "
          "| recovery max / median s | requests | wall s | bot comments | broken promises |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    ok = True
    for s, r in rows:
        f = r.faults
        rec = r.recovery_seconds or [0.0]
        broken = "; ".join(r.problems) if r.problems else "none"
        ok = ok and not r.problems and max(rec) <= RECOVERY_BAR
        print(f"| {s.provider} | {s.seed} | {s.issues} ({s.threats}) "
              f"| {r.deliveries} / {r.acked} / {r.duplicates} "
              f"| {f.get('slow', 0)} / {f.get('fail', 0)} / "
              f"{f.get('fail_after', 0)} / {f.get('rate_limit', 0)} | {r.kills} "
              f"({r.killed_mid_work}) | {max(rec):.1f} / {statistics.median(rec):.1f} "
              f"| {r.requests} | {r.seconds:.0f} | {r.bot_comments} | {broken} |")
    print(f"\nexactly one outcome everywhere and recovery within {RECOVERY_BAR:.0f} s: "
          f"{'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
