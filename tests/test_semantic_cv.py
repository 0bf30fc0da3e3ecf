"""Cross-validation code on a tiny synthetic set (no model, no shipped data)."""

from __future__ import annotations

import numpy as np

from bot.decide.semantic import RuleView, SemanticPolicy
from bot.semantic.cv import cross_val_probs, folds, model_only, score_policy, search
from bot.semantic.head import train


def test_folds_are_stratified_and_deterministic() -> None:
    ids = [f"i{n}" for n in range(30)]
    labels = ["a"] * 10 + ["b"] * 20
    f = folds(ids, labels, 5)
    assert f == folds(ids, labels, 5)
    assert sorted(set(f)) == [0, 1, 2, 3, 4]
    for k in range(5):
        members = [lab for lab, fold in zip(labels, f, strict=True) if fold == k]
        assert members.count("a") == 2 and members.count("b") == 4


def test_out_of_fold_probabilities_learn_separable_classes() -> None:
    rng = np.random.default_rng(7)
    centres = np.eye(3, 8) * 3.0
    y = np.repeat(np.arange(3), 20)
    x = centres[y] + rng.normal(scale=0.3, size=(60, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    f = folds([str(i) for i in range(60)], [str(v) for v in y], 4)
    p = cross_val_probs(x, y, f, 3)
    assert p.shape == (60, 3) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert (p.argmax(axis=1) == y).mean() > 0.95
    # Out of fold really means out: a head trained on everything is more sure of its items.
    full = train(x, y, 3).probabilities(x)
    assert full[np.arange(60), y].mean() >= p[np.arange(60), y].mean()


def _p(cat: str, value: float) -> dict[str, float]:
    rest = (1.0 - value) / 2
    return {cat: value, **{c: rest for c in ("data-poisoning", "none") if c != cat}}


def test_policy_scoring_and_search_respect_the_budget() -> None:
    # 4 reports the rules miss, the model finds with 0.65..0.95; 100 non-threats of which two
    # look like reports to the model at 0.55 and 0.75.
    labels = ["data-poisoning"] * 4 + ["none"] * 100
    views = [RuleView(())] * 104
    probs = [_p("data-poisoning", v) for v in (0.65, 0.75, 0.85, 0.95)]
    probs += [_p("data-poisoning", 0.55), _p("data-poisoning", 0.75)]
    probs += [_p("none", 0.9)] * 98
    rules = score_policy(None, labels, views, probs)
    assert (rules.correct, rules.flagged_none) == (0, 0)
    low = score_policy(SemanticPolicy(0.5), labels, views, probs)
    assert (low.correct, low.flagged_none) == (4, 2)
    # Budget 1 %: one added false positive allowed; flag at 0.6 finds all four with one.
    table, best = search(labels, views, probs, budget=0.01)
    assert best.policy is not None and best.policy.flag_at == 0.6
    assert (best.correct, best.flagged_none) == (4, 1) and best.policy.hold_at is None
    assert len(table) > 20
    # No budget: only 0.8 and 0.9 add nothing; 0.8 finds 2, 0.9 finds 1, within one standard
    # error of 2 (of 4), so the quieter 0.9 is chosen.
    zero = search(labels, views, probs, budget=0.0)[1]
    assert zero.policy is not None and zero.policy.flag_at == 0.9 and zero.flagged_none == 0
    # Near-ties go to the quieter policy: 0.5 is allowed at 2 %, but 0.6 is as good.
    loose = search(labels, views, probs, budget=0.02)[1]
    assert loose.policy is not None and loose.policy.flag_at == 0.6
    only = model_only(labels, probs)
    assert (only.correct, only.flagged_none) == (4, 2)


def test_hold_back_only_where_it_removes_three_false_positives_per_right_match() -> None:
    # The rules fire on three items: a real report the model doubts (none 0.85) and two
    # non-threats the model is sure about (none 0.92 and 0.97).
    labels = ["data-poisoning", "none", "none"] + ["none"] * 50
    views = [RuleView(("data-poisoning",))] * 3 + [RuleView(())] * 50
    probs = [_p("none", 0.85), _p("none", 0.92), _p("none", 0.97)] + [_p("none", 0.9)] * 50
    table, best = search(labels, views, probs, budget=0.0)
    assert best.policy is not None and best.policy.hold_at == 0.9
    assert (best.correct, best.flagged_none) == (1, 0)
    # Holding at 0.8 would remove all three: never chosen, though it is in the table.
    at_08 = [o for o in table if o.policy and o.policy.hold_at == 0.8 and o.policy.flag_at is None]
    assert at_08 and at_08[0].correct == 0

    # Four non-threats the model is sure about (none 0.8), one real report it doubts as much
    # and one it doubts less (none 0.6): holding at 0.7 or 0.8 removes four false positives
    # for one right match, the trade HOLD_TRADE (3) allows, and the lowest such threshold is
    # used; 0.6 and 0.5 would also cost the second report.
    labels = ["data-poisoning"] * 2 + ["none"] * 4 + ["none"] * 50
    views = [RuleView(("data-poisoning",))] * 6 + [RuleView(())] * 50
    probs = [_p("none", 0.8), _p("none", 0.6)] + [_p("none", 0.8)] * 4 + [_p("none", 0.9)] * 50
    best = search(labels, views, probs, budget=0.0)[1]
    assert best.policy is not None and best.policy.hold_at == 0.7
    assert (best.correct, best.flagged_none) == (1, 0)
    # With only two false positives to remove, the same doubt is not worth a report.
    labels = ["data-poisoning"] + ["none"] * 2 + ["none"] * 50
    views = [RuleView(("data-poisoning",))] * 3 + [RuleView(())] * 50
    probs = [_p("none", 0.8)] * 3 + [_p("none", 0.9)] * 50
    best = search(labels, views, probs, budget=0.0)[1]
    assert best.policy is None or best.policy.hold_at is None


def test_a_hold_back_can_be_limited_to_marginal_matches() -> None:
    # Two real reports with strong rule evidence and three non-threats with marginal evidence,
    # all five doubted alike by the model: holding any match costs both reports (3 false
    # positives for 2 right matches, not enough); holding marginal matches alone costs none.
    labels = ["data-poisoning"] * 2 + ["none"] * 3 + ["none"] * 40
    views = ([RuleView(("data-poisoning",), strength=4.0)] * 2
             + [RuleView(("data-poisoning",), strength=1.1)] * 3 + [RuleView(())] * 40)
    probs = [_p("none", 0.96)] * 5 + [_p("none", 0.9)] * 40
    best = search(labels, views, probs, budget=0.0)[1]
    assert best.policy is not None and best.policy.hold_at is not None
    assert best.policy.hold_weak_only is not None and best.policy.hold_weak_only < 4.0
    assert (best.correct, best.flagged_none) == (2, 0)


def test_issues_not_in_english_get_their_own_threshold_within_the_budget() -> None:
    # English: 4 reports the model finds at 0.95; of 100 non-threats two read as reports at
    # 0.55 and 0.58, so flagging everywhere at 0.5 would break the budget and 0.6 is chosen.
    # Other languages: 4 reports the model finds only at 0.55..0.65 (flatter) and one
    # non-threat at 0.52: 0.5 adds one false positive of their 100 (the 1 % budget) and finds
    # all four, so they get 0.5.
    en_views = [RuleView(())] * 104
    other_views = [RuleView((), english=False)] * 104
    labels = (["data-poisoning"] * 4 + ["none"] * 100) * 2
    probs = [_p("data-poisoning", 0.95)] * 4
    probs += [_p("data-poisoning", 0.55), _p("data-poisoning", 0.58)] + [_p("none", 0.9)] * 98
    probs += [_p("data-poisoning", v) for v in (0.55, 0.6, 0.62, 0.65)]
    probs += [_p("data-poisoning", 0.52)] + [_p("none", 0.9)] * 99
    best = search(labels, en_views + other_views, probs, budget=0.01)[1]
    assert best.policy is not None and best.policy.flag_at == 0.6
    assert best.policy.flag_at_other == 0.5
    assert (best.correct, best.flagged_none) == (8, 1)
    # With no budget the other languages keep the English threshold (0.5 would add one).
    tight = search(labels, en_views + other_views, probs, budget=0.0)[1]
    assert tight.policy is not None and tight.policy.flag_at == 0.6
    assert tight.policy.flag_at_other is None
    assert (tight.correct, tight.flagged_none) == (7, 0)


def test_a_minimum_length_for_flags_is_kept_where_it_trades_well() -> None:
    # Six terse non-threats (3 words) the model reads as reports at 0.95, and four reports it
    # finds at 0.95: three long, one of 6 words. A minimum of 5 removes all six false
    # positives at no cost; 8 and 12 also cost the short report — 8 is still kept (6 removed
    # for 1 lost is at least the trade of 3), so is 12 (same counts): the longest is used.
    labels = ["data-poisoning"] * 4 + ["none"] * 6 + ["none"] * 200
    views = ([RuleView((), words=40)] * 3 + [RuleView((), words=6)]
             + [RuleView((), words=3)] * 6 + [RuleView((), words=40)] * 200)
    probs = [_p("data-poisoning", 0.95)] * 10 + [_p("none", 0.9)] * 200
    best = search(labels, views, probs, budget=0.05)[1]
    assert best.policy is not None and best.policy.flag_at is not None
    assert best.policy.flag_min_words == 12
    assert (best.correct, best.flagged_none) == (3, 0)
    # Where the terse texts are real reports, no minimum is kept.
    labels = ["data-poisoning"] * 10 + ["none"] * 200
    best = search(labels, views, probs, budget=0.05)[1]
    assert best.policy is not None and best.policy.flag_min_words == 0
    assert best.correct == 10


def test_short_texts_get_no_flag() -> None:
    from bot.decide.semantic import combine_view

    policy = SemanticPolicy(flag_at=0.5, flag_min_words=8)
    probs = _p("data-poisoning", 0.95)
    assert combine_view(RuleView((), words=3), probs, policy).action == "keep"
    assert combine_view(RuleView((), words=8), probs, policy).action == "flag"


def test_each_step_of_holding_back_must_pay_for_itself() -> None:
    # Hold at 0.95 removes 10 false positives for 1 right match; going on to 0.8 removes 2
    # more for 2 more matches. From the rules alone, 0.8 trades 12 for 3 (enough at 3 per
    # match), but its own step trades 2 for 2: the walk stops before 0.85 (at the lowest
    # threshold with the same outcome, 0.9).
    labels = (["data-poisoning"] * 3 + ["none"] * 10 + ["none"] * 2 + ["none"] * 40)
    views = [RuleView(("data-poisoning",))] * 15 + [RuleView(())] * 40
    probs = ([_p("none", 0.96)] + [_p("none", 0.85)] * 2 + [_p("none", 0.97)] * 10
             + [_p("none", 0.85)] * 2 + [_p("none", 0.9)] * 40)
    best = search(labels, views, probs, budget=0.0)[1]
    assert best.policy is not None and best.policy.hold_at == 0.9
    assert (best.correct, best.flagged_none) == (2, 2)


def test_issues_a_gate_held_get_their_own_threshold() -> None:
    # 60 ungated reports the model knows at 0.6 and 100 quiet ungated non-threats; 10 gated
    # reports it knows at 0.92 and 200 gated mentions, of which one reads as a report at 0.96
    # and four at 0.85. Flagging past the gates at the main threshold would add five false
    # positives (over the 1 % budget of 300), so the main policy does not; the gated issues
    # get 0.9 of their own, which adds one (0.5 % of their 200) and finds all ten.
    labels = (["model-stealing"] * 60 + ["none"] * 100
              + ["model-inversion"] * 10 + ["none"] * 200)
    views = [RuleView(())] * 160 + [RuleView((), gated=True)] * 210
    probs = ([{"model-stealing": 0.6, "none": 0.4}] * 60 + [_p("none", 0.9)] * 100
             + [_p("model-inversion", 0.92)] * 10 + [_p("model-inversion", 0.96)]
             + [_p("model-inversion", 0.85)] * 4 + [_p("none", 0.9)] * 195)
    best = search(labels, views, probs, budget=0.01)[1]
    assert best.policy is not None and not best.policy.flag_when_gated
    assert best.policy.flag_at is not None and best.policy.flag_at <= 0.6
    assert best.policy.flag_at_gated == 0.9
    assert (best.correct, best.flagged_none) == (70, 1)
