"""GitHub webhook verification and parsing, driven by signed bytes like a real delivery."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from bot.events import github
from bot.events.github import parse_github, verify_github_signature
from bot.events.model import Event, EventKind, IssueRef, WebhookError

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks" / "github"
SECRET = "s3cret-current"
OLD_SECRET = "s3cret-previous"
DELIVERY = "8d1f5a40-da11-11ee-9a3e-3b7c0f0e4c21"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def compact(payload: dict[str, Any]) -> bytes:
    """Real deliveries are compact JSON; we sign and send exactly these bytes."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers_for(event: str, body: bytes, secret: str = SECRET, **extra: str) -> dict[str, str]:
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": DELIVERY,
        "X-Hub-Signature-256": sign(body, secret),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/7a1c2b3",
    }
    headers.update(extra)
    return headers


def deliver(event: str, payload: dict[str, Any], **kwargs: Any) -> Event:
    body = compact(payload)
    return parse_github(headers_for(event, body), body, [SECRET], **kwargs)


# --- signature -----------------------------------------------------------------------------


def test_docs_test_vector() -> None:
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verify_github_signature(b"Hello, World!", header, ["It's a Secret to Everybody"])


@pytest.mark.parametrize(
    ("header", "secrets", "expected"),
    [
        pytest.param(sign(b"x"), [SECRET], True, id="good"),
        pytest.param(sign(b"x", OLD_SECRET), [SECRET, OLD_SECRET], True, id="rotated-secret"),
        pytest.param(
            sign(b"x").upper().replace("SHA256=", "sha256="), [SECRET], True, id="hex-case"
        ),
        pytest.param(sign(b"y"), [SECRET], False, id="other-body"),
        pytest.param(sign(b"x", "nope"), [SECRET], False, id="other-secret"),
        pytest.param(sign(b"x").removeprefix("sha256="), [SECRET], False, id="no-prefix"),
        pytest.param("sha1=" + "0" * 40, [SECRET], False, id="legacy-sha1"),
        pytest.param("sha256=", [SECRET], False, id="empty-digest"),
        pytest.param("sha256=zz\u00e9", [SECRET], False, id="non-ascii"),
        pytest.param(None, [SECRET], False, id="missing"),
        pytest.param("", [SECRET], False, id="empty"),
        pytest.param(sign(b"x", ""), [""], False, id="empty-secret-never-matches"),
        pytest.param(sign(b"x"), [], False, id="no-secrets"),
    ],
)
def test_verify_github_signature(header: str | None, secrets: list[str], expected: bool) -> None:
    assert verify_github_signature(b"x", header, secrets) is expected


def test_bare_string_secret_is_one_secret() -> None:
    # A str is a Sequence[str]; it must not be taken as a list of one-character secrets.
    assert verify_github_signature(b"x", sign(b"x"), SECRET)
    assert not verify_github_signature(b"x", sign(b"x", "s"), SECRET)


