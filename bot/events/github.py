"""GitHub webhooks: verify ``X-Hub-Signature-256`` and turn a delivery into an :class:`Event`.

Sans-I/O in the style of gidgethub's ``sansio.py``: raw body bytes and headers in, one
normalised event out, no network. Order of checks: size (413), signature (401, before the body
is even decoded), required headers (400), then the JSON itself (400).

Docs: https://docs.github.com/en/webhooks/webhook-events-and-payloads
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from bot.events.common import (
    DEFAULT_MAX_BYTES,
    check_size,
    get_header,
    load_json_object,
    opt_dict,
    opt_id,
    opt_str,
    req_dict,
    req_int,
    req_str,
    require_header,
    sha256_header_matches,
)
from bot.events.model import Event, EventKind, IssueRef, WebhookError

PROVIDER = "github"

_ISSUE_ACTIONS = {
    "opened": EventKind.ISSUE_OPENED,
    "edited": EventKind.ISSUE_EDITED,
    "reopened": EventKind.ISSUE_REOPENED,
    # One delivery per label, also for the bot's own writes (sender = the bot): the router
    # drops those and labels no rule reads.
    "labeled": EventKind.ISSUE_LABELED,
    "unlabeled": EventKind.ISSUE_LABELED,
}
_COMMENT_ACTIONS = {
    "created": EventKind.COMMENT_CREATED,
    "edited": EventKind.COMMENT_EDITED,
}


def verify_github_signature(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True when ``header`` is ``sha256=`` + the hex HMAC-SHA256 of ``body`` under a secret.

    Several secrets are accepted so the webhook secret can be rotated without downtime. The
    legacy SHA-1 ``X-Hub-Signature`` is deliberately not accepted. Empty secrets never match.
    https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    """
    return sha256_header_matches(body, header, secrets)


def parse_github(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Event:
    """Verify and parse one GitHub delivery.

    Raises ``WebhookError`` 413 (body over ``max_bytes``), 401 (missing or wrong
    ``X-Hub-Signature-256``), 400 (missing ``X-GitHub-Event``/``X-GitHub-Delivery``, malformed
    body, or a handled event without its required fields). Everything else is an ``Event``;
    deliveries bugbar does not act on come back as ``EventKind.IGNORED``.
    """
    check_size(body, max_bytes)
    # https://docs.github.com/en/webhooks/webhook-events-and-payloads#delivery-headers
    if not verify_github_signature(body, get_header(headers, "X-Hub-Signature-256"), secrets):
        raise WebhookError(401, "missing or invalid X-Hub-Signature-256")
    event_name = require_header(headers, "X-GitHub-Event")
    # The GUID is kept on manual redelivery, so it is our idempotency key.
    delivery_id = require_header(headers, "X-GitHub-Delivery")
    payload = _decode_payload(headers, body)
    return _to_event(event_name, delivery_id, payload)


def _decode_payload(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """JSON body, or the ``payload=`` field of a hook configured with content type "form"."""
    content_type = (get_header(headers, "Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return load_json_object(body)
    try:
        form = urllib.parse.parse_qs(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=16,
        )
    except (UnicodeDecodeError, ValueError):
        raise WebhookError(400, "malformed form-encoded body") from None
    values = form.get("payload")
    if not values or len(values) != 1:
        raise WebhookError(400, "form-encoded body must carry exactly one payload= field")
    return load_json_object(values[0])


def _to_event(event_name: str, delivery_id: str, payload: dict[str, Any]) -> Event:
    action = opt_str(payload, "action")
    sender = opt_dict(payload, "sender")
    installation = opt_dict(payload, "installation")
    installation_id = installation.get("id") if installation else None
    base: dict[str, Any] = {
        "provider": PROVIDER,
        "delivery_id": delivery_id,
        "name": event_name,
        "action": action,
        "actor": opt_str(sender, "login"),
        "actor_id": opt_id(sender, "id"),
        "actor_is_bot": _is_bot(sender),
        "installation_id": installation_id if type(installation_id) is int else None,
        "payload": payload,
    }

    if event_name == "ping":
        return Event(kind=EventKind.PING, **base)
    if event_name not in ("issues", "issue_comment"):
        return Event(kind=EventKind.IGNORED, ignore_reason="event not handled", **base)

    issue = opt_dict(payload, "issue")
    # issue_comment also fires for pull-request conversation comments.
    if issue is not None and "pull_request" in issue:
        return Event(
            kind=EventKind.IGNORED,
            issue=_issue_ref_or_none(payload),
            ignore_reason="pull request",
            **base,
        )
    actions = _ISSUE_ACTIONS if event_name == "issues" else _COMMENT_ACTIONS
    kind = actions.get(action)
    if kind is None:
        return Event(
            kind=EventKind.IGNORED,
            issue=_issue_ref_or_none(payload),
            ignore_reason=f"action {action or '(none)'} not handled",
            **base,
        )

    ref = _issue_ref(payload)
    changes = opt_dict(payload, "changes") or {}
    changed_fields = tuple(sorted(changes))
    if event_name == "issues":
        if kind is EventKind.ISSUE_LABELED:
            # ``label`` is optional in GitHub's schema (a label deleted from the repository);
            # then the change is unknown and the router re-triages, as for an unnamed edit.
            name = opt_str(opt_dict(payload, "label"), "name")
            named = (name,) if name else ()
            added, removed = (named, ()) if action == "labeled" else ((), named)
            return Event(kind=kind, issue=ref, changed_fields=changed_fields,
                         labels_added=added, labels_removed=removed, **base)
        return Event(kind=kind, issue=ref, changed_fields=changed_fields, **base)

    comment = req_dict(payload, "comment", "comment")
    author = opt_dict(comment, "user")
    previous: str | None = None
    body_change = opt_dict(changes, "body")
    if kind is EventKind.COMMENT_EDITED and body_change is not None:
        previous = opt_str(body_change, "from")
    base["actor_is_bot"] = base["actor_is_bot"] or _is_bot(author)
    return Event(
        kind=kind,
        issue=ref,
        comment_id=opt_id(comment, "id"),
        comment_body=opt_str(comment, "body"),
        previous_comment_body=previous,
        changed_fields=changed_fields,
        **base,
    )


def _issue_ref(payload: dict[str, Any]) -> IssueRef:
    repository = req_dict(payload, "repository", "repository")
    issue = req_dict(payload, "issue", "issue")
    return IssueRef(
        provider=PROVIDER,
        scope=req_str(repository, "full_name", "repository.full_name"),
        number=req_int(issue, "number", "issue.number"),
    )


def _issue_ref_or_none(payload: dict[str, Any]) -> IssueRef | None:
    """Best effort for ignored events: they must not fail on fields we never use."""
    try:
        return _issue_ref(payload)
    except WebhookError:
        return None


def _is_bot(user: dict[str, Any] | None) -> bool:
    """GitHub App accounts have ``type: "Bot"`` and a login ending in ``[bot]``."""
    if user is None:
        return False
    return opt_str(user, "type") == "Bot" or opt_str(user, "login").endswith("[bot]")
