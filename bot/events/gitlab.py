"""GitLab webhooks: check the secret token (and optional signature), parse into an :class:`Event`.

Authentication. GitLab sends the hook's secret token in plain text in ``X-Gitlab-Token``; it is
compared in constant time against every configured secret (rotation). GitLab versions with the
``webhook_signing_token`` flag can also sign deliveries the Standard Webhooks way
(``webhook-id``/``webhook-timestamp``/``webhook-signature``); when signing tokens are configured
that signature is *required*, not merely checked when present, so a leaked plain token cannot
bypass it. Every configured mechanism must pass; with none configured every delivery is refused.

Idempotency. ``Idempotency-Key`` (GitLab 17.4+) is reused when a delivery is resent, so it is the
key; ``webhook-id`` carries the same value on signed deliveries. Older GitLab sends neither, and
its other UUIDs do not identify a delivery: ``X-Gitlab-Webhook-UUID`` is new on every request (a
resend would look new) and ``X-Gitlab-Event-UUID`` is shared by all hooks fired from one
originating request (a comment with ``/label`` fires a Note Hook *and* an Issue Hook with the same
value, so keying on it would drop one of them). The fallback is therefore a SHA-256 of the event
name and the body: a resend repeats the body byte for byte, and two deliveries with identical
bytes can only produce identical events, so deduplicating them loses nothing.

Edits. ``update`` on an issue fires for every change (labels, assignees, milestone...). It maps
to ``ISSUE_EDITED`` when ``changes`` names ``title`` or ``description`` (or is missing, when we
cannot tell); to ``ISSUE_LABELED`` when it names ``labels`` (with the titles added and removed;
the router drops the bot's own label writes by their author and labels no rule reads); other
updates are ``IGNORED``.

Docs: https://docs.gitlab.com/user/project/integrations/webhook_events/
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
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
    req_dict,
    req_int,
    req_str,
    require_header,
    secret_equals,
)
from bot.events.model import Event, EventKind, IssueRef, WebhookError

PROVIDER = "gitlab"
SIGNATURE_TOLERANCE_S = 300
"""How far ``webhook-timestamp`` may be from now (Standard Webhooks recommends 5 minutes)."""

_ISSUE_HOOKS = frozenset({"Issue Hook", "Confidential Issue Hook"})
_NOTE_HOOKS = frozenset({"Note Hook", "Confidential Note Hook"})
_ISSUE_ACTIONS = {
    "open": EventKind.ISSUE_OPENED,
    "update": EventKind.ISSUE_EDITED,
    "reopen": EventKind.ISSUE_REOPENED,
}
# Notes gained ``action`` in 16.11; older notes are always creations.
_NOTE_ACTIONS = {
    "create": EventKind.COMMENT_CREATED,
    "update": EventKind.COMMENT_EDITED,
}
_TEXT_FIELDS = frozenset({"title", "description"})
# Project/group access tokens act as generated users, e.g. project_123_bot_4f2a... (older
# instances: project_123_bot2); service accounts are service_account_...
_BOT_USERNAME = re.compile(r"^(?:(?:project|group)_\d+_bot(?:_[0-9a-f]+|\d*)|service_account_.+)$")
_INTERNAL_BOTS = frozenset(
    {"support-bot", "alert-bot", "security-bot", "automation-bot", "visual-review-bot"}
)


def verify_gitlab_token(header: str | None, secrets: Sequence[str]) -> bool:
    """True when ``X-Gitlab-Token`` equals one of ``secrets`` (constant time, empties never match).

    https://docs.gitlab.com/user/project/integrations/webhooks/#create-a-webhook (secret token)
    """
    if not header:
        return False
    return secret_equals(header.strip(), secrets)


def verify_gitlab_signature(
    headers: Mapping[str, str],
    body: bytes,
    signing_tokens: Sequence[str],
    *,
    now: float | None = None,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> bool:
    """Check a Standard-Webhooks ``webhook-signature`` against each signing token.

    The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the header holds one or
    more space-separated ``v1,<base64 HMAC-SHA256>`` entries. A ``whsec_``-prefixed token is
    base64-decoded to get the key, as the spec says; any other token is used as raw bytes.
    ``now`` (Unix seconds, default the system clock) must be within ``tolerance_s`` of the
    timestamp, which limits replays. https://www.standardwebhooks.com/ (GitLab MR !230944)
    """
    msg_id = get_header(headers, "webhook-id")
    timestamp = get_header(headers, "webhook-timestamp")
    signature = get_header(headers, "webhook-signature")
    if not msg_id or not timestamp or not signature:
        return False
    try:
        sent_at = int(timestamp.strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    given = [
        sig.encode("utf-8", "replace")
        for version, _, sig in (part.partition(",") for part in signature.split())
        if version == "v1" and sig
    ]
    signed = f"{msg_id.strip()}.{sent_at}.".encode() + body
    matches: list[bool] = []
    for key in _signing_keys(signing_tokens):
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        matches.extend(hmac.compare_digest(expected, g) for g in given)
    return any(matches)


def parse_gitlab(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    signing_tokens: Sequence[str] = (),
    now: float | None = None,
) -> Event:
    """Verify and parse one GitLab delivery.

    ``secrets`` are accepted values of ``X-Gitlab-Token``; ``signing_tokens`` enable the
    Standard-Webhooks signature check (``now`` overrides the clock for it). Raises
    ``WebhookError`` 413 (over ``max_bytes``), 401 (authentication failed or nothing
    configured), 400 (missing ``X-Gitlab-Event``, malformed body, missing required fields).
    """
    check_size(body, max_bytes)
    tokens = normalize_secrets(secrets)
    signers = normalize_secrets(signing_tokens)
    if not tokens and not signers:
        raise WebhookError(401, "no GitLab webhook secret configured; refusing delivery")
    # https://docs.gitlab.com/user/project/integrations/webhooks/#delivery-headers
    if tokens and not verify_gitlab_token(get_header(headers, "X-Gitlab-Token"), tokens):
        raise WebhookError(401, "missing or invalid X-Gitlab-Token")
    if signers and not verify_gitlab_signature(headers, body, signers, now=now):
        raise WebhookError(401, "missing, stale or invalid webhook-signature")
    event_name = require_header(headers, "X-Gitlab-Event")
    delivery_id = _delivery_id(headers, event_name, body)
    payload = load_json_object(body)
    return _to_event(event_name, delivery_id, payload)


def _signing_keys(tokens: Sequence[str]) -> list[bytes]:
    keys = []
    for token in normalize_secrets(tokens):
        if token.startswith("whsec_"):
            try:
                keys.append(base64.b64decode(token.removeprefix("whsec_"), validate=True))
            except (binascii.Error, ValueError):
                continue  # a malformed token can never verify anything
        else:
            keys.append(token.encode("utf-8"))
    return keys


def _delivery_id(headers: Mapping[str, str], event_name: str, body: bytes) -> str:
    """``Idempotency-Key``, else ``webhook-id``, else a body hash (see the module docstring)."""
    for name in ("Idempotency-Key", "webhook-id"):
        value = get_header(headers, name)
        if value and value.strip():
            return value.strip()
    return body_digest(event_name.encode("utf-8"), body)


def _to_event(event_name: str, delivery_id: str, payload: dict[str, Any]) -> Event:
    user = opt_dict(payload, "user")
    base: dict[str, Any] = {
        "provider": PROVIDER,
        "delivery_id": delivery_id,
        "name": event_name,
        "actor": opt_str(user, "username"),
        "actor_id": opt_id(user, "id"),
        "actor_is_bot": _is_bot(user),
        "payload": payload,
    }
    if event_name in _ISSUE_HOOKS:
        return _issue_event(event_name, payload, base)
    if event_name in _NOTE_HOOKS:
        return _note_event(event_name, payload, base)
    return Event(kind=EventKind.IGNORED, ignore_reason="event not handled", **base)


def _issue_event(event_name: str, payload: dict[str, Any], base: dict[str, Any]) -> Event:
    attrs = req_dict(payload, "object_attributes", "object_attributes")
    action = opt_str(attrs, "action")
    base["action"] = action
    object_kind = opt_str(payload, "object_kind")
    # Since 17.2 non-issue work items (epics, tasks...) may arrive on the issue trigger.
    work_item_type = opt_str(attrs, "type")
    if object_kind != "issue" or work_item_type not in ("", "Issue"):
        reason = f"work item ({work_item_type or object_kind or 'unknown kind'})"
        return Event(kind=EventKind.IGNORED, ignore_reason=reason, **base)
    kind = _ISSUE_ACTIONS.get(action)
    if kind is None:
        reason = f"action {action or '(none)'} not handled"
        return Event(kind=EventKind.IGNORED, ignore_reason=reason, **base)
    changes = opt_dict(payload, "changes") or {}
    changed_fields = tuple(sorted(changes))
    confidential = (
        attrs.get("confidential") is True
        or event_name.startswith("Confidential")
        or opt_str(payload, "event_type") == "confidential_issue"
    )
    ref = IssueRef(
        provider=PROVIDER,
        scope=_project_path(payload),
        number=req_int(attrs, "iid", "object_attributes.iid"),
    )
    added, removed = _label_diff(changes)
    base.update(labels_added=added, labels_removed=removed)
    if kind is EventKind.ISSUE_EDITED and changes and not _TEXT_FIELDS.intersection(changes):
        if "labels" in changes:
            # The router re-triages only when a rule reads one of these labels, and drops the
            # bot's own label writes by their author.
            return Event(kind=EventKind.ISSUE_LABELED, issue=ref, confidential=confidential,
                         changed_fields=changed_fields, **base)
        return Event(
            kind=EventKind.IGNORED,
            issue=ref,
            confidential=confidential,
            changed_fields=changed_fields,
            ignore_reason="no title, description or label change",
            **base,
        )
    return Event(
        kind=kind, issue=ref, confidential=confidential, changed_fields=changed_fields, **base
    )


def _note_event(event_name: str, payload: dict[str, Any], base: dict[str, Any]) -> Event:
    attrs = req_dict(payload, "object_attributes", "object_attributes")
    action = opt_str(attrs, "action")
    base["action"] = action
    noteable_type = opt_str(attrs, "noteable_type")
    if noteable_type != "Issue":
        reason = f"note on {noteable_type or 'unknown noteable'}"
        return Event(kind=EventKind.IGNORED, ignore_reason=reason, **base)
    if attrs.get("system") is True:
        return Event(kind=EventKind.IGNORED, ignore_reason="system note", **base)
    kind = _NOTE_ACTIONS.get(action or "create")
    if kind is None:
        return Event(kind=EventKind.IGNORED, ignore_reason=f"action {action} not handled", **base)
    issue = req_dict(payload, "issue", "issue")
    work_item_type = opt_str(issue, "type")
    if work_item_type not in ("", "Issue"):
        return Event(kind=EventKind.IGNORED, ignore_reason=f"work item ({work_item_type})", **base)
    ref = IssueRef(
        provider=PROVIDER, scope=_project_path(payload), number=req_int(issue, "iid", "issue.iid")
    )
    # "confidential_note" marks an internal note, which can sit on a public issue; its text must
    # stay as private as a confidential issue's.
    confidential = (
        issue.get("confidential") is True
        or attrs.get("internal") is True
        or attrs.get("confidential") is True
        or event_name.startswith("Confidential")
        or opt_str(payload, "event_type") == "confidential_note"
    )
    return Event(
        kind=kind,
        issue=ref,
        comment_id=opt_id(attrs, "id"),
        comment_body=opt_str(attrs, "note"),
        confidential=confidential,
        **base,
    )


def _label_diff(changes: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(added, removed)`` label titles from ``changes.labels`` (``previous``/``current``)."""
    change = opt_dict(changes, "labels")
    if change is None:
        return (), ()

    def titles(key: str) -> list[str]:
        items = change.get(key)
        if not isinstance(items, list):
            return []
        return [t for i in items if isinstance(i, dict) and (t := opt_str(i, "title"))]

    before, after = titles("previous"), titles("current")
    return (tuple(t for t in after if t not in before),
            tuple(t for t in before if t not in after))


def _project_path(payload: dict[str, Any]) -> str:
    project = req_dict(payload, "project", "project")
    return req_str(project, "path_with_namespace", "project.path_with_namespace")


def _is_bot(user: dict[str, Any] | None) -> bool:
    """Bot users: an explicit ``bot`` flag, access-token/service-account names, internal bots."""
    if user is None:
        return False
    if user.get("bot") is True:
        return True
    username = opt_str(user, "username")
    return bool(_BOT_USERNAME.match(username)) or username in _INTERNAL_BOTS
