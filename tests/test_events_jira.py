"""Jira Cloud and Data Center webhook authentication and parsing."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from bot.events import jira
from bot.events.jira import parse_jira, verify_jira_request, verify_jira_signature
from bot.events.model import Event, EventKind, IssueRef, WebhookError

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks" / "jira"
SECRET = "jira-hook-secret-current"
OLD_SECRET = "jira-hook-secret-previous"
IDENTIFIER = "1718031600050-7c1d"
CLOUD_ACCOUNT = "712020:4c1e9b0a-77d2-4e0f-9a51-0f3a2c6b8d11"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def compact(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=UTF-8",
        "X-Atlassian-Webhook-Identifier": IDENTIFIER,
        "X-Atlassian-Webhook-Flow": "Primary",
        "X-Hub-Signature": sign(body, secret),
    }


def deliver(payload: dict[str, Any]) -> Event:
    body = compact(payload)
    return parse_jira(signed_headers(body), body, [SECRET])


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "secrets", "expected"),
    [
        pytest.param(sign(b"{}"), [SECRET], True, id="good"),
        pytest.param(sign(b"{}", OLD_SECRET), [SECRET, OLD_SECRET], True, id="rotated"),
        pytest.param(sign(b"{} "), [SECRET], False, id="other-body"),
        pytest.param(sign(b"{}", "x"), [SECRET], False, id="other-secret"),
        pytest.param(
            "sha1=" + hmac.new(SECRET.encode(), b"{}", "sha1").hexdigest(),
            [SECRET],
            False,
            id="sha1",
        ),
        pytest.param(sign(b"{}").removeprefix("sha256="), [SECRET], False, id="no-prefix"),
        pytest.param(None, [SECRET], False, id="missing"),
        pytest.param(sign(b"{}", ""), [""], False, id="empty-secret"),
    ],
)
def test_verify_jira_signature(header: str | None, secrets: list[str], expected: bool) -> None:
    assert verify_jira_signature(b"{}", header, secrets) is expected


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        pytest.param({"X-Hub-Signature": sign(b"{}")}, {}, True, id="signature"),
        pytest.param({"x-hub-signature": sign(b"{}")}, {}, True, id="signature-lowercase"),
        pytest.param({"X-Bugbar-Token": SECRET}, {}, True, id="token-header"),
        pytest.param({"X-Bugbar-Token": OLD_SECRET}, {}, True, id="token-header-rotated"),
        pytest.param({}, {"secret": SECRET}, True, id="query-secret"),
        pytest.param({}, {"secret": "guess"}, False, id="query-wrong"),
        pytest.param({"X-Bugbar-Token": "guess"}, {}, False, id="token-wrong"),
        pytest.param({}, {}, False, id="nothing-presented"),
        pytest.param({"Authorization": f"Bearer {SECRET}"}, {}, False, id="bearer-not-accepted"),
        pytest.param({"X-Bugbar-Token": SECRET}, {"secret": "guess"}, False, id="one-of-two-wrong"),
        pytest.param(
            {"X-Hub-Signature": sign(b"{}", "x")},
            {"secret": SECRET},
            False,
            id="bad-signature-no-fallback-to-query",
        ),
    ],
)
def test_verify_jira_request(
    headers: dict[str, str], query: dict[str, str], expected: bool
) -> None:
    assert verify_jira_request(headers, b"{}", [SECRET, OLD_SECRET], query) is expected


def test_no_secret_configured_refuses_everything() -> None:
    assert not verify_jira_request({"X-Bugbar-Token": ""}, b"{}", [], {"secret": ""})
    with pytest.raises(WebhookError) as err:
        parse_jira({}, b"{}", [""], query={"secret": ""})
    assert err.value.status == 401


def test_query_secret_delivery_parses() -> None:
    body = compact(load("cloud.issue_created"))
    event = parse_jira({}, body, [SECRET], query={"secret": SECRET})
    assert event.kind is EventKind.ISSUE_OPENED


def test_rotated_signature_delivery_parses() -> None:
    body = compact(load("cloud.issue_created"))
    event = parse_jira(signed_headers(body, OLD_SECRET), body, [SECRET, OLD_SECRET])
    assert event.kind is EventKind.ISSUE_OPENED


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        pytest.param({}, None, id="nothing"),
        pytest.param({"X-Hub-Signature": "sha256=00"}, None, id="bad-signature"),
        pytest.param({"X-Bugbar-Token": "nope"}, {"other": "x"}, id="bad-token"),
    ],
)
def test_unauthenticated_is_401_before_parsing(
    headers: dict[str, str], query: dict[str, str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_parse(*_: Any) -> Any:
        raise AssertionError("body parsed before authentication")

    monkeypatch.setattr(jira, "load_json_object", must_not_parse)
    with pytest.raises(WebhookError) as err:
        parse_jira(headers, b"{{{ not json", [SECRET], query=query)
    assert err.value.status == 401


# --- size, malformed -----------------------------------------------------------------------


def test_oversize_is_413() -> None:
    body = compact(load("cloud.issue_created"))
    with pytest.raises(WebhookError) as err:
        parse_jira(signed_headers(body), body, [SECRET], max_bytes=1024)
    assert err.value.status == 413


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"timestamp": 1}', id="no-webhookEvent"),
        pytest.param(b'{"webhookEvent": "jira:issue_created"}', id="created-without-issue"),
        pytest.param(
            b'{"webhookEvent": "jira:issue_created", "issue": {"key": "not a key"}}',
            id="bad-key",
        ),
        pytest.param(
            b'{"webhookEvent": "jira:issue_updated", "issue_event_type_name": "issue_commented",'
            b' "issue": {"key": "AB-1"}}',
            id="commented-without-comment",
        ),
    ],
)
def test_malformed_is_400(payload: bytes) -> None:
    with pytest.raises(WebhookError) as err:
        parse_jira(signed_headers(payload), payload, [SECRET])
    assert err.value.status == 400


# --- idempotency ---------------------------------------------------------------------------


def test_webhook_identifier_is_the_delivery_id() -> None:
    assert deliver(load("cloud.issue_created")).delivery_id == IDENTIFIER


def test_body_hash_when_identifier_missing() -> None:
    payload = load("cloud.issue_created")
    body = compact(payload)
    headers = {"X-Hub-Signature": sign(body)}
    first = parse_jira(headers, body, [SECRET])
    retry = parse_jira(dict(headers, **{"X-Atlassian-Webhook-Retry": "1"}), body, [SECRET])
    assert first.delivery_id.startswith("sha256:")
    assert first.delivery_id == retry.delivery_id
    payload["timestamp"] += 1
    later = compact(payload)
    assert parse_jira({"X-Hub-Signature": sign(later)}, later, [SECRET]).delivery_id != (
        first.delivery_id
    )


# --- event mapping -------------------------------------------------------------------------


def _updated(type_name: str | None, items: list[dict[str, Any]] | None) -> dict[str, Any]:
    payload = load("cloud.issue_updated.description")
    if type_name is None:
        payload.pop("issue_event_type_name")
    else:
        payload["issue_event_type_name"] = type_name
    if items is None:
        payload.pop("changelog")
    else:
        payload["changelog"]["items"] = items
    return payload


def _item(field: str, from_: str | None = None, to: str | None = None) -> dict[str, Any]:
    return {
        "field": field,
        "fieldtype": "jira",
        "fieldId": field,
        "from": from_,
        "fromString": from_,
        "to": to,
        "toString": to,
    }


def _dc_no_type(updated: str) -> dict[str, Any]:
    payload = load("dc.issue_updated.commented")
    del payload["issue_event_type_name"]
    payload["comment"]["updated"] = updated
    return payload


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        pytest.param(load("cloud.issue_created"), EventKind.ISSUE_OPENED, id="created"),
        pytest.param(load("cloud.issue_updated.description"), EventKind.ISSUE_EDITED, id="desc"),
        pytest.param(
            _updated("issue_updated", [_item("summary", "a", "b")]),
            EventKind.ISSUE_EDITED,
            id="summary",
        ),
        pytest.param(
            load("cloud.issue_updated.labels"), EventKind.ISSUE_LABELED, id="labels-only"
        ),
        pytest.param(
            _updated("issue_updated", [_item("labels"), _item("priority")]),
            EventKind.ISSUE_LABELED,
            id="labels-and-priority",
        ),
        pytest.param(
            _updated("issue_updated", [_item("priority")]),
            EventKind.IGNORED,
            id="priority-only",
        ),
        pytest.param(
            _updated("issue_updated", [_item("labels"), _item("description")]),
            EventKind.ISSUE_EDITED,
            id="labels-and-description",
        ),
        pytest.param(
            load("cloud.issue_updated.assigned"), EventKind.IGNORED, id="assigned-empty-changelog"
        ),
        pytest.param(_updated("issue_updated", None), EventKind.ISSUE_EDITED, id="no-changelog"),
        pytest.param(_updated(None, []), EventKind.ISSUE_EDITED, id="no-type-empty-changelog"),
        pytest.param(
            _updated(
                "issue_updated",
                [
                    {
                        "field": "MJK - Number Field",
                        "fieldtype": "custom",
                        "fieldId": "customfield_10072",
                    }
                ],
            ),
            EventKind.IGNORED,
            id="custom-field",
        ),
        pytest.param(load("dc.issue_updated.reopened"), EventKind.ISSUE_REOPENED, id="dc-reopen"),
        pytest.param(
            _updated(
                "issue_generic",
                [_item("resolution", "Done", None), _item("status", "Done", "To Do")],
            ),
            EventKind.ISSUE_REOPENED,
            id="cloud-resolution-cleared",
        ),
        pytest.param(
            _updated(
                "issue_generic",
                [_item("resolution", None, "Done"), _item("status", "To Do", "Done")],
            ),
            EventKind.IGNORED,
            id="resolved",
        ),
        pytest.param(
            load("cloud.comment_created"), EventKind.COMMENT_CREATED, id="cloud-comment-created"
        ),
        pytest.param(
            load("cloud.comment_updated"), EventKind.COMMENT_EDITED, id="cloud-comment-updated"
        ),
        pytest.param(
            {**load("cloud.comment_created"), "webhookEvent": "comment_deleted"},
            EventKind.IGNORED,
            id="comment-deleted",
        ),
        pytest.param(
            load("dc.issue_updated.commented"), EventKind.COMMENT_CREATED, id="dc-issue-commented"
        ),
        pytest.param(
            {**load("dc.issue_updated.commented"), "issue_event_type_name": "issue_comment_edited"},
            EventKind.COMMENT_EDITED,
            id="dc-issue-comment-edited",
        ),
        pytest.param(
            {
                **load("dc.issue_updated.commented"),
                "issue_event_type_name": "issue_comment_deleted",
            },
            EventKind.IGNORED,
            id="dc-issue-comment-deleted",
        ),
        pytest.param(
            _dc_no_type("2024-07-01T09:30:00.000+0900"),
            EventKind.COMMENT_CREATED,
            id="dc-old-no-type-new-comment",
        ),
        pytest.param(
            _dc_no_type("2024-07-01T09:41:07.000+0900"),
            EventKind.COMMENT_EDITED,
            id="dc-old-no-type-edited-comment",
        ),
        pytest.param(
            load("dc.comment_created.no_issue"),
            EventKind.IGNORED,
            id="dc-comment-created-without-issue",
        ),
        pytest.param(
            {**load("cloud.issue_created"), "webhookEvent": "jira:issue_deleted"},
            EventKind.IGNORED,
            id="issue-deleted",
        ),
        pytest.param(
            {**load("cloud.issue_created"), "webhookEvent": "worklog_created"},
            EventKind.IGNORED,
            id="other-event",
        ),
    ],
)
def test_event_mapping(payload: dict[str, Any], kind: EventKind) -> None:
    event = deliver(copy.deepcopy(payload))
    assert event.kind is kind
    assert event.provider == "jira"
    assert event.name == payload["webhookEvent"]
    assert (event.ignore_reason != "") is (kind is EventKind.IGNORED)


def test_labels_only_update_records_fields_and_bot() -> None:
    event = deliver(load("cloud.issue_updated.labels"))
    assert event.kind is EventKind.ISSUE_LABELED
    assert event.changed_fields == ("labels",)
    assert event.actor_is_bot  # the Cloud app user that wrote the labels: the router drops it
    assert event.issue == IssueRef("jira", "MLSEC", 31, key="MLSEC-31")


def test_label_diff_from_the_changelog_strings() -> None:
    """Jira sends the whole label set before and after, space-separated."""
    payload = _updated("issue_updated", [
        _item("labels", "bug needs-triage", "bug prompt-injection ml")])
    event = deliver(payload)
    assert event.kind is EventKind.ISSUE_LABELED
    assert event.labels_added == ("prompt-injection", "ml")
    assert event.labels_removed == ("needs-triage",)
    cleared = deliver(_updated("issue_updated", [_item("labels", "threat/model-stealing", None)]))
    assert cleared.labels_added == () and cleared.labels_removed == ("threat/model-stealing",)


def test_cloud_issue_created_fields() -> None:
    event = deliver(load("cloud.issue_created"))
    assert event.issue == IssueRef("jira", "MLSEC", 31, key="MLSEC-31")
    assert str(event.issue) == "jira:MLSEC-31"
    assert event.action == "issue_created"
    assert event.actor == CLOUD_ACCOUNT
    assert event.actor_id == CLOUD_ACCOUNT
    assert not event.actor_is_bot
    assert not event.confidential


def test_description_edit_records_changed_fields() -> None:
    assert deliver(load("cloud.issue_updated.description")).changed_fields == ("description",)


def test_cloud_comment_created_fields() -> None:
    payload = load("cloud.comment_created")
    assert "user" not in payload
    event = deliver(payload)
    assert event.issue == IssueRef("jira", "MLSEC", 31, key="MLSEC-31")
    assert event.comment_id == "10233"
    assert event.comment_body == "/triage adversarial-perturbation"
    assert event.actor == CLOUD_ACCOUNT
    assert event.actor_id == CLOUD_ACCOUNT
    assert event.previous_comment_body is None


def test_cloud_comment_updated_actor_is_the_editor() -> None:
    event = deliver(load("cloud.comment_updated"))
    assert event.comment_body == "/triage adversarial-perturbation severity critical"
    assert event.actor_id == "712020:9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    assert event.previous_comment_body is None


def test_dc_comment_fields_and_user_identity() -> None:
    event = deliver(load("dc.issue_updated.commented"))
    assert event.issue == IssueRef("jira", "AIRT", 208, key="AIRT-208")
    assert event.comment_id == "30551"
    assert event.comment_body == "/triage physical-adversarial-example"
    assert event.actor == "hkim"
    assert event.actor_id == "JIRAUSER10412"
    assert event.action == "issue_commented"


def test_dc_comment_without_issue_says_why() -> None:
    event = deliver(load("dc.comment_created.no_issue"))
    assert event.issue is None
    assert "without issue" in event.ignore_reason


def test_scope_falls_back_to_key_prefix() -> None:
    payload = load("cloud.comment_created")
    del payload["issue"]["fields"]["project"]
    assert deliver(payload).issue == IssueRef("jira", "MLSEC", 31, key="MLSEC-31")


# --- confidentiality and bots --------------------------------------------------------------


def test_security_level_is_confidential() -> None:
    assert deliver(load("dc.issue_updated.commented")).confidential  # "Security Team Only"
    assert deliver(load("dc.issue_updated.reopened")).confidential


@pytest.mark.parametrize(
    ("changes", "confidential"),
    [
        pytest.param({}, False, id="public"),
        pytest.param({"visibility": {"type": "role", "value": "Developers"}}, True, id="role"),
        pytest.param({"jsdPublic": False}, True, id="jsm-internal"),
    ],
)
def test_restricted_comment_is_confidential(changes: dict[str, Any], confidential: bool) -> None:
    payload = load("cloud.comment_created")
    payload["comment"].update(changes)
    assert deliver(payload).confidential is confidential


@pytest.mark.parametrize(
    ("who", "account_type", "is_bot"),
    [
        pytest.param("author", "app", True, id="app-author"),
        pytest.param("updateAuthor", "app", False, id="update-author-ignored-on-create"),
        pytest.param("author", "atlassian", False, id="human"),
        pytest.param("author", "customer", False, id="jsm-customer"),
    ],
)
def test_comment_bot_detection(who: str, account_type: str, is_bot: bool) -> None:
    payload = load("cloud.comment_created")
    payload["comment"][who] = {"accountId": "557058:aa", "accountType": account_type}
    assert deliver(payload).actor_is_bot is is_bot


def test_edit_by_app_is_flagged() -> None:
    payload = load("cloud.comment_updated")
    payload["comment"]["updateAuthor"] = {"accountId": "557058:bb", "accountType": "app"}
    assert deliver(payload).actor_is_bot


def test_adf_comment_body_is_flattened() -> None:
    payload = load("cloud.comment_created")
    payload["comment"]["body"] = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "/triage"},
                    {"type": "text", "text": " model-inversion"},
                ],
            },
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "thanks"},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "bye"},
                ],
            },
        ],
    }
    assert deliver(payload).comment_body == "/triage model-inversion\nthanks\nbye"
