"""Jira adapter (Cloud and Data Center) over the ``jira`` library (pycontribs 3.x).

The client is built with ``max_retries=0`` so the library's ``ResilientSession`` never retries
or sleeps on its own; every request goes through the project's one retry layer
(:mod:`bot.providers.retry`) with :func:`classify_jira_failure`. Requests are sent with the
library's session (auth, base URL, ``JIRAError`` on 4xx/5xx) to ``/rest/api/2`` where bodies are
plain strings (wiki markup), on both flavours. The library's convenience methods are avoided
where they add hidden requests (``create_issue_link`` lists link types first, ``create_issue``
re-fetches the issue, searches translate fields with ``GET /field``).

Jira differs from GitHub/GitLab in four ways this module absorbs:

* **Labels** cannot contain spaces (https://support.atlassian.com/jira-software-cloud/docs/
  add-labels-to-issues/): :class:`LabelMap` writes whitespace as ``_`` and reads it back,
  reversibly for the bot's own label names (see its docstring).
* **The bot's comment** cannot hide an HTML marker (comments are wiki markup, shown as typed).
  The marker lives in the issue entity property ``bugbar``
  (https://developer.atlassian.com/cloud/jira/platform/jira-entity-properties/) as
  ``{"v": 1, "comment_id", "marker"}``; the visible comment is the rest of the body, with the
  bot's Markdown turned into wiki markup. :meth:`JiraTracker.find_bot_comment` trusts the
  property only when the comment it names was written by the bot's own account.
* **No reactions**: :meth:`JiraTracker.react` does nothing.
* **Protect/escalate**: an issue security level and a linked issue in a security project.

Identities: Cloud names people by ``accountId`` (GDPR), Data Center by user ``name``; every
``user``/``author`` string this adapter takes or returns is in that form, which is also what
:func:`bot.events.jira.parse_jira` puts in ``Event.actor`` for current payloads.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from jira import JIRA, JIRAError

from bot.decide.handoff import DEFAULT_ESCALATE_ROUTES
from bot.decide.render import MARKER_PREFIX, parse_marker
from bot.decide.rules import Settings
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

__all__ = [
    "PROPERTY_KEY",
    "JiraTracker",
    "LabelMap",
    "classify_jira_failure",
    "markdown_to_wiki",
    "split_marker",
]

T = TypeVar("T")
Json = Any

log = logging.getLogger("bugbar.providers.jira")
PROVIDER = "jira"
PROPERTY_KEY = "bugbar"
_UNKNOWN = object()  # "would need another request" (see _resolve_bot_comment)
"""Issue entity property holding the bot's comment id and marker."""
PAGE_SIZE = 100
RATE_LIMIT_FLOOR = 5.0
"""First wait on a 429 that names no wait (Atlassian: back off exponentially)."""
ISSUE_FIELDS = "summary,description,labels,status,reporter,updated,security"
_PROJECT_KEY = re.compile(r"[A-Z][A-Z0-9_]{0,254}")
_WS = re.compile(r"\s")
_DC_USER_KEY = re.compile(r"JIRAUSER\d+")
_TRIAGE_HEADING = re.compile(r"\A\s*(?:h[1-6]\.\s*|#{1,6}\s*)?bugbar triage\b")


# ------------------------------------------------------------------------------ labels
@dataclass(frozen=True)
class LabelMap:
    """Bot label names ↔ Jira labels.

    Jira rejects labels containing whitespace, so :meth:`to_jira` writes every whitespace
    character as ``_``. That is not reversible in general (``a_b`` may have been ``a b``), so
    :meth:`from_jira` only maps back what it knows to be the bot's: the exact ``names`` (the
    opt-out label) and labels made from the ``templates`` (``threat/{id}``…) whose fixed text
    held spaces. The variable part (category id, severity level, route) never contains spaces.
    Every other label is returned as Jira has it. The shipped defaults have no spaces, so they
    pass through unchanged; build the map with :meth:`from_settings` when labels are configured.
    """

    templates: tuple[str, ...] = ("threat/{id}", "severity/{level}", "route/{route}")
    names: tuple[str, ...] = ("bugbar:ignore",)

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelMap:
        """The map for a rule set's configured label templates and opt-out label."""
        return cls(
            (settings.label_threat, settings.label_severity, settings.label_route),
            (settings.label_opt_out,),
        )

    @staticmethod
    def to_jira(name: str) -> str:
        """The Jira label for a bot label name (whitespace → ``_``)."""
        return _WS.sub("_", name)

    def from_jira(self, label: str) -> str:
        """The bot label name for a Jira label (unchanged unless it is a mapped bot label)."""
        for name in self.names:
            if _WS.search(name) and self.to_jira(name) == label:
                return name
        for template in self.templates:
            head, _, rest = template.partition("{")
            tail = rest.partition("}")[2]
            if not _WS.search(head + tail):
                continue
            j_head, j_tail = self.to_jira(head), self.to_jira(tail)
            if (len(label) > len(j_head) + len(j_tail) and label.startswith(j_head)
                    and label.endswith(j_tail)):
                return head + label[len(j_head):len(label) - len(j_tail)] + tail
        return label


