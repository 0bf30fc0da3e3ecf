"""``bugbar sweep``: the backlog sweep on the command line, its reports, and the periodic sweep.

* ``bugbar sweep SCOPE… [--apply]`` — dry run by default; see ``docs/sweep.md``.
* Reports: ``--report FILE.md|.json|.csv`` (by extension), written to a temporary file and
  renamed at the end, so a report on disk is always whole. Untrusted issue titles are made
  inert (Markdown/HTML escaped, no @-mentions, no spreadsheet formulas) and confidential ones
  are redacted before any writer sees them.
* ``bugbar serve --sweep-every 24h|"CRON" --sweep-scope SCOPE…`` — the same sweep in a
  background thread of the server (:class:`SweepScheduler`).

The sub-command and the serve options are added through ``bot.app_cli``'s registration hooks
when this module is imported (``bot.cli`` imports it as an extension).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol, TextIO

from bot.app import Bot
from bot.background import BackgroundLoop
from bot.cli import CliError
from bot.config import Config
from bot.decide.classify import Classifier
from bot.events.model import IssueRef
from bot.handlers.sweep import (
    CHANGED,
    OUTCOMES,
    PENDING,
    SKIPPED,
    STOP_BUDGET,
    STOP_LIMIT,
    STOP_MAX_CHANGES,
    STOP_RATE_LIMITED,
    UNCHANGED,
    IssueRow,
    Sweep,
    SweepOptions,
    SweepResult,
    TrackerFor,
    parse_scope,
)
from bot.handlers.triage import DecisionMetrics
from bot.providers.base import Tracker
from bot.store_base import StateStore as Store

__all__ = [
    "DEFAULT_RESERVE",
    "EXIT_ERRORS",
    "EXIT_MAX_CHANGES",
    "Progress",
    "Schedule",
    "SweepScheduler",
    "execute",
    "format_summary",
    "open_report",
    "parse_duration",
    "parse_since",
    "register",
]

log = logging.getLogger("bugbar.sweep")

DEFAULT_RESERVE = 500
"""Requests left untouched for webhooks (GitHub allows 5,000 an hour per token/installation)."""
EXIT_ERRORS = 1
EXIT_MAX_CHANGES = 3
"""Stopped at ``--max-changes``: more would change; a person should look (CI fails the job)."""
MIN_INTERVAL = timedelta(minutes=1)
SCHEDULE_CHECKPOINT = "sweep-schedule"
LEADER_LOCK = "periodic-sweep"

_DURATION_RE = re.compile(r"^(?:\d+[smhdw])+$")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# --------------------------------------------------------------------------- parsing


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``1h30m``, ``7d``, ``2w`` → timedelta; ValueError otherwise."""
    spec = text.strip().lower()
    if not _DURATION_RE.match(spec):
        raise ValueError(f"{text!r} is not a duration like 30m, 24h or 7d")
    seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(spec))
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return timedelta(seconds=seconds)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``2026-01-31``, ``2026-01-31T12:00:00Z`` (naive = UTC) or ``7d`` (that long ago)."""
    spec = text.strip()
    try:
        return (now or datetime.now(UTC)) - parse_duration(spec)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(spec.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date (2026-01-31, 2026-01-31T12:00Z) "
                         "or an age (7d, 24h)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- text safety


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#+!|~>])")


def md_text(text: str, limit: int = 120) -> str:
    """Untrusted text as inert Markdown table cell: escaped, one line, no mentions or HTML."""
    flat = _one_line(text, limit)
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    flat = _MD_SPECIAL.sub(r"\\\1", flat)
    return flat.replace("@", "@\u200b")  # no @mention pings when the report is posted


def csv_cell(text: str) -> str:
    """A cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --------------------------------------------------------------------------- reports


