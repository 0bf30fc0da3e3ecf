"""Structured JSON-lines logging with per-delivery context and secret redaction.

Every line is one JSON object: ``{"ts", "level", "logger", "msg", ...fields}``. Fields come from
``extra=`` and from :func:`log_context` (so every line a worker writes while handling a delivery
carries its ``delivery_id``). Two layers keep secrets out:

* values registered with :func:`register_secret` (webhook secrets, API tokens) are replaced by
  ``***`` wherever they appear: message, fields, nested fields, tracebacks (values shorter than
  8 characters are not: redacting them would blank common letters from every line);
* fields whose name looks sensitive (token, secret, authorization, password, private key,
  cookie, signature, body) are redacted whatever their value, because issue and comment text is
  untrusted and may be confidential, and credentials we were never told about must not leak
  either. ``secret=``/``token=``-style query parameters in URLs are redacted too (Jira webhooks
  may carry the shared secret in the query string, which ends up in access logs), and so is
  the password in a ``scheme://user:password@host`` URL, whatever its length.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import re
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = [
    "REDACTED",
    "ContextFilter",
    "JsonFormatter",
    "RedactionFilter",
    "clear_secrets",
    "configure_logging",
    "current_context",
    "is_sensitive_key",
    "log_context",
    "redact",
    "redact_value",
    "register_secret",
]

REDACTED = "***"

_SENSITIVE_KEY = re.compile(
    r"token|secret|authori[sz]ation|passw(or)?d|private[_-]?key|api[_-]?key|cookie|"
    r"credential|signature|body",
    re.IGNORECASE,
)
_SENSITIVE_QUERY = re.compile(
    r"(?P<key>[?&;](?:[\w.-]*(?:token|secret|password|passwd|api[_-]?key|signature|sig))=)"
    r"(?P<value>[^&;\s\"'#]*)",
    re.IGNORECASE,
)

# The password of a ``scheme://user:password@host`` location (BUGBAR_STATE's PostgreSQL URL):
# redacted whatever its length, so a short one, which register_secret skips, stays hidden too.
_URL_PASSWORD = re.compile(r"(?P<key>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@\"']*:)"
                           r"(?P<value>[^@\s/\"']+)(?=@)")

# Attributes every LogRecord has; anything else on a record came from ``extra=`` or a filter.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}

_context: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "bugbar_log_context", default=None
)

_secrets_lock = threading.Lock()
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


# --------------------------------------------------------------------------- secrets


SHORT_SECRET = 8
"""Registered values shorter than this are never redacted. Tokens, keys and passwords are
longer; a one-letter "secret" would blank that letter from every log line and make the logs
useless (``serve`` and ``handle-event`` refuse such webhook secrets outright)."""


def register_secret(value: str | None) -> None:
    """Never log ``value`` (nor its URL- or JSON-escaped forms). Empty values and values
    shorter than :data:`SHORT_SECRET` are ignored (see there)."""
    global _secret_pattern
    if not value or len(value) < SHORT_SECRET:
        return
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
    }
    with _secrets_lock:
        _secrets.update(f for f in forms if f)
        # Longest first, so a secret containing another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def clear_secrets() -> None:
    """Forget every registered secret (for tests)."""
    global _secret_pattern
    with _secrets_lock:
        _secrets.clear()
        _secret_pattern = None


def is_sensitive_key(key: str) -> bool:
    """True for field names whose values are never logged (token, secret, body, ...)."""
    return bool(_SENSITIVE_KEY.search(key))


def redact(text: str) -> str:
    """``text`` with registered secrets, URL passwords and sensitive query-string values
    replaced by ``***``."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: m.group("key") + REDACTED, text)
    return _SENSITIVE_QUERY.sub(lambda m: m.group("key") + REDACTED, text)


def redact_value(value: Any, _depth: int = 0) -> Any:
    """Redact a field value: strings scrubbed, mappings/sequences walked, sensitive keys hidden."""
    if _depth > 8:
        return REDACTED  # deeper than any log field we write; do not walk attacker-made graphs
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes | bytearray):
        return redact(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {
            redact(str(k)): REDACTED if is_sensitive_key(str(k)) else redact_value(v, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, _depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


# --------------------------------------------------------------------------- context


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. ``delivery_id=..., provider=...``) to every log line in the block."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    """The fields :func:`log_context` currently adds."""
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Copies the :func:`log_context` fields onto each record (explicit ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if key not in _RECORD_ATTRS and key not in record.__dict__:
                record.__dict__[key] = value
        return True


class RedactionFilter(logging.Filter):
    """Scrubs a record in place before any handler formats it.

    The message is rendered and redacted (``args`` dropped), extra fields are redacted, and an
    attached traceback is formatted and redacted now, since exception messages can quote
    request data.
    """

    _tb_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not lose the line (nor leak raw args)
            message = f"{record.msg!s} (unformattable log arguments)"
        record.msg = redact(message)
        record.args = None
        for key in [k for k in record.__dict__ if k not in _RECORD_ATTRS]:
            if is_sensitive_key(key):
                record.__dict__[key] = REDACTED
            else:
                record.__dict__[key] = redact_value(record.__dict__[key])
        if record.exc_info and not record.exc_text:
            record.exc_text = self._tb_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# --------------------------------------------------------------------------- format


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, then extra fields.

    Redacts again on its own, so it is safe even on a handler without :class:`RedactionFilter`.
    """

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:
            message = f"{record.msg!s} (unformattable log arguments)"
        ts = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        out: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(message),
        }
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRS or key in out:
                continue
            out[key] = REDACTED if is_sensitive_key(key) else redact_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = redact(record.exc_text)
        if record.stack_info:
            out["stack"] = redact(record.stack_info)
        line = json.dumps(out, ensure_ascii=False, default=str)
        # Belt and braces: catches a secret split across fields and re-joined by json escaping.
        return redact(line)


_HANDLER_MARK = "_bugbar_handler"


def configure_logging(level: int | str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Send all logging (root logger) to ``stream`` (default stderr) as redacted JSON lines.

    Calling it again replaces the handler it installed before; other handlers are left alone.
    uvicorn's loggers are made to propagate here so access logs are redacted too.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
            old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    return handler
