"""In-process fake of the GitHub REST API (v3) for tests.

Real PyGithub talks real HTTP to a ``ThreadingHTTPServer`` on loopback. The fake keeps
repos, issues, labels, comments, reactions, collaborators and GitHub App installations in
memory and answers with GitHub's shapes, headers (rate limit, ETag, request id, Link) and
error bodies. Tests can inject faults, delays, and inspect a log of requests and writes.

Typical use::

    with FakeGitHub(tokens=["t0k"]) as fake:
        fake.add_repo("o/r", id=1000)
        n = fake.add_issue("o/r", "title", "body", labels=["bug"])
        gh = Github(auth=Auth.Token("t0k"), base_url=fake.url, retry=None,
                    seconds_between_requests=0, seconds_between_writes=0)
        gh.get_repo("o/r").get_issue(n).add_to_labels("threat/model-stealing")
        assert fake.writes == ["github:o/r#1:+label threat/model-stealing"]

Behaviour that is modelled on GitHub (see shared/fixtures/PROTOCOLS.md section 1):

* every response carries ``x-ratelimit-{limit,remaining,used,reset,resource}``,
  ``x-github-request-id``, ``x-github-media-type`` and JSON content type;
* 2xx responses with a body carry a weak ``etag``; a GET with a matching ``If-None-Match``
  gets a 304 that does not consume the budget; ``GET /rate_limit`` is free as well;
* at ``remaining == 0`` token requests get 403 ``API rate limit exceeded ...`` with
  ``x-ratelimit-remaining: 0``; the budget refills when the reset time passes;
* list endpoints paginate with ``per_page``/``page`` and a ``link`` header whose URLs use
  the ``/repositories/{id}/...`` form (which is served too);
* adding an unknown label to an issue creates it on the repo (colour ``ededed``);
  removing a label that is not on the issue is 404 ``Label does not exist``;
* installation tokens (``ghs_...``) from ``POST /app/installations/{id}/access_tokens``
  are valid until ``expires_at`` and only see the installation's repos (404 elsewhere).

Choices where GitHub's exact answer is not recorded: a valid app JWT used on a non-app
endpoint gets 403 ``Resource not accessible by integration``; app (JWT) requests do not
consume the core budget; injected faults do not consume it either.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import jwt as pyjwt

from tests.fakes._http import Chaos, FakeHandler, FakeHTTPServer

__all__ = [
    "FakeGitHub",
    "RecordedRequest",
    "PRIMARY_RATE_LIMIT_DOC",
    "SECONDARY_RATE_LIMIT_MESSAGE",
    "SECONDARY_RATE_LIMIT_CONTENT_MESSAGE",
    "SECONDARY_RATE_LIMIT_DOC",
]

DOCS = "https://docs.github.com/rest"
PRIMARY_RATE_LIMIT_DOC = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
    "#about-the-primary-rate-limit"
)
SECONDARY_RATE_LIMIT_DOC = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
SECONDARY_RATE_LIMIT_CONTENT_MESSAGE = (
    "You have exceeded a secondary rate limit and have been temporarily blocked from content "
    "creation. Please retry your request again later."
)
ROLES = ("none", "read", "triage", "write", "maintain", "admin")
LOCK_REASONS = ("off-topic", "too heated", "resolved", "spam")
GHSA_ALPHABET = "23456789cfghjmpqrvwx"
LEGACY_PERMISSION = {
    "none": "none",
    "read": "read",
    "triage": "read",
    "write": "write",
    "maintain": "write",
    "admin": "admin",
}
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
AUTO_LABEL_COLOR = "ededed"
MAX_COMMENT_BODY = 65536
MAX_LABEL_NAME = 50
_EXPOSE = (
    "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, X-RateLimit-Remaining, "
    "X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset, X-OAuth-Scopes, "
    "X-Accepted-OAuth-Scopes, X-Poll-Interval, X-GitHub-Media-Type, X-GitHub-SSO, "
    "X-GitHub-Request-Id, Deprecation, Sunset"
)
_JWT_EXPIRED = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time "
    "at which the assertion expires"
)


class RecordedRequest(NamedTuple):
    """One request as the fake answered it; ``path`` includes the raw query string."""

    method: str
    path: str
    status: int


# --------------------------------------------------------------------------- state records


@dataclass
class _User:
    login: str
    id: int
    type: str = "User"


@dataclass
class _Label:
    id: int
    name: str
    color: str = AUTO_LABEL_COLOR
    description: str | None = None
    default: bool = False


@dataclass
class _Reaction:
    id: int
    user: str
    content: str
    created_at: float


@dataclass
class _Comment:
    id: int
    repo: str
    number: int
    user: str
    body: str
    created_at: float
    updated_at: float
    via_app: bool = False
    reactions: list[_Reaction] = field(default_factory=list)


@dataclass
class _Issue:
    id: int
    number: int
    title: str
    body: str | None
    user: str
    state: str
    created_at: float
    updated_at: float
    labels: list[str] = field(default_factory=list)  # lower-case keys into repo.labels
    pull_request: bool = False
    closed_at: float | None = None
    state_reason: str | None = None
    locked: bool = False
    assignees: list[str] = field(default_factory=list)
    comment_ids: list[int] = field(default_factory=list)
    lock_reason: str | None = None


@dataclass
class _Repo:
    id: int
    owner: str
    name: str
    private: bool
    owner_type: str
    description: str | None
    default_branch: str
    created_at: float
    labels: dict[str, _Label] = field(default_factory=dict)
    issues: dict[int, _Issue] = field(default_factory=dict)
    next_number: int = 1
    roles: dict[str, str] = field(default_factory=dict)  # lower login -> role
    associations: dict[str, str] = field(default_factory=dict)
    private_vulnerability_reporting: bool = False
    advisories: list[dict[str, Any]] = field(default_factory=list)
    moved: dict[int, tuple[str, int]] = field(default_factory=dict)  # transferred issues
    deleted: set[int] = field(default_factory=set)  # issues an admin deleted: 410 Gone

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class _Installation:
    id: int
    account: str
    repos: list[str] | None  # None = all repos of the account
    permissions: dict[str, str]
    created_at: float


@dataclass
class _Identity:
    kind: str  # "user" | "installation" | "app"
    login: str
    installation_id: int | None = None
    token: str = ""
    permissions: dict[str, str] = field(default_factory=dict)


@dataclass
class _IssuedToken:
    installation_id: int
    expires_at: float
    permissions: dict[str, str]


@dataclass
class _Resp:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class _HTTPError(Exception):
    """Raised inside handlers to produce a GitHub-style error response."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def _error_body(
    status: int, message: str, doc: str = DOCS, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if errors is not None:
        body["errors"] = errors
    body["documentation_url"] = doc
    body["status"] = str(status)
    return body


def _not_found(doc: str = DOCS) -> _HTTPError:
    return _HTTPError(404, _error_body(404, "Not Found", doc))


def _validation(resource: str, field_: str, code: str, message: str | None = None) -> _HTTPError:
    err: dict[str, Any] = {"resource": resource, "code": code, "field": field_}
    if message is not None:
        err["message"] = message
    return _HTTPError(422, _error_body(422, "Validation Failed", errors=[err]))


def _default_fault_body(status: int) -> Any:
    """GitHub-like body for an injected fault with no explicit body."""
    if status == 401:
        return _error_body(401, "Bad credentials")
    if status == 403:
        return _error_body(403, "Resource not accessible by integration")
    if status == 404:
        return _error_body(404, "Not Found")
    if status == 409:
        return _error_body(409, "Conflict")
    if status == 410:
        return _error_body(410, "Gone")
    if status == 422:
        return _error_body(
            422, "Validation Failed", errors=[{"resource": "Issue", "code": "invalid"}]
        )
    if status == 429:
        return {
            "message": SECONDARY_RATE_LIMIT_MESSAGE,
            "documentation_url": SECONDARY_RATE_LIMIT_DOC,
        }
    if status >= 500:
        return {"message": "Server Error"}
    return {"message": "Error"}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _to_ts(value: datetime | str | float | None, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, str):
        return _parse_iso(value)
    return float(value)


def _node_id(prefix: str, num: int) -> str:
    return prefix + base64.urlsafe_b64encode(f"fake:{num}".encode()).decode().rstrip("=")


