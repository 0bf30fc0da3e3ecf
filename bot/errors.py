"""User-facing error lines: any failure the CLI meets, as one ``bugbar: …`` line and an exit code.

Exit codes: 2 for bad usage or configuration (the user must change a flag, a variable or a
file), 1 for a tracker or network failure (the tracker said no, or could not be reached).
The line names what failed and, where we know it, what to do; the traceback is printed only
with ``--debug`` or ``BUGBAR_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from typing import Any

from bot.logs import redact

USAGE = 2
"""Exit code for bad usage or configuration."""
TRACKER = 1
"""Exit code for a tracker (or network) failure."""

MAX_LINE_CHARS = 600
"""Long enough for the cause at the end of a chained message; short enough for one line."""


def one_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """Collapse whitespace (a server's HTML error page, a multi-line message) into one line.

    Secrets registered for redaction are masked. When cut, the head and the tail are kept:
    the cause of a chained error is usually at its end.
    """
    flat = " ".join(redact(text).split())
    if len(flat) <= limit:
        return flat
    half = (limit - 5) // 2
    return f"{flat[:half]} … {flat[-half:]}"


_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\"()\]]+")


def network_reason(exc: BaseException) -> str:
    """The short cause of a network error (``[Errno 111] Connection refused``), not the
    library's nested repr of the whole connection pool."""
    if "Timeout" in type(exc).__name__ or isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    match = _ERRNO.search(text)
    if match:
        return match.group(0).strip()
    return one_line(f"{type(exc).__name__}: {text}", 200)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status a client library's error carries (PyGithub ``status``, python-gitlab
    ``response_code``, jira ``status_code``), or None."""
    for attr in ("status", "response_code", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    return None


def _server_message(exc: BaseException) -> str:
    """The tracker's own words for an HTTP error (PyGithub ``data``, python-gitlab
    ``error_message``, jira ``text``), without the request/response dumps the libraries add."""
    data: Any = getattr(exc, "data", None)
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    for attr in ("error_message", "text"):
        value = getattr(exc, attr, None)
        if isinstance(value, str | bytes) and value:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return str(exc)


_STATUS_HINTS = {
    401: "the credentials were rejected: check the token variable",
    403: "the credentials lack a permission bugbar needs (issues: write) or a limit was hit",
    404: "not found: the issue, comment or project is gone or the token cannot see it",
}


def _network_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    if module.startswith(("requests", "urllib3")):
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


def describe(exc: BaseException, provider: str = "") -> tuple[int, str]:
    """``(exit code, message)`` for an exception that reached the command line."""
    where = f"{provider}: " if provider else ""
    name = type(exc).__name__
    rate_limited = "RateLimited" in {c.__name__ for c in type(exc).__mro__}
    if rate_limited:
        return TRACKER, one_line(f"{where}{exc}; run again later")
    status = http_status(exc)
    if status is not None and not isinstance(exc, OSError):
        hint = _STATUS_HINTS.get(status, "")
        message = _server_message(exc)
        text = f"{where}the tracker answered {status}: {message}"
        return TRACKER, one_line(text + (f" ({hint})" if hint else ""))
    if _network_error(exc):
        return TRACKER, one_line(f"{where}cannot reach the tracker ({network_reason(exc)}); "
                                 "check its URL variable and the network, then run again")
    if isinstance(exc, sqlite3.Error):
        return TRACKER, one_line(f"state database error ({name}: {exc}); check BUGBAR_STATE")
    if isinstance(exc, OSError):
        target = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return USAGE, one_line(f"{target}{exc.strerror or exc}")
    return TRACKER, one_line(f"{where}{name}: {exc}")


def debug_requested(argv: list[str], env: dict[str, str] | None = None) -> bool:
    """``--debug`` on the command line or ``BUGBAR_LOG_LEVEL=debug`` in the environment."""
    import os

    level = (env if env is not None else os.environ).get("BUGBAR_LOG_LEVEL", "")
    return "--debug" in argv or level.strip().lower() == "debug"


def print_traceback(exc: BaseException) -> None:
    """The full traceback on stderr, secrets redacted (for ``--debug``)."""
    import traceback

    text = "".join(traceback.format_exception(exc))
    sys.stderr.write(redact(text))