class ReportWriter(Protocol):
    """Receives every examined row while the sweep runs, and the result at the end."""

    path: Path

    def row(self, row: IssueRow) -> None:
        """One examined issue."""

    def close(self, result: SweepResult) -> None:
        """Finish and move the report into place."""

    def abort(self) -> None:
        """Drop the partial report (the sweep could not run)."""


class _FileReport:
    """Writes to ``path.partial`` and renames it over ``path`` when closed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".partial")
        try:
            self._fh: IO[str] = self._tmp.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise CliError(f"{path}: cannot write the report ({exc.strerror})") from None

    def _finish(self) -> None:
        self._fh.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Remove the partial file."""
        self._fh.close()
        self._tmp.unlink(missing_ok=True)


CSV_FIELDS = ("scope", "key", "url", "title", "state", "outcome", "reason", "categories",
              "severity", "routes", "actions", "applied", "confidential", "comment")


class CsvReport(_FileReport):
    """One line per examined issue."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._csv = csv.writer(self._fh)
        self._csv.writerow(CSV_FIELDS)

    def row(self, row: IssueRow) -> None:
        """Stream one row."""
        data = row.to_json()
        cells = []
        for name in CSV_FIELDS:
            value = data[name]
            if isinstance(value, list):
                value = "; ".join(value)
            elif isinstance(value, bool):
                value = "yes" if value else "no"
            # The comment keeps its lines (CSV quotes them); other cells are one line.
            text = str(value) if name == "comment" else _one_line(str(value), 500)
            cells.append(csv_cell(text))
        self._csv.writerow(cells)

    def close(self, result: SweepResult) -> None:
        """Done: the summary lives in the terminal output and the .json/.md reports."""
        self._finish()


class JsonReport(_FileReport):
    """``{"issues": [...every examined issue...], "summary": {...}}``, streamed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._fh.write('{"issues": [')
        self._first = True

    def row(self, row: IssueRow) -> None:
        """Stream one row."""
        self._fh.write(("\n  " if self._first else ",\n  ")
                       + json.dumps(row.to_json(), ensure_ascii=False))
        self._first = False

    def close(self, result: SweepResult) -> None:
        """Append the summary and finish."""
        self._fh.write('\n],\n"summary": ' + json.dumps(result.to_json(), indent=2) + "}\n")
        self._finish()


class MarkdownReport(_FileReport):
    """Summary tables plus the issues that changed, would change, or failed."""

    def row(self, row: IssueRow) -> None:
        """Nothing to stream: the result keeps the rows this report lists."""

    def close(self, result: SweepResult) -> None:
        """Write the whole report."""
        self._fh.write(markdown_report(result))
        self._finish()


def open_report(path: str | Path) -> ReportWriter:
    """A writer chosen by extension (.md, .json, .csv); CliError for anything else."""
    target = Path(path)
    kinds: dict[str, Callable[[Path], ReportWriter]] = {
        ".md": MarkdownReport, ".markdown": MarkdownReport, ".json": JsonReport,
        ".csv": CsvReport}
    kind = kinds.get(target.suffix.lower())
    if kind is None:
        raise CliError(f"{path}: the report format comes from the extension: .md, .json or .csv")
    return kind(target)


def _fence(body: str) -> str:
    """A ``~`` fence longer than any in ``body``, so the comment cannot close it early."""
    longest = 0
    for line in body.splitlines():
        stripped = line.lstrip()
        longest = max(longest, len(stripped) - len(stripped.lstrip("~")))
    return "~" * max(4, longest + 1)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]],
           numeric: bool = True) -> list[str]:
    align = ["---" if i == 0 or not numeric else "---:" for i in range(len(headers))]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _stop_text(result: SweepResult) -> str:
    reason = result.stop_reason
    if reason is None:
        return "finished" if result.complete else "finished with errors"
    when = ""
    if result.resume_after:
        when = (" (the rate limit resets at "
                f"{datetime.fromtimestamp(result.resume_after, UTC):%Y-%m-%d %H:%M} UTC)")
    return {
        STOP_LIMIT: "stopped at --limit; the next sweep resumes from the checkpoint",
        STOP_MAX_CHANGES: "stopped before exceeding --max-changes; the pending issue below "
                          "would change next (run without --apply to see every change)",
        STOP_BUDGET: "stopped to keep the rate-limit reserve for webhooks; the next sweep "
                     "resumes from the checkpoint" + when,
        STOP_RATE_LIMITED: "stopped: the tracker is rate limiting us; the next sweep resumes "
                           "from the checkpoint" + when,
    }.get(reason, f"stopped: {reason}")


