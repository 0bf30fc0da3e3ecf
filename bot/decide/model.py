"""Value types shared by the decision core and everything that calls it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """SDL bug bar levels, ordered so that ``max`` gives the most severe."""

    LOW = 1
    MODERATE = 2
    IMPORTANT = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lower-case name used in labels, JSON and YAML."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parse ``"important"`` (any case); raises ``ValueError`` naming the valid levels."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            valid = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r}; valid: {valid}") from None


CATEGORY_IDS: tuple[str, ...] = (
    "data-poisoning",
    "model-stealing",
    "model-inversion",
    "physical-adversarial-example",
    "ml-supply-chain",
    "malicious-ml-provider",
    "neural-net-reprogramming",
    "adversarial-perturbation",
    "membership-inference",
)
"""The nine fixed threat ids of the SDL AI/ML bug bar (tools outside the project use them)."""

ROUTES: tuple[str, ...] = ("ssirp", "security", "abuse", "privacy")


class Access(enum.IntEnum):
    """A person's rights on the project, mapped from each tracker's own levels.

    GitHub: none/read/triage/write(push)/maintain/admin. GitLab: Guest(10) → READ,
    Reporter(20) → TRIAGE, Developer(30) → WRITE, Maintainer(40) → MAINTAIN, Owner(50) → ADMIN.
    Jira: EDIT_ISSUES permission → TRIAGE, BROWSE only → READ.
    """

    NONE = 0
    READ = 1
    TRIAGE = 2
    WRITE = 3
    MAINTAIN = 4
    ADMIN = 5


@dataclass(frozen=True)
class Issue:
    """An issue as the core sees it: text and the tracker's labels, nothing else."""

    id: str
    title: str
    body: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Threat:
    """One matched category with its score, suggested severity and the evidence behind it."""

    category: str
    score: float
    severity: Severity
    evidence: tuple[str, ...]
    cues: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``threats[]`` element of the classify JSON Lines contract."""
        return {
            "category": self.category,
            "score": round(self.score, 3),
            "severity": self.severity.label,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class Decision:
    """What the core concluded about one issue."""

    issue_id: str
    threats: tuple[Threat, ...]
    severity: Severity | None
    routes: tuple[str, ...]
    rules_version: str
    notes: tuple[str, ...] = ()
    """Human-readable remarks (e.g. 'looks like a traditional security bug')."""
    overrides: dict[str, str] = field(default_factory=dict)
    """Human decisions that shaped this one (category/severity/route/not-a-threat)."""

    @property
    def is_threat(self) -> bool:
        """True when at least one AI/ML threat category matched."""
        return bool(self.threats)

    @property
    def top(self) -> Threat | None:
        """The best-scoring threat, if any."""
        return self.threats[0] if self.threats else None

    def to_json(self) -> dict[str, Any]:
        """One line of ``bugbar classify --format jsonl`` (a contract: README, Command line)."""
        return {
            "id": self.issue_id,
            "threats": [t.to_json() for t in self.threats],
            "severity": self.severity.label if self.severity else None,
            "route": list(self.routes),
        }
