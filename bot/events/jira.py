"""Jira webhooks (Cloud and Data Center): authenticate, then parse into an :class:`Event`.

Authentication, in this order:

1. ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` — sent by admin webhooks
   registered with a secret (Cloud since 2024, Data Center 10+). When the header is present it
   must verify; there is no fallback to the weaker schemes below.
2. Otherwise a shared secret presented as the ``X-Bugbar-Token`` header (for Jira Automation
   "Send web request" rules, which can set headers) or as ``?secret=`` in the webhook URL (for
   admin webhooks without a secret field: Jira cannot add headers to those). Query strings end
   up in access logs, so prefer a signing secret where the Jira version offers one. Every token
   presented must match. ``Authorization`` is not used: Connect and OAuth apps put a JWT there,
   which is a different scheme this module does not implement.

A delivery with no credential, or with no secret configured, is refused with 401.

Idempotency. ``X-Atlassian-Webhook-Identifier`` is unique per delivery and unchanged on the
retries Jira makes (it retries 408/409/425/429/5xx and timeouts), so it is the key. Older
instances do not send it; then the key is a SHA-256 of the body, which a retry repeats byte for
byte and which differs between events because every payload carries a millisecond
``timestamp``.

Mapping. ``jira:issue_created`` → ``ISSUE_OPENED``. ``jira:issue_updated`` carries every kind of
change. In this order it becomes ``COMMENT_CREATED``/``COMMENT_EDITED`` for
``issue_event_type_name`` ``issue_commented``/``issue_comment_edited``; ``ISSUE_REOPENED`` for
``issue_reopened`` or a cleared resolution; ``ISSUE_EDITED`` when a changelog item touches
``summary`` or ``description``; a comment event when it still carries a ``comment`` (old Server
without a type name, transitions with a comment); ``ISSUE_EDITED`` when there is no changelog
at all and the type is unknown or ``issue_updated`` (we cannot tell what changed);
``ISSUE_LABELED`` when an item touches ``labels`` (with the labels added and removed: the
router re-triages only for labels a rule reads, and drops the bot's own label writes by their
author); ``IGNORED`` otherwise, so assignee, status or custom-field changes trigger nothing.
``comment_created``/``comment_updated`` map to the comment kinds when they carry the issue
(Cloud). Server sends them without any issue (and sends the same comment again as
``jira:issue_updated``), so the issue-less ones are ``IGNORED``. A Cloud hook subscribed to both
comment and issue-updated events delivers one comment twice under different identifiers;
comment handlers must be idempotent per ``comment_id``.

Docs: https://developer.atlassian.com/cloud/jira/platform/webhooks/
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.events.common import (
    DEFAULT_MAX_BYTES,
    body_digest,
    check_size,
    get_header,
    load_json_object,
    normalize_secrets,
    opt_dict,
    opt_id,
    opt_str,
    req_str,
    secret_equals,
    sha256_header_matches,
)
from bot.events.model import Event, EventKind, IssueRef, WebhookError

PROVIDER = "jira"
TOKEN_HEADER = "X-Bugbar-Token"
TOKEN_QUERY_PARAM = "secret"

_ISSUE_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_]*)-([1-9][0-9]*)")
_TEXT_FIELDS = frozenset({"summary", "description"})
_COMMENT_TYPES = {
    "issue_commented": EventKind.COMMENT_CREATED,
    "issue_comment_edited": EventKind.COMMENT_EDITED,
}
_COMMENT_EVENTS = {
    "comment_created": EventKind.COMMENT_CREATED,
    "comment_updated": EventKind.COMMENT_EDITED,
}


def verify_jira_signature(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True when ``header`` is ``sha256=`` + the hex HMAC-SHA256 of ``body`` under a secret.

    Jira uses the WebSub ``X-Hub-Signature`` name (not ``-256``) with a ``sha256=`` prefix.
    https://developer.atlassian.com/cloud/jira/platform/webhooks/#secure-admin-webhooks
    """
    return sha256_header_matches(body, header, secrets)


