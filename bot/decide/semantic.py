"""Combine the rules' decision with the semantic model's class probabilities (pure).

Two behaviours, each switched by a threshold chosen by cross-validation on the training
examples (README, Triage quality): *flag* an issue the rules are silent on when the model is
confident it is a report of one category, and *hold back* a rule match the model strongly
reads as not a threat. The model's probabilities come in as plain numbers; loading weights and
embedding text happen outside the decision core (bot/semantic/).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.decide.model import CATEGORY_IDS, Issue

NOT_A_THREAT = "none"


class SemanticScorer(Protocol):
    """Anything that gives class probabilities (the nine categories and ``none``) for an issue."""

    def scores(self, issue: Issue) -> Mapping[str, float]:
        """Probabilities summing to 1 over ``CATEGORY_IDS`` and ``none``."""


@dataclass(frozen=True)
class SemanticPolicy:
    """When the model may act. ``None`` switches a behaviour off."""

    flag_at: float | None = 0.5
    """Flag where the rules are silent when the top category's probability reaches this."""
    hold_at: float | None = None
    """Hold back a rule match when the probability of not-a-threat reaches this."""
    flag_when_gated: bool = False
    """Also flag when a research/negation gate held the rules back."""
    flag_needs_evidence: bool = False
    """Flag only when the rules saw something (a weak signal of any category, or a severity
    cue such as anonymous access or a production system) even though nothing fired."""
    hold_weak_only: float | None = None
    """Hold back only a marginal rule match: one whose evidence is at most this many times
    the firing threshold (None: any match)."""
    flag_min_words: int = 0
    """Flag only an issue of at least this many words: a terse text ("Model endpoint",
    "details in the private report") gives the model nothing to compare, and it is then
    sure of the wrong things."""
    flag_at_other: float | None = None
    """``flag_at`` for issues not written in English (None: ``flag_at``). The model learned
    mostly from English: elsewhere its probabilities are flatter."""

    flag_at_gated: float | None = None
    """Where ``flag_when_gated`` is off: flag an issue a gate held back when the model is at
    least this sure (None: never). Gate phrases also occur in real reports ("is there a way",
    "the tutorial"); a confident model overrides them."""

    def flag_threshold(self, english: bool, gated: bool = False) -> float | None:
        """The flag threshold for an issue in English or another language, held by a gate
        or not (None: no flag)."""
        if self.flag_at is None:
            return None
        at = self.flag_at if english or self.flag_at_other is None else self.flag_at_other
        if not gated or self.flag_when_gated:
            return at
        return None if self.flag_at_gated is None else max(at, self.flag_at_gated)


CHOSEN_POLICY = SemanticPolicy(flag_at=0.7, hold_at=0.98, flag_at_other=0.5,
                               flag_at_gated=0.9)
"""The cross-validation's choice (``python -m bot.semantic.cv``, README): where the rules are
silent, flag at 0.7 (0.5 for issues not in English; 0.9 where a gate held the rules back);
hold back a rule match the model reads as not a threat at 0.98, unless a person's label or a
stated finding backs it."""


@dataclass(frozen=True)
class RuleView:
    """What the rules said about one issue, as :func:`combine` reads it."""

    fired: tuple[str, ...]
    """The categories the rules matched, best first."""
    gated: bool = False
    traditional: bool = False
    evidence: bool = True
    strength: float = math.inf
    """The rules' evidence for their top category over the firing threshold."""
    protected: bool = False
    """The match rests on a threat label (a person's word)."""
    english: bool = True
    """The issue reads as English (``bot.decide.lang``)."""
    words: int = 1_000_000
    """Words in the title and body (``bot.decide.lang.word_count``)."""
    stated: bool = False
    """The text states a finding or an incident (the rules' vulnerability or incident
    phrasing; a security label alone does not): the model never holds such a match back."""


@dataclass(frozen=True)
class SemanticVerdict:
    """What the model does to the rules' decision: ``keep``, ``flag`` or ``hold``."""

    action: str
    category: str | None = None
    probability: float = 0.0


KEEP = SemanticVerdict("keep")


def top_category(probs: Mapping[str, float]) -> tuple[str, float]:
    """The most probable class (ties broken by category order, ``none`` last)."""
    best, best_p = NOT_A_THREAT, -1.0
    for cat in (*CATEGORY_IDS, NOT_A_THREAT):
        p = probs.get(cat, 0.0)
        if p > best_p:
            best, best_p = cat, p
    return best, best_p


