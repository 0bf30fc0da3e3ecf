"""Helpers shared by the provider webhook parsers: headers, size, JSON and typed field access.

Everything here raises :class:`~bot.events.model.WebhookError` with the HTTP status the web layer
should answer with, and a message that names the offending header or field (never its value when
that value could be a secret).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.events.model import WebhookError

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
"""Default body cap (5 MiB), applied before any signature work.

GitHub and GitLab allow up to 25 MB, but the events bugbar acts on are small: an issue or
comment body is capped at 65,536 characters on GitHub, so even fully ``\\uXXXX``-escaped plus the
repository and user objects such a payload stays well under 1 MiB. 5 MiB leaves room for big
Jira issues with many custom fields while bounding memory per request. The web server should
refuse larger ``Content-Length`` values before reading the body; this check is the backstop.
"""


def normalize_secrets(secrets: Sequence[str] | str) -> tuple[str, ...]:
    """Return the configured secrets without empty entries.

    A bare ``str`` is treated as one secret (iterating it would test each character). Empty
    strings are dropped so an unset variable can never match an empty or missing header.
    """
    if isinstance(secrets, str):
        secrets = (secrets,)
    return tuple(s for s in secrets if s)


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup; ``None`` when absent (HTTP header names are not cased)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def require_header(headers: Mapping[str, str], name: str) -> str:
    """The header's value, stripped; ``WebhookError(400)`` when absent or blank."""
    value = get_header(headers, name)
    if value is None or not value.strip():
        raise WebhookError(400, f"missing {name} header")
    return value.strip()


def check_size(body: bytes, max_bytes: int) -> None:
    """Raise ``WebhookError(413)`` when ``body`` is longer than ``max_bytes``."""
    if len(body) > max_bytes:
        raise WebhookError(413, f"payload of {len(body)} bytes exceeds the {max_bytes}-byte limit")


def secret_equals(given: str, secrets: Sequence[str]) -> bool:
    """Constant-time check that ``given`` equals one of ``secrets``.

    Both sides are hashed first so the comparison runs over equal-length digests and leaks
    neither the secret's length nor a common prefix. Every secret is compared (no early exit).
    """
    given_digest = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
    matches = [
        hmac.compare_digest(given_digest, hashlib.sha256(s.encode("utf-8")).digest())
        for s in normalize_secrets(secrets)
    ]
    return any(matches)


def sha256_header_matches(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True when ``header`` is ``sha256=`` + the hex HMAC-SHA256 of ``body`` under a secret
    (the WebSub form GitHub and Jira both use). Empty secrets never match."""
    if not header:
        return False
    scheme, sep, given = header.strip().partition("=")
    if not sep or scheme.lower() != "sha256" or not given:
        return False
    return hex_hmac_matches(body, given, secrets, "sha256")


def hex_hmac_matches(body: bytes, given_hex: str, secrets: Sequence[str], digestmod: str) -> bool:
    """Constant-time check of a hex HMAC of ``body`` against every secret."""
    given = given_hex.strip().lower().encode("utf-8", "replace")
    matches = [
        hmac.compare_digest(
            hmac.new(s.encode("utf-8"), body, digestmod).hexdigest().encode("ascii"), given
        )
        for s in normalize_secrets(secrets)
    ]
    return any(matches)


def body_digest(*parts: bytes) -> str:
    """A stable delivery id for providers that send none: ``sha256:<hex>`` of the parts."""
    h = hashlib.sha256()
    for part in parts:
        # Length-prefix each part so ("ab", "c") and ("a", "bc") differ.
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return "sha256:" + h.hexdigest()


def load_json_object(body: bytes | str) -> dict[str, Any]:
    """Parse a JSON object; ``WebhookError(400)`` for anything that is not one."""
    try:
        data = json.loads(body)
    except UnicodeDecodeError as exc:
        raise WebhookError(400, f"payload is not valid UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise WebhookError(
            400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise WebhookError(400, "malformed JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise WebhookError(400, f"payload must be a JSON object, got {type(data).__name__}")
    return data


def opt_dict(obj: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """``obj[key]`` when it is an object, else ``None`` (absent, null or another type)."""
    value = obj.get(key)
    return value if isinstance(value, dict) else None


def req_dict(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    """``obj[key]`` as an object; ``WebhookError(400)`` naming ``where`` otherwise."""
    value = obj.get(key)
    if not isinstance(value, dict):
        raise WebhookError(400, f"payload field {where} is missing or not an object")
    return value


def opt_str(obj: Mapping[str, Any] | None, key: str) -> str:
    """``obj[key]`` when it is a string, else ``""``."""
    if obj is None:
        return ""
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def req_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    """``obj[key]`` as a non-empty string; ``WebhookError(400)`` naming ``where`` otherwise."""
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise WebhookError(400, f"payload field {where} is missing or not a string")
    return value


def req_int(obj: Mapping[str, Any], key: str, where: str) -> int:
    """``obj[key]`` as a positive integer; ``WebhookError(400)`` naming ``where`` otherwise."""
    value = obj.get(key)
    # bool is an int subclass; ``true`` is never a valid issue number.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise WebhookError(400, f"payload field {where} is missing or not a positive integer")
    return value


def opt_id(obj: Mapping[str, Any] | None, key: str) -> str:
    """An id that providers send as a number or a string, as a string (``""`` when absent)."""
    if obj is None:
        return ""
    value = obj.get(key)
    if isinstance(value, bool):
        return ""
    if isinstance(value, int | str):
        return str(value)
    return ""
