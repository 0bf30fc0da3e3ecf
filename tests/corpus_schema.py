"""What the labelled JSON Lines sets share: the seed table and a strict loader.

Used by the shape tests of the own corpus, the held-out sets and the training examples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# The nine fixed category ids and their seed severity ranges (the bug bar's table).
SEED_RANGES = {
    "data-poisoning": ("important", "critical"),
    "model-stealing": ("important", "critical"),
    "model-inversion": ("critical", "critical"),
    "physical-adversarial-example": ("critical", "critical"),
    "ml-supply-chain": ("critical", "critical"),
    "malicious-ml-provider": ("critical", "critical"),
    "neural-net-reprogramming": ("important", "critical"),
    "adversarial-perturbation": ("important", "critical"),
    "membership-inference": ("moderate", "critical"),
}
LEVELS = ["low", "moderate", "important", "critical"]


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` as an object; a blank or unparsable line fails the test."""
    items = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            assert line.strip(), f"{path.name}: line {n} is blank"
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:  # pragma: no cover - failure path
                pytest.fail(f"{path.name}: line {n} does not parse: {exc}")
    return items
