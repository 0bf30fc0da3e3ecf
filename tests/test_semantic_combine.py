"""The pure combiner (bot/decide/semantic.py) and its use in Classifier, with hand-made
probabilities: no model, no numpy."""

from __future__ import annotations

from collections.abc import Mapping

from bot.decide.classify import Classifier
from bot.decide.model import CATEGORY_IDS, Issue
from bot.decide.rules import RuleSet
from bot.decide.semantic import (
    CHOSEN_POLICY,
    SemanticPolicy,
    combine,
    evidence,
    top_category,
)

BOTH = SemanticPolicy(flag_at=0.6, hold_at=0.9)


def probs(**given: float) -> dict[str, float]:
    """Probabilities over the ten classes; what is not given shares the rest evenly."""
    named = {k.replace("_", "-"): v for k, v in given.items()}
    rest = [c for c in (*CATEGORY_IDS, "none") if c not in named]
    left = max(0.0, 1.0 - sum(named.values()))
    return {**named, **{c: left / len(rest) for c in rest}}


def test_flags_where_the_rules_are_silent_and_the_model_is_confident() -> None:
    v = combine([], probs(model_stealing=0.81), BOTH)
    assert (v.action, v.category, v.probability) == ("flag", "model-stealing", 0.81)


def test_no_flag_below_the_threshold_or_when_not_a_threat_is_likeliest() -> None:
    assert combine([], probs(model_stealing=0.55), BOTH).action == "keep"
    assert combine([], probs(none=0.7), BOTH).action == "keep"
    assert combine([], probs(model_stealing=0.81), SemanticPolicy(flag_at=None)).action == "keep"


def test_holds_back_a_rule_match_it_strongly_contradicts() -> None:
    v = combine(["data-poisoning"], probs(none=0.95), BOTH)
    assert (v.action, v.category, v.probability) == ("hold", "none", 0.95)
    assert combine(["data-poisoning"], probs(none=0.85), BOTH).action == "keep"
    assert combine(["data-poisoning"], probs(none=0.99), SemanticPolicy(hold_at=None)) \
        .action == "keep"


def test_never_holds_back_a_label_a_person_set() -> None:
    assert combine(["data-poisoning"], probs(none=0.99), BOTH, protected=True).action == "keep"


def test_a_rule_match_is_never_replaced_by_another_category() -> None:
    assert combine(["data-poisoning"], probs(model_stealing=0.99), BOTH).action == "keep"


def test_gates_and_traditional_bugs_stop_a_flag() -> None:
    p = probs(ml_supply_chain=0.9)
    assert combine([], p, BOTH, gated=True).action == "keep"
    assert combine([], p, SemanticPolicy(0.6, None, flag_when_gated=True), gated=True) \
        .action == "flag"
    assert combine([], p, BOTH, traditional=True).action == "keep"
    needs = SemanticPolicy(0.6, None, flag_needs_evidence=True)
    assert combine([], p, needs, evidence=False).action == "keep"
    assert combine([], p, needs, evidence=True).action == "flag"


def test_evidence_says_what_it_is_and_ties_are_stable() -> None:
    assert evidence("model-stealing", 0.812) == "similar to known reports of model-stealing, 0.81"
    assert top_category({"none": 0.5, "data-poisoning": 0.5}) == ("data-poisoning", 0.5)


class FixedScorer:
    """A stand-in semantic model returning the same probabilities for every issue."""

    def __init__(self, p: Mapping[str, float]) -> None:
        self.p = dict(p)
        self.calls = 0

    def scores(self, issue: Issue) -> Mapping[str, float]:
        self.calls += 1
        return self.p


SILENT = Issue("s", "Partner portal shows every listing's ranking score",
               "Anyone can page through all of them without limits.")
MATCHED = Issue("m", "Model stealing attack on our production fraud detection model",
                "A model extraction attack through the prediction API trained a substitute "
                "model that copies ours.")
