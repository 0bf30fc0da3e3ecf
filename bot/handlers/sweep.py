"""The backlog sweep: bring existing issues in line with the current rules.

Same decision and apply code as webhooks (:class:`~bot.handlers.triage.Triage`), run over a
tracker's listing page by page. What makes it safe to run on a schedule against a large
backlog:

* **Frugal.** Issues are listed 100 a page. An issue whose tracker ``updated_at``, title/body
  hash and rules version all equal what the store recorded at its last decision is counted as
  unchanged without a single further request. Others go through ``Triage.run`` with the listed
  snapshot and ``trust_state=True`` (no re-fetch, and no comment read when the store knows the
  bot's comment). The bot's comment is otherwise found without a request per issue where the
  tracker allows: an issue listed with no comments has none, and GitHub's repository-wide
  comment stream (100 comments a request) is read once per pass when that is cheaper than
  reading issue by issue (see :class:`_CommentReads`). Only a plan that differs writes.
* **Budgeted.** Before every request-costing step the tracker's remaining rate-limit budget
  (``rate_limit_remaining()``, where the adapter offers it) is compared with the reserve; at or
  below it, or when the retry layer raises ``RateLimited``, the sweep stops cleanly.
* **Resumable.** After every page a checkpoint (scope, repository, cursor, counts) is saved in
  the store; the next sweep of the same scope and mode continues from it. A running sweep
  holds a lease on its checkpoint, renewed every third of ``lease_seconds`` (15 s), so a second
  sweep of the same scope is refused while the first lives, and takes over at once when the
  first was killed on this host (``Store.release_dead_claims``) or within one lease otherwise.
* **Capped.** With ``max_changes`` the sweep applies at most that many changes; the next issue
  that would change is planned (not applied), reported as ``pending`` and the sweep stops.
* **Streaming.** Nothing holds the backlog: rows go to a callback as they are decided and the
  result keeps counts plus the rows worth reading (changed, pending, error).

No argparse, no printing: :mod:`bot.sweep_cli` is the command line around this.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.decide.classify import Classifier
from bot.decide.rules import Settings
from bot.events.model import IssueRef
from bot.handlers.triage import (
    CommentHint,
    DecisionMetrics,
    Triage,
    TriageResult,
    content_hash,
    refusal_retry_due,
    state_knows_comment,
)
from bot.lease import Heartbeat, is_alive, owner_prefix
from bot.providers.base import BotCommentIndex, IssueSnapshot, ListPage, Tracker
from bot.providers.recording import DryRunTracker
from bot.providers.retry import RateLimited
from bot.store import IssueState
from bot.store_base import StateStore as Store

__all__ = [
    "CHANGED",
    "ERROR",
    "OUTCOMES",
    "PENDING",
    "SKIPPED",
    "UNCHANGED",
    "IssueRow",
    "ScopeSummary",
    "Sweep",
    "SweepOptions",
    "SweepResult",
    "checkpoint_name",
    "parse_scope",
]

log = logging.getLogger("bugbar.sweep")

PROVIDERS = ("github", "gitlab", "jira")

CHANGED = "changed"
"""Applied (``--apply``) or, in a dry run, would be applied."""
UNCHANGED = "unchanged"
SKIPPED = "skipped"
"""Left alone on purpose: opt-out label, pull request."""
PENDING = "pending"
"""Would change, not applied: the ``max_changes`` cap was reached."""
ERROR = "error"
OUTCOMES = (CHANGED, UNCHANGED, SKIPPED, PENDING, ERROR)

CHECKPOINT_VERSION = 1
MAX_CONSECUTIVE_ERRORS = 5
"""This many failing issues in a row stop the scope (broken credentials, deleted repo)."""
REDACTED_TITLE = "(confidential)"
# A dry run reports what --apply would do; an issue --apply would really take out of public view
# (the tracker's hand-off says its protect step hides it) does not have its title in the report
# either. A GitHub lock or advisory leaves the issue public, so its title is shown.
WITHHELD_TITLE = "(withheld: --apply would make it confidential)"

STOP_LIMIT = "limit"
STOP_MAX_CHANGES = "max-changes"
STOP_BUDGET = "budget"
STOP_RATE_LIMITED = "rate-limited"

TrackerFor = Callable[[str, str], Tracker]
"""``(provider, scope) -> Tracker``: asked once per repository, so a GitHub App hands out the
installation covering it and the adapter keeps that installation's token fresh."""


