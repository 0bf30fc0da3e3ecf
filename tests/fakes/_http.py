"""Plumbing shared by the fake tracker API servers (GitHub, GitLab, Jira).

:class:`FakeHTTPServer` is a mixin giving a fake its server lifecycle (127.0.0.1 on a free
port, served from a daemon thread; ``start``/``stop``/context manager/``url``), a queue of
injected faults (``fail_next``/``delay_next``/``clear_faults`` plus per-fake drop helpers)
and the request log (``requests``/``writes``, ``count``, ``clear_log``).

What each provider answers (headers, error bodies, default fault headers) stays in the fake
itself, through these hooks:

* ``_handler_class()`` — the request handler class to serve with;
* ``_request_paths(record)`` — the strings ``count(path_regex=...)`` searches;
* ``_clear_extra_log()`` — forget any extra per-fake logs on ``clear_log``;
* ``_before_stop()`` — called first thing in ``stop`` (e.g. to cut delays short);
* ``_fail_defaults(status, headers, body)`` — what ``fail_next`` stores when headers/body
  are left out (``None`` may be kept to be resolved when the fault fires);
* ``_url_suffix`` — appended to ``http://127.0.0.1:PORT`` in ``url``.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class FaultRule:
    """One armed fault: ``kind`` is ``"fail"``, ``"delay"`` or ``"drop"``."""

    kind: str
    method: str | None  # upper-case, None matches any
    pattern: re.Pattern[str]
    times: int
    status: int = 0
    headers: dict[str, str] | None = None
    body: Any = None
    seconds: float = 0.0
    reason: str | None = None


@dataclass
class Chaos:
    """Random trouble for a fake's answers, seeded so a run can be replayed.

    Each request draws once: ``slow`` (answered after ``slow_seconds``), ``fail`` (a 502, not
    carried out), ``fail_after`` (carried out, then answered 502: the ambiguous case),
    ``rate_limit`` (a 429 with ``Retry-After``, not carried out), or nothing. ``counts`` says
    how often each happened. ``paths`` limits it to matching request paths.
    """

    seed: int = 0
    slow: float = 0.0
    fail: float = 0.0
    fail_after: float = 0.0
    rate_limit: float = 0.0
    slow_seconds: tuple[float, float] = (0.05, 0.4)
    retry_after: int = 1
    paths: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self, path: str) -> tuple[str | None, float]:
        """``(kind, seconds)`` for one request; kind None means a normal answer."""
        if self.paths and not re.search(self.paths, path):
            return None, 0.0
        with self._lock:
            x = self._rng.random()
            wait = self._rng.uniform(*self.slow_seconds)
            for kind in ("slow", "fail", "fail_after", "rate_limit"):
                p = float(getattr(self, kind))
                if x < p:
                    self.counts[kind] += 1
                    return kind, wait
                x -= p
        return None, 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: Any


class FakeHandler(BaseHTTPRequestHandler):
    """Base request handler: HTTP/1.1, no Nagle delay, quiet log."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep test output quiet."""

    def read_body(self) -> bytes:
        """The request body (``Content-Length`` bytes; empty without one)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def write_reply(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        *,
        reason: str | None = None,
        bodyless: tuple[int, ...] = (204,),
    ) -> None:
        """Send one answer; statuses in ``bodyless`` get neither Content-Length nor body."""
        try:
            self.send_response(status, reason)
            for key, value in headers.items():
                self.send_header(key, value)
            if status not in bodyless:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and status not in bodyless and self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:  # the client gave up (e.g. timed out during delay_next)
            self.close_connection = True


class FakeHTTPServer:
    """Mixin: server lifecycle, fault queue and request log for a fake API server."""

    _fake_name = "FakeHTTPServer"  # used in error messages
    _thread_name: str | None = None
    _poll_interval = 0.05
    _listen_backlog = 5  # socketserver's default request_queue_size
    _url_suffix = ""

    _lock: threading.RLock
    _server: _Server | None
    _thread: threading.Thread | None
    _faults: list[FaultRule]
    requests: list[Any]
    writes: list[str]

    def _init_http(self) -> None:
        """Call early in ``__init__`` (sets ``_lock``, the fault queue and the log)."""
        self._lock = threading.RLock()
        self._server = None
        self._thread = None
        self._faults = []
        self.requests = []
        self.writes = []

    # ------------------------------------------------------------------ hooks

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def _request_paths(self, record: Any) -> tuple[str, ...]:
        return (record.path,)

    def _clear_extra_log(self) -> None:
        pass

    def _before_stop(self) -> None:
        pass

    def _fail_defaults(
        self, status: int, headers: Mapping[str, str] | None, body: Any
    ) -> tuple[Mapping[str, str] | None, Any]:
        return headers, body

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Bind 127.0.0.1:0 and serve in a daemon thread."""
        if self._server is not None:
            return self
        server_cls = type("_Server", (_Server,), {"request_queue_size": self._listen_backlog})
        server = server_cls(("127.0.0.1", 0), self._handler_class())
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self._poll_interval},
            name=self._thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._before_stop()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:PORT`` plus ``_url_suffix``, no trailing slash)."""
        if self._server is None:
            raise RuntimeError(f"{self._fake_name} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._url_suffix}"

    # ------------------------------------------------------------------ faults

    def _arm(self, kind: str, method: str | None, path_regex: str, times: int, **kw: Any) -> None:
        with self._lock:
            self._faults.append(
                FaultRule(
                    kind,
                    None if method in (None, "*") else method.upper(),
                    re.compile(path_regex),
                    times,
                    **kw,
                )
            )

    def fail_next(
        self,
        method: str | None,
        path_regex: str,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` instead.

        ``method`` None/"*" matches any; ``path_regex`` is searched in the request path (with
        its query). ``body`` may be a dict/list (JSON), str or bytes. Left out, headers and body
        are the provider's usual ones for the status (see the fake's ``_fail_defaults``).
        """
        self._arm_fail(method, path_regex, status, headers, body, times)

    def _arm_fail(
        self,
        method: str | None,
        path_regex: str,
        status: int,
        headers: Mapping[str, str] | None,
        body: Any,
        times: int,
        reason: str | None = None,
    ) -> None:
        headers, body = self._fail_defaults(status, headers, body)
        self._arm(
            "fail",
            method,
            path_regex,
            times,
            status=status,
            headers=None if headers is None else dict(headers),
            body=body,
            reason=reason,
        )

    def delay_next(
        self, method: str | None, path_regex: str, seconds: float, times: int = 1
    ) -> None:
        """Sleep ``seconds`` before handling the next ``times`` matching requests.

        ``method`` None/"*" matches any; ``path_regex`` is searched in the request path. The
        request is still processed after the sleep, as on a slow server: a client that timed
        out may find its write applied anyway.
        """
        self._arm("delay", method, path_regex, times, seconds=seconds)

    def _arm_drop(self, method: str | None, path_regex: str, times: int) -> None:
        self._arm("drop", method, path_regex, times)

    def clear_faults(self) -> None:
        """Forget injected faults and delays that have not fired yet."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, kinds: set[str], method: str, *targets: str) -> FaultRule | None:
        """First armed fault of one of ``kinds`` matching the request (consumes one use)."""
        with self._lock:
            for rule in self._faults:
                if rule.kind not in kinds or rule.method not in (None, method):
                    continue
                if not any(rule.pattern.search(t) for t in targets):
                    continue
                rule.times -= 1
                if rule.times <= 0:
                    self._faults.remove(rule)
                return rule
            return None

    # ------------------------------------------------------------------ request log

    def _count(self, method: str | None, path_regex: str | None, status: int | None) -> int:
        with self._lock:
            pat = re.compile(path_regex) if path_regex else None
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (pat is None or any(pat.search(p) for p in self._request_paths(r)))
                and (status is None or r.status == status)
            )

    def count(self, method: str | None = None, path_regex: str | None = None) -> int:
        """How many recorded requests match ``method`` and ``path_regex`` (re.search)."""
        return self._count(method, path_regex, None)

    def clear_log(self) -> None:
        """Forget recorded requests and writes (state is kept)."""
        with self._lock:
            self.requests.clear()
            self.writes.clear()
            self._clear_extra_log()
