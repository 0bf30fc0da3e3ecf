"""Build the shipped head: ``python -m bot.semantic.build`` writes bot/data/semantic_head.npz.

Run it after changing a rule's examples, ``bot/data/train_*.jsonl`` or the training code; a
stale file is ignored (the head is then trained when bugbar starts, a few seconds).
"""

from __future__ import annotations

import sys

from bot.decide.rules import load_rules
from bot.semantic import examples as ex
from bot.semantic.model import SHIPPED_HEAD, VERSION, fit, shared_embedder, write_head


def main() -> int:
    """Train on the shipped examples and write the head with its digest."""
    training = ex.shipped_examples(load_rules())
    digest = ex.digest(training, VERSION)
    write_head(SHIPPED_HEAD, fit(shared_embedder(), training), digest)
    print(f"{SHIPPED_HEAD}: {len(training)} examples, digest {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
