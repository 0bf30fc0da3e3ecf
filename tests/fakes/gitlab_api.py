"""An in-process fake of the GitLab REST API v4, served over real HTTP on loopback.

Real python-gitlab (or requests, httpx, ...) talks to it exactly as it would to gitlab.com,
so tests exercise the client library's own URL building, pagination, retries and error
mapping. Shapes follow GitLab's Grape entities (``UserBasic``, ``User``, ``IssueBasic``,
``Note``, ``Member``, ``AwardEmoji``, ``Label``, ``BasicProjectDetails``), written here from
the API documentation; only the fields a triage bot could plausibly read are filled in.

Behaviour that real GitLab has and that this fake reproduces on purpose:

* Offset pagination (``x-page``, ``x-per-page``, ``x-next-page``, ``x-prev-page``, ``x-total``,
  ``x-total-pages``, ``Link``); ``per_page`` is capped at 100; over 10,000 records the totals
  and ``rel="last"`` are omitted. ``pagination=keyset`` is ignored on these endpoints.
* Issue lists default to ``order_by=created_at&sort=desc``; notes default to ``sort=desc``
  (newest first) as well.
* Issue ``labels`` come back sorted by name. ``labels=`` replaces, then ``add_labels`` adds
  (creating missing project labels), then ``remove_labels`` removes; removing an absent label
  is not an error. Label changes from users below Planner/Reporter are dropped silently.
* Creating or editing a note bumps the issue's ``updated_at`` (so a bot's own comment makes
  the issue show up again in an ``updated_after`` sweep).
* Confidentiality, title, description and state changes add *system* notes.
* Note authors and issue authors are ``UserBasic``: there is **no** ``bot`` field. Only
  ``GET /user`` and ``GET /users/:id`` say ``"bot": true``.
* Missing token = anonymous (can read public projects only); wrong token = 401.
* ``RateLimit-*`` headers on every answer; a real throttle when ``rate_limit`` is exceeded
  (429, plain text ``Retry later``, ``Retry-After``). Note that python-gitlab, on *any* 429
  without ``Retry-After``, sleeps until ``RateLimit-Reset`` (up to ``rate_window`` seconds).

Recording: ``requests`` holds every request; ``writes`` holds *effective* API state changes
(a no-op PUT records nothing), e.g. ``gitlab:group/proj#3:+label threat/model-stealing``,
``...#3:-label bug``, ``...#3:note+ 1001``, ``...#3:note~ 1001``, ``...#3:confidential true``,
``...#3:award+ 1001 thumbsup``, ``...#3:award+ issue thumbsup``, ``...#3:title``,
``...#3:description``, ``...#3:state closed``, ``...#4:issue+`` and
``gitlab:group/proj:label+ name`` for labels created on the project. Seeding helpers
(``add_issue``, ``edit_issue``, ``add_note``...) are not recorded.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from tests.fakes._http import Chaos, FakeHandler, FakeHTTPServer, FaultRule

__all__ = [
    "ACCESS",
    "FakeGitLab",
    "RecordedRequest",
    "quote_path",
]

#: GitLab access levels (``Gitlab::Access``).
ACCESS: dict[str, int] = {
    "no_access": 0,
    "minimal": 5,
    "guest": 10,
    "planner": 15,
    "reporter": 20,
    "developer": 30,
    "maintainer": 40,
    "owner": 50,
}

_PLANNER = 15  # lowest level that may set labels/confidentiality and read confidential issues
_DEFAULT_LABEL_COLOR = "#6699cc"
_MAX_PER_PAGE = 100
_TOTALS_CUTOFF = 10_000
_ISSUE_ORDER = {"created_at", "updated_at", "title", "due_date", "relative_position", "priority"}
_PROJECT_ORDER = {"id", "name", "path", "created_at", "updated_at", "last_activity_at"}
_EMOJI_RE = re.compile(r"^[a-z0-9_+\-]+$")


# ----------------------------------------------------------------------------------------
# state


@dataclass
class _User:
    id: int
    username: str
    name: str
    bot: bool = False
    state: str = "active"
    email: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _Member:
    access_level: int
    created_at: datetime


@dataclass
class _Label:
    id: int
    name: str
    color: str = _DEFAULT_LABEL_COLOR
    description: str = ""
    priority: int | None = None
    is_project_label: bool = True


@dataclass
class _Group:
    id: int
    full_path: str
    name: str
    parent_id: int | None
    visibility: str
    created_at: datetime
    members: dict[int, _Member] = field(default_factory=dict)
    labels: dict[str, _Label] = field(default_factory=dict)


@dataclass
class _Award:
    id: int
    name: str
    user_id: int
    created_at: datetime


@dataclass
class _Note:
    id: int
    body: str
    author_id: int
    created_at: datetime
    updated_at: datetime
    system: bool = False
    internal: bool = False
    awards: list[_Award] = field(default_factory=list)


@dataclass
class _LabelEvent:
    id: int
    user_id: int
    created_at: datetime
    label: _Label
    action: str


@dataclass
class _Issue:
    id: int
    iid: int
    title: str
    description: str
    author_id: int
    created_at: datetime
    updated_at: datetime
    labels: list[str] = field(default_factory=list)
    state: str = "opened"
    confidential: bool = False
    closed_at: datetime | None = None
    closed_by_id: int | None = None
    assignee_ids: list[int] = field(default_factory=list)
    notes: list[_Note] = field(default_factory=list)
    awards: list[_Award] = field(default_factory=list)
    label_events: list[_LabelEvent] = field(default_factory=list)


@dataclass
class _Project:
    id: int
    full_path: str
    name: str
    namespace_id: int
    visibility: str
    created_at: datetime
    description: str = ""
    archived: bool = False
    members: dict[int, _Member] = field(default_factory=dict)
    labels: dict[str, _Label] = field(default_factory=dict)
    issues: dict[int, _Issue] = field(default_factory=dict)
    next_iid: int = 1
    last_activity_at: datetime | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it (``path`` is raw, ``decoded_path`` is URL-decoded)."""

    method: str
    path: str
    decoded_path: str
    query: dict[str, list[str]]
    body: Any
    status: int
    username: str | None
    headers: dict[str, str]


