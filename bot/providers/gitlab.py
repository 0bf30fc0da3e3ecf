"""GitLab adapter: the :class:`~bot.providers.base.Tracker` interface over python-gitlab.

An issue is ``IssueRef("gitlab", <project path_with_namespace>, <iid>)``.

One retry layer. python-gitlab retries on its own (429s with ``obey_rate_limit=True`` and
``max_retries=10`` by default, 5xx with ``retry_transient_errors``), and it sleeps inside the
call where nobody can see or cap it. Every request here passes ``obey_rate_limit=False``,
``max_retries=0`` and ``retry_transient_errors=False``, so each python-gitlab call is exactly
one HTTP request, and :func:`bot.providers.retry.call_with_retry` decides about retries with
:func:`classify_gitlab_failure`. python-gitlab's exceptions carry no response headers, so the
adapter keeps the last response seen on the calling thread (a ``requests`` session hook) and
copies its headers onto the exception as ``response_headers`` before classifying it.

The same hook reports every response to the optional metrics object
(``api_call(provider, method, status)``) and records ``RateLimit-Remaining``.

Docs: https://docs.gitlab.com/api/rest/ ·
https://python-gitlab.readthedocs.io/en/stable/api-usage.html#rate-limits
"""

from __future__ import annotations

import email.utils
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import gitlab
import requests
from gitlab import exceptions as glexc
from gitlab.v4.objects import ProjectIssueManager, ProjectIssueNoteManager

from bot.decide.handoff import DEFAULT_ESCALATE_ROUTES
from bot.decide.render import MARKER_PREFIX
from bot.events.model import IssueRef
from bot.providers.base import (
    Access,
    Comment,
    HandOff,
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

__all__ = ["PROVIDER", "ConfidentialMode", "GitLabTracker", "access_from_level",
           "classify_gitlab_failure"]

log = logging.getLogger("bugbar.gitlab")

PROVIDER = "gitlab"
PER_PAGE = 100
VISIBILITY_TTL = 300.0
"""Seconds a project's visibility is trusted for planning hand-off steps."""
"""GitLab's maximum page size. https://docs.gitlab.com/api/rest/#pagination"""

ConfidentialMode = Literal["public", "always", "never"]
_MODES: dict[str, ConfidentialMode] = {"public": "public", "always": "always", "never": "never"}

T = TypeVar("T")

_NO_CLIENT_RETRY: dict[str, Any] = {
    "obey_rate_limit": False,
    "max_retries": 0,
    "retry_transient_errors": False,
}
"""Passed to every python-gitlab call: one HTTP request per call, retries are ours."""

_TRANSIENT = frozenset({500, 502, 503, 504, *range(520, 531)})
"""The statuses python-gitlab itself treats as transient (``RETRYABLE_TRANSIENT_ERROR_CODES``)."""

_THROTTLE_FLOOR_S = 5.0
"""First wait on a 429 that names no wait. GitLab's application limits (60 notes/min on
gitlab.com) answer 429 without ``Retry-After``; the throttle headers, when present, describe
the general API budget, not the limit that was hit."""

_REACTIONS = {
    "+1": "thumbsup",
    "-1": "thumbsdown",
    "laugh": "laughing",
    "hooray": "tada",
    "confused": "confused",
    "heart": "heart",
    "rocket": "rocket",
    "eyes": "eyes",
}
"""GitHub reaction names → GitLab emoji names. https://docs.gitlab.com/api/emoji_reactions/"""

_STATES = {"open": "opened", "opened": "opened", "closed": "closed", "all": "all"}


def access_from_level(level: int) -> Access:
    """Map a GitLab access level to :class:`Access`.

    Guest(10) → READ, Reporter(20) → TRIAGE, Developer(30) → WRITE, Maintainer(40) → MAINTAIN,
    Owner(50) → ADMIN; No access(0) and Minimal access(5) → NONE. Planner(15) can edit issue
    metadata but is not a Reporter, so it stays READ: an unknown level rounds down.
    https://docs.gitlab.com/api/members/#roles
    """
    for floor, access in ((50, Access.ADMIN), (40, Access.MAINTAIN), (30, Access.WRITE),
                          (20, Access.TRIAGE), (10, Access.READ)):
        if level >= floor:
            return access
    return Access.NONE


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name.lower())
    return value.strip() if value is not None and value.strip() else None


