"""GitHub adapter: the :class:`~bot.providers.base.Tracker` protocol over PyGithub.

**One retry layer.** PyGithub retries on its own by default (``GithubRetry``: 5xx and
rate-limited 403s, sleeping inside the HTTP call) and throttles every request
(``seconds_between_requests=0.25``, ``seconds_between_writes=1.0``). Both would sleep where we
cannot see, count or cap the wait, and would multiply with our own retries. Every client here is
therefore built with ``retry=None`` (requests' adapter then makes exactly one try) and both
throttles at 0; :mod:`bot.providers.retry` decides every wait and :class:`WritePacer` spaces the
writes. A ``Github`` handed to :class:`GitHubTracker` with other settings is rebuilt this way.

**One request per attempt.** The adapter calls PyGithub's ``Requester.requestJson`` itself, so an
attempt is exactly one HTTP request whose status and headers we see: metrics, the rate-limit
budget (``rate_limit_remaining``), ``Link`` pagination and ``ETag`` conditional requests.

**Untrusted text.** Issue and comment bodies are never logged; PyGithub's own DEBUG log would
print response bodies, so its logger is raised to INFO unless the application set a level.
Tokens are only ever in the ``Authorization`` header, which PyGithub masks.

**Security hand-off** (:class:`GitHubHandOffSettings`, ``BUGBAR_GITHUB_PROTECT`` /
``BUGBAR_GITHUB_ESCALATE`` / ``BUGBAR_GITHUB_ASSIGNEES``). GitHub issues cannot be made private;
for critical or ssirp issues the adapter can lock the conversation, open one draft repository
security advisory, or transfer the issue to a private repository (GraphQL ``transferIssue``),
and assign people. The calls are the ones PyGithub's ``Issue.lock``,
``Repository.create_repository_advisory`` / ``get_repository_advisories`` and
``Requester.graphql_query`` make, sent through the same single-attempt requester as every
other call here (so they share the one retry layer, metrics and pacing). A 403/404 is never
retried: it becomes :class:`~bot.providers.base.HandOffRefused`, one log line, and the comment
tells a maintainer what to do by hand.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests
from github import Auth, Github, GithubException
from github.Requester import Requester

from bot.decide.handoff import DEFAULT_ESCALATE_ROUTES, HandOff
from bot.decide.render import MARKER_PREFIX
from bot.events.model import IssueRef
from bot.providers.base import (
    Access,
    BotCommentIndex,
    Comment,
    HandOffRefused,
    HandOffRequest,
    IssueGone,
    IssueSnapshot,
    ListPage,
)
from bot.providers.retry import (
    ApiMetrics,
    Failure,
    RetryPolicy,
    SettleGuard,
    WritePacer,
    call_with_retry,
)

__all__ = [
    "DEFAULT_API",
    "REACTIONS",
    "EtagCache",
    "GitHubApp",
    "GitHubHandOffSettings",
    "GitHubTracker",
    "classify_failure",
    "make_github",
]

log = logging.getLogger("bugbar.providers.github")

PROVIDER = "github"
DEFAULT_API = "https://api.github.com"
DEFAULT_TIMEOUT = 15
PER_PAGE = 100
USER_AGENT = "bugbar (+PyGithub)"
SECONDARY_LIMIT_FLOOR = 60.0
"""Secondary limit without ``Retry-After``: "wait for at least one minute" (GH-SECONDARY)."""
REACTIONS = frozenset({"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"})

ROLE_ACCESS = {
    "none": Access.NONE,
    "read": Access.READ,
    "triage": Access.TRIAGE,
    "write": Access.WRITE,
    "maintain": Access.MAINTAIN,
    "admin": Access.ADMIN,
}

_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_SCOPE_RE = re.compile(rf"^(?P<owner>{_OWNER})/(?P<repo>[A-Za-z0-9._-]{{1,100}})$")
_OWNER_RE = re.compile(rf"^{_OWNER}$")
_LOGIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?$")
_MARKER_RE = re.compile(re.escape(MARKER_PREFIX) + r".*?-->", re.DOTALL)
_LINK_RE = re.compile(r'<(?P<url>[^>]+)>\s*;\s*rel="?(?P<rel>[^";]+)"?')


ADVISORY_SEVERITY = {"critical": "critical", "important": "high", "moderate": "medium",
                     "low": "low"}
"""SDL bug bar level -> the advisory's ``severity`` (critical, high, medium, low)."""

_TRANSFER_QUERY = """
query($owner: String!, $name: String!, $number: Int!, $towner: String!, $tname: String!) {
  repository(owner: $owner, name: $name) {
    issue(number: $number) { id number repository { nameWithOwner } }
  }
  target: repository(owner: $towner, name: $tname) { id nameWithOwner }
}"""
_TRANSFER_MUTATION = """
mutation($issue: ID!, $repo: ID!) {
  transferIssue(input: {issueId: $issue, repositoryId: $repo, createLabelsIfMissing: true}) {
    issue { number url repository { nameWithOwner } }
  }
}"""


@dataclass(frozen=True)
class GitHubHandOffSettings:
    """What the GitHub adapter does for critical/ssirp issues (all off by default)."""

    protect: str = "none"
    """``none`` | ``lock`` | ``advisory`` | ``transfer:OWNER/PRIVATE-REPO``."""
    mentions: tuple[str, ...] = ()
    """``@user`` / ``@org/team`` mentioned in the comment for escalated routes."""
    assignees: tuple[str, ...] = ()
    """Logins assigned to escalated issues."""
    escalate_routes: frozenset[str] = DEFAULT_ESCALATE_ROUTES
    lock_reason: str = ""
    """GitHub's lock reasons (off-topic, too heated, resolved, spam) all misdescribe a
    security report, so by default none is sent."""

    def __post_init__(self) -> None:
        mode = self.protect
        if mode.startswith("transfer:"):
            _split_scope(mode.split(":", 1)[1])
        elif mode not in ("none", "lock", "advisory"):
            raise ValueError("protect must be none, lock, advisory or transfer:OWNER/REPO")

    @property
    def transfer_target(self) -> str:
        """``OWNER/REPO`` of a transfer, else empty."""
        return self.protect.split(":", 1)[1] if self.protect.startswith("transfer:") else ""


class EtagCache(Protocol):
    """Where conditional-request validators live (``bot.store.Store`` satisfies it)."""

    def get_etag(self, url: str) -> tuple[str, str] | None:
        """``(etag, payload)`` cached for ``url``, or None."""
        ...

    def put_etag(self, url: str, etag: str, payload: str) -> None:
        """Remember the ETag (and a small payload) returned for ``url``."""
        ...


# ----------------------------------------------------------------------------- failures


def _header(headers: dict[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _retry_after(value: str | None) -> Failure | None:
    """``Retry-After`` is delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None  # octokit: it "can sometimes be blank" on a secondary limit
    value = value.strip()
    if value.isdigit():
        return Failure.retry_after(float(value), reason="retry-after")
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return Failure.until(when.timestamp(), reason="retry-after")


def classify_failure(exc: BaseException) -> Failure:
    """GitHub's rules for one failed request, as a :class:`Failure` for the retry layer.

    Rate limits (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api
    #exceeding-the-rate-limit): a 403/429 with ``retry-after`` waits that long; else with
    ``x-ratelimit-remaining: 0`` waits until ``x-ratelimit-reset`` (Unix seconds); else a
    secondary limit waits at least a minute and backs off. 5xx, timeouts and connection errors
    back off; every other 4xx (and 401: token refresh is the adapter's job) gives up.
    """
    if isinstance(exc, GithubException):
        status = exc.status
        headers = exc.headers
        data = exc.data if isinstance(exc.data, dict) else {}
        message = str(data.get("message") or "")
        if status in (403, 429):
            after = _retry_after(_header(headers, "retry-after"))
            if after is not None:
                return Failure(after.action, f"{status} rate limited, retry-after",
                               seconds=after.seconds, reset_at=after.reset_at,
                               rate_limited=True)
            remaining = _header(headers, "x-ratelimit-remaining")
            reset = _header(headers, "x-ratelimit-reset")
            if remaining is not None and remaining.strip() == "0" and reset:
                try:
                    return Failure.until(float(reset), reason=f"{status} primary rate limit")
                except ValueError:
                    pass
            secondary = Requester.isRateLimitError(message) or "secondary-rate-limits" in str(
                data.get("documentation_url") or "")
            if status == 429 or secondary:
                return Failure.backoff(reason=f"{status} secondary rate limit",
                                       floor=SECONDARY_LIMIT_FLOOR, rate_limited=True)
            return Failure.give_up(f"{status} forbidden")
        if status >= 500:
            after = _retry_after(_header(headers, "retry-after"))
            if after is not None:
                return Failure(after.action, f"{status} server error, retry-after",
                               seconds=after.seconds, reset_at=after.reset_at)
            return Failure.backoff(reason=f"{status} server error")
        return Failure.give_up(str(status))
    if isinstance(exc, requests.exceptions.SSLError):
        return Failure.give_up("tls error")
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError):
        return Failure.backoff(reason="timeout")
    if isinstance(exc, _CONNECTION_ERRORS):
        return Failure.backoff(reason="connection error")
    return Failure.give_up(type(exc).__name__)


_CONNECTION_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                      ConnectionError)


# ----------------------------------------------------------------------------- HTTP


def _quiet_pygithub_debug() -> None:
    """PyGithub logs full response bodies (issue text) at DEBUG; keep that out of our logs."""
    logger = logging.getLogger("github")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def make_github(auth: Auth.Auth, base_url: str = DEFAULT_API, *,
                timeout: int = DEFAULT_TIMEOUT) -> Github:
    """A PyGithub client with its retries and throttling off (see the module docstring).

    ``base_url`` is ``BUGBAR_GITHUB_API_URL``: the public API, or ``https://HOST/api/v3`` for
    GitHub Enterprise Server.
    """
    _quiet_pygithub_debug()
    return Github(auth=auth, base_url=base_url.rstrip("/"), timeout=timeout,
                  user_agent=USER_AGENT, per_page=PER_PAGE, retry=None,
                  seconds_between_requests=0, seconds_between_writes=0)


def _single_layer(gh: Github) -> Github:
    kwargs = gh.requester.kwargs
    if (kwargs["retry"] is None and not kwargs["seconds_between_requests"]
            and not kwargs["seconds_between_writes"]):
        return gh
    kwargs.update(retry=None, seconds_between_requests=0, seconds_between_writes=0)
    return Github(**kwargs)


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, Any]
    data: Any


def _next_link(link: str | None) -> str | None:
    """``rel="next"`` of a ``Link`` header (https://docs.github.com/en/rest/using-the-rest-api/
    using-pagination-in-the-rest-api): follow it as given, GitHub rewrites paths."""
    for m in _LINK_RE.finditer(link or ""):
        if m.group("rel").strip() == "next":
            return m.group("url")
    return None


class _Http:
    """One PyGithub requester plus metrics, budget tracking, write pacing and retries."""

    def __init__(
        self,
        gh: Github,
        *,
        policy: RetryPolicy,
        pacer: WritePacer,
        metrics: ApiMetrics | None,
        report_budget: bool = True,
        paced: bool = True,
    ) -> None:
        self.requester = gh.requester
        self.base_url = self.requester.base_url.rstrip("/")
        self.policy = policy
        self.pacer = pacer
        self.metrics = metrics
        self.report_budget = report_budget
        self.paced = paced
        self.remaining: int | None = None
        self.reset_at: float | None = None

    def _observe(self, method: str, status: int | str, headers: dict[str, Any]) -> None:
        if self.metrics is not None:
            self.metrics.api_call(PROVIDER, method, status)
        # https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api
        # #checking-the-status-of-your-rate-limit
        remaining = _header(headers, "x-ratelimit-remaining")
        reset = _header(headers, "x-ratelimit-reset")
        try:
            if remaining is not None:
                self.remaining = int(float(remaining))
                if self.metrics is not None and self.report_budget:
                    self.metrics.rate_limit(PROVIDER, self.remaining)
            if reset is not None:
                self.reset_at = float(reset)
        except ValueError:
            pass

    def send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> _Reply:
        """Exactly one request (two when an expired installation token is refreshed)."""
        auth = self.requester.auth
        for refreshed in (False, True):
            if method != "GET" and self.paced:
                self.pacer.wait()
            try:
                status, resp_headers, raw = self.requester.requestJson(
                    method, url, params, dict(headers or {}), body)
            except requests.exceptions.Timeout:
                self._observe(method, "timeout", {})
                raise
            except (requests.exceptions.RequestException, OSError):
                self._observe(method, "error", {})
                raise
            self._observe(method, status, resp_headers)
            log.debug("github request", extra={"method": method, "path": _path_of(url),
                                               "status": status})
            if status == 401 and not refreshed and isinstance(auth, _InstallationAuth):
                # Installation tokens live an hour and can lapse mid-run: fetch a new one once.
                # https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app-installation
                auth.invalidate()
                continue
            return self._decode(status, resp_headers, raw)
        raise AssertionError("unreachable")

    @staticmethod
    def _decode(status: int, headers: dict[str, Any], raw: str) -> _Reply:
        data: Any = None
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                data = {"message": "non-JSON response"}
                if status < 400:
                    raise GithubException(status, data, headers, "non-JSON response") from None
        if status >= 400:
            raise Requester.createException(
                status, headers, data if isinstance(data, dict) else {})
        return _Reply(status, headers, data)

    def call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> _Reply:
        """One request, retried by the shared policy."""
        return call_with_retry(
            lambda: self.send(method, url, params=params, body=body, headers=headers),
            self.policy, classify_failure, what=what)

    def pages(self, url: str, params: dict[str, Any] | None, *, what: str,
              retry: bool = True, key: str | None = None) -> Iterator[Any]:
        """Every item of a paginated listing, following ``Link: rel="next"``.

        ``key`` names the list inside an object reply (``/installation/repositories``).
        """
        next_url: str | None = url
        while next_url is not None:
            if retry:
                reply = self.call("GET", next_url, params=params, what=what)
            else:
                reply = self.send("GET", next_url, params=params)
            items = reply.data.get(key, []) if key and isinstance(reply.data, dict) else reply.data
            yield from items or []
            next_url, params = _next_link(_header(reply.headers, "link")), None
            if next_url is not None:
                self.check_same_api(next_url)

    def check_same_api(self, url: str) -> None:
        """Only ever follow URLs on our own API (tokens must not travel elsewhere)."""
        if not url.startswith(self.base_url + "/"):
            raise ValueError("URL is not on the configured GitHub API")

    def absolute(self, url: str, params: dict[str, Any] | None) -> str:
        full = url if url.startswith(("http://", "https://")) else self.base_url + url
        return Requester.add_parameters_to_url(full, params or {})


def _last_page(link: str | None) -> int | None:
    """The ``page`` number of ``rel="last"`` (how many pages a listing has), if given."""
    for m in _LINK_RE.finditer(link or ""):
        if m.group("rel").strip() == "last":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(m.group("url")).query)
            page = (query.get("page") or [""])[0]
            return int(page) if page.isdigit() else None
    return None


def _issue_number(issue_url: Any) -> int | None:
    tail = str(issue_url or "").rstrip("/").rpartition("/")[2]
    return int(tail) if tail.isdigit() else None


def _path_of(url: str) -> str:
    return urllib.parse.urlsplit(url).path


# ----------------------------------------------------------------------------- conversions


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _login(user: Any) -> str:
    return str(user.get("login") or "") if isinstance(user, dict) else ""


def _snapshot(scope: str, data: dict[str, Any]) -> IssueSnapshot:
    return IssueSnapshot(
        ref=IssueRef(PROVIDER, scope, int(data["number"])),
        title=str(data.get("title") or ""),
        body=str(data.get("body") or ""),
        labels=tuple(str(lb.get("name", "")) if isinstance(lb, dict) else str(lb)
                     for lb in data.get("labels") or ()),
        state=str(data.get("state") or "open"),
        author=_login(data.get("user")),
        updated_at=_parse_time(data.get("updated_at")),
        is_pull_request="pull_request" in data,
        url=str(data.get("html_url") or ""),
        comment_count=data["comments"] if isinstance(data.get("comments"), int) else None,
        created_at=_parse_time(data.get("created_at")),
    )


def _split_scope(scope: str) -> tuple[str, str]:
    m = _SCOPE_RE.match(scope)
    if m is None or m.group("repo") in (".", ".."):
        raise ValueError(f"not a GitHub repository: {scope!r}")
    return m.group("owner"), m.group("repo")


def _repo_path(scope: str) -> str:
    owner, repo = _split_scope(scope)
    return f"/repos/{owner}/{repo}"


def _digits(value: str, what: str) -> str:
    if not str(value).isdigit():
        raise ValueError(f"not a GitHub {what} id: {value!r}")
    return str(value)


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _same_body(a: str, b: str) -> bool:
    return a.replace("\r\n", "\n").strip() == b.replace("\r\n", "\n").strip()


# ----------------------------------------------------------------------------- tracker


class GitHubTracker:
    """The Tracker protocol for one GitHub credential (a token, or one App installation)."""

    provider = PROVIDER

    def __init__(
        self,
        gh: Github,
        *,
        policy: RetryPolicy | None = None,
        pacer: WritePacer | None = None,
        metrics: ApiMetrics | None = None,
        etag_cache: EtagCache | None = None,
        identity: str | Callable[[], str] | None = None,
        installation_id: int | None = None,
        handoff: GitHubHandOffSettings | None = None,
    ) -> None:
        """Wrap an authenticated ``Github`` (rebuilt without PyGithub's retry/throttle).

        ``identity`` is the bot's login, or a function giving it (GitHub Apps); by default it is
        looked up with ``GET /user`` on first use. ``installation_id`` marks an App
        installation credential (``expand_scope`` then lists the installation's repositories).
        """
        _quiet_pygithub_debug()
        self._http = _Http(_single_layer(gh), policy=policy or RetryPolicy(),
                           pacer=pacer or WritePacer(), metrics=metrics)
        self._etags = etag_cache
        self._private: dict[str, bool] = {}
        self._identity = identity
        self._identity_lock = threading.Lock()
        self.installation_id = installation_id
        self.handoff_settings = handoff or GitHubHandOffSettings()
        self._repo_urls: dict[str, str] = {}
        self._private_reporting: dict[str, bool] = {}

    @classmethod
    def from_token(
        cls,
        token: str,
        base_url: str = DEFAULT_API,
        *,
        policy: RetryPolicy | None = None,
        pacer: WritePacer | None = None,
        metrics: ApiMetrics | None = None,
        etag_cache: EtagCache | None = None,
        timeout: int = DEFAULT_TIMEOUT,
        identity: str | None = None,
        handoff: GitHubHandOffSettings | None = None,
    ) -> GitHubTracker:
        """A tracker acting as the owner of a token (``BUGBAR_GITHUB_TOKEN``).

        Pass ``identity`` for tokens that cannot read ``GET /user`` (an Actions
        ``GITHUB_TOKEN`` acts as ``github-actions[bot]``).
        """
        return cls(make_github(Auth.Token(token), base_url, timeout=timeout), policy=policy,
                   pacer=pacer, metrics=metrics, etag_cache=etag_cache, identity=identity,
                   handoff=handoff)

    # -- budget ------------------------------------------------------------------------

    def rate_limit_remaining(self) -> int | None:
        """``x-ratelimit-remaining`` of the last response, None before the first request."""
        return self._http.remaining

    def rate_limit_reset(self) -> float | None:
        """``x-ratelimit-reset`` (Unix seconds) of the last response, if any."""
        return self._http.reset_at

    # -- Tracker protocol --------------------------------------------------------------

    def bot_identity(self) -> str:
        """The bot's login: the token's user, or ``<app-slug>[bot]`` for an App (cached)."""
        with self._identity_lock:
            if callable(self._identity):
                self._identity = self._identity()
            if self._identity is None:
                reply = self._http.call("GET", "/user", what="bot identity")
                self._identity = _login(reply.data)
            return self._identity

    def get_issue(self, ref: IssueRef) -> IssueSnapshot:
        """``GET /repos/{o}/{r}/issues/{n}`` (pull requests come back flagged).

        GitHub answers 410 Gone for an issue deleted from a repository the token can read (a
        404 means no access, or no such issue: an error as before; a transferred issue's 301
        is followed by the client). https://docs.github.com/en/rest/issues/issues#get-an-issue
        """
        try:
            reply = self._http.call("GET", f"{_repo_path(ref.scope)}/issues/{int(ref.number)}",
                                    what=f"get issue {ref}")
        except GithubException as exc:
            if exc.status == 410:
                raise IssueGone(ref, "410 Gone: the issue was deleted") from exc
            raise
        return _snapshot(ref.scope, reply.data)

    def add_labels(self, ref: IssueRef, labels: list[str]) -> None:
        """One ``POST .../labels``; GitHub creates labels the repository does not have yet."""
        if not labels:
            return
        self._http.call("POST", f"{_repo_path(ref.scope)}/issues/{int(ref.number)}/labels",
                        body={"labels": list(labels)}, what=f"add labels {ref}")

    def remove_label(self, ref: IssueRef, label: str) -> None:
        """``DELETE .../labels/{name}``; GitHub's 404 "Label does not exist" means done."""
        path = (f"{_repo_path(ref.scope)}/issues/{int(ref.number)}/labels/"
                f"{urllib.parse.quote(label, safe='')}")
        try:
            self._http.call("DELETE", path, what=f"remove label {ref}")
        except GithubException as exc:
            # PyGithub raises a plain GithubException(404) here, not UnknownObjectException.
            message = exc.data.get("message") if isinstance(exc.data, dict) else None
            if exc.status == 404 and message == "Label does not exist":
                return
            raise

    def list_comments(self, ref: IssueRef) -> Iterator[Comment]:
        """Every comment, oldest first, 100 per request."""
        return self._comments(ref, retry=True)

    def _comments(self, ref: IssueRef, *, retry: bool) -> Iterator[Comment]:
        url = f"{_repo_path(ref.scope)}/issues/{int(ref.number)}/comments"
        identity = self.bot_identity().casefold()
        for data in self._http.pages(url, {"per_page": PER_PAGE}, retry=retry,
                                     what=f"list comments {ref}"):
            user = data.get("user") or {}
            author = _login(user)
            yield Comment(
                id=str(data["id"]),
                body=str(data.get("body") or ""),
                author=author,
                author_is_bot=user.get("type") == "Bot" or author.casefold() == identity,
            )

    def find_bot_comment(self, ref: IssueRef) -> Comment | None:
        """The first comment *authored by the bot* that carries the marker.

        Anyone can paste a marker into their own comment, so the author is checked first.
        """
        identity = self.bot_identity().casefold()
        for comment in self.list_comments(ref):
            if comment.author.casefold() == identity and MARKER_PREFIX in comment.body:
                return comment
        return None

    def create_comment(self, ref: IssueRef, body: str) -> Comment:
        """Post a comment; a retry never posts it twice.

        A timeout, dropped connection or 5xx can come after GitHub stored the comment, so
        before posting again we look for the bot's comment carrying the same marker (or, for
        bodies without one, the same text) and return it if it is there.
        """
        url = f"{_repo_path(ref.scope)}/issues/{int(ref.number)}/comments"
        marker_match = _MARKER_RE.search(body)
        marker = marker_match.group(0) if marker_match else None
        identity = self.bot_identity()
        guard = SettleGuard(self._http.policy)
        attempts = 0

        def attempt() -> Comment:
            nonlocal attempts
            attempts += 1
            # An ambiguous POST may still be in flight on GitHub's side after our client gave
            # up: the guard lets it land (settle wait) before we look, or we could post twice.
            if attempts > 1 and guard.before_retry():
                found = self._posted(ref, body, marker)
                if found is not None:
                    log.info("comment was created by an earlier attempt",
                             extra={"issue": str(ref), "comment_id": found.id})
                    return found
            try:
                reply = self._http.send("POST", url, body={"body": body})
            except Exception as exc:
                guard.failed(exc)
                raise
            return Comment(id=str(reply.data["id"]), body=str(reply.data.get("body") or body),
                           author=_login(reply.data.get("user")) or identity, author_is_bot=True)

        return call_with_retry(attempt, self._http.policy, classify_failure,
                               what=f"create comment {ref}")

    def _posted(self, ref: IssueRef, body: str, marker: str | None) -> Comment | None:
        identity = self.bot_identity().casefold()
        found = None
        for comment in self._comments(ref, retry=False):
            if comment.author.casefold() != identity:
                continue
            if (marker is not None and marker in comment.body) or _same_body(comment.body, body):
                found = comment
        return found

    def edit_comment(self, ref: IssueRef, comment_id: str, body: str) -> None:
        """``PATCH /repos/{o}/{r}/issues/comments/{id}`` (idempotent, so plainly retried)."""
        self._http.call(
            "PATCH",
            f"{_repo_path(ref.scope)}/issues/comments/{_digits(comment_id, 'comment')}",
            body={"body": body}, what=f"edit comment {ref}")

    def react(self, ref: IssueRef, comment_id: str, reaction: str) -> None:
        """Add a reaction (``+1``, ``eyes`` …) to a comment; GitHub answers 200 if it exists."""
        if reaction not in REACTIONS:
            raise ValueError(f"not a GitHub reaction: {reaction!r}")
        self._http.call(
            "POST",
            f"{_repo_path(ref.scope)}/issues/comments/{_digits(comment_id, 'comment')}/reactions",
            body={"content": reaction}, what=f"react {ref}")

    def permission(self, ref: IssueRef, user: str) -> Access:
        """The user's role on the repository; raises on any failure (callers fail closed).

        ``role_name`` (admin/maintain/write/triage/read/none) is finer than the legacy
        ``permission`` field PyGithub's ``get_collaborator_permission`` returns, which folds
        maintain into write and triage into read. A custom role falls back to ``permission``.
        https://docs.github.com/en/rest/collaborators/collaborators#get-repository-permissions-for-a-user
        """
        if not _LOGIN_RE.match(user):
            raise ValueError(f"not a GitHub login: {user!r}")
        reply = self._http.call(
            "GET",
            f"{_repo_path(ref.scope)}/collaborators/{urllib.parse.quote(user, safe='')}"
            "/permission",
            what=f"permission {ref}")
        data = reply.data if isinstance(reply.data, dict) else {}
        for key in ("role_name", "permission"):
            access = ROLE_ACCESS.get(str(data.get(key) or "").lower())
            if access is not None:
                return access
        raise ValueError(f"unrecognised permission answer for {ref}")

    def list_issues(
        self, scope: str, *, state: str, since: datetime | None, cursor: str | None
    ) -> ListPage:
        """One page of up to 100 issues and PRs (flagged), least recently updated first.

        ``cursor`` is the ``rel="next"`` URL of the previous page. With an ETag cache the page
        is fetched conditionally; a 304 costs no rate-limit budget and comes back as
        ``not_modified`` with the cursor remembered from the last full answer.
        """
        if state not in ("open", "closed", "all"):
            raise ValueError(f"state must be open, closed or all, not {state!r}")
        params: dict[str, Any] | None
        if cursor:
            self._http.check_same_api(cursor)
            url, params = cursor, None
        else:
            url = f"{_repo_path(scope)}/issues"
            # Created order is stable: the bot's own writes bump updated_at, and in updated
            # order they would move issues onto pages the sweep has already read.
            params = {"state": state, "per_page": PER_PAGE, "sort": "created",
                      "direction": "asc"}
            if since is not None:
                params["since"] = _iso(since)
        key = self._http.absolute(url, params)
        headers: dict[str, str] = {}
        cached = self._etags.get_etag(key) if self._etags is not None else None
        if cached is not None:
            # https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate
            headers["If-None-Match"] = cached[0]
        reply = self._http.call("GET", url, params=params, headers=headers,
                                what=f"list issues {scope}")
        private = self._is_private(scope)
        if reply.status == 304 and cached is not None:
            # Not modified: the cached copy of the page is current (that is what 304 means),
            # so the caller gets the issues without spending rate-limit budget.
            try:
                remembered = json.loads(cached[1])
            except ValueError:
                remembered = {}
            if not isinstance(remembered, dict):
                remembered = {}
            items = remembered.get("issues")
            issues = ([replace(_snapshot(scope, item), confidential=private) for item in items]
                      if isinstance(items, list) else [])
            return ListPage(issues, remembered.get("next"), not_modified=True, etag=cached[0])
        next_url = _next_link(_header(reply.headers, "link"))
        raw_items = list(reply.data or [])
        issues = [replace(_snapshot(scope, item), confidential=private) for item in raw_items]
        etag = _header(reply.headers, "etag")
        if self._etags is not None and etag:
            self._etags.put_etag(key, etag, json.dumps({"next": next_url,
                                                        "issues": raw_items}))
        return ListPage(issues, next_url, etag=etag)

    def bot_comment_index(self, scope: str, *, since: datetime | None,
                          max_pages: int | None = None) -> BotCommentIndex:
        """The bot's marked comments from the repository-wide comment stream.

        ``GET /repos/{o}/{r}/issues/comments?since=…&per_page=100``: every issue comment of the
        repository, in ascending id order (the default), ``since`` filtering on the comment's
        *updated* time; 100 per request instead of one request per issue.
        https://docs.github.com/en/rest/issues/comments#list-issue-comments-for-a-repository
        With ``max_pages`` the read stops after that many pages and reports how many the
        whole read takes (``Link: rel="last"``), so the caller can choose the cheaper way.
        """
        identity = self.bot_identity().casefold()
        first: dict[str, Any] = {"per_page": PER_PAGE}
        if since is not None:
            first["since"] = _iso(since)
        params: dict[str, Any] | None = first
        url: str | None = f"{_repo_path(scope)}/issues/comments"
        found: dict[int, Comment] = {}
        pages_read = 0
        total: int | None = None
        while url is not None:
            if max_pages is not None and pages_read >= max_pages:
                return BotCommentIndex(found, since, complete=False, pages=total)
            reply = self._http.call("GET", url, params=params, what=f"comment stream {scope}")
            pages_read += 1
            link = _header(reply.headers, "link")
            if total is None:
                total = _last_page(link) or pages_read
            for data in reply.data or []:
                user = data.get("user") or {}
                body = str(data.get("body") or "")
                number = _issue_number(data.get("issue_url"))
                if (number is None or number in found or MARKER_PREFIX not in body
                        or _login(user).casefold() != identity):
                    continue
                found[number] = Comment(id=str(data["id"]), body=body, author=_login(user),
                                        author_is_bot=True)
            url, params = _next_link(link), None
            if url is not None:
                self._http.check_same_api(url)
        return BotCommentIndex(found, since, complete=True, pages=pages_read)

    def _is_private(self, scope: str) -> bool:
        """Whether the repository is private (one request per repository, remembered): its
        issue titles are kept out of sweep reports."""
        key = scope.casefold()
        if key not in self._private:
            reply = self._http.call("GET", _repo_path(scope), what=f"repository {scope}")
            self._private[key] = bool((reply.data or {}).get("private"))
            self._repo_urls[key] = str((reply.data or {}).get("html_url") or "")
        return self._private[key]

    def expand_scope(self, scope: str) -> list[str]:
        """``owner/*`` → the repositories these credentials see there; other scopes as given.

        An App installation lists its own repositories; a token tries the organisation, then
        the user account. Archived repositories and those with issues turned off are skipped
        (nothing to triage, and they refuse writes).
        """
        if not scope.endswith("/*"):
            _split_scope(scope)
            return [scope]
        owner = scope[:-2]
        if not _OWNER_RE.match(owner):
            raise ValueError(f"not a GitHub account: {owner!r}")
        params = {"per_page": PER_PAGE}
        what = f"expand {scope}"
        if self.installation_id is not None:
            repos = list(self._http.pages("/installation/repositories", params, what=what,
                                          key="repositories"))
        else:
            try:
                repos = list(self._http.pages(f"/orgs/{owner}/repos", {**params, "type": "all"},
                                              what=what))
            except GithubException as exc:
                if exc.status != 404:
                    raise
                if owner.casefold() == self.bot_identity().casefold():
                    repos = list(self._http.pages(
                        "/user/repos", {**params, "affiliation": "owner"}, what=what))
                else:
                    repos = list(self._http.pages(f"/users/{owner}/repos", params, what=what))
        return sorted(
            str(r["full_name"]) for r in repos
            if _login(r.get("owner")).casefold() == owner.casefold()
            and not r.get("archived") and r.get("has_issues", True)
        )

    # -- security hand-off ---------------------------------------------------------------

    def _html_url(self, scope: str) -> str:
        """The repository's web address, as GitHub gives it (``html_url``; GHES differs)."""
        key = scope.casefold()
        if key not in self._repo_urls:
            self._is_private(scope)
        return self._repo_urls.get(key) or f"https://github.com/{scope}"

    def private_reporting_enabled(self, scope: str) -> bool:
        """``GET /repos/{o}/{r}/private-vulnerability-reporting`` (remembered per repository
        for this process). A 403/404 (the token may not read it) counts as not enabled.
        https://docs.github.com/en/rest/repos/repos#check-if-private-vulnerability-reporting-is-enabled-for-a-repository
        """
        key = scope.casefold()
        if key not in self._private_reporting:
            try:
                reply = self._http.call("GET", f"{_repo_path(scope)}/private-vulnerability-"
                                        "reporting", what=f"private reporting {scope}")
                enabled = bool((reply.data or {}).get("enabled"))
            except GithubException as exc:
                if exc.status not in (403, 404):
                    raise
                log.info("cannot tell whether private vulnerability reporting is enabled",
                         extra={"repo": scope, "status": exc.status})
                enabled = False
            self._private_reporting[key] = enabled
        return self._private_reporting[key]

    def handoff(self, ref: IssueRef, *, protect: bool) -> HandOff:
        """What ``BUGBAR_GITHUB_PROTECT`` / ``_ESCALATE`` / ``_ASSIGNEES`` make this adapter do,
        plus the repository's private reporting link when that is enabled."""
        cfg = self.handoff_settings
        new_advisory = f"{self._html_url(ref.scope)}/security/advisories/new"
        private_url = new_advisory if self.private_reporting_enabled(ref.scope) else ""
        step, manual = "", ""
        target = cfg.transfer_target
        if cfg.protect == "lock":
            step, manual = "lock the conversation", "lock this conversation"
        elif cfg.protect == "advisory":
            step = "open a draft security advisory"
            manual = f"open a draft security advisory at {new_advisory}"
        elif target and target.casefold() != ref.scope.casefold():
            step = f"transfer the issue to {target}"
            manual = f"transfer this issue to {target}"
        return HandOff(
            protect=step,
            protect_hides=bool(target),
            protect_last=bool(target),
            escalate=f"assign {', '.join(cfg.assignees)}" if cfg.assignees else "",
            mentions=cfg.mentions,
            escalate_routes=cfg.escalate_routes,
            private_report_url=private_url,
            manual_protect=manual,
        )

    @staticmethod
    def _refused(exc: GithubException) -> HandOffRefused:
        """The refusal, with GitHub's status and message (short, safe to show in public);
        the handler logs it once."""
        data = exc.data if isinstance(exc.data, dict) else {}
        message = " ".join(str(data.get("message") or "").split())[:100]
        return HandOffRefused(f"GitHub answered {exc.status}" + (f": {message}" if message
                                                                  else ""))

    @staticmethod
    def _is_refusal(exc: GithubException) -> bool:
        return exc.status in (401, 403, 404, 410, 422) and not classify_failure(exc).rate_limited

    def protect(self, ref: IssueRef, request: HandOffRequest) -> str | None:
        """Do the configured protect step once; returns ``locked``, ``advisory GHSA-…`` or
        ``transferred OWNER/REPO#N`` (None with ``protect=none``)."""
        cfg = self.handoff_settings
        try:
            if cfg.protect == "lock":
                return self._lock(ref)
            if cfg.protect == "advisory":
                return self._advisory(ref, request)
            if cfg.transfer_target:
                return self._transfer(ref, cfg.transfer_target)
        except GithubException as exc:
            if self._is_refusal(exc):
                raise self._refused(exc) from None
            raise
        return None

    def _lock(self, ref: IssueRef) -> str:
        """``PUT /repos/{o}/{r}/issues/{n}/lock`` (204; idempotent). Needs issues: write.
        https://docs.github.com/en/rest/issues/issues#lock-an-issue"""
        body = {"lock_reason": self.handoff_settings.lock_reason} \
            if self.handoff_settings.lock_reason else {}
        self._http.call("PUT", f"{_repo_path(ref.scope)}/issues/{int(ref.number)}/lock",
                        body=body, what=f"lock {ref}")
        return "locked"

    def _find_advisory(self, ref: IssueRef, issue_url: str) -> str | None:
        """A draft advisory of this repository that names the issue's link (one the bot
        opened earlier, perhaps by a request that timed out after GitHub stored it)."""
        url = f"{_repo_path(ref.scope)}/security-advisories"
        params = {"state": "draft", "per_page": PER_PAGE, "sort": "created",
                  "direction": "desc"}
        for item in self._http.pages(url, params, what=f"list advisories {ref}"):
            if issue_url and issue_url in str(item.get("description") or ""):
                return str(item.get("ghsa_id") or "") or None
        return None

    def _advisory(self, ref: IssueRef, request: HandOffRequest) -> str:
        """One draft repository security advisory for the issue, found again if it exists.

        It carries the triage (category, suggested severity, routes) and the issue's link,
        and never the issue's text: exploit details stay where the reporter put them until a
        maintainer moves what is needed. Needs admin or security-manager rights and the
        ``repository_advisories: write`` permission.
        https://docs.github.com/en/rest/security-advisories/repository-advisories#create-a-repository-security-advisory
        """
        issue_url = request.issue_url or f"{self._html_url(ref.scope)}/issues/{ref.number}"
        title = request.category_title or request.category or "AI/ML threat"
        body = {
            "summary": f"AI/ML security report: {title} (issue #{ref.number})"[:1024],
            "description": (
                f"Opened by bugbar for the public issue {issue_url}.\n\n"
                f"- Category: `{request.category}` ({title}), AI/ML Pivots to the SDL Bug Bar\n"
                f"- Suggested severity: {request.severity or 'unknown'}\n"
                f"- Routes: {', '.join(request.routes) or '-'}\n\n"
                "The issue's text is not copied here. Move the reproduction details into this "
                "draft and ask the reporter to remove them from the public issue."),
            "severity": ADVISORY_SEVERITY.get(request.severity, "high"),
            "vulnerabilities": [],
            "cwe_ids": [],
        }
        guard = SettleGuard(self._http.policy)
        attempts = 0

        def attempt() -> str:
            nonlocal attempts
            attempts += 1
            # After an ambiguous POST the guard lets it land before we look for it again.
            if attempts > 1:
                guard.before_retry()
            found = self._find_advisory(ref, issue_url)
            if found is not None:
                return f"advisory {found}"
            try:
                reply = self._http.send("POST", f"{_repo_path(ref.scope)}/security-advisories",
                                        body=body)
            except Exception as exc:
                guard.failed(exc)
                raise
            return f"advisory {reply.data['ghsa_id']}"

        return call_with_retry(attempt, self._http.policy, classify_failure,
                               what=f"create advisory {ref}")

    def _graphql(self, query: str, variables: dict[str, Any], what: str) -> dict[str, Any]:
        """One GraphQL request (PyGithub's GraphQL URL, also right for GHES). GraphQL answers
        200 with ``errors``: NOT_FOUND / FORBIDDEN become 404 / 403 like REST's."""
        reply = self._http.call("POST", self._http.requester.graphql_url,
                                body={"query": query, "variables": variables}, what=what)
        data = reply.data if isinstance(reply.data, dict) else {}
        errors = data.get("errors") or []
        if errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            status = {"NOT_FOUND": 404, "FORBIDDEN": 403}.get(str(first.get("type")), 422)
            raise GithubException(status, {"message": str(first.get("message") or "")}, {})
        return dict(data.get("data") or {})

    def _transfer(self, ref: IssueRef, target: str) -> str:
        """Move the issue with GraphQL ``transferIssue``, once: the lookup first tells an
        issue already moved (GitHub resolves a moved issue's old number to its new home).
        Needs write access to both repositories, which must have the same owner.
        https://docs.github.com/en/graphql/reference/mutations#transferissue"""
        owner, name = _split_scope(ref.scope)
        towner, tname = _split_scope(target)
        found = self._graphql(_TRANSFER_QUERY, {"owner": owner, "name": name,
                                                "number": int(ref.number), "towner": towner,
                                                "tname": tname}, f"transfer lookup {ref}")
        issue = (found.get("repository") or {}).get("issue") or {}
        repo = found.get("target") or {}
        if not issue.get("id") or not repo.get("id"):
            raise GithubException(404, {"message": "issue or target repository not found"}, {})
        where = str((issue.get("repository") or {}).get("nameWithOwner") or "")
        if where.casefold() == target.casefold():
            return f"transferred {where}#{issue.get('number')}"
        # A mutation is not repeated blindly: the next delivery looks the issue up again.
        reply = self._http.send("POST", self._http.requester.graphql_url, body={
            "query": _TRANSFER_MUTATION, "variables": {"issue": issue["id"], "repo": repo["id"]}})
        data = reply.data if isinstance(reply.data, dict) else {}
        if data.get("errors"):
            first = data["errors"][0] if isinstance(data["errors"][0], dict) else {}
            status = {"NOT_FOUND": 404, "FORBIDDEN": 403}.get(str(first.get("type")), 422)
            raise GithubException(status, {"message": str(first.get("message") or "")}, {})
        moved = ((data.get("data") or {}).get("transferIssue") or {}).get("issue") or {}
        new_repo = str((moved.get("repository") or {}).get("nameWithOwner") or target)
        return f"transferred {new_repo}#{moved.get('number')}"

    def escalate(self, ref: IssueRef, summary: str) -> str | None:
        """Assign ``assignees`` (``POST .../issues/{n}/assignees``); mentions are in the comment.
        GitHub silently skips logins that cannot be assigned. A 403/404 is logged once and
        nothing else happens (the mention still went out).
        https://docs.github.com/en/rest/issues/assignees#add-assignees-to-an-issue"""
        assignees = list(self.handoff_settings.assignees)
        if not assignees:
            return None
        try:
            self._http.call("POST", f"{_repo_path(ref.scope)}/issues/{int(ref.number)}/assignees",
                            body={"assignees": assignees}, what=f"assign {ref}")
        except GithubException as exc:
            if self._is_refusal(exc):
                log.warning("github refused the assignment; the mention still went out",
                            extra={"issue": str(ref), "reason": self._refused(exc).reason})
                return None
            raise
        return f"assigned {', '.join(assignees)}"


# ----------------------------------------------------------------------------- GitHub App


@dataclass
class _Token:
    token: str
    expires_at: float


class _InstallationAuth(Auth.Auth):
    """PyGithub auth that asks the :class:`GitHubApp` for a current installation token."""

    def __init__(self, app: GitHubApp, installation_id: int) -> None:
        self._app = app
        self.installation_id = installation_id

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        return self._app.installation_token(self.installation_id)

    @property
    def _masked_token(self) -> str:
        return "token (installation token removed)"

    def invalidate(self) -> None:
        """Forget the cached token (GitHub said 401), so the next request fetches a new one."""
        self._app.forget_token(self.installation_id)


def _check_private_key(key: str) -> None:
    """Refuse a key that cannot sign App JWTs now, not on the first delivery.

    The message never contains the key, nor the parser's words about it.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not a PEM private key without a passphrase (download the App's "
                         "key from its settings page and pass the whole .pem file)") from None


class GitHubApp:
    """A GitHub App: JWT calls for installations, one cached token and tracker per installation.

    Tokens are requested with ``POST /app/installations/{id}/access_tokens`` and refreshed
    ``refresh_margin`` seconds before ``expires_at``; a 401 mid-run drops the token and the
    request is sent once more with a fresh one.
    https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-an-installation-access-token-for-a-github-app
    """

    def __init__(
        self,
        app_id: int | str,
        private_key: str | bytes,
        base_url: str = DEFAULT_API,
        *,
        policy: RetryPolicy | None = None,
        pacer: WritePacer | None = None,
        metrics: ApiMetrics | None = None,
        etag_cache: EtagCache | None = None,
        timeout: int = DEFAULT_TIMEOUT,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
        on_token: Callable[[str], None] | None = None,
        handoff: GitHubHandOffSettings | None = None,
    ) -> None:
        """``on_token`` is told every new installation token (e.g. ``bot.logs.register_secret``)."""
        self.handoff = handoff
        key = private_key.decode() if isinstance(private_key, bytes) else private_key
        _check_private_key(key)
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.pacer = pacer or WritePacer()
        self.metrics = metrics
        self.timeout = timeout
        self._etags = etag_cache
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._on_token = on_token
        self._jwt = _Http(make_github(Auth.AppAuth(app_id, key), self.base_url, timeout=timeout),
                          policy=self.policy, pacer=self.pacer, metrics=metrics,
                          report_budget=False, paced=False)  # tokens are not content
        self._lock = threading.RLock()
        self._tokens: dict[int, _Token] = {}
        self._trackers: dict[int, GitHubTracker] = {}
        self._repo_installations: dict[str, int] = {}
        self._slug: str | None = None

    def bot_login(self) -> str:
        """``<app-slug>[bot]``, the login the App's comments are authored by (``GET /app``)."""
        if self._slug is None:
            reply = self._jwt.call("GET", "/app", what="app identity")
            self._slug = str(reply.data["slug"])
        return f"{self._slug}[bot]"

    def installation_token(self, installation_id: int) -> str:
        """A token for the installation, from cache unless it is about to expire."""
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and cached.expires_at - self._refresh_margin > self._clock():
                return cached.token
            reply = self._jwt.call(
                "POST", f"/app/installations/{int(installation_id)}/access_tokens",
                what=f"installation token {installation_id}")
            token = str(reply.data["token"])
            expires = _parse_time(reply.data.get("expires_at"))
            expires_at = expires.timestamp() if expires else self._clock() + 3600
            if self._on_token is not None:
                self._on_token(token)
            self._tokens[installation_id] = _Token(token, expires_at)
            log.info("installation token issued",
                     extra={"installation_id": installation_id, "expires_at": expires_at})
            return token

    def forget_token(self, installation_id: int) -> None:
        """Drop a cached token (after a 401)."""
        with self._lock:
            self._tokens.pop(installation_id, None)

    def for_installation(self, installation_id: int) -> GitHubTracker:
        """The tracker acting as this installation (one per installation, reused)."""
        with self._lock:
            tracker = self._trackers.get(installation_id)
            if tracker is None:
                gh = make_github(_InstallationAuth(self, installation_id), self.base_url,
                                 timeout=self.timeout)
                tracker = GitHubTracker(gh, policy=self.policy, pacer=self.pacer,
                                        metrics=self.metrics, etag_cache=self._etags,
                                        identity=self.bot_login,
                                        installation_id=installation_id,
                                        handoff=self.handoff)
                self._trackers[installation_id] = tracker
            return tracker

    def for_owner(self, owner: str) -> GitHubTracker:
        """The tracker for the installation on an organisation or user account (for
        ``owner/*`` sweeps): ``GET /orgs/{owner}/installation``, else ``/users/…``."""
        key = f"{owner.casefold()}/*"
        installation_id = self._repo_installations.get(key)
        if installation_id is None:
            try:
                reply = self._jwt.call("GET", f"/orgs/{owner}/installation",
                                       what=f"installation of {owner}")
            except GithubException as exc:
                if exc.status != 404:
                    raise
                reply = self._jwt.call("GET", f"/users/{owner}/installation",
                                       what=f"installation of {owner}")
            installation_id = int(reply.data["id"])
            self._repo_installations[key] = installation_id
        return self.for_installation(installation_id)

    def for_repo(self, scope: str) -> GitHubTracker:
        """The tracker for the installation covering ``owner/repo``
        (``GET /repos/{o}/{r}/installation``, remembered)."""
        key = scope.casefold()
        installation_id = self._repo_installations.get(key)
        if installation_id is None:
            reply = self._jwt.call("GET", f"{_repo_path(scope)}/installation",
                                   what=f"installation of {scope}")
            installation_id = int(reply.data["id"])
            self._repo_installations[key] = installation_id
        return self.for_installation(installation_id)