class _ApiError(Exception):
    """Raised by handlers; becomes a JSON error answer."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status, payload)
        self.status = status
        self.payload = payload


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str]
    reason: str | None = None


@dataclass
class _Req:
    method: str
    path: str  # raw path after /api/v4, still URL-encoded
    full_path: str  # raw path including /api/v4
    query: dict[str, list[str]]
    params: dict[str, Any]
    body: Any
    headers: dict[str, str]
    user: _User | None = None


def _iso(dt: datetime | None) -> str | None:
    """GitLab's timestamp format: ``2016-01-04T15:31:46.176Z``."""
    if dt is None:
        return None
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse_time(value: str, name: str) -> datetime:
    """Parse an ISO 8601 time parameter or answer 400 like Grape does."""
    try:
        dt = datetime.fromisoformat(str(value).strip().replace(" ", "+"))
    except ValueError:
        raise _ApiError(400, {"error": f"{name} is invalid"}) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def _bool(value: Any) -> bool:
    """Grape's Boolean coercion."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "1", "yes", "t", "on"}


def _split_labels(value: Any) -> list[str]:
    """Label params arrive as a comma string, a JSON list or repeated query params."""
    if value is None:
        return []
    items: Iterable[Any] = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            name = part.strip()
            if name and name not in out:
                out.append(name)
    return out


def _label_scope(name: str) -> str | None:
    """``a::b::c`` has scope ``a::b``; unscoped labels have none."""
    return name.rsplit("::", 1)[0] if "::" in name else None


# ----------------------------------------------------------------------------------------
# the fake


class FakeGitLab(FakeHTTPServer):
    """A GitLab REST v4 double. Use as a context manager or call ``start()``/``stop()``.

    >>> with FakeGitLab() as fake:
    ...     fake.add_project("group/proj")
    ...     gl = gitlab.Gitlab(fake.url, private_token=fake.token)
    """

    _fake_name = "FakeGitLab"
    requests: list[RecordedRequest]

    def __init__(
        self,
        token: str = "glpat-bugbar-test-token",
        *,
        username: str = "bugbar-bot",
        bot: bool = True,
        version: str = "17.9.1-ee",
        rate_limit: int | None = 2000,
        rate_window: float = 60.0,
        notes_per_minute: int | None = None,
        scoped_labels: bool = False,
    ) -> None:
        """Configure the token's user and limits.

        ``scoped_labels=True`` makes ``a::b`` labels mutually exclusive per scope (a
        Premium/Ultimate feature; GitLab Free keeps both). ``notes_per_minute`` turns on
        GitLab's note-creation limit (gitlab.com: 60), whose 429 carries no ``Retry-After``.
        """
        self._init_http()
        self._ids = itertools.count(1)
        self._user_ids = itertools.count(1)
        self._note_ids = itertools.count(1001)
        self._stop_event = threading.Event()
        self._frozen: datetime | None = None
        self._clock_offset = timedelta(0)

        self.version = version
        self.revision = "6f1b6f2c1a0"
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.notes_per_minute = notes_per_minute
        self.scoped_labels = scoped_labels

        self._users: dict[int, _User] = {}
        self._tokens: dict[str, int] = {}
        self._revoked: set[str] = set()
        self._groups: dict[int, _Group] = {}
        self._projects: dict[int, _Project] = {}
        self._rate: dict[str, tuple[float, int]] = {}
        self._note_rate: dict[int, list[float]] = {}

        # ``requests``: every request in arrival order, including the ones answered by
        # injected faults; ``writes``: state changes made through the API, as readable
        # strings (see module docstring).

        self.chaos: Chaos | None = None
        """Random 502 / 429 / slow answers (see :class:`Chaos`); None: none."""
        self.token = token
        self.bot_user = self.add_user(username, bot=bot, name="Bugbar Bot" if bot else username)
        self.add_token(token, username)

    # -- lifecycle ---------------------------------------------------------------------

    def _handler_class(self) -> type[_Handler]:
        return _Handler

    def start(self) -> FakeGitLab:
        """Start serving on 127.0.0.1 on a free port, in a daemon thread."""
        self._stop_event.clear()
        return super().start()

    def _before_stop(self) -> None:
        """Pending ``delay_next`` sleeps are cut short."""
        self._stop_event.set()

    @property
    def api_url(self) -> str:
        """``<url>/api/v4``."""
        return f"{self.url}/api/v4"

    # -- clock -------------------------------------------------------------------------

    def now(self) -> datetime:
        """The fake's current time (real UTC time unless frozen/advanced)."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(UTC) + self._clock_offset

    def freeze_time(self, at: datetime | str | None) -> None:
        """Freeze the clock used for ``created_at``/``updated_at`` (``None`` unfreezes)."""
        with self._lock:
            if isinstance(at, str):
                at = _parse_time(at, "at")
            self._frozen = at.astimezone(UTC) if at is not None else None

    def advance(self, seconds: float) -> None:
        """Move the clock forward (works frozen or not)."""
        with self._lock:
            if self._frozen is not None:
                self._frozen += timedelta(seconds=seconds)
            else:
                self._clock_offset += timedelta(seconds=seconds)

    # -- seeding helpers (not recorded in ``writes``) ------------------------------------

    def add_user(
        self, username: str, *, id: int | None = None, name: str | None = None, bot: bool = False
    ) -> dict[str, Any]:
        """Create a user (or return the existing one); returns its ``UserBasic`` JSON."""
        with self._lock:
            existing = self._user_by_name(username)
            if existing is not None:
                return self._user_basic(existing)
            uid = id if id is not None else next(self._user_ids) + 100
            user = _User(
                id=uid,
                username=username,
                name=name or username.replace("-", " ").title(),
                bot=bot,
                email=f"{username}@example.com",
                created_at=self.now(),
            )
            self._users[uid] = user
            return self._user_basic(user)

    def add_token(self, token: str, username: str) -> None:
        """Accept ``token`` as ``username`` (created if missing)."""
        with self._lock:
            self.add_user(username)
            user = self._user_by_name(username)
            assert user is not None
            self._tokens[token] = user.id
            self._revoked.discard(token)

    def revoke_token(self, token: str) -> None:
        """Make ``token`` answer 401 ``invalid_token`` (as a revoked PAT does)."""
        with self._lock:
            self._revoked.add(token)

    def add_group(
        self, path: str, *, id: int | None = None, visibility: str = "private"
    ) -> dict[str, Any]:
        """Create a group (and its parents) by full path; returns the group JSON."""
        with self._lock:
            return self._group_json(self._ensure_group(path, id=id, visibility=visibility))

    def add_project(
        self,
        path: str,
        *,
        id: int | None = None,
        visibility: str = "private",
        bot_access: int | None = ACCESS["developer"],
        description: str = "",
        archived: bool = False,
    ) -> dict[str, Any]:
        """Create ``group[/subgroup]/project`` (groups are created as needed).

        The token's user is made a direct member with ``bot_access`` (``None``: not a member).
        GitLab's default visibility is private.
        """
        with self._lock:
            if "/" not in path:
                raise ValueError("project path must include a namespace: 'group/project'")
            if self._project_by_path(path) is not None:
                raise ValueError(f"project {path!r} exists")
            ns_path, name = path.rsplit("/", 1)
            group = self._ensure_group(ns_path, visibility=visibility)
            pid = id if id is not None else next(self._ids)
            now = self.now()
            project = _Project(
                id=pid,
                full_path=path,
                name=name,
                namespace_id=group.id,
                visibility=visibility,
                created_at=now,
                description=description,
                archived=archived,
                last_activity_at=now,
            )
            self._projects[pid] = project
            if bot_access is not None:
                project.members[self.bot_user["id"]] = _Member(bot_access, now)
            return self._project_json(project, None)

    def add_member(self, path: str, username: str, access_level: int | str) -> None:
        """Make ``username`` a direct member of a project or group (by full path)."""
        with self._lock:
            level = ACCESS[access_level] if isinstance(access_level, str) else access_level
            self.add_user(username)
            user = self._user_by_name(username)
            assert user is not None
            target: _Project | _Group | None = self._project_by_path(path)
            if target is None:
                target = self._group_by_path(path)
            if target is None:
                raise KeyError(path)
            target.members[user.id] = _Member(level, self.now())

    def add_label(
        self, path: str, name: str, *, color: str = "#428bca", description: str = ""
    ) -> dict[str, Any]:
        """Create a label on a project (or on a group, inherited by its projects)."""
        with self._lock:
            target: _Project | _Group | None = self._project_by_path(path)
            if target is None:
                target = self._group_by_path(path)
            if target is None:
                raise KeyError(path)
            label = _Label(
                next(self._ids),
                name,
                color,
                description,
                is_project_label=isinstance(target, _Project),
            )
            target.labels[name] = label
            return self._label_json(label)

    def add_issue(
        self,
        path: str,
        title: str,
        description: str = "",
        *,
        labels: Iterable[str] = (),
        author: str = "alice",
        confidential: bool = False,
        state: str = "opened",
        created_at: datetime | str | None = None,
        updated_at: datetime | str | None = None,
        assignees: Iterable[str] = (),
    ) -> int:
        """Create an issue as ``author`` (labels are created as needed); returns its iid."""
        with self._lock:
            project = self._need_project(path)
            self.add_user(author)
            user = self._user_by_name(author)
            assert user is not None
            created = self._coerce_time(created_at) or self.now()
            updated = self._coerce_time(updated_at) or created
            names = _split_labels(list(labels))
            for name in names:
                self._find_or_create_label(project, name)
            assignee_ids = []
            for login in assignees:
                self.add_user(login)
                assignee = self._user_by_name(login)
                assert assignee is not None
                assignee_ids.append(assignee.id)
            issue = _Issue(
                id=next(self._ids),
                iid=project.next_iid,
                title=title,
                description=description,
                author_id=user.id,
                created_at=created,
                updated_at=updated,
                labels=names,
                state=state,
                confidential=confidential,
                closed_at=updated if state == "closed" else None,
                assignee_ids=assignee_ids,
            )
            project.next_iid += 1
            project.issues[issue.iid] = issue
            return issue.iid

    def edit_issue(self, path: str, iid: int, *, by: str | None = None, **changes: Any) -> None:
        """Edit an issue as a human would (title, description, labels, state, confidential).

        Bumps ``updated_at``; adds system notes like GitLab; not recorded in ``writes``.
        """
        with self._lock:
            project = self._need_project(path)
            issue = self._need_issue(project, iid)
            actor = self._user_by_name(by) if by else self._users[issue.author_id]
            assert actor is not None
            params: dict[str, Any] = {}
            for key, value in changes.items():
                if key == "state":
                    params["state_event"] = "close" if value == "closed" else "reopen"
                else:
                    params[key] = value
            self._apply_issue_update(project, issue, actor, params, record=False)

    def add_note(
        self,
        path: str,
        iid: int,
        body: str,
        *,
        author: str = "alice",
        system: bool = False,
        internal: bool = False,
    ) -> int:
        """Add a comment as ``author`` (bumps the issue's ``updated_at``); returns the note id."""
        with self._lock:
            project = self._need_project(path)
            issue = self._need_issue(project, iid)
            self.add_user(author)
            user = self._user_by_name(author)
            assert user is not None
            return self._create_note(issue, user, body, system=system, internal=internal).id

    # -- inspection helpers --------------------------------------------------------------

    def delete_issue(self, path: str, iid: int) -> None:
        """Delete an issue as an admin would: GitLab then answers 404 "404 Not found" for it
        while the project stays readable."""
        with self._lock:
            project = self._need_project(path)
            self._need_issue(project, iid)
            del project.issues[int(iid)]

    def issue(self, path: str, iid: int) -> dict[str, Any]:
        """The issue's current JSON (as an admin would see it)."""
        with self._lock:
            project = self._need_project(path)
            return self._issue_json(project, self._need_issue(project, iid), detailed=True)

    def labels_of(self, path: str, iid: int) -> list[str]:
        """The issue's label names, sorted as GitLab sorts them."""
        return list(self.issue(path, iid)["labels"])

    def notes(self, path: str, iid: int, *, include_system: bool = True) -> list[dict[str, Any]]:
        """The issue's notes, oldest first."""
        with self._lock:
            project = self._need_project(path)
            issue = self._need_issue(project, iid)
            return [
                self._note_json(project, issue, n)
                for n in issue.notes
                if include_system or not n.system
            ]

    def project_labels(self, path: str) -> list[str]:
        """Names of the labels that exist on the project itself."""
        with self._lock:
            return sorted(self._need_project(path).labels)

    def _request_paths(self, record: RecordedRequest) -> tuple[str, ...]:
        return (record.path, record.decoded_path)

    # -- fault injection ---------------------------------------------------------------

    def fail_next(
        self,
        method: str | None,
        path_regex: str,
        status: int,
        headers: dict[str, str] | None = None,
        body: Any = None,
        times: int = 1,
        *,
        reason: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` instead.

        ``method=None`` matches any method; ``path_regex`` is searched in the raw and the
        URL-decoded path. With ``headers=None`` GitLab-like defaults are used (429:
        ``Retry-After: 0`` plus ``RateLimit-*``); pass ``headers={}`` to send none.
        ``body`` may be a dict/list (JSON), str or bytes; ``None`` means GitLab's usual body.
        ``reason`` overrides the HTTP reason phrase (python-gitlab looks for "Resource lock").
        """
        self._arm_fail(method, path_regex, status, headers, body, times, reason)

    def drop_next(self, method: str | None, path_regex: str, times: int = 1) -> None:
        """Close the connection without answering (client sees a connection error)."""
        self._arm_drop(method, path_regex, times)

    # -- internals: lookups ------------------------------------------------------------

    def _coerce_time(self, value: datetime | str | None) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return _parse_time(value, "time")
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def _user_by_name(self, username: str) -> _User | None:
        wanted = username.lower()
        for user in self._users.values():
            if user.username.lower() == wanted:
                return user
        return None

    def _group_by_path(self, path: str) -> _Group | None:
        for group in self._groups.values():
            if group.full_path.lower() == path.lower():
                return group
        return None

    def _project_by_path(self, path: str) -> _Project | None:
        for project in self._projects.values():
            if project.full_path.lower() == path.lower():
                return project
        return None

    def _need_project(self, path: str) -> _Project:
        project = self._project_by_path(path)
        if project is None:
            raise KeyError(f"no project {path!r}")
        return project

    @staticmethod
    def _need_issue(project: _Project, iid: int) -> _Issue:
        issue = project.issues.get(int(iid))
        if issue is None:
            raise KeyError(f"no issue {project.full_path}#{iid}")
        return issue

    def _ensure_group(
        self, path: str, *, id: int | None = None, visibility: str = "private"
    ) -> _Group:
        parent: _Group | None = None
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            group = self._group_by_path(sub)
            if group is None:
                gid = id if (id is not None and depth == len(parts)) else next(self._ids)
                group = _Group(
                    id=gid,
                    full_path=sub,
                    name=parts[depth - 1],
                    parent_id=parent.id if parent else None,
                    visibility=visibility,
                    created_at=self.now(),
                )
                self._groups[gid] = group
            elif visibility == "public" and group.visibility != "public":
                group.visibility = "public"  # a public project needs a public namespace
            parent = group
        assert parent is not None
        return parent

    def _ancestors(self, group_id: int | None) -> list[_Group]:
        chain: list[_Group] = []
        while group_id is not None:
            group = self._groups[group_id]
            chain.append(group)
            group_id = group.parent_id
        return chain

    def _project_member(self, project: _Project, user_id: int) -> _Member | None:
        """Highest membership including inherited group memberships (``members/all``)."""
        found = [project.members.get(user_id)]
        found += [g.members.get(user_id) for g in self._ancestors(project.namespace_id)]
        members = [m for m in found if m is not None]
        return max(members, key=lambda m: m.access_level) if members else None

    def _access(self, project: _Project, user: _User | None) -> int:
        if user is None:
            return 0
        member = self._project_member(project, user.id)
        return member.access_level if member else 0

    def _can_read_project(self, project: _Project, user: _User | None) -> bool:
        if project.visibility == "public":
            return True
        if project.visibility == "internal":
            return user is not None
        return self._access(project, user) >= ACCESS["guest"]

    def _can_read_issue(self, project: _Project, issue: _Issue, user: _User | None) -> bool:
        if not self._can_read_project(project, user):
            return False
        if not issue.confidential:
            return True
        if user is None:
            return False
        return (
            user.id == issue.author_id
            or user.id in issue.assignee_ids
            or self._access(project, user) >= _PLANNER
        )

    def _label_lookup(self, project: _Project, name: str) -> _Label | None:
        if name in project.labels:
            return project.labels[name]
        for group in self._ancestors(project.namespace_id):
            if name in group.labels:
                return group.labels[name]
        return None

    def _find_or_create_label(self, project: _Project, name: str) -> tuple[_Label, bool]:
        label = self._label_lookup(project, name)
        if label is not None:
            return label, False
        label = _Label(next(self._ids), name)
        project.labels[name] = label
        return label, True

    # -- internals: JSON shapes --------------------------------------------------------

    def _user_basic(self, user: _User) -> dict[str, Any]:
        base = self.url if self._server is not None else "http://gitlab.invalid"
        return {
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "state": user.state,
            "locked": False,
            "avatar_url": f"https://secure.gravatar.com/avatar/{user.id:032x}?s=80&d=identicon",
            "web_url": f"{base}/{user.username}",
        }

    def _user_full(self, user: _User, *, current: bool) -> dict[str, Any]:
        out = self._user_basic(user)
        out.update(
            {
                "created_at": _iso(user.created_at),
                "bio": "",
                "location": "",
                "public_email": None,
                "linkedin": "",
                "twitter": "",
                "discord": "",
                "website_url": "",
                "organization": "",
                "job_title": "",
                "pronouns": None,
                "bot": user.bot,
                "work_information": None,
                "followers": 0,
                "following": 0,
                "local_time": None,
            }
        )
        if current:
            out.update(
                {
                    "last_sign_in_at": None,
                    "confirmed_at": _iso(user.created_at),
                    "last_activity_on": self.now().date().isoformat(),
                    "email": user.email,
                    "theme_id": 1,
                    "color_scheme_id": 1,
                    "projects_limit": 0 if user.bot else 100000,
                    "current_sign_in_at": None,
                    "identities": [],
                    "can_create_group": not user.bot,
                    "can_create_project": not user.bot,
                    "two_factor_enabled": False,
                    "external": False,
                    "private_profile": False,
                    "commit_email": user.email,
                }
            )
        return out

    def _member_json(self, user: _User, member: _Member) -> dict[str, Any]:
        out = self._user_basic(user)
        out.update(
            {
                "access_level": member.access_level,
                "created_at": _iso(member.created_at),
                "expires_at": None,
                "membership_state": "active",
            }
        )
        return out

    def _label_json(self, label: _Label, project: _Project | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": label.id,
            "name": label.name,
            "description": label.description or None,
            "description_html": label.description,
            "text_color": "#FFFFFF",
            "color": label.color,
            "subscribed": False,
            "priority": label.priority,
            "is_project_label": label.is_project_label,
        }
        if project is not None:
            opened = closed = 0
            for issue in project.issues.values():
                if label.name in issue.labels:
                    if issue.state == "opened":
                        opened += 1
                    else:
                        closed += 1
            out.update(
                {
                    "open_issues_count": opened,
                    "closed_issues_count": closed,
                    "open_merge_requests_count": 0,
                }
            )
        return out

    def _group_json(self, group: _Group) -> dict[str, Any]:
        base = self.url if self._server is not None else "http://gitlab.invalid"
        full_name = " / ".join(g.name for g in reversed(self._ancestors(group.id)))
        return {
            "id": group.id,
            "web_url": f"{base}/groups/{group.full_path}",
            "name": group.name,
            "path": group.full_path.rsplit("/", 1)[-1],
            "description": "",
            "visibility": group.visibility,
            "full_name": full_name,
            "full_path": group.full_path,
            "parent_id": group.parent_id,
            "created_at": _iso(group.created_at),
            "avatar_url": None,
        }

    def _project_json(
        self, project: _Project, user: _User | None, *, simple: bool = False
    ) -> dict[str, Any]:
        base = self.url if self._server is not None else "http://gitlab.invalid"
        ns = self._groups[project.namespace_id]
        web = f"{base}/{project.full_path}"
        out: dict[str, Any] = {
            "id": project.id,
            "description": project.description,
            "name": project.name,
            "name_with_namespace": " / ".join(
                [g.name for g in reversed(self._ancestors(ns.id))] + [project.name]
            ),
            "path": project.name,
            "path_with_namespace": project.full_path,
            "created_at": _iso(project.created_at),
            "default_branch": "main",
            "tag_list": [],
            "topics": [],
            "ssh_url_to_repo": f"git@127.0.0.1:{project.full_path}.git",
            "http_url_to_repo": f"{web}.git",
            "web_url": web,
            "readme_url": None,
            "forks_count": 0,
            "avatar_url": None,
            "star_count": 0,
            "last_activity_at": _iso(project.last_activity_at),
            "namespace": {
                "id": ns.id,
                "name": ns.name,
                "path": ns.full_path.rsplit("/", 1)[-1],
                "kind": "group",
                "full_path": ns.full_path,
                "parent_id": ns.parent_id,
                "avatar_url": None,
                "web_url": f"{base}/groups/{ns.full_path}",
            },
        }
        if simple:
            return out
        api = f"{base}/api/v4/projects/{project.id}"
        direct = project.members.get(user.id) if user else None
        inherited = None
        if user is not None:
            for group in self._ancestors(project.namespace_id):
                m = group.members.get(user.id)
                if m and (inherited is None or m.access_level > inherited.access_level):
                    inherited = m
        out.update(
            {
                "_links": {
                    "self": api,
                    "issues": f"{api}/issues",
                    "labels": f"{api}/labels",
                    "members": f"{api}/members",
                },
                "archived": project.archived,
                "visibility": project.visibility,
                "issues_enabled": True,
                "issues_access_level": "enabled",
                "open_issues_count": sum(1 for i in project.issues.values() if i.state == "opened"),
                "empty_repo": True,
                "permissions": {
                    "project_access": (
                        {"access_level": direct.access_level, "notification_level": 3}
                        if direct
                        else None
                    ),
                    "group_access": (
                        {"access_level": inherited.access_level, "notification_level": 3}
                        if inherited
                        else None
                    ),
                },
            }
        )
        return out

    def _issue_json(
        self,
        project: _Project,
        issue: _Issue,
        *,
        detailed: bool = False,
        with_label_details: bool = False,
    ) -> dict[str, Any]:
        base = self.url if self._server is not None else "http://gitlab.invalid"
        api = f"{base}/api/v4/projects/{project.id}/issues/{issue.iid}"
        names = sorted(issue.labels)
        labels: list[Any]
        if with_label_details:
            labels = []
            for name in names:
                found = self._label_lookup(project, name)
                labels.append(
                    {
                        "id": found.id if found else 0,
                        "name": name,
                        "color": found.color if found else _DEFAULT_LABEL_COLOR,
                        "description": found.description if found else None,
                        "description_html": found.description if found else "",
                        "text_color": "#FFFFFF",
                    }
                )
        else:
            labels = names
        assignees = [self._user_basic(self._users[u]) for u in issue.assignee_ids]
        user_notes = sum(1 for n in issue.notes if not n.system)
        out: dict[str, Any] = {
            "id": issue.id,
            "iid": issue.iid,
            "project_id": project.id,
            "title": issue.title,
            "description": issue.description,
            "state": issue.state,
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "closed_at": _iso(issue.closed_at),
            "closed_by": (
                self._user_basic(self._users[issue.closed_by_id]) if issue.closed_by_id else None
            ),
            "labels": labels,
            "milestone": None,
            "assignees": assignees,
            "author": self._user_basic(self._users[issue.author_id]),
            "type": "ISSUE",
            "assignee": assignees[0] if assignees else None,
            "user_notes_count": user_notes,
            "merge_requests_count": 0,
            "upvotes": sum(1 for a in issue.awards if a.name == "thumbsup"),
            "downvotes": sum(1 for a in issue.awards if a.name == "thumbsdown"),
            "due_date": None,
            "confidential": issue.confidential,
            "discussion_locked": None,
            "issue_type": "issue",
            "web_url": f"{base}/{project.full_path}/-/issues/{issue.iid}",
            "time_stats": {
                "time_estimate": 0,
                "total_time_spent": 0,
                "human_time_estimate": None,
                "human_total_time_spent": None,
            },
            "task_completion_status": {"count": 0, "completed_count": 0},
            "blocking_issues_count": 0,
            "has_tasks": False,
            "_links": {
                "self": api,
                "notes": f"{api}/notes",
                "award_emoji": f"{api}/award_emoji",
                "project": f"{base}/api/v4/projects/{project.id}",
                "closed_as_duplicate_of": None,
            },
            "references": {
                "short": f"#{issue.iid}",
                "relative": f"#{issue.iid}",
                "full": f"{project.full_path}#{issue.iid}",
            },
            "severity": "UNKNOWN",
            "moved_to_id": None,
            "imported": False,
            "imported_from": "none",
            "service_desk_reply_to": None,
        }
        if detailed:
            out["subscribed"] = False
        return out

    def _note_json(self, project: _Project, issue: _Issue, note: _Note) -> dict[str, Any]:
        return {
            "id": note.id,
            "type": None,
            "body": note.body,
            "attachment": None,
            "author": self._user_basic(self._users[note.author_id]),
            "created_at": _iso(note.created_at),
            "updated_at": _iso(note.updated_at),
            "system": note.system,
            "noteable_id": issue.id,
            "noteable_type": "Issue",
            "project_id": project.id,
            "resolvable": False,
            "confidential": note.internal,
            "internal": note.internal,
            "imported": False,
            "imported_from": "none",
            "noteable_iid": issue.iid,
            "commands_changes": {},
        }

    def _award_json(self, award: _Award, awardable_id: int, kind: str) -> dict[str, Any]:
        return {
            "id": award.id,
            "name": award.name,
            "user": self._user_basic(self._users[award.user_id]),
            "created_at": _iso(award.created_at),
            "updated_at": _iso(award.created_at),
            "awardable_id": awardable_id,
            "awardable_type": kind,
            "url": None,
        }

    # -- internals: mutations ----------------------------------------------------------

    def _ref(self, project: _Project, issue: _Issue | None = None) -> str:
        return f"gitlab:{project.full_path}" + (f"#{issue.iid}" if issue else "")

    def _create_note(
        self,
        issue: _Issue,
        user: _User,
        body: str,
        *,
        system: bool = False,
        internal: bool = False,
        touch: bool = True,
    ) -> _Note:
        now = self.now()
        note = _Note(next(self._note_ids), body, user.id, now, now, system, internal)
        issue.notes.append(note)
        if touch:
            issue.updated_at = now
        return note

    def _apply_issue_update(
        self,
        project: _Project,
        issue: _Issue,
        user: _User,
        params: dict[str, Any],
        *,
        record: bool,
    ) -> None:
        """GitLab's issue update: metadata filtering, label merge, system notes, touch."""
        ref = self._ref(project, issue)
        can_meta = self._access(project, user) >= _PLANNER or not record
        changed = False
        now = self.now()

        if "title" in params and str(params["title"]) != issue.title:
            new_title = str(params["title"]).strip()
            if not new_title:
                raise _ApiError(400, {"message": {"title": ["can't be blank"]}})
            self._create_note(
                issue,
                user,
                f"changed title from **{issue.title}** to **{new_title}**",
                system=True,
                touch=False,
            )
            issue.title = new_title
            changed = True
            if record:
                self.writes.append(f"{ref}:title")
        if "description" in params and str(params["description"] or "") != issue.description:
            issue.description = str(params["description"] or "")
            self._create_note(issue, user, "changed the description", system=True, touch=False)
            changed = True
            if record:
                self.writes.append(f"{ref}:description")

        if can_meta and any(k in params for k in ("labels", "add_labels", "remove_labels")):
            current = list(issue.labels)
            if "labels" in params:
                current = _split_labels(params["labels"])
            for name in _split_labels(params.get("add_labels")):
                if name not in current:
                    current.append(name)
            removals = set(_split_labels(params.get("remove_labels")))
            current = [n for n in current if n not in removals]
            if self.scoped_labels:
                current = self._exclusive_scopes(current, issue.labels)
            added = [n for n in current if n not in issue.labels]
            removed = [n for n in issue.labels if n not in current]
            for name in added:
                label, created = self._find_or_create_label(project, name)
                if created and record:
                    self.writes.append(f"{self._ref(project)}:label+ {name}")
                issue.label_events.append(_LabelEvent(next(self._ids), user.id, now, label, "add"))
                if record:
                    self.writes.append(f"{ref}:+label {name}")
            for name in removed:
                label = self._label_lookup(project, name) or _Label(0, name)
                issue.label_events.append(
                    _LabelEvent(next(self._ids), user.id, now, label, "remove")
                )
                if record:
                    self.writes.append(f"{ref}:-label {name}")
            if added or removed:
                issue.labels = current
                changed = True

        if can_meta and "confidential" in params:
            value = _bool(params["confidential"])
            if value != issue.confidential:
                issue.confidential = value
                text = (
                    "made the issue confidential" if value else "made the issue visible to everyone"
                )
                self._create_note(issue, user, text, system=True, touch=False)
                changed = True
                if record:
                    self.writes.append(f"{ref}:confidential {str(value).lower()}")

        if can_meta and "assignee_ids" in params:
            raw = params["assignee_ids"]
            values = raw if isinstance(raw, list) else str(raw or "").split(",")
            ids = [int(v) for v in values if str(v).strip().isdigit()]
            # GitLab drops users who cannot see the issue; Free tiers keep the first only.
            ids = [i for i in dict.fromkeys(ids) if i in self._users and self._access(
                project, self._users[i]) >= ACCESS["guest"]]
            if ids != issue.assignee_ids:
                issue.assignee_ids = ids
                names = ", ".join(f"@{self._users[i].username}" for i in ids)
                self._create_note(issue, user, f"assigned to {names}", system=True, touch=False)
                changed = True
                if record:
                    self.writes.append(f"{ref}:assignees {','.join(map(str, ids))}")

        event = params.get("state_event")
        if event in ("close", "reopen"):
            new_state = "closed" if event == "close" else "opened"
            if new_state != issue.state:
                issue.state = new_state
                issue.closed_at = now if new_state == "closed" else None
                issue.closed_by_id = user.id if new_state == "closed" else None
                self._create_note(
                    issue, user, new_state.replace("opened", "reopened"), system=True, touch=False
                )
                changed = True
                if record:
                    self.writes.append(f"{ref}:state {new_state}")

        if changed:
            issue.updated_at = now
            project.last_activity_at = now

    @staticmethod
    def _exclusive_scopes(wanted: list[str], before: list[str]) -> list[str]:
        """Premium scoped labels: one label per ``a::`` scope; a newly added label wins."""
        result: list[str] = []
        for name in wanted:
            scope = _label_scope(name)
            clash = [n for n in result if scope is not None and _label_scope(n) == scope]
            if any(n not in before for n in clash) and name in before:
                continue  # an older label loses to one this request adds
            for other in clash:
                result.remove(other)
            result.append(name)
        return result

    # -- internals: request pipeline ---------------------------------------------------

    def _rate_headers(self, key: str, *, count_it: bool) -> tuple[dict[str, str], bool]:
        """Fixed-window throttle like Rack::Attack ``throttle_authenticated_api``."""
        if self.rate_limit is None:
            return {}, False
        now = time.time()
        window_start = math.floor(now / self.rate_window) * self.rate_window
        with self._lock:
            start, used = self._rate.get(key, (window_start, 0))
            if start != window_start:
                start, used = window_start, 0
            if count_it:
                used += 1
            self._rate[key] = (start, used)
        reset = start + self.rate_window
        headers = {
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": str(self.rate_limit),
            "RateLimit-Observed": str(used),
            "RateLimit-Remaining": str(max(0, self.rate_limit - used)),
            "RateLimit-Reset": str(int(reset)),
            "RateLimit-ResetTime": email.utils.formatdate(reset, usegmt=True),
        }
        throttled = used > self.rate_limit
        if throttled:
            headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
        return headers, throttled

    def _fault_response(self, fault: FaultRule, rate: dict[str, str]) -> _Response:
        status = fault.status
        headers: dict[str, str]
        if fault.headers is None:
            headers = {}
            if status == 429:
                headers = dict(rate) or {"RateLimit-Name": "throttle_authenticated_api"}
                headers["RateLimit-Remaining"] = "0"
                headers["Retry-After"] = "0"
        else:
            headers = dict(fault.headers)
        body = fault.body
        if body is None:
            body = _default_error_body(status)
        if isinstance(body, (dict, list)):
            headers.setdefault("Content-Type", "application/json")
            raw = json.dumps(body).encode()
        elif isinstance(body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            raw = body.encode()
        else:
            raw = bytes(body)
        return _Response(status, raw, headers, fault.reason)

    def _handle(
        self, method: str, raw_target: str, headers: dict[str, str], body: bytes
    ) -> _Response | None:
        """Full request pipeline; ``None`` means drop the connection."""
        split = urlsplit(raw_target)
        full_path = split.path
        decoded = unquote(full_path)
        query = parse_qs(split.query, keep_blank_values=True)
        paths = (full_path, decoded)
        parsed_body: Any = None
        if body:
            ctype = headers.get("content-type", "")
            try:
                if "json" in ctype or body[:1] in (b"{", b"["):
                    parsed_body = json.loads(body)
                else:
                    parsed_body = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
            except ValueError:
                parsed_body = body.decode(errors="replace")

        delay = self._take_fault({"delay"}, method, *paths)
        if delay is not None:
            self._stop_event.wait(delay.seconds)

        token = headers.get("private-token")
        auth = headers.get("authorization", "")
        if token is None and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        if token is None and "private_token" in query:
            token = query["private_token"][-1]
        user: _User | None = None
        with self._lock:
            if token is not None and token in self._tokens and token not in self._revoked:
                user = self._users[self._tokens[token]]
        rate, throttled = self._rate_headers(
            f"user:{user.id}" if user else "ip:127.0.0.1", count_it=True
        )

        def record(status: int) -> None:
            with self._lock:
                self.requests.append(
                    RecordedRequest(
                        method,
                        full_path,
                        decoded,
                        query,
                        parsed_body,
                        status,
                        user.username if user else None,
                        dict(headers),
                    )
                )

        fault = self._take_fault({"fail", "drop"}, method, *paths)
        if fault is not None:
            if fault.kind == "drop":
                record(0)
                return None
            resp = self._fault_response(fault, rate)
            record(resp.status)
            return resp

        if throttled:
            resp = _Response(
                429, b"Retry later\n", {"Content-Type": "text/plain", **rate}, "Too Many Requests"
            )
            record(429)
            return resp

        status, payload, extra = self._dispatch(
            method, full_path, query, parsed_body, headers, token, user
        )
        out_headers = {"Content-Type": "application/json", **rate, **extra}
        resp = _Response(status, json.dumps(payload).encode(), out_headers)
        record(status)
        return resp

    def _dispatch(
        self,
        method: str,
        full_path: str,
        query: dict[str, list[str]],
        body: Any,
        headers: dict[str, str],
        token: str | None,
        user: _User | None,
    ) -> tuple[int, Any, dict[str, str]]:
        if not full_path.startswith("/api/v4/"):
            return 404, {"error": "404 Not Found"}, {}
        if token is not None and user is None:
            with self._lock:
                revoked = token in self._revoked
            if revoked:
                return (
                    401,
                    {
                        "error": "invalid_token",
                        "error_description": "Token was revoked. You have to re-authorize "
                        "from the user profile.",
                    },
                    {},
                )
            return 401, {"message": "401 Unauthorized"}, {}
        params: dict[str, Any] = {k: (v if k.endswith("[]") else v[-1]) for k, v in query.items()}
        for key, value in query.items():
            if len(value) > 1 and not key.endswith("[]"):
                params[key] = value  # repeated params (label lists)
        if isinstance(body, dict):
            params.update(body)
        tail = full_path[len("/api/v4") :]
        req = _Req(method, tail, full_path, query, params, body, headers, user)
        for route_method, pattern, func in _ROUTES:
            match = pattern.match(req.path)
            if match is None:
                continue
            if route_method != method:
                continue
            if method != "GET" and user is None:
                return 401, {"message": "401 Unauthorized"}, {}
            try:
                with self._lock:
                    return func(self, req, **match.groupdict())
            except _ApiError as err:
                return err.status, err.payload, {}
        if any(p.match(req.path) for _, p, _ in _ROUTES):
            return 405, {"error": "405 Method Not Allowed"}, {}
        return 404, {"error": "404 Not Found"}, {}

    # -- internals: request helpers ----------------------------------------------------

    def _project_param(self, req: _Req, ident: str) -> _Project:
        key = unquote(ident)
        project = self._projects.get(int(key)) if key.isdigit() else self._project_by_path(key)
        if project is None or not self._can_read_project(project, req.user):
            raise _ApiError(404, {"message": "404 Project Not Found"})
        return project

    def _group_param(self, ident: str) -> _Group:
        key = unquote(ident)
        group = self._groups.get(int(key)) if key.isdigit() else self._group_by_path(key)
        if group is None:
            raise _ApiError(404, {"message": "404 Group Not Found"})
        return group

    def _issue_param(self, req: _Req, project: _Project, iid: str) -> _Issue:
        issue = project.issues.get(int(iid))
        if issue is None or not self._can_read_issue(project, issue, req.user):
            raise _ApiError(404, {"message": "404 Not found"})
        return issue

    def _need_user(self, req: _Req) -> _User:
        if req.user is None:
            raise _ApiError(401, {"message": "401 Unauthorized"})
        return req.user

    def _paginate(self, req: _Req, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """Offset pagination with GitLab's headers and ``Link``."""
        try:
            page = int(req.params.get("page", 1) or 1)
        except ValueError:
            raise _ApiError(400, {"error": "page is invalid"}) from None
        try:
            per_page = int(req.params.get("per_page", 20) or 20)
        except ValueError:
            raise _ApiError(400, {"error": "per_page is invalid"}) from None
        page = max(page, 1)
        per_page = min(max(per_page, 1), _MAX_PER_PAGE)
        total = len(items)
        total_pages = max(1, math.ceil(total / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        in_range = page <= total_pages
        next_page = page + 1 if in_range and page < total_pages else None
        prev_page = page - 1 if in_range and page > 1 else None
        show_totals = total <= _TOTALS_CUTOFF

        def link(p: int) -> str:
            q = {k: v for k, v in req.query.items() if k not in ("page", "per_page")}
            q["page"] = [str(p)]
            q["per_page"] = [str(per_page)]
            return f"{self.url}{req.full_path}?{urlencode(q, doseq=True)}"

        links = []
        if prev_page:
            links.append(f'<{link(prev_page)}>; rel="prev"')
        if next_page:
            links.append(f'<{link(next_page)}>; rel="next"')
        links.append(f'<{link(1)}>; rel="first"')
        if show_totals:
            links.append(f'<{link(total_pages)}>; rel="last"')
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Next-Page": str(next_page or ""),
            "X-Prev-Page": str(prev_page or ""),
            "Link": ", ".join(links),
        }
        if show_totals:
            headers["X-Total"] = str(total)
            headers["X-Total-Pages"] = str(total_pages)
        return chunk, headers

    @staticmethod
    def _sort_params(req: _Req, allowed: set[str], default: str) -> tuple[str, bool]:
        order_by = str(req.params.get("order_by", default))
        if order_by not in allowed:
            raise _ApiError(400, {"error": "order_by does not have a valid value"})
        sort = str(req.params.get("sort", "desc"))
        if sort not in ("asc", "desc"):
            raise _ApiError(400, {"error": "sort does not have a valid value"})
        return order_by, sort == "desc"

    # -- route handlers ----------------------------------------------------------------

    def _r_version(self, req: _Req) -> tuple[int, Any, dict[str, str]]:
        self._need_user(req)
        return (
            200,
            {
                "version": self.version,
                "revision": self.revision,
                "kas": {"enabled": False, "externalUrl": None, "version": None},
                "enterprise": self.version.endswith("-ee"),
            },
            {},
        )

    def _r_current_user(self, req: _Req) -> tuple[int, Any, dict[str, str]]:
        return 200, self._user_full(self._need_user(req), current=True), {}

    def _r_users(self, req: _Req) -> tuple[int, Any, dict[str, str]]:
        users = sorted(self._users.values(), key=lambda u: u.id, reverse=True)
        if "username" in req.params:
            wanted = str(req.params["username"]).lower()
            users = [u for u in users if u.username.lower() == wanted]
        if "search" in req.params:
            term = str(req.params["search"]).lower()
            users = [u for u in users if term in u.username.lower() or term in u.name.lower()]
        chunk, headers = self._paginate(req, users)
        return 200, [self._user_basic(u) for u in chunk], headers

    def _r_user(self, req: _Req, uid: str) -> tuple[int, Any, dict[str, str]]:
        if req.user is None:
            raise _ApiError(403, {"message": "403 Forbidden - Not authorized!"})
        user = self._users.get(int(uid))
        if user is None:
            raise _ApiError(404, {"message": "404 User Not Found"})
        return 200, self._user_full(user, current=user.id == req.user.id), {}

    def _r_projects(self, req: _Req) -> tuple[int, Any, dict[str, str]]:
        projects = [p for p in self._projects.values() if self._can_read_project(p, req.user)]
        if _bool(req.params.get("membership", False)):
            projects = [p for p in projects if self._access(p, req.user) >= ACCESS["guest"]]
        return self._project_list(req, projects)

    def _project_list(self, req: _Req, projects: list[_Project]) -> tuple[int, Any, dict[str, str]]:
        if "search" in req.params:
            term = str(req.params["search"]).lower()
            projects = [p for p in projects if term in p.name.lower()]
        if "archived" in req.params:
            projects = [p for p in projects if p.archived == _bool(req.params["archived"])]
        if "visibility" in req.params:
            projects = [p for p in projects if p.visibility == req.params["visibility"]]
        order_by, desc = self._sort_params(req, _PROJECT_ORDER, "created_at")
        key_funcs: dict[str, Callable[[_Project], Any]] = {
            "id": lambda p: (p.id,),
            "name": lambda p: (p.name.lower(), p.id),
            "path": lambda p: (p.full_path.lower(), p.id),
            "created_at": lambda p: (p.created_at, p.id),
            "updated_at": lambda p: (p.last_activity_at, p.id),
            "last_activity_at": lambda p: (p.last_activity_at, p.id),
        }
        projects.sort(key=key_funcs[order_by], reverse=desc)
        chunk, headers = self._paginate(req, projects)
        simple = _bool(req.params.get("simple", False))
        return 200, [self._project_json(p, req.user, simple=simple) for p in chunk], headers

    def _r_project(self, req: _Req, pid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        return 200, self._project_json(project, req.user), {}

    def _r_group(self, req: _Req, gid: str) -> tuple[int, Any, dict[str, str]]:
        return 200, self._group_json(self._group_param(gid)), {}

    def _r_group_projects(self, req: _Req, gid: str) -> tuple[int, Any, dict[str, str]]:
        group = self._group_param(gid)
        subgroups = _bool(req.params.get("include_subgroups", False))
        projects = []
        for project in self._projects.values():
            chain = [g.id for g in self._ancestors(project.namespace_id)]
            inside = project.namespace_id == group.id or (subgroups and group.id in chain)
            if inside and self._can_read_project(project, req.user):
                projects.append(project)
        return self._project_list(req, projects)

    def _r_issues(self, req: _Req, pid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issues = [i for i in project.issues.values() if self._can_read_issue(project, i, req.user)]
        state = str(req.params.get("state", "all"))
        if state not in ("opened", "closed", "all"):
            raise _ApiError(400, {"error": "state does not have a valid value"})
        if state != "all":
            issues = [i for i in issues if i.state == state]
        for name, attr, cmp in (
            ("updated_after", "updated_at", 1),
            ("updated_before", "updated_at", -1),
            ("created_after", "created_at", 1),
            ("created_before", "created_at", -1),
        ):
            if name in req.params:
                bound = _parse_time(req.params[name], name)
                if cmp > 0:
                    issues = [i for i in issues if getattr(i, attr) >= bound]
                else:
                    issues = [i for i in issues if getattr(i, attr) <= bound]
        if "labels" in req.params:
            wanted = _split_labels(req.params["labels"])
            if [w.lower() for w in wanted] == ["none"]:
                issues = [i for i in issues if not i.labels]
            elif [w.lower() for w in wanted] == ["any"]:
                issues = [i for i in issues if i.labels]
            else:
                issues = [i for i in issues if all(w in i.labels for w in wanted)]
        iids = req.params.get("iids[]")
        if iids:
            wanted_iids = {int(x) for x in (iids if isinstance(iids, list) else [iids])}
            issues = [i for i in issues if i.iid in wanted_iids]
        if "confidential" in req.params:
            flag = _bool(req.params["confidential"])
            issues = [i for i in issues if i.confidential == flag]
        if "author_username" in req.params:
            author = self._user_by_name(str(req.params["author_username"]))
            issues = [i for i in issues if author and i.author_id == author.id]
        if "search" in req.params:
            term = str(req.params["search"]).lower()
            issues = [i for i in issues if term in i.title.lower() or term in i.description.lower()]
        order_by, desc = self._sort_params(req, _ISSUE_ORDER, "created_at")
        key_funcs: dict[str, Callable[[_Issue], Any]] = {
            "created_at": lambda i: (i.created_at, i.id),
            "updated_at": lambda i: (i.updated_at, i.id),
            "title": lambda i: (i.title.lower(), i.id),
        }
        issues.sort(key=key_funcs.get(order_by, lambda i: (i.id,)), reverse=desc)
        chunk, headers = self._paginate(req, issues)
        details = _bool(req.params.get("with_labels_details", False))
        body = [self._issue_json(project, i, with_label_details=details) for i in chunk]
        return 200, body, headers

    def _r_issue_create(self, req: _Req, pid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        user = self._need_user(req)
        title = str(req.params.get("title") or "").strip()
        if not title:
            raise _ApiError(400, {"error": "title is missing"})
        iid = self.add_issue(
            project.full_path,
            title,
            str(req.params.get("description") or ""),
            author=user.username,
        )
        issue = project.issues[iid]
        self.writes.append(f"{self._ref(project, issue)}:issue+")
        extra: dict[str, Any] = {
            k: req.params[k] for k in ("labels", "confidential") if k in req.params
        }
        if extra:
            self._apply_issue_update(project, issue, user, extra, record=True)
        return 201, self._issue_json(project, issue, detailed=True), {}

    def _r_issue(self, req: _Req, pid: str, iid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issue = self._issue_param(req, project, iid)
        details = _bool(req.params.get("with_labels_details", False))
        return 200, self._issue_json(project, issue, detailed=True, with_label_details=details), {}

    def _r_issue_update(self, req: _Req, pid: str, iid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issue = self._issue_param(req, project, iid)
        user = self._need_user(req)
        if user.id != issue.author_id and self._access(project, user) < _PLANNER:
            raise _ApiError(403, {"message": "403 Forbidden"})
        known = {
            "title",
            "description",
            "labels",
            "add_labels",
            "remove_labels",
            "confidential",
            "state_event",
            "assignee_ids",
            "milestone_id",
            "due_date",
            "discussion_locked",
            "weight",
            "issue_type",
        }
        if not any(k in req.params for k in known):
            raise _ApiError(
                400,
                {
                    "error": ", ".join(sorted(known)) + " are missing, at least one parameter "
                    "must be provided"
                },
            )
        self._apply_issue_update(project, issue, user, req.params, record=True)
        details = _bool(req.params.get("with_labels_details", False))
        return 200, self._issue_json(project, issue, detailed=True, with_label_details=details), {}

    def _r_label_events(self, req: _Req, pid: str, iid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issue = self._issue_param(req, project, iid)
        events = [
            {
                "id": e.id,
                "user": self._user_basic(self._users[e.user_id]),
                "created_at": _iso(e.created_at),
                "resource_type": "Issue",
                "resource_id": issue.id,
                "label": {
                    "id": e.label.id,
                    "name": e.label.name,
                    "color": e.label.color,
                    "description": e.label.description or None,
                },
                "action": e.action,
            }
            for e in issue.label_events
        ]
        chunk, headers = self._paginate(req, events)
        return 200, chunk, headers

    def _visible_notes(self, project: _Project, issue: _Issue, user: _User | None) -> list[_Note]:
        level = self._access(project, user)
        return [
            n
            for n in issue.notes
            if not n.internal or level >= _PLANNER or (user is not None and n.author_id == user.id)
        ]

    def _r_notes(self, req: _Req, pid: str, iid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issue = self._issue_param(req, project, iid)
        order_by = str(req.params.get("order_by", "created_at"))
        if order_by not in ("created_at", "updated_at"):
            raise _ApiError(400, {"error": "order_by does not have a valid value"})
        sort = str(req.params.get("sort", "desc"))
        if sort not in ("asc", "desc"):
            raise _ApiError(400, {"error": "sort does not have a valid value"})
        notes = self._visible_notes(project, issue, req.user)
        notes.sort(key=lambda n: (getattr(n, order_by), n.id), reverse=sort == "desc")
        chunk, headers = self._paginate(req, notes)
        return 200, [self._note_json(project, issue, n) for n in chunk], headers

    def _r_note(self, req: _Req, pid: str, iid: str, nid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issue = self._issue_param(req, project, iid)
        note = self._note_param(project, issue, req.user, nid)
        return 200, self._note_json(project, issue, note), {}

    def _note_param(self, project: _Project, issue: _Issue, user: _User | None, nid: str) -> _Note:
        for note in self._visible_notes(project, issue, user):
            if note.id == int(nid):
                return note
        raise _ApiError(404, {"message": "404 Not found"})

    def _check_note_rate(self, user: _User) -> None:
        if self.notes_per_minute is None:
            return
        now = time.time()
        recent = [t for t in self._note_rate.get(user.id, []) if now - t < 60]
        if len(recent) >= self.notes_per_minute:
            self._note_rate[user.id] = recent
            raise _ApiError(
                429,
                {
                    "message": {
                        "error": "This endpoint has been requested too many times. Try again later."
                    }
                },
            )
        recent.append(now)
        self._note_rate[user.id] = recent

    def _r_note_create(self, req: _Req, pid: str, iid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issue = self._issue_param(req, project, iid)
        user = self._need_user(req)
        if "body" not in req.params:
            raise _ApiError(400, {"error": "body is missing"})
        body = str(req.params["body"])
        if not body.strip():
            raise _ApiError(400, {"message": {"note": ["can't be blank"]}})
        self._check_note_rate(user)
        internal = _bool(req.params.get("internal", req.params.get("confidential", False)))
        note = self._create_note(issue, user, body, internal=internal)
        project.last_activity_at = note.created_at
        self.writes.append(f"{self._ref(project, issue)}:note+ {note.id}")
        return 201, self._note_json(project, issue, note), {}

    def _r_note_update(
        self, req: _Req, pid: str, iid: str, nid: str
    ) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issue = self._issue_param(req, project, iid)
        user = self._need_user(req)
        note = self._note_param(project, issue, user, nid)
        if note.system or note.author_id != user.id:
            raise _ApiError(403, {"message": "403 Forbidden"})
        if "body" not in req.params:
            raise _ApiError(400, {"error": "body is missing"})
        body = str(req.params["body"])
        if not body.strip():
            raise _ApiError(400, {"message": {"note": ["can't be blank"]}})
        if body != note.body:
            now = self.now()
            note.body = body
            note.updated_at = now
            issue.updated_at = now
            self.writes.append(f"{self._ref(project, issue)}:note~ {note.id}")
        return 200, self._note_json(project, issue, note), {}

    def _add_award(self, req: _Req, awards: list[_Award]) -> _Award:
        user = self._need_user(req)
        name = str(req.params.get("name") or "").strip().strip(":")
        if "name" not in req.params:
            raise _ApiError(400, {"error": "name is missing"})
        if not _EMOJI_RE.match(name):
            raise _ApiError(
                404, {"message": "404 Award Emoji Name is not a valid emoji name Not Found"}
            )
        if any(a.name == name and a.user_id == user.id for a in awards):
            raise _ApiError(
                404, {"message": "404 Award Emoji Name has already been taken Not Found"}
            )
        award = _Award(next(self._ids), name, user.id, self.now())
        awards.append(award)
        return award

    def _r_note_awards(
        self, req: _Req, pid: str, iid: str, nid: str
    ) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issue = self._issue_param(req, project, iid)
        note = self._note_param(project, issue, req.user, nid)
        chunk, headers = self._paginate(req, note.awards)
        return 200, [self._award_json(a, note.id, "Note") for a in chunk], headers

    def _r_note_award_create(
        self, req: _Req, pid: str, iid: str, nid: str
    ) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issue = self._issue_param(req, project, iid)
        note = self._note_param(project, issue, req.user, nid)
        award = self._add_award(req, note.awards)
        self.writes.append(f"{self._ref(project, issue)}:award+ {note.id} {award.name}")
        return 201, self._award_json(award, note.id, "Note"), {}

    def _r_issue_awards(self, req: _Req, pid: str, iid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issue = self._issue_param(req, project, iid)
        chunk, headers = self._paginate(req, issue.awards)
        return 200, [self._award_json(a, issue.id, "Issue") for a in chunk], headers

    def _r_issue_award_create(
        self, req: _Req, pid: str, iid: str
    ) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        issue = self._issue_param(req, project, iid)
        award = self._add_award(req, issue.awards)
        self.writes.append(f"{self._ref(project, issue)}:award+ issue {award.name}")
        return 201, self._award_json(award, issue.id, "Issue"), {}

    def _r_labels(self, req: _Req, pid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        labels = list(project.labels.values())
        if _bool(req.params.get("include_ancestor_groups", True)):
            for group in self._ancestors(project.namespace_id):
                labels += [lb for lb in group.labels.values() if lb.name not in project.labels]
        if "search" in req.params:
            term = str(req.params["search"]).lower()
            labels = [lb for lb in labels if term in lb.name.lower()]
        labels.sort(key=lambda lb: (lb.name.lower(), lb.id))
        chunk, headers = self._paginate(req, labels)
        counts = _bool(req.params.get("with_counts", False))
        return 200, [self._label_json(lb, project if counts else None) for lb in chunk], headers

    def _r_label_create(self, req: _Req, pid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        user = self._need_user(req)
        if self._access(project, user) < _PLANNER:
            raise _ApiError(403, {"message": "403 Forbidden"})
        name = str(req.params.get("name") or "").strip()
        if "name" not in req.params:
            raise _ApiError(400, {"error": "name is missing"})
        if "color" not in req.params:
            raise _ApiError(400, {"error": "color is missing"})
        if not name or "," in name:
            raise _ApiError(400, {"message": {"title": ["is invalid"]}})
        if name in project.labels:
            raise _ApiError(409, {"message": "Label already exists"})
        label = _Label(
            next(self._ids),
            name,
            str(req.params["color"]),
            str(req.params.get("description") or ""),
            priority=int(req.params["priority"]) if req.params.get("priority") else None,
        )
        project.labels[name] = label
        self.writes.append(f"{self._ref(project)}:label+ {name}")
        return 201, self._label_json(label, project), {}

    def _r_members_all(self, req: _Req, pid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        ids = set(project.members)
        for group in self._ancestors(project.namespace_id):
            ids |= set(group.members)
        rows = []
        for uid in sorted(ids):
            member = self._project_member(project, uid)
            assert member is not None
            rows.append(self._member_json(self._users[uid], member))
        chunk, headers = self._paginate(req, rows)
        return 200, chunk, headers

    def _r_member_all(self, req: _Req, pid: str, uid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        member = self._project_member(project, int(uid))
        if member is None:
            raise _ApiError(404, {"message": "404 Not found"})
        return 200, self._member_json(self._users[int(uid)], member), {}

    def _r_member(self, req: _Req, pid: str, uid: str) -> tuple[int, Any, dict[str, str]]:
        project = self._project_param(req, pid)
        member = project.members.get(int(uid))
        if member is None:
            raise _ApiError(404, {"message": "404 Member Not Found"})
        return 200, self._member_json(self._users[int(uid)], member), {}

    def _r_group_member_all(self, req: _Req, gid: str, uid: str) -> tuple[int, Any, dict[str, str]]:
        group = self._group_param(gid)
        found = [g.members.get(int(uid)) for g in self._ancestors(group.id)]
        members = [m for m in found if m is not None]
        if not members:
            raise _ApiError(404, {"message": "404 Not found"})
        best = max(members, key=lambda m: m.access_level)
        return 200, self._member_json(self._users[int(uid)], best), {}


def _default_error_body(status: int) -> Any:
    """The body GitLab (or its front end) sends with each error status."""
    if status == 429:
        return "Retry later\n"
    if status in (502, 503, 504):
        return (
            "<!DOCTYPE html>\n<html><head><title>GitLab is not responding ("
            f"{status})</title></head><body><h1>{status}</h1>"
            "<p>Whoops, GitLab is taking too much time to respond.</p></body></html>\n"
        )
    known = {
        400: {"message": "400 Bad request"},
        401: {"message": "401 Unauthorized"},
        403: {"message": "403 Forbidden"},
        404: {"message": "404 Project Not Found"},
        405: {"error": "405 Method Not Allowed"},
        409: {"message": "409 Conflict"},
        422: {"message": "422 Unprocessable Entity"},
        500: {"message": "500 Internal Server Error"},
    }
    return known.get(status, {"message": f"{status} Error"})


_P = r"(?P<pid>[^/]+)"
_I = r"(?P<iid>\d+)"
_N = r"(?P<nid>\d+)"
_Handler_t = Callable[..., tuple[int, Any, dict[str, str]]]
_ROUTE_TABLE: list[tuple[str, str, _Handler_t]] = [
    ("GET", "/version", FakeGitLab._r_version),
    ("GET", "/user", FakeGitLab._r_current_user),
    ("GET", "/users", FakeGitLab._r_users),
    ("GET", r"/users/(?P<uid>\d+)", FakeGitLab._r_user),
    ("GET", "/projects", FakeGitLab._r_projects),
    ("GET", f"/projects/{_P}", FakeGitLab._r_project),
    ("GET", r"/groups/(?P<gid>[^/]+)", FakeGitLab._r_group),
    ("GET", r"/groups/(?P<gid>[^/]+)/projects", FakeGitLab._r_group_projects),
    ("GET", r"/groups/(?P<gid>[^/]+)/members/all/(?P<uid>\d+)", FakeGitLab._r_group_member_all),
    ("GET", f"/projects/{_P}/issues", FakeGitLab._r_issues),
    ("POST", f"/projects/{_P}/issues", FakeGitLab._r_issue_create),
    ("GET", f"/projects/{_P}/issues/{_I}", FakeGitLab._r_issue),
    ("PUT", f"/projects/{_P}/issues/{_I}", FakeGitLab._r_issue_update),
    ("GET", f"/projects/{_P}/issues/{_I}/resource_label_events", FakeGitLab._r_label_events),
    ("GET", f"/projects/{_P}/issues/{_I}/award_emoji", FakeGitLab._r_issue_awards),
    ("POST", f"/projects/{_P}/issues/{_I}/award_emoji", FakeGitLab._r_issue_award_create),
    ("GET", f"/projects/{_P}/issues/{_I}/notes", FakeGitLab._r_notes),
    ("POST", f"/projects/{_P}/issues/{_I}/notes", FakeGitLab._r_note_create),
    ("GET", f"/projects/{_P}/issues/{_I}/notes/{_N}", FakeGitLab._r_note),
    ("PUT", f"/projects/{_P}/issues/{_I}/notes/{_N}", FakeGitLab._r_note_update),
    ("GET", f"/projects/{_P}/issues/{_I}/notes/{_N}/award_emoji", FakeGitLab._r_note_awards),
    (
        "POST",
        f"/projects/{_P}/issues/{_I}/notes/{_N}/award_emoji",
        FakeGitLab._r_note_award_create,
    ),
    ("GET", f"/projects/{_P}/labels", FakeGitLab._r_labels),
    ("POST", f"/projects/{_P}/labels", FakeGitLab._r_label_create),
    ("GET", f"/projects/{_P}/members/all", FakeGitLab._r_members_all),
    ("GET", rf"/projects/{_P}/members/all/(?P<uid>\d+)", FakeGitLab._r_member_all),
    ("GET", rf"/projects/{_P}/members/(?P<uid>\d+)", FakeGitLab._r_member),
]
_ROUTES: list[tuple[str, re.Pattern[str], _Handler_t]] = [
    (m, re.compile(f"^{p}/?$"), f) for m, p, f in _ROUTE_TABLE
]


class _Handler(FakeHandler):
    """Thin HTTP layer: reads the request, asks the fake, writes the answer."""

    server_version = "nginx"
    sys_version = ""

    def _serve(self) -> None:
        fake: FakeGitLab = self.server.fake  # type: ignore[attr-defined]
        body = self.read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        chaos, wait = fake.chaos.draw(self.path) if fake.chaos is not None else (None, 0.0)
        if chaos == "slow":
            time.sleep(wait)
        if chaos in ("fail", "rate_limit"):
            assert fake.chaos is not None
            status = 429 if chaos == "rate_limit" else 502
            extra_headers = {"Content-Type": "application/json"}
            if chaos == "rate_limit":
                extra_headers["Retry-After"] = str(fake.chaos.retry_after)
            message = "Retry later" if chaos == "rate_limit" else "502 Bad Gateway"
            self.write_reply(status, extra_headers,
                             json.dumps({"message": message}).encode(), bodyless=())
            return
        try:
            resp = fake._handle(self.command, self.path, headers, body)
            if chaos == "fail_after" and resp is not None:  # done, answer lost
                resp = _Response(502, json.dumps({"message": "502 Bad Gateway"}).encode(),
                                 {"Content-Type": "application/json"})
        except Exception as exc:  # a bug in the fake: answer like GitLab's 500
            resp = _Response(
                500,
                json.dumps({"message": f"500 Internal Server Error ({exc!r})"}).encode(),
                {"Content-Type": "application/json"},
            )
        if resp is None:
            self.close_connection = True
            return
        extra = {
            "X-Request-Id": uuid.uuid4().hex[:26].upper(),
            "Cache-Control": "max-age=0, private, must-revalidate",
        }
        self.write_reply(
            resp.status, {**resp.headers, **extra}, resp.body, reason=resp.reason, bodyless=()
        )

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve
    do_PATCH = _serve
    do_HEAD = _serve


def quote_path(path: str) -> str:
    """URL-encode a project/group full path the way clients do (``group%2Fproj``)."""
    return quote(path, safe="")
