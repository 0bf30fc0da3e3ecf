"""Tests for bot.logs: JSON lines, per-delivery context, and secrets never reaching the output."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from bot.logs import (
    REDACTED,
    RedactionFilter,
    clear_secrets,
    configure_logging,
    current_context,
    log_context,
    redact,
    register_secret,
)

TOKEN = "ghp_S3cr3tT0kenValue+/=with&odd chars"
SECRET = "whsec-webhook-secret-0042"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = configure_logging("DEBUG", stream=out)
    register_secret(TOKEN)
    register_secret(SECRET)
    yield out
    logging.getLogger().removeHandler(handler)
    clear_secrets()


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_shape_and_extra_fields(stream: io.StringIO) -> None:
    logging.getLogger("bugbar.test").info("hello %s", "world", extra={"issue": "acme/x#1", "n": 3})
    [line] = lines(stream)
    assert set(line) >= {"ts", "level", "logger", "msg", "issue", "n"}
    assert line["msg"] == "hello world"
    assert (line["level"], line["logger"], line["n"]) == ("info", "bugbar.test", 3)
    assert line["ts"].endswith("Z")


def test_log_context_tags_lines_and_is_per_thread(stream: io.StringIO) -> None:
    log = logging.getLogger("bugbar.worker")
    seen_in_thread: list[dict[str, Any]] = []

    def other_thread() -> None:
        seen_in_thread.append(current_context())
        log.info("from another thread")

    with log_context(delivery_id="d-123", provider="github"):
        log.info("outer")
        with log_context(attempt=2):
            log.info("inner")
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
    log.info("after")
    by_msg = {line["msg"]: line for line in lines(stream)}
    assert by_msg["outer"]["delivery_id"] == "d-123" and by_msg["outer"]["provider"] == "github"
    assert by_msg["inner"]["attempt"] == 2 and by_msg["inner"]["delivery_id"] == "d-123"
    assert "attempt" not in by_msg["outer"]
    assert "delivery_id" not in by_msg["after"]
    assert "delivery_id" not in by_msg["from another thread"]
    assert seen_in_thread == [{}]


def test_registered_secret_never_appears_anywhere(stream: io.StringIO) -> None:
    log = logging.getLogger("bugbar.leaky")
    log.info("token is " + TOKEN)
    log.info("token via args %s and %r", TOKEN, SECRET)
    log.warning("field", extra={"note": f"prefix-{TOKEN}-suffix", "nested": {"a": [SECRET]}})
    log.info(
        "url-encoded",
        extra={"url": "https://x/?q=" + urllib.parse.quote(TOKEN, safe="")},
    )
    log.info("json-escaped", extra={"raw": json.dumps({"t": TOKEN})})
    try:
        raise RuntimeError(f"API refused token {TOKEN}")
    except RuntimeError:
        log.exception("call failed")
    with log_context(delivery_id="d-1", api_key_hint=TOKEN):
        log.info("context carries it")
    text = stream.getvalue()
    assert TOKEN not in text and SECRET not in text
    assert "S3cr3tT0ken" not in text  # nor any escaped form that keeps the core
    assert text.count(REDACTED) >= 8
    assert "RuntimeError" in text  # the traceback is kept, only the secret is gone


def test_sensitive_field_names_are_redacted_whatever_their_value(stream: io.StringIO) -> None:
    logging.getLogger("bugbar.fields").info(
        "request",
        extra={
            "token": "unregistered-value-1",
            "Authorization": "Bearer unregistered-value-2",
            "private_key": "-----BEGIN RSA PRIVATE KEY-----unregistered-value-3",
            "password": "unregistered-value-4",
            "body": "issue text from the internet unregistered-value-5",
            "headers": {"X-Gitlab-Token": "unregistered-value-6", "X-GitHub-Event": "issues"},
            "delivery_id": "d-9",
        },
    )
    [line] = lines(stream)
    assert "unregistered-value" not in stream.getvalue()
    assert line["token"] == REDACTED and line["body"] == REDACTED
    assert line["headers"] == {"X-Gitlab-Token": REDACTED, "X-GitHub-Event": "issues"}
    assert line["delivery_id"] == "d-9"


def test_query_string_secrets_are_redacted_in_access_logs(stream: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5555",
        "POST",
        "/webhooks/jira?project=SEC&secret=not-registered-but-in-url",
        "1.1",
        202,
    )
    [line] = lines(stream)
    assert "not-registered-but-in-url" not in line["msg"]
    assert "/webhooks/jira?project=SEC&secret=***" in line["msg"]


def test_redaction_filter_protects_a_foreign_handler() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s %(token)s"))
    handler.addFilter(RedactionFilter())
    log = logging.getLogger("bugbar.foreign")
    log.addHandler(handler)
    log.propagate = False
    register_secret(TOKEN)
    try:
        log.error("leak %s", TOKEN, extra={"token": "abc-unregistered"})
    finally:
        log.removeHandler(handler)
        log.propagate = True
        clear_secrets()
    assert TOKEN not in out.getvalue() and "abc-unregistered" not in out.getvalue()


def test_configure_logging_replaces_its_own_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", stream=first)
    handler = configure_logging("INFO", stream=second)
    try:
        logging.getLogger("bugbar.twice").info("once")
    finally:
        logging.getLogger().removeHandler(handler)
    assert first.getvalue() == "" and len(second.getvalue().splitlines()) == 1


def test_redact_helper_and_empty_secret_ignored() -> None:
    register_secret("")
    register_secret(None)
    try:
        assert redact("nothing to hide") == "nothing to hide"
        register_secret("short-but-real")
        assert redact("x short-but-real y") == f"x {REDACTED} y"
    finally:
        clear_secrets()


def test_values_shorter_than_eight_characters_are_never_redacted() -> None:
    """A one-letter "secret" must not blank that letter from every log line; from 8
    characters on a value is redacted wherever it appears, even inside words."""
    from bot.logs import SHORT_SECRET, clear_secrets, redact, register_secret

    clear_secrets()
    try:
        assert SHORT_SECRET == 8
        for short in ("s", "t", "seven77"):
            register_secret(short)
        line = "tests: it's s and t, seven77 settings"
        assert redact(line) == line
        register_secret("eight888")
        assert redact("xeight888y eight888") == f"x{REDACTED}y {REDACTED}"
        assert redact(line) == line
    finally:
        clear_secrets()


def test_every_configured_secret_stays_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``load_config`` registers (tokens, the private key, webhook secrets) is still
    redacted, and a PostgreSQL password in BUGBAR_STATE is hidden even when it is short."""
    import argparse

    from bot.app_cli import load_config

    key = "-----BEGIN PRIVATE KEY-----\nMIIsecretkeymaterial\n-----END PRIVATE KEY-----"
    env = {
        "BUGBAR_GITHUB_TOKEN": "ghp_s3cr3t-token-value",
        "BUGBAR_GITHUB_APP_ID": "4242",
        "BUGBAR_GITHUB_PRIVATE_KEY": key,
        "BUGBAR_GITHUB_WEBHOOK_SECRET": "gh-hook-secret-1",
        "BUGBAR_GITLAB_URL": "https://gitlab.example",
        "BUGBAR_GITLAB_TOKEN": "glpat-s3cr3t-value",
        "BUGBAR_STATE": "postgresql://bugbar:pw@127.0.0.1:5432/test",
    }
    for name in list(os.environ):
        if name.startswith("BUGBAR_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    handler = configure_logging("INFO", stream=out)
    clear_secrets()
    try:
        load_config(argparse.Namespace())
        values = [v for k, v in env.items() if k not in ("BUGBAR_GITHUB_APP_ID",
                                                         "BUGBAR_GITLAB_URL")]
        logging.getLogger("bugbar.test").info("config: %s", " | ".join(values),
                                              extra={"where": env["BUGBAR_STATE"]})
        text = out.getvalue()
        for secret in [*values[:-1], "MIIsecretkeymaterial", ":pw@"]:
            assert secret not in text
        record = json.loads(text.splitlines()[-1])
        assert record["where"] == f"postgresql://bugbar:{REDACTED}@127.0.0.1:5432/test"
    finally:
        logging.getLogger().removeHandler(handler)
        clear_secrets()