def parse_scope(spec: str) -> tuple[str, str]:
    """``github:owner/repo`` → ``("github", "owner/repo")``; raises ValueError when malformed."""
    provider, sep, scope = spec.partition(":")
    provider = provider.strip().lower()
    scope = scope.strip()
    if not sep or provider not in PROVIDERS or not scope:
        raise ValueError(
            f"{spec!r}: a scope is github:owner/repo, github:owner/*, gitlab:group/project, "
            "gitlab:group/*, or jira:PROJECT")
    if provider == "jira" and ("/" in scope or "*" in scope):
        raise ValueError(f"{spec!r}: a Jira scope is a project key, e.g. jira:SEC")
    if provider != "jira":
        if "/" not in scope or scope.startswith("/") or scope.endswith("/"):
            raise ValueError(f"{spec!r}: expected {provider}:owner/name or {provider}:owner/*")
        if "*" in scope and not (scope.endswith("/*") and scope.count("*") == 1):
            raise ValueError(f"{spec!r}: only a trailing /* wildcard is supported")
    return provider, scope


def checkpoint_name(spec: str, apply: bool) -> str:
    """Where the checkpoint of a sweep of ``spec`` lives; dry runs never resume an apply run."""
    return f"sweep:{'apply' if apply else 'dry-run'}:{spec}"


def _vouch_name(provider: str, repo: str) -> str:
    return f"sweep-pages:{provider}:{repo}"