def verify_jira_request(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    query: Mapping[str, str] | None = None,
) -> bool:
    """Authenticate a Jira delivery by signature, else by shared token (module docstring)."""
    if not normalize_secrets(secrets):
        return False
    signature = get_header(headers, "X-Hub-Signature")
    if signature is not None:
        return verify_jira_signature(body, signature, secrets)
    presented = [
        value
        for value in (get_header(headers, TOKEN_HEADER), (query or {}).get(TOKEN_QUERY_PARAM))
        if value
    ]
    results = [secret_equals(value, secrets) for value in presented]
    return bool(results) and all(results)


def parse_jira(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    query: Mapping[str, str] | None = None,
) -> Event:
    """Verify and parse one Jira delivery; ``query`` is the request's query-string parameters.

    Raises ``WebhookError`` 413 (over ``max_bytes``), 401 (authentication failed), 400
    (malformed body, no ``webhookEvent``, an issue without a usable key).
    """
    check_size(body, max_bytes)
    if not verify_jira_request(headers, body, secrets, query):
        raise WebhookError(401, "missing or invalid X-Hub-Signature / webhook token")
    # X-Atlassian-Webhook-Identifier: stable across retries (see the module docstring).
    identifier = (get_header(headers, "X-Atlassian-Webhook-Identifier") or "").strip()
    delivery_id = identifier or body_digest(body)
    payload = load_json_object(body)
    return _to_event(delivery_id, payload)


def _to_event(delivery_id: str, payload: dict[str, Any]) -> Event:
    name = req_str(payload, "webhookEvent", "webhookEvent")
    type_name = opt_str(payload, "issue_event_type_name")
    issue = opt_dict(payload, "issue")
    comment = opt_dict(payload, "comment")
    changelog = opt_dict(payload, "changelog") or {}
    raw_items = changelog.get("items")
    items = [i for i in raw_items if isinstance(i, dict)] if isinstance(raw_items, list) else []
    changed = sorted({opt_str(i, "field") or opt_str(i, "fieldId") for i in items} - {""})
    added, removed = _label_diff(items)
    base: dict[str, Any] = {
        "provider": PROVIDER,
        "delivery_id": delivery_id,
        "name": name,
        "action": type_name,
        "changed_fields": tuple(changed),
        "labels_added": added,
        "labels_removed": removed,
        "payload": payload,
    }
    _set_actor(base, opt_dict(payload, "user"))

    if name == "jira:issue_created":
        return _issue_event(EventKind.ISSUE_OPENED, base, issue)
    if name in _COMMENT_EVENTS:
        if issue is None:
            return _ignored(base, None, "comment event without issue (Server sends it again)")
        return _comment_event(_COMMENT_EVENTS[name], base, issue, comment)
    if name != "jira:issue_updated":
        return _ignored(base, issue, "event not handled")

    if type_name in _COMMENT_TYPES:
        return _comment_event(_COMMENT_TYPES[type_name], base, issue, comment)
    if type_name == "issue_comment_deleted":
        return _ignored(base, issue, "comment deleted")
    if type_name == "issue_reopened" or any(_clears_resolution(i) for i in items):
        return _issue_event(EventKind.ISSUE_REOPENED, base, issue)
    if any(_is_text_field(i) for i in items):
        return _issue_event(EventKind.ISSUE_EDITED, base, issue)
    if comment is not None:
        # Old Server sends comments as bare issue updates, and a transition screen can carry
        # one (issue_generic); equal created/updated timestamps mean a new comment.
        edited = opt_str(comment, "updated") != opt_str(comment, "created")
        kind = EventKind.COMMENT_EDITED if edited else EventKind.COMMENT_CREATED
        return _comment_event(kind, base, issue, comment)
    if any(_is_labels_field(i) for i in items):
        return _issue_event(EventKind.ISSUE_LABELED, base, issue)
    if not items and type_name in ("", "issue_updated"):
        return _issue_event(EventKind.ISSUE_EDITED, base, issue)
    return _ignored(base, issue, "no summary, description or label change")


def _issue_event(kind: EventKind, base: dict[str, Any], issue: dict[str, Any] | None) -> Event:
    if issue is None:
        raise WebhookError(400, "payload field issue is missing or not an object")
    return Event(kind=kind, issue=_issue_ref(issue), confidential=_restricted(issue), **base)