def combine(fired: Sequence[str], probs: Mapping[str, float], policy: SemanticPolicy,
            gated: bool = False, protected: bool = False,
            traditional: bool = False, evidence: bool = True,
            strength: float = float("inf"), english: bool = True,
            stated: bool = False, words: int = 1_000_000) -> SemanticVerdict:
    """Decide what the model changes.

    ``fired``: the categories the rules matched (best first); ``gated``: a research/negation
    gate scaled the rules down; ``protected``: the rules' decision rests on something a person
    said (a threat label), which the model never holds back; ``traditional``: the rules
    recognised a traditional security bug (XSS, RCE in a web handler...), which the model
    never turns into an AI/ML threat — such bugs in ML software read like supply-chain
    reports to an embedding, and they belong to the normal security process; ``evidence``: the
    rules saw a weak signal or a severity cue (see ``SemanticPolicy.flag_needs_evidence``);
    ``strength``: the rules' evidence for their top category over the firing threshold;
    ``english``: the issue reads as English (``SemanticPolicy.flag_at_other``); ``stated``:
    the text states a finding or an incident, which the model never holds back — it reads
    style, and an advisory for a malicious model file reads like a traditional CVE to it;
    ``words``: the issue's length in words (``SemanticPolicy.flag_min_words``).
    """
    return combine_view(RuleView(tuple(fired), gated=gated, traditional=traditional,
                                 evidence=evidence, strength=strength, protected=protected,
                                 english=english, words=words, stated=stated), probs, policy)


def no_hold_reason(view: RuleView, policy: SemanticPolicy) -> str | None:
    """Why the model may not hold back a rule match on this issue (None: it may, at
    ``policy.hold_at``)."""
    if policy.hold_at is None:
        return "off"
    if view.protected:
        return "a threat label"
    if view.stated:
        return "a stated finding"
    if policy.hold_weak_only is not None and view.strength > policy.hold_weak_only:
        return "a strong rule match"
    return None


def no_flag_reason(view: RuleView, policy: SemanticPolicy) -> str | None:
    """Why the model may not flag this issue where the rules are silent (None: it may, at
    ``policy.flag_threshold``)."""
    if view.traditional:
        return "a traditional security bug"
    if policy.flag_at is None:
        return "off"
    if policy.flag_threshold(view.english, view.gated) is None:
        return "a gate held the rules"
    if policy.flag_needs_evidence and not view.evidence:
        return "the rules saw nothing"
    if view.words < policy.flag_min_words:
        return "too short"
    return None


def combine_view(view: RuleView, probs: Mapping[str, float],
                 policy: SemanticPolicy) -> SemanticVerdict:
    """:func:`combine` for the rules' view of one issue."""
    if view.fired:
        p_none = probs.get(NOT_A_THREAT, 0.0)
        if (no_hold_reason(view, policy) is None and policy.hold_at is not None
                and p_none >= policy.hold_at):
            return SemanticVerdict("hold", NOT_A_THREAT, p_none)
        return KEEP
    flag_at = policy.flag_threshold(view.english, view.gated)
    if no_flag_reason(view, policy) is not None or flag_at is None:
        return KEEP
    cat, p = top_category(probs)
    if cat != NOT_A_THREAT and p >= flag_at:
        return SemanticVerdict("flag", cat, p)
    return KEEP


def evidence(category: str, probability: float) -> str:
    """The evidence string of a semantic flag: says what it is, never quotes the issue."""
    return f"similar to known reports of {category}, {probability:.2f}"


def hold_note(probability: float) -> str:
    """The note of a held-back rule match."""
    return (f"The rules matched, but the text is closest to known non-threat issues "
            f"({probability:.2f}); held back.")


def thresholds_line(sem: Mapping[str, Any]) -> str:
    """One line for ``explain`` from its ``semantic`` part: where the model may flag or hold
    this issue, and why."""
    flag = sem["flag_threshold"]
    if flag is None:
        flag_part = f"flags nothing here ({sem['no_flag_because']})"
    else:
        why = ", ".join(w for w, on in (("not in English", not sem["english"]),
                                        ("a gate held the rules", sem["gated"])) if on)
        flag_part = f"flags where the rules are silent at {flag:g}" + (f" ({why})" if why else "")
    hold = sem["hold_threshold"]
    if hold is None:
        hold_part = f"holds no rule match back ({sem['no_hold_because']})"
    else:
        hold_part = f"holds a rule match back at not a threat {hold:g}"
    return f"{flag_part}; {hold_part}"