def _strip_weak(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


# --------------------------------------------------------------------------- HTTP plumbing


class _Handler(FakeHandler):
    timeout = 60

    def _dispatch(self) -> None:
        self.server.fake._serve(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _dispatch

    def version_string(self) -> str:
        return "GitHub.com"


_Route = tuple[str, re.Pattern[str], str, Callable[..., _Resp]]
_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"


class FakeGitHub(FakeHTTPServer):
    """Fake GitHub REST API server with in-memory state (thread-safe).

    :param tokens: personal access tokens accepted as ``token X`` / ``Bearer X``; they
        authenticate as ``login``.
    :param login: login of the authenticated user for PATs (``GET /user``).
    :param user_type: ``type`` of that user (``"User"`` or ``"Bot"``).
    :param rate_limit: ``x-ratelimit-limit`` of the core budget.
    :param remaining: starting remaining budget (defaults to ``rate_limit``).
    :param reset_in: seconds until the budget resets.
    :param app_id: GitHub App id expected in the JWT ``iss`` claim.
    :param app_slug: slug of the app; installation tokens act as ``{slug}[bot]``.
    :param app_public_key: if set (PEM), JWT signatures are verified with it.
    :param token_lifetime: lifetime in seconds of issued installation tokens.
    :param per_page_default: page size when ``per_page`` is absent (GitHub: 30).
    """

    _fake_name = _thread_name = "FakeGitHub"
    _listen_backlog = 128
    requests: list[RecordedRequest]

    def __init__(
        self,
        tokens: Iterable[str] = ("test-token",),
        *,
        login: str = "bugbar-bot",
        user_type: str = "User",
        rate_limit: int = 5000,
        remaining: int | None = None,
        reset_in: float = 3600.0,
        app_id: int = 424242,
        app_slug: str = "bugbar",
        app_public_key: str | bytes | None = None,
        token_lifetime: float = 3600.0,
        per_page_default: int = 30,
    ) -> None:
        self._init_http()
        self._offset = 0.0
        self._ids = 10_000
        self._users: dict[str, _User] = {}
        self._tokens: dict[str, str] = {}
        self._repos: dict[str, _Repo] = {}
        self._repo_ids: dict[int, str] = {}
        self._comments: dict[int, _Comment] = {}
        self._installations: dict[int, _Installation] = {}
        self._issued: dict[str, _IssuedToken] = {}
        self.login = login
        self._ensure_user(login, user_type)
        for tok in tokens:
            self._tokens[tok] = login
        self.rate_limit = rate_limit
        self.remaining = rate_limit if remaining is None else remaining
        self.reset_at = time.time() + reset_in
        self.app_id = app_id
        self.app_slug = app_slug
        self.app_public_key = app_public_key
        self.token_lifetime = token_lifetime
        self.per_page_default = per_page_default
        self.request_headers: list[dict[str, str]] = []
        self.graphql_queries: list[str] = []
        self._routes: list[_Route] = self._build_routes()
        self.chaos: Chaos | None = None
        """Random 502 / 429 / slow answers (see :class:`Chaos`); None: none."""

    # ------------------------------------------------------------------ lifecycle

    def _handler_class(self) -> type[_Handler]:
        return _Handler

    @property
    def port(self) -> int:
        """Bound TCP port."""
        return int(self.url.rsplit(":", 1)[1])

    def _api(self) -> str:
        return self.url if self._server is not None else "http://127.0.0.1:0"

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        """Server clock (wall clock plus :meth:`advance` offset)."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the server clock forward (expires tokens, moves timestamps, resets budget)."""
        with self._lock:
            self._offset += seconds

    # ------------------------------------------------------------------ setup helpers

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _ensure_user(self, login: str, type_: str | None = None) -> _User:
        key = login.lower()
        user = self._users.get(key)
        if user is None:
            default = "Bot" if login.endswith("[bot]") else "User"
            user = _User(login=login, id=self._next_id(), type=type_ or default)
            self._users[key] = user
        elif type_ is not None:
            user.type = type_
        return user

    def add_user(self, login: str, type: str = "User", id: int | None = None) -> None:  # noqa: A002
        """Register a user/bot/organization account (others are created on first use)."""
        with self._lock:
            user = self._ensure_user(login, type)
            if id is not None:
                user.id = id

    def add_token(self, token: str, login: str | None = None, user_type: str = "User") -> None:
        """Accept another personal access token, authenticating as ``login``."""
        with self._lock:
            login = login or self.login
            self._ensure_user(login, user_type if login != self.login else None)
            self._tokens[token] = login

    def revoke_token(self, token: str) -> None:
        """Make a PAT or installation token invalid (401 Bad credentials)."""
        with self._lock:
            self._tokens.pop(token, None)
            self._issued.pop(token, None)

    def add_repo(
        self,
        full_name: str,
        id: int | None = None,  # noqa: A002
        *,
        private: bool = False,
        owner_type: str = "Organization",
        description: str | None = None,
        default_branch: str = "main",
        labels: Iterable[str] = (),
    ) -> int:
        """Create a repository ``owner/name``; returns its id."""
        owner, name = full_name.split("/", 1)
        with self._lock:
            if full_name.lower() in self._repos:
                raise ValueError(f"repo {full_name} exists")
            self._ensure_user(owner, owner_type)
            rid = id if id is not None else self._next_id()
            repo = _Repo(
                id=rid,
                owner=owner,
                name=name,
                private=private,
                owner_type=owner_type,
                description=description,
                default_branch=default_branch,
                created_at=self.now(),
            )
            self._repos[full_name.lower()] = repo
            self._repo_ids[rid] = full_name.lower()
            for label in labels:
                self._label_for(repo, label, create=True)
            return rid

    def _repo(self, full_name: str) -> _Repo:
        repo = self._repos.get(full_name.lower())
        if repo is None:
            raise KeyError(f"unknown repo {full_name}")
        return repo

    def _label_for(self, repo: _Repo, name: str, *, create: bool) -> _Label | None:
        label = repo.labels.get(name.lower())
        if label is None and create:
            label = _Label(id=self._next_id(), name=name)
            repo.labels[name.lower()] = label
        return label

    def add_label(
        self, repo: str, name: str, color: str = AUTO_LABEL_COLOR, description: str | None = None
    ) -> None:
        """Create a label on a repo (or update its colour/description)."""
        with self._lock:
            r = self._repo(repo)
            label = self._label_for(r, name, create=True)
            assert label is not None
            label.color, label.description = color, description

    def add_issue(
        self,
        repo: str,
        title: str,
        body: str | None = "",
        labels: Sequence[str] = (),
        user: str = "alice",
        state: str = "open",
        pull_request: bool = False,
        *,
        user_type: str | None = None,
        created_at: datetime | str | float | None = None,
        updated_at: datetime | str | float | None = None,
        assignees: Sequence[str] = (),
        locked: bool = False,
    ) -> int:
        """Create an issue (or a PR when ``pull_request``); returns its number."""
        with self._lock:
            r = self._repo(repo)
            self._ensure_user(user, user_type)
            now = self.now()
            created = _to_ts(created_at, now)
            updated = _to_ts(updated_at, created)
            number = r.next_number
            r.next_number += 1
            issue = _Issue(
                id=self._next_id(),
                number=number,
                title=title,
                body=body,
                user=user,
                state=state,
                created_at=created,
                updated_at=updated,
                pull_request=pull_request,
                closed_at=updated if state == "closed" else None,
                state_reason="completed" if state == "closed" else None,
                locked=locked,
                assignees=list(assignees),
            )
            for name in labels:
                label = self._label_for(r, name, create=True)
                assert label is not None
                if label.name.lower() not in issue.labels:
                    issue.labels.append(label.name.lower())
            r.issues[number] = issue
            return number

    def delete_issue(self, repo: str, number: int) -> None:
        """Delete an issue as an admin would (spam): reading it answers 410 Gone from now on."""
        with self._lock:
            r = self._repo(repo)
            del r.issues[number]
            r.deleted.add(number)

    def edit_issue(
        self,
        repo: str,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        state: str | None = None,
        labels: Sequence[str] | None = None,
        locked: bool | None = None,
        updated_at: datetime | str | float | None = None,
    ) -> None:
        """Change an issue behind the bot's back; bumps ``updated_at``."""
        with self._lock:
            r = self._repo(repo)
            issue = r.issues[number]
            if title is not None:
                issue.title = title
            if body is not None:
                issue.body = body
            if state is not None:
                self._set_state(issue, state)
            if locked is not None:
                issue.locked = locked
            if labels is not None:
                issue.labels = []
                for name in labels:
                    label = self._label_for(r, name, create=True)
                    assert label is not None
                    if label.name.lower() not in issue.labels:
                        issue.labels.append(label.name.lower())
            issue.updated_at = _to_ts(updated_at, max(self.now(), issue.updated_at))

    def add_comment(
        self,
        repo: str,
        number: int,
        body: str,
        user: str = "alice",
        user_type: str | None = None,
        *,
        created_at: datetime | str | float | None = None,
    ) -> int:
        """Add a comment as ``user`` (``user_type`` "User"/"Bot"); returns the comment id."""
        with self._lock:
            r = self._repo(repo)
            issue = r.issues[number]
            self._ensure_user(user, user_type)
            ts = _to_ts(created_at, self.now())
            comment = _Comment(
                id=self._next_id(),
                repo=r.full_name,
                number=number,
                user=user,
                body=body,
                created_at=ts,
                updated_at=ts,
            )
            self._comments[comment.id] = comment
            issue.comment_ids.append(comment.id)
            issue.updated_at = max(issue.updated_at, ts)
            return comment.id

    def edit_comment(self, comment_id: int, body: str) -> None:
        """Edit a comment behind the bot's back; bumps ``updated_at``."""
        with self._lock:
            comment = self._comments[comment_id]
            comment.body = body
            comment.updated_at = max(self.now(), comment.updated_at)

    def add_reaction(self, comment_id: int, content: str, user: str = "alice") -> None:
        """Add a reaction to a comment as ``user``."""
        with self._lock:
            self._ensure_user(user)
            self._comments[comment_id].reactions.append(
                _Reaction(id=self._next_id(), user=user, content=content, created_at=self.now())
            )

    def set_permission(
        self, repo: str, user: str, permission: str, association: str | None = None
    ) -> None:
        """Give ``user`` a role (none/read/triage/write/maintain/admin) on ``repo``.

        ``association`` overrides ``author_association`` (default COLLABORATOR, or NONE
        for role ``none``).
        """
        if permission not in ROLES:
            raise ValueError(f"unknown role {permission!r}")
        with self._lock:
            r = self._repo(repo)
            self._ensure_user(user)
            r.roles[user.lower()] = permission
            if association is not None:
                r.associations[user.lower()] = association

    def add_installation(
        self,
        installation_id: int,
        account: str,
        repos: Iterable[str] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> None:
        """Install the app on ``account`` for ``repos`` (``None`` = all of its repos)."""
        with self._lock:
            self._ensure_user(account)
            self._installations[installation_id] = _Installation(
                id=installation_id,
                account=account,
                repos=None if repos is None else [x.lower() for x in repos],
                permissions=dict(
                    permissions or {"issues": "write", "metadata": "read", "pull_requests": "read"}
                ),
                created_at=self.now(),
            )

    def expire_installation_tokens(self) -> None:
        """Expire every issued installation token now (next use: 401 Bad credentials)."""
        with self._lock:
            for tok in self._issued.values():
                tok.expires_at = self.now() - 1

    @property
    def installation_tokens(self) -> list[str]:
        """Installation tokens issued so far (oldest first)."""
        with self._lock:
            return list(self._issued)

    def set_rate_limit(
        self,
        remaining: int | None = None,
        limit: int | None = None,
        reset_in: float | None = None,
    ) -> None:
        """Adjust the core budget: remaining, limit, seconds until reset."""
        with self._lock:
            if limit is not None:
                self.rate_limit = limit
            if remaining is not None:
                self.remaining = remaining
            if reset_in is not None:
                self.reset_at = self.now() + reset_in

    # ------------------------------------------------------------------ faults

    def _fail_defaults(
        self, status: int, headers: Mapping[str, str] | None, body: Any
    ) -> tuple[Mapping[str, str] | None, Any]:
        """``fail_next`` defaults: no extra headers, a GitHub-like body for the status."""
        return headers or {}, _default_fault_body(status) if body is None else body

    def fail_secondary_rate_limit(
        self,
        method: str | None,
        path_regex: str,
        retry_after: int | None = 1,
        status: int = 403,
        times: int = 1,
        content_creation: bool = False,
    ) -> None:
        """Inject GitHub's secondary rate-limit answer (403/429, optional Retry-After)."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        message = (
            SECONDARY_RATE_LIMIT_CONTENT_MESSAGE
            if content_creation
            else SECONDARY_RATE_LIMIT_MESSAGE
        )
        body = {"message": message, "documentation_url": SECONDARY_RATE_LIMIT_DOC}
        self.fail_next(method, path_regex, status, headers=headers, body=body, times=times)

    # ------------------------------------------------------------------ inspection

    def count(  # type: ignore[override]
        self, method: str | None = None, path_regex: str | None = None, status: int | None = None
    ) -> int:
        """Number of recorded requests matching method / path regex (searched) / status."""
        return self._count(method, path_regex, status)

    def _clear_extra_log(self) -> None:
        self.request_headers.clear()

    def reset_log(self) -> None:
        """Forget recorded requests, their headers and writes."""
        self.clear_log()

    def issue_labels(self, repo: str, number: int) -> list[str]:
        """Label names currently on an issue."""
        with self._lock:
            r = self._repo(repo)
            return [r.labels[k].name for k in r.issues[number].labels]

    def repo_labels(self, repo: str) -> list[str]:
        """Label names defined on a repo (sorted like GitHub)."""
        with self._lock:
            return [lb.name for lb in sorted(self._repo(repo).labels.values(), key=_label_key)]

    def issue(self, repo: str, number: int) -> dict[str, Any]:
        """JSON of an issue, as ``GET /repos/{repo}/issues/{n}`` would answer."""
        with self._lock:
            r = self._repo(repo)
            return self._issue_json(r, r.issues[number])

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """JSON of an issue's comments, oldest first."""
        with self._lock:
            r = self._repo(repo)
            return [self._comment_json(self._comments[c]) for c in r.issues[number].comment_ids]

    def comment(self, comment_id: int) -> dict[str, Any]:
        """JSON of one comment."""
        with self._lock:
            return self._comment_json(self._comments[comment_id])

    def reactions(self, comment_id: int) -> list[tuple[str, str]]:
        """``(user, content)`` pairs of a comment's reactions."""
        with self._lock:
            return [(x.user, x.content) for x in self._comments[comment_id].reactions]

    # ------------------------------------------------------------------ JSON shapes

    def _user_json(self, login: str) -> dict[str, Any]:
        user = self._ensure_user(login)
        api = self._api()
        u = user.login
        html = (
            f"https://github.com/apps/{u.removesuffix('[bot]')}"
            if user.type == "Bot"
            else f"https://github.com/{u}"
        )
        prefix = {"Bot": "BOT_", "Organization": "O_"}.get(user.type, "U_")
        return {
            "login": u,
            "id": user.id,
            "node_id": _node_id(prefix, user.id),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
            "gravatar_id": "",
            "url": f"{api}/users/{u}",
            "html_url": html,
            "followers_url": f"{api}/users/{u}/followers",
            "following_url": f"{api}/users/{u}/following{{/other_user}}",
            "gists_url": f"{api}/users/{u}/gists{{/gist_id}}",
            "starred_url": f"{api}/users/{u}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/users/{u}/subscriptions",
            "organizations_url": f"{api}/users/{u}/orgs",
            "repos_url": f"{api}/users/{u}/repos",
            "events_url": f"{api}/users/{u}/events{{/privacy}}",
            "received_events_url": f"{api}/users/{u}/received_events",
            "type": user.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def _label_json(self, repo: _Repo, label: _Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": _node_id("LA_", label.id),
            "url": f"{self._api()}/repos/{repo.full_name}/labels/"
            f"{urllib.parse.quote(label.name, safe='')}",
            "name": label.name,
            "color": label.color,
            "default": label.default,
            "description": label.description,
        }

    def _role_of(self, repo: _Repo, login: str) -> str:
        role = repo.roles.get(login.lower())
        if role is not None:
            return role
        if login.lower() == repo.owner.lower():
            return "admin"
        if login.lower() == self.login.lower():
            return "admin"
        return "none" if repo.private else "read"

    def _association(self, repo: _Repo, login: str) -> str:
        key = login.lower()
        if key in repo.associations:
            return repo.associations[key]
        if key == repo.owner.lower():
            return "OWNER"
        if repo.roles.get(key, "none") != "none":
            return "COLLABORATOR"
        return "NONE"

    def _permissions_obj(self, role: str) -> dict[str, bool]:
        level = ROLES.index(role)
        return {
            "admin": level >= ROLES.index("admin"),
            "maintain": level >= ROLES.index("maintain"),
            "push": level >= ROLES.index("write"),
            "triage": level >= ROLES.index("triage"),
            "pull": level >= ROLES.index("read"),
        }

    def _repo_json(self, repo: _Repo, viewer: _Identity | None = None) -> dict[str, Any]:
        api, fn = self._api(), repo.full_name
        base = f"{api}/repos/{fn}"
        ts = _iso(repo.created_at)
        open_count = sum(1 for i in repo.issues.values() if i.state == "open")
        data: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("R_", repo.id),
            "name": repo.name,
            "full_name": fn,
            "private": repo.private,
            "owner": self._user_json(repo.owner),
            "html_url": f"https://github.com/{fn}",
            "description": repo.description,
            "fork": False,
            "url": base,
            "forks_url": f"{base}/forks",
            "collaborators_url": f"{base}/collaborators{{/collaborator}}",
            "hooks_url": f"{base}/hooks",
            "issue_events_url": f"{base}/issues/events{{/number}}",
            "events_url": f"{base}/events",
            "assignees_url": f"{base}/assignees{{/user}}",
            "branches_url": f"{base}/branches{{/branch}}",
            "comments_url": f"{base}/comments{{/number}}",
            "issue_comment_url": f"{base}/issues/comments{{/number}}",
            "contents_url": f"{base}/contents/{{+path}}",
            "issues_url": f"{base}/issues{{/number}}",
            "labels_url": f"{base}/labels{{/name}}",
            "pulls_url": f"{base}/pulls{{/number}}",
            "git_url": f"git://github.com/{fn}.git",
            "ssh_url": f"git@github.com:{fn}.git",
            "clone_url": f"https://github.com/{fn}.git",
            "created_at": ts,
            "updated_at": ts,
            "pushed_at": ts,
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": "Python",
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_count,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "topics": [],
            "visibility": "private" if repo.private else "public",
            "forks": 0,
            "open_issues": open_count,
            "watchers": 0,
            "default_branch": repo.default_branch,
        }
        if viewer is not None:
            role = "write" if viewer.kind != "user" else self._role_of(repo, viewer.login)
            data["permissions"] = self._permissions_obj(role)
        return data

    def _reactions_summary(self, url: str, reactions: Sequence[_Reaction]) -> dict[str, Any]:
        summary: dict[str, Any] = {"url": url, "total_count": len(reactions)}
        for content in REACTIONS:
            summary[content] = sum(1 for r in reactions if r.content == content)
        return summary

    def _issue_json(self, repo: _Repo, issue: _Issue) -> dict[str, Any]:
        api, fn, n = self._api(), repo.full_name, issue.number
        base = f"{api}/repos/{fn}/issues/{n}"
        kind = "pull" if issue.pull_request else "issues"
        assignees = [self._user_json(a) for a in issue.assignees]
        data: dict[str, Any] = {
            "url": base,
            "repository_url": f"{api}/repos/{fn}",
            "labels_url": f"{base}/labels{{/name}}",
            "comments_url": f"{base}/comments",
            "events_url": f"{base}/events",
            "html_url": f"https://github.com/{fn}/{kind}/{n}",
            "id": issue.id,
            "node_id": _node_id("PR_" if issue.pull_request else "I_", issue.id),
            "number": n,
            "title": issue.title,
            "user": self._user_json(issue.user),
            "labels": [self._label_json(repo, repo.labels[k]) for k in issue.labels],
            "state": issue.state,
            "locked": issue.locked,
            "assignee": assignees[0] if assignees else None,
            "assignees": assignees,
            "milestone": None,
            "comments": len(issue.comment_ids),
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "closed_at": _iso(issue.closed_at),
            "author_association": self._association(repo, issue.user),
            "type": None,
            "active_lock_reason": issue.lock_reason if issue.locked else None,
            "body": issue.body,
            "closed_by": None,
            "reactions": self._reactions_summary(f"{base}/reactions", []),
            "timeline_url": f"{base}/timeline",
            "performed_via_github_app": None,
            "state_reason": issue.state_reason,
        }
        if issue.pull_request:
            data["draft"] = False
            data["pull_request"] = {
                "url": f"{api}/repos/{fn}/pulls/{n}",
                "html_url": f"https://github.com/{fn}/pull/{n}",
                "diff_url": f"https://github.com/{fn}/pull/{n}.diff",
                "patch_url": f"https://github.com/{fn}/pull/{n}.patch",
                "merged_at": None,
            }
        return data

    def _app_json(self) -> dict[str, Any]:
        ts = _iso(self.now() - 86400 * 30)
        return {
            "id": self.app_id,
            "slug": self.app_slug,
            "node_id": _node_id("A_", self.app_id),
            "client_id": f"Iv1.{self.app_id:016x}",
            "owner": self._user_json(self.login),
            "name": self.app_slug,
            "description": "",
            "external_url": "https://example.invalid",
            "html_url": f"https://github.com/apps/{self.app_slug}",
            "created_at": ts,
            "updated_at": ts,
            "permissions": {"issues": "write", "metadata": "read", "pull_requests": "read"},
            "events": ["issues", "issue_comment"],
            "installations_count": len(self._installations),
        }

    def _comment_json(self, comment: _Comment) -> dict[str, Any]:
        api = self._api()
        repo = self._repo(comment.repo)
        url = f"{api}/repos/{repo.full_name}/issues/comments/{comment.id}"
        return {
            "url": url,
            "html_url": f"https://github.com/{repo.full_name}/issues/{comment.number}"
            f"#issuecomment-{comment.id}",
            "issue_url": f"{api}/repos/{repo.full_name}/issues/{comment.number}",
            "id": comment.id,
            "node_id": _node_id("IC_", comment.id),
            "user": self._user_json(comment.user),
            "created_at": _iso(comment.created_at),
            "updated_at": _iso(comment.updated_at),
            "author_association": self._association(repo, comment.user),
            "body": comment.body,
            "reactions": self._reactions_summary(f"{url}/reactions", comment.reactions),
            "performed_via_github_app": self._app_json() if comment.via_app else None,
        }

    def _reaction_json(self, reaction: _Reaction) -> dict[str, Any]:
        return {
            "id": reaction.id,
            "node_id": _node_id("REA_", reaction.id),
            "user": self._user_json(reaction.user),
            "content": reaction.content,
            "created_at": _iso(reaction.created_at),
        }

    def _installation_json(self, inst: _Installation) -> dict[str, Any]:
        api = self._api()
        account = self._ensure_user(inst.account)
        ts = _iso(inst.created_at)
        return {
            "id": inst.id,
            "account": self._user_json(inst.account),
            "repository_selection": "all" if inst.repos is None else "selected",
            "access_tokens_url": f"{api}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{api}/installation/repositories",
            "html_url": f"https://github.com/settings/installations/{inst.id}",
            "app_id": self.app_id,
            "app_slug": self.app_slug,
            "target_id": account.id,
            "target_type": account.type,
            "permissions": dict(inst.permissions),
            "events": ["issues", "issue_comment"],
            "created_at": ts,
            "updated_at": ts,
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    def _rate_json(self) -> dict[str, Any]:
        used = max(self.rate_limit - self.remaining, 0)
        reset = int(self.reset_at)
        core = {"limit": self.rate_limit, "used": used, "remaining": self.remaining, "reset": reset}
        resources: dict[str, Any] = {"core": core}
        for name, limit in (
            ("search", 30),
            ("graphql", 5000),
            ("integration_manifest", 5000),
            ("source_import", 100),
            ("code_scanning_upload", 1000),
            ("actions_runner_registration", 10000),
            ("scim", 15000),
            ("dependency_snapshots", 100),
            ("code_search", 10),
        ):
            resources[name] = {"limit": limit, "used": 0, "remaining": limit, "reset": reset}
        return {"resources": resources, "rate": dict(core)}

    # ------------------------------------------------------------------ request handling

    def _serve(self, h: _Handler) -> None:
        raw = h.read_body()
        method = h.command.upper()
        target = h.path
        delay = self._take_fault({"delay"}, method, target)
        if delay is not None:
            time.sleep(delay.seconds)
        chaos, wait = self.chaos.draw(target) if self.chaos is not None else (None, 0.0)
        if chaos == "slow":
            time.sleep(wait)
        if chaos in ("fail", "rate_limit"):
            resp = self._chaos_answer(chaos)
            with self._lock:
                self.requests.append(RecordedRequest(method, target, resp.status))
            self._write(h, method, resp)
            return
        try:
            with self._lock:
                resp = self._process(method, target, dict(h.headers.items()), raw)
        except Exception as exc:  # pragma: no cover - a bug in the fake
            resp = _Resp(500, {"message": f"FakeGitHub internal error: {exc!r}"})
            with self._lock:
                self.requests.append(RecordedRequest(method, target, 500))
        if chaos == "fail_after":  # done, but the answer is lost behind a proxy error
            resp = self._chaos_answer("fail")
        self._write(h, method, resp)

    def _chaos_answer(self, kind: str) -> _Resp:
        out = self._base_headers()
        with self._lock:
            out.update(self._rate_headers())
        if kind == "rate_limit":
            assert self.chaos is not None
            out["Retry-After"] = str(self.chaos.retry_after)
            return _Resp(429, {"message": SECONDARY_RATE_LIMIT_MESSAGE,
                               "documentation_url": SECONDARY_RATE_LIMIT_DOC}, out)
        return _Resp(502, _default_fault_body(502), out)

    def _write(self, h: _Handler, method: str, resp: _Resp) -> None:
        body = b""
        if resp.status not in (204, 304) and resp.body is not None:
            if isinstance(resp.body, bytes):
                body = resp.body
            elif isinstance(resp.body, str):
                body = resp.body.encode()
            else:
                body = json.dumps(resp.body, separators=(",", ":")).encode()
        h.write_reply(resp.status, resp.headers, body, bodyless=(204, 304))

    def _base_headers(self) -> dict[str, str]:
        r = secrets.randbits(64)
        return {
            "Content-Type": "application/json; charset=utf-8",
            "Cache-Control": "no-cache",
            "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding",
            "X-GitHub-Media-Type": "github.v3; format=json",
            "x-github-api-version-selected": "2022-11-28",
            "Access-Control-Expose-Headers": _EXPOSE,
            "Access-Control-Allow-Origin": "*",
            "X-Frame-Options": "deny",
            "X-Content-Type-Options": "nosniff",
            "X-GitHub-Request-Id": f"{r >> 48:04X}:{(r >> 32) & 0xFFFF:04X}:"
            f"{r & 0xFFFFFFF:07X}:{secrets.randbits(28):07X}:{int(time.time()):08X}",
        }

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(self.reset_at)),
            "X-RateLimit-Used": str(max(self.rate_limit - self.remaining, 0)),
            "X-RateLimit-Resource": "core",
        }

    def _refill(self) -> None:
        if self.now() >= self.reset_at:
            self.remaining = self.rate_limit
            self.reset_at = self.now() + 3600

    def _process(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> _Resp:
        self.request_headers.append(headers)
        resp = self._respond(method, target, headers, raw)
        self.requests.append(RecordedRequest(method, target, resp.status))
        return resp

    def _respond(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> _Resp:
        self._refill()
        out = self._base_headers()
        fault = self._take_fault({"fail"}, method, target)
        if fault is not None:
            out.update(self._rate_headers())
            out.update(fault.headers or {})
            return _Resp(fault.status, fault.body, out)

        split = urllib.parse.urlsplit(target)
        path = split.path
        query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            ident = self._authenticate(lower.get("authorization", ""))
        except _HTTPError as err:
            out.update(self._rate_headers())
            out.update(err.headers)
            return _Resp(err.status, err.body, out)

        counted = ident.kind != "app" and path != "/rate_limit"
        if counted and self.remaining <= 0:
            out.update(self._rate_headers())
            who = (
                f"installation ID {ident.installation_id}"
                if ident.kind == "installation"
                else f"user ID {self._ensure_user(ident.login).id}"
            )
            body = _error_body(
                403,
                f"API rate limit exceeded for {who}. If you reach out to GitHub Support for "
                "help, please include the request ID "
                f"{out['X-GitHub-Request-Id']}.",
                PRIMARY_RATE_LIMIT_DOC,
            )
            return _Resp(403, body, out)

        try:
            resp = self._route(method, path, query, ident, raw, lower)
        except _HTTPError as err:
            resp = _Resp(err.status, err.body, err.headers)

        if method == "GET" and resp.status == 200:
            out["Cache-Control"] = "private, max-age=60, s-maxage=60"
        if 200 <= resp.status < 300 and resp.body is not None:
            payload = json.dumps(resp.body, separators=(",", ":"), sort_keys=True).encode()
            etag = f'W/"{hashlib.sha256(payload).hexdigest()}"'
            out["ETag"] = etag
            inm = lower.get("if-none-match")
            if method == "GET" and inm is not None:
                wanted = {_strip_weak(t) for t in inm.split(",")}
                if "*" in wanted or _strip_weak(etag) in wanted:
                    out.update(self._rate_headers())
                    out.pop("Content-Type", None)
                    return _Resp(304, None, out)
        if counted:
            self.remaining -= 1
        out.update(self._rate_headers())
        if ident.kind == "user":
            out["X-OAuth-Scopes"] = "repo"
            out["X-Accepted-OAuth-Scopes"] = ""
        if resp.status == 204:
            out.pop("Content-Type", None)
        out.update(resp.headers)
        return _Resp(resp.status, resp.body, out)

    # ------------------------------------------------------------------ auth

    def _authenticate(self, header: str) -> _Identity:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() not in ("token", "bearer") or not value:
            raise _HTTPError(401, _error_body(401, "Requires authentication"))
        if value in self._tokens:
            return _Identity("user", self._tokens[value], token=value)
        issued = self._issued.get(value)
        if issued is not None:
            if issued.expires_at <= self.now():
                raise _HTTPError(401, _error_body(401, "Bad credentials"))
            return _Identity(
                "installation",
                f"{self.app_slug}[bot]",
                issued.installation_id,
                token=value,
                permissions=dict(issued.permissions),
            )
        if scheme.lower() == "bearer" and value.count(".") == 2:
            return self._check_jwt(value)
        raise _HTTPError(401, _error_body(401, "Bad credentials"))

    def _check_jwt(self, token: str) -> _Identity:
        undecodable = _HTTPError(401, _error_body(401, "A JSON web token could not be decoded"))
        try:
            header = pyjwt.get_unverified_header(token)
            claims = pyjwt.decode(token, options={"verify_signature": False})
        except pyjwt.PyJWTError as exc:
            raise undecodable from exc
        if header.get("alg") != "RS256":
            raise undecodable
        if self.app_public_key is not None:
            try:
                pyjwt.decode(
                    token,
                    self.app_public_key,
                    algorithms=["RS256"],
                    options={"verify_exp": False, "verify_iat": False},
                )
            except pyjwt.PyJWTError as exc:
                raise undecodable from exc
        iss = claims.get("iss")
        if not (isinstance(iss, int) or (isinstance(iss, str) and iss.isdigit())):
            raise _HTTPError(401, _error_body(401, "'Issuer' claim ('iss') must be an Integer"))
        exp, iat, now = claims.get("exp"), claims.get("iat"), self.now()
        if not isinstance(exp, (int, float)) or exp <= now:
            raise _HTTPError(401, _error_body(401, _JWT_EXPIRED))
        if not isinstance(iat, (int, float)) or iat > now + 60:
            raise _HTTPError(
                401,
                _error_body(
                    401,
                    "'Issued at' claim ('iat') must be an Integer representing the time that "
                    "the assertion was issued",
                ),
            )
        if exp - iat > 660:
            raise _HTTPError(
                401, _error_body(401, "'Expiration time' claim ('exp') is too far in the future")
            )
        if int(iss) != self.app_id:
            raise _HTTPError(401, _error_body(401, "Integration not found"))
        return _Identity("app", self.app_slug, token=token)

    # ------------------------------------------------------------------ routing

    def _build_routes(self) -> list[_Route]:
        table: list[tuple[str, str, str, Callable[..., _Resp]]] = [
            ("GET", r"/user", "token", self._h_get_user),
            ("GET", r"/user/repos", "token", self._h_user_repos),
            ("GET", r"/users/(?P<user>[^/]+)", "token", self._h_user),
            ("GET", r"/users/(?P<user>[^/]+)/repos", "token", self._h_owner_repos),
            ("GET", r"/orgs/(?P<user>[^/]+)", "token", self._h_org),
            ("GET", r"/orgs/(?P<user>[^/]+)/repos", "token", self._h_owner_repos),
            ("GET", r"/rate_limit", "any", self._h_rate_limit),
            ("GET", r"/app", "jwt", self._h_app),
            ("GET", r"/app/installations", "jwt", self._h_installations),
            ("GET", r"/app/installations/(?P<iid>\d+)", "jwt", self._h_installation),
            ("POST", r"/app/installations/(?P<iid>\d+)/access_tokens", "jwt", self._h_token),
            ("GET", _REPO + r"/installation", "jwt", self._h_repo_installation),
            (
                "GET",
                r"/(?:orgs|users)/(?P<user>[^/]+)/installation",
                "jwt",
                self._h_account_installation,
            ),
            ("GET", r"/installation/repositories", "token", self._h_installation_repos),
            ("GET", _REPO, "token", self._h_repo),
            ("GET", _REPO + r"/issues", "token", self._h_list_issues),
            ("POST", _REPO + r"/issues", "token", self._h_create_issue),
            ("GET", _REPO + r"/issues/comments", "token", self._h_repo_comments),
            ("GET", _REPO + r"/issues/comments/(?P<cid>\d+)", "token", self._h_get_comment),
            ("PATCH", _REPO + r"/issues/comments/(?P<cid>\d+)", "token", self._h_edit_comment),
            ("DELETE", _REPO + r"/issues/comments/(?P<cid>\d+)", "token", self._h_delete_comment),
            (
                "GET",
                _REPO + r"/issues/comments/(?P<cid>\d+)/reactions",
                "token",
                self._h_list_reactions,
            ),
            (
                "POST",
                _REPO + r"/issues/comments/(?P<cid>\d+)/reactions",
                "token",
                self._h_add_reaction,
            ),
            (
                "DELETE",
                _REPO + r"/issues/comments/(?P<cid>\d+)/reactions/(?P<rid>\d+)",
                "token",
                self._h_delete_reaction,
            ),
            ("GET", _REPO + r"/issues/(?P<num>\d+)", "token", self._h_get_issue),
            ("PATCH", _REPO + r"/issues/(?P<num>\d+)", "token", self._h_edit_issue),
            ("GET", _REPO + r"/issues/(?P<num>\d+)/labels", "token", self._h_issue_labels),
            ("POST", _REPO + r"/issues/(?P<num>\d+)/labels", "token", self._h_add_labels),
            ("PUT", _REPO + r"/issues/(?P<num>\d+)/labels", "token", self._h_set_labels),
            ("DELETE", _REPO + r"/issues/(?P<num>\d+)/labels", "token", self._h_clear_labels),
            (
                "DELETE",
                _REPO + r"/issues/(?P<num>\d+)/labels/(?P<name>.+)",
                "token",
                self._h_remove_label,
            ),
            ("GET", _REPO + r"/issues/(?P<num>\d+)/comments", "token", self._h_issue_comments),
            ("POST", _REPO + r"/issues/(?P<num>\d+)/comments", "token", self._h_create_comment),
            ("GET", _REPO + r"/labels", "token", self._h_repo_labels),
            ("POST", _REPO + r"/labels", "token", self._h_create_label),
            ("GET", _REPO + r"/labels/(?P<name>.+)", "token", self._h_get_label),
            ("PATCH", _REPO + r"/labels/(?P<name>.+)", "token", self._h_edit_label),
            ("DELETE", _REPO + r"/labels/(?P<name>.+)", "token", self._h_delete_label),
            (
                "GET",
                _REPO + r"/collaborators/(?P<user>[^/]+)/permission",
                "token",
                self._h_permission,
            ),
            ("GET", _REPO + r"/collaborators/(?P<user>[^/]+)", "token", self._h_is_collaborator),
            ("PUT", _REPO + r"/issues/(?P<num>\d+)/lock", "token", self._h_lock),
            ("DELETE", _REPO + r"/issues/(?P<num>\d+)/lock", "token", self._h_unlock),
            ("POST", _REPO + r"/issues/(?P<num>\d+)/assignees", "token", self._h_add_assignees),
            ("GET", _REPO + r"/security-advisories", "token", self._h_list_advisories),
            ("POST", _REPO + r"/security-advisories", "token", self._h_create_advisory),
            (
                "GET",
                _REPO + r"/security-advisories/(?P<ghsa>GHSA[-\w]+)",
                "token",
                self._h_get_advisory,
            ),
            (
                "GET",
                _REPO + r"/private-vulnerability-reporting",
                "token",
                self._h_private_reporting,
            ),
            ("POST", r"/graphql", "token", self._h_graphql),
        ]
        return [(m, re.compile(f"^{p}/?$"), kind, fn) for m, p, kind, fn in table]

    def _route(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        ident: _Identity,
        raw: bytes,
        headers: dict[str, str],
    ) -> _Resp:
        m = re.match(r"^/repositories/(\d+)(/.*)?$", path)
        if m:
            full = self._repo_ids.get(int(m.group(1)))
            if full is None:
                raise _not_found()
            path = f"/repos/{self._repos[full].full_name}{m.group(2) or ''}"
        if method == "HEAD":
            method = "GET"
        moved = re.match(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)(/.*)?$", path)
        if moved:
            r = self._repos.get(f"{moved.group(1)}/{moved.group(2)}".lower())
            number = int(moved.group(3))
            if r is not None and number in r.moved and number not in r.issues:
                # A transferred issue: GitHub answers 301 with its new location (any method).
                target, new_number = r.moved[number]
                url = f"{self._api()}/repos/{target}/issues/{new_number}{moved.group(4) or ''}"
                raise _HTTPError(301, {"message": "Moved Permanently", "url": url,
                                       "documentation_url": DOCS}, {"Location": url})
        for route_method, pattern, kind, handler in self._routes:
            match = pattern.match(path)
            if match is None or route_method != method:
                continue
            if kind == "jwt" and ident.kind != "app":
                raise _HTTPError(401, _error_body(401, "A JSON web token could not be decoded"))
            if kind == "token" and ident.kind == "app":
                raise _HTTPError(403, _error_body(403, "Resource not accessible by integration"))
            params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise _HTTPError(400, _error_body(400, "Problems parsing JSON")) from exc
            ctx = _Ctx(method, path, query, ident, body, headers)
            return handler(ctx, **params)
        raise _not_found()

    # ------------------------------------------------------------------ handler helpers

    def _get_repo(self, ctx: _Ctx, owner: str, repo: str) -> _Repo:
        r = self._repos.get(f"{owner}/{repo}".lower())
        if r is None:
            raise _not_found()
        if ctx.ident.kind == "installation" and not self._installation_sees(
            ctx.ident.installation_id, r
        ):
            raise _not_found()
        if ctx.ident.kind == "user" and r.private and self._role_of(r, ctx.ident.login) == "none":
            raise _not_found()
        return r

    def _installation_sees(self, iid: int | None, repo: _Repo) -> bool:
        inst = self._installations.get(iid or -1)
        if inst is None:
            return False
        if inst.repos is None:
            return repo.owner.lower() == inst.account.lower()
        return repo.full_name.lower() in inst.repos

    def _get_issue(self, repo: _Repo, num: str) -> _Issue:
        issue = repo.issues.get(int(num))
        if issue is None:
            if int(num) in repo.deleted:
                # "If the issue was deleted from a repository where the authenticated user has
                # read access, the API returns a 410 Gone status" (REST docs, Get an issue).
                raise _HTTPError(410, _error_body(410, "This issue was deleted"))
            raise _not_found()
        return issue

    def _get_comment_in(self, repo: _Repo, cid: str) -> _Comment:
        comment = self._comments.get(int(cid))
        if comment is None or comment.repo.lower() != repo.full_name.lower():
            raise _not_found()
        return comment

    def _require_write(self, ctx: _Ctx, repo: _Repo, pr: bool = False) -> None:
        """Installation tokens need ``issues`` (or, on PRs, ``pull_requests``) write."""
        if ctx.ident.kind == "installation":
            perms = ctx.ident.permissions
            ok = perms.get("issues") == "write" or (pr and perms.get("pull_requests") == "write")
            if not ok:
                raise _HTTPError(403, _error_body(403, "Resource not accessible by integration"))
            return
        if ROLES.index(self._role_of(repo, ctx.ident.login)) < ROLES.index("triage"):
            raise _HTTPError(403, _error_body(403, "Must have admin rights to Repository."))

    def _actor(self, ctx: _Ctx) -> str:
        if ctx.ident.kind == "installation":
            self._ensure_user(ctx.ident.login, "Bot")
        return ctx.ident.login

    def _paginate(self, ctx: _Ctx, items: Sequence[Any]) -> tuple[list[Any], dict[str, str]]:
        params = dict(ctx.query)
        try:
            per_page = int(params.get("per_page", self.per_page_default))
            page = int(params.get("page", 1))
        except ValueError as exc:
            raise _HTTPError(400, _error_body(400, "Invalid pagination parameter")) from exc
        per_page = min(max(per_page, 1), 100)
        page = max(page, 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = list(items[(page - 1) * per_page : page * per_page])
        if last == 1 and page == 1:
            return chunk, {}
        prefix = ctx.path
        m = re.match(_REPO + r"(/.*)?$", ctx.path)
        if m:
            r = self._repos[f"{m.group('owner')}/{m.group('repo')}".lower()]
            prefix = f"/repositories/{r.id}{m.group(3) or ''}"
        base = [(k, v) for k, v in ctx.query if k != "page"]

        def link(p: int) -> str:
            qs = urllib.parse.urlencode([*base, ("page", str(p))])
            return f"{self._api()}{prefix}?{qs}"

        links: list[str] = []
        if page > 1:
            links.append(f'<{link(min(page - 1, last))}>; rel="prev"')
        if page < last:
            links.append(f'<{link(page + 1)}>; rel="next"')
            links.append(f'<{link(last)}>; rel="last"')
        if page > 1:
            links.append(f'<{link(1)}>; rel="first"')
        return chunk, {"Link": ", ".join(links)}

    def _record(self, repo: _Repo, number: int | None, what: str) -> None:
        where = repo.full_name if number is None else f"{repo.full_name}#{number}"
        self.writes.append(f"github:{where}:{what}")

    def _set_state(self, issue: _Issue, state: str, reason: str | None = None) -> None:
        if state == issue.state:
            return
        issue.state = state
        if state == "closed":
            issue.closed_at = self.now()
            issue.state_reason = reason or "completed"
        else:
            issue.closed_at = None
            issue.state_reason = "reopened"

    @staticmethod
    def _label_names(body: Any, key: str = "labels") -> list[str]:
        items = body.get(key, []) if isinstance(body, dict) else body
        if items is None:
            items = []
        if not isinstance(items, list):
            raise _validation("Label", "labels", "invalid")
        names: list[str] = []
        for item in items:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str):
                raise _validation("Label", "name", "invalid")
            if not name.strip() or len(name) > MAX_LABEL_NAME:
                raise _validation("Label", "name", "invalid")
            names.append(name)
        return names

    def _apply_labels(
        self, repo: _Repo, issue: _Issue, names: Sequence[str], replace: bool
    ) -> None:
        before = list(issue.labels)
        after = [] if replace else list(before)
        for name in names:
            label = self._label_for(repo, name, create=True)
            assert label is not None
            if label.name.lower() not in after:
                after.append(label.name.lower())
        issue.labels = after
        for key in after:
            if key not in before:
                self._record(repo, issue.number, f"+label {repo.labels[key].name}")
        for key in before:
            if key not in after:
                self._record(repo, issue.number, f"-label {repo.labels[key].name}")
        if before != after:
            issue.updated_at = max(self.now(), issue.updated_at)

    def _issue_labels_json(self, repo: _Repo, issue: _Issue) -> list[dict[str, Any]]:
        return [self._label_json(repo, repo.labels[k]) for k in issue.labels]

    # ------------------------------------------------------------------ handlers: users/app

    def _h_get_user(self, ctx: _Ctx) -> _Resp:
        if ctx.ident.kind == "installation":
            raise _HTTPError(403, _error_body(403, "Resource not accessible by integration"))
        data = self._user_json(ctx.ident.login)
        data.update(
            {
                "name": ctx.ident.login,
                "company": None,
                "blog": "",
                "location": None,
                "email": None,
                "hireable": None,
                "bio": None,
                "twitter_username": None,
                "public_repos": 0,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": "2020-01-01T00:00:00Z",
                "updated_at": "2020-01-01T00:00:00Z",
            }
        )
        return _Resp(200, data)

    def _h_user(self, ctx: _Ctx, user: str) -> _Resp:
        return _Resp(200, self._user_json(user))

    def _h_org(self, ctx: _Ctx, user: str) -> _Resp:
        u = self._users.get(user.lower())
        if u is None or u.type != "Organization":
            raise _not_found()
        api = self._api()
        return _Resp(
            200,
            {
                "login": u.login,
                "id": u.id,
                "node_id": _node_id("O_", u.id),
                "url": f"{api}/orgs/{u.login}",
                "repos_url": f"{api}/orgs/{u.login}/repos",
                "events_url": f"{api}/orgs/{u.login}/events",
                "hooks_url": f"{api}/orgs/{u.login}/hooks",
                "issues_url": f"{api}/orgs/{u.login}/issues",
                "members_url": f"{api}/orgs/{u.login}/members{{/member}}",
                "public_members_url": f"{api}/orgs/{u.login}/public_members{{/member}}",
                "avatar_url": f"https://avatars.githubusercontent.com/u/{u.id}?v=4",
                "description": None,
                "html_url": f"https://github.com/{u.login}",
                "type": "Organization",
                "created_at": "2020-01-01T00:00:00Z",
                "updated_at": "2020-01-01T00:00:00Z",
            },
        )

    def _visible_repos(self, ctx: _Ctx, repos: Iterable[_Repo]) -> list[_Repo]:
        out = []
        for r in repos:
            if ctx.ident.kind == "installation":
                if self._installation_sees(ctx.ident.installation_id, r):
                    out.append(r)
            elif not r.private or self._role_of(r, ctx.ident.login) != "none":
                out.append(r)
        return sorted(out, key=lambda r: r.full_name.lower())

    def _h_owner_repos(self, ctx: _Ctx, user: str) -> _Resp:
        u = self._users.get(user.lower())
        if u is None or (ctx.path.startswith("/orgs/") and u.type != "Organization"):
            raise _not_found()
        repos = self._visible_repos(
            ctx, (r for r in self._repos.values() if r.owner.lower() == user.lower())
        )
        page, headers = self._paginate(ctx, repos)
        return _Resp(200, [self._repo_json(r, ctx.ident) for r in page], headers)

    def _h_user_repos(self, ctx: _Ctx) -> _Resp:
        if ctx.ident.kind != "user":
            raise _HTTPError(403, _error_body(403, "Resource not accessible by integration"))
        repos = [
            r
            for r in self._repos.values()
            if r.owner.lower() == ctx.ident.login.lower()
            or r.roles.get(ctx.ident.login.lower(), "none") != "none"
        ]
        page, headers = self._paginate(ctx, sorted(repos, key=lambda r: r.full_name.lower()))
        return _Resp(200, [self._repo_json(r, ctx.ident) for r in page], headers)

    def _h_rate_limit(self, ctx: _Ctx) -> _Resp:
        return _Resp(200, self._rate_json())

    def _h_app(self, ctx: _Ctx) -> _Resp:
        return _Resp(200, self._app_json())

    def _h_installations(self, ctx: _Ctx) -> _Resp:
        items = [self._installation_json(i) for i in self._installations.values()]
        page, headers = self._paginate(ctx, items)
        return _Resp(200, page, headers)

    def _h_installation(self, ctx: _Ctx, iid: str) -> _Resp:
        inst = self._installations.get(int(iid))
        if inst is None:
            raise _not_found()
        return _Resp(200, self._installation_json(inst))

    def _h_token(self, ctx: _Ctx, iid: str) -> _Resp:
        inst = self._installations.get(int(iid))
        if inst is None:
            raise _not_found(
                "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"
            )
        perms = dict(inst.permissions)
        requested = ctx.body.get("permissions") if isinstance(ctx.body, dict) else None
        if requested:
            for key, level in requested.items():
                have = inst.permissions.get(key)
                if have is None or (level == "write" and have != "write"):
                    raise _validation("Installation", "permissions", "invalid")
            perms = dict(requested)
        token = "ghs_" + secrets.token_urlsafe(27).replace("-", "A").replace("_", "b")[:36]
        expires = self.now() + self.token_lifetime
        self._issued[token] = _IssuedToken(int(iid), expires, perms)
        return _Resp(
            201,
            {
                "token": token,
                "expires_at": _iso(expires),
                "permissions": perms,
                "repository_selection": "all" if inst.repos is None else "selected",
            },
        )

    def _h_repo_installation(self, ctx: _Ctx, owner: str, repo: str) -> _Resp:
        r = self._repos.get(f"{owner}/{repo}".lower())
        if r is not None:
            for inst in self._installations.values():
                if self._installation_sees(inst.id, r):
                    return _Resp(200, self._installation_json(inst))
        raise _not_found(
            "https://docs.github.com/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app"
        )

    def _h_account_installation(self, ctx: _Ctx, user: str) -> _Resp:
        # /orgs/{user}/installation is 404 for a user account; /users/{user}/... serves both.
        u = self._users.get(user.lower())
        if ctx.path.startswith("/orgs/") and (u is None or u.type != "Organization"):
            raise _not_found()
        for inst in self._installations.values():
            if inst.account.lower() == user.lower():
                return _Resp(200, self._installation_json(inst))
        raise _not_found()

    def _h_installation_repos(self, ctx: _Ctx) -> _Resp:
        if ctx.ident.kind != "installation":
            raise _HTTPError(
                403,
                _error_body(
                    403,
                    "You must authenticate with an installation access token in order to list "
                    "repositories for an installation.",
                ),
            )
        repos = self._visible_repos(ctx, self._repos.values())
        page, headers = self._paginate(ctx, repos)
        inst = self._installations[ctx.ident.installation_id or -1]
        return _Resp(
            200,
            {
                "total_count": len(repos),
                "repository_selection": "all" if inst.repos is None else "selected",
                "repositories": [self._repo_json(r, ctx.ident) for r in page],
            },
            headers,
        )

    # ------------------------------------------------------------------ handlers: repos/issues

    def _h_repo(self, ctx: _Ctx, owner: str, repo: str) -> _Resp:
        return _Resp(200, self._repo_json(self._get_repo(ctx, owner, repo), ctx.ident))

    def _h_list_issues(self, ctx: _Ctx, owner: str, repo: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        q = dict(ctx.query)
        state = q.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _validation("Issue", "state", "invalid")
        items = [i for i in r.issues.values() if state == "all" or i.state == state]
        if q.get("labels"):
            wanted = {x.strip().lower() for x in q["labels"].split(",") if x.strip()}
            items = [i for i in items if wanted <= set(i.labels)]
        if q.get("creator"):
            items = [i for i in items if i.user.lower() == q["creator"].lower()]
        assignee = q.get("assignee")
        if assignee == "none":
            items = [i for i in items if not i.assignees]
        elif assignee == "*":
            items = [i for i in items if i.assignees]
        elif assignee:
            items = [i for i in items if assignee.lower() in {a.lower() for a in i.assignees}]
        if q.get("since"):
            try:
                since = _parse_iso(q["since"])
            except ValueError as exc:
                raise _validation("Issue", "since", "invalid") from exc
            items = [i for i in items if int(i.updated_at) >= int(since)]
        sort = q.get("sort", "created")
        keyfn: Callable[[_Issue], tuple[float, int]] = {
            "created": lambda i: (int(i.created_at), i.number),
            "updated": lambda i: (int(i.updated_at), i.number),
            "comments": lambda i: (len(i.comment_ids), i.number),
        }.get(sort, lambda i: (int(i.created_at), i.number))
        items.sort(key=keyfn, reverse=q.get("direction", "desc") != "asc")
        page, headers = self._paginate(ctx, items)
        return _Resp(200, [self._issue_json(r, i) for i in page], headers)

    def _h_create_issue(self, ctx: _Ctx, owner: str, repo: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _validation("Issue", "title", "missing_field")
        number = r.next_number
        r.next_number += 1
        now = self.now()
        issue = _Issue(
            id=self._next_id(),
            number=number,
            title=title,
            body=body.get("body"),
            user=self._actor(ctx),
            state="open",
            created_at=now,
            updated_at=now,
            assignees=list(body.get("assignees") or []),
        )
        r.issues[number] = issue
        self._record(r, number, "issue+")
        names = self._label_names(body) if body.get("labels") else []
        for name in names:
            label = self._label_for(r, name, create=True)
            assert label is not None
            if label.name.lower() not in issue.labels:
                issue.labels.append(label.name.lower())
        return _Resp(
            201,
            self._issue_json(r, issue),
            {"Location": f"{self._api()}/repos/{r.full_name}/issues/{number}"},
        )

    def _h_get_issue(self, ctx: _Ctx, owner: str, repo: str, num: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        return _Resp(200, self._issue_json(r, self._get_issue(r, num)))

    def _h_edit_issue(self, ctx: _Ctx, owner: str, repo: str, num: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        issue = self._get_issue(r, num)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        self._require_write(ctx, r, issue.pull_request)
        changed = False
        for key in ("title", "body"):
            if key in body and body[key] != getattr(issue, key):
                if key == "title" and not (isinstance(body[key], str) and body[key].strip()):
                    raise _validation("Issue", "title", "missing_field")
                setattr(issue, key, body[key])
                self._record(r, issue.number, f"issue~ {key}")
                changed = True
        if "state" in body:
            if body["state"] not in ("open", "closed"):
                raise _validation("Issue", "state", "invalid")
            if body["state"] != issue.state:
                self._set_state(issue, body["state"], body.get("state_reason"))
                self._record(r, issue.number, f"issue~ state={issue.state}")
                changed = True
        if "labels" in body:
            self._apply_labels(r, issue, self._label_names(body), replace=True)
        if "assignees" in body and body["assignees"] != issue.assignees:
            issue.assignees = list(body["assignees"] or [])
            self._record(r, issue.number, "issue~ assignees")
            changed = True
        if changed:
            issue.updated_at = max(self.now(), issue.updated_at)
        return _Resp(200, self._issue_json(r, issue))

    # ------------------------------------------------------------------ handlers: labels

    def _h_issue_labels(self, ctx: _Ctx, owner: str, repo: str, num: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        items = self._issue_labels_json(r, self._get_issue(r, num))
        page, headers = self._paginate(ctx, items)
        return _Resp(200, page, headers)

    def _h_add_labels(self, ctx: _Ctx, owner: str, repo: str, num: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        issue = self._get_issue(r, num)
        self._require_write(ctx, r, issue.pull_request)
        self._apply_labels(r, issue, self._label_names(ctx.body), replace=False)
        return _Resp(200, self._issue_labels_json(r, issue))

    def _h_set_labels(self, ctx: _Ctx, owner: str, repo: str, num: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        issue = self._get_issue(r, num)
        self._require_write(ctx, r, issue.pull_request)
        self._apply_labels(r, issue, self._label_names(ctx.body), replace=True)
        return _Resp(200, self._issue_labels_json(r, issue))

    def _h_clear_labels(self, ctx: _Ctx, owner: str, repo: str, num: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        issue = self._get_issue(r, num)
        self._require_write(ctx, r, issue.pull_request)
        self._apply_labels(r, issue, [], replace=True)
        return _Resp(204)

    def _h_remove_label(self, ctx: _Ctx, owner: str, repo: str, num: str, name: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        issue = self._get_issue(r, num)
        self._require_write(ctx, r, issue.pull_request)
        key = name.lower()
        if key not in issue.labels:
            raise _HTTPError(
                404,
                _error_body(
                    404,
                    "Label does not exist",
                    "https://docs.github.com/rest/issues/labels#remove-a-label-from-an-issue",
                ),
            )
        issue.labels.remove(key)
        issue.updated_at = max(self.now(), issue.updated_at)
        self._record(r, issue.number, f"-label {r.labels[key].name}")
        return _Resp(200, self._issue_labels_json(r, issue))

    def _h_repo_labels(self, ctx: _Ctx, owner: str, repo: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        items = [self._label_json(r, lb) for lb in sorted(r.labels.values(), key=_label_key)]
        page, headers = self._paginate(ctx, items)
        return _Resp(200, page, headers)

    def _h_create_label(self, ctx: _Ctx, owner: str, repo: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        self._require_write(ctx, r)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _validation("Label", "name", "missing_field")
        if len(name) > MAX_LABEL_NAME:
            raise _validation("Label", "name", "invalid")
        color = str(body.get("color", AUTO_LABEL_COLOR)).removeprefix("#")
        if not re.fullmatch(r"[0-9a-fA-F]{6}", color):
            raise _validation("Label", "color", "invalid")
        if name.lower() in r.labels:
            raise _validation("Label", "name", "already_exists")
        label = _Label(self._next_id(), name, color.lower(), body.get("description"))
        r.labels[name.lower()] = label
        self._record(r, None, f"label+ {name}")
        return _Resp(201, self._label_json(r, label))

    def _h_get_label(self, ctx: _Ctx, owner: str, repo: str, name: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        label = r.labels.get(name.lower())
        if label is None:
            raise _not_found()
        return _Resp(200, self._label_json(r, label))

    def _h_edit_label(self, ctx: _Ctx, owner: str, repo: str, name: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        self._require_write(ctx, r)
        label = r.labels.get(name.lower())
        if label is None:
            raise _not_found()
        body = ctx.body if isinstance(ctx.body, dict) else {}
        if "color" in body:
            color = str(body["color"]).removeprefix("#")
            if not re.fullmatch(r"[0-9a-fA-F]{6}", color):
                raise _validation("Label", "color", "invalid")
            label.color = color.lower()
        if "description" in body:
            label.description = body["description"]
        new = body.get("new_name")
        if isinstance(new, str) and new and new != label.name:
            if new.lower() != label.name.lower() and new.lower() in r.labels:
                raise _validation("Label", "name", "already_exists")
            old_key = label.name.lower()
            del r.labels[old_key]
            label.name = new
            r.labels[new.lower()] = label
            for issue in r.issues.values():
                issue.labels = [new.lower() if k == old_key else k for k in issue.labels]
        self._record(r, None, f"label~ {label.name}")
        return _Resp(200, self._label_json(r, label))

    def _h_delete_label(self, ctx: _Ctx, owner: str, repo: str, name: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        self._require_write(ctx, r)
        label = r.labels.pop(name.lower(), None)
        if label is None:
            raise _not_found()
        for issue in r.issues.values():
            if name.lower() in issue.labels:
                issue.labels.remove(name.lower())
        self._record(r, None, f"label- {label.name}")
        return _Resp(204)

    # ------------------------------------------------------------------ handlers: comments

    def _h_issue_comments(self, ctx: _Ctx, owner: str, repo: str, num: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        issue = self._get_issue(r, num)
        items = [self._comments[c] for c in issue.comment_ids]
        since = dict(ctx.query).get("since")
        if since:
            try:
                ts = _parse_iso(since)
            except ValueError as exc:
                raise _validation("IssueComment", "since", "invalid") from exc
            items = [c for c in items if int(c.updated_at) >= int(ts)]
        page, headers = self._paginate(ctx, items)
        return _Resp(200, [self._comment_json(c) for c in page], headers)

    def _h_repo_comments(self, ctx: _Ctx, owner: str, repo: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        q = dict(ctx.query)
        items = [c for c in self._comments.values() if c.repo.lower() == r.full_name.lower()]
        if q.get("since"):
            ts = _parse_iso(q["since"])
            items = [c for c in items if int(c.updated_at) >= int(ts)]
        if q.get("sort") == "updated":
            items.sort(key=lambda c: (int(c.updated_at), c.id))
        else:
            items.sort(key=lambda c: c.id)
        if q.get("sort") and q.get("direction") == "desc":
            items.reverse()
        page, headers = self._paginate(ctx, items)
        return _Resp(200, [self._comment_json(c) for c in page], headers)

    def _check_comment_body(self, body: Any) -> str:
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise _validation("IssueComment", "body", "missing_field")
        if len(text) > MAX_COMMENT_BODY:
            raise _validation(
                "IssueComment",
                "body",
                "custom",
                f"body is too long (maximum is {MAX_COMMENT_BODY} characters)",
            )
        return text

    def _h_create_comment(self, ctx: _Ctx, owner: str, repo: str, num: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        issue = self._get_issue(r, num)
        self._require_write(ctx, r, issue.pull_request)
        text = self._check_comment_body(ctx.body)
        if issue.locked and self._role_of(r, ctx.ident.login) not in ("write", "maintain", "admin"):
            raise _HTTPError(
                403, _error_body(403, "Unable to create comment because issue is locked.")
            )
        now = self.now()
        comment = _Comment(
            id=self._next_id(),
            repo=r.full_name,
            number=issue.number,
            user=self._actor(ctx),
            body=text,
            created_at=now,
            updated_at=now,
            via_app=ctx.ident.kind == "installation",
        )
        self._comments[comment.id] = comment
        issue.comment_ids.append(comment.id)
        issue.updated_at = max(now, issue.updated_at)
        self._record(r, issue.number, f"comment+ {comment.id}")
        data = self._comment_json(comment)
        return _Resp(201, data, {"Location": data["url"]})

    def _h_get_comment(self, ctx: _Ctx, owner: str, repo: str, cid: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        return _Resp(200, self._comment_json(self._get_comment_in(r, cid)))

    def _h_edit_comment(self, ctx: _Ctx, owner: str, repo: str, cid: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        comment = self._get_comment_in(r, cid)
        if ctx.ident.kind == "user" and comment.user.lower() != ctx.ident.login.lower():
            self._require_write(ctx, r)
        text = self._check_comment_body(ctx.body)
        comment.body = text
        comment.updated_at = max(self.now(), comment.updated_at)
        self._record(r, comment.number, f"comment~ {comment.id}")
        return _Resp(200, self._comment_json(comment))

    def _h_delete_comment(self, ctx: _Ctx, owner: str, repo: str, cid: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        comment = self._get_comment_in(r, cid)
        if ctx.ident.kind == "user" and comment.user.lower() != ctx.ident.login.lower():
            self._require_write(ctx, r)
        del self._comments[comment.id]
        r.issues[comment.number].comment_ids.remove(comment.id)
        self._record(r, comment.number, f"comment- {comment.id}")
        return _Resp(204)

    def _h_list_reactions(self, ctx: _Ctx, owner: str, repo: str, cid: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        comment = self._get_comment_in(r, cid)
        items = list(comment.reactions)
        content = dict(ctx.query).get("content")
        if content:
            items = [x for x in items if x.content == content]
        page, headers = self._paginate(ctx, items)
        return _Resp(200, [self._reaction_json(x) for x in page], headers)

    def _h_add_reaction(self, ctx: _Ctx, owner: str, repo: str, cid: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        comment = self._get_comment_in(r, cid)
        content = ctx.body.get("content") if isinstance(ctx.body, dict) else None
        if content not in REACTIONS:
            raise _validation("Reaction", "content", "invalid")
        actor = self._actor(ctx)
        for existing in comment.reactions:
            if existing.user.lower() == actor.lower() and existing.content == content:
                return _Resp(200, self._reaction_json(existing))
        reaction = _Reaction(self._next_id(), actor, content, self.now())
        comment.reactions.append(reaction)
        self._record(r, comment.number, f"reaction+ {comment.id} {content}")
        return _Resp(201, self._reaction_json(reaction))

    def _h_delete_reaction(self, ctx: _Ctx, owner: str, repo: str, cid: str, rid: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        comment = self._get_comment_in(r, cid)
        for existing in comment.reactions:
            if existing.id == int(rid):
                comment.reactions.remove(existing)
                self._record(r, comment.number, f"reaction- {comment.id} {existing.content}")
                return _Resp(204)
        raise _not_found()

    # ------------------------------------------------------------------ handlers: collaborators

    def _h_permission(self, ctx: _Ctx, owner: str, repo: str, user: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        if ctx.ident.kind == "user" and ROLES.index(
            self._role_of(r, ctx.ident.login)
        ) < ROLES.index("write"):
            raise _HTTPError(
                403,
                _error_body(
                    403,
                    "Must have push access to view collaborator permission.",
                    "https://docs.github.com/rest/collaborators/collaborators"
                    "#get-repository-permissions-for-a-user",
                ),
            )
        role = self._role_of(r, user)
        user_data = self._user_json(user)
        user_data["permissions"] = self._permissions_obj(role)
        user_data["role_name"] = role
        return _Resp(
            200,
            {
                "permission": LEGACY_PERMISSION[role],
                "role_name": role,
                "user": user_data,
            },
        )

    def _h_is_collaborator(self, ctx: _Ctx, owner: str, repo: str, user: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        if r.roles.get(user.lower(), "none") != "none" or user.lower() == r.owner.lower():
            return _Resp(204)
        raise _not_found()


    # ------------------------------------------------------------------ handlers: hand-off

    def _h_lock(self, ctx: _Ctx, owner: str, repo: str, num: str) -> _Resp:
        """``PUT .../lock``: 204; ``lock_reason`` optional, one of GitHub's four."""
        r = self._get_repo(ctx, owner, repo)
        issue = self._get_issue(r, num)
        self._require_write(ctx, r, issue.pull_request)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        reason = body.get("lock_reason")
        if reason is not None and reason not in LOCK_REASONS:
            raise _validation("Issue", "lock_reason", "invalid")
        if not issue.locked:
            self._record(r, issue.number, "lock")
        issue.locked, issue.lock_reason = True, reason
        return _Resp(204)

    def _h_unlock(self, ctx: _Ctx, owner: str, repo: str, num: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        issue = self._get_issue(r, num)
        self._require_write(ctx, r, issue.pull_request)
        if issue.locked:
            self._record(r, issue.number, "unlock")
        issue.locked, issue.lock_reason = False, None
        return _Resp(204)

    def _h_add_assignees(self, ctx: _Ctx, owner: str, repo: str, num: str) -> _Resp:
        """201 with the issue; logins that cannot be assigned are silently left out."""
        r = self._get_repo(ctx, owner, repo)
        issue = self._get_issue(r, num)
        self._require_write(ctx, r, issue.pull_request)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        for login in body.get("assignees") or []:
            known = str(login).lower() in self._users
            if known and self._role_of(r, str(login)) != "none" and login not in issue.assignees:
                issue.assignees.append(str(login))
                self._record(r, issue.number, f"assignee+ {login}")
        return _Resp(201, self._issue_json(r, issue))

    def _can_advisories(self, ctx: _Ctx, repo: _Repo, write: bool) -> None:
        """Repository advisories: admins / security managers; Apps need the
        ``repository_advisories`` permission."""
        if ctx.ident.kind == "installation":
            have = ctx.ident.permissions.get("repository_advisories")
            if have != "write" and (write or have != "read"):
                raise _HTTPError(403, _error_body(403, "Resource not accessible by integration"))
            return
        if self._role_of(repo, ctx.ident.login) != "admin":
            raise _not_found() if not write else _HTTPError(
                403, _error_body(403, "You do not have permission to create a security "
                                      "advisory for this repository."))

    def _advisory_json(self, repo: _Repo, adv: dict[str, Any]) -> dict[str, Any]:
        ghsa = adv["ghsa_id"]
        return {
            "ghsa_id": ghsa, "cve_id": None,
            "url": f"{self._api()}/repos/{repo.full_name}/security-advisories/{ghsa}",
            "html_url": f"https://github.com/{repo.full_name}/security/advisories/{ghsa}",
            "summary": adv["summary"], "description": adv["description"],
            "severity": adv["severity"],
            "author": self._user_json(adv["author"]), "publisher": None,
            "identifiers": [{"value": ghsa, "type": "GHSA"}],
            "state": adv["state"],
            "created_at": _iso(adv["created_at"]), "updated_at": _iso(adv["created_at"]),
            "published_at": None, "closed_at": None, "withdrawn_at": None, "submission": None,
            "vulnerabilities": adv["vulnerabilities"],
            "cvss": {"vector_string": None, "score": None},
            "cvss_severities": {"cvss_v3": {"vector_string": None, "score": None},
                                "cvss_v4": {"vector_string": None, "score": None}},
            "cwes": [], "cwe_ids": adv["cwe_ids"], "credits": [], "credits_detailed": [],
            "collaborating_users": [], "collaborating_teams": [], "private_fork": None,
        }

    def _h_list_advisories(self, ctx: _Ctx, owner: str, repo: str) -> _Resp:
        """Unpublished advisories are listed only to admins / security managers (and Apps
        with the permission); anyone else sees the published ones."""
        r = self._get_repo(ctx, owner, repo)
        try:
            self._can_advisories(ctx, r, write=False)
            privileged = True
        except _HTTPError:
            if ctx.ident.kind == "installation":
                raise
            privileged = False
        state = dict(ctx.query).get("state")
        items = [self._advisory_json(r, a) for a in r.advisories
                 if (state is None or a["state"] == state)
                 and (privileged or a["state"] == "published")]
        items.reverse()  # newest first (sort=created, direction=desc is the default)
        page, headers = self._paginate(ctx, items)
        return _Resp(200, page, headers)

    def _h_get_advisory(self, ctx: _Ctx, owner: str, repo: str, ghsa: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        self._can_advisories(ctx, r, write=False)
        for adv in r.advisories:
            if adv["ghsa_id"] == ghsa:
                return _Resp(200, self._advisory_json(r, adv))
        raise _not_found()

    def _h_create_advisory(self, ctx: _Ctx, owner: str, repo: str) -> _Resp:
        """POST: a draft advisory (201). ``summary``, ``description`` and ``vulnerabilities``
        are required; ``severity`` and ``cvss_vector_string`` exclude each other."""
        r = self._get_repo(ctx, owner, repo)
        self._can_advisories(ctx, r, write=True)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        for key in ("summary", "description"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise _validation("RepositoryAdvisory", key, "missing_field")
        if not isinstance(body.get("vulnerabilities"), list):
            raise _validation("RepositoryAdvisory", "vulnerabilities", "missing_field")
        if body.get("severity") and body.get("cvss_vector_string"):
            raise _validation("RepositoryAdvisory", "severity", "invalid",
                              "Cannot specify both severity and cvss_vector_string")
        if body.get("severity") not in (None, "critical", "high", "medium", "low"):
            raise _validation("RepositoryAdvisory", "severity", "invalid")
        # GHSA ids use this alphabet, in three groups of four.
        n, chars = self._next_id(), []
        for _ in range(12):
            n, i = divmod(n * 7919 + 17, len(GHSA_ALPHABET))
            chars.append(GHSA_ALPHABET[i])
        ghsa = "GHSA-" + "-".join("".join(chars[k:k + 4]) for k in (0, 4, 8))
        adv = {"ghsa_id": ghsa, "summary": body["summary"], "description": body["description"],
               "severity": body.get("severity"), "author": self._actor(ctx), "state": "draft",
               "created_at": self.now(), "vulnerabilities": body["vulnerabilities"],
               "cwe_ids": list(body.get("cwe_ids") or [])}
        r.advisories.append(adv)
        self._record(r, None, f"advisory+ {ghsa}")
        return _Resp(201, self._advisory_json(r, adv))

    def _h_private_reporting(self, ctx: _Ctx, owner: str, repo: str) -> _Resp:
        r = self._get_repo(ctx, owner, repo)
        return _Resp(200, {"enabled": r.private_vulnerability_reporting})

    def _gql_error(self, kind: str, message: str, path: list[str]) -> dict[str, Any]:
        return {"type": kind, "path": path, "locations": [{"line": 2, "column": 3}],
                "message": message}

    def _h_graphql(self, ctx: _Ctx) -> _Resp:
        """The two GraphQL operations the bot sends: the issue/repository node lookup and
        ``transferIssue``. Anything else is answered like an unknown field."""
        body = ctx.body if isinstance(ctx.body, dict) else {}
        query = str(body.get("query") or "")
        raw_vars = body.get("variables")
        variables: dict[str, Any] = raw_vars if isinstance(raw_vars, dict) else {}
        self.graphql_queries.append(query)
        if "transferIssue" in query:
            return _Resp(200, self._gql_transfer(ctx, variables))
        if "repository(" in query:
            return _Resp(200, self._gql_lookup(ctx, variables))
        return _Resp(200, {"errors": [{"path": ["query"], "extensions": {
            "code": "undefinedField"}, "locations": [{"line": 1, "column": 1}],
            "message": "Field is not supported by the fake"}]})

    def _gql_repo(self, ctx: _Ctx, owner: str, name: str) -> _Repo | None:
        try:
            return self._get_repo(ctx, owner, name)
        except _HTTPError:
            return None

    def _gql_lookup(self, ctx: _Ctx, v: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        errors = []
        src = self._gql_repo(ctx, str(v.get("owner")), str(v.get("name")))
        if src is None:
            data["repository"] = None
            errors.append(self._gql_error("NOT_FOUND", "Could not resolve to a Repository with "
                                          f"the name '{v.get('owner')}/{v.get('name')}'.",
                                          ["repository"]))
        else:
            number = int(v.get("number") or 0)
            repo, issue = src, src.issues.get(number)
            if issue is None and number in src.moved:  # GitHub follows a transfer
                target, new_number = src.moved[number]
                repo = self._repo(target)
                issue = repo.issues.get(new_number)
            if issue is None:
                data["repository"] = {"issue": None}
                errors.append(self._gql_error("NOT_FOUND", "Could not resolve to an Issue with "
                                              f"the number of {number}.",
                                              ["repository", "issue"]))
            else:
                data["repository"] = {"issue": {
                    "id": _node_id("I_", issue.id), "number": issue.number,
                    "repository": {"nameWithOwner": repo.full_name}}}
        if "towner" in v:
            target_repo = self._gql_repo(ctx, str(v.get("towner")), str(v.get("tname")))
            data["target"] = None if target_repo is None else {
                "id": _node_id("R_", target_repo.id), "nameWithOwner": target_repo.full_name}
            if target_repo is None:
                errors.append(self._gql_error("NOT_FOUND", "Could not resolve to a Repository "
                                              f"with the name '{v.get('towner')}/"
                                              f"{v.get('tname')}'.", ["target"]))
        out: dict[str, Any] = {"data": data}
        if errors:
            out["errors"] = errors
        return out

    def _gql_transfer(self, ctx: _Ctx, v: dict[str, Any]) -> dict[str, Any]:
        """``transferIssue``: needs write on both repositories (same owner; never from a
        private to a public one); comments move, labels are created when missing."""
        found: tuple[_Repo, _Issue] | None = None
        for r in self._repos.values():
            for issue in r.issues.values():
                if _node_id("I_", issue.id) == v.get("issue"):
                    found = (r, issue)
        target = next((r for r in self._repos.values() if _node_id("R_", r.id) == v.get("repo")),
                      None)
        path = ["transferIssue"]
        if found is None or target is None or self._gql_repo(ctx, target.owner,
                                                             target.name) is None:
            return {"data": {"transferIssue": None}, "errors": [self._gql_error(
                "NOT_FOUND", f"Could not resolve to a node with the global id of "
                f"'{v.get('issue') if found is None else v.get('repo')}'", path)]}
        src, issue = found
        for repo in (src, target):
            try:
                self._require_write(ctx, repo, False)
            except _HTTPError:
                return {"data": {"transferIssue": None}, "errors": [self._gql_error(
                    "FORBIDDEN", f"{ctx.ident.login} does not have the correct permissions to "
                    "execute `TransferIssue`", path)]}
        if src.owner.lower() != target.owner.lower() or (src.private and not target.private):
            return {"data": {"transferIssue": None}, "errors": [self._gql_error(
                "UNPROCESSABLE", "Issues can only be transferred between repositories of the "
                "same owner, and not from a private to a public repository.", path)]}
        del src.issues[issue.number]
        old_number = issue.number
        issue.number = target.next_number
        target.next_number += 1
        names = [src.labels[k].name for k in issue.labels]
        issue.labels = []
        for name in names:
            label = self._label_for(target, name, create=True)
            assert label is not None
            issue.labels.append(label.name.lower())
        target.issues[issue.number] = issue
        src.moved[old_number] = (target.full_name, issue.number)
        for cid in issue.comment_ids:
            self._comments[cid].repo = target.full_name
            self._comments[cid].number = issue.number
        self._record(src, old_number, f"transfer {target.full_name}#{issue.number}")
        return {"data": {"transferIssue": {"issue": {
            "number": issue.number,
            "url": f"https://github.com/{target.full_name}/issues/{issue.number}",
            "repository": {"nameWithOwner": target.full_name}}}}}

    # ------------------------------------------------------------------ test helpers: hand-off

    def set_private_reporting(self, repo: str, enabled: bool = True) -> None:
        """Turn private vulnerability reporting on or off for a repository."""
        with self._lock:
            self._repo(repo).private_vulnerability_reporting = enabled

    def advisories(self, repo: str) -> list[dict[str, Any]]:
        """The repository's security advisories, as the API shows them."""
        with self._lock:
            r = self._repo(repo)
            return [self._advisory_json(r, a) for a in r.advisories]


def _label_key(label: _Label) -> str:
    return label.name.lower()


@dataclass
class _Ctx:
    method: str
    path: str
    query: list[tuple[str, str]]
    ident: _Identity
    body: Any
    headers: dict[str, str]