# The same, stated as a finding ("an attacker ran"): the model never holds it back.
STATED = Issue("m", MATCHED.title, "An attacker ran a model extraction attack through the "
               "prediction API and trained a substitute model that copies ours.")


def test_classifier_flag_keeps_the_classify_contract(ruleset: RuleSet) -> None:
    assert not Classifier(ruleset).classify(SILENT).threats
    d = Classifier(ruleset, FixedScorer(probs(model_stealing=0.81)), BOTH).classify(SILENT)
    out = d.to_json()
    assert [t["category"] for t in out["threats"]] == ["model-stealing"]
    t = out["threats"][0]
    assert 0.0 <= t["score"] <= 1.0 and t["score"] == 0.81
    assert t["evidence"] == ["similar to known reports of model-stealing, 0.81"]
    low, high = ruleset.rules["model-stealing"].severity_range
    assert low <= d.threats[0].severity <= high
    assert out["route"]


def test_classifier_hold_and_overrides(ruleset: RuleSet) -> None:
    assert Classifier(ruleset).classify(MATCHED).threats
    held = Classifier(ruleset, FixedScorer(probs(none=0.97)), BOTH).classify(MATCHED)
    assert not held.threats and "held back" in held.notes[0]
    stated = Classifier(ruleset, FixedScorer(probs(none=0.99)), BOTH).classify(STATED)
    assert stated.top is not None and stated.top.category == "model-stealing"
    # A maintainer's category still wins over the model.
    forced = Classifier(ruleset, FixedScorer(probs(none=0.97)), BOTH).classify(
        MATCHED, {"category": "model-stealing"})
    assert forced.top is not None and forced.top.category == "model-stealing"
    # The shipped policy never holds back a stated finding (README: advisories read like
    # traditional CVEs to the model), however sure the model is.
    assert CHOSEN_POLICY.hold_at is not None
    kept = Classifier(ruleset, FixedScorer(probs(none=0.99)), CHOSEN_POLICY).classify(STATED)
    assert kept.top is not None and kept.top.category == "model-stealing"
    # A threat label on the issue is a person's word: never held back.
    labelled = Issue("l", "assistant issue", "see the private report",
                     labels=("threat/model-stealing",))
    by_label = Classifier(ruleset, FixedScorer(probs(none=0.99)), CHOSEN_POLICY).classify(
        labelled)
    assert by_label.top is not None and by_label.top.category == "model-stealing"


def test_classifier_never_flags_over_a_traditional_bug(ruleset: RuleSet) -> None:
    xss = Issue("x", "Stored XSS in the model registry UI",
                "A stored XSS lets an attacker read the session cookie of admins.")
    clf = Classifier(ruleset, FixedScorer(probs(ml_supply_chain=0.95)), BOTH)
    assert not clf.classify(xss).threats


