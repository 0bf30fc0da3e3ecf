"""Measure triage quality on the held-out sets, split by kind and language.

Run explicitly: ``python tests/benchmarks/eval_heldout.py [FILE ...]`` (default: every
``tests/corpus/holdout*.jsonl``). For each set it runs the installed ``bugbar eval --format
json`` twice — rules only and with the semantic model — and prints threat items right (top
category) and non-threats flagged, overall, by ``kind`` and by ``lang``. It prints no issue text.

``--overlap`` adds a contamination check: for every held-out item, the cosine similarity of its
WordLlama embedding to the nearest training example the semantic model learns from. Held-out
sets and training examples are written by different authors but in one style, so near
duplicates would make the held-out numbers optimistic; the check says how many there are.

The held-out sets are for before/after measurement only (tests/corpus/README.md): nothing may
be tuned on what this prints about them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_eval(bugbar: str, path: Path, semantic: bool) -> dict[str, Any]:
    """``bugbar eval --format json`` on one file."""
    cmd = [bugbar, "eval", str(path), "--format", "json"]
    if not semantic:
        cmd.append("--no-semantic")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        sys.exit(f"bugbar eval failed: {proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def split(items: list[dict[str, Any]], result: dict[str, Any], key: str) -> str:
    """'value right/threats, flagged/non-threats' per value of ``key``."""
    missed = {m["id"] for m in result["missed_reports"]}
    flagged = {m["id"] for m in result["false_positive_items"]}
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for item in items:
        row = rows[item.get(key, "?")]
        if item["expect"]:
            row[0] += item["id"] not in missed
            row[1] += 1
        else:
            row[2] += item["id"] in flagged
            row[3] += 1
    return "; ".join(f"{k} {a}/{b} right, {c}/{d} flagged" for k, (a, b, c, d)
                     in sorted(rows.items()))


def overlap(paths: list[Path]) -> None:
    """Nearest-training-example similarity of every held-out item (contamination check)."""
    from bot.decide.rules import load_rules
    from bot.semantic import examples as ex
    from bot.semantic.model import shared_embedder

    emb = shared_embedder()
    training = ex.shipped_examples(load_rules())
    train_x = emb.embed([e.text for e in training])
    for path in paths:
        items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        x = emb.embed([ex.issue_text(i["title"], i["body"]) for i in items])
        nearest = (x @ train_x.T).max(axis=1)
        bands = [(0.98, "≥ 0.98"), (0.95, "0.95–0.98"), (0.9, "0.90–0.95")]
        counts = []
        upper = 2.0
        for low, name in bands:
            counts.append(f"{name}: {int(((nearest >= low) & (nearest < upper)).sum())}")
            upper = low
        print(f"{path.name}: nearest training example, cosine {', '.join(counts)}; "
              f"median {float(sorted(nearest)[len(nearest) // 2]):.3f} ({len(items)} items)")


def main() -> int:
    """Print the tables for the given held-out sets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--bugbar", default=shutil.which("bugbar") or "bugbar")
    parser.add_argument("--overlap", action="store_true")
    args = parser.parse_args()
    paths = args.files or sorted((ROOT / "tests" / "corpus").glob("holdout*.jsonl"))
    for path in paths:
        items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for semantic in (False, True):
            result = run_eval(args.bugbar, path, semantic)
            threats = sum(1 for i in items if i["expect"])
            right = threats - len(result["missed_reports"])
            negatives = len(items) - threats
            print(f"{path.name} ({'rules + model' if semantic else 'rules only'}): "
                  f"{right}/{threats} = {right / threats:.3f} right, "
                  f"{len(result['false_positive_items'])}/{negatives} flagged")
            print(f"  by kind: {split(items, result, 'kind')}")
            print(f"  by language: {split(items, result, 'lang')}")
    if args.overlap:
        overlap(paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
