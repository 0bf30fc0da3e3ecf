"""Sweep reports show the comment text a sweep posts (or, dry run, would post), and the sweep
writes the Actions job summary and step outputs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from bot.decide.classify import Classifier
from bot.decide.render import MARKER_PREFIX
from bot.handlers.sweep import SweepOptions
from bot.store import Store
from bot.sweep_cli import Progress, execute, fit_summary, open_report, write_ci_files
from tests.fakes.tracker import MemoryTracker

STEAL = ("Model extraction of our production fraud detection model",
         "An attacker queried the scoring API and trained a substitute model.")
SCOPE = "github:o/r"


def _sweep(classifier: Classifier, store: Store, tracker: MemoryTracker, report: Path,
           apply: bool = False) -> None:
    execute([SCOPE], SweepOptions(apply=apply, fresh=True), classifier=classifier, store=store,
            tracker_for=lambda p, s: tracker, report=open_report(report),
            progress=Progress(enabled=False), out=io.StringIO())


def test_dry_run_reports_carry_the_full_comment(classifier: Classifier, store: Store,
                                                tracker: MemoryTracker, tmp_path: Path) -> None:
    tracker.add_issue("o/r", 1, *STEAL)
    tracker.add_issue("o/r", 2, "Slow dashboard", "The page takes 10 s to load.")
    md, js, cs = (tmp_path / f"r.{ext}" for ext in ("md", "json", "csv"))
    for path in (md, js, cs):
        _sweep(classifier, store, tracker, path)
    assert tracker.writes == []
    rows = json.loads(js.read_text())["issues"]
    assert rows[1]["comment"] == ""  # nothing to say about the dashboard
    comment = rows[0]["comment"]
    assert MARKER_PREFIX in comment and "model-stealing" in comment.lower()
    text = md.read_text()
    assert "## Comments bugbar would post or edit" in text
    assert "### github:o/r\\#1" in text and comment in text
    [first, second] = list(csv.DictReader(cs.open()))
    assert first["comment"] == comment and second["comment"] == ""


def test_applied_sweep_reports_the_comment_it_posted(classifier: Classifier, store: Store,
                                                     tracker: MemoryTracker,
                                                     tmp_path: Path) -> None:
    ref = tracker.add_issue("o/r", 1, *STEAL)
    report = tmp_path / "r.json"
    _sweep(classifier, store, tracker, report, apply=True)
    [posted] = [c.body for c in tracker.comments(ref) if MARKER_PREFIX in c.body]
    assert json.loads(report.read_text())["issues"][0]["comment"] == posted


def test_summary_and_outputs_files(classifier: Classifier, store: Store,
                                   tracker: MemoryTracker, tmp_path: Path) -> None:
    tracker.add_issue("o/r", 1, *STEAL)
    _, result = execute([SCOPE], SweepOptions(fresh=True), classifier=classifier, store=store,
                        tracker_for=lambda p, s: tracker, progress=Progress(enabled=False),
                        out=io.StringIO())
    summary, outputs = tmp_path / "summary.md", tmp_path / "out.txt"
    write_ci_files(result, summary=str(summary), output=str(outputs))
    assert summary.read_text().startswith("# bugbar sweep report")
    lines = outputs.read_text().splitlines()
    name, delim = lines[0].split("<<")
    assert name == "decision" and lines[2] == delim
    assert json.loads(lines[1])["counts"]["changed"] == 1
    assert lines[3].startswith("outcome<<") and lines[4] == "finished"


def test_long_summary_is_cut_to_what_github_accepts() -> None:
    text = "".join(f"| row {i} | ü |\n" for i in range(100_000))
    cut = fit_summary(text, limit=10_000)
    assert len(cut.encode("utf-8")) <= 10_000 and cut.endswith("has everything.\n")
    body = cut.split("\n\n…")[0]
    assert body.endswith("|\n") and text.startswith(body)  # whole lines only
    assert fit_summary("short\n") == "short\n"