def test_explain_shows_the_semantic_scores(ruleset: RuleSet) -> None:
    info = Classifier(ruleset, FixedScorer(probs(model_stealing=0.81)), BOTH).explain(SILENT)
    assert info["semantic"]["scores"]["model-stealing"] == 0.81
    assert list(info["semantic"]["scores"])[0] == "model-stealing"
    assert info["semantic"]["policy"]["flag_at"] == 0.6
    assert Classifier(ruleset).explain(SILENT)["semantic"] is None
    # Which of the policy's thresholds apply to this issue, and why.
    policy = SemanticPolicy(flag_at=0.7, hold_at=0.98, flag_at_other=0.5, flag_at_gated=0.9)
    plain = Issue("n", "Ranking scores in the partner portal",
                  "The portal lists each listing with its ranking score.")
    sem = Classifier(ruleset, FixedScorer(probs(none=0.9)), policy).explain(plain)["semantic"]
    assert (sem["flag_threshold"], sem["hold_threshold"], sem["english"]) == (0.7, 0.98, True)
    # "Anyone can page through them" states a finding: never held back.
    assert Classifier(ruleset, FixedScorer(probs(none=0.9)), policy).explain(
        SILENT)["semantic"]["hold_threshold"] is None
    spanish = Issue("e", "El portal de socios muestra la puntuación de cada anuncio",
                    "Los socios pueden recorrer las puntuaciones de todos los anuncios.")
    sem = Classifier(ruleset, FixedScorer(probs(none=0.9)), policy).explain(spanish)["semantic"]
    assert (sem["flag_threshold"], sem["english"]) == (0.5, False)
    sem = Classifier(ruleset, FixedScorer(probs(none=0.9)), policy).explain(STATED)["semantic"]
    assert sem["stated"] and sem["hold_threshold"] is None
    # Where the model may not flag, the reason is named.
    xss = Issue("x", "Stored XSS in the model registry UI",
                "A stored XSS lets an attacker read the session cookie of admins.")
    sem = Classifier(ruleset, FixedScorer(probs(none=0.9)), policy).explain(xss)["semantic"]
    assert (sem["flag_threshold"], sem["no_flag_because"]) == (None,
                                                              "a traditional security bug")
    weak_only = SemanticPolicy(flag_at=0.7, hold_at=0.98, hold_weak_only=1.2)
    sem = Classifier(ruleset, FixedScorer(probs(none=0.99)), weak_only).explain(
        MATCHED)["semantic"]
    assert (sem["hold_threshold"], sem["no_hold_because"]) == (None, "a strong rule match")
    short = SemanticPolicy(flag_at=0.7, flag_min_words=50)
    sem = Classifier(ruleset, FixedScorer(probs(none=0.9)), short).explain(plain)["semantic"]
    assert sem["no_flag_because"] == "too short"


def test_explain_text_says_which_thresholds_apply() -> None:
    from bot.decide.semantic import thresholds_line

    base = {"flag_threshold": 0.5, "no_flag_because": None, "hold_threshold": 0.98,
            "no_hold_because": None, "english": False, "gated": False}
    assert thresholds_line(base) == ("flags where the rules are silent at 0.5 (not in "
                                     "English); holds a rule match back at not a threat 0.98")
    line = thresholds_line({**base, "flag_threshold": None,
                            "no_flag_because": "a traditional security bug",
                            "hold_threshold": None, "no_hold_because": "a stated finding"})
    assert line == ("flags nothing here (a traditional security bug); holds no rule match back "
                    "(a stated finding)")


def test_triage_explain_reply_shows_the_semantic_scores(ruleset: RuleSet) -> None:
    from bot.handlers.commands import render_explain

    clf = Classifier(ruleset, FixedScorer(probs(model_stealing=0.81)), BOTH)
    reply = render_explain(clf.explain(SILENT), clf.classify(SILENT), ruleset)
    assert "**Semantic model (similarity to known reports):** `model-stealing` 0.81" in reply
    assert "Partner portal" not in reply  # the reply never quotes the issue
    plain = render_explain(Classifier(ruleset).explain(SILENT),
                           Classifier(ruleset).classify(SILENT), ruleset)
    assert "Semantic model" not in plain


def test_hold_weak_only_holds_back_marginal_matches_alone() -> None:
    weak_only = SemanticPolicy(flag_at=None, hold_at=0.9, hold_weak_only=1.2)
    sure = probs(none=0.97)
    assert combine(["data-poisoning"], sure, weak_only, strength=1.1).action == "hold"
    assert combine(["data-poisoning"], sure, weak_only, strength=1.2).action == "hold"
    assert combine(["data-poisoning"], sure, weak_only, strength=1.5).action == "keep"
    # Without a cap any match may be held; a person's label never is.
    assert combine(["data-poisoning"], sure, BOTH, strength=9.0).action == "hold"
    assert combine(["data-poisoning"], sure, weak_only, strength=1.0,
                   protected=True).action == "keep"


