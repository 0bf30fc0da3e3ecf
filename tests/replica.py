"""Run ``bugbar serve`` as a test or benchmark replica: ``python -m tests.replica serve …``.

The real command (``bot.cli.main``) with two test knobs, read from the environment, so that a
replica can be driven quickly against a fake tracker:

* ``BUGBAR_TEST_LEASE`` / ``BUGBAR_TEST_POLL`` — the workers' lease and idle poll, in seconds
  (the server's defaults are 300 s and 1 s);
* ``BUGBAR_TEST_UNPACED=1`` — writes are not paced (GitHub's 1 write/s is the default).
"""

from __future__ import annotations

import functools
import os
import sys


def main(argv: list[str]) -> int:
    """Apply the knobs, then run the ``bugbar`` command line."""
    import bot.server as server

    lease = os.environ.get("BUGBAR_TEST_LEASE")
    poll = os.environ.get("BUGBAR_TEST_POLL")
    knobs: dict[str, float] = {}
    if lease:
        knobs["lease_seconds"] = float(lease)
    if poll:
        knobs["poll_seconds"] = float(poll)
    if knobs:
        server.ServerConfig = functools.partial(server.ServerConfig, **knobs)  # type: ignore[misc,assignment]
    if os.environ.get("BUGBAR_TEST_UNPACED") == "1":
        import bot.providers.retry as retry

        retry.WritePacer = functools.partial(retry.WritePacer, 0.0)  # type: ignore[misc,assignment]
    from bot.cli import main as bugbar

    return bugbar(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