# ------------------------------------------------------------------------------ comment text
def split_marker(body: str) -> tuple[str | None, str]:
    """Split the bot's marker line off a comment body: ``(marker or None, visible text)``."""
    lines = body.split("\n")
    for i, line in enumerate(lines):
        text = line.strip()
        if text.startswith(MARKER_PREFIX) and parse_marker(text) is not None:
            del lines[i]
            return text, "\n".join(lines).strip("\n")
    return None, body


_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_SUB = re.compile(r"<sub>(.*?)</sub>")


def _inline_to_wiki(text: str) -> str:
    text = _LINK.sub(r"[\1|\2]", text)
    text = _BOLD.sub(r"*\1*", text)
    return _SUB.sub(r"_\1_", text)


def markdown_to_wiki(text: str) -> str:
    """Turn the bot's own Markdown (headings, bold, code spans, links, bullets, ``<sub>``)
    into Jira wiki markup, which REST v2 comment bodies are rendered as.

    Meant for text bugbar renders, not for arbitrary Markdown: it quotes nothing from issues.
    https://jira.atlassian.com/secure/WikiRendererHelpAction.jspa?section=all
    """
    out = []
    for line in text.split("\n"):
        prefix = ""
        heading = re.match(r"(#{1,6})\s+", line)
        bullet = re.match(r"[-*]\s+", line)
        if heading:
            prefix, line = f"h{len(heading.group(1))}. ", line[heading.end():]
        elif bullet:
            prefix, line = "* ", line[bullet.end():]
        parts = _CODE_SPAN.split(line)
        # Odd indexes are code span contents.
        converted = [
            "{{" + part + "}}" if i % 2 else _inline_to_wiki(part) for i, part in enumerate(parts)
        ]
        out.append(prefix + "".join(converted))
    return "\n".join(out)


# ------------------------------------------------------------------------------ failures
def _retry_after(headers: Mapping[str, str]) -> tuple[float | None, float | None]:
    """``Retry-After`` as (seconds, None) or, for an HTTP date, (None, Unix time)."""
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None, None
    try:
        return max(0.0, float(value)), None
    except ValueError:
        pass
    try:
        return None, email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None, None


def _rate_limit_reset(headers: Mapping[str, str]) -> float | None:
    """``X-RateLimit-Reset`` (ISO 8601, e.g. ``2024-05-01T12:30Z``) as Unix time."""
    value = (headers.get("X-RateLimit-Reset") or "").strip()
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def classify_jira_failure(exc: BaseException) -> Failure:
    """The retry verdict for one failed Jira request (the hook for ``call_with_retry``).

    429, and 503 carrying ``Retry-After``, are rate limits: wait what ``Retry-After`` says, else
    until ``X-RateLimit-Reset``, else back off from :data:`RATE_LIMIT_FLOOR`. Other 5xx,
    timeouts and connection errors back off. Everything else (4xx, a ``JIRAError`` without
    status) is raised at once.
    https://developer.atlassian.com/cloud/jira/platform/rate-limiting/
    """
    if isinstance(exc, JIRAError):
        status = exc.status_code
        response = exc.response
        headers: Mapping[str, str] = response.headers if response is not None else {}
        seconds, when = _retry_after(headers)
        if status == 429 or (status == 503 and (seconds is not None or when is not None)):
            reason = f"HTTP {status}"
            if seconds is not None:
                return Failure.retry_after(seconds, reason=reason)
            if when is not None:
                return Failure.until(when, reason=reason)
            reset = _rate_limit_reset(headers)
            if reset is not None:
                return Failure.until(reset, reason=reason)
            return Failure.backoff(reason=reason, floor=RATE_LIMIT_FLOOR, rate_limited=True)
        if status is not None and 500 <= status <= 599:
            return Failure.backoff(reason=f"HTTP {status}")
        return Failure.give_up(f"HTTP {status}" if status is not None else "JIRAError")
    if isinstance(exc, requests.Timeout):
        return Failure.backoff(reason="timeout")
    if isinstance(exc, requests.ConnectionError):
        return Failure.backoff(reason="connection error")
    return Failure.give_up(type(exc).__name__)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