def test_the_classifier_passes_the_rules_evidence_strength(ruleset: RuleSet) -> None:
    # MATCHED is a strong match (many signals): a weak-only hold leaves it, an any-match hold
    # takes it back.
    weak_only = SemanticPolicy(flag_at=None, hold_at=0.9, hold_weak_only=1.2)
    kept = Classifier(ruleset, FixedScorer(probs(none=0.99)), weak_only).classify(MATCHED)
    assert kept.top is not None and kept.top.category == "model-stealing"
    anything = SemanticPolicy(flag_at=None, hold_at=0.9)
    assert not Classifier(ruleset, FixedScorer(probs(none=0.99)), anything).classify(
        MATCHED).threats


def test_issues_not_in_english_use_their_own_flag_threshold() -> None:
    from bot.decide.semantic import RuleView, SemanticPolicy, combine_view

    probs = {"model-stealing": 0.6, "none": 0.4}
    policy = SemanticPolicy(flag_at=0.9, flag_at_other=0.5)
    assert combine_view(RuleView(()), probs, policy).action == "keep"
    other = combine_view(RuleView((), english=False), probs, policy)
    assert (other.action, other.category) == ("flag", "model-stealing")
    # Without a threshold of its own, another language uses flag_at; with flagging off, none.
    assert combine_view(RuleView((), english=False), probs,
                        SemanticPolicy(flag_at=0.9)).action == "keep"
    assert combine_view(RuleView((), english=False), probs,
                        SemanticPolicy(flag_at=None, flag_at_other=0.5)).action == "keep"


def test_a_stated_finding_is_never_held_back() -> None:
    from bot.decide.semantic import RuleView, SemanticPolicy, combine_view

    probs = {"ml-supply-chain": 0.01, "none": 0.99}
    policy = SemanticPolicy(flag_at=None, hold_at=0.9)
    assert combine_view(RuleView(("ml-supply-chain",)), probs, policy).action == "hold"
    kept = combine_view(RuleView(("ml-supply-chain",), stated=True), probs, policy)
    assert kept.action == "keep"


def test_the_classifier_marks_stated_findings_and_language(classifier: Classifier) -> None:
    clf = classifier
    issue = Issue("1", "Unsafe deserialization in the model loader",
                  "An attacker can craft a checkpoint that runs code when the model is loaded.")
    report = clf.matcher.match(issue)
    view = clf.rule_view(report, clf.decide(issue, report).threats, issue)
    assert view.stated and view.english
    quiet = Issue("2", "Deserialización de checkpoints en el cargador",
                  "El cargador de modelos usa pickle para leer los checkpoints de la carpeta.")
    report = clf.matcher.match(quiet)
    view = clf.rule_view(report, clf.decide(quiet, report).threats, quiet)
    assert not view.stated and not view.english


def test_issues_a_gate_held_are_flagged_only_at_their_own_threshold() -> None:
    from bot.decide.semantic import RuleView, SemanticPolicy, combine_view

    gated = RuleView((), gated=True)
    sure, unsure = probs(model_inversion=0.96), probs(model_inversion=0.8)
    # Off by default: a gate stops the flag however sure the model is.
    assert combine_view(gated, sure, SemanticPolicy(flag_at=0.7)).action == "keep"
    policy = SemanticPolicy(flag_at=0.7, flag_at_gated=0.95)
    assert combine_view(gated, sure, policy).action == "flag"
    assert combine_view(gated, unsure, policy).action == "keep"
    assert combine_view(RuleView(()), unsure, policy).action == "flag"
    # flag_when_gated treats gated issues like the rest; a traditional bug is never flagged.
    assert combine_view(gated, unsure, SemanticPolicy(flag_at=0.7,
                                                      flag_when_gated=True)).action == "flag"
    assert combine_view(RuleView((), gated=True, traditional=True), sure,
                        policy).action == "keep"
    # The stricter of the two applies to a gated issue in another language.
    other = SemanticPolicy(flag_at=0.7, flag_at_other=0.5, flag_at_gated=0.9)
    assert other.flag_threshold(english=False, gated=True) == 0.9
    assert other.flag_threshold(english=False, gated=False) == 0.5
