"""One daemon thread running a loop until stopped: the shape shared by the periodic sweep and
the inbox pruner (the lease heartbeat shares only :func:`wait_on`)."""

from __future__ import annotations

import threading


def wait_on(event: threading.Event, timeout: float) -> bool:
    """The real wait of the background loops: True when ``event`` was set (stop asked)."""
    return event.wait(timeout)


class BackgroundLoop:
    """:meth:`start` runs :meth:`run_forever` in a daemon thread; :meth:`stop` asks it to end.

    Subclasses implement :meth:`run_forever`, which must return once ``self._stop`` is set.
    """

    thread_name = "bugbar-background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_forever(self) -> None:
        """The loop; returns when :attr:`_stop` is set."""
        raise NotImplementedError

    def start(self) -> threading.Thread:
        """Start the thread unless it runs already (returns at once)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run_forever, name=self.thread_name,
                                            daemon=True)
            self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Ask the loop to stop and wait up to ``timeout``; True if the thread has ended."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()