def test_second_secret_accepted_during_rotation() -> None:
    body = compact(load("issues.opened"))
    event = parse_github(headers_for("issues", body, OLD_SECRET), body, [SECRET, OLD_SECRET])
    assert event.kind is EventKind.ISSUE_OPENED


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda h: h.pop("X-Hub-Signature-256"), id="missing"),
        pytest.param(lambda h: h.update({"X-Hub-Signature-256": sign(b"{}")}), id="wrong-body"),
        pytest.param(lambda h: h.update({"X-Hub-Signature-256": "sha256=abc"}), id="garbage"),
    ],
)
def test_bad_signature_is_401_before_parsing(mutate: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_parse(*_: Any) -> Any:
        raise AssertionError("body parsed before the signature was checked")

    monkeypatch.setattr(github, "load_json_object", must_not_parse)
    body = b'{"action": "opened", not json'
    headers = headers_for("issues", body)
    mutate(headers)
    with pytest.raises(WebhookError) as err:
        parse_github(headers, body, [SECRET])
    assert err.value.status == 401


def test_signed_with_unknown_secret_is_401() -> None:
    body = compact(load("issues.opened"))
    with pytest.raises(WebhookError) as err:
        parse_github(headers_for("issues", body, "attacker"), body, [SECRET])
    assert err.value.status == 401


# --- size and malformed bodies -------------------------------------------------------------


def test_oversize_is_413_even_when_signed() -> None:
    body = compact(load("issues.opened"))
    with pytest.raises(WebhookError) as err:
        parse_github(headers_for("issues", body), body, [SECRET], max_bytes=len(body) - 1)
    assert err.value.status == 413


def test_body_at_the_limit_is_accepted() -> None:
    body = compact(load("issues.opened"))
    event = parse_github(headers_for("issues", body), body, [SECRET], max_bytes=len(body))
    assert event.kind is EventKind.ISSUE_OPENED


def test_default_cap_is_5_mib() -> None:
    body = b" " * (5 * 1024 * 1024 + 1)
    with pytest.raises(WebhookError) as err:
        parse_github(headers_for("issues", body), body, [SECRET])
    assert err.value.status == 413


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"action": "opened",', id="truncated"),
        pytest.param(b"[1, 2, 3]", id="not-an-object"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested"),
    ],
)
def test_malformed_signed_body_is_400(body: bytes) -> None:
    with pytest.raises(WebhookError) as err:
        parse_github(headers_for("issues", body), body, [SECRET])
    assert err.value.status == 400


@pytest.mark.parametrize("header", ["X-GitHub-Delivery", "X-GitHub-Event"])
def test_missing_required_header_is_400(header: str) -> None:
    body = compact(load("issues.opened"))
    headers = headers_for("issues", body)
    del headers[header]
    with pytest.raises(WebhookError) as err:
        parse_github(headers, body, [SECRET])
    assert err.value.status == 400
    assert header in err.value.message


@pytest.mark.parametrize(
    ("fixture", "event", "path"),
    [
        pytest.param("issues.opened", "issues", ("issue", "number"), id="issue-number"),
        pytest.param("issues.opened", "issues", ("repository",), id="repository"),
        pytest.param("issues.opened", "issues", ("issue",), id="issue"),
        pytest.param("issue_comment.created", "issue_comment", ("comment",), id="comment"),
    ],
)
def test_missing_required_field_is_400(fixture: str, event: str, path: tuple[str, ...]) -> None:
    payload = load(fixture)
    target = payload
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    with pytest.raises(WebhookError) as err:
        deliver(event, payload)
    assert err.value.status == 400


def test_headers_are_case_insensitive() -> None:
    body = compact(load("issues.opened"))
    headers = {k.lower(): v for k, v in headers_for("issues", body).items()}
    event = parse_github(headers, body, [SECRET])
    assert event.kind is EventKind.ISSUE_OPENED
    assert event.delivery_id == DELIVERY


# --- form-encoded deliveries ---------------------------------------------------------------


