"""GitLab webhook authentication and parsing, driven by the bytes and headers GitLab sends."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from bot.events import gitlab
from bot.events.gitlab import parse_gitlab, verify_gitlab_signature, verify_gitlab_token
from bot.events.model import Event, EventKind, IssueRef, WebhookError

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks" / "gitlab"
TOKEN = "gl-hook-token-current"
OLD_TOKEN = "gl-hook-token-previous"
IDEMPOTENCY_KEY = "0f6b1c9e-3d2a-4c55-9e71-5b8f2a7d4e10"
SIGNING_KEY = b"\x8a\x11signing-key-bytes\x00\xfe"
SIGNING_TOKEN = "whsec_" + base64.b64encode(SIGNING_KEY).decode()
NOW = 1_714_640_000


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def compact(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def headers_for(event: str, token: str | None = TOKEN, **extra: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.6.1",
        "X-Gitlab-Event": event,
        "X-Gitlab-Instance": "https://gitlab.example.org",
        "X-Gitlab-Webhook-UUID": "5d7c0a31-8b40-4e8c-a0a5-29f1c7e6b9aa",
        "X-Gitlab-Event-UUID": "c2b9f7e4-1a6d-4f3b-8e20-7d5a9c1b3e44",
        "Idempotency-Key": IDEMPOTENCY_KEY,
    }
    if token is not None:
        headers["X-Gitlab-Token"] = token
    headers.update(extra)
    return headers


def deliver(event: str, payload: dict[str, Any], **extra: str) -> Event:
    return parse_gitlab(headers_for(event, **extra), compact(payload), [TOKEN])


def std_signature(body: bytes, msg_id: str, ts: int, key: bytes = SIGNING_KEY) -> str:
    signed = f"{msg_id}.{ts}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(body: bytes, ts: int = NOW, key: bytes = SIGNING_KEY) -> dict[str, str]:
    headers = headers_for("Issue Hook", token=None)
    headers["webhook-id"] = IDEMPOTENCY_KEY
    headers["webhook-timestamp"] = str(ts)
    headers["webhook-signature"] = std_signature(body, IDEMPOTENCY_KEY, ts, key)
    return headers


# --- secret token --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "secrets", "expected"),
    [
        pytest.param(TOKEN, [TOKEN], True, id="good"),
        pytest.param(OLD_TOKEN, [TOKEN, OLD_TOKEN], True, id="rotated"),
        pytest.param(TOKEN + "x", [TOKEN], False, id="longer"),
        pytest.param(TOKEN[:-1], [TOKEN], False, id="prefix"),
        pytest.param("wrong", [TOKEN], False, id="wrong"),
        pytest.param(None, [TOKEN], False, id="missing"),
        pytest.param("", [""], False, id="empty-never-matches"),
        pytest.param("tok\u00e9n", ["tok\u00e9n"], True, id="non-ascii"),
        pytest.param(TOKEN, [], False, id="no-secrets"),
    ],
)
def test_verify_gitlab_token(header: str | None, secrets: list[str], expected: bool) -> None:
    assert verify_gitlab_token(header, secrets) is expected


def test_rotated_token_accepted() -> None:
    body = compact(load("issue_hook.open"))
    event = parse_gitlab(headers_for("Issue Hook", OLD_TOKEN), body, [TOKEN, OLD_TOKEN])
    assert event.kind is EventKind.ISSUE_OPENED


@pytest.mark.parametrize(
    ("token", "secrets"),
    [
        pytest.param(None, [TOKEN], id="missing-token"),
        pytest.param("guess", [TOKEN], id="wrong-token"),
        pytest.param(TOKEN, [], id="nothing-configured"),
        pytest.param("", [""], id="empty-configured"),
    ],
)
def test_bad_token_is_401_before_parsing(
    token: str | None, secrets: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_parse(*_: Any) -> Any:
        raise AssertionError("body parsed before authentication")

    monkeypatch.setattr(gitlab, "load_json_object", must_not_parse)
    with pytest.raises(WebhookError) as err:
        parse_gitlab(headers_for("Issue Hook", token), b"{not json", secrets)
    assert err.value.status == 401


# --- Standard Webhooks signature -----------------------------------------------------------


def test_signed_delivery_accepted() -> None:
    body = compact(load("issue_hook.open"))
    event = parse_gitlab(signed_headers(body), body, [], signing_tokens=[SIGNING_TOKEN], now=NOW)
    assert event.kind is EventKind.ISSUE_OPENED
    assert event.delivery_id == IDEMPOTENCY_KEY


@pytest.mark.parametrize(
    ("mutate", "now", "expected"),
    [
        pytest.param(lambda h: None, NOW, True, id="good"),
        pytest.param(lambda h: None, NOW + 299, True, id="within-tolerance"),
        pytest.param(lambda h: None, NOW + 301, False, id="stale"),
        pytest.param(lambda h: None, NOW - 301, False, id="from-the-future"),
        pytest.param(lambda h: h.pop("webhook-signature"), NOW, False, id="no-signature"),
        pytest.param(lambda h: h.pop("webhook-id"), NOW, False, id="no-id"),
        pytest.param(lambda h: h.update({"webhook-timestamp": "soon"}), NOW, False, id="bad-ts"),
        pytest.param(lambda h: h.update({"webhook-id": "other"}), NOW, False, id="id-tampered"),
        pytest.param(
            lambda h: h.update({"webhook-signature": "v1,AAAA " + h["webhook-signature"]}),
            NOW,
            True,
            id="several-signatures",
        ),
        pytest.param(
            lambda h: h.update({"webhook-signature": h["webhook-signature"].replace("v1", "v2")}),
            NOW,
            False,
            id="unknown-version",
        ),
    ],
)
def test_verify_gitlab_signature(mutate: Any, now: int, expected: bool) -> None:
    body = b'{"object_kind":"issue"}'
    headers = signed_headers(body)
    mutate(headers)
    assert verify_gitlab_signature(headers, body, [SIGNING_TOKEN], now=now) is expected


def test_signature_with_raw_and_rotated_tokens() -> None:
    body = b"{}"
    headers = signed_headers(body, key=b"plain-token")
    assert verify_gitlab_signature(headers, body, [SIGNING_TOKEN, "plain-token"], now=NOW)
    assert not verify_gitlab_signature(headers, body, ["whsec_!!not-base64"], now=NOW)


def test_signing_token_configured_makes_signature_mandatory() -> None:
    body = compact(load("issue_hook.open"))
    # A valid plain token alone is not enough once a signing token is configured.
    with pytest.raises(WebhookError) as err:
        parse_gitlab(
            headers_for("Issue Hook"), body, [TOKEN], signing_tokens=[SIGNING_TOKEN], now=NOW
        )
    assert err.value.status == 401


def test_both_mechanisms_must_pass_when_both_configured() -> None:
    body = compact(load("issue_hook.open"))
    headers = signed_headers(body)
    with pytest.raises(WebhookError) as err:
        parse_gitlab(headers, body, [TOKEN], signing_tokens=[SIGNING_TOKEN], now=NOW)
    assert err.value.status == 401
    headers["X-Gitlab-Token"] = TOKEN
    event = parse_gitlab(headers, body, [TOKEN], signing_tokens=[SIGNING_TOKEN], now=NOW)
    assert event.kind is EventKind.ISSUE_OPENED


def test_tampered_body_fails_signature() -> None:
    body = compact(load("issue_hook.open"))
    headers = signed_headers(body)
    with pytest.raises(WebhookError) as err:
        parse_gitlab(headers, body + b" ", [], signing_tokens=[SIGNING_TOKEN], now=NOW)
    assert err.value.status == 401


# --- size, malformed -----------------------------------------------------------------------


def test_oversize_is_413() -> None:
    body = compact(load("issue_hook.open"))
    with pytest.raises(WebhookError) as err:
        parse_gitlab(headers_for("Issue Hook"), body, [TOKEN], max_bytes=100)
    assert err.value.status == 413


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b'"issue"', id="string"),
        pytest.param(b'{"object_kind":"issue","object_attributes":{"action":"open"}}', id="no-iid"),
        pytest.param(
            b'{"object_kind":"issue","object_attributes":{"action":"open","iid":3}}',
            id="no-project",
        ),
        pytest.param(b'{"object_kind":"issue"}', id="no-attributes"),
    ],
)
def test_malformed_is_400(body: bytes) -> None:
    with pytest.raises(WebhookError) as err:
        parse_gitlab(headers_for("Issue Hook"), body, [TOKEN])
    assert err.value.status == 400


def test_missing_event_header_is_400() -> None:
    headers = headers_for("Issue Hook")
    del headers["X-Gitlab-Event"]
    with pytest.raises(WebhookError) as err:
        parse_gitlab(headers, compact(load("issue_hook.open")), [TOKEN])
    assert err.value.status == 400


def test_headers_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in headers_for("Note Hook").items()}
    event = parse_gitlab(headers, compact(load("note_hook.issue")), [TOKEN])
    assert event.kind is EventKind.COMMENT_CREATED
    assert event.delivery_id == IDEMPOTENCY_KEY


# --- idempotency key -----------------------------------------------------------------------


def test_idempotency_key_wins() -> None:
    event = deliver("Issue Hook", load("issue_hook.open"))
    assert event.delivery_id == IDEMPOTENCY_KEY


def test_webhook_id_used_when_idempotency_key_absent() -> None:
    headers = headers_for("Issue Hook", **{"webhook-id": "msg_2fWq8"})
    del headers["Idempotency-Key"]
    event = parse_gitlab(headers, compact(load("issue_hook.open")), [TOKEN])
    assert event.delivery_id == "msg_2fWq8"


def _pre_17_4(event: str, payload: dict[str, Any], **extra: str) -> Event:
    headers = headers_for(event, **extra)
    del headers["Idempotency-Key"]
    return parse_gitlab(headers, compact(payload), [TOKEN])


def test_old_gitlab_falls_back_to_body_hash_stable_across_resend() -> None:
    payload = load("issue_hook.open")
    first = _pre_17_4("Issue Hook", payload)
    # A resend carries a fresh X-Gitlab-Webhook-UUID but the same body.
    resend = _pre_17_4("Issue Hook", payload, **{"X-Gitlab-Webhook-UUID": "another-uuid"})
    assert first.delivery_id.startswith("sha256:")
    assert first.delivery_id == resend.delivery_id
    assert first.delivery_id != "5d7c0a31-8b40-4e8c-a0a5-29f1c7e6b9aa"


def test_event_uuid_is_not_used_as_delivery_id() -> None:
    # One comment with /label fires a Note Hook and an Issue Hook sharing X-Gitlab-Event-UUID;
    # both must survive deduplication.
    note = _pre_17_4("Note Hook", load("note_hook.issue"))
    issue = _pre_17_4("Issue Hook", load("issue_hook.update.labels"))
    assert note.delivery_id != issue.delivery_id
    assert "c2b9f7e4" not in note.delivery_id


def test_body_hash_includes_event_name() -> None:
    payload = load("issue_hook.open")
    plain = _pre_17_4("Issue Hook", payload)
    confidential = _pre_17_4("Confidential Issue Hook", payload)
    assert plain.delivery_id != confidential.delivery_id


# --- event mapping -------------------------------------------------------------------------


def _issue(action: str, **attrs: Any) -> dict[str, Any]:
    payload = load("issue_hook.open")
    payload["object_attributes"]["action"] = action
    payload["object_attributes"].update(attrs)
    return payload


def _note(**attrs: Any) -> dict[str, Any]:
    payload = load("note_hook.issue")
    payload["object_attributes"].update(attrs)
    return payload


@pytest.mark.parametrize(
    ("event", "payload", "kind", "reason"),
    [
        pytest.param("Issue Hook", load("issue_hook.open"), EventKind.ISSUE_OPENED, "", id="open"),
        pytest.param("Issue Hook", _issue("reopen"), EventKind.ISSUE_REOPENED, "", id="reopen"),
        pytest.param(
            "Issue Hook",
            load("issue_hook.update.description"),
            EventKind.ISSUE_EDITED,
            "",
            id="update-description",
        ),
        pytest.param(
            "Issue Hook",
            load("issue_hook.update.labels"),
            EventKind.ISSUE_LABELED,
            "",
            id="update-labels-only",
        ),
        pytest.param(
            "Issue Hook",
            {k: v for k, v in _issue("update").items() if k != "changes"},
            EventKind.ISSUE_EDITED,
            "",
            id="update-without-changes",
        ),
        pytest.param(
            "Issue Hook", _issue("close"), EventKind.IGNORED, "action close not handled", id="close"
        ),
        pytest.param(
            "Confidential Issue Hook",
            load("confidential_issue_hook.open"),
            EventKind.ISSUE_OPENED,
            "",
            id="confidential-open",
        ),
        pytest.param(
            "Issue Hook", load("work_item.epic"), EventKind.IGNORED, "work item (Epic)", id="epic"
        ),
        pytest.param(
            "Issue Hook",
            _issue("open", type="Task"),
            EventKind.IGNORED,
            "work item (Task)",
            id="task-on-issue-trigger",
        ),
        pytest.param(
            "Note Hook", load("note_hook.issue"), EventKind.COMMENT_CREATED, "", id="note-create"
        ),
        pytest.param(
            "Note Hook", _note(action="update"), EventKind.COMMENT_EDITED, "", id="note-update"
        ),
        pytest.param(
            "Note Hook",
            {
                **load("note_hook.issue"),
                "object_attributes": {
                    k: v
                    for k, v in load("note_hook.issue")["object_attributes"].items()
                    if k != "action"
                },
            },
            EventKind.COMMENT_CREATED,
            "",
            id="note-before-16.11",
        ),
        pytest.param(
            "Confidential Note Hook",
            load("confidential_note_hook.internal"),
            EventKind.COMMENT_CREATED,
            "",
            id="internal-note",
        ),
        pytest.param(
            "Note Hook",
            load("note_hook.merge_request"),
            EventKind.IGNORED,
            "note on MergeRequest",
            id="mr-note",
        ),
        pytest.param(
            "Note Hook", _note(system=True), EventKind.IGNORED, "system note", id="system-note"
        ),
        pytest.param(
            "Note Hook",
            {
                **load("note_hook.issue"),
                "issue": {**load("note_hook.issue")["issue"], "type": "Task"},
            },
            EventKind.IGNORED,
            "work item (Task)",
            id="note-on-task",
        ),
        pytest.param(
            "Push Hook", {"object_kind": "push"}, EventKind.IGNORED, "event not handled", id="push"
        ),
    ],
)
def test_event_mapping(event: str, payload: dict[str, Any], kind: EventKind, reason: str) -> None:
    result = deliver(event, copy.deepcopy(payload))
    assert result.kind is kind
    assert result.ignore_reason == reason
    assert result.provider == "gitlab"
    assert result.name == event


def test_issue_fields() -> None:
    event = deliver("Issue Hook", load("issue_hook.open"))
    assert event.issue == IssueRef("gitlab", "ml-platform/speech-models", 17)
    assert event.action == "open"
    assert event.actor == "rokabe"
    assert event.actor_id == "40211"
    assert not event.actor_is_bot
    assert not event.confidential


def test_update_records_changed_fields() -> None:
    event = deliver("Issue Hook", load("issue_hook.update.description"))
    assert event.changed_fields == ("description", "updated_at", "updated_by_id")


def test_note_fields() -> None:
    event = deliver("Note Hook", load("note_hook.issue"))
    assert event.issue == IssueRef("gitlab", "ml-platform/speech-models", 17)
    assert event.comment_id == "5520981"
    assert event.comment_body == "/triage data-poisoning severity critical"
    assert event.actor == "mvoss"
    assert event.previous_comment_body is None
    assert not event.confidential


def test_edited_note_has_no_previous_text() -> None:
    event = deliver("Note Hook", _note(action="update", note="/triage model-inversion"))
    assert event.kind is EventKind.COMMENT_EDITED
    assert event.comment_body == "/triage model-inversion"
    assert event.previous_comment_body is None


# --- confidentiality -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "payload", "confidential"),
    [
        pytest.param("Issue Hook", load("issue_hook.open"), False, id="public-issue"),
        pytest.param(
            "Confidential Issue Hook", load("confidential_issue_hook.open"), True, id="conf-issue"
        ),
        pytest.param("Issue Hook", _issue("open", confidential=True), True, id="flag-only"),
        pytest.param("Note Hook", load("note_hook.issue"), False, id="public-note"),
        pytest.param(
            "Confidential Note Hook",
            load("confidential_note_hook.internal"),
            True,
            id="internal-note-on-public-issue",
        ),
        pytest.param(
            "Confidential Note Hook",
            {**load("note_hook.issue"), "event_type": "confidential_note"},
            True,
            id="confidential-note-hook-name",
        ),
        pytest.param(
            "Note Hook",
            {
                **load("note_hook.issue"),
                "issue": {**load("note_hook.issue")["issue"], "confidential": True},
            },
            True,
            id="note-on-confidential-issue",
        ),
    ],
)
def test_confidential(event: str, payload: dict[str, Any], confidential: bool) -> None:
    assert deliver(event, payload).confidential is confidential


def test_confidential_issue_before_type_field() -> None:
    # Pre-17.2 payloads have no object_attributes.type and must still be treated as issues.
    payload = load("confidential_issue_hook.open")
    assert "type" not in payload["object_attributes"]
    event = deliver("Confidential Issue Hook", payload)
    assert event.issue == IssueRef("gitlab", "ml-platform/speech-models", 18)


# --- bots ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "is_bot"),
    [
        pytest.param({"username": "project_9120_bot_3f9c2a1d7e", "id": 1}, True, id="project-bot"),
        pytest.param({"username": "group_77_bot_a1b2c3", "id": 2}, True, id="group-bot"),
        pytest.param({"username": "project_5_bot2", "id": 3}, True, id="old-project-bot"),
        pytest.param({"username": "project_5_bot", "id": 3}, True, id="first-project-bot"),
        pytest.param({"username": "service_account_group_9_ab12", "id": 4}, True, id="svc-acct"),
        pytest.param({"username": "support-bot", "id": 5}, True, id="support-bot"),
        pytest.param({"username": "ci-helper", "id": 6, "bot": True}, True, id="bot-flag"),
        pytest.param({"username": "rokabe", "id": 7}, False, id="human"),
        pytest.param({"username": "robot_fan", "id": 8}, False, id="bot-ish-human"),
        pytest.param({"username": "project_manager_bot", "id": 9}, False, id="lookalike"),
    ],
)
def test_bot_detection(user: dict[str, Any], is_bot: bool) -> None:
    payload = load("note_hook.issue")
    payload["user"] = user
    event = deliver("Note Hook", payload)
    assert event.actor_is_bot is is_bot
    assert event.actor == user["username"]


def test_bot_label_write_is_flagged_as_a_bot() -> None:
    """The router drops it by its author (the parser cannot know the bot's own name)."""
    event = deliver("Issue Hook", load("issue_hook.update.labels"))
    assert event.actor_is_bot
    assert event.kind is EventKind.ISSUE_LABELED
    assert event.changed_fields == ("labels", "updated_at")
    assert event.labels_added == ("threat/data-poisoning",) and event.labels_removed == ()


def _titles(*names: str) -> list[dict[str, Any]]:
    return [{"id": 3300 + i, "title": n, "color": "#428bca", "project_id": 9120,
             "template": False, "description": None, "type": "ProjectLabel", "group_id": None}
            for i, n in enumerate(names)]


def test_label_change_by_a_person_lists_added_and_removed() -> None:
    payload = load("issue_hook.update.labels")
    payload["user"] = {"id": 77, "name": "Mia Chen", "username": "mchen",
                       "avatar_url": "https://gitlab.example.com/uploads/-/system/user/77.png"}
    payload["changes"]["labels"] = {"previous": _titles("bug", "needs-triage"),
                                    "current": _titles("bug", "prompt-injection")}
    event = deliver("Issue Hook", payload)
    assert event.kind is EventKind.ISSUE_LABELED and not event.actor_is_bot
    assert event.actor == "mchen"
    assert event.labels_added == ("prompt-injection",)
    assert event.labels_removed == ("needs-triage",)


def test_label_and_text_change_together_is_an_edit() -> None:
    payload = load("issue_hook.update.labels")
    payload["changes"]["title"] = {"previous": "old", "current": "new"}
    event = deliver("Issue Hook", payload)
    assert event.kind is EventKind.ISSUE_EDITED
    assert event.labels_added == ("threat/data-poisoning",)