# ------------------------------------------------------------------------------ tracker
class JiraTracker:
    """The :class:`~bot.providers.base.Tracker` for one Jira site (Cloud or Data Center).

    Credentials: ``email`` + ``token`` (Cloud API token, basic auth) or ``pat`` (Data Center
    personal access token, bearer). ``security_level`` (id or name) enables :meth:`protect`;
    ``security_project`` (a project key) enables :meth:`escalate`. ``jql_filter`` is ANDed to
    the backlog query (e.g. ``labels != wontfix``). Thread-safe: the client is built once,
    lazily, inside the retry layer (its ``serverInfo`` request can fail like any other).
    """

    provider = PROVIDER

    def __init__(
        self,
        url: str,
        *,
        email: str | None = None,
        token: str | None = None,
        pat: str | None = None,
        policy: RetryPolicy,
        pacer: WritePacer,
        metrics: ApiMetrics | None = None,
        security_level: str = "",
        security_project: str = "",
        security_issue_type: str = "Bug",
        link_type: str = "Relates",
        label_map: LabelMap | None = None,
        jql_filter: str = "",
        timeout: float = 30.0,
        watchers: tuple[str, ...] = (),
        assignee: str = "",
        escalate_routes: frozenset[str] = DEFAULT_ESCALATE_ROUTES,
    ) -> None:
        if pat and (email or token):
            raise ValueError("give either a PAT (Data Center) or email + token (Cloud), not both")
        if not pat and not (email and token):
            raise ValueError("Jira needs a PAT (Data Center) or email + API token (Cloud)")
        if security_project and not _PROJECT_KEY.fullmatch(security_project):
            raise ValueError(f"security project {security_project!r} is not a project key")
        if re.search(r"\border\s+by\b", jql_filter, re.IGNORECASE):
            raise ValueError("jql_filter must not contain ORDER BY")
        self.url = url.rstrip("/")
        self._auth: dict[str, Any] = (
            {"token_auth": pat} if pat else {"basic_auth": (email or "", token or "")}
        )
        self.policy = policy
        self.pacer = pacer
        self.metrics = metrics
        self.security_level = security_level.strip()
        self.security_project = security_project
        self.watchers = tuple(w for w in watchers if w)
        self.assignee = assignee.strip()
        self.escalate_routes = escalate_routes
        self.security_issue_type = security_issue_type
        self.link_type = link_type
        self.label_map = label_map or LabelMap()
        self.jql_filter = jql_filter.strip()
        self.timeout = timeout
        self._lock = threading.Lock()
        self._jira: JIRA | None = None
        self._me: dict[str, Any] | None = None
        self._remaining: float | None = None
        self._reset: float | None = None

    # -- plumbing -----------------------------------------------------------------------
    def _client(self) -> JIRA:
        with self._lock:
            if self._jira is None:
                try:
                    # get_server_info=True: the library only uses Cloud's /search/jql when it
                    # knows the deployment type.
                    client = JIRA(self.url, max_retries=0, timeout=self.timeout,
                                  get_server_info=True, **self._auth)
                except JIRAError as exc:
                    self._count("GET", exc.status_code or "error")
                    raise
                except requests.Timeout:
                    self._count("GET", "timeout")
                    raise
                except requests.ConnectionError:
                    self._count("GET", "error")
                    raise
                self._count("GET", 200)
                client._session.hooks["response"].append(self._on_response)
                self._jira = client
            return self._jira

    def _count(self, method: str, status: int | str) -> None:
        if self.metrics is not None:
            self.metrics.api_call(PROVIDER, method, status)

    def _on_response(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        """requests response hook: count every HTTP exchange, including failed ones, and keep
        the rate-limit headers Jira Cloud sends (mostly near and at its limits)."""
        self._count(str(response.request.method or "GET"), response.status_code)
        remaining: float | None = None
        with contextlib.suppress(ValueError):
            remaining = float(response.headers.get("X-RateLimit-Remaining") or "none")
        # A later answer without the headers means the limit no longer applies.
        self._remaining = remaining
        self._reset = _rate_limit_reset(response.headers) if remaining is not None else None
        if self.metrics is not None and remaining is not None:
            self.metrics.rate_limit(PROVIDER, remaining)

    def rate_limit_remaining(self) -> float | None:
        """``X-RateLimit-Remaining`` of the latest answer, None when it carried none."""
        return self._remaining

    def rate_limit_reset(self) -> float | None:
        """``X-RateLimit-Reset`` of the latest answer as Unix time, None when absent."""
        return self._reset

    @property
    def is_cloud(self) -> bool:
        """True on Jira Cloud (``serverInfo.deploymentType``), False on Server/Data Center."""
        client = self._jira or self._call("connect", self._client)
        return client.deploymentType == "Cloud"

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` (one or more requests) through the project's single retry layer."""
        return call_with_retry(fn, self.policy, classify_jira_failure, what=f"jira {what}")

    def _request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
        body: Json = None,
    ) -> Json:
        """One request against ``/rest/api/2/<path>``; JSON answer or None. Writes are paced."""
        client = self._client()
        if method != "GET":
            self.pacer.wait()
        data = json.dumps(body) if body is not None else None
        try:
            response = client._session.request(
                method, client._get_url(path), params=dict(params or {}), data=data
            )
        except requests.Timeout:
            self._count(method, "timeout")
            raise
        except requests.ConnectionError:
            self._count(method, "error")
            raise
        return response.json() if response.content else None

    @staticmethod
    def _key(ref: IssueRef) -> str:
        return ref.key or f"{ref.scope}-{ref.number}"

    def _me_json(self) -> dict[str, Any]:
        if self._me is None:
            self._me = self._call("myself", lambda: self._request("GET", "myself"))
        return self._me

    def _user_id(self, user: Json) -> str:
        """How this flavour names a user: ``accountId`` (Cloud) or ``name`` (Data Center)."""
        if not isinstance(user, dict):
            return ""
        value = user.get("accountId") if self.is_cloud else (user.get("name") or user.get("key"))
        return str(value or "")

    def _is_bot_user(self, user: Json) -> bool:
        return bool(user) and self._user_id(user) == self.bot_identity()

    def _comment(self, raw: dict[str, Any], body: str | None = None) -> Comment:
        author = raw.get("author")
        text = raw.get("body")
        return Comment(
            id=str(raw.get("id", "")),
            body=body if body is not None else (text if isinstance(text, str) else ""),
            author=self._user_id(author),
            author_is_bot=self._is_bot_user(author)
            or (isinstance(author, dict) and author.get("accountType") == "app"),
        )

    def _snapshot(self, ref: IssueRef, raw: dict[str, Any]) -> IssueSnapshot:
        fields = raw.get("fields") or {}
        status = fields.get("status") or {}
        category = (status.get("statusCategory") or {}).get("key")
        labels = fields.get("labels") or []
        description = fields.get("description")
        return IssueSnapshot(
            ref=ref,
            title=str(fields.get("summary") or ""),
            body=description if isinstance(description, str) else "",
            labels=tuple(self.label_map.from_jira(str(lbl)) for lbl in labels),
            state="closed" if category == "done" else "open",
            author=self._user_id(fields.get("reporter")),
            updated_at=_parse_time(fields.get("updated")),
            confidential=fields.get("security") is not None,
            url=f"{self.url}/browse/{raw.get('key') or self._key(ref)}",
        )

    # -- Tracker protocol ---------------------------------------------------------------
    def bot_identity(self) -> str:
        """The bot's ``accountId`` (Cloud) or user name (Data Center), from ``GET /myself``."""
        return self._user_id(self._me_json())

    def get_issue(self, ref: IssueRef) -> IssueSnapshot:
        """``GET /issue/{key}`` with the fields triage reads; labels mapped back to bot names."""
        key = self._key(ref)
        try:
            raw = self._call("get issue", lambda: self._request(
                "GET", f"issue/{key}", params={"fields": ISSUE_FIELDS}))
        except JIRAError as exc:
            # Jira's 404 "Issue does not exist or you do not have permission to see it." covers
            # a deleted issue and a project we cannot browse alike; one ``GET /project/{key}``
            # (only on this path) tells them apart: a readable project means the issue is gone.
            if exc.status_code != 404:
                raise
            project = ref.scope or key.rsplit("-", 1)[0]
            try:
                self._call("get project", lambda: self._request("GET", f"project/{project}"))
            except JIRAError:
                raise exc from None
            raise IssueGone(ref, "404 on the issue of a readable project: deleted") from exc
        return self._snapshot(ref, raw)

    def add_labels(self, ref: IssueRef, labels: list[str]) -> None:
        """One ``PUT /issue/{key}`` with ``update.labels[].add`` (no-op for present labels).

        https://developer.atlassian.com/cloud/jira/platform/rest/v2/api-group-issues/#api-rest-api-2-issue-issueidorkey-put
        """
        if not labels:
            return
        ops = [{"add": self.label_map.to_jira(lbl)} for lbl in dict.fromkeys(labels)]
        key = self._key(ref)
        self._call("add labels", lambda: self._request(
            "PUT", f"issue/{key}", body={"update": {"labels": ops}}))

    def remove_label(self, ref: IssueRef, label: str) -> None:
        """``update.labels[].remove``; Jira answers 204 for a label that is already gone."""
        key = self._key(ref)
        body = {"update": {"labels": [{"remove": self.label_map.to_jira(label)}]}}
        self._call("remove label", lambda: self._request("PUT", f"issue/{key}", body=body))

    def list_comments(self, ref: IssueRef) -> Iterator[Comment]:
        """Every comment, oldest first, in pages (``startAt``/``maxResults``/``total``)."""
        key = self._key(ref)
        start = 0
        while True:
            params = {"startAt": start, "maxResults": PAGE_SIZE, "orderBy": "created"}
            page = self._call("list comments", partial(
                self._request, "GET", f"issue/{key}/comment", params=params))
            comments = page.get("comments") or []
            for raw in comments:
                yield self._comment(raw)
            start += len(comments)
            if not comments or start >= int(page.get("total") or 0):
                return

    def _bot_state(self, key: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
        """The ``bugbar`` property and the issue's embedded comments in one request.

        Returns (valid property or None, comments, whether the comments are all of them).
        """
        raw = self._call("get bot state", lambda: self._request(
            "GET", f"issue/{key}", params={"fields": "comment", "properties": PROPERTY_KEY}))
        return self._embedded_state(raw)

    @staticmethod
    def _embedded_state(raw: dict[str, Any]
                        ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
        """The ``bugbar`` property and embedded comments of an issue object (``GET /issue``
        or a search result asked for ``fields=comment`` and ``properties=bugbar``)."""
        prop = (raw.get("properties") or {}).get(PROPERTY_KEY)
        if not (isinstance(prop, dict) and isinstance(prop.get("marker"), str)
                and parse_marker(prop["marker"]) is not None and prop.get("comment_id")):
            prop = None
        page = (raw.get("fields") or {}).get("comment") or {}
        comments = [c for c in page.get("comments") or [] if isinstance(c, dict)]
        complete = len(comments) >= int(page.get("total") or len(comments))
        return prop, comments, complete

    def find_bot_comment(self, ref: IssueRef) -> Comment | None:
        """The bot's triage comment: the one the ``bugbar`` property names, body = marker line
        + the comment's text, only if the bot's own account wrote it; else None.

        Anyone who can edit the issue can rewrite the property, so it is only a pointer: a
        comment by someone else is never returned, whatever it or the property says. When the
        property is missing, malformed or names no comment of the bot's (a crash between
        posting the comment and writing the property, a deleted comment, a forged pointer),
        the bot's own comment starting with the triage heading is returned without marker, so
        the handler edits it (which rewrites the property) instead of posting a second one;
        None when there is none.
        """
        key = self._key(ref)
        prop, comments, complete = self._bot_state(key)
        found = self._resolve_bot_comment(ref, key, prop, comments, complete, fetch=True)
        assert found is not _UNKNOWN
        return found if isinstance(found, Comment) else None

    def _resolve_bot_comment(self, ref: IssueRef, key: str, prop: dict[str, Any] | None,
                             comments: list[dict[str, Any]], complete: bool, *,
                             fetch: bool) -> Comment | None | object:
        """:meth:`find_bot_comment` on already-read state; without ``fetch`` it answers
        ``_UNKNOWN`` where it would need another request."""
        if prop is not None:
            wanted = str(prop["comment_id"])
            raw = next((c for c in comments if str(c.get("id")) == wanted), None)
            if raw is None and not complete:
                if not fetch:
                    return _UNKNOWN
                raw = self._get_comment(key, wanted)
            if raw is not None and self._is_bot_user(raw.get("author")):
                text = raw.get("body") if isinstance(raw.get("body"), str) else ""
                return self._comment(raw, body=f"{prop['marker']}\n{text}")
        # No usable pointer: the bot's own triage comment, if any, is edited (not duplicated).
        if not complete and not fetch:
            return _UNKNOWN
        candidates: Iterable[Comment] = (
            (self._comment(c) for c in comments) if complete else self.list_comments(ref)
        )
        for comment in candidates:
            if comment.author == self.bot_identity() and _TRIAGE_HEADING.match(comment.body):
                return comment
        return None

    def _get_comment(self, key: str, comment_id: str) -> dict[str, Any] | None:
        def get() -> Json:
            try:
                return self._request("GET", f"issue/{key}/comment/{comment_id}")
            except JIRAError as exc:
                if exc.status_code == 404:
                    return None
                raise

        result = self._call("get comment", get)
        return result if isinstance(result, dict) else None

    def _write_state(self, key: str, comment_id: str, marker: str) -> None:
        """``PUT /issue/{key}/properties/bugbar`` (value ≤ 32 768 characters).

        https://developer.atlassian.com/cloud/jira/platform/rest/v2/api-group-issue-properties/
        """
        value = {"v": 1, "comment_id": comment_id, "marker": marker}
        self._call("write bot state", lambda: self._request(
            "PUT", f"issue/{key}/properties/{PROPERTY_KEY}", body=value))

    def create_comment(self, ref: IssueRef, body: str) -> Comment:
        """Post a comment; a body carrying the marker becomes the bot's triage comment: the
        marker line is cut from the visible text and stored in the ``bugbar`` property.

        A POST is not idempotent, so a retry first looks for a comment by the bot with the
        same text (the failed attempt may have been stored after all) and adopts it.
        """
        key = self._key(ref)
        marker, visible = split_marker(body)
        text = markdown_to_wiki(visible)
        me = self.bot_identity()
        attempts = 0
        guard = SettleGuard(self.policy)

        def post() -> Json:
            nonlocal attempts
            attempts += 1
            # An ambiguous failure may still land on the server: settle, then look. After a
            # definite rejection (4xx) only a look, no wait.
            if attempts > 1:
                guard.before_retry()
                existing = self._find_own_comment(key, me, text)
                if existing is not None:
                    return {"id": existing}
            try:
                return self._request("POST", f"issue/{key}/comment", body={"body": text})
            except Exception as exc:
                guard.failed(exc)
                raise

        raw = self._call("create comment", post)
        comment_id = str(raw["id"])
        if marker is not None:
            self._write_state(key, comment_id, marker)
        return Comment(comment_id, body, me, author_is_bot=True)

    def _find_own_comment(self, key: str, me: str, text: str) -> str | None:
        """The newest comment by the bot with exactly ``text`` (plain requests: this runs
        inside a retried unit, which must not nest a second retry loop)."""
        found: str | None = None
        start = 0
        while True:
            page = self._request("GET", f"issue/{key}/comment",
                                 params={"startAt": start, "maxResults": PAGE_SIZE})
            comments = [c for c in page.get("comments") or [] if isinstance(c, dict)]
            for raw in comments:
                if self._user_id(raw.get("author")) == me and raw.get("body") == text:
                    found = str(raw.get("id"))
            start += len(comments)
            if not comments or start >= int(page.get("total") or 0):
                return found

    def edit_comment(self, ref: IssueRef, comment_id: str, body: str) -> None:
        """``PUT /issue/{key}/comment/{id}``, then the property when the body has a marker."""
        key = self._key(ref)
        marker, visible = split_marker(body)
        text = markdown_to_wiki(visible)
        self._call("edit comment", lambda: self._request(
            "PUT", f"issue/{key}/comment/{comment_id}", body={"body": text}))
        if marker is not None:
            self._write_state(key, comment_id, marker)

    def react(self, ref: IssueRef, comment_id: str, reaction: str) -> None:
        """Jira comments have no reactions: nothing to do."""

    def permission(self, ref: IssueRef, user: str) -> Access:
        """TRIAGE when ``user`` holds EDIT_ISSUES on the project, else READ; raises on failure.

        ``user`` is an ``accountId`` (Cloud) or a user name or key (Data Center; webhooks give
        the key as ``actor_id``). Asks ``GET /user/permission/search?permissions=EDIT_ISSUES&
        projectKey=…`` with ``accountId`` (Cloud, exact match) or ``username`` (Data Center: a
        prefix search over name, display name and e-mail, so the answer is filtered for the
        exact name or key, and paged). A Data Center key that no name matches is resolved with
        ``GET /user?key=`` and asked again by name. The bot needs Administer Projects on the
        project (or Administer Jira) for this.
        https://developer.atlassian.com/cloud/jira/platform/rest/v2/api-group-user-search/#api-rest-api-2-user-permission-search-get
        https://docs.atlassian.com/software/jira/docs/api/REST/9.12.0/#api/2/user-findUsersWithAllPermissions
        """
        if not user:
            return Access.NONE
        if self.is_cloud:
            found = self._users_with_edit(ref.scope, {"accountId": user})
            return Access.TRIAGE if any(u.get("accountId") == user for u in found) else Access.READ
        if _DC_USER_KEY.fullmatch(user):  # the key of a user created on Jira 8.3 or later
            name = self._dc_name_for_key(user)
            return Access.TRIAGE if name and self._dc_can_edit(ref.scope, name) else Access.READ
        if self._dc_can_edit(ref.scope, user):
            return Access.TRIAGE
        # Older users' keys are their names at creation; the user may have been renamed since.
        name = self._dc_name_for_key(user)
        if name and name != user and self._dc_can_edit(ref.scope, name):
            return Access.TRIAGE
        return Access.READ

    def _users_with_edit(self, project: str, who: Mapping[str, str]) -> list[dict[str, Any]]:
        """One page (1000) of ``user/permission/search`` for EDIT_ISSUES; raises on failure."""
        return self._users_page(project, who, 0)

    def _users_page(
        self, project: str, who: Mapping[str, str], start: int
    ) -> list[dict[str, Any]]:
        params = {"permissions": "EDIT_ISSUES", "projectKey": project, "startAt": start,
                  "maxResults": 1000, **who}
        found = self._call("permission", partial(
            self._request, "GET", "user/permission/search", params=params))
        if not isinstance(found, list):
            raise JIRAError("unexpected user/permission/search answer")
        return [u for u in found if isinstance(u, dict)]

    def _dc_can_edit(self, project: str, name: str) -> bool:
        start = 0
        while start < 10_000:
            found = self._users_page(project, {"username": name}, start)
            if any(name in (u.get("name"), u.get("key")) for u in found):
                return True
            if len(found) < 1000:
                return False
            start += len(found)
        return False

    def _dc_name_for_key(self, key: str) -> str | None:
        def get() -> Json:
            try:
                return self._request("GET", "user", params={"key": key})
            except JIRAError as exc:
                if exc.status_code == 404:
                    return None
                raise

        found = self._call("user by key", get)
        return str(found.get("name") or "") if isinstance(found, dict) else None

    def expand_scope(self, scope: str) -> list[str]:
        """A Jira scope is one project key."""
        return [scope]

    def _jql(self, scope: str, since: datetime | None, state: str = "all") -> str:
        if not _PROJECT_KEY.fullmatch(scope):
            raise ValueError(f"{scope!r} is not a Jira project key")
        clauses = [f'project = "{scope}"']
        # Closed means the "Done" status category, as in _snapshot; filtering in the query
        # keeps pages full (https://support.atlassian.com/jira-software-cloud/docs/jql-fields/).
        if state == "open":
            clauses.append("statusCategory != Done")
        elif state == "closed":
            clauses.append("statusCategory = Done")
        if since is not None:
            # JQL dates are read in the searching user's time zone, to the minute.
            local = since.astimezone(self._zone()).replace(second=0, microsecond=0)
            clauses.append(f'updated >= "{local:%Y-%m-%d %H:%M}"')
        if self.jql_filter:
            needs_parens = re.search(r"\bor\b", self.jql_filter, re.IGNORECASE)
            clauses.append(f"({self.jql_filter})" if needs_parens else self.jql_filter)
        return " AND ".join(clauses) + " ORDER BY key ASC"

    def _zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(str(self._me_json().get("timeZone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    def list_issues(
        self, scope: str, *, state: str, since: datetime | None, cursor: str | None
    ) -> ListPage:
        """One page of 100 issues of project ``scope`` in key order.

        Cloud: ``GET /search/jql``, cursor = ``nextPageToken``
        (https://developer.atlassian.com/cloud/jira/platform/rest/v2/api-group-issue-search/#api-rest-api-2-search-jql-get);
        Data Center: ``GET /search``, cursor = ``startAt``. ``state`` (open, closed, all) is a
        status-category clause of the query, and checked again on what comes back.
        """
        if state not in ("open", "closed", "all"):
            raise ValueError(f"state must be open, closed or all, not {state!r}")
        jql = self._jql(scope, since, state)
        # The comments and the bugbar property come inline, so the sweep knows the bot's
        # comment of every listed issue without a request per issue (unless an issue has more
        # comments than the search embeds; then that one is read on its own).
        params: dict[str, Any] = {"jql": jql, "maxResults": PAGE_SIZE,
                                  "fields": f"{ISSUE_FIELDS},comment",
                                  "properties": PROPERTY_KEY}
        if self.is_cloud:
            path = "search/jql"
            if cursor:
                params["nextPageToken"] = cursor
        else:
            path = "search"
            params["startAt"] = int(cursor or 0)
        page = self._call("list issues", lambda: self._request("GET", path, params=params))
        raw_issues = [i for i in page.get("issues") or [] if isinstance(i, dict)]
        next_cursor: str | None
        if self.is_cloud:
            token = page.get("nextPageToken")
            next_cursor = str(token) if token and not page.get("isLast", False) else None
        else:
            after = int(params["startAt"]) + len(raw_issues)
            next_cursor = str(after) if raw_issues and after < int(page.get("total") or 0) else None
        issues = []
        for raw in raw_issues:
            key = str(raw.get("key") or "")
            project, _, number = key.rpartition("-")
            if not number.isdigit():
                continue
            ref = IssueRef(PROVIDER, project, int(number), key)
            snap = self._snapshot(ref, raw)
            prop, comments, complete = self._embedded_state(raw)
            found = self._resolve_bot_comment(ref, key, prop, comments, complete, fetch=False)
            total = ((raw.get("fields") or {}).get("comment") or {}).get("total")
            snap = replace(snap, comment_count=total if isinstance(total, int) else None,
                           bot_comment=(found if isinstance(found, Comment) else None),
                           bot_comment_known=found is not _UNKNOWN)
            if state == "all" or snap.state == state:
                issues.append(snap)
        return ListPage(issues, next_cursor)

    def handoff(self, ref: IssueRef, *, protect: bool) -> HandOff:
        """A security level when ``security_level`` is set; a linked issue in the security
        project when ``security_project`` is set."""
        steps = [f"link an issue in {self.security_project}"] if self.security_project else []
        steps += [f"assign {self.assignee}"] if self.assignee else []
        steps += [f"add watchers {', '.join(self.watchers)}"] if self.watchers else []
        return HandOff(
            protect=f"set security level {self.security_level}" if self.security_level else "",
            protect_hides=True,
            escalate="; ".join(steps),
            escalate_routes=self.escalate_routes,
            manual_protect="set the issue's security level",
        )

    def protect(self, ref: IssueRef, request: HandOffRequest) -> str | None:
        """Set the configured issue security level (by id when numeric, else by name).

        The bot needs Set Issue Security, and the level must be in the project's scheme.
        https://support.atlassian.com/jira-cloud-administration/docs/configure-issue-security-schemes/
        """
        if not self.security_level:
            return None
        level = self.security_level
        value = {"id": level} if level.isdigit() else {"name": level}
        key = self._key(ref)
        try:
            self._call("set security level", lambda: self._request(
                "PUT", f"issue/{key}", body={"fields": {"security": value}}))
        except JIRAError as exc:
            # No permission, or a level outside the project's scheme: not retried, the
            # comment asks a maintainer to set it by hand.
            if exc.status_code not in (400, 403, 404):
                raise
            raise HandOffRefused(f"Jira answered {exc.status_code}") from None
        return f"security-level {level}"

    def _linked_security_issue(self, key: str) -> str | None:
        raw = self._request("GET", f"issue/{key}", params={"fields": "issuelinks"})
        for link in (raw.get("fields") or {}).get("issuelinks") or []:
            for side in ("outwardIssue", "inwardIssue"):
                other = (link or {}).get(side) or {}
                other_key = str(other.get("key") or "")
                if other_key.startswith(f"{self.security_project}-"):
                    return other_key
        return None

    @property
    def _cloud(self) -> bool:
        return "basic_auth" in self._auth

    def _user_ref(self, who: str) -> dict[str, str]:
        """Cloud names people by accountId, Data Center by username."""
        return {"accountId": who} if self._cloud else {"name": who}

    def escalate(self, ref: IssueRef, summary: str) -> str | None:
        """Every configured escalation: the linked security issue, the assignee and the
        watchers. A step Jira refuses (403/404/400: no permission, unknown or unassignable
        user) is logged once and skipped; the others still happen. Returns what was done.

        Assign: ``PUT /issue/{key}/assignee`` (Assign Issues; the user needs Assignable User).
        Watchers: ``POST /issue/{key}/watchers`` with the accountId / username as a JSON string
        (Manage Watchers). Both are idempotent.
        https://developer.atlassian.com/cloud/jira/platform/rest/v2/api-group-issues/#api-rest-api-2-issue-issueidorkey-assignee-put
        https://developer.atlassian.com/cloud/jira/platform/rest/v2/api-group-issue-watchers/#api-rest-api-2-issue-issueidorkey-watchers-post
        """
        done: list[str] = []
        key = self._key(ref)
        # Each step runs through the retry layer once (the link step does so itself).
        steps: list[tuple[str, Callable[[], Any]]] = []
        if self.security_project:
            steps.append(("link", lambda: self._escalate_link(ref, summary)))
        if self.assignee:
            steps.append((f"assigned {self.assignee}", lambda: self._call(
                "assign", lambda: self._request("PUT", f"issue/{key}/assignee",
                                                body=self._user_ref(self.assignee)))))
        for watcher in self.watchers:
            steps.append((f"watcher {watcher}", functools.partial(
                self._call, "add watcher", functools.partial(
                    self._request, "POST", f"issue/{key}/watchers", body=watcher))))
        for name, step in steps:
            try:
                result = step()
            except JIRAError as exc:
                if exc.status_code not in (400, 403, 404):
                    raise
                log.warning("jira refused an escalation step",
                            extra={"issue": str(ref), "step": name, "status": exc.status_code})
                continue
            done.append(str(result) if name == "link" else name)
        return ", ".join(done) or None

    def _escalate_link(self, ref: IssueRef, summary: str) -> str | None:
        """Create an issue in the security project, linked to ``ref``, once; return its key.

        Only ``summary`` is sent, never the reporter's text. Idempotent without the store: an
        existing link from the issue to any issue of the security project means it was done
        (by the bot or by a person), and that key is returned. The issue is created with the
        link in the same request (``update.issuelinks``), so no unlinked copy can be left
        behind; where the create screen lacks the links field the link is posted separately.
        https://developer.atlassian.com/cloud/jira/platform/rest/v2/api-group-issues/#api-rest-api-2-issue-post
        https://developer.atlassian.com/cloud/jira/platform/rest/v2/api-group-issue-links/#api-rest-api-2-issuelink-post
        """
        if not self.security_project:
            return None
        key = self._key(ref)
        fields = {
            "project": {"key": self.security_project},
            "issuetype": {"name": self.security_issue_type},
            "summary": " ".join(summary.split())[:250],
        }
        link_type = {"name": self.link_type}
        created: list[str] = []

        def attempt() -> str:
            # Re-checked on every attempt: an attempt that failed after Jira stored it is found.
            existing = self._linked_security_issue(key)
            if existing is not None:
                return existing
            if not created:
                body = {"fields": fields, "update": {"issuelinks": [
                    {"add": {"type": link_type, "outwardIssue": {"key": key}}}]}}
                try:
                    raw = self._request("POST", "issue", body=body)
                    return str(raw["key"])
                except JIRAError as exc:
                    errors = _error_fields(exc)
                    if exc.status_code != 400 or "issuelinks" not in errors:
                        raise
                created.append(str(self._request("POST", "issue", body={"fields": fields})["key"]))
            link = {"type": link_type, "inwardIssue": {"key": created[0]},
                    "outwardIssue": {"key": key}}
            self._request("POST", "issueLink", body=link)
            return created[0]

        return self._call("escalate", attempt)


def _error_fields(exc: JIRAError) -> dict[str, Any]:
    """The ``errors`` object of a Jira error answer (field name → message)."""
    try:
        data = exc.response.json() if exc.response is not None else {}
    except ValueError:
        return {}
    errors = data.get("errors") if isinstance(data, dict) else None
    return errors if isinstance(errors, dict) else {}
