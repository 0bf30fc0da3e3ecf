"""Gates read the author's prose only: code, quotes and template comments do not count."""

from __future__ import annotations

import pytest

from bot.decide.classify import Classifier
from bot.decide.model import Issue
from bot.decide.prose import prose_only
from bot.decide.rules import RuleSet


@pytest.mark.parametrize(
    ("text", "kept", "dropped"),
    [
        ("say hi\n```yaml\non: pull_request_target\n```\nbye", "bye", "pull_request_target"),
        ("a\n~~~\nhow to\n~~~\nb", "b", "how to"),
        ("a\n> implement this\nb", "b", "implement"),
        ("a <!-- describe how to reproduce --> b", "b", "describe"),
        ("a\n<!-- multi\nline how to -->\nb", "b", "line how"),
        ("run `how to` now", "now", "how to"),
        ("```\nunclosed how to", "", "unclosed"),
    ],
    ids=["fence", "tilde", "quote", "comment", "multiline-comment", "inline", "unclosed"],
)
def test_prose_only(text: str, kept: str, dropped: str) -> None:
    out = prose_only(text)
    assert kept in out and dropped not in out


def test_plain_text_untouched() -> None:
    text = "Plain report without markup."
    assert prose_only(text) is text


def test_research_gate_ignores_quoted_prompt(min_ruleset: RuleSet) -> None:
    c = Classifier(min_ruleset)
    quoted = "An attacker ran model extraction on our API.\n> how to implement a tutorial"
    prose = "An attacker ran model extraction on our API. How to implement a tutorial?"
    assert "research" not in c.explain(Issue("a", "", quoted))["gates"]
    assert "research" in c.explain(Issue("b", "", prose))["gates"]


def test_split_prose_keeps_everything_once() -> None:
    from bot.decide.prose import split_prose

    text = ("Intro how to\n```py\ntorch.load(x)\n```\n> quoted implement\n"
            "see `pickle.loads` <!-- template -->\nend")
    prose, rest = split_prose(text)
    assert "torch.load(x)" in rest and "quoted implement" in rest
    assert "pickle.loads" in rest and "template" in rest
    assert "Intro how to" in prose and "end" in prose
    assert "torch" not in prose and "template" not in prose
    assert split_prose("plain text") == ("plain text", "")
