"""k-fold cross-validation of the head and of how it combines with the rules.

Run ``python -m bot.semantic.cv`` to print the table recorded in the README. Only the training
examples (shipped ones) are used: never a held-out set and never ``../shared/corpus``.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from bot.decide.semantic import NOT_A_THREAT, RuleView, SemanticPolicy, combine_view
from bot.semantic.head import L2, train

FP_BUDGET = 0.01
"""Flagging may add false positives on at most 1 % of the training non-threats, counted from
the rules with the chosen hold-back (issue 11's budget). The non-threats here are mostly
crafted near misses (mentions, confusers), harder than an ordinary tracker's issues."""
FLAG_GRID: tuple[float | None, ...] = (None, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
HOLD_GRID: tuple[float | None, ...] = (None, 0.98, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5)
HOLD_CAP_GRID: tuple[float | None, ...] = (None, 2.0, 1.5, 1.2)
"""Hold back any rule match (None) or only marginal ones (evidence ≤ cap × threshold)."""
L2_GRID: tuple[float, ...] = (3e-5, L2, 3e-4, 1e-3, 3e-3)
HOLD_TRADE = 3
"""False positives a hold threshold must remove per right match it loses."""
MIN_WORDS_GRID: tuple[int, ...] = (0, 5, 8, 12)
"""Shortest issue (in words) the model may flag; judged with the same trade as holding."""


def folds(ids: Sequence[str], labels: Sequence[str], k: int) -> list[int]:
    """A fold number per item: stratified by label, order fixed by a hash of the id."""
    out = [0] * len(ids)
    by_label: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    offset = 0
    for lab in sorted(by_label):
        members = sorted(by_label[lab], key=lambda i: hashlib.sha256(ids[i].encode()).digest())
        for j, i in enumerate(members):
            out[i] = (j + offset) % k
        offset += len(members)
    return out


def cross_val_probs(x: npt.NDArray[np.floating], y: npt.NDArray[np.integer], fold: Sequence[int],
                    n_classes: int, l2: float | None = None) -> npt.NDArray[np.float64]:
    """Out-of-fold class probabilities: each item scored by a head that never saw it."""
    fold_arr = np.asarray(fold)
    probs = np.zeros((len(y), n_classes))
    for f in sorted(set(fold)):
        test = fold_arr == f
        head = train(x[~test], y[~test], n_classes, l2=L2 if l2 is None else l2)
        probs[test] = head.probabilities(x[test])
    return probs


@dataclass(frozen=True)
class Outcome:
    """Quality of one way of deciding over the cross-validated items."""

    policy: SemanticPolicy | None
    correct: int
    reports: int
    flagged_none: int
    negatives: int

    @property
    def accuracy(self) -> float:
        """Threat reports whose top category is right."""
        return self.correct / self.reports if self.reports else 0.0

    @property
    def fp_rate(self) -> float:
        """Non-threats flagged."""
        return self.flagged_none / self.negatives if self.negatives else 0.0


def score_policy(policy: SemanticPolicy | None, labels: Sequence[str],
                 rules: Sequence[RuleView], probs: Sequence[dict[str, float]]) -> Outcome:
    """Apply ``combine`` (``policy`` None: rules only) to every item and count."""
    correct = reports = flagged = negatives = 0
    for lab, view, pr in zip(labels, rules, probs, strict=True):
        fired = view.fired
        top: str | None = fired[0] if fired else None
        if policy is not None:
            verdict = combine_view(view, pr, policy)
            if verdict.action == "hold":
                top = None
            elif verdict.action == "flag":
                top = verdict.category
        if lab == NOT_A_THREAT:
            negatives += 1
            flagged += top is not None
        else:
            reports += 1
            correct += top == lab
    return Outcome(policy, correct, reports, flagged, negatives)


def model_only(labels: Sequence[str], probs: Sequence[dict[str, float]]) -> Outcome:
    """The head alone (argmax), for comparison."""
    correct = reports = flagged = negatives = 0
    for lab, pr in zip(labels, probs, strict=True):
        top = max(pr, key=lambda c: pr[c])
        if lab == NOT_A_THREAT:
            negatives += 1
            flagged += top != NOT_A_THREAT
        else:
            reports += 1
            correct += top == lab
    return Outcome(None, correct, reports, flagged, negatives)


def search(labels: Sequence[str], rules: Sequence[RuleView],
           probs: Sequence[dict[str, float]], budget: float = FP_BUDGET
           ) -> tuple[list[Outcome], Outcome]:
    """Every policy of the grid, and the one chosen. Each behaviour is judged on its own:

    - holding back (at a threshold, for any rule match or only marginal ones) is reached in
      steps that each remove at least ``HOLD_TRADE`` false positives for every right match
      they cost (:func:`_walk_holds`), else not used at all;
    - flagging: among the thresholds where it adds false positives on at most ``budget`` of
      the non-threats, those within one standard error of the most reports right; of these,
      the quietest (no flagging past a gate, the highest threshold). Cross-validation on
      examples written by a few people is optimistic about texts from elsewhere, so near-ties
      go to the quieter policy.
    """
    table = []
    holds = [(None, None)] + [(h, c) for h in HOLD_GRID if h is not None for c in HOLD_CAP_GRID]
    for flag_at in FLAG_GRID:
        for hold_at, cap in holds:
            for when_gated, needs in ((False, True), (False, False), (True, False)):
                if flag_at is None and (when_gated or not needs):
                    continue
                pol = SemanticPolicy(flag_at, hold_at, when_gated, needs, cap)
                table.append(score_policy(pol, labels, rules, probs))
    base = score_policy(None, labels, rules, probs)
    best_hold = _walk_holds(base, [o for o in table if o.policy is not None
                                   and o.policy.flag_at is None
                                   and o.policy.hold_at is not None])
    hold = best_hold.policy.hold_at if best_hold and best_hold.policy else None
    cap = best_hold.policy.hold_weak_only if best_hold and best_hold.policy else None
    # The flagging budget counts from the rules with the chosen hold-back, so false positives
    # the hold removed are not spent again on flagging.
    held = best_hold or base
    flags = [o for o in table if o.policy is not None and o.policy.hold_at == hold
             and o.policy.hold_weak_only == cap
             and o.flagged_none - held.flagged_none <= budget * o.negatives]
    if not flags:
        return table, base
    near = _near_best(flags, base.reports)

    def quiet(o: Outcome) -> tuple[float, ...]:
        p = o.policy or SemanticPolicy()
        return (not p.flag_when_gated, p.flag_needs_evidence, p.flag_at or 2.0, o.correct)

    best = max(near, key=quiet)
    best = other_languages(best, labels, rules, probs, budget)
    best = gated_issues(best, labels, rules, probs, budget)
    return table, short_texts(best, labels, rules, probs)


def short_texts(best: Outcome, labels: Sequence[str], rules: Sequence[RuleView],
                probs: Sequence[dict[str, float]]) -> Outcome:
    """``best`` with the longest minimum length for a flag that removes at least
    ``HOLD_TRADE`` false positives for every right report it costs (none: ``best``)."""
    pol = best.policy
    if pol is None or pol.flag_at is None:
        return best
    fits = [o for n in MIN_WORDS_GRID if n > 0
            for o in [score_policy(replace(pol, flag_min_words=n), labels, rules, probs)]
            if _pays(o, best)]
    return max(fits, key=lambda o: o.policy.flag_min_words if o.policy else 0, default=best)


def _pays(o: Outcome, than: Outcome) -> bool:
    """Whether ``o`` flags fewer non-threats than ``than`` and removes at least
    ``HOLD_TRADE`` of them for every right report it loses."""
    removed = than.flagged_none - o.flagged_none
    return removed > 0 and removed >= HOLD_TRADE * (than.correct - o.correct)


def _walk_holds(base: Outcome, holds: Sequence[Outcome]) -> Outcome | None:
    """The hold-back reached by steps that each pay for themselves: from the rules alone, step
    to a hold that removes at least ``HOLD_TRADE`` false positives per right match it costs
    over the current one (the best such ratio first; a free step before any other), and stop
    when none does. Judging each step on its own keeps a cheap first step from paying for an
    expensive second one. None: no hold."""
    current, chosen = base, None

    def ratio(o: Outcome) -> tuple[float, int, int, float]:
        removed, lost = current.flagged_none - o.flagged_none, current.correct - o.correct
        # Most removed per match lost; then the most removed; then the lowest threshold.
        return (removed / lost if lost else math.inf, removed, -lost,
                -(o.policy.hold_at or 0.0) if o.policy else 0.0)

    while True:
        steps = [o for o in holds if _pays(o, current)]
        if not steps:
            return chosen
        current = chosen = max(steps, key=ratio)


def _near_best(outcomes: Sequence[Outcome], reports: int) -> list[Outcome]:
    """The outcomes within one standard error of the most reports right."""
    top = max(o.correct for o in outcomes)
    acc = top / max(1, reports)
    se = math.sqrt(acc * (1 - acc) / max(1, reports)) * reports
    return [o for o in outcomes if o.correct >= top - se]


def _own_threshold(best: Outcome, labels: Sequence[str], rules: Sequence[RuleView],
                   probs: Sequence[dict[str, float]], budget: float, members: Sequence[int],
                   setting: Callable[[SemanticPolicy, float | None], SemanticPolicy]
                   ) -> Outcome:
    """``best`` with a flag threshold for the items ``members`` (put in the policy by
    ``setting``) chosen on those items alone: false positives added within ``budget`` of their
    non-threats; of the thresholds within one standard error of the most right, the
    highest. ``best`` unchanged when no threshold fits or the choice adds nothing."""
    pol = best.policy
    if pol is None or pol.flag_at is None or not members:
        return best
    lab_m = [labels[i] for i in members]
    views_m = [rules[i] for i in members]
    probs_m = [probs[i] for i in members]
    held = score_policy(setting(pol, None), lab_m, views_m, probs_m)
    fits = [(t, o) for t in FLAG_GRID if t is not None
            for o in [score_policy(setting(pol, t), lab_m, views_m, probs_m)]
            if o.flagged_none - held.flagged_none <= budget * o.negatives]
    if not fits:
        return best
    near = _near_best([o for _, o in fits], held.reports)
    at = max(t for t, o in fits if o in near)
    chosen = score_policy(setting(pol, at), labels, rules, probs)
    return best if chosen.correct <= best.correct else chosen


def other_languages(best: Outcome, labels: Sequence[str], rules: Sequence[RuleView],
                    probs: Sequence[dict[str, float]], budget: float = FP_BUDGET) -> Outcome:
    """``best`` with its own flag threshold for the issues not in English, chosen on those
    alone by the same rule (false positives added within ``budget`` of their non-threats;
    within one standard error of the most right, the highest threshold)."""
    other = [i for i, view in enumerate(rules) if not view.english]
    return _own_threshold(best, labels, rules, probs, budget, other,
                          lambda p, at: replace(p, flag_at_other=at))


def gated_issues(best: Outcome, labels: Sequence[str], rules: Sequence[RuleView],
                 probs: Sequence[dict[str, float]], budget: float = FP_BUDGET) -> Outcome:
    """``best`` with a flag threshold for issues a gate held back (where it does not flag
    past gates at ``flag_at``), chosen on those issues alone by the same rule."""
    pol = best.policy
    if pol is None or pol.flag_when_gated:
        return best
    gated = [i for i, view in enumerate(rules) if view.gated and not view.fired]
    return _own_threshold(best, labels, rules, probs, budget, gated,
                          lambda p, at: replace(p, flag_at_gated=at))


def main(argv: Sequence[str] | None = None) -> int:
    """Print the CV table for the shipped examples (markdown)."""
    from bot.decide.classify import Classifier
    from bot.decide.model import Issue
    from bot.decide.rules import load_rules
    from bot.semantic import examples as ex
    from bot.semantic.embed import WordLlamaEmbedder, features

    args = list(sys.argv[1:] if argv is None else argv)
    k = int(args[0]) if args else 5
    ruleset = load_rules()
    items = ex.shipped_examples(ruleset)
    clf = Classifier(ruleset)
    labels = [e.label for e in items]
    views = []
    for e in items:
        issue = Issue(e.id, e.title, e.body)
        report = clf.matcher.match(issue)
        views.append(clf.rule_view(report, clf.decide(issue, report).threats, issue))
    x = features(WordLlamaEmbedder(), [e.text for e in items])
    y = np.array([ex.CLASSES.index(lab) for lab in labels])
    fold = folds([e.id for e in items], labels, k)
    print(f"{len(items)} training examples ({labels.count(NOT_A_THREAT)} not a threat), "
          f"{k}-fold CV")
    # Other weight decays are shown for comparison; the policy is chosen for the head's own
    # (L2). Re-choosing the decay with every rule change made the choice jump between quiet
    # and loud policies, and the loud ones did not hold on texts from elsewhere (README).
    results = {}
    for l2 in L2_GRID:
        p = cross_val_probs(x, y, fold, len(ex.CLASSES), l2=l2)
        probs = [dict(zip(ex.CLASSES, map(float, r), strict=True)) for r in p]
        m = model_only(labels, probs)
        table, best = search(labels, views, probs)
        results[l2] = (table, best, probs)
        pol = best.policy or SemanticPolicy(None)
        print(f"l2={l2:g}: head alone {m.correct}/{m.reports} right, FP {m.flagged_none}/"
              f"{m.negatives}; chosen flag at {pol.flag_at}, hold at {pol.hold_at} "
              f"(evidence ≤ {pol.hold_weak_only or 'any'}): "
              f"{best.correct}/{best.reports} right, FP {best.flagged_none}/{best.negatives}; "
              f"not in English: flag at {pol.flag_at_other or pol.flag_at}; "
              f"past a gate: flag at {pol.flag_at_gated}; "
              f"flag from {pol.flag_min_words} words")
    table, best, probs = results[L2]
    rules = score_policy(None, labels, views, probs)
    print(f"the head's l2={L2:g} (bot/semantic/head.py); the table is for it")
    print(f"rules only: reports {rules.correct}/{rules.reports} = {rules.accuracy:.3f}, "
          f"FP {rules.flagged_none}/{rules.negatives} = {rules.fp_rate:.3f}")
    print("\n| flag at | hold at | hold only evidence ≤ | flag when gated | flag needs evidence "
          "| reports right | accuracy | FP | FP rate |")
    print("|---|---|---|---|---|---|---|---|---|")
    chosen = best.policy or SemanticPolicy(None)
    print(f"chosen: {chosen}")
    print(f"chosen, all stages: {best.correct}/{best.reports} right, "
          f"FP {best.flagged_none}/{best.negatives}")

    def base_of(p: SemanticPolicy) -> SemanticPolicy:
        # The table row the chosen policy grew from (before the language and length stages).
        return replace(p, flag_at_other=None, flag_at_gated=None, flag_min_words=0)

    for o in table:
        pol = o.policy or SemanticPolicy()
        mark = " **chosen**" if o.policy == base_of(chosen) else ""
        print(f"| {pol.flag_at or 'off'} | {pol.hold_at or 'off'} | "
              f"{pol.hold_weak_only or 'any'} | "
              f"{'yes' if pol.flag_when_gated else 'no'} | "
              f"{'yes' if pol.flag_needs_evidence else 'no'} | {o.correct}/{o.reports} | "
              f"{o.accuracy:.3f} | {o.flagged_none}/{o.negatives} | {o.fp_rate:.3f}{mark} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