def test_form_encoded_delivery() -> None:
    body = urllib.parse.urlencode({"payload": compact(load("ping")).decode()}).encode()
    headers = headers_for(
        "ping", body, **{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    )
    event = parse_github(headers, body, [SECRET])
    assert event.kind is EventKind.PING
    assert event.payload["hook"]["app_id"] == 881234


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"zen=hello", id="no-payload-field"),
        pytest.param(b"payload=a&payload=b", id="two-payload-fields"),
        pytest.param(b"payload=%7Bnot-json", id="bad-json"),
        pytest.param(b"payload=%ff%fe", id="bad-utf8"),
    ],
)
def test_malformed_form_body_is_400(body: bytes) -> None:
    headers = headers_for("ping", body, **{"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(WebhookError) as err:
        parse_github(headers, body, [SECRET])
    assert err.value.status == 400


# --- event/action mapping ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "event", "action", "kind"),
    [
        pytest.param("issues.opened", "issues", None, EventKind.ISSUE_OPENED, id="opened"),
        pytest.param("issues.edited", "issues", None, EventKind.ISSUE_EDITED, id="edited"),
        pytest.param("issues.opened", "issues", "reopened", EventKind.ISSUE_REOPENED, id="reopen"),
        pytest.param("issues.opened", "issues", "labeled", EventKind.ISSUE_LABELED, id="labeled"),
        pytest.param(
            "issues.opened", "issues", "unlabeled", EventKind.ISSUE_LABELED, id="unlabeled"
        ),
        pytest.param("issues.opened", "issues", "closed", EventKind.IGNORED, id="closed"),
        pytest.param("issues.opened", "issues", "transferred", EventKind.IGNORED, id="new-action"),
        pytest.param(
            "issue_comment.created",
            "issue_comment",
            None,
            EventKind.COMMENT_CREATED,
            id="comment-created",
        ),
        pytest.param(
            "issue_comment.edited", "issue_comment", None, EventKind.COMMENT_EDITED, id="c-edited"
        ),
        pytest.param(
            "issue_comment.created", "issue_comment", "deleted", EventKind.IGNORED, id="c-deleted"
        ),
        pytest.param("ping", "ping", None, EventKind.PING, id="ping"),
        pytest.param("issues.opened", "installation", "created", EventKind.IGNORED, id="other"),
        pytest.param(
            "issue_comment.created.pull_request",
            "issue_comment",
            None,
            EventKind.IGNORED,
            id="pr-comment",
        ),
        pytest.param(
            "issue_comment.edited.pull_request",
            "issue_comment",
            None,
            EventKind.IGNORED,
            id="pr-comment-edited",
        ),
    ],
)
def test_event_mapping(fixture: str, event: str, action: str | None, kind: EventKind) -> None:
    if fixture == "issue_comment.edited.pull_request":
        payload = load("issue_comment.edited")
        payload["issue"]["pull_request"] = load("issue_comment.created.pull_request")["issue"][
            "pull_request"
        ]
    else:
        payload = load(fixture)
    if action is not None:
        payload["action"] = action
    result = deliver(event, payload)
    assert result.kind is kind
    assert result.provider == "github"
    assert result.name == event
    assert result.delivery_id == DELIVERY
    assert (result.ignore_reason != "") is (kind is EventKind.IGNORED)


def _label(name: str) -> dict[str, Any]:
    """A ``label`` object as GitHub sends it with ``labeled``/``unlabeled``."""
    return {"id": 6012345678, "node_id": "LA_kwDOB1a2b88AAAABZj1fTg", "name": name,
            "url": f"https://api.github.com/repos/acme-ml/vision-api/labels/{name}",
            "color": "b60205", "default": False, "description": None}


@pytest.mark.parametrize(
    ("action", "added", "removed"),
    [
        pytest.param("labeled", ("model-stealing",), (), id="labeled"),
        pytest.param("unlabeled", (), ("model-stealing",), id="unlabeled"),
    ],
)
def test_label_change_names_the_label_and_who(
    action: str, added: tuple[str, ...], removed: tuple[str, ...]
) -> None:
    payload = load("issues.opened")
    payload.update(action=action, label=_label("model-stealing"))
    event = deliver("issues", payload)
    assert event.kind is EventKind.ISSUE_LABELED and event.action == action
    assert (event.labels_added, event.labels_removed) == (added, removed)
    assert event.issue == IssueRef("github", "acme-ml/vision-api", 42)
    assert event.actor == "mlsec-reporter" and not event.actor_is_bot


def test_label_change_without_a_label_object_is_an_unknown_change() -> None:
    """``label`` is optional in GitHub's schema (a label deleted from the repository)."""
    payload = load("issues.opened")
    payload["action"] = "unlabeled"
    event = deliver("issues", payload)
    assert event.kind is EventKind.ISSUE_LABELED
    assert event.labels_added == () and event.labels_removed == ()


def test_issue_opened_fields() -> None:
    event = deliver("issues", load("issues.opened"))
    assert event.issue == IssueRef("github", "acme-ml/vision-api", 42)
    assert event.action == "opened"
    assert event.actor == "mlsec-reporter"
    assert event.actor_id == "7301122"
    assert not event.actor_is_bot
    assert event.installation_id is None
    assert event.payload["issue"]["title"].startswith("Prediction API")
    assert event.comment_id == ""
    assert not event.confidential


def test_issue_edited_records_changed_fields() -> None:
    event = deliver("issues", load("issues.edited"))
    assert event.changed_fields == ("body",)


def test_pull_request_comment_is_ignored_with_reason() -> None:
    event = deliver("issue_comment", load("issue_comment.created.pull_request"))
    assert event.ignore_reason == "pull request"
    assert event.issue == IssueRef("github", "acme-ml/vision-api", 43)
    assert event.comment_body == ""


def test_comment_created_fields() -> None:
    event = deliver("issue_comment", load("issue_comment.created"))
    assert event.kind is EventKind.COMMENT_CREATED
    assert event.issue == IssueRef("github", "acme-ml/vision-api", 42)
    assert event.comment_id == "1976543210"
    assert event.comment_body == "/triage model-stealing"
    assert event.previous_comment_body is None
    assert event.actor == "triage-lead"
    assert event.installation_id == 51234567


def test_edited_comment_carries_previous_text() -> None:
    event = deliver("issue_comment", load("issue_comment.edited"))
    assert event.kind is EventKind.COMMENT_EDITED
    assert event.comment_body == "/triage model-stealing severity critical"
    assert event.previous_comment_body == "/triage model-stealing"
    assert event.changed_fields == ("body",)


def test_edited_comment_without_body_change_has_no_previous_text() -> None:
    payload = load("issue_comment.edited")
    payload["changes"] = {}
    event = deliver("issue_comment", payload)
    assert event.previous_comment_body is None


def test_ping_without_repository() -> None:
    payload = load("ping")
    assert "repository" not in payload
    event = deliver("ping", payload)
    assert event.kind is EventKind.PING
    assert event.issue is None
    assert event.actor == "triage-lead"


def test_ignored_action_does_not_require_fields() -> None:
    payload = load("issues.opened")
    payload["action"] = "deleted"
    del payload["repository"]
    event = deliver("issues", payload)
    assert event.kind is EventKind.IGNORED
    assert event.issue is None


# --- bots ----------------------------------------------------------------------------------


def _with_user(payload: dict[str, Any], where: str, login: str, type_: str) -> dict[str, Any]:
    payload = copy.deepcopy(payload)
    user = {"login": login, "id": 99, "type": type_}
    if where == "sender":
        payload["sender"] = user
    else:
        payload["comment"]["user"] = user
    return payload


@pytest.mark.parametrize(
    ("where", "login", "type_", "is_bot"),
    [
        pytest.param("sender", "bugbar[bot]", "Bot", True, id="app-sender"),
        pytest.param("sender", "renovate[bot]", "User", True, id="bot-suffix-only"),
        pytest.param("sender", "ci-robot", "Bot", True, id="bot-type-only"),
        pytest.param("comment", "bugbar[bot]", "Bot", True, id="bot-comment-author"),
        pytest.param("sender", "botany-fan", "User", False, id="human-with-bot-in-name"),
        pytest.param("comment", "someone", "User", False, id="human-author"),
    ],
)
def test_bot_detection(where: str, login: str, type_: str, is_bot: bool) -> None:
    payload = _with_user(load("issue_comment.created"), where, login, type_)
    event = deliver("issue_comment", payload)
    assert event.actor_is_bot is is_bot


def test_bot_opened_issue_is_flagged() -> None:
    payload = _with_user(load("issues.opened"), "sender", "dependabot[bot]", "Bot")
    event = deliver("issues", payload)
    assert event.kind is EventKind.ISSUE_OPENED
    assert event.actor_is_bot
