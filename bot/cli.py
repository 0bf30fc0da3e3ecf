"""Command-line entry point (filled in as features land)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``bugbar`` command."""
    print("bugbar: not yet wired", file=sys.stderr)
    return 2
