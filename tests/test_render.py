"""The bot's comment: golden files, the hidden marker, and no echo of issue text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.decide.classify import Classifier
from bot.decide.model import Issue
from bot.decide.render import parse_marker, render_comment, render_marker
from bot.decide.rules import RuleSet

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "threat_production": Issue("1", "Model extraction through our production scoring API",
                               "An attacker trained a substitute model. Exploit: curl -X POST "
                               "https://victim.example/api?q=SECRET-PAYLOAD"),
    "threat_two_categories": Issue("2", "Membership inference and model extraction",
                                   "shadow model on the patient data; also a substitute model"),
    "no_longer_a_threat": Issue("3", "Typo in the README", ""),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(min_ruleset: RuleSet, name: str) -> None:
    decision = Classifier(min_ruleset).classify(CASES[name])
    body = render_comment(decision, min_ruleset)
    path = GOLDEN / f"comment_{name}.md"
    if os.environ.get("BUGBAR_UPDATE_GOLDEN"):
        path.write_text(body)
    assert body == path.read_text(), f"regenerate with BUGBAR_UPDATE_GOLDEN=1 ({path})"


def test_comment_never_quotes_the_issue(min_ruleset: RuleSet) -> None:
    issue = CASES["threat_production"]
    body = render_comment(Classifier(min_ruleset).classify(issue), min_ruleset)
    assert "SECRET-PAYLOAD" not in body and "victim.example" not in body
    assert "curl" not in body


def test_marker_roundtrip_with_overrides(min_ruleset: RuleSet) -> None:
    d = Classifier(min_ruleset).classify(Issue("1", "Model extraction", ""),
                                         {"severity": "critical", "route": "abuse"})
    marker = parse_marker("text before\n" + render_marker(d) + "\nafter")
    assert marker is not None
    assert marker.overrides == {"severity": "critical", "route": "abuse"}
    assert marker.rules_version == min_ruleset.version
    assert marker.threat is True


@pytest.mark.parametrize(
    "body",
    ["no marker here", "<!-- bugbar:v1 rules=x hash=zz -->",
     "<!-- bugbar:v1 rules=x hash=ab state=!!! -->",
     "<!-- bugbar:v1 rules=x hash=ab state=bm90IGpzb24= -->"],
    ids=["absent", "bad-hash", "bad-state-chars", "state-not-json"],
)
def test_malformed_markers(body: str) -> None:
    marker = parse_marker(body)
    assert marker is None or marker.overrides == {}


def test_marker_state_only_keeps_known_keys() -> None:
    import base64
    import json
    blob = base64.urlsafe_b64encode(json.dumps(
        {"o": {"severity": "low", "evil": "x", "route": ["list"]}, "t": 1}).encode()).decode()
    marker = parse_marker(f"<!-- bugbar:v1 rules=r hash=ab state={blob} -->")
    assert marker is not None and marker.overrides == {"severity": "low"}
