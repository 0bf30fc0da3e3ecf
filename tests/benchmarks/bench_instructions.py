"""Benchmark: instructions per issue of ``bugbar classify``, counted by callgrind.

Run explicitly: ``python tests/benchmarks/bench_instructions.py [--issues N]``. Wall-clock
numbers on a shared 2-core machine move by ±20 % with its load; an instruction count does not
(same binary, same input, same result), so this is the number to compare two versions of the
matcher with. It runs the real ``bugbar classify`` under ``valgrind --tool=callgrind`` on an
empty file and on N issues of ~2 KB (built like bench_classify.py builds them) and reports the
difference divided by N, so start-up and rule loading are left out. Needs valgrind; about a
minute for the default 2,000 issues.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_classify import ROOT, make_issues  # noqa: E402


def instructions(path: Path) -> int:
    """Instructions callgrind counts for one ``bugbar classify`` run over ``path``."""
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-m", "bot.cli", "classify", str(path)],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "BUGBAR_SEMANTIC": "0"})  # the rules-only path
    found = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{proc.stderr[-500:]}")
    return int(found.group(1))


def main() -> None:
    """Print instructions per issue."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--issues", type=int, default=2_000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found: install it (Debian: apt install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.jsonl"
        empty.write_text("")
        issues = Path(tmp) / "issues.jsonl"
        issues.write_text("".join(json.dumps(i) + "\n" for i in make_issues(args.issues)))
        base = instructions(empty)
        total = instructions(issues)
    print(f"bugbar classify: {(total - base) / args.issues:,.0f} instructions per ~2 KB issue "
          f"({args.issues} issues; start-up and rule loading excluded)")


if __name__ == "__main__":
    main()