def _comment_event(
    kind: EventKind,
    base: dict[str, Any],
    issue: dict[str, Any] | None,
    comment: dict[str, Any] | None,
) -> Event:
    if issue is None:
        raise WebhookError(400, "payload field issue is missing or not an object")
    if comment is None:
        raise WebhookError(400, "payload field comment is missing or not an object")
    author = opt_dict(comment, "author")
    # The person whose words the body now holds: the editor for edits, else the author.
    writer = opt_dict(comment, "updateAuthor") if kind is EventKind.COMMENT_EDITED else None
    _set_actor(base, writer or author or opt_dict(base["payload"], "user"))
    base["actor_is_bot"] = base["actor_is_bot"] or _is_app(author)
    confidential = (
        _restricted(issue)
        or isinstance(comment.get("visibility"), dict)
        or comment.get("jsdPublic") is False
    )
    return Event(
        kind=kind,
        issue=_issue_ref(issue),
        comment_id=opt_id(comment, "id"),
        comment_body=_text(comment.get("body")),
        confidential=confidential,
        **base,
    )


def _ignored(base: dict[str, Any], issue: dict[str, Any] | None, reason: str) -> Event:
    ref: IssueRef | None = None
    if issue is not None:
        try:
            ref = _issue_ref(issue)
        except WebhookError:
            ref = None
    return Event(kind=EventKind.IGNORED, issue=ref, ignore_reason=reason, **base)


def _issue_ref(issue: dict[str, Any]) -> IssueRef:
    key = req_str(issue, "key", "issue.key")
    match = _ISSUE_KEY.fullmatch(key)
    if match is None:
        raise WebhookError(400, "payload field issue.key is not of the form PROJ-123")
    project = opt_dict(opt_dict(issue, "fields") or {}, "project")
    scope = opt_str(project, "key") or match.group(1)
    return IssueRef(provider=PROVIDER, scope=scope, number=int(match.group(2)), key=key)


def _restricted(issue: dict[str, Any]) -> bool:
    """An issue security level limits who may see the issue."""
    fields = opt_dict(issue, "fields") or {}
    return fields.get("security") is not None


def _set_actor(base: dict[str, Any], user: dict[str, Any] | None) -> None:
    """Cloud identifies people by ``accountId`` (GDPR); Data Center by ``name``/``key``."""
    account_id = opt_str(user, "accountId")
    base["actor"] = opt_str(user, "name") or opt_str(user, "key") or account_id
    base["actor_id"] = account_id or opt_str(user, "key")
    base["actor_is_bot"] = _is_app(user)


def _is_app(user: dict[str, Any] | None) -> bool:
    """Cloud marks app/bot users with ``accountType: "app"``; Data Center has no such flag."""
    return opt_str(user, "accountType") == "app"


def _is_text_field(item: dict[str, Any]) -> bool:
    return (opt_str(item, "fieldId") or opt_str(item, "field")).lower() in _TEXT_FIELDS


def _is_labels_field(item: dict[str, Any]) -> bool:
    return (opt_str(item, "fieldId") or opt_str(item, "field")).lower() == "labels"


def _label_diff(items: list[dict[str, Any]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(added, removed)`` from the ``labels`` changelog items: Jira sends the whole label
    set before and after as space-separated ``fromString``/``toString`` (labels hold no
    whitespace)."""
    added: list[str] = []
    removed: list[str] = []
    for item in items:
        if _is_labels_field(item):
            before = (opt_str(item, "fromString")).split()
            after = (opt_str(item, "toString")).split()
            added += [x for x in after if x not in before and x not in added]
            removed += [x for x in before if x not in after and x not in removed]
    return tuple(added), tuple(removed)


def _clears_resolution(item: dict[str, Any]) -> bool:
    """Reopening on Cloud shows as ``resolution`` going from a value to nothing."""
    if (opt_str(item, "fieldId") or opt_str(item, "field")).lower() != "resolution":
        return False
    return bool(item.get("from") or item.get("fromString")) and not (
        item.get("to") or item.get("toString")
    )


def _text(body: Any) -> str:
    """Comment text: webhook bodies are wiki-markup strings; ADF documents are flattened."""
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text" and isinstance(node.get("text"), str):
                parts.append(node["text"])
            elif node.get("type") == "hardBreak":
                parts.append("\n")
            children = node.get("content")
            if isinstance(children, list):
                for child in children:
                    walk(child)
            if node.get("type") in ("paragraph", "heading", "codeBlock", "listItem"):
                parts.append("\n")

    walk(body)
    return "".join(parts).strip("\n")
