"""The one retry layer every tracker adapter shares (tenacity), and the write pacer.

Each provider supplies a ``classify(exc) -> Failure`` hook that reads its own error types and
headers; everything else (how long to wait, when to stop, what to raise) is decided here, so
GitHub, GitLab and Jira behave the same way:

* ``Failure.retry_after(s)`` — the server said how long to wait (``Retry-After``): wait exactly
  that, no jitter.
* ``Failure.until(epoch)`` — a primary rate limit with a known reset time
  (``X-RateLimit-Reset``): wait until then plus ``policy.reset_margin``.
* ``Failure.backoff(floor=…)`` — transient (5xx, timeout, connection error): exponential back-off
  from ``policy.base_backoff`` capped at ``policy.max_backoff``; with a ``floor`` (a secondary rate
  limit without ``Retry-After``: "wait at least one minute, then back off exponentially") the
  waits are ``floor, 2·floor, 4·floor …``.
* ``Failure.give_up()`` — anything else (other 4xx): raised at once, never retried.

Stopping: after ``policy.max_attempts`` attempts, or when the next wait would take the time
spent sleeping in this call past ``policy.max_wait``. A rate-limit failure that stops this way
raises :class:`RateLimited` (with the time it is worth trying again) so a caller such as the
backlog sweep can checkpoint and stop; any other failure re-raises the provider's own error.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import tenacity

__all__ = [
    "Action",
    "ApiMetrics",
    "Failure",
    "RateLimited",
    "RetryPolicy",
    "SettleGuard",
    "WritePacer",
    "call_with_retry",
    "maybe_delivered",
]

log = logging.getLogger("bugbar.retry")

T = TypeVar("T")


class ApiMetrics(Protocol):
    """What the adapters report to (``bot.metrics.Metrics`` satisfies it)."""

    def api_call(self, provider: str, method: str, status: int | str) -> None:
        """Count one API request and its outcome (HTTP status, ``timeout`` or ``error``)."""
        ...

    def rate_limit(self, provider: str, remaining: float) -> None:
        """Record the remaining request budget the provider last reported."""
        ...


class Action(enum.Enum):
    """What to do about a failed attempt."""

    RETRY_AFTER = "retry_after"
    BACKOFF = "backoff"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Failure:
    """A provider's verdict on one failed attempt. Build it with the class methods."""

    action: Action
    reason: str
    seconds: float = 0.0
    """RETRY_AFTER: wait this long (when ``reset_at`` is None)."""
    reset_at: float | None = None
    """RETRY_AFTER: wait until this Unix time instead (primary rate-limit reset)."""
    floor: float = 0.0
    """BACKOFF: minimum first wait; doubles on each further failure of the call."""
    rate_limited: bool = False
    """The server is limiting us: stopping raises :class:`RateLimited`, not the error."""

    @classmethod
    def retry_after(cls, seconds: float, *, reason: str, rate_limited: bool = True) -> Failure:
        """The server named the wait (``Retry-After``)."""
        return cls(Action.RETRY_AFTER, reason, seconds=max(0.0, seconds),
                   rate_limited=rate_limited)

    @classmethod
    def until(cls, reset_at: float, *, reason: str) -> Failure:
        """A rate limit that lifts at ``reset_at`` (Unix seconds)."""
        return cls(Action.RETRY_AFTER, reason, reset_at=reset_at, rate_limited=True)

    @classmethod
    def backoff(cls, *, reason: str, floor: float = 0.0, rate_limited: bool = False) -> Failure:
        """Transient: retry with exponential back-off (starting at ``floor`` if given)."""
        return cls(Action.BACKOFF, reason, floor=floor, rate_limited=rate_limited)

    @classmethod
    def give_up(cls, reason: str) -> Failure:
        """Permanent: raise the error now."""
        return cls(Action.GIVE_UP, reason)


class RateLimited(Exception):
    """The provider is rate limiting us for longer than the policy lets one call wait.

    ``reset_at`` is the Unix time from which it is worth trying again. Callers that loop (the
    sweep) checkpoint and stop; the webhook worker lets the delivery be retried later.
    """

    def __init__(self, reset_at: float, *, what: str, reason: str) -> None:
        super().__init__(f"{what}: rate limited ({reason}); retry after {reset_at:.0f}")
        self.reset_at = reset_at
        self.what = what
        self.reason = reason


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. ``sleep``, ``clock`` (Unix seconds) and ``rand`` are injectable."""

    max_attempts: int = 5
    base_backoff: float = 1.0
    max_backoff: float = 60.0
    max_wait: float = 300.0
    """Most seconds one call may spend sleeping between attempts, in total."""
    reset_margin: float = 1.0
    """Added to waits until a rate-limit reset: the header has whole seconds and clocks skew."""
    jitter: float = 0.1
    """Back-off waits are stretched by up to this fraction (server-given waits never are)."""
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.time, compare=False)
    rand: Callable[[], float] = field(default=random.random, compare=False)
    settle: float = 10.0
    """After a POST that may have been carried out despite the error (timeout, dropped
    connection, 5xx), wait this long before looking for its result, so a request still in
    flight on the server lands first and the retry does not create a second comment. Never
    after a definite rejection (any 4xx, rate limits included): nothing is in flight then."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_backoff, self.max_backoff, self.max_wait, self.jitter) < 0:
            raise ValueError("back-off, wait and jitter values must not be negative")


