"""An in-process fake of the Jira REST API (Cloud v2/v3 and Data Center v2) for tests.

The real ``jira`` library (pycontribs) talks real HTTP to this server on 127.0.0.1; nothing
leaves the machine. State is in memory and guarded by one lock, so the fake is thread-safe.

Quick start::

    with FakeJira("cloud") as fake:
        fake.add_project("PROJ")
        fake.add_user("alice", display_name="Alice")
        fake.grant("alice", "PROJ", "EDIT_ISSUES")
        key = fake.add_issue("PROJ", "Model leaks", "details", labels=["ai"])
        client = JIRA(fake.url, max_retries=0, **fake.auth_kwargs())
        ...
        assert fake.writes == ["jira:PROJ-1:+label threat_model-stealing"]

Helpers (all thread-safe; none of them is recorded in ``writes``)
    ``add_project(key, name)``, ``add_security_level(project, id, name)``, ``add_link_type``,
    ``add_user(handle, display_name=, email=, account_id=, token=)``, ``user(handle)``,
    ``user_id(handle)`` (accountId on Cloud, name on DC), ``auth_kwargs(handle=None)`` (kwargs
    for ``jira.JIRA``), ``grant/revoke(handle, project_or_None, *perms)``, ``has_permission``,
    ``add_issue(project, summary, description, labels=, reporter=, security=, created=,
    updated=)`` -> key, ``edit_issue(key, ...)`` (a human edit; bumps ``updated``),
    ``add_comment(key, body, author=)``, ``issue(key)`` (a plain snapshot), ``issue_keys()``,
    ``requests`` / ``count()`` / ``writes`` / ``clear_log()``, ``fail_next`` / ``delay_next`` /
    ``reset_next``. ``clock=`` injects "now". The bot user (handle ``bot``) holds
    BROWSE_PROJECTS, CREATE_ISSUES, EDIT_ISSUES, ADD_COMMENTS, EDIT/DELETE_OWN_COMMENTS,
    LINK_ISSUES, SET_ISSUE_SECURITY and ADMINISTER_PROJECTS on every project; other users hold
    only what they are granted. Issue reporter defaults to the bot.

Flavours
    ``cloud``: ``/rest/api/2`` and ``/rest/api/3`` (v3 speaks ADF for description and comment
    bodies), basic auth ``email:api_token``, users are ``accountId`` + ``displayName`` +
    ``emailAddress``, ``deploymentType: Cloud``. Search is ``/search/jql`` (``nextPageToken``,
    ``isLast``, no ``total``); the classic ``/search`` answers 410 Gone like Cloud does today.
    ``dc``: ``/rest/api/2`` (and ``latest``) only, ``Authorization: Bearer <PAT>``, users are
    ``name`` + ``key``, ``deploymentType: Server``. Search is ``/search`` with ``startAt``,
    ``maxResults`` and ``total``; ``/search/jql`` is 404. Any other credentials or auth
    scheme gets 401 in both flavours; anonymous requests may only read ``serverInfo``.

Permission checks for *another* user
    * Both flavours: ``GET /user/permission/search?permissions=EDIT_ISSUES&projectKey=P`` plus
      ``accountId=`` (Cloud, exact) or ``username=`` (DC, a *prefix search* over name, display
      name and email: filter the answer for an exact ``name``). Needs the caller to hold
      ADMINISTER_PROJECTS on the project (or global ADMINISTER), else 403.
    * Cloud only: ``POST /permissions/check`` with ``{"accountId", "projectPermissions":
      [{"permissions": [...], "projects": [ids]}]}``. For another user this needs the global
      ADMINISTER permission, else 403 (as Atlassian documents).
    * ``GET /mypermissions`` for the caller (Cloud requires ``permissions=``).

JQL subset (anything else is a 400 naming the fake's limit)
    Clauses joined by ``AND`` (no ``OR``, ``NOT`` or grouping parentheses):
    ``project = X``, ``project in (A, B)``, ``project != X``, ``key = P-1``, ``key in (...)``,
    ``labels = x``, ``labels != x``, ``labels in (...)``, ``labels not in (...)``,
    ``labels is EMPTY``, ``labels is not EMPTY``, ``summary ~ "text"`` (case-insensitive
    substring), ``updated``/``created`` with ``>= > <= < =`` against ``"yyyy-MM-dd"``,
    ``"yyyy/MM/dd"``, either with ``" HH:mm"``, or a relative ``-5d``/``-2w``/``-3h``/``-30m``
    (UTC). ``ORDER BY`` honours ``key``, ``id``, ``created``, ``updated``, ``summary`` with
    ``ASC``/``DESC`` (default ASC). Without ``ORDER BY`` results come newest issue first (id
    descending), a stable choice. Unknown projects give Jira's "The value 'X' does not exist
    for the field 'project'." 400. ``/search/jql`` rejects JQL with no restriction ("Unbounded
    JQL queries are not allowed here...").

Page sizes: ``/search`` default 50, capped at ``dc_search_cap`` (1000); ``/search/jql`` default
50, capped at ``jql_search_cap`` (100) unless only ``id``/``key`` fields are asked for (5000).
``/search/jql`` without ``fields`` returns issue ids only, as Cloud does.

Issue links: ``POST /issueLink {"type", "inwardIssue": A, "outwardIssue": B}`` is stored so
that A's ``issuelinks`` shows ``outwardIssue: B`` and B's shows ``inwardIssue: A``; it is
recorded as ``jira:A:link B`` (``DELETE /issueLink/{id}`` as ``jira:A:unlink B``). ``POST
/issue`` with ``update.issuelinks[].add.outwardIssue`` (or ``inwardIssue``) is honoured too,
though ``JIRA.create_issue`` cannot send ``update`` (post that body raw).

Writes (``fake.writes``) record effective changes made through the API, one string each:
``jira:P-1:+label x``, ``jira:P-1:-label x``, ``jira:P-1:comment+ 10001``, ``jira:P-1:comment~
10001``, ``jira:P-1:comment- 10001``, ``jira:P-1:property bugbar``, ``jira:P-1:property-
bugbar``, ``jira:P-1:security 10001`` (``security none`` when cleared), ``jira:P-1:field
summary`` / ``description``, ``jira:P-1:link SEC-4``, ``jira:SEC-4:created``. A redundant
write (adding a label already present) changes nothing and records nothing; count requests with
``count()`` to catch those.

Faults: ``fail_next`` answers the next matching request(s) with a status (429 carries
``Retry-After: 1`` and Cloud rate-limit headers unless ``headers`` is given), ``delay_next``
sleeps before answering, ``reset_next`` closes the connection without an answer (the client
sees a ConnectionError). ``path_regex`` is ``re.search``-ed against the request path including
the query string. Faults fire before authentication, like an edge proxy.

Where Jira's exact wording or status was not verifiable the fake uses a plausible Jira-style
``{"errorMessages": [...], "errors": {...}}`` body; statuses for missing permissions are 403
(edit, comment, create, link, notifyUsers=false) and 404 for issues the caller cannot browse.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes._http import FakeHandler, FakeHTTPServer, FaultRule

Json = Any

# Project permission key -> (id, display name). IDs follow Jira's internal numbering.
PROJECT_PERMISSIONS: dict[str, tuple[str, str]] = {
    "BROWSE_PROJECTS": ("10", "Browse Projects"),
    "CREATE_ISSUES": ("11", "Create Issues"),
    "EDIT_ISSUES": ("12", "Edit Issues"),
    "ASSIGN_ISSUES": ("13", "Assign Issues"),
    "RESOLVE_ISSUES": ("14", "Resolve Issues"),
    "ADD_COMMENTS": ("15", "Add Comments"),
    "DELETE_ISSUES": ("16", "Delete Issues"),
    "ASSIGNABLE_USER": ("17", "Assignable User"),
    "CLOSE_ISSUES": ("18", "Close Issues"),
    "LINK_ISSUES": ("21", "Link Issues"),
    "ADMINISTER_PROJECTS": ("23", "Administer Projects"),
    "SET_ISSUE_SECURITY": ("26", "Set Issue Security"),
    "MANAGE_WATCHERS": ("32", "Manage Watchers"),
    "EDIT_ALL_COMMENTS": ("34", "Edit All Comments"),
    "EDIT_OWN_COMMENTS": ("35", "Edit Own Comments"),
    "DELETE_ALL_COMMENTS": ("36", "Delete All Comments"),
    "DELETE_OWN_COMMENTS": ("37", "Delete Own Comments"),
    "TRANSITION_ISSUES": ("46", "Transition Issues"),
}
GLOBAL_PERMISSIONS: dict[str, tuple[str, str]] = {
    "ADMINISTER": ("0", "Administer Jira"),
    "USER_PICKER": ("27", "Browse users and groups"),
    "SYSTEM_ADMIN": ("44", "Jira System Administrators"),
}
BOT_DEFAULT_PERMISSIONS = (
    "BROWSE_PROJECTS",
    "CREATE_ISSUES",
    "EDIT_ISSUES",
    "ADD_COMMENTS",
    "EDIT_OWN_COMMENTS",
    "DELETE_OWN_COMMENTS",
    "LINK_ISSUES",
    "SET_ISSUE_SECURITY",
    "ADMINISTER_PROJECTS",
)
DEFAULT_ISSUE_TYPES = (("10001", "Task"), ("10002", "Bug"), ("10003", "Story"))
DEFAULT_LINK_TYPES = (
    ("10000", "Blocks", "is blocked by", "blocks"),
    ("10001", "Cloners", "is cloned by", "clones"),
    ("10002", "Duplicate", "is duplicated by", "duplicates"),
    ("10003", "Relates", "relates to", "relates to"),
)
COMMENT_LIMIT = 32767
PROPERTY_VALUE_LIMIT = 32768
SEARCH_REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
_NOT_SETTABLE = "Field '{0}' cannot be set. It is not on the appropriate screen, or unknown."
_NO_ISSUE = "Issue does not exist or you do not have permission to see it."
_UNSET: Any = object()


class JiraFault(Exception):
    """An error answer in Jira's shape; raised inside handlers."""

    def __init__(
        self,
        status: int,
        messages: list[str] | None = None,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {messages} {errors}")
        self.status = status
        self.body = {"errorMessages": messages or [], "errors": errors or {}}
        self.headers = headers or {}


@dataclass
class User:
    """A Jira user. ``handle`` is the test-side name used by the helper methods."""

    handle: str
    display_name: str
    email: str
    account_id: str
    key: str
    token: str
    active: bool = True


@dataclass
class Project:
    """A project with its issue types and issue security levels."""

    key: str
    id: str
    name: str
    issue_types: list[tuple[str, str]]
    security_levels: dict[str, tuple[str, str]] = field(default_factory=dict)
    counter: int = 0


@dataclass
class CommentRec:
    """A stored comment; ``adf`` is kept when it was written as ADF (v3)."""

    id: str
    author: str
    text: str
    adf: Json | None
    created: datetime
    updated: datetime
    update_author: str


@dataclass
class IssueRec:
    """A stored issue."""

    id: str
    key: str
    project: str
    summary: str
    description: str | None
    description_adf: Json | None
    labels: list[str]
    reporter: str | None
    created: datetime
    updated: datetime
    issuetype: str
    security: str | None = None
    status: str = "To Do"
    comments: list[CommentRec] = field(default_factory=list)
    properties: dict[str, Json] = field(default_factory=dict)
    assignee: str | None = None
    watchers: list[str] = field(default_factory=list)


@dataclass
class LinkRec:
    """An issue link as posted: ``inward`` <outward verb> ``outward``."""

    id: str
    type_id: str
    inward: str
    outward: str


Fault = FaultRule  # an armed fault (see :meth:`FakeJira.fail_next`)


@dataclass
class RecordedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Json
    user: str | None = None
    status: int = 0

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


@dataclass
class _Ctx:
    """Per-request context handed to route handlers."""

    method: str
    version: str
    query: dict[str, list[str]]
    body: Json
    user: User

    def q(self, name: str, default: str | None = None) -> str | None:
        vals = self.query.get(name)
        return vals[-1] if vals else default

    def q_list(self, name: str) -> list[str]:
        out: list[str] = []
        for v in self.query.get(name, []):
            out.extend(p.strip() for p in v.split(",") if p.strip())
        return out


def _ts(dt: datetime) -> str:
    """Jira's timestamp format, e.g. ``2024-05-01T12:00:00.000+0000``."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def text_to_adf(text: str | None) -> Json | None:
    """Wrap plain text in a minimal ADF document (one paragraph per line)."""
    if text is None:
        return None
    content = []
    for line in text.split("\n"):
        para: dict[str, Any] = {"type": "paragraph", "content": []}
        if line:
            para["content"] = [{"type": "text", "text": line}]
        content.append(para)
    return {"type": "doc", "version": 1, "content": content}


def adf_to_text(doc: Json) -> str:
    """Flatten an ADF document to plain text (blocks become lines)."""
    blocks = {"paragraph", "heading", "codeBlock", "blockquote", "listItem", "rule"}

    def walk(node: Json) -> str:
        if not isinstance(node, dict):
            return ""
        kind = node.get("type")
        if kind == "text":
            return str(node.get("text", ""))
        if kind == "hardBreak":
            return "\n"
        if kind in ("mention", "emoji", "inlineCard"):
            attrs = node.get("attrs") or {}
            return str(attrs.get("text") or attrs.get("shortName") or attrs.get("url") or "")
        inner = "".join(walk(c) for c in node.get("content") or [])
        return inner + "\n" if kind in blocks else inner

    return walk(doc).rstrip("\n")


def _is_adf(value: Json) -> bool:
    return isinstance(value, dict) and value.get("type") == "doc" and "content" in value


class FakeJira(FakeHTTPServer):
    """A fake Jira server; see the module docstring for the behaviour it models."""

    _fake_name = "FakeJira"
    _thread_name = "fake-jira"
    _poll_interval = 0.02
    requests: list[RecordedRequest]

    def __init__(
        self,
        flavour: str = "cloud",
        *,
        context_path: str = "",
        clock: Callable[[], datetime] | None = None,
        bot: str = "bot",
    ) -> None:
        if flavour not in ("cloud", "dc"):
            raise ValueError("flavour must be 'cloud' or 'dc'")
        self._init_http()
        self._base_url = ""
        self.flavour = flavour
        self.context_path = context_path.rstrip("/")
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.dc_search_cap = 1000
        self.jql_search_cap = 100
        self.comment_page_cap = 5000
        self._users: dict[str, User] = {}
        self._projects: dict[str, Project] = {}
        self._issues: dict[str, IssueRec] = {}  # by key
        self._issue_ids: dict[str, str] = {}  # id -> key
        self._links: list[LinkRec] = []
        self._link_types: dict[str, tuple[str, str, str]] = {
            i: (n, inw, out) for i, n, inw, out in DEFAULT_LINK_TYPES
        }
        self._grants: dict[tuple[str, str | None], set[str]] = {}
        self._global: dict[str, set[str]] = {}
        self._tokens: dict[str, tuple[str, int]] = {}
        self._seq = {"issue": 10000, "project": 10000, "comment": 10000, "link": 10100, "user": 0}
        self.bot = bot
        self.add_user(bot, display_name="bugbar bot", email=f"{bot}@example.com")
        self.grant(bot, None, *BOT_DEFAULT_PERMISSIONS)

    # ------------------------------------------------------------------ lifecycle
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    def start(self) -> FakeJira:
        """Start serving on 127.0.0.1 (ephemeral port) in a daemon thread."""
        super().start()
        self._base_url = super().url + self.context_path
        return self

    @property
    def url(self) -> str:
        """Base URL to give the client (includes the context path, no trailing slash).

        It stays available after :meth:`stop` (for reading state with self links).
        """
        if not self._base_url:
            raise RuntimeError("FakeJira is not started")
        return self._base_url

    # ------------------------------------------------------------------ setup helpers
    def add_user(
        self,
        handle: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        account_id: str | None = None,
        token: str | None = None,
        active: bool = True,
    ) -> User:
        """Add a user; Cloud accountIds are derived from the handle unless given."""
        with self._lock:
            self._seq["user"] += 1
            user = User(
                handle=handle,
                display_name=display_name or handle.title(),
                email=email or f"{handle}@example.com",
                account_id=account_id or hashlib.sha1(handle.encode()).hexdigest()[:24],
                key=f"JIRAUSER{10000 + self._seq['user']}",
                token=token or f"{handle}-token",
                active=active,
            )
            self._users[handle] = user
            return user

    def user(self, handle: str) -> User:
        """The stored user for a handle."""
        return self._users[handle]

    def user_id(self, handle: str) -> str:
        """What the API identifies the user by: accountId on Cloud, name on DC."""
        u = self._users[handle]
        return u.account_id if self.flavour == "cloud" else u.handle

    def auth_kwargs(self, handle: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``jira.JIRA`` authenticating as ``handle`` (default: bot)."""
        u = self._users[handle or self.bot]
        if self.flavour == "cloud":
            return {"basic_auth": (u.email, u.token)}
        return {"token_auth": u.token}

    def add_project(
        self,
        key: str,
        name: str | None = None,
        *,
        issue_types: tuple[tuple[str, str], ...] = DEFAULT_ISSUE_TYPES,
    ) -> Project:
        """Add a project (ids count up from 10000)."""
        with self._lock:
            self._seq["project"] += 1
            proj = Project(key, str(self._seq["project"] - 1), name or key, list(issue_types))
            self._projects[key] = proj
            return proj

    def add_security_level(self, project: str, id: str, name: str, description: str = "") -> None:
        """Add an issue security level to a project's scheme."""
        with self._lock:
            self._projects[project].security_levels[str(id)] = (name, description)

    def add_link_type(self, id: str, name: str, inward: str, outward: str) -> None:
        """Add an issue link type (Blocks/Cloners/Duplicate/Relates exist already)."""
        with self._lock:
            self._link_types[str(id)] = (name, inward, outward)

    def grant(self, handle: str, project: str | None, *permissions: str) -> None:
        """Grant permissions to a user on a project (``None`` = every project).

        Global keys (ADMINISTER, SYSTEM_ADMIN, USER_PICKER) ignore ``project``.
        """
        with self._lock:
            for perm in permissions:
                if perm in GLOBAL_PERMISSIONS:
                    self._global.setdefault(handle, set()).add(perm)
                elif perm in PROJECT_PERMISSIONS:
                    self._grants.setdefault((handle, project), set()).add(perm)
                else:
                    raise ValueError(f"unknown permission {perm}")

    def revoke(self, handle: str, project: str | None, *permissions: str) -> None:
        """Undo :meth:`grant` for the same (user, project) scope."""
        with self._lock:
            for perm in permissions:
                self._global.get(handle, set()).discard(perm)
                self._grants.get((handle, project), set()).discard(perm)

    def has_permission(self, handle: str, project: str, permission: str) -> bool:
        """Whether the user holds a project (or global) permission."""
        with self._lock:
            if permission in GLOBAL_PERMISSIONS:
                return permission in self._global.get(handle, set())
            return permission in self._grants.get((handle, project), set()) or (
                permission in self._grants.get((handle, None), set())
            )

    def add_issue(
        self,
        project: str,
        summary: str,
        description: str | None = None,
        *,
        labels: list[str] | None = None,
        reporter: str | None = None,
        issuetype: str = "Bug",
        security: str | None = None,
        created: datetime | None = None,
        updated: datetime | None = None,
        status: str = "To Do",
    ) -> str:
        """Create an issue directly (not recorded in ``writes``); returns its key."""
        with self._lock:
            proj = self._projects[project]
            type_id = next((i for i, n in proj.issue_types if n == issuetype), None)
            if type_id is None:
                raise ValueError(f"unknown issue type {issuetype}")
            issue = self._new_issue(
                proj,
                summary=summary,
                description=description,
                adf=None,
                labels=list(labels or []),
                reporter=reporter or self.bot,
                type_id=type_id,
                security=security,
                created=created,
                updated=updated,
            )
            issue.status = status
            return issue.key

    def edit_issue(
        self,
        key: str,
        *,
        summary: str | None = None,
        description: str | None = _UNSET,
        labels: list[str] | None = None,
        security: str | None = _UNSET,
        updated: datetime | None = None,
    ) -> None:
        """Change an issue as a human would (not recorded in ``writes``); bumps ``updated``."""
        with self._lock:
            issue = self._issues[key]
            if summary is not None:
                issue.summary = summary
            if description is not _UNSET:
                issue.description, issue.description_adf = description, None
            if labels is not None:
                issue.labels = list(labels)
            if security is not _UNSET:
                issue.security = security
            issue.updated = updated or self.clock()

    def add_comment(self, key: str, body: str, *, author: str | None = None) -> str:
        """Add a comment directly (not recorded in ``writes``); returns its id."""
        with self._lock:
            issue = self._issues[key]
            return self._new_comment(issue, author or self.bot, body, None).id

    def delete_issue(self, key: str) -> None:
        """Delete an issue as an admin would: Jira then answers 404 "Issue does not exist or
        you do not have permission to see it." while the project stays readable."""
        with self._lock:
            issue = self._issues.pop(key)
            self._issue_ids.pop(issue.id, None)

    def issue(self, key: str) -> dict[str, Any]:
        """A plain snapshot of an issue for assertions."""
        with self._lock:
            i = self._issues[key]
            return {
                "id": i.id,
                "key": i.key,
                "project": i.project,
                "summary": i.summary,
                "description": i.description,
                "labels": list(i.labels),
                "reporter": i.reporter,
                "security": i.security,
                "assignee": i.assignee,
                "watchers": list(i.watchers),
                "created": i.created,
                "updated": i.updated,
                "comments": [{"id": c.id, "author": c.author, "body": c.text} for c in i.comments],
                "properties": json.loads(json.dumps(i.properties)),
                "links": [
                    (lk.inward, self._link_types[lk.type_id][0], lk.outward)
                    for lk in self._links
                    if key in (lk.inward, lk.outward)
                ],
            }

    def issue_keys(self, project: str | None = None) -> list[str]:
        """Keys of all issues (optionally of one project), in creation order."""
        with self._lock:
            return [k for k, i in self._issues.items() if project in (None, i.project)]

    # ------------------------------------------------------------------ faults & log
    # ``fail_next(method, path_regex, status, headers=None, body=None, times=1)`` comes from
    # FakeHTTPServer. ``headers=None`` picks defaults when the fault fires (429/503:
    # ``Retry-After: 1``; Cloud 429 also the ``X-RateLimit-*`` headers); pass ``{}`` for none.
    # ``body=None`` gives Jira's error shape (see ``_fault_error``).

    def reset_next(self, method: str | None, path_regex: str, times: int = 1) -> None:
        """Drop the connection without answering the next ``times`` matching requests."""
        self._arm_drop(method, path_regex, times)

    # ------------------------------------------------------------------ internals: model
    def _write(self, text: str) -> None:
        self.writes.append(text)

    def _new_issue(
        self,
        proj: Project,
        *,
        summary: str,
        description: str | None,
        adf: Json | None,
        labels: list[str],
        reporter: str | None,
        type_id: str,
        security: str | None,
        created: datetime | None = None,
        updated: datetime | None = None,
    ) -> IssueRec:
        proj.counter += 1
        self._seq["issue"] += 1
        now = created or self.clock()
        issue = IssueRec(
            id=str(self._seq["issue"]),
            key=f"{proj.key}-{proj.counter}",
            project=proj.key,
            summary=summary,
            description=description,
            description_adf=adf,
            labels=list(dict.fromkeys(labels)),
            reporter=reporter,
            created=now,
            updated=updated or now,
            issuetype=type_id,
            security=security,
        )
        self._issues[issue.key] = issue
        self._issue_ids[issue.id] = issue.key
        return issue

    def _new_comment(self, issue: IssueRec, author: str, text: str, adf: Json) -> CommentRec:
        self._seq["comment"] += 1
        now = self.clock()
        c = CommentRec(str(self._seq["comment"]), author, text, adf, now, now, author)
        issue.comments.append(c)
        issue.updated = now
        return c

    def _find_issue(self, id_or_key: str, user: User) -> IssueRec:
        key = self._issue_ids.get(id_or_key, id_or_key.upper())
        issue = self._issues.get(key)
        if issue is None or not self.has_permission(user.handle, issue.project, "BROWSE_PROJECTS"):
            raise JiraFault(404, [_NO_ISSUE])
        return issue

    def _require(self, user: User, project: str, perm: str, message: str) -> None:
        if not self.has_permission(user.handle, project, perm):
            raise JiraFault(403, [message])

    def _user_by_ref(self, ref: Json) -> User | None:
        if not isinstance(ref, dict):
            return None
        for u in self._users.values():
            if ref.get("accountId") == u.account_id and self.flavour == "cloud":
                return u
            if self.flavour == "dc" and (ref.get("name") == u.handle or ref.get("key") == u.key):
                return u
        return None

    # ------------------------------------------------------------------ internals: JSON shapes
    def _api(self, version: str) -> str:
        return f"{self.url}/rest/api/{'2' if version == 'latest' else version}"

    def _user_json(self, handle: str | None, version: str) -> Json:
        if handle is None or handle not in self._users:
            return None
        u = self._users[handle]
        avatars = {s: f"{self.url}/avatar/{u.handle}?s={s[:2]}" for s in ("48x48", "24x24")}
        if self.flavour == "cloud":
            return {
                "self": f"{self._api(version)}/user?accountId={u.account_id}",
                "accountId": u.account_id,
                "accountType": "atlassian",
                "emailAddress": u.email,
                "avatarUrls": avatars,
                "displayName": u.display_name,
                "active": u.active,
                "timeZone": "Etc/UTC",
            }
        return {
            "self": f"{self._api(version)}/user?username={u.handle}",
            "name": u.handle,
            "key": u.key,
            "emailAddress": u.email,
            "avatarUrls": avatars,
            "displayName": u.display_name,
            "active": u.active,
            "timeZone": "Etc/UTC",
        }

    def _project_json(self, proj: Project, version: str, expand: str = "") -> Json:
        out: dict[str, Any] = {
            "self": f"{self._api(version)}/project/{proj.id}",
            "id": proj.id,
            "key": proj.key,
            "name": proj.name,
            "projectTypeKey": "software",
        }
        if self.flavour == "cloud":
            out["simplified"] = False
            out["style"] = "classic"
        if "issueTypes" in expand:
            out["issueTypes"] = [self._issuetype_json(i, n, version) for i, n in proj.issue_types]
        return out

    def _issuetype_json(self, id: str, name: str, version: str) -> Json:
        return {
            "self": f"{self._api(version)}/issuetype/{id}",
            "id": id,
            "name": name,
            "description": f"A {name.lower()}.",
            "subtask": False,
        }

    def _security_json(self, level_id: str, version: str) -> Json:
        for proj in self._projects.values():
            if level_id in proj.security_levels:
                name, desc = proj.security_levels[level_id]
                return {
                    "self": f"{self._api(version)}/securitylevel/{level_id}",
                    "id": level_id,
                    "name": name,
                    "description": desc,
                }
        return None

    def _status_json(self, issue: IssueRec, version: str) -> Json:
        done = issue.status in ("Done", "Closed", "Resolved")
        return {
            "self": f"{self._api(version)}/status/{'10001' if done else '10000'}",
            "id": "10001" if done else "10000",
            "name": issue.status,
            "statusCategory": {
                "id": 3 if done else 2,
                "key": "done" if done else "new",
                "name": "Done" if done else "To Do",
            },
        }

    def _link_type_json(self, type_id: str, version: str) -> Json:
        name, inward, outward = self._link_types[type_id]
        return {
            "id": type_id,
            "name": name,
            "inward": inward,
            "outward": outward,
            "self": f"{self._api(version)}/issueLinkType/{type_id}",
        }

    def _brief_issue(self, issue: IssueRec, version: str) -> Json:
        ptype = next(
            n for i, n in self._projects[issue.project].issue_types if i == issue.issuetype
        )
        return {
            "id": issue.id,
            "key": issue.key,
            "self": f"{self._api(version)}/issue/{issue.id}",
            "fields": {
                "summary": issue.summary,
                "status": self._status_json(issue, version),
                "priority": {"id": "3", "name": "Medium"},
                "issuetype": self._issuetype_json(issue.issuetype, ptype, version),
            },
        }

    def _links_json(self, issue: IssueRec, version: str) -> list[Json]:
        out = []
        for lk in self._links:
            if issue.key not in (lk.inward, lk.outward):
                continue
            entry: dict[str, Any] = {
                "id": lk.id,
                "self": f"{self._api(version)}/issueLink/{lk.id}",
                "type": self._link_type_json(lk.type_id, version),
            }
            if lk.inward == issue.key:
                entry["outwardIssue"] = self._brief_issue(self._issues[lk.outward], version)
            else:
                entry["inwardIssue"] = self._brief_issue(self._issues[lk.inward], version)
            out.append(entry)
        return out

    def _comment_json(self, issue: IssueRec, c: CommentRec, version: str) -> Json:
        if version == "3":
            body: Json = c.adf if c.adf is not None else text_to_adf(c.text)
        else:
            body = c.text
        out: dict[str, Any] = {
            "self": f"{self._api(version)}/issue/{issue.id}/comment/{c.id}",
            "id": c.id,
            "author": self._user_json(c.author, version),
            "body": body,
            "updateAuthor": self._user_json(c.update_author, version),
            "created": _ts(c.created),
            "updated": _ts(c.updated),
        }
        if self.flavour == "cloud":
            out["jsdPublic"] = True
        return out

    _NAVIGABLE = (
        "summary", "description", "labels", "project", "issuetype", "status", "reporter",
        "creator", "assignee", "priority", "created", "updated", "security", "issuelinks",
        "resolution",
    )  # fmt: skip
    _ALL = (*_NAVIGABLE, "comment")

    def _field_value(self, issue: IssueRec, name: str, version: str) -> Json:
        proj = self._projects[issue.project]
        if name == "summary":
            return issue.summary
        if name == "description":
            if version == "3":
                return issue.description_adf or text_to_adf(issue.description)
            return issue.description
        if name == "labels":
            return list(issue.labels)
        if name == "project":
            return self._project_json(proj, version)
        if name == "issuetype":
            tname = next(n for i, n in proj.issue_types if i == issue.issuetype)
            return self._issuetype_json(issue.issuetype, tname, version)
        if name == "status":
            return self._status_json(issue, version)
        if name in ("reporter", "creator"):
            return self._user_json(issue.reporter, version)
        if name == "assignee":
            return self._user_json(issue.assignee, version)
        if name == "resolution":
            return None
        if name == "priority":
            return {"self": f"{self._api(version)}/priority/3", "id": "3", "name": "Medium"}
        if name in ("created", "updated"):
            return _ts(getattr(issue, name))
        if name == "security":
            return self._security_json(issue.security, version) if issue.security else None
        if name == "issuelinks":
            return self._links_json(issue, version)
        if name == "comment":
            comments = [self._comment_json(issue, c, version) for c in issue.comments]
            out = {
                "comments": comments,
                "maxResults": len(comments),
                "total": len(comments),
                "startAt": 0,
            }
            if self.flavour == "cloud":
                out["self"] = f"{self._api(version)}/issue/{issue.id}/comment"
            return out
        return None

    def _wanted_fields(self, spec: list[str], default: tuple[str, ...]) -> list[str]:
        if not spec:
            return list(default)
        wanted: list[str] = []
        excluded: set[str] = set()
        for token in spec:
            if token == "*all":
                wanted.extend(self._ALL)
            elif token == "*navigable":
                wanted.extend(self._NAVIGABLE)
            elif token.startswith("-"):
                excluded.add(token[1:])
            else:
                wanted.append("issuekey" if token == "key" else token)
        return [f for f in dict.fromkeys(wanted) if f not in excluded]

    def _issue_json(
        self,
        issue: IssueRec,
        version: str,
        fields: list[str],
        properties: list[str] | None = None,
    ) -> Json:
        out: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,"
            "versionedRepresentations",
            "id": issue.id,
            "self": f"{self._api(version)}/issue/{issue.id}",
            "key": issue.key,
            "fields": {f: self._field_value(issue, f, version) for f in fields if f in self._ALL},
        }
        if properties:
            keys = issue.properties.keys() if "*all" in properties else properties
            out["properties"] = {k: issue.properties[k] for k in keys if k in issue.properties}
        return out

    # ------------------------------------------------------------------ HTTP entry point
    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[int, dict[str, str], bytes] | None:
        """Serve one request; ``None`` means drop the connection (``reset_next``)."""
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            body: Json = json.loads(raw_body) if raw_body.strip() else None
            bad_json = False
        except ValueError:
            body, bad_json = raw_body.decode("utf-8", "replace"), True
        rec = RecordedRequest(method, raw_path, query, dict(headers), body)
        with self._lock:
            self.requests.append(rec)
            fault = self._take_fault({"fail", "delay", "drop"}, method, raw_path)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "drop":
            rec.status = -1
            return None
        try:
            if fault is not None:
                raise self._fault_error(fault)
            with self._lock:
                user = self._authenticate(headers, path)
                rec.user = user.handle if user else None
                if bad_json:
                    raise JiraFault(400, ["Unexpected character in request body: not JSON"])
                status, payload = self._route(method, path, query, body, user)
            extra: dict[str, str] = {}
        except JiraFault as err:
            status, payload, extra = err.status, err.body, err.headers
        except Exception as exc:  # a bug in the fake: make it loud, not a hang
            status, extra = 500, {}
            payload = {"errorMessages": [f"FakeJira internal error: {exc!r}"], "errors": {}}
        rec.status = status
        out_headers = {"Content-Type": "application/json;charset=UTF-8"}
        if self.flavour == "dc":
            out_headers["X-AUSERNAME"] = rec.user or "anonymous"
        else:
            out_headers["X-AREQUESTID"] = secrets.token_hex(8)
        out_headers.update(extra)
        if payload is None:
            return status, out_headers, b""
        if isinstance(payload, bytes | str):
            data = payload.encode() if isinstance(payload, str) else payload
            out_headers["Content-Type"] = "text/plain;charset=UTF-8"
            return status, out_headers, data
        return status, out_headers, json.dumps(payload).encode()

    def _fault_error(self, fault: Fault) -> JiraFault:
        headers = fault.headers
        if headers is None:
            headers = {}
            if fault.status in (429, 503):
                headers["Retry-After"] = "1"
            if fault.status == 429 and self.flavour == "cloud":
                reset = self.clock() + timedelta(minutes=1)
                headers.update(
                    {
                        "X-RateLimit-Limit": "100",
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
                        "RateLimit-Reason": "jira-burst-based",
                    }
                )
        err = JiraFault(fault.status, headers=dict(headers))
        if fault.body is not None:
            err.body = fault.body
        else:
            try:
                phrase = HTTPStatus(fault.status).phrase
            except ValueError:
                phrase = f"HTTP {fault.status}"
            err.body = {"errorMessages": [phrase], "errors": {}}
        return err

    def _authenticate(self, headers: dict[str, str], path: str) -> User | None:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        denied = {
            "WWW-Authenticate": 'Basic realm="protected-area"'
            if self.flavour == "cloud"
            else 'OAuth realm="jira"',
        }
        if self.flavour == "dc":
            denied["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
        msg = ["You are not authenticated. Authentication required to perform this operation."]
        user: User | None = None
        if auth.startswith("Basic ") and self.flavour == "cloud":
            try:
                email, _, token = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                email, token = "", ""
            user = next(
                (
                    u
                    for u in self._users.values()
                    if u.email.lower() == email.lower() and u.token == token
                ),
                None,
            )
        elif auth.startswith("Bearer ") and self.flavour == "dc":
            user = next((u for u in self._users.values() if u.token == auth[7:]), None)
        elif not auth:
            if path.endswith("/serverInfo"):
                return None
            denied.pop("X-Seraph-LoginReason", None)
        if user is None or not user.active:
            raise JiraFault(401, msg, headers=denied)
        return user

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Json,
        user: User | None,
    ) -> tuple[int, Json]:
        if self.context_path and path.startswith(self.context_path + "/"):
            path = path[len(self.context_path) :]
        if path == "/rest/auth/1/session" and method == "GET" and user is not None:
            return 200, {"self": f"{self._api('2')}/user", "name": user.handle}
        m = re.fullmatch(r"/rest/api/(2|3|latest)/(.+?)/?", path)
        if not m or (m.group(1) == "3" and self.flavour == "dc"):
            raise JiraFault(404, [f"null for uri: {self.url}{path}"])
        version, sub = m.group(1), m.group(2)
        if sub == "serverInfo" and method == "GET":
            return 200, self._server_info()
        assert user is not None
        ctx = _Ctx(method, version, query, body, user)
        for route_method, pattern, func in self._routes():
            rm = re.fullmatch(pattern, sub)
            if rm is None:
                continue
            if route_method != method:
                continue
            return func(ctx, *rm.groups())
        if any(re.fullmatch(p, sub) for _, p, _ in self._routes()):
            raise JiraFault(405, [f"Method {method} not allowed"])
        raise JiraFault(404, [f"null for uri: {self.url}{path}"])

    def _routes(self) -> Iterator[tuple[str, str, Callable[..., tuple[int, Json]]]]:
        seg = r"([^/]+)"
        yield "GET", "myself", self._get_myself
        yield "GET", "field", self._get_fields
        yield "GET", "project", self._get_projects
        yield "GET", f"project/{seg}", self._get_project
        yield "GET", f"project/{seg}/securitylevel", self._get_project_levels
        yield "GET", "issuetype", self._get_issuetypes
        yield "GET", f"issue/createmeta/{seg}/issuetypes", self._get_createmeta_types
        yield "GET", f"securitylevel/{seg}", self._get_security_level
        yield "GET", "issueLinkType", self._get_link_types
        yield "GET", f"issueLinkType/{seg}", self._get_link_type
        yield "POST", "issueLink", self._post_link
        yield "GET", f"issueLink/{seg}", self._get_link
        yield "DELETE", f"issueLink/{seg}", self._delete_link
        yield "POST", "issue", self._post_issue
        yield "GET", f"issue/{seg}", self._get_issue
        yield "PUT", f"issue/{seg}", self._put_issue
        yield "GET", f"issue/{seg}/comment", self._get_comments
        yield "POST", f"issue/{seg}/comment", self._post_comment
        yield "GET", f"issue/{seg}/comment/{seg}", self._get_comment
        yield "PUT", f"issue/{seg}/comment/{seg}", self._put_comment
        yield "DELETE", f"issue/{seg}/comment/{seg}", self._delete_comment
        yield "PUT", f"issue/{seg}/assignee", self._put_assignee
        yield "GET", f"issue/{seg}/watchers", self._get_watchers
        yield "POST", f"issue/{seg}/watchers", self._post_watcher
        yield "GET", f"issue/{seg}/properties", self._get_property_keys
        yield "GET", f"issue/{seg}/properties/{seg}", self._get_property
        yield "PUT", f"issue/{seg}/properties/{seg}", self._put_property
        yield "DELETE", f"issue/{seg}/properties/{seg}", self._delete_property
        yield "GET", "mypermissions", self._get_mypermissions
        yield "GET", "user/permission/search", self._get_user_permission_search
        yield "POST", "permissions/check", self._post_permissions_check
        yield "GET", "user", self._get_user
        yield "GET", "search", self._search_classic
        yield "POST", "search", self._search_classic
        yield "GET", "search/jql", self._search_jql
        yield "POST", "search/jql", self._search_jql

    # ------------------------------------------------------------------ routes: metadata
    def _server_info(self) -> Json:
        now = self.clock()
        if self.flavour == "cloud":
            version, numbers, dtype = "1001.0.0-SNAPSHOT", [1001, 0, 0], "Cloud"
        else:
            version, numbers, dtype = "9.12.2", [9, 12, 2], "Server"
        return {
            "baseUrl": self.url,
            "version": version,
            "versionNumbers": numbers,
            "deploymentType": dtype,
            "buildNumber": 100300 if dtype == "Cloud" else 9120002,
            "buildDate": "2024-01-01T00:00:00.000+0000",
            "serverTime": _ts(now),
            "scmInfo": "fake",
            "serverTitle": "Jira",
        }

    def _get_myself(self, ctx: _Ctx) -> tuple[int, Json]:
        out = self._user_json(ctx.user.handle, ctx.version)
        out["locale"] = "en_US"
        return 200, out

    def _get_fields(self, ctx: _Ctx) -> tuple[int, Json]:
        def f(fid: str, name: str, schema: str, clauses: list[str], nav: bool = True) -> Json:
            return {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": False,
                "orderable": fid not in ("created", "updated", "status", "issuekey"),
                "navigable": nav,
                "searchable": True,
                "clauseNames": clauses,
                "schema": {"type": schema, "system": fid},
            }

        return 200, [
            f("issuekey", "Key", "string", ["id", "issue", "issuekey", "key"]),
            f("summary", "Summary", "string", ["summary"]),
            f("description", "Description", "string", ["description"]),
            f("labels", "Labels", "array", ["labels"]),
            f("project", "Project", "project", ["project"]),
            f("issuetype", "Issue Type", "issuetype", ["issuetype", "type"]),
            f("status", "Status", "status", ["status"]),
            f("reporter", "Reporter", "user", ["reporter"]),
            f("creator", "Creator", "user", ["creator"]),
            f("assignee", "Assignee", "user", ["assignee"]),
            f("priority", "Priority", "priority", ["priority"]),
            f("created", "Created", "datetime", ["created", "createdDate"]),
            f("updated", "Updated", "datetime", ["updated", "updatedDate"]),
            f("security", "Security Level", "securitylevel", ["level"]),
            f("issuelinks", "Linked Issues", "array", ["issueLink"]),
            f("resolution", "Resolution", "resolution", ["resolution"]),
            f("comment", "Comment", "comments-page", ["comment"], nav=False),
        ]

    def _project_or_404(self, key_or_id: str) -> Project:
        for proj in self._projects.values():
            if key_or_id in (proj.key, proj.id) or key_or_id.upper() == proj.key:
                return proj
        raise JiraFault(404, [f"No project could be found with key '{key_or_id}'."])

    def _get_projects(self, ctx: _Ctx) -> tuple[int, Json]:
        return 200, [self._project_json(p, ctx.version) for p in self._projects.values()]

    def _get_project(self, ctx: _Ctx, key: str) -> tuple[int, Json]:
        proj = self._project_or_404(key)
        if not self.has_permission(ctx.user.handle, proj.key, "BROWSE_PROJECTS"):
            # Jira hides a project the caller may not browse: the same 404 as no project.
            raise JiraFault(404, [f"No project could be found with key '{key}'."])
        return 200, self._project_json(proj, ctx.version, ctx.q("expand") or "")

    def _get_project_levels(self, ctx: _Ctx, key: str) -> tuple[int, Json]:
        proj = self._project_or_404(key)
        levels = [self._security_json(i, ctx.version) for i in proj.security_levels]
        return 200, {"levels": levels}

    def _get_issuetypes(self, ctx: _Ctx) -> tuple[int, Json]:
        seen: dict[str, str] = {}
        for proj in self._projects.values():
            seen.update(dict(proj.issue_types))
        return 200, [self._issuetype_json(i, n, ctx.version) for i, n in seen.items()]

    def _get_createmeta_types(self, ctx: _Ctx, key: str) -> tuple[int, Json]:
        proj = self._project_or_404(key)
        values = [self._issuetype_json(i, n, ctx.version) for i, n in proj.issue_types]
        return 200, {
            "startAt": 0,
            "maxResults": 50,
            "total": len(values),
            "isLast": True,
            "values": values,
        }

    def _get_security_level(self, ctx: _Ctx, level_id: str) -> tuple[int, Json]:
        out = self._security_json(level_id, ctx.version)
        if out is None:
            raise JiraFault(404, [f"Issue security level with id '{level_id}' does not exist."])
        return 200, out

    def _get_link_types(self, ctx: _Ctx) -> tuple[int, Json]:
        types = [self._link_type_json(i, ctx.version) for i in self._link_types]
        return 200, {"issueLinkTypes": types}

    def _get_link_type(self, ctx: _Ctx, type_id: str) -> tuple[int, Json]:
        if type_id not in self._link_types:
            raise JiraFault(404, [f"No issue link type with id '{type_id}' found."])
        return 200, self._link_type_json(type_id, ctx.version)

    def _get_user(self, ctx: _Ctx) -> tuple[int, Json]:
        for u in self._users.values():
            if (
                (self.flavour == "cloud" and ctx.q("accountId") == u.account_id)
                or (self.flavour == "dc" and ctx.q("username") == u.handle)
                or (self.flavour == "dc" and ctx.q("key") == u.key)
            ):
                return 200, self._user_json(u.handle, ctx.version)
        ident = ctx.q("accountId") or ctx.q("username") or ctx.q("key")
        raise JiraFault(404, [f"The user with the ID '{ident}' does not exist."])

    # ------------------------------------------------------------------ routes: issues
    def _put_assignee(self, ctx: _Ctx, id_or_key: str) -> tuple[int, Json]:
        """``PUT /issue/{key}/assignee`` with ``{"accountId"}`` (Cloud) / ``{"name"}`` (DC):
        204; needs Assign Issues, and the assignee needs Assignable User."""
        issue = self._find_issue(id_or_key, ctx.user)
        self._require(ctx.user, issue.project, "ASSIGN_ISSUES",
                      "You do not have permission to assign issues.")
        who = self._user_by_ref(ctx.body)
        if who is None:
            raise JiraFault(400, [], {"assignee": "User does not exist."})
        if not self.has_permission(who.handle, issue.project, "ASSIGNABLE_USER"):
            raise JiraFault(400, [], {"assignee": f"User '{who.display_name}' cannot be "
                                                  "assigned issues."})
        if issue.assignee != who.handle:
            issue.assignee = who.handle
            self._write(f"jira:{issue.key}:assignee {who.handle}")
        return 204, None

    def _get_watchers(self, ctx: _Ctx, id_or_key: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        return 200, {"self": f"{self._api(ctx.version)}/issue/{issue.key}/watchers",
                     "isWatching": ctx.user.handle in issue.watchers,
                     "watchCount": len(issue.watchers),
                     "watchers": [self._user_json(h, ctx.version) for h in issue.watchers]}

    def _post_watcher(self, ctx: _Ctx, id_or_key: str) -> tuple[int, Json]:
        """``POST /issue/{key}/watchers`` with a JSON string: the accountId (Cloud) or the
        username (DC); 204. Adding someone else needs Manage Watchers."""
        issue = self._find_issue(id_or_key, ctx.user)
        ident = ctx.body if isinstance(ctx.body, str) else None
        key = "accountId" if self.flavour == "cloud" else "name"
        who = self._user_by_ref({key: ident}) if ident else ctx.user
        if who is None:
            raise JiraFault(404, [f"The user '{ident}' does not exist."])
        if who.handle != ctx.user.handle:
            self._require(ctx.user, issue.project, "MANAGE_WATCHERS",
                          "You do not have permission to manage the watcher list.")
        if who.handle not in issue.watchers:
            issue.watchers.append(who.handle)
            self._write(f"jira:{issue.key}:watcher+ {who.handle}")
        return 204, None

    def _get_issue(self, ctx: _Ctx, id_or_key: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        fields = self._wanted_fields(ctx.q_list("fields"), self._ALL)
        return 200, self._issue_json(issue, ctx.version, fields, ctx.q_list("properties"))

    def _check_labels(self, labels: Json, errors: dict[str, str]) -> list[str]:
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            errors["labels"] = "data was not an array"
            return []
        for label in labels:
            if re.search(r"\s", label) or label == "":
                errors["labels"] = f"The label '{label}' contains spaces which is invalid."
                break
            if len(label) > 255:
                errors["labels"] = f"The label '{label}' exceeds maximum length of 255 characters."
                break
        return list(dict.fromkeys(labels))

    def _check_description(self, value: Json, version: str, errors: dict[str, str]) -> Json:
        if value is None:
            return (None, None)
        if version == "3":
            if not _is_adf(value):
                errors["description"] = (
                    "Operation value must be an Atlassian Document (see the Atlassian "
                    "Document Format)"
                )
                return (None, None)
            return (adf_to_text(value), value)
        if not isinstance(value, str):
            errors["description"] = "Operation value must be a string"
            return (None, None)
        return (value, None)

    def _check_security(
        self, value: Json, proj: Project, user: User, errors: dict[str, str]
    ) -> str | None:
        if not self.has_permission(user.handle, proj.key, "SET_ISSUE_SECURITY"):
            errors["security"] = _NOT_SETTABLE.format("security")
            return None
        if value is None:
            return None
        if not isinstance(value, dict):
            errors["security"] = "expected Object"
            return None
        level = str(value.get("id", ""))
        if not level and "name" in value:
            level = next(
                (i for i, (n, _) in proj.security_levels.items() if n == value["name"]), ""
            )
        if level not in proj.security_levels:
            errors["security"] = f"Security level '{value.get('id') or value.get('name')}' "
            errors["security"] += "is not valid for this project."
            return None
        return level

    def _put_issue(self, ctx: _Ctx, id_or_key: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        proj = self._projects[issue.project]
        self._require(
            ctx.user, issue.project, "EDIT_ISSUES",
            "You do not have permission to edit issues in this project.",
        )  # fmt: skip
        if ctx.q("notifyUsers") == "false" and not (
            self.has_permission(ctx.user.handle, issue.project, "ADMINISTER_PROJECTS")
            or self.has_permission(ctx.user.handle, issue.project, "ADMINISTER")
        ):
            raise JiraFault(
                403,
                ["To discard the user notification either admin or project admin "
                 "permissions are required."],
            )  # fmt: skip
        body = ctx.body if isinstance(ctx.body, dict) else {}
        fields = body.get("fields") or {}
        update = body.get("update") or {}
        errors: dict[str, str] = {}
        changes: dict[str, Any] = {}
        labels = list(issue.labels)
        # "fields" first, then "update" operations; validate everything before applying.
        for name, value in fields.items():
            if name == "labels":
                labels = self._check_labels(value, errors)
                changes["labels"] = True
            elif name == "summary":
                if not isinstance(value, str) or not value.strip():
                    errors["summary"] = "You must specify a summary of the issue."
                elif "\n" in value:
                    errors["summary"] = (
                        "The summary is invalid because it contains newline characters."
                    )
                changes["summary"] = value
            elif name == "description":
                changes["description"] = self._check_description(value, ctx.version, errors)
            elif name == "security":
                changes["security"] = self._check_security(value, proj, ctx.user, errors)
            else:
                errors[name] = _NOT_SETTABLE.format(name)
        for name, ops in update.items():
            if not isinstance(ops, list):
                errors[name] = "Operation must be a list"
                continue
            for op in ops:
                if not isinstance(op, dict) or len(op) != 1:
                    errors[name] = "Each operation must have exactly one verb"
                    continue
                verb, arg = next(iter(op.items()))
                if name == "labels":
                    changes["labels"] = True
                    if verb == "add":
                        self._check_labels([arg], errors)
                        if isinstance(arg, str) and arg not in labels:
                            labels.append(arg)
                    elif verb == "remove":
                        labels = [x for x in labels if x != arg]
                    elif verb == "set":
                        labels = self._check_labels(arg, errors)
                    else:
                        errors["labels"] = f"The operation '{verb}' is not supported for labels."
                elif name == "summary" and verb == "set":
                    changes["summary"] = arg
                elif name == "description" and verb == "set":
                    changes["description"] = self._check_description(arg, ctx.version, errors)
                elif name == "security" and verb == "set":
                    changes["security"] = self._check_security(arg, proj, ctx.user, errors)
                elif name == "comment" and verb == "add":
                    changes.setdefault("comments", []).append(
                        self._check_comment_body(arg, ctx.version)
                    )
                else:
                    errors[name] = _NOT_SETTABLE.format(name)
        if errors:
            raise JiraFault(400, [], errors)
        changed = False
        if changes.get("labels"):
            for label in labels:
                if label not in issue.labels:
                    self._write(f"jira:{issue.key}:+label {label}")
            for label in issue.labels:
                if label not in labels:
                    self._write(f"jira:{issue.key}:-label {label}")
            changed = changed or labels != issue.labels
            issue.labels = labels
        if "summary" in changes and changes["summary"] != issue.summary:
            issue.summary = changes["summary"]
            self._write(f"jira:{issue.key}:field summary")
            changed = True
        if "description" in changes:
            text, adf = changes["description"]
            if text != issue.description or adf != issue.description_adf:
                issue.description, issue.description_adf = text, adf
                self._write(f"jira:{issue.key}:field description")
                changed = True
        if "security" in changes and changes["security"] != issue.security:
            issue.security = changes["security"]
            self._write(f"jira:{issue.key}:security {issue.security or 'none'}")
            changed = True
        for text, adf in changes.get("comments", []):
            c = self._new_comment(issue, ctx.user.handle, text, adf)
            self._write(f"jira:{issue.key}:comment+ {c.id}")
        if changed:
            issue.updated = self.clock()
        if ctx.q("returnIssue") == "true":
            return 200, self._issue_json(issue, ctx.version, list(self._ALL))
        return 204, None

    def _post_issue(self, ctx: _Ctx) -> tuple[int, Json]:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        fields = dict(body.get("fields") or {})
        errors: dict[str, str] = {}
        pref = fields.pop("project", None)
        proj = None
        if isinstance(pref, dict):
            proj = next(
                (
                    p
                    for p in self._projects.values()
                    if pref.get("id") == p.id or pref.get("key") == p.key
                ),
                None,
            )
        if proj is None or not self.has_permission(ctx.user.handle, proj.key, "BROWSE_PROJECTS"):
            raise JiraFault(400, [], {"project": "valid project is required"})
        self._require(
            ctx.user, proj.key, "CREATE_ISSUES",
            "You do not have permission to create issues in this project.",
        )  # fmt: skip
        tref = fields.pop("issuetype", None) or {}
        type_id = next(
            (
                i
                for i, n in proj.issue_types
                if isinstance(tref, dict) and (tref.get("id") == i or tref.get("name") == n)
            ),
            None,
        )
        if type_id is None:
            errors["issuetype"] = "valid issue type is required"
        summary = fields.pop("summary", None)
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        text, adf = self._check_description(fields.pop("description", None), ctx.version, errors)
        labels = self._check_labels(fields.pop("labels", []), errors)
        security = None
        if "security" in fields:
            security = self._check_security(fields.pop("security"), proj, ctx.user, errors)
        reporter = ctx.user.handle
        if "reporter" in fields:
            ref = self._user_by_ref(fields.pop("reporter"))
            if ref is None:
                errors["reporter"] = "Specify a valid value for reporter"
            else:
                reporter = ref.handle
        for name in fields:
            errors[name] = _NOT_SETTABLE.format(name)
        new_links: list[tuple[str, str, bool]] = []
        for op in (body.get("update") or {}).get("issuelinks", []):
            add = op.get("add") if isinstance(op, dict) else None
            if not isinstance(add, dict):
                errors["issuelinks"] = "Operation must be 'add'"
                continue
            type_id_link = self._link_type_id(add.get("type") or {})
            other_ref = add.get("outwardIssue") or add.get("inwardIssue") or {}
            other = self._issue_by_ref(other_ref)
            if type_id_link is None or other is None:
                errors["issuelinks"] = "Issue link type or linked issue not found"
                continue
            new_links.append((type_id_link, other.key, "outwardIssue" in add))
        if errors:
            raise JiraFault(400, [], errors)
        assert type_id is not None and isinstance(summary, str)
        issue = self._new_issue(
            proj,
            summary=summary,
            description=text,
            adf=adf,
            labels=labels,
            reporter=reporter,
            type_id=type_id,
            security=security,
        )
        self._write(f"jira:{issue.key}:created")
        for type_id_link, other_key, outward in new_links:
            inward, outward_key = (issue.key, other_key) if outward else (other_key, issue.key)
            self._add_link(type_id_link, inward, outward_key)
        return 201, {
            "id": issue.id,
            "key": issue.key,
            "self": f"{self._api(ctx.version)}/issue/{issue.id}",
        }

    # ------------------------------------------------------------------ routes: links
    def _link_type_id(self, ref: Json) -> str | None:
        if not isinstance(ref, dict):
            return None
        for i, (name, _, _) in self._link_types.items():
            if ref.get("id") == i or ref.get("name") == name:
                return i
        return None

    def _issue_by_ref(self, ref: Json) -> IssueRec | None:
        if not isinstance(ref, dict):
            return None
        key = ref.get("key") or self._issue_ids.get(str(ref.get("id")), "")
        return self._issues.get(str(key).upper())

    def _add_link(self, type_id: str, inward: str, outward: str) -> bool:
        for lk in self._links:
            if (lk.type_id, lk.inward, lk.outward) == (type_id, inward, outward):
                return False
        self._seq["link"] += 1
        self._links.append(LinkRec(str(self._seq["link"]), type_id, inward, outward))
        now = self.clock()
        self._issues[inward].updated = now
        self._issues[outward].updated = now
        self._write(f"jira:{inward}:link {outward}")
        return True

    def _post_link(self, ctx: _Ctx) -> tuple[int, Json]:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        tref = body.get("type") or {}
        type_id = self._link_type_id(tref)
        if type_id is None:
            raise JiraFault(
                404, [f"No issue link type with name '{tref.get('name') or tref.get('id')}' found."]
            )
        inward = self._issue_by_ref(body.get("inwardIssue"))
        outward = self._issue_by_ref(body.get("outwardIssue"))
        for issue in (inward, outward):
            if issue is None or not self.has_permission(
                ctx.user.handle, issue.project, "BROWSE_PROJECTS"
            ):
                raise JiraFault(404, ["Issue Does Not Exist"])
        assert inward is not None and outward is not None
        self._require(
            ctx.user, inward.project, "LINK_ISSUES",
            "You do not have the permission to link issues.",
        )  # fmt: skip
        self._add_link(type_id, inward.key, outward.key)
        return 201, None

    def _get_link(self, ctx: _Ctx, link_id: str) -> tuple[int, Json]:
        lk = next((x for x in self._links if x.id == link_id), None)
        if lk is None:
            raise JiraFault(404, [f"No issue link with id '{link_id}' exists."])
        return 200, {
            "id": lk.id,
            "self": f"{self._api(ctx.version)}/issueLink/{lk.id}",
            "type": self._link_type_json(lk.type_id, ctx.version),
            "inwardIssue": self._brief_issue(self._issues[lk.inward], ctx.version),
            "outwardIssue": self._brief_issue(self._issues[lk.outward], ctx.version),
        }

    def _delete_link(self, ctx: _Ctx, link_id: str) -> tuple[int, Json]:
        lk = next((x for x in self._links if x.id == link_id), None)
        if lk is None:
            raise JiraFault(404, [f"No issue link with id '{link_id}' exists."])
        self._links.remove(lk)
        self._write(f"jira:{lk.inward}:unlink {lk.outward}")
        return 204, None

    # ------------------------------------------------------------------ routes: comments
    def _check_comment_body(self, body: Json, version: str) -> tuple[str, Json]:
        raw = body.get("body") if isinstance(body, dict) else None
        if version == "3":
            if not _is_adf(raw):
                raise JiraFault(400, [], {"comment": "Comment body is not valid!"})
            text, adf = adf_to_text(raw), raw
        else:
            if not isinstance(raw, str):
                raise JiraFault(400, [], {"comment": "Comment body is not valid!"})
            text, adf = raw, None
        if not text.strip():
            raise JiraFault(400, [], {"comment": "Comment body can not be empty!"})
        if len(text) > COMMENT_LIMIT:
            raise JiraFault(
                400,
                [],
                {"comment": "The entered text is too long. It exceeds the allowed limit of "
                 f"{COMMENT_LIMIT:,} characters."},
            )  # fmt: skip
        return text, adf

    def _find_comment(self, issue: IssueRec, comment_id: str) -> CommentRec:
        for c in issue.comments:
            if c.id == comment_id:
                return c
        raise JiraFault(404, [f"Can not find a comment for the id: {comment_id}."])

    def _get_comments(self, ctx: _Ctx, id_or_key: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        comments = list(issue.comments)
        if ctx.q("orderBy") in ("-created", "-+created"):
            comments.reverse()
        start = int(ctx.q("startAt") or 0)
        size = min(int(ctx.q("maxResults") or self.comment_page_cap), self.comment_page_cap)
        page = comments[start : start + size]
        out: dict[str, Any] = {
            "startAt": start,
            "maxResults": size,
            "total": len(comments),
            "comments": [self._comment_json(issue, c, ctx.version) for c in page],
        }
        if self.flavour == "cloud":
            out["self"] = f"{self._api(ctx.version)}/issue/{issue.id}/comment"
        return 200, out

    def _get_comment(self, ctx: _Ctx, id_or_key: str, comment_id: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        return 200, self._comment_json(issue, self._find_comment(issue, comment_id), ctx.version)

    def _post_comment(self, ctx: _Ctx, id_or_key: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        self._require(
            ctx.user, issue.project, "ADD_COMMENTS",
            "You do not have the permission to comment on this issue.",
        )  # fmt: skip
        text, adf = self._check_comment_body(ctx.body, ctx.version)
        c = self._new_comment(issue, ctx.user.handle, text, adf)
        self._write(f"jira:{issue.key}:comment+ {c.id}")
        return 201, self._comment_json(issue, c, ctx.version)

    def _may_touch_comment(self, user: User, issue: IssueRec, c: CommentRec, verb: str) -> None:
        own, all_ = f"{verb}_OWN_COMMENTS", f"{verb}_ALL_COMMENTS"
        if not (
            self.has_permission(user.handle, issue.project, all_)
            or (c.author == user.handle and self.has_permission(user.handle, issue.project, own))
        ):
            raise JiraFault(
                403, [f"You do not have the permission to {verb.lower()} this comment."]
            )

    def _put_comment(self, ctx: _Ctx, id_or_key: str, comment_id: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        c = self._find_comment(issue, comment_id)
        self._may_touch_comment(ctx.user, issue, c, "EDIT")
        text, adf = self._check_comment_body(ctx.body, ctx.version)
        c.text, c.adf = text, adf
        c.updated = self.clock()
        c.update_author = ctx.user.handle
        issue.updated = c.updated
        self._write(f"jira:{issue.key}:comment~ {c.id}")
        return 200, self._comment_json(issue, c, ctx.version)

    def _delete_comment(self, ctx: _Ctx, id_or_key: str, comment_id: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        c = self._find_comment(issue, comment_id)
        self._may_touch_comment(ctx.user, issue, c, "DELETE")
        issue.comments.remove(c)
        self._write(f"jira:{issue.key}:comment- {c.id}")
        return 204, None

    # ------------------------------------------------------------------ routes: properties
    def _get_property_keys(self, ctx: _Ctx, id_or_key: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        base = f"{self._api(ctx.version)}/issue/{issue.id}/properties"
        return 200, {"keys": [{"self": f"{base}/{k}", "key": k} for k in issue.properties]}

    def _get_property(self, ctx: _Ctx, id_or_key: str, prop: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        if prop not in issue.properties:
            raise JiraFault(404, [f"The property with key '{prop}' does not exist."])
        return 200, {"key": prop, "value": issue.properties[prop]}

    def _put_property(self, ctx: _Ctx, id_or_key: str, prop: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        self._require(
            ctx.user, issue.project, "EDIT_ISSUES",
            "You do not have permission to edit issues in this project.",
        )  # fmt: skip
        if len(prop) > 255:
            raise JiraFault(400, ["The property key cannot be longer than 255 characters."])
        if ctx.body is None:
            raise JiraFault(400, ["The property value cannot be empty."])
        if len(json.dumps(ctx.body)) > PROPERTY_VALUE_LIMIT:
            raise JiraFault(
                400, [f"The property value exceeds the {PROPERTY_VALUE_LIMIT} byte limit."]
            )
        created = prop not in issue.properties
        issue.properties[prop] = ctx.body
        self._write(f"jira:{issue.key}:property {prop}")
        return (201 if created else 200), None

    def _delete_property(self, ctx: _Ctx, id_or_key: str, prop: str) -> tuple[int, Json]:
        issue = self._find_issue(id_or_key, ctx.user)
        self._require(
            ctx.user, issue.project, "EDIT_ISSUES",
            "You do not have permission to edit issues in this project.",
        )  # fmt: skip
        if prop not in issue.properties:
            raise JiraFault(404, [f"The property with key '{prop}' does not exist."])
        del issue.properties[prop]
        self._write(f"jira:{issue.key}:property- {prop}")
        return 204, None

    # ------------------------------------------------------------------ routes: permissions
    def _perm_json(self, key: str, have: bool) -> Json:
        pid, name = PROJECT_PERMISSIONS.get(key) or GLOBAL_PERMISSIONS[key]
        return {
            "id": pid,
            "key": key,
            "name": name,
            "type": "PROJECT" if key in PROJECT_PERMISSIONS else "GLOBAL",
            "description": f"Ability to {name.lower()}.",
            "havePermission": have,
        }

    def _check_perm_keys(self, keys: list[str]) -> None:
        for k in keys:
            if k not in PROJECT_PERMISSIONS and k not in GLOBAL_PERMISSIONS:
                raise JiraFault(404, [f"No permission with key '{k}' exists."])

    def _get_mypermissions(self, ctx: _Ctx) -> tuple[int, Json]:
        keys = ctx.q_list("permissions")
        if not keys:
            if self.flavour == "cloud":
                raise JiraFault(400, ["The 'permissions' query parameter is required."])
            keys = [*PROJECT_PERMISSIONS, *GLOBAL_PERMISSIONS]
        self._check_perm_keys(keys)
        project: str | None = None
        if ctx.q("issueKey") or ctx.q("issueId"):
            project = self._find_issue(
                ctx.q("issueKey") or ctx.q("issueId") or "", ctx.user
            ).project
        elif ctx.q("projectKey") or ctx.q("projectId"):
            project = self._project_or_404(ctx.q("projectKey") or ctx.q("projectId") or "").key
        out = {}
        for k in keys:
            if project is not None:
                have = self.has_permission(ctx.user.handle, project, k)
            else:
                have = any(self.has_permission(ctx.user.handle, p, k) for p in self._projects)
                have = have or self.has_permission(ctx.user.handle, "", k)
            out[k] = self._perm_json(k, have)
        return 200, {"permissions": out}

    def _is_admin_for(self, user: User, project: str) -> bool:
        return self.has_permission(user.handle, project, "ADMINISTER_PROJECTS") or (
            self.has_permission(user.handle, project, "ADMINISTER")
        )

    def _get_user_permission_search(self, ctx: _Ctx) -> tuple[int, Json]:
        keys = ctx.q_list("permissions")
        if not keys:
            raise JiraFault(400, ["The 'permissions' query parameter is required."])
        self._check_perm_keys(keys)
        if ctx.q("issueKey") or ctx.q("issueId"):
            project = self._find_issue(
                ctx.q("issueKey") or ctx.q("issueId") or "", ctx.user
            ).project
        elif ctx.q("projectKey") or ctx.q("projectId"):
            project = self._project_or_404(ctx.q("projectKey") or ctx.q("projectId") or "").key
        else:
            raise JiraFault(400, ["Either an issue key or a project key must be specified."])
        if not self._is_admin_for(ctx.user, project):
            raise JiraFault(403, ["You don't have the permission to access this resource."])
        if self.flavour == "cloud":
            account_id, needle = ctx.q("accountId"), (ctx.q("query") or "").lower()
        else:
            account_id, needle = None, (ctx.q("username") or "").lower()
        found = []
        for u in self._users.values():
            if not u.active:
                continue
            if account_id is not None and u.account_id != account_id:
                continue
            words = [u.handle.lower(), u.email.lower(), *u.display_name.lower().split()]
            if needle and not any(w.startswith(needle) for w in words):
                continue
            if all(self.has_permission(u.handle, project, k) for k in keys):
                found.append(self._user_json(u.handle, ctx.version))
        start = int(ctx.q("startAt") or 0)
        size = int(ctx.q("maxResults") or 50)
        return 200, found[start : start + size]

    def _post_permissions_check(self, ctx: _Ctx) -> tuple[int, Json]:
        if self.flavour != "cloud":
            raise JiraFault(404, [f"null for uri: {self._api(ctx.version)}/permissions/check"])
        body = ctx.body if isinstance(ctx.body, dict) else {}
        target = ctx.user
        if body.get("accountId") and body["accountId"] != ctx.user.account_id:
            if not self.has_permission(ctx.user.handle, "", "ADMINISTER"):
                raise JiraFault(
                    403,
                    ["You must have the Administer Jira global permission to check the "
                     "permissions of other users."],
                )  # fmt: skip
            target = next(
                (u for u in self._users.values() if u.account_id == body["accountId"]), None
            )  # type: ignore[assignment]
            if target is None:
                raise JiraFault(
                    404, [f"The user with the ID '{body['accountId']}' does not exist."]
                )
        by_id = {p.id: p.key for p in self._projects.values()}
        project_out = []
        for item in body.get("projectPermissions") or []:
            projects = [str(p) for p in item.get("projects") or [] if str(p) in by_id]
            issue_ids = [str(i) for i in item.get("issues") or [] if str(i) in self._issue_ids]
            for perm in item.get("permissions") or []:
                if not perm:
                    continue
                self._check_perm_keys([perm])
                project_out.append(
                    {
                        "permission": perm,
                        "projects": [
                            int(p)
                            for p in projects
                            if self.has_permission(target.handle, by_id[p], perm)
                        ],
                        "issues": [
                            int(i)
                            for i in issue_ids
                            if self.has_permission(
                                target.handle, self._issues[self._issue_ids[i]].project, perm
                            )
                        ],
                    }
                )
        globals_out = [
            g
            for g in body.get("globalPermissions") or []
            if g and self.has_permission(target.handle, "", g)
        ]
        return 200, {"projectPermissions": project_out, "globalPermissions": globals_out}

    # ------------------------------------------------------------------ routes: search
    def _search_params(self, ctx: _Ctx) -> dict[str, Any]:
        if ctx.method == "POST":
            body = ctx.body if isinstance(ctx.body, dict) else {}

            def as_list(v: Json) -> list[str]:
                if v is None:
                    return []
                items = v if isinstance(v, list) else str(v).split(",")
                return [str(x).strip() for x in items if str(x).strip()]

            return {
                "jql": body.get("jql") or "",
                "startAt": body.get("startAt"),
                "maxResults": body.get("maxResults"),
                "nextPageToken": body.get("nextPageToken"),
                "fields": as_list(body.get("fields")),
                "properties": as_list(body.get("properties")),
            }
        return {
            "jql": ctx.q("jql") or "",
            "startAt": ctx.q("startAt"),
            "maxResults": ctx.q("maxResults"),
            "nextPageToken": ctx.q("nextPageToken"),
            "fields": ctx.q_list("fields"),
            "properties": ctx.q_list("properties"),
        }

    def _search_classic(self, ctx: _Ctx) -> tuple[int, Json]:
        if self.flavour == "cloud":
            raise JiraFault(410, [SEARCH_REMOVED])
        p = self._search_params(ctx)
        matches = self._run_jql(p["jql"], ctx.user, bounded=False)
        start = int(p["startAt"] or 0)
        size = min(int(p["maxResults"] if p["maxResults"] is not None else 50), self.dc_search_cap)
        fields = self._wanted_fields(p["fields"], self._NAVIGABLE)
        page = matches[start : start + size]
        return 200, {
            "expand": "schema,names",
            "startAt": start,
            "maxResults": size,
            "total": len(matches),
            "issues": [self._issue_json(i, ctx.version, fields, p["properties"]) for i in page],
        }

    def _search_jql(self, ctx: _Ctx) -> tuple[int, Json]:
        if self.flavour != "cloud":
            raise JiraFault(404, [f"null for uri: {self._api(ctx.version)}/search/jql"])
        p = self._search_params(ctx)
        jql = p["jql"]
        matches = self._run_jql(jql, ctx.user, bounded=True)
        start = 0
        token = p["nextPageToken"]
        if token:
            saved = self._tokens.get(token)
            if saved is None or saved[0] != jql:
                raise JiraFault(400, ["The provided next page token is invalid or expired."])
            start = saved[1]
        fields = self._wanted_fields(p["fields"], ())
        ids_only = not fields or set(fields) <= {"id", "issuekey"}
        cap = 5000 if ids_only else self.jql_search_cap
        size = min(int(p["maxResults"] if p["maxResults"] is not None else 50), cap)
        page = matches[start : start + size]
        issues = []
        for issue in page:
            if not fields:
                issues.append({"id": issue.id})
            else:
                issues.append(self._issue_json(issue, ctx.version, fields, p["properties"]))
        out: dict[str, Any] = {"issues": issues}
        if start + size < len(matches):
            new_token = secrets.token_urlsafe(24)
            self._tokens[new_token] = (jql, start + size)
            out["nextPageToken"] = new_token
            out["isLast"] = False
        else:
            out["isLast"] = True
        return 200, out

    # ------------------------------------------------------------------ JQL
    _CLAUSE = re.compile(
        r"""^\s*(?P<field>[A-Za-z]+)\s*
        (?P<op>not\s+in|in|is\s+not|is|!=|>=|<=|=|>|<|~)\s*
        (?P<value>"[^"]*"|'[^']*'|\([^)]*\)|[^\s()]+)\s*$""",
        re.IGNORECASE | re.VERBOSE,
    )

    @staticmethod
    def _unquote(v: str) -> str:
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            return v[1:-1]
        return v

    def _jql_values(self, raw: str) -> list[str]:
        raw = raw.strip()
        if raw.startswith("("):
            inner = raw[1:-1]
            return [self._unquote(x) for x in re.findall(r'"[^"]*"|\'[^\']*\'|[^,\s]+', inner)]
        return [self._unquote(raw)]

    def _jql_date(self, field_name: str, raw: str) -> datetime:
        value = self._unquote(raw).strip()
        rel = re.fullmatch(r"([-+]?)\s*(\d+)\s*([wdhm])", value)
        if rel:
            unit = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}[rel.group(3)]
            delta = timedelta(**{unit: int(rel.group(2))})
            return self.clock() - delta if rel.group(1) == "-" else self.clock() + delta
        for fmt in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
            try:
                return datetime.strptime(value, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
        raise JiraFault(
            400,
            [f"Date value '{value}' for field '{field_name}' is invalid. Valid formats include: "
             "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
             "format e.g. '-5d', '4w 2d'."],
        )  # fmt: skip

    def _jql_predicate(self, clause: str) -> Callable[[IssueRec], bool]:
        m = self._CLAUSE.match(clause)
        if m is None:
            raise JiraFault(
                400, [f"Error in the JQL Query: the fake Jira cannot parse '{clause.strip()}'."]
            )
        name = m.group("field").lower()
        op = re.sub(r"\s+", " ", m.group("op").lower())
        raw = m.group("value")
        values = self._jql_values(raw)

        def unsupported() -> JiraFault:
            return JiraFault(
                400, [f"Error in the JQL Query: the fake Jira does not support '{clause.strip()}'."]
            )

        if name == "project":
            for v in values:
                if not any(v.upper() in (p.key, p.id) for p in self._projects.values()):
                    raise JiraFault(
                        400, [f"The value '{v}' does not exist for the field 'project'."]
                    )
            keys = {self._project_or_404(v).key for v in values}
            if op in ("=", "in"):
                return lambda i: i.project in keys
            if op in ("!=", "not in"):
                return lambda i: i.project not in keys
            raise unsupported()
        if name in ("key", "issuekey", "issue", "id"):
            wanted = {self._issue_ids.get(v, v.upper()) for v in values}
            if op in ("=", "in"):
                return lambda i: i.key in wanted
            if op in ("!=", "not in"):
                return lambda i: i.key not in wanted
            raise unsupported()
        if name == "labels":
            if op in ("is", "is not"):
                if values[0].lower() not in ("empty", "null"):
                    raise unsupported()
                return (lambda i: not i.labels) if op == "is" else (lambda i: bool(i.labels))
            wanted = set(values)
            if op in ("=", "in"):
                return lambda i: bool(wanted & set(i.labels))
            if op in ("!=", "not in"):
                return lambda i: not wanted & set(i.labels)
            raise unsupported()
        if name == "statuscategory":
            done_names = {"done"}
            if any(v.lower() not in ("done", "to do", "in progress", "new", "indeterminate")
                   for v in values):
                raise JiraFault(400, [f"The value '{values[0]}' does not exist for the field "
                                      "'statusCategory'."])
            wants_done = bool(done_names & {v.lower() for v in values})

            def is_done(i: IssueRec) -> bool:
                return i.status in ("Done", "Closed", "Resolved")

            if op in ("=", "in"):
                return lambda i: is_done(i) == wants_done
            if op in ("!=", "not in"):
                return lambda i: is_done(i) != wants_done
            raise unsupported()
        if name == "summary" and op == "~":
            needle = values[0].lower()
            return lambda i: needle in i.summary.lower()
        if name in ("updated", "created", "updateddate", "createddate"):
            attr = "updated" if name.startswith("updated") else "created"
            when = self._jql_date(attr, raw)
            cmp: dict[str, Callable[[datetime, datetime], bool]] = {
                ">=": lambda a, b: a >= b,
                ">": lambda a, b: a > b,
                "<=": lambda a, b: a <= b,
                "<": lambda a, b: a < b,
                "=": lambda a, b: a.replace(second=0, microsecond=0) == b,
            }
            if op not in cmp:
                raise unsupported()
            fn = cmp[op]
            return lambda i: fn(getattr(i, attr), when)
        known = {"summary", "status", "reporter", "assignee", "text", "type", "issuetype"}
        if name in known:
            raise unsupported()
        raise JiraFault(
            400,
            [
                f"Field '{m.group('field')}' does not exist or you do not have permission "
                "to view it."
            ],
        )

    def _run_jql(self, jql: str, user: User, *, bounded: bool) -> list[IssueRec]:
        # Mask quoted strings so keywords inside them are not taken as operators.
        quoted: list[str] = []

        def mask(m: re.Match[str]) -> str:
            quoted.append(m.group(0))
            return f"\x00{len(quoted) - 1}\x00"

        def unmask(text: str) -> str:
            return re.sub(r"\x00(\d+)\x00", lambda m: quoted[int(m.group(1))], text)

        masked = re.sub(r'"[^"]*"|\'[^\']*\'', mask, jql)
        parts = re.split(r"\border\s+by\b", masked, maxsplit=1, flags=re.I)
        where = parts[0]
        order = unmask(parts[1]) if len(parts) > 1 else ""
        clauses = [c for c in re.split(r"\s+and\s+", where.strip(), flags=re.I) if c.strip()]
        if any(
            re.search(r"\bor\b", c, re.I) or re.match(r"\s*(not\b|\()", c, re.I) for c in clauses
        ):
            raise JiraFault(
                400, ["Error in the JQL Query: the fake Jira supports only AND-joined clauses."]
            )
        clauses = [unmask(c) for c in clauses]
        if bounded and not clauses:
            raise JiraFault(
                400,
                ["Unbounded JQL queries are not allowed here. Please add a search restriction "
                 "to your query."],
            )  # fmt: skip
        preds = [self._jql_predicate(c) for c in clauses]
        issues = [
            i
            for i in self._issues.values()
            if self.has_permission(user.handle, i.project, "BROWSE_PROJECTS")
            and all(p(i) for p in preds)
        ]
        if not order.strip():
            issues.sort(key=lambda i: int(i.id), reverse=True)
            return issues
        keys: dict[str, Callable[[IssueRec], Any]] = {
            "key": lambda i: (i.project, int(i.key.rsplit("-", 1)[1])),
            "issuekey": lambda i: (i.project, int(i.key.rsplit("-", 1)[1])),
            "id": lambda i: int(i.id),
            "created": lambda i: i.created,
            "updated": lambda i: i.updated,
            "summary": lambda i: i.summary.lower(),
        }
        terms = [t.split() for t in order.split(",") if t.strip()]
        for term in reversed(terms):
            fname = term[0].lower()
            if fname not in keys or len(term) > 2:
                raise JiraFault(
                    400,
                    [f"Error in the JQL Query: the fake Jira cannot order by '{' '.join(term)}'."],
                )
            desc = len(term) == 2 and term[1].lower() == "desc"
            issues.sort(key=keys[fname], reverse=desc)
        return issues


class _Handler(FakeHandler):
    server_version = "FakeJira/1.0"
    wbufsize = -1  # one write per response (flushed by handle_one_request)

    def _serve(self) -> None:
        fake: FakeJira = self.server.fake  # type: ignore[attr-defined]
        result = fake.handle(self.command, self.path, dict(self.headers.items()), self.read_body())
        if result is None:
            self.close_connection = True
            return
        status, headers, data = result
        self.write_reply(status, headers, data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve
