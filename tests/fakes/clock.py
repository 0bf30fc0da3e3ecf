"""A settable clock for the store and the server: leases, retry delays and retention windows
expire when a test says so, without sleeping."""

from __future__ import annotations


class FakeClock:
    """``clock()`` returns :attr:`now`; :meth:`advance` moves it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