class _CallState:
    """Per-call bookkeeping shared by the tenacity callbacks."""

    def __init__(self) -> None:
        self.failure: Failure | None = None
        self.floored = 0
        self.stopped_rate_limited: float | None = None


def _wait_for(policy: RetryPolicy, failure: Failure, attempt: int, state: _CallState) -> float:
    if failure.action is Action.RETRY_AFTER:
        if failure.reset_at is not None:
            return max(0.0, failure.reset_at - policy.clock()) + policy.reset_margin
        return failure.seconds
    wait: float
    if failure.floor > 0:
        state.floored += 1
        wait = failure.floor * 2 ** (state.floored - 1)
    else:
        wait = min(policy.max_backoff, policy.base_backoff * 2 ** (attempt - 1))
    return wait * (1.0 + policy.jitter * policy.rand())


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    classify: Callable[[BaseException], Failure],
    *,
    what: str,
) -> T:
    """Call ``fn`` until it succeeds, ``classify`` says give up, or the policy says stop.

    ``what`` names the operation in logs and errors (no secrets, no issue text). Raises the
    last error, or :class:`RateLimited` when a rate limit outlasts the policy.
    """
    state = _CallState()

    def should_retry(exc: BaseException) -> bool:
        state.failure = classify(exc)
        return state.failure.action is not Action.GIVE_UP

    def wait(rs: tenacity.RetryCallState) -> float:
        assert state.failure is not None
        return _wait_for(policy, state.failure, rs.attempt_number, state)

    def stop(rs: tenacity.RetryCallState) -> bool:
        assert state.failure is not None
        over_attempts = rs.attempt_number >= policy.max_attempts
        over_budget = rs.idle_for + rs.upcoming_sleep > policy.max_wait
        if not (over_attempts or over_budget):
            return False
        if state.failure.rate_limited:
            state.stopped_rate_limited = policy.clock() + rs.upcoming_sleep
        log.warning(
            "giving up",
            extra={"what": what, "attempts": rs.attempt_number, "reason": state.failure.reason,
                   "next_wait": round(rs.upcoming_sleep, 3), "waited": round(rs.idle_for, 3)},
        )
        return True

    def before_sleep(rs: tenacity.RetryCallState) -> None:
        assert state.failure is not None
        log.info(
            "retrying",
            extra={"what": what, "attempt": rs.attempt_number, "reason": state.failure.reason,
                   "wait": round(rs.upcoming_sleep, 3)},
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(should_retry),
        wait=wait,
        stop=stop,
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except Exception as exc:
        if state.stopped_rate_limited is not None and state.failure is not None:
            raise RateLimited(state.stopped_rate_limited, what=what,
                              reason=state.failure.reason) from exc
        raise


class WritePacer:
    """Keeps mutating requests at least ``interval`` seconds apart (thread-safe).

    GitHub asks integrators to pause at least one second between POST/PATCH/PUT/DELETE requests
    to stay clear of the content-creation secondary limit:
    https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api
    Slots are reserved under a lock, so concurrent writers queue instead of bursting.
    """

    def __init__(
        self,
        interval: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next write may start, and claim that slot."""
        with self._lock:
            now = self._clock()
            start = now if self._next is None else max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


def maybe_delivered(exc: BaseException) -> bool:
    """Could the request have been carried out although we saw an error?

    Yes after a 5xx, a timeout while waiting for the answer, or a connection reset mid-request.
    No after any 4xx (the server read the request and refused it: 403/429 rate limits too), and
    no when the connection was never made (refused, or timed out while connecting).
    """
    for attr in ("status", "response_code", "status_code"):
        status = getattr(exc, attr, None)
        if isinstance(status, int):
            return status >= 500
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:  # requests wraps urllib3 wraps socket
        seen.add(id(cause))
        name = type(cause).__name__
        if isinstance(cause, ConnectionRefusedError) or name in (
                "ConnectTimeout", "NewConnectionError", "NameResolutionError"):
            return False
        nested = [a for a in getattr(cause, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException):
            nested.append(reason)
        if "NewConnectionError" in str(cause) or "Connection refused" in str(cause):
            return False
        cause = nested[0] if nested else (cause.__cause__ or cause.__context__)
    return isinstance(exc, OSError) or type(exc).__module__.startswith("requests")


class SettleGuard:
    """Bookkeeping for one non-idempotent POST retried by :func:`call_with_retry`.

    ``failed(exc)`` after each failed attempt; ``before_retry()`` at the start of each retry
    says whether to look for the result of an earlier attempt, and first waits
    ``policy.settle`` if (and only if) the attempt just before was ambiguous. A definite
    rejection (a 4xx such as a secondary rate limit) costs only its own retry-after/back-off
    wait; an ambiguous attempt further back had its settle wait already.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.last_ambiguous = False
        self.ever_ambiguous = False

    def failed(self, exc: BaseException) -> None:
        """Record a failed attempt."""
        self.last_ambiguous = maybe_delivered(exc)
        self.ever_ambiguous = self.ever_ambiguous or self.last_ambiguous

    def before_retry(self) -> bool:
        """Settle if needed; True when an earlier attempt may have been carried out."""
        if self.last_ambiguous:
            self.policy.sleep(self.policy.settle)
            self.last_ambiguous = False
        return self.ever_ambiguous
