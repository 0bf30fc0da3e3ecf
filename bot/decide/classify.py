"""Turn a match report into a decision: categories, suggested severity, routes."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from bot.decide.lang import is_english, word_count
from bot.decide.match import Matcher, MatchReport
from bot.decide.model import Decision, Issue, Severity, Threat
from bot.decide.rules import Rule, RuleSet
from bot.decide.semantic import (
    CHOSEN_POLICY,
    RuleView,
    SemanticPolicy,
    SemanticScorer,
    combine_view,
    hold_note,
    no_flag_reason,
    no_hold_reason,
)
from bot.decide.semantic import evidence as semantic_evidence

ROUTE_ORDER = ("ssirp", "security", "abuse", "privacy")
OVERRIDE_KEYS = ("category", "severity", "route", "not_a_threat")


def evidence_score(raw: float) -> float:
    """Map an unbounded evidence sum onto 0..1 (1.0 evidence ≈ 0.63): the score users see."""
    return 1.0 - math.exp(-raw)


_to_score = evidence_score


def suggest_severity(rule: Rule, cues: set[str]) -> tuple[Severity, tuple[str, ...]]:
    """Place a match inside its seed range from the cues found; returns (level, cues used).

    Start at the rule's default; a raise cue lifts to the ceiling, a lower cue holds at the
    floor; both together leave the default. The result is always inside the seed range.
    """
    low, high = rule.severity_range
    raised = tuple(c for c in rule.raise_cues if c in cues)
    lowered = tuple(c for c in rule.lower_cues if c in cues)
    level = rule.severity_default
    if raised and not lowered:
        level = high
    elif lowered and not raised:
        level = low
    return max(low, min(high, level)), raised + lowered


def decision_hash(decision: Decision) -> str:
    """A short digest of what the bot would write: changes only when the decision does."""
    key = {
        "threats": [(t.category, t.severity.label) for t in decision.threats],
        "severity": decision.severity.label if decision.severity else None,
        "routes": list(decision.routes),
        "overrides": dict(sorted(decision.overrides.items())),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


class Classifier:
    """The decision core's entry point: ``classify(issue)`` → Decision."""

    def __init__(self, ruleset: RuleSet, semantic: SemanticScorer | None = None,
                 policy: SemanticPolicy = CHOSEN_POLICY) -> None:
        self.ruleset = ruleset
        self.matcher = Matcher(ruleset)
        self.semantic = semantic
        """The embedded model beside the rules, if any (bot/semantic/ builds it)."""
        self.policy = policy

    def _routes(self, rule: Rule, severity: Severity, cues: set[str]) -> tuple[str, ...]:
        routes = rule.routes_critical if severity is Severity.CRITICAL else rule.routes_default
        exposed = any(c in cues for c in self.ruleset.settings.ssirp_requires)
        # Incident response is for critical threats to deployed systems; a critical finding in
        # research code is handled by security triage instead.
        return tuple(r if (r != "ssirp" or exposed) else "security" for r in routes)

    def _threat(self, rule: Rule, report: MatchReport, score: float) -> Threat:
        category = report.categories.get(rule.id)
        severity, used = suggest_severity(rule, report.cues)
        if not used and category is not None and all(h.kind == "label" for h in category.hits):
            # Only a label (or a person) named the category and the text gives no cue: the
            # low end of the seed range, not the rule's default.
            severity = rule.severity_range[0]
        evidence = tuple(dict.fromkeys(h.name for h in category.hits)) if category else ()
        return Threat(rule.id, score, severity, evidence, used)

    def classify(
        self, issue: Issue, overrides: Mapping[str, str] | None = None
    ) -> Decision:
        """Classify one issue; ``overrides`` are human decisions that win over the rules."""
        probs = self.semantic.scores(issue) if self.semantic is not None else None
        return self.decide(issue, self.matcher.match(issue), overrides, probs)

    def rule_view(self, report: MatchReport, threats: Sequence[Threat],
                  issue: Issue) -> RuleView:
        """What the semantic combination reads of the rules' decision (``threats``, best
        first), of their match report and of the issue's language."""
        fired = tuple(t.category for t in threats)
        text = f"{issue.title}\n{issue.body}"
        return RuleView(
            fired=fired, gated=report.factor < 1.0, traditional=bool(report.traditional),
            evidence=bool(report.categories or report.cues),
            strength=(report.categories[fired[0]].score / self.ruleset.settings.threshold
                      if fired else 0.0),
            # A threat label on the issue is a person's word: the model never holds it back.
            protected=any(h.kind == "label" for c in fired for h in report.categories[c].hits),
            english=is_english(text), words=word_count(text),
            stated=report.stated)

    def _with_semantic(
        self, issue: Issue, threats: list[Threat], report: MatchReport,
        probs: Mapping[str, float]
    ) -> tuple[list[Threat], list[str]]:
        """Let the semantic model flag where the rules are silent or hold a match back."""
        verdict = combine_view(self.rule_view(report, threats, issue), probs, self.policy)
        if verdict.action == "hold":
            return [], [hold_note(verdict.probability)]
        rule = self.ruleset.rules.get(verdict.category or "")
        if verdict.action == "flag" and rule is not None:
            severity, used = suggest_severity(rule, report.cues)
            ev = (semantic_evidence(rule.id, verdict.probability),)
            return [Threat(rule.id, verdict.probability, severity, ev, used)], []
        return threats, []

    def decide(
        self, issue: Issue, report: MatchReport, overrides: Mapping[str, str] | None = None,
        probs: Mapping[str, float] | None = None,
    ) -> Decision:
        """Build the decision from a match report (split out so explain can share the report)
        and, when the semantic model ran, its class probabilities ``probs``."""
        settings = self.ruleset.settings
        rules = self.ruleset.rules
        fired = [
            (r.score, rid) for rid, r in report.categories.items() if r.score >= settings.threshold
        ]
        fired.sort(key=lambda x: (-x[0], x[1]))
        threats = [self._threat(rules[rid], report, _to_score(score)) for score, rid in fired]
        notes: list[str] = []
        if probs is not None:
            threats, notes = self._with_semantic(issue, threats, report, probs)
        ov = {k: v for k, v in (overrides or {}).items() if k in OVERRIDE_KEYS and v}
        if ov.get("not_a_threat"):
            threats = []
            notes.append("A maintainer marked this issue as not an AI/ML threat.")
        elif ov.get("category") in rules:
            cat = ov["category"]
            matched = [t for t in threats if t.category == cat]
            base = matched[0] if matched else self._threat(rules[cat], report, 1.0)
            threats = [replace(base, score=1.0)]
        if threats and ov.get("severity") and not ov.get("not_a_threat"):
            try:
                level = Severity.parse(ov["severity"])
            except ValueError:
                level = None
            low, high = rules[threats[0].category].severity_range
            if level is not None and low <= level <= high:
                threats[0] = replace(threats[0], severity=level, cues=("set by a maintainer",))
        if not threats and report.traditional and not ov.get("not_a_threat"):
            notes.append(
                "This looks like a traditional security bug ("
                + ", ".join(report.traditional[:3])
                + "), not an AI/ML threat: use the normal security process."
            )
        severity = max((t.severity for t in threats), default=None)
        routes: list[str] = []
        for t in threats:
            for r in self._routes(rules[t.category], t.severity, report.cues):
                if r not in routes:
                    routes.append(r)
        if threats and ov.get("route"):
            routes = [ov["route"]]
        routes.sort(key=lambda r: ROUTE_ORDER.index(r) if r in ROUTE_ORDER else len(ROUTE_ORDER))
        return Decision(
            issue_id=issue.id,
            threats=tuple(threats),
            severity=severity,
            routes=tuple(routes),
            rules_version=self.ruleset.version,
            notes=tuple(notes),
            overrides=dict(ov),
        )

    def explain(self, issue: Issue) -> dict[str, Any]:
        """Why the issue matched (or did not): per category evidence, gates, cues, decision."""
        report = self.matcher.match(issue)
        probs = self.semantic.scores(issue) if self.semantic is not None else None
        decision = self.decide(issue, report, probs=probs)
        settings = self.ruleset.settings
        cats = []
        for rid, cat in sorted(report.categories.items(), key=lambda kv: -kv[1].score):
            if not cat.hits and not cat.unanchored:
                continue
            cats.append({
                "category": rid,
                # "score" is on classify's 0..1 scale; the sums behind it are kept alongside.
                "score": round(evidence_score(cat.score), 3),
                "evidence_sum": round(cat.score, 3),
                "raw": round(cat.raw, 3),
                "fired": cat.score >= settings.threshold,
                # The gates that kept an otherwise firing category quiet.
                "held_by": (list(report.held)
                            if cat.raw >= settings.threshold > cat.score else []),
                "evidence": [
                    {"signal": h.name, "kind": h.kind, "where": h.where,
                     "weight": round(h.weight, 2)}
                    for h in cat.hits
                ],
                "ignored_without_ml_context": sorted(set(cat.unanchored)),
            })
        return {
            "id": issue.id,
            "decision": decision.to_json(),
            "threshold": settings.threshold,
            "threshold_score": round(evidence_score(settings.threshold), 3),
            "gate_factor": report.factor,
            "gates": sorted(report.gates),
            "cues": sorted(report.cues),
            "confusers": report.confusers,
            "traditional": report.traditional,
            "context_labels": report.context_labels,
            "truncated": report.truncated,
            "categories": cats,
            "notes": list(decision.notes),
            "semantic": None if probs is None else self._explain_semantic(issue, report, probs),
        }

    def _explain_semantic(self, issue: Issue, report: MatchReport,
                          probs: Mapping[str, float]) -> dict[str, Any]:
        """The model's scores, its policy, and which of the policy's thresholds apply to this
        issue (its language, a gate, a stated finding or a label decide that)."""
        pol = self.policy
        view = self.rule_view(report, self.decide(issue, report).threats, issue)
        no_flag, no_hold = no_flag_reason(view, pol), no_hold_reason(view, pol)
        return {
            "scores": {c: round(p, 3) for c, p in sorted(probs.items(), key=lambda kv: -kv[1])},
            "policy": {"flag_at": pol.flag_at, "flag_at_other": pol.flag_at_other,
                       "flag_at_gated": pol.flag_at_gated, "flag_when_gated": pol.flag_when_gated,
                       "flag_min_words": pol.flag_min_words, "hold_at": pol.hold_at,
                       "hold_weak_only": pol.hold_weak_only},
            "english": view.english, "gated": view.gated, "stated": view.stated,
            "protected": view.protected, "traditional": view.traditional,
            # The thresholds for this issue: None where the model may not flag or hold, and why.
            "flag_threshold": (None if no_flag else
                               pol.flag_threshold(view.english, view.gated)),
            "no_flag_because": no_flag,
            "hold_threshold": None if no_hold else pol.hold_at, "no_hold_because": no_hold,
        }