def _retry_after_seconds(value: str, now: float) -> float | None:
    """``Retry-After`` is delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def classify_gitlab_failure(exc: BaseException, *, now: float | None = None) -> Failure:
    """Decide what the retry layer does about one failed GitLab request.

    * 429: wait ``Retry-After`` when sent; else, when ``RateLimit-Remaining`` is 0, until
      ``RateLimit-Reset``; else back off from a floor (application limits send neither).
      https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/#response-headers
    * 500/502/503/504/52x, timeouts, connection errors: back off.
    * any other status (400, 401, 403, 404, 409, 422...) and anything else: give up at once.

    Headers are read from ``exc.response_headers`` (lower-case names), which
    :class:`GitLabTracker` attaches; without them a 429 backs off from the floor.
    """
    if isinstance(exc, requests.Timeout):
        return Failure.backoff(reason="timeout")
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return Failure.backoff(reason="connection error")
    if not isinstance(exc, glexc.GitlabError) or exc.response_code is None:
        return Failure.give_up(type(exc).__name__)
    status = exc.response_code
    if status == 429:
        headers: Mapping[str, str] = getattr(exc, "response_headers", None) or {}
        current = time.time() if now is None else now
        retry_after = _header(headers, "Retry-After")
        if retry_after is not None:
            seconds = _retry_after_seconds(retry_after, current)
            if seconds is not None:
                return Failure.retry_after(seconds, reason="429 Retry-After")
        reset = _header(headers, "RateLimit-Reset")
        if _header(headers, "RateLimit-Remaining") == "0" and reset and reset.isdigit():
            return Failure.until(float(reset), reason="429 RateLimit-Reset")
        return Failure.backoff(reason="429 without Retry-After", floor=_THROTTLE_FLOOR_S,
                               rate_limited=True)
    if status in _TRANSIENT:
        return Failure.backoff(reason=f"HTTP {status}")
    return Failure.give_up(f"HTTP {status}")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _username(user: object) -> str:
    return str(user.get("username") or "") if isinstance(user, dict) else ""


class GitLabTracker:
    """The GitLab side of the bot, one instance per GitLab instance + token (thread-safe).

    ``policy`` and ``pacer`` come from :mod:`bot.providers.retry`; the pacer spaces every
    mutating request (GitLab.com allows 60 note creations a minute:
    https://docs.gitlab.com/user/gitlab_com/#rate-limits-on-gitlabcom).
    ``confidential_mode`` drives :meth:`protect`: ``"public"`` makes critical issues
    confidential on public projects only, ``"always"`` on every project, ``"never"`` never.
    """

    provider = PROVIDER

    def __init__(
        self,
        url: str,
        token: str,
        *,
        policy: RetryPolicy,
        pacer: WritePacer,
        metrics: ApiMetrics | None = None,
        confidential_mode: ConfidentialMode | str = "public",
        timeout: float = 15.0,
        mentions: tuple[str, ...] = (),
        assignees: tuple[str, ...] = (),
        escalate_routes: frozenset[str] = DEFAULT_ESCALATE_ROUTES,
    ) -> None:
        if confidential_mode not in _MODES:
            raise ValueError("confidential_mode must be 'public', 'always' or 'never'")
        self.url = url.rstrip("/")
        self.policy = policy
        self.pacer = pacer
        self.metrics = metrics
        self.confidential_mode: ConfidentialMode = _MODES[confidential_mode]
        self.mentions = mentions
        self.assignees = assignees
        self.escalate_routes = escalate_routes
        session = requests.Session()
        session.hooks["response"].append(self._on_response)
        self._gl = gitlab.Gitlab(self.url, private_token=token, timeout=timeout,
                                 retry_transient_errors=False, session=session,
                                 user_agent="bugbar (+python-gitlab)")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._identity: tuple[int, str] | None = None
        self._visibility: dict[str, tuple[float, str]] = {}
        self._remaining: int | None = None
        self._reset: int | None = None

    # -- plumbing ----------------------------------------------------------------------

    def _on_response(self, response: requests.Response, *args: object,
                     **kwargs: object) -> None:
        """Session hook: remember the response for error classification, report metrics."""
        self._local.response = response
        remaining = response.headers.get("RateLimit-Remaining")
        if remaining is not None and remaining.strip().isdigit():
            self._remaining = int(remaining)
            reset = response.headers.get("RateLimit-Reset", "").strip()
            self._reset = int(reset) if reset.isdigit() else None
            if self.metrics is not None:
                self.metrics.rate_limit(PROVIDER, float(self._remaining))
        if self.metrics is not None:
            method = response.request.method or "GET"
            self.metrics.api_call(PROVIDER, method, response.status_code)

    def _call(self, what: str, fn: Callable[[], T], *, write: bool = False) -> T:
        """Run one request through the shared retry layer (the only place retries happen)."""

        def attempt() -> T:
            if write:
                self.pacer.wait()
            self._local.response = None
            try:
                return fn()
            except requests.RequestException as exc:
                if self.metrics is not None:
                    method = getattr(exc.request, "method", None) or "?"
                    status = "timeout" if isinstance(exc, requests.Timeout) else "error"
                    self.metrics.api_call(PROVIDER, method, status)
                raise
            except glexc.GitlabError as exc:
                response: requests.Response | None = getattr(self._local, "response", None)
                if response is not None:
                    exc.response_headers = {  # type: ignore[attr-defined]
                        k.lower(): v for k, v in response.headers.items()}
                raise

        return call_with_retry(attempt, self.policy, classify_gitlab_failure,
                               what=f"gitlab {what}")

    def _get(self, path: str, query: Mapping[str, Any] | None = None) -> requests.Response:
        """One GET through python-gitlab's raw ``http_request``: it authenticates, builds the
        URL and raises its usual errors, and hands back the response whose paging headers
        (``X-Next-Page``, ``Link``) the object API would drop."""
        return self._gl.http_request("get", path, query_data=dict(query or {}),
                                     **_NO_CLIENT_RETRY)

    @staticmethod
    def _pid(scope: str) -> str:
        """A project or group path as one URL path segment (``group%2Fproj``)."""
        return quote(scope, safe="")

    def _issue_path(self, ref: IssueRef) -> str:
        return f"/projects/{self._pid(ref.scope)}/issues/{int(ref.number)}"

    def _issue_manager(self, ref: IssueRef) -> ProjectIssueManager:
        # lazy=True builds the object without a request; python-gitlab URL-encodes the path.
        return self._gl.projects.get(ref.scope, lazy=True).issues

    def _notes_manager(self, ref: IssueRef) -> ProjectIssueNoteManager:
        return self._issue_manager(ref).get(ref.number, lazy=True).notes

    def rate_limit_remaining(self) -> int | None:
        """``RateLimit-Remaining`` from the latest response that carried it (None: never seen;
        GitLab omits it on some endpoints, e.g. the Projects, Groups and Users APIs)."""
        return self._remaining

    def rate_limit_reset(self) -> int | None:
        """``RateLimit-Reset`` (Unix seconds) sent with that ``RateLimit-Remaining``."""
        return self._reset

    # -- identity ----------------------------------------------------------------------

    def _whoami(self) -> tuple[int, str]:
        with self._lock:
            if self._identity is not None:
                return self._identity
        user = self._call("user", lambda: self._get("/user").json())
        identity = (int(user["id"]), str(user["username"]))
        with self._lock:
            self._identity = identity
        return identity

    def bot_identity(self) -> str:
        """The token's username (``GET /user``, asked once). Note authors carry no ``bot``
        flag, so this is how the bot knows its own notes. https://docs.gitlab.com/api/users/"""
        return self._whoami()[1]

    # -- issues ------------------------------------------------------------------------

    def _snapshot(self, ref: IssueRef, data: Mapping[str, Any]) -> IssueSnapshot:
        labels = data.get("labels") or []
        names = tuple(str(x["name"] if isinstance(x, dict) else x) for x in labels)
        state = str(data.get("state") or "opened")
        return IssueSnapshot(
            ref=ref,
            title=str(data.get("title") or ""),
            body=str(data.get("description") or ""),
            labels=names,
            state="open" if state == "opened" else state,
            author=_username(data.get("author")),
            updated_at=_parse_time(data.get("updated_at")),
            is_pull_request=False,
            confidential=bool(data.get("confidential")),
            url=str(data.get("web_url") or ""),
            # Notes by accounts (the bot's included), not system notes; 0 spares the sweep a
            # notes request. GitLab has no project-wide notes listing to read them in bulk.
            comment_count=(data["user_notes_count"]
                           if isinstance(data.get("user_notes_count"), int) else None),
            created_at=_parse_time(data.get("created_at")),
        )

    def get_issue(self, ref: IssueRef) -> IssueSnapshot:
        """``GET /projects/:id/issues/:iid``. https://docs.gitlab.com/api/issues/#single-project-issue

        GitLab answers a deleted issue, an unreadable project and a project that does not
        exist alike: 404. Only on that path one more ``GET /projects/:id`` tells them apart:
        a readable project means the issue is gone; otherwise the first error stands.
        """
        try:
            issue = self._call(
                f"get issue {ref}",
                lambda: self._issue_manager(ref).get(ref.number, **_NO_CLIENT_RETRY))
        except glexc.GitlabError as exc:
            if exc.response_code != 404:
                raise
            try:
                self._call(f"project {ref.scope}",
                           lambda: self._get(f"/projects/{self._pid(ref.scope)}"))
            except glexc.GitlabError:
                raise exc from None
            raise IssueGone(ref, "404 on the issue of a readable project: deleted") from exc
        return self._snapshot(ref, issue.attributes)

    def _update_issue(self, ref: IssueRef, what: str, data: dict[str, Any]) -> None:
        self._call(f"{what} {ref}",
                   lambda: self._issue_manager(ref).update(ref.number, data, **_NO_CLIENT_RETRY),
                   write=True)

    def add_labels(self, ref: IssueRef, labels: list[str]) -> None:
        """``PUT …/issues/:iid`` with ``add_labels`` (comma-separated): adds without replacing,
        creates missing project labels, and is idempotent. Names may contain ``/`` and ``::``
        (scoped labels: on Premium a new ``a::x`` replaces ``a::y``), never ``,``.
        https://docs.gitlab.com/api/issues/#edit-an-issue"""
        names = [lbl for lbl in dict.fromkeys(labels) if lbl]
        if not names:
            return
        bad = [lbl for lbl in names if "," in lbl]
        if bad:
            raise ValueError(f"GitLab label names cannot contain ',': {bad!r}")
        self._update_issue(ref, "add labels", {"add_labels": ",".join(names)})

    def remove_label(self, ref: IssueRef, label: str) -> None:
        """``PUT …/issues/:iid`` with ``remove_labels``; an absent label is not an error."""
        if "," in label:
            raise ValueError(f"GitLab label names cannot contain ',': {label!r}")
        self._update_issue(ref, "remove label", {"remove_labels": label})

    # -- notes -------------------------------------------------------------------------

    def _note_pages(self, ref: IssueRef, *, sort: str) -> Iterator[list[dict[str, Any]]]:
        page: int | None = 1
        path = f"{self._issue_path(ref)}/notes"
        while page is not None:
            query = {"sort": sort, "order_by": "created_at", "per_page": PER_PAGE, "page": page}
            response = self._call(f"list notes {ref} p{page}",
                                  functools.partial(self._get, path, query))
            yield list(response.json())
            nxt = response.headers.get("X-Next-Page", "")
            page = int(nxt) if nxt.strip().isdigit() else None

    def _comment(self, note: Mapping[str, Any], bot_id: int) -> Comment:
        author = note.get("author")
        author_id = author.get("id") if isinstance(author, dict) else None
        return Comment(id=str(note["id"]), body=str(note.get("body") or ""),
                       author=_username(author), author_is_bot=author_id == bot_id)

    def list_comments(self, ref: IssueRef) -> Iterator[Comment]:
        """Every user note, oldest first (``sort=asc``: GitLab's default is newest first);
        system notes ("added label", "made confidential") are skipped.
        https://docs.gitlab.com/api/notes/#list-project-issue-notes"""
        bot_id = self._whoami()[0]
        for page in self._note_pages(ref, sort="asc"):
            for note in page:
                if not note.get("system"):
                    yield self._comment(note, bot_id)

    def find_bot_comment(self, ref: IssueRef) -> Comment | None:
        """The oldest note by the bot's own user (by id) carrying the marker. A marker typed
        into anyone else's note is ignored."""
        for comment in self.list_comments(ref):
            if comment.author_is_bot and MARKER_PREFIX in comment.body:
                return comment
        return None

    def create_comment(self, ref: IssueRef, body: str) -> Comment:
        """``POST …/notes``. Before a retry it looks among the newest 100 notes for one by the
        bot with the same body, which the failed attempt may have created anyway (a timeout
        does not mean the write was lost), and returns it instead of posting again. A retry
        that races a first attempt still running on the server can still double-post.
        https://docs.gitlab.com/api/notes/#create-new-issue-note"""
        bot_id = self._whoami()[0]
        attempts = 0
        guard = SettleGuard(self.policy)

        def post() -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            # An ambiguous failure may still land on the server: settle, then look. After a
            # definite rejection (4xx) only a look, no wait.
            if attempts > 1:
                guard.before_retry()
                newest = self._get(f"{self._issue_path(ref)}/notes",
                                   {"sort": "desc", "order_by": "created_at",
                                    "per_page": PER_PAGE}).json()
                for note in newest:
                    author = note.get("author") or {}
                    if author.get("id") == bot_id and str(note.get("body")) == body:
                        log.info("note from an earlier attempt found; not posting again",
                                 extra={"issue": str(ref)})
                        return dict(note)
            try:
                created = self._notes_manager(ref).create({"body": body}, **_NO_CLIENT_RETRY)
            except Exception as exc:
                guard.failed(exc)
                raise
            return dict(created.attributes)

        note = self._call(f"create note {ref}", post, write=True)
        return self._comment(note, bot_id)

    def edit_comment(self, ref: IssueRef, comment_id: str, body: str) -> None:
        """``PUT …/notes/:note_id`` (only the note's author may, so only the bot's own).
        https://docs.gitlab.com/api/notes/#modify-existing-issue-note"""
        self._call(f"edit note {ref}",
                   lambda: self._notes_manager(ref).update(int(comment_id), {"body": body},
                                                           **_NO_CLIENT_RETRY),
                   write=True)

    def react(self, ref: IssueRef, comment_id: str, reaction: str) -> None:
        """Award an emoji to a note (``+1`` → ``thumbsup``); empty ``comment_id``: the issue.
        Awarding the same emoji twice answers 404 "has already been taken": that is success.
        https://docs.gitlab.com/api/emoji_reactions/#add-a-new-emoji-reaction-to-a-comment"""
        name = _REACTIONS.get(reaction, reaction)
        base = self._issue_path(ref)
        path = f"{base}/notes/{int(comment_id)}/award_emoji" if comment_id else \
            f"{base}/award_emoji"

        def award() -> None:
            try:
                self._gl.http_post(path, post_data={"name": name}, **_NO_CLIENT_RETRY)
            except glexc.GitlabHttpError as exc:
                if exc.response_code == 404 and "already been taken" in str(exc.error_message):
                    return
                raise

        self._call(f"award emoji {ref}", award, write=True)

    # -- permissions -------------------------------------------------------------------

    def permission(self, ref: IssueRef, user: str) -> Access:
        """The user's access on the project, inherited group membership included.

        ``user`` is a numeric user id (what the commands handler passes, from the webhook's
        ``user.id``: ids never change, usernames can) or a username, looked up with
        ``GET /users?username=``. Then ``GET /projects/:id/members/all/:user_id``. An unknown
        user, a non-member (404), a blocked user or a membership awaiting approval is NONE; any
        other failure raises so callers fail closed. ``members/all`` omits members of groups
        the project's group was *shared with* (gitlab-org/gitlab#337623): such users read as
        NONE, which errs on the safe side.
        https://docs.gitlab.com/api/members/#get-a-member-of-a-group-or-project-including-inherited-and-invited-members
        """
        if user.isdigit():
            uid = int(user)
        else:
            users = self._call("find user",
                               lambda: self._get("/users", {"username": user}).json())
            match = [u for u in users if str(u.get("username", "")).lower() == user.lower()]
            if not match:
                return Access.NONE
            uid = int(match[0]["id"])

        def member() -> dict[str, Any] | None:
            try:
                data: dict[str, Any] = self._get(
                    f"/projects/{self._pid(ref.scope)}/members/all/{uid}").json()
            except glexc.GitlabHttpError as exc:
                if exc.response_code == 404:
                    return None
                raise
            return data

        found = self._call(f"member {ref}", member)
        if found is None:
            return Access.NONE
        if found.get("membership_state", "active") != "active" or \
                found.get("state", "active") != "active":
            return Access.NONE
        return access_from_level(int(found.get("access_level") or 0))

    # -- backlog -----------------------------------------------------------------------

    def _next_cursor(self, response: requests.Response) -> str | None:
        nxt = response.headers.get("X-Next-Page", "").strip()
        if nxt.isdigit():
            return nxt
        link = response.links.get("next", {}).get("url")
        if not link:
            return None
        page = parse_qs(urlsplit(link).query).get("page")
        if page and page[-1].isdigit():
            return page[-1]
        return str(link)  # keyset pagination: the link is the cursor

    def _own_link(self, cursor: str) -> str:
        """A next-page link is only followed to this GitLab (the token goes with it)."""
        if not cursor.startswith(f"{self.url}/api/v4/"):
            raise ValueError("cursor is not a link to this GitLab instance")
        return cursor

    def list_issues(
        self, scope: str, *, state: str, since: datetime | None, cursor: str | None
    ) -> ListPage:
        """One page of 100 issues of a project, ``updated_after=since``.

        Ordered by ``created_at`` ascending, which the bot's own writes never change: ordered
        by ``updated_at``, each label the sweep writes would move an issue to the end and
        shift the offset pages under it. ``cursor`` is a page number (``X-Next-Page``) or,
        under keyset pagination, the ``next`` link. https://docs.gitlab.com/api/issues/#list-project-issues
        """
        if state not in _STATES:
            raise ValueError(f"unknown state {state!r}; use open, closed or all")
        if cursor and not cursor.isdigit():
            link = self._own_link(cursor)
            response = self._call(f"list issues {scope}", lambda: self._get(link))
        else:
            query: dict[str, Any] = {"state": _STATES[state], "order_by": "created_at",
                                     "sort": "asc", "per_page": PER_PAGE,
                                     "page": int(cursor or 1)}
            if since is not None:
                when = since if since.tzinfo else since.replace(tzinfo=UTC)
                query["updated_after"] = when.astimezone(UTC).isoformat()
            path = f"/projects/{self._pid(scope)}/issues"
            response = self._call(f"list issues {scope} p{query['page']}",
                                  lambda: self._get(path, query))
        issues = [self._snapshot(IssueRef(PROVIDER, scope, int(item["iid"])), item)
                  for item in response.json()]
        return ListPage(issues, self._next_cursor(response))

    def expand_scope(self, scope: str) -> list[str]:
        """``group/*`` → the path of every non-archived project in the group and its
        subgroups (``include_subgroups=true``, projects shared into the group excluded);
        any other scope is returned as is.
        https://docs.gitlab.com/api/groups/#list-projects"""
        if not scope.endswith("/*"):
            return [scope]
        group = scope[:-2].strip("/")
        path = f"/groups/{self._pid(group)}/projects"
        paths: list[str] = []
        page: int | None = 1
        while page is not None:
            query = {"include_subgroups": "true", "with_shared": "false", "archived": "false",
                     "simple": "true", "order_by": "id", "sort": "asc", "per_page": PER_PAGE,
                     "page": page}
            response = self._call(f"list projects {group} p{page}",
                                  functools.partial(self._get, path, query))
            paths += [str(p["path_with_namespace"]) for p in response.json()]
            nxt = response.headers.get("X-Next-Page", "").strip()
            page = int(nxt) if nxt.isdigit() else None
        return paths

    # -- protection --------------------------------------------------------------------

    def _project_visibility(self, scope: str) -> str:
        """Asked each time, not cached: a project can be made public at any moment, and
        :meth:`protect` runs once per critical issue (the store remembers it)."""
        data = self._call(f"project {scope}",
                          lambda: self._get(f"/projects/{self._pid(scope)}").json())
        return str(data.get("visibility") or "private")

    def _planning_visibility(self, scope: str) -> str:
        """The visibility for planning, remembered for a few minutes per project (a sweep
        plans many critical issues of one project); :meth:`protect` asks afresh."""
        now = time.monotonic()
        with self._lock:
            cached = self._visibility.get(scope)
        if cached is not None and now - cached[0] < VISIBILITY_TTL:
            return cached[1]
        visibility = self._project_visibility(scope)
        with self._lock:
            self._visibility[scope] = (now, visibility)
        return visibility

    def handoff(self, ref: IssueRef, *, protect: bool) -> HandOff:
        """Confidential issues per ``confidential_mode`` (in ``"public"`` mode the project's
        visibility is asked only when the issue needs protecting); no escalation yet."""
        confidential = self.confidential_mode == "always" or (
            self.confidential_mode == "public" and protect
            and self._planning_visibility(ref.scope) == "public")
        return HandOff(
            protect="make the issue confidential" if confidential else "",
            protect_hides=True,
            escalate=f"assign {', '.join(self.assignees)}" if self.assignees else "",
            mentions=self.mentions,
            escalate_routes=self.escalate_routes,
            manual_protect="turn on confidentiality for this issue",
        )

    def protect(self, ref: IssueRef, request: HandOffRequest) -> str | None:
        """Make a critical issue confidential: in ``"always"`` mode, or in ``"public"`` mode
        when the project is public (internal projects are left alone in that mode). Returns
        ``"confidential"`` or None. https://docs.gitlab.com/user/project/issues/confidential_issues/"""
        if self.confidential_mode == "never":
            return None
        if self.confidential_mode == "public" and self._project_visibility(ref.scope) != "public":
            return None
        try:
            self._update_issue(ref, "make confidential", {"confidential": True})
        except glexc.GitlabError as exc:
            # Too little access (confidentiality needs Planner/Reporter): not retried, the
            # comment asks a maintainer to do it by hand.
            if exc.response_code not in (403, 404):
                raise
            raise HandOffRefused(f"GitLab answered {exc.response_code}") from None
        return "confidential"

    def _user_id(self, who: str) -> int | None:
        """A user id as given, or looked up by username (``GET /users?username=``)."""
        if who.isdigit():
            return int(who)
        found = self._call(f"find user {who}", lambda: self._get(
            "/users", {"username": who.lstrip("@")}).json())
        return int(found[0]["id"]) if isinstance(found, list) and found else None

    def escalate(self, ref: IssueRef, summary: str) -> str | None:
        """Assign ``assignees`` (ids or usernames), keeping anyone already assigned;
        ``mentions`` are in the comment. GitLab Free keeps one assignee per issue. A user that
        does not exist is logged and skipped; a 403/404 is logged once and nothing is done.
        https://docs.gitlab.com/api/issues/#edit-an-issue (``assignee_ids``)"""
        if not self.assignees:
            return None
        try:
            wanted = []
            for who in self.assignees:
                uid = self._user_id(who)
                if uid is None:
                    log.warning("gitlab escalation: no such user", extra={"user": who})
                    continue
                wanted.append(uid)
            if not wanted:
                return None
            current = self._call(f"get issue {ref}", lambda: self._get(
                self._issue_path(ref)).json())
            have = [int(u["id"]) for u in (current or {}).get("assignees") or []
                    if isinstance(u, dict) and "id" in u]
            ids = list(dict.fromkeys(have + wanted))
            if ids == have:
                return None
            self._update_issue(ref, "assign", {"assignee_ids": ids})
        except glexc.GitlabError as exc:
            if exc.response_code not in (403, 404):
                raise
            log.warning("gitlab refused an escalation step",
                        extra={"issue": str(ref), "status": exc.response_code})
            return None
        return f"assigned {', '.join(self.assignees)}"