@dataclass(frozen=True)
class SweepOptions:
    """What to sweep and how carefully."""

    apply: bool = False
    """False: a dry run that plans and reports, writing nothing to the tracker."""
    issue_state: str = "open"
    """``open``, ``closed`` or ``all`` (the tracker's issue state, not the SQLite state)."""
    since: datetime | None = None
    """Only issues updated at or after this time (the tracker filters)."""
    limit: int | None = None
    """Examine at most this many issues in this run (a checkpoint lets the next run go on)."""
    max_changes: int | None = None
    """Apply at most this many changes; stop before the next one and report it."""
    reserve: int | None = 500
    """Stop when the tracker reports this many requests left, or fewer (None: no reserve)."""
    fresh: bool = False
    """Ignore (and replace) any checkpoint instead of resuming from it."""
    lease_seconds: float = 15.0
    """The lease on the scope's checkpoint; renewed every third of it while the sweep runs."""
    max_passes: int = 3
    """Passes over one repository at most. A listing ordered by last update (GitHub's) moves
    every issue the sweep writes to its end, which shifts unseen issues onto pages already
    read; when a written issue shows up again later in the same pass, the repository is
    listed once more. Listings in a stable order (GitLab, Jira) never need a second pass."""

    def __post_init__(self) -> None:
        if self.issue_state not in ("open", "closed", "all"):
            raise ValueError("issue_state must be open, closed or all")
        for name in ("limit", "max_changes", "reserve"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_passes < 1:
            raise ValueError("max_passes must be at least 1")


@dataclass(frozen=True)
class IssueRow:
    """One examined issue, as the report shows it (the title already redacted if needed)."""

    scope: str
    """``provider:repository`` (one repository of a ``owner/*`` scope)."""
    key: str
    url: str
    title: str
    state: str
    outcome: str
    """changed | unchanged | skipped | pending | error"""
    reason: str = ""
    """Detail: ``cached`` (no request needed), ``checked``, ``opted-out``, ``pull-request``,
    ``max-changes`` or the error type."""
    categories: tuple[str, ...] = ()
    severity: str = ""
    routes: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    """The plan (``+label threat/…``, ``comment create``); empty when nothing to do."""
    applied: bool = False
    confidential: bool = False
    number: int = 0
    comment: str = ""
    """The bot's comment this run posted or edited (or, dry run, would have): its full text."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for the report."""
        data = asdict(self)
        for key in ("categories", "routes", "actions"):
            data[key] = list(data[key])
        return data


@dataclass
class ScopeSummary:
    """Counts for one scope as given on the command line (``github:o/*`` is one scope)."""

    scope: str
    repos: int = 0
    pages: int = 0
    pages_not_modified: int = 0
    pages_unverified: int = 0
    """304 pages last read by a run that did not finish them: their issues were not seen."""
    counts: Counter[str] = field(default_factory=Counter)
    earlier: dict[str, int] = field(default_factory=dict)
    """Counts carried in the checkpoint from the earlier run(s) this one resumed."""
    resumed: bool = False
    complete: bool = False
    stop_reason: str | None = None
    error: str | None = None

    @property
    def examined(self) -> int:
        """Issues looked at in this run."""
        return sum(self.counts[o] for o in OUTCOMES)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for the report."""
        return {
            "scope": self.scope, "repos": self.repos, "pages": self.pages,
            "pages_not_modified": self.pages_not_modified,
            "pages_unverified": self.pages_unverified,
            "examined": self.examined, **{o: self.counts[o] for o in OUTCOMES},
            "earlier_runs": dict(self.earlier), "resumed": self.resumed,
            "complete": self.complete, "stop_reason": self.stop_reason, "error": self.error,
        }


@dataclass
class SweepResult:
    """What a sweep did: counts by outcome, category and severity, and the notable rows."""

    dry_run: bool
    rules_version: str
    started_at: datetime
    finished_at: datetime | None = None
    scopes: list[ScopeSummary] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    by_category: dict[str, Counter[str]] = field(default_factory=dict)
    by_severity: dict[str, Counter[str]] = field(default_factory=dict)
    notable: list[IssueRow] = field(default_factory=list)
    """Changed, pending and error rows (unchanged and skipped ones are only counted)."""
    stop_reason: str | None = None
    """None when every scope was finished; else limit | max-changes | budget | rate-limited."""
    resume_after: float | None = None
    """Unix time when the rate limit lifts (budget / rate-limited stops), when known."""

    @property
    def complete(self) -> bool:
        """Every scope swept to its end without errors."""
        return all(s.complete and not s.error for s in self.scopes)

    @property
    def changes(self) -> int:
        """Issues changed (or, in a dry run, that would change)."""
        return self.counts[CHANGED]

    @property
    def errors(self) -> int:
        """Issues and scopes that failed."""
        return self.counts[ERROR] + sum(1 for s in self.scopes if s.error)

    def add(self, row: IssueRow) -> None:
        """Count a row (and keep it when it is worth reading)."""
        self.counts[row.outcome] += 1
        for category in row.categories or ("none",):
            self.by_category.setdefault(category, Counter())[row.outcome] += 1
        self.by_severity.setdefault(row.severity or "none", Counter())[row.outcome] += 1
        if row.outcome in (CHANGED, PENDING, ERROR):
            self.notable.append(row)

    def to_json(self) -> dict[str, Any]:
        """The summary part of the report (rows are written separately)."""
        return {
            "dry_run": self.dry_run,
            "rules_version": self.rules_version,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "complete": self.complete,
            "stop_reason": self.stop_reason,
            "resume_after": self.resume_after,
            "counts": {o: self.counts[o] for o in OUTCOMES},
            "by_category": {k: dict(v) for k, v in sorted(self.by_category.items())},
            "by_severity": {k: dict(v) for k, v in sorted(self.by_severity.items())},
            "scopes": [s.to_json() for s in self.scopes],
        }


class _Stop(Exception):
    """Stop the sweep cleanly (checkpoint kept)."""

    def __init__(self, reason: str, resume_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.resume_after = resume_after


class _ScopeFailed(Exception):
    """This scope cannot go on (listing failed, too many errors); others still run."""


class _CommentReads:
    """Chooses, per pass over one repository, between per-issue reads of the bot's comment and
    one bulk read of the repository's comment stream (``bot_comment_index``).

    The stream is read from the creation time of the issue that needs it: the listing is in
    creation order, so it covers this issue and every later one. An issue the store has never
    seen (a first sweep, or an issue new since the last one) reads the stream whole at once:
    every later unseen issue with comments would need a read too, and for a new issue the
    stream holds only the comments written since it was opened. Otherwise (a re-sweep where a
    few known issues changed) the first read probes the stream (one request): if it fits in one
    page, that page is the whole answer; else its length P is known, issues are read one by one
    until that has cost as much as P, and from then on the stream is read whole (ski rental:
    never much worse than the cheaper of the two).
    """

    def __init__(self) -> None:
        self.index: BotCommentIndex | None = None
        self.pages: int | None = None
        self.single_reads = 0

    def hint(self, raw: Tracker, repo: str, snap: IssueSnapshot,
             known: bool) -> CommentHint | None:
        """What the stream says of ``snap``'s bot comment, or None: read it per issue.
        ``known``: the store has a state for the issue."""
        if snap.comment_count == 0:
            return CommentHint(None)  # no comments at all: none of them is the bot's
        if snap.bot_comment_known:
            return CommentHint(snap.bot_comment)  # the listing carried it (Jira)
        bulk = getattr(raw, "bot_comment_index", None)
        created = snap.created_at
        if bulk is None or created is None:
            return None
        index = self.index
        if index is not None and (index.since is None or index.since <= created):
            return CommentHint(index.comments.get(snap.ref.number))
        if not known or self.pages is None or self.single_reads + 1 >= self.pages:
            probe = known and self.pages is None
            got: BotCommentIndex = bulk(repo, since=created, max_pages=1 if probe else None)
            if got.complete:
                self.index = got
                return CommentHint(got.comments.get(snap.ref.number))
            self.pages = got.pages or 1_000_000
        self.single_reads += 1
        return None


class _Seen:
    """Issue numbers already counted in this run, as a bitmap: a repository of 100,000 issues
    costs 12.5 KB, so a re-pass can tell new issues from counted ones without holding keys."""

    LIMIT = 1 << 26

    def __init__(self, encoded: str = "") -> None:
        try:
            self.bits = bytearray(base64.b64decode(encoded.encode("ascii"), validate=True))
        except (ValueError, UnicodeEncodeError):
            self.bits = bytearray()

    def add(self, number: int) -> None:
        """Mark ``number`` counted."""
        if 0 <= number < self.LIMIT:
            index = number >> 3
            if index >= len(self.bits):
                self.bits.extend(bytes(index + 1 - len(self.bits)))
            self.bits[index] |= 1 << (number & 7)

    def __contains__(self, number: object) -> bool:
        if not isinstance(number, int) or not 0 <= number < self.LIMIT:
            return False
        index = number >> 3
        return index < len(self.bits) and bool(self.bits[index] & (1 << (number & 7)))

    def encode(self) -> str:
        """For the checkpoint."""
        return base64.b64encode(bytes(self.bits)).decode("ascii")


@dataclass
class _Position:
    """Where a scope's sweep is; saved as the checkpoint after every page."""

    repos_done: list[str] = field(default_factory=list)
    repo: str | None = None
    passes: int = 0
    pass_writes: int = 0
    shifted: bool = False
    """An issue written in this pass was listed again: the order moves written issues."""
    seen: _Seen = field(default_factory=_Seen)
    """Issues of ``repo`` already counted (by this run or the one it resumes)."""
    cursor: str | None = None
    done_on_page: list[str] = field(default_factory=list)


def _bot_labels(labels: Iterable[str], template: str) -> tuple[str, ...]:
    prefix = template.split("{", 1)[0]
    suffix = template.rsplit("}", 1)[-1] if "}" in template else ""
    out = []
    for label in labels:
        if prefix and label.startswith(prefix) and label.endswith(suffix):
            out.append(label[len(prefix):len(label) - len(suffix)] if suffix
                       else label[len(prefix):])
    return tuple(out)


class Sweep:
    """One sweep over some scopes. Build it, call :meth:`run`, read the :class:`SweepResult`.

    ``on_row`` sees every examined issue (the report writers and progress bar hang here);
    ``on_page`` sees every listed page (tests use it to expire tokens mid-run).
    """

    def __init__(
        self,
        classifier: Classifier,
        store: Store,
        tracker_for: TrackerFor,
        options: SweepOptions | None = None,
        *,
        metrics: DecisionMetrics | None = None,
        on_row: Callable[[IssueRow], None] | None = None,
        on_page: Callable[[str, ListPage], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owner: str | None = None,
        heartbeat: Callable[[Heartbeat], None] | None = None,
    ) -> None:
        """``owner`` names this sweep on checkpoint leases (default ``host:pid:start:sweep``);
        ``heartbeat`` starts the lease's heartbeat (default: a thread; tests drive it)."""
        self.classifier = classifier
        self.owner = owner or f"{owner_prefix()}:sweep"
        self._start_heartbeat = heartbeat or Heartbeat.start
        self._lease: Heartbeat | None = None
        self.store = store
        self.tracker_for = tracker_for
        self.options = options or SweepOptions()
        self.on_row = on_row
        self.on_page = on_page
        self.clock = clock
        self.triage = Triage(classifier, store, dry_run=not self.options.apply, metrics=metrics)
        self.rules_version = classifier.ruleset.version
        self._applied = 0
        self._examined = 0
        self._failed: set[str] = set()  # issues that failed in this run: a re-pass skips them
        self._written_this_pass: set[str] = set()
        self._reads = _CommentReads()
        self._run_id = ""

    @property
    def settings(self) -> Settings:
        """The rule set's settings (label templates)."""
        return self.classifier.ruleset.settings

    # ------------------------------------------------------------------ entry point

    def run(self, scopes: Iterable[str]) -> SweepResult:
        """Sweep each scope (``github:owner/repo`` …) in turn; stops early only as documented."""
        specs = list(scopes)
        parsed = [parse_scope(s) for s in specs]  # all malformed scopes fail before any work
        started = self.clock()
        self._run_id = "sweep-" + started.strftime("%Y%m%dT%H%M%SZ")
        result = SweepResult(dry_run=not self.options.apply, rules_version=self.rules_version,
                             started_at=started)
        exhausted: dict[str, str] = {}  # provider -> why its budget stopped the sweep
        for spec, (provider, scope) in zip(specs, parsed, strict=True):
            summary = ScopeSummary(scope=f"{provider}:{scope}")
            result.scopes.append(summary)
            if result.stop_reason in (STOP_LIMIT, STOP_MAX_CHANGES):
                summary.stop_reason = result.stop_reason
                continue
            if provider in exhausted:  # another provider's budget is its own
                summary.stop_reason = exhausted[provider]
                continue
            try:
                self._sweep_scope(provider, scope, summary, result)
            except _Stop as stop:
                summary.stop_reason = result.stop_reason = stop.reason
                if stop.resume_after is not None:
                    result.resume_after = max(result.resume_after or 0.0, stop.resume_after)
                if stop.reason in (STOP_BUDGET, STOP_RATE_LIMITED):
                    exhausted[provider] = stop.reason
                log.info("sweep stopped", extra={"scope": spec, "reason": stop.reason})
            except _ScopeFailed as exc:
                summary.error = str(exc)
                log.warning("sweep of a scope failed", extra={"scope": spec, "error": str(exc)})
        result.finished_at = self.clock()
        return result

    # ------------------------------------------------------------------ scopes

    def _load_position(self, name: str, summary: ScopeSummary) -> _Position:
        if self.options.fresh:
            self.store.clear_checkpoint(name)
            return _Position()
        data = self.store.load_checkpoint(name)
        if not data:
            return _Position()
        wanted = {"version": CHECKPOINT_VERSION, "issue_state": self.options.issue_state,
                  "since": self._since_text(), "rules_version": self.rules_version}
        differs = [k for k, v in wanted.items() if data.get(k) != v]
        if differs:
            log.info("checkpoint ignored: it was made with other settings",
                     extra={"checkpoint": name, "differs": differs})
            return _Position()
        summary.resumed = True
        summary.earlier = {str(k): int(v) for k, v in dict(data.get("counts") or {}).items()}
        return _Position(
            repos_done=[str(r) for r in data.get("repos_done") or []],
            repo=data.get("repo"), passes=int(data.get("passes") or 0),
            pass_writes=int(data.get("pass_writes") or 0),
            shifted=bool(data.get("shifted")), seen=_Seen(str(data.get("seen") or "")),
            cursor=data.get("cursor"),
            done_on_page=[str(k) for k in data.get("done_on_page") or []])

    def _since_text(self) -> str | None:
        return self.options.since.isoformat() if self.options.since else None

    def _save_position(self, name: str, pos: _Position, summary: ScopeSummary,
                       stop: _Stop | None = None) -> None:
        if self._lease is not None and self._lease.lost:
            # Another sweep took the checkpoint over (this one stalled past its lease): its
            # position wins, and this one stops without overwriting it.
            raise _ScopeFailed(f"lost the lease on {name} to another sweep")
        counts = Counter(summary.earlier)
        counts.update({o: summary.counts[o] for o in OUTCOMES})
        self.store.save_checkpoint(name, {
            "version": CHECKPOINT_VERSION, "scope": summary.scope,
            "mode": "apply" if self.options.apply else "dry-run",
            "issue_state": self.options.issue_state, "since": self._since_text(),
            "rules_version": self.rules_version, "repos_done": pos.repos_done,
            "repo": pos.repo, "passes": pos.passes, "pass_writes": pos.pass_writes,
            "shifted": pos.shifted, "seen": pos.seen.encode(),
            "cursor": pos.cursor, "done_on_page": pos.done_on_page,
            "counts": {k: int(v) for k, v in counts.items()},
            "saved_at": self.clock().isoformat(), "run": self._run_id,
            "stop_reason": stop.reason if stop else None,
            "resume_after": stop.resume_after if stop else None,
        })

    def _sweep_scope(self, provider: str, scope: str, summary: ScopeSummary,
                     result: SweepResult) -> None:
        name = checkpoint_name(summary.scope, self.options.apply)
        lease = self.options.lease_seconds
        holder = self.store.claim_checkpoint(name, self.owner, lease)
        if holder is not None and not is_alive(holder):
            # Killed mid-sweep on this host: its checkpoint is ours at once, not in a lease.
            self.store.release_dead_claims(is_alive)
            holder = self.store.claim_checkpoint(name, self.owner, lease)
        if holder is not None:
            raise _ScopeFailed(f"another sweep of {summary.scope} is running ({holder}); "
                               "it resumes from the same checkpoint, so wait for it to end")
        beat = Heartbeat(f"checkpoint {name}",
                         lambda: self.store.renew_checkpoint(name, self.owner, lease), lease / 3)
        self._lease = beat
        self._start_heartbeat(beat)
        try:
            self._sweep_leased(provider, scope, summary, result, name)
        finally:
            beat.stop()
            self._lease = None
            self.store.release_checkpoint(name, self.owner)

    def _sweep_leased(self, provider: str, scope: str, summary: ScopeSummary,
                      result: SweepResult, name: str) -> None:
        pos = self._load_position(name, summary)
        repos = self._expand(provider, scope)
        summary.repos = len(repos)
        failed: list[str] = []
        for repo in repos:
            if repo in pos.repos_done:
                continue
            if pos.repo != repo:
                pos.repo, pos.passes, pos.pass_writes, pos.shifted = repo, 0, 0, False
                pos.cursor, pos.done_on_page, pos.seen = None, [], _Seen()
            self._written_this_pass.clear()
            try:
                self._sweep_repo(provider, repo, pos, name, summary, result)
            except _Stop as stop:
                self._save_position(name, pos, summary, stop)
                raise
            except _ScopeFailed as exc:
                if len(repos) == 1:
                    self._save_position(name, pos, summary)
                    raise
                # One repository of owner/* failing (access revoked, issues disabled) does
                # not hold up the others; it is reported, and the next sweep tries it again.
                failed.append(str(exc))
                log.warning("sweep of a repository failed",
                            extra={"scope": f"{provider}:{repo}", "error": str(exc)})
            pos.repos_done.append(repo)
            pos.repo, pos.cursor, pos.done_on_page, pos.seen = None, None, [], _Seen()
            self._save_position(name, pos, summary)
        self.store.clear_checkpoint(name)
        summary.complete = True
        if failed:
            summary.error = "; ".join(failed)

    def _expand(self, provider: str, scope: str) -> list[str]:
        if not scope.endswith("/*"):
            return [scope]
        try:
            tracker = self.tracker_for(provider, scope)
            expand = getattr(tracker, "expand_scope", None)
            if expand is None:
                raise _ScopeFailed(f"the {provider} adapter cannot expand {scope}")
            self._check_budget(tracker)
            repos = list(expand(scope))
        except RateLimited as exc:
            raise _Stop(STOP_RATE_LIMITED, exc.reset_at) from exc
        except (_Stop, _ScopeFailed):
            raise
        except Exception as exc:
            raise _ScopeFailed(f"cannot list the repositories of {scope}: "
                               f"{type(exc).__name__}: {exc}") from exc
        if not repos:
            raise _ScopeFailed(f"{scope} matches no repository these credentials can see")
        return [str(r) for r in repos]

    # ------------------------------------------------------------------ one repository

    def _sweep_repo(self, provider: str, repo: str, pos: _Position, name: str,
                    summary: ScopeSummary, result: SweepResult) -> None:
        try:
            raw = self.tracker_for(provider, repo)
        except RateLimited as exc:  # a GitHub App looking up the repository's installation
            raise _Stop(STOP_RATE_LIMITED, exc.reset_at) from exc
        except Exception as exc:
            raise _ScopeFailed(f"no tracker for {provider}:{repo}: "
                               f"{type(exc).__name__}: {exc}") from exc
        tracker: Tracker = raw if self.options.apply else DryRunTracker(raw)
        vouched = self._load_vouched(provider, repo)
        while True:
            self._one_pass(raw, tracker, provider, repo, pos, name, summary, result, vouched)
            if not (self.options.apply and pos.shifted and pos.pass_writes) \
                    or pos.passes + 1 >= self.options.max_passes:
                self._save_vouched(provider, repo, vouched)
                return
            log.info("re-listing: written issues moved in the listing",
                     extra={"scope": f"{provider}:{repo}", "writes": pos.pass_writes})
            pos.passes, pos.pass_writes, pos.shifted = pos.passes + 1, 0, False
            pos.cursor, pos.done_on_page = None, []
            self._written_this_pass.clear()

    def _one_pass(self, raw: Tracker, tracker: Tracker, provider: str, repo: str,
                  pos: _Position, name: str, summary: ScopeSummary, result: SweepResult,
                  vouched: dict[str, Any]) -> None:
        """Go through the listing once, from ``pos`` to its end."""
        errors_in_a_row = 0
        self._reads = _CommentReads()
        # A cursor at the start of a pass comes from a checkpoint, and a saved cursor can stop
        # working (Jira Cloud's nextPageToken expires): then the pass lists from the top once.
        # Issues counted before are not counted again (``pos.seen``) and cost no request.
        resume_from = (pos.cursor, list(pos.done_on_page)) if pos.cursor is not None else None
        restarted = False
        while True:
            self._check_budget(raw)
            try:
                page = tracker.list_issues(repo, state=self.options.issue_state,
                                           since=self.options.since, cursor=pos.cursor)
            except RateLimited as exc:
                raise _Stop(STOP_RATE_LIMITED, exc.reset_at) from exc
            except Exception as exc:
                if resume_from is not None and not restarted:
                    log.warning("the checkpoint's page cursor failed; listing from the top",
                                extra={"scope": f"{provider}:{repo}",
                                       "error": type(exc).__name__})
                    restarted = True
                    pos.cursor, pos.done_on_page = None, []
                    continue
                if resume_from is not None:  # the top fails too: keep the saved place
                    pos.cursor, pos.done_on_page = resume_from[0], resume_from[1]
                raise _ScopeFailed(f"listing {provider}:{repo} failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            resume_from = None
            summary.pages += 1
            if self.on_page is not None:
                self.on_page(f"{provider}:{repo}", page)
            if page.not_modified:
                summary.pages_not_modified += 1
                # A 304 that comes with the cached issues is as good as a fresh page.
                if not page.issues and not (page.etag and page.etag in vouched["etags"]):
                    summary.pages_unverified += 1
                    log.warning("page not modified since a run that did not finish it; "
                                "its issues were not re-read", extra={"scope": repo})
            skip = set(pos.done_on_page)
            page_clean = not page.not_modified and not skip
            applied_before = self._applied
            for snap in page.issues:
                key = str(snap.ref)
                if key in skip or (pos.passes > 0 and key in self._failed):
                    continue
                if key in self._written_this_pass:
                    pos.shifted = True  # our write moved it here: unseen issues moved too
                if self.options.limit is not None and self._examined >= self.options.limit:
                    raise _Stop(STOP_LIMIT)
                row = self._examine(raw, tracker, repo, snap, pos, summary, result)
                pos.done_on_page.append(key)
                if row.outcome == ERROR:
                    self._failed.add(key)
                    page_clean = False
                    errors_in_a_row += 1
                    if errors_in_a_row >= MAX_CONSECUTIVE_ERRORS:
                        raise _ScopeFailed(f"{errors_in_a_row} issues in a row failed in "
                                           f"{provider}:{repo}; last: {row.reason}")
                else:
                    errors_in_a_row = 0
            fully_seen = (page_clean and self.options.apply
                          and self._applied == applied_before)
            if page.etag and (fully_seen or (page.not_modified
                                             and page.etag in vouched["etags"])):
                vouched["next"].append(page.etag)
            pos.cursor, pos.done_on_page = page.next_cursor, []
            if page.next_cursor is None:
                return
            self._save_position(name, pos, summary)

    # ------------------------------------------------------------------ ETag vouching

    def _load_vouched(self, provider: str, repo: str) -> dict[str, Any]:
        """Pages (by ETag) a finished apply pass saw with these rules and no work left on."""
        data = self.store.load_checkpoint(_vouch_name(provider, repo)) or {}
        etags = set(data.get("etags") or []) \
            if data.get("rules_version") == self.rules_version else set()
        return {"etags": etags, "next": []}

    def _save_vouched(self, provider: str, repo: str, vouched: dict[str, Any]) -> None:
        if not self.options.apply:
            return
        self.store.save_checkpoint(_vouch_name(provider, repo), {
            "rules_version": self.rules_version, "etags": sorted(set(vouched["next"]))})

    # ------------------------------------------------------------------ one issue

    def _check_budget(self, raw: Tracker) -> None:
        reserve = self.options.reserve
        remaining_fn = getattr(raw, "rate_limit_remaining", None)
        if reserve is None or remaining_fn is None:
            return
        remaining = remaining_fn()
        if remaining is not None and remaining <= reserve:
            reset_fn = getattr(raw, "rate_limit_reset", None)
            reset = reset_fn() if reset_fn is not None else None
            if reset is not None and float(reset) <= self.clock().timestamp():
                # The count is from the last answer, before the window reset (a tracker kept
                # between periodic sweeps): the next request brings the current one.
                return
            log.info("rate-limit reserve reached", extra={"remaining": remaining,
                                                          "reserve": reserve})
            raise _Stop(STOP_BUDGET, float(reset) if reset is not None else None)

    def _unchanged_since_last_decision(self, state: IssueState | None,
                                       snap: IssueSnapshot) -> bool:
        if state is None or state.content_hash is None or state.decision_hash is None:
            return False
        if refusal_retry_due(state, self.store.now()):
            return False  # a refused hand-off step is due another try (hourly)
        updated = snap.updated_at.isoformat() if snap.updated_at else None
        return (state.updated_at == updated and state.rules_version == self.rules_version
                and state.content_hash == content_hash(snap))

    def _row(self, repo: str, snap: IssueSnapshot, outcome: str, reason: str = "",
             result: TriageResult | None = None, applied: bool = False,
             protected: bool = False) -> IssueRow:
        """``protected``: this run made the issue confidential, which the listed snapshot
        cannot know yet; its title is redacted like any other confidential issue's."""
        settings = self.settings
        confidential = snap.confidential or protected
        decision = result.decision if result is not None else None
        if decision is not None:
            categories = tuple(t.category for t in decision.threats)
            severity = decision.severity.label if decision.severity else ""
            routes = tuple(decision.routes)
        else:  # not decided in this run: what the bot's labels on the issue say
            categories = _bot_labels(snap.labels, settings.label_threat)
            severities = _bot_labels(snap.labels, settings.label_severity)
            severity = severities[0] if severities else ""
            routes = _bot_labels(snap.labels, settings.label_route)
        plan = result.plan if result is not None else None
        actions = tuple(plan.describe()) if plan is not None and not plan.is_noop else ()
        if (applied and plan is not None and plan.protect and result is not None
                and result.handoff is not None and result.handoff.refused):
            # The report says what happened, not what was planned: a refused step wrote nothing.
            refused = f"protect refused ({result.handoff.refused}): {plan.protect_step} by hand"
            actions = tuple(refused if a.startswith("protect: ") else a for a in actions)
        # The comment quotes nothing from the issue, so it is safe to show even when the title
        # is withheld.
        comment = plan.comment_body if actions and plan is not None else ""
        title = snap.title
        if confidential:
            title = REDACTED_TITLE
        elif plan is not None and plan.protect_hides and not applied:
            title = WITHHELD_TITLE
        return IssueRow(
            scope=f"{snap.ref.provider}:{repo}", key=str(snap.ref), url=snap.url,
            title=title,
            state=snap.state, outcome=outcome, reason=reason, categories=categories,
            severity=severity, routes=routes, actions=actions, applied=applied,
            confidential=confidential, number=snap.ref.number, comment=comment)

    def _emit(self, row: IssueRow, pos: _Position, summary: ScopeSummary,
              result: SweepResult) -> IssueRow:
        # An issue listed again (a re-pass, or moved by our own write) is reported again only
        # for new work: what merely re-confirms it was counted already.
        if row.outcome in (UNCHANGED, SKIPPED) and row.number in pos.seen:
            return row
        pos.seen.add(row.number)
        self._examined += 1
        summary.counts[row.outcome] += 1
        result.add(row)
        if self.on_row is not None:
            self.on_row(row)
        return row

    def _examine(self, raw: Tracker, tracker: Tracker, repo: str, snap: IssueSnapshot,
                 pos: _Position, summary: ScopeSummary, result: SweepResult) -> IssueRow:
        ref: IssueRef = snap.ref
        state = self.store.get_issue_state(str(ref))
        if self._unchanged_since_last_decision(state, snap):
            return self._emit(self._row(repo, snap, UNCHANGED, "cached"), pos, summary, result)
        self._check_budget(raw)
        at_cap = (self.options.apply and self.options.max_changes is not None
                  and self._applied >= self.options.max_changes)
        try:
            hint = (None if state_knows_comment(state)
                    else self._reads.hint(raw, repo, snap, state is not None))
            if at_cap:
                # Planned, not applied; but a no-op is recorded like any other, so the issue
                # costs nothing in the next sweep (a dry plan would leave it unknown).
                planned = self.triage.run(tracker, ref, snapshot=snap, delivery_id=self._run_id,
                                          trust_state=True, hint=hint, hold_changes=True)
                if planned.outcome == "held":
                    self._emit(self._row(repo, snap, PENDING, STOP_MAX_CHANGES, planned),
                               pos, summary, result)
                    raise _Stop(STOP_MAX_CHANGES)
                return self._emit(self._from_triage(repo, snap, planned), pos, summary, result)
            outcome = self.triage.run(tracker, ref, snapshot=snap, delivery_id=self._run_id,
                                      trust_state=True, hint=hint)
        except RateLimited as exc:
            raise _Stop(STOP_RATE_LIMITED, exc.reset_at) from exc
        except _Stop:
            raise
        except Exception as exc:
            log.warning("sweep: issue failed", extra={"issue": str(ref),
                                                      "error": type(exc).__name__})
            return self._emit(self._row(repo, snap, ERROR, f"{type(exc).__name__}: {exc}"[:200]),
                              pos, summary, result)
        row = self._emit(self._from_triage(repo, snap, outcome), pos, summary, result)
        if row.applied:
            self._applied += 1
            pos.pass_writes += 1
            self._written_this_pass.add(row.key)
        return row

    def _from_triage(self, repo: str, snap: IssueSnapshot, res: TriageResult) -> IssueRow:
        if res.outcome == "opted-out":
            return self._row(repo, snap, SKIPPED, "opted-out")
        if res.outcome == "skipped-pull-request":
            return self._row(repo, snap, SKIPPED, "pull-request")
        if res.outcome == "gone":
            return self._row(repo, snap, SKIPPED, "gone")
        if res.outcome == "triaged":
            # Only a step that took the issue out of public view (not a lock or an advisory)
            # redacts its title.
            protected = bool(res.plan is not None and res.plan.protect_hides
                             and res.handoff is not None and res.handoff.protected)
            return self._row(repo, snap, CHANGED, "", res, applied=True, protected=protected)
        if res.outcome == "dry-run" and res.plan is not None and not res.plan.is_noop:
            return self._row(repo, snap, CHANGED, "", res)
        return self._row(repo, snap, UNCHANGED, "checked", res)