def _breakdown(table: dict[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    for name, counts in sorted(table.items(), key=lambda kv: (kv[0] == "none", kv[0])):
        rows.append([name, *(counts[o] for o in OUTCOMES), sum(counts.values())])
    return rows


def markdown_report(result: SweepResult) -> str:
    """The .md report: what happened, per scope, category and severity, then the changes."""
    mode = "dry run — nothing was written" if result.dry_run else "applied"
    lines = [
        "# bugbar sweep report", "",
        f"- mode: **{mode}**",
        f"- rules: `{result.rules_version}`",
        f"- started: {result.started_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f", finished: {result.finished_at:%Y-%m-%d %H:%M:%S} UTC"
           if result.finished_at else ""),
        f"- outcome: {_stop_text(result)}", "",
        "## Scopes", "",
    ]
    lines += _table(["scope", "repos", "pages", "examined", *OUTCOMES, "status"], [
        [f"`{s.scope}`", s.repos, s.pages, s.examined, *(s.counts[o] for o in OUTCOMES),
         md_text(s.error) if s.error else ("complete" if s.complete
                                           else s.stop_reason or "not started")]
        for s in result.scopes])
    for s in result.scopes:
        if s.resumed:
            lines.append(f"\n`{s.scope}` resumed a checkpoint; earlier run(s) examined "
                         f"{sum(s.earlier.values())} issue(s).")
        if s.pages_unverified:
            lines.append(f"\n`{s.scope}`: {s.pages_unverified} page(s) answered 'not modified' "
                         "but were last listed by a run that did not finish them; their issues "
                         "were not re-read.")
    lines += ["", "## By category", ""]
    lines += _table(["category", *OUTCOMES, "total"], _breakdown(result.by_category))
    lines += ["", "## By severity", ""]
    lines += _table(["severity", *OUTCOMES, "total"], _breakdown(result.by_severity))
    lines += ["", "## Issues that changed, would change, or failed", ""]
    if not result.notable:
        lines.append("None.")
    else:
        lines += _table(["issue", "title", "outcome", "category", "severity", "route", "plan"], [
            [f"[{md_text(r.key)}]({r.url})" if r.url.startswith("https://") else md_text(r.key),
             md_text(r.title), r.outcome + ("" if r.applied or r.outcome != CHANGED
                                            else " (not applied)"),
             md_text(", ".join(r.categories) or "-"), r.severity or "-",
             md_text(", ".join(r.routes) or "-"),
             md_text("; ".join(r.actions) or r.reason or "-", 200)]
            for r in result.notable], numeric=False)
    commented = [r for r in result.notable if r.comment]
    if commented:
        verb = "would post or edit" if result.dry_run else "posted or edited"
        lines += ["", f"## Comments bugbar {verb}", ""]
        for r in commented:
            fence = _fence(r.comment)
            lines += [f"### {md_text(r.key)}", "", f"{fence}markdown", r.comment, fence, ""]
    unchanged = result.counts[UNCHANGED] + result.counts[SKIPPED]
    if unchanged:
        lines += ["", f"{result.counts[UNCHANGED]} unchanged and {result.counts[SKIPPED]} "
                      "skipped issue(s) are counted above but not listed; the .json and .csv "
                      "reports list every issue."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- terminal


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for n, r in enumerate(cells):
        out.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                             for i, c in enumerate(r)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def format_summary(result: SweepResult) -> str:
    """The summary table printed at the end of ``bugbar sweep``."""
    mode = "DRY RUN (nothing written; --apply to write)" if result.dry_run else "applied"
    lines = [f"bugbar sweep: {mode}; rules {result.rules_version}", ""]
    lines += _text_table(["scope", "examined", *OUTCOMES, "status"], [
        [s.scope, s.examined, *(s.counts[o] for o in OUTCOMES),
         "error" if s.error else ("complete" if s.complete else s.stop_reason or "not started")]
        for s in result.scopes])
    if result.by_category:
        lines += [""] + _text_table(["category", *OUTCOMES, "total"],
                                    _breakdown(result.by_category))
    if result.by_severity:
        lines += [""] + _text_table(["severity", *OUTCOMES, "total"],
                                    _breakdown(result.by_severity))
    shown = result.notable[:10]
    if shown:
        lines += ["", "changes" + (" (would be made)" if result.dry_run else "") + ":"]
        for r in shown:
            what = _one_line("; ".join(r.actions) or r.reason, 70)
            lines.append(f"  {r.outcome:<8} {r.key}  {_one_line(r.title, 50)}  [{what}]")
        if len(result.notable) > len(shown):
            lines.append(f"  … and {len(result.notable) - len(shown)} more (see --report)")
    for s in result.scopes:
        if s.error:
            lines.append(f"error: {s.scope}: {s.error}")
        if s.resumed:
            lines.append(f"{s.scope}: resumed a checkpoint (earlier run(s) examined "
                         f"{sum(s.earlier.values())} issue(s))")
        if s.pages_unverified:
            lines.append(f"{s.scope}: {s.pages_unverified} page(s) not modified since a run "
                         "that did not finish them; their issues were not re-read")
    lines += ["", _stop_text(result)]
    return "\n".join(lines) + "\n"


class Progress:
    """A tqdm bar on stderr while the sweep runs; silent when stderr is not a terminal."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None,
                 mininterval: float = 0.1) -> None:
        from tqdm import tqdm

        out = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(out, "isatty", lambda: False)())
        self.enabled = enabled
        self._bar = tqdm(total=None, unit=" issues", file=out, disable=not enabled,
                         bar_format="{desc} {n_fmt} issues [{elapsed}, {rate_fmt}{postfix}]",
                         leave=False, dynamic_ncols=True, mininterval=mininterval)
        self._scope = ""
        self._changed = 0

    def row(self, row: IssueRow) -> None:
        """Count one examined issue."""
        if row.scope != self._scope:
            self._scope = row.scope
            self._bar.set_description(row.scope, refresh=False)
        if row.outcome in (CHANGED, PENDING):
            self._changed += 1
            self._bar.set_postfix(changes=self._changed, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        """Remove the bar."""
        self._bar.close()


# --------------------------------------------------------------------------- running


def bot_tracker_for(bot: Bot) -> TrackerFor:
    """Ask the bot's factory for a tracker per repository (a GitHub App picks, and keeps
    fresh, the installation covering each one)."""

    def tracker_for(provider: str, scope: str) -> Tracker:
        factory = bot.trackers.get(provider)
        if factory is None:
            raise LookupError(f"no credentials configured for {provider}")
        return factory(IssueRef(provider, scope, 0), None)

    return tracker_for


def execute(
    scopes: Sequence[str],
    options: SweepOptions,
    *,
    classifier: Classifier,
    store: Store,
    tracker_for: TrackerFor,
    metrics: DecisionMetrics | None = None,
    report: ReportWriter | None = None,
    progress: Progress | None = None,
    out: TextIO | None = None,
) -> tuple[int, SweepResult]:
    """Run a sweep with report and progress; print the summary; return (exit code, result)."""
    listeners: list[Callable[[IssueRow], None]] = []
    if progress is not None:
        listeners.append(progress.row)
    if report is not None:
        listeners.append(report.row)

    def on_row(row: IssueRow) -> None:
        for listener in listeners:
            listener(row)

    sweep = Sweep(classifier, store, tracker_for, options, metrics=metrics, on_row=on_row)
    try:
        result = sweep.run(scopes)
    except BaseException:
        if report is not None:
            report.abort()
        raise
    finally:
        if progress is not None:
            progress.close()
    if report is not None:
        report.close(result)
    (out or sys.stdout).write(format_summary(result))
    if report is not None:
        (out or sys.stdout).write(f"report: {report.path}\n")
    return exit_code(result), result


STEP_SUMMARY_LIMIT = 1_000_000
"""GitHub refuses a job summary over 1 MiB per step; leave room for other steps' lines."""


def fit_summary(text: str, limit: int = STEP_SUMMARY_LIMIT) -> str:
    """``text`` cut at a line boundary below ``limit`` bytes, saying where the rest is."""
    if len(text.encode("utf-8")) <= limit:
        return text
    note = "\n\n… cut to fit the job summary; `bugbar sweep --report FILE` has everything.\n"
    budget = limit - len(note.encode("utf-8"))
    cut = text.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return cut[: cut.rfind("\n") + 1] + note


def write_ci_files(result: SweepResult, *, summary: str | None, output: str | None) -> None:
    """Append the Markdown report to ``summary`` ($GITHUB_STEP_SUMMARY) and the summary JSON
    as step output ``decision`` to ``output`` ($GITHUB_OUTPUT)."""
    from bot.ci import append_file, write_outputs

    try:
        if summary:
            append_file(summary, fit_summary(markdown_report(result)))
        if output:
            outcome = result.stop_reason or ("finished" if result.complete else "errors")
            write_outputs(output, {"decision": json.dumps(result.to_json(), ensure_ascii=False),
                                   "outcome": outcome})
    except OSError as exc:
        raise CliError(f"cannot write {exc.filename}: {exc.strerror} (--summary / --output)",
                       code=1) from None


def exit_code(result: SweepResult) -> int:
    """0 finished or stopped to resume later; 1 errors; 3 stopped at --max-changes."""
    if result.stop_reason == STOP_MAX_CHANGES:
        return EXIT_MAX_CHANGES
    if result.errors:
        return EXIT_ERRORS
    return 0


def _options(args: argparse.Namespace) -> SweepOptions:
    try:
        since = parse_since(args.since) if args.since else None
        return SweepOptions(apply=bool(args.apply), issue_state=args.issue_state, since=since,
                            limit=args.limit, max_changes=args.max_changes,
                            reserve=None if args.reserve < 0 else args.reserve,
                            fresh=bool(args.fresh))
    except ValueError as exc:
        raise CliError(str(exc)) from None


def cmd_sweep(args: argparse.Namespace) -> int:
    """``bugbar sweep SCOPE…``: bring existing issues in line with the current rules."""
    from bot.app_cli import build_bot, load_config, open_store
    from bot.logs import configure_logging

    try:
        for spec in args.scopes:
            parse_scope(spec)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    options = _options(args)
    config = load_config(args)
    configure_logging(config.log_level if args.verbose else "WARNING", stream=sys.stderr)
    if options.apply and config.dry_run:
        print("bugbar: BUGBAR_DRY_RUN is set: running as a dry run", file=sys.stderr)
        options = replace(options, apply=False)
    missing = sorted({parse_scope(s)[0] for s in args.scopes} - set(config.providers()))
    if missing:
        raise CliError(f"no credentials configured for {', '.join(missing)} "
                       "(see docs/sweep.md for the BUGBAR_* variables)")
    store = open_store(config)
    try:
        bot = build_bot(config, args, None, store)
        report = open_report(args.report) if args.report else None
        code, result = execute(args.scopes, options, classifier=bot.classifier, store=store,
                               tracker_for=bot_tracker_for(bot), report=report,
                               progress=Progress(enabled=False if args.quiet else None))
        write_ci_files(result, summary=args.summary, output=args.output)
        return code
    finally:
        store.close()


# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Schedule:
    """``every`` (a duration) or ``cron`` (a five-field cron expression, UTC)."""

    every: timedelta | None = None
    cron: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Schedule:
        """``24h`` / ``1h30m`` / ``7d``, or a cron expression such as ``"0 3 * * *"``."""
        text = spec.strip()
        try:
            every = parse_duration(text)
        except ValueError:
            every = None
        if every is not None:
            if every < MIN_INTERVAL:
                raise ValueError(f"--sweep-every {spec!r}: at least one minute between sweeps")
            return cls(every=every)
        from croniter import croniter

        if len(text.split()) != 5 or not croniter.is_valid(text):
            raise ValueError(f"--sweep-every {spec!r}: expected a duration (24h, 30m, 7d) or "
                             "a five-field cron expression such as '0 3 * * *'")
        return cls(cron=text)

    def next_run(self, last: datetime | None, now: datetime) -> datetime:
        """When the next sweep is due. Never run yet: now (interval) or the next cron time.
        A cron time missed while the server was down is caught up once, at start."""
        if self.every is not None:
            return now if last is None else last + self.every
        from croniter import croniter

        assert self.cron is not None
        base = last if last is not None else now
        nxt = croniter(self.cron, base).get_next(datetime)
        return nxt if isinstance(nxt, datetime) else now

    def describe(self) -> str:
        """``every 1 day, 0:00:00`` or ``cron '0 3 * * *'``."""
        return f"every {self.every}" if self.every is not None else f"cron {self.cron!r}"


class SweepScheduler(BackgroundLoop):
    """Runs ``job`` on a :class:`Schedule` in a daemon thread, off the webhook workers' path.

    The time of the last run is kept in the store, so a restart does not sweep again early.
    A sweep that stopped for the rate limit is retried when the limit resets (at the earliest
    ``min_retry`` later), not a whole period later. ``clock`` and ``wait`` are injectable:
    ``wait(seconds)`` returns True when the scheduler is being stopped.

    With a store, only the holder of the store's ``periodic-sweep`` leader lock sweeps
    (:meth:`StateStore.try_lead`): of several replicas on one PostgreSQL database one sweeps,
    and when it dies another takes over within ``leader_poll`` seconds, reading the last run
    from the shared checkpoint.
    """

    thread_name = "bugbar-sweep"

    def __init__(
        self,
        schedule: Schedule,
        job: Callable[[], SweepResult | None],
        *,
        store: Store | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wait: Callable[[float], bool] | None = None,
        min_retry: timedelta = timedelta(minutes=5),
        max_wait: float = 3600.0,
        leader_poll: float = 30.0,
    ) -> None:
        self.schedule = schedule
        self.job = job
        self.store = store
        self.clock = clock
        super().__init__()
        self._wait = wait if wait is not None else self._stop.wait
        self.min_retry = min_retry
        self.max_wait = max_wait
        self.runs = 0
        self.last_result: SweepResult | None = None
        self.leader_poll = leader_poll
        self.leading = store is None
        self.last_run: datetime | None = None
        self.retry_at: datetime | None = None
        self._load()

    def _load(self) -> None:
        saved = self.store.load_checkpoint(SCHEDULE_CHECKPOINT) if self.store else None
        self.last_run = _parse_time((saved or {}).get("last_run"))
        self.retry_at = _parse_time((saved or {}).get("retry_at"))

    def lead(self) -> bool:
        """Take or keep the sweep leadership; on taking it, read the last run (another replica
        may have swept since this one started)."""
        if self.store is None:
            return True
        try:
            leading = self.store.try_lead(LEADER_LOCK)
            if leading and not self.leading:
                self._load()
                log.info("periodic sweep: this replica leads")
        except Exception:  # the database is away: not leading now, ask again later
            log.exception("periodic sweep: cannot take the leader lock")
            leading = False
        self.leading = leading
        return leading

    def next_due(self) -> datetime:
        """When the job runs next."""
        due = self.schedule.next_run(self.last_run, self.clock())
        return min(due, self.retry_at) if self.retry_at is not None else due

    def run_pending(self) -> bool:
        """Run the job if it is due and this replica leads; True if it ran."""
        if not self.lead():
            return False
        now = self.clock()
        if self.next_due() > now:
            return False
        self.runs += 1
        result: SweepResult | None = None
        try:
            result = self.job()
        except Exception:
            log.exception("periodic sweep failed")
        self.last_result = result
        self.last_run = self.clock()
        self.retry_at = None
        if result is not None and result.stop_reason in (STOP_BUDGET, STOP_RATE_LIMITED):
            earliest = self.last_run + self.min_retry
            reset = (datetime.fromtimestamp(result.resume_after, UTC)
                     if result.resume_after else earliest)
            self.retry_at = max(reset, earliest)
        if self.store is not None:
            self.store.save_checkpoint(SCHEDULE_CHECKPOINT, {
                "last_run": self.last_run.isoformat(),
                "retry_at": self.retry_at.isoformat() if self.retry_at else None})
        return True

    def run_forever(self) -> None:
        """Loop until :meth:`stop`: sleep until due, run, repeat."""
        log.info("periodic sweep scheduled", extra={"schedule": self.schedule.describe(),
                                                    "next": self.next_due().isoformat()})
        while not self._stop.is_set():
            if self.run_pending():
                continue
            if self.leading:
                delay = (self.next_due() - self.clock()).total_seconds()
            else:
                delay = self.leader_poll
            if self._wait(max(0.0, min(delay, self.max_wait))):
                break
        if self.store is not None and self.leading:
            self.store.resign(LEADER_LOCK)
            self.leading = False


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _env_scopes() -> list[str]:
    raw = os.environ.get("BUGBAR_SWEEP_SCOPES", "")
    return [s.strip() for s in raw.replace("\n", ",").split(",") if s.strip()]


def serve_hook(app: Any, bot: Bot, config: Config, args: argparse.Namespace) -> None:
    """``serve --sweep-every``: start the periodic sweep next to the webhook workers."""
    spec = getattr(args, "sweep_every", None) or os.environ.get("BUGBAR_SWEEP_EVERY", "")
    if not spec:
        return
    scopes = list(getattr(args, "sweep_scope", None) or []) or _env_scopes()
    if not scopes:
        raise CliError("--sweep-every needs --sweep-scope SCOPE (or BUGBAR_SWEEP_SCOPES)")
    try:
        schedule = Schedule.parse(spec)
        for scope in scopes:
            parse_scope(scope)
        reserve = getattr(args, "sweep_reserve", DEFAULT_RESERVE)
        options = SweepOptions(apply=not config.dry_run,
                               max_changes=getattr(args, "sweep_max_changes", None),
                               reserve=None if reserve < 0 else reserve)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    report_path = getattr(args, "sweep_report", None)
    if report_path:
        open_report(report_path).abort()  # check the extension and folder now, not in 24 h

    def job() -> SweepResult:
        report = open_report(report_path) if report_path else None
        _, result = execute(scopes, options, classifier=bot.classifier, store=bot.store,
                            tracker_for=bot_tracker_for(bot), metrics=bot.metrics,
                            report=report, out=io.StringIO())
        log.info("periodic sweep done", extra={
            "complete": result.complete, "stop_reason": result.stop_reason,
            **{o: result.counts[o] for o in OUTCOMES}})
        return result

    scheduler = SweepScheduler(schedule, job, store=bot.store)
    scheduler.start()
    app.state.sweeper = scheduler


# --------------------------------------------------------------------------- registration


def _register_sweep(sub: Any, rules_opt: argparse.ArgumentParser,
                    state_parent: argparse.ArgumentParser,
                    dry_parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "sweep", parents=[rules_opt, state_parent],
        help="bring existing issues in line with the rules (dry run unless --apply)",
        description="Sweep the backlog: decide every listed issue with the current rules and "
                    "report (or, with --apply, make) the changes. SCOPE is github:owner/repo, "
                    "github:owner/*, gitlab:group/project, gitlab:group/*, or jira:PROJECT. "
                    "--state is the state (SQLite file or postgresql:// URL); the issue "
                    "state filter is "
                    "--issue-state.")
    p.add_argument("scopes", nargs="+", metavar="SCOPE",
                   help="github:owner/repo, github:owner/*, gitlab:group/project, "
                        "gitlab:group/*, jira:PROJECT")
    p.add_argument("--apply", action="store_true", help="write the changes (default: dry run)")
    p.add_argument("--issue-state", choices=("open", "closed", "all"), default="open",
                   help="which issues to list (default open)")
    p.add_argument("--since", metavar="DATE",
                   help="only issues updated since DATE (2026-01-31, ISO time, or 7d/24h ago)")
    p.add_argument("--limit", type=_count, metavar="N", help="examine at most N issues")
    p.add_argument("--max-changes", type=_count, metavar="N",
                   help="apply at most N changes; stop before the next and report it (exit 3)")
    p.add_argument("--report", metavar="FILE", help="write a report: FILE.md, .json or .csv")
    p.add_argument("--reserve", type=int, default=DEFAULT_RESERVE, metavar="N",
                   help=f"stop when the rate-limit budget falls to N (default {DEFAULT_RESERVE};"
                        " -1: no reserve)")
    p.add_argument("--fresh", action="store_true",
                   help="ignore a checkpoint left by an interrupted sweep; start from the top")
    p.add_argument("--summary", metavar="FILE",
                   help="append the Markdown report (e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument("--output", metavar="FILE",
                   help="append step outputs decision (summary JSON) and outcome "
                        "(e.g. $GITHUB_OUTPUT)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log at BUGBAR_LOG_LEVEL (default: warnings only)")
    p.set_defaults(func=cmd_sweep)

    serve = getattr(sub, "choices", {}).get("serve")
    if serve is not None:
        group = serve.add_argument_group("periodic sweep")
        group.add_argument("--sweep-every", metavar="WHEN",
                           help="sweep in the background: a period (24h) or a cron expression "
                                "('0 3 * * *', UTC); also BUGBAR_SWEEP_EVERY")
        group.add_argument("--sweep-scope", action="append", metavar="SCOPE",
                           help="scope to sweep (repeatable; also BUGBAR_SWEEP_SCOPES)")
        group.add_argument("--sweep-max-changes", type=_count, metavar="N",
                           help="apply at most N changes per periodic sweep")
        group.add_argument("--sweep-reserve", type=int, default=DEFAULT_RESERVE, metavar="N",
                           help="stop a periodic sweep when the rate-limit budget falls to N "
                                f"(default {DEFAULT_RESERVE})")
        group.add_argument("--sweep-report", metavar="FILE",
                           help="rewrite this report after every periodic sweep")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def register(sub: Any, rules_opt: argparse.ArgumentParser) -> None:
    """``bot.cli`` extension entry point. The sub-command itself is added through
    ``bot.app_cli``'s registrations (it needs the shared --state parent), see below."""


def _install() -> None:
    from bot import app_cli

    if _register_sweep not in app_cli._EXTRA_REGISTRATIONS:
        app_cli._EXTRA_REGISTRATIONS.append(_register_sweep)
    if serve_hook not in app_cli._SERVE_HOOKS:
        app_cli._SERVE_HOOKS.append(serve_hook)


_install()
