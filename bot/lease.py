"""Leases that heartbeat: who owns a claim, whether that owner is alive, and keeping it held.

A claim (a webhook delivery, a sweep checkpoint) is leased for a short time and renewed every
third of it while its holder works, so a holder that dies lets go within one lease, and one
that is merely slow keeps it. Owner ids are ``host:pid:start:n``: ``start`` is the process's
start time (``/proc``), so a restarted server that got the same pid (pid 1 in a container)
still recognises its predecessor's claims as dead.

While a claim is held, :func:`held` marks the current thread as working under it, and
:func:`ensure_held` (called before every tracker write) raises :class:`LeaseLost` once the
heartbeat found the lease gone: another worker may be handling the same delivery by then, and
it will reach the same decision and find the same marked comment, so stopping is what keeps
one outcome.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator

from bot.background import wait_on

__all__ = [
    "Heartbeat",
    "LeaseLost",
    "ensure_held",
    "held",
    "is_alive",
    "owner_prefix",
]

log = logging.getLogger("bugbar.lease")


class LeaseLost(Exception):
    """The lease this work runs under ended; someone else may be doing it now."""


def _start_ticks(pid: int) -> str | None:
    """Field 22 of ``/proc/PID/stat`` (start time in clock ticks since boot), if readable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = raw.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


_TOKEN = _start_ticks(os.getpid()) or secrets.token_hex(4)


def owner_prefix() -> str:
    """``host:pid:start`` for this process; append ``:n`` per worker."""
    return f"{socket.gethostname()}:{os.getpid()}:{_TOKEN}"


def is_alive(owner: str) -> bool:
    """Is the process named by ``owner`` (``host:pid:start:…``) still running?

    Only answers "dead" when sure: another host, or an id in another format, counts as alive
    (its lease still runs out by itself).
    """
    parts = owner.split(":")
    if len(parts) < 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return True
    pid, token = int(parts[1]), parts[2]
    if pid == os.getpid():
        return token == _TOKEN
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to someone else
    ticks = _start_ticks(pid)
    return ticks is None or ticks == token


_current: contextvars.ContextVar[Heartbeat | None] = contextvars.ContextVar(
    "bugbar_lease", default=None)


@contextlib.contextmanager
def held(beat: Heartbeat) -> Iterator[Heartbeat]:
    """Run the block as work under ``beat``'s lease (see :func:`ensure_held`)."""
    token = _current.set(beat)
    try:
        yield beat
    finally:
        _current.reset(token)


def ensure_held() -> None:
    """Raise :class:`LeaseLost` if the current work's lease is gone (no-op outside a lease)."""
    beat = _current.get()
    if beat is not None and beat.lost:
        raise LeaseLost(f"lease lost: {beat.name}")


class Heartbeat:
    """Calls ``renew()`` every ``interval`` seconds in a thread until stopped.

    ``renew`` returns False when the lease is gone; the heartbeat then marks itself
    :attr:`lost` and stops. An exception from ``renew`` (the store busy) is logged and retried
    at the next beat: the lease is still ours until it runs out. ``wait(stop_event, timeout)``
    is injectable; tests call :meth:`beat` directly instead of starting the thread.
    """

    def __init__(self, name: str, renew: Callable[[], bool], interval: float, *,
                 wait: Callable[[threading.Event, float], object] = wait_on) -> None:
        self.name = name
        self._renew = renew
        self.interval = interval
        self._wait = wait
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False
        self.beats = 0

    def beat(self) -> bool:
        """Renew once; False (and :attr:`lost`) when the lease is gone."""
        if self.lost:
            return False
        try:
            ok = self._renew()
        except Exception:
            log.warning("lease renewal failed; will retry", extra={"lease": self.name},
                        exc_info=True)
            return True
        self.beats += 1
        if not ok:
            self.lost = True
            log.warning("lease lost", extra={"lease": self.name})
        return ok

    def _run(self) -> None:
        while True:
            self._wait(self._stop, self.interval)
            if self._stop.is_set() or not self.beat():
                return

    def start(self) -> Heartbeat:
        """Beat in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (waits for the thread)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._thread = None

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
