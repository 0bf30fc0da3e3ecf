"""The classifier: contract shape, gating, confusers, severity inside seed ranges, overrides."""

from __future__ import annotations

import json
import random

import pytest

from bot.decide.classify import Classifier, decision_hash, suggest_severity
from bot.decide.model import CATEGORY_IDS, Issue, Severity
from bot.decide.rules import SHIPPED_RULES_DIR, RuleSet, load_rules


def _classify(c: Classifier, title: str, body: str = "", labels: tuple[str, ...] = ()):
    return c.classify(Issue("t", title, body, labels))


def test_contract_shape(classifier: Classifier) -> None:
    d = _classify(classifier, "Model extraction via our production prediction API",
                  "An attacker queried the endpoint 40k times and trained a substitute model.")
    out = json.loads(json.dumps(d.to_json()))
    assert set(out) == {"id", "threats", "severity", "route"}
    assert out["threats"][0]["category"] == "model-stealing"
    assert set(out["threats"][0]) == {"category", "score", "severity", "evidence"}
    assert 0 < out["threats"][0]["score"] <= 1
    assert out["severity"] in ("important", "critical")
    assert out["route"]
    scores = [t["score"] for t in out["threats"]]
    assert scores == sorted(scores, reverse=True)


def test_not_a_threat_shape(classifier: Classifier) -> None:
    d = _classify(classifier, "CUDA out of memory with batch size 64", "Traceback ... OOM")
    assert d.to_json() == {"id": "t", "threats": [], "severity": None, "route": []}


def test_min_rules_confuser_swallows_signal(min_ruleset: RuleSet) -> None:
    c = Classifier(min_ruleset)
    assert not _classify(c, "Work stealing in the model training scheduler").threats
    # An ambiguous word alone (weight 0.6) counts as evidence but stays under the threshold.
    weak = c.explain(Issue("t", "", "Attackers steal the model through the prediction api"))
    assert weak["decision"]["threats"] == []
    assert weak["categories"][0]["evidence"][0]["signal"] == "steal"
    info = c.explain(Issue("t", "Work stealing scheduler", "model training"))
    assert info["confusers"] == ["work stealing"]


def test_ambiguous_word_needs_ml_context(min_ruleset: RuleSet) -> None:
    c = Classifier(min_ruleset)
    far = "They steal cookies. " + "unrelated words here " * 40 + "the model is fine"
    near = "They steal the model weights and extract the model."
    r_far = c.explain(Issue("a", "", far))
    r_near = c.explain(Issue("b", "", near))
    stealing_far = [x for x in r_far["categories"] if x["category"] == "model-stealing"][0]
    assert "steal" in stealing_far["ignored_without_ml_context"]
    stealing_near = [x for x in r_near["categories"] if x["category"] == "model-stealing"][0]
    assert {e["signal"] for e in stealing_near["evidence"]} == {"steal", "extract"}


def test_research_gate_and_vulnerability_cancel(min_ruleset: RuleSet) -> None:
    c = Classifier(min_ruleset)
    feature = _classify(c, "Implement model extraction attack in the library")
    report = _classify(c, "Implement fix: attacker can run model extraction on our API")
    assert not feature.threats
    assert report.threats and report.threats[0].category == "model-stealing"


def test_title_counts_more(min_ruleset: RuleSet) -> None:
    c = Classifier(min_ruleset)
    in_title = c.explain(Issue("a", "surrogate model", ""))
    in_body = c.explain(Issue("b", "", "surrogate model"))
    assert in_title["categories"][0]["raw"] > in_body["categories"][0]["raw"]


def test_labels_are_evidence(min_ruleset: RuleSet) -> None:
    c = Classifier(min_ruleset)
    d = _classify(c, "Please look at this", "", labels=("Model-Stealing",))
    assert d.threats[0].evidence == ("label: Model-Stealing",)


def test_pattern_signal(min_ruleset: RuleSet) -> None:
    c = Classifier(min_ruleset)
    d = _classify(c, "They made a copy of our model", "")
    assert "copy of the model" in d.threats[0].evidence


def test_severity_cues_move_inside_range(min_ruleset: RuleSet) -> None:
    rule = min_ruleset.rules["model-stealing"]
    assert suggest_severity(rule, set())[0] is Severity.IMPORTANT
    assert suggest_severity(rule, {"production"}) == (Severity.CRITICAL, ("production",))
    assert suggest_severity(rule, {"research"})[0] is Severity.IMPORTANT
    assert suggest_severity(rule, {"production", "research"})[0] is Severity.IMPORTANT


def test_severity_always_inside_seed_range(ruleset: RuleSet) -> None:
    cues = list(ruleset.settings.cues)
    rng = random.Random(7)
    for rule in ruleset.rules.values():
        low, high = ruleset.settings.seed_ranges[rule.id]
        for _ in range(50):
            level, _ = suggest_severity(rule, set(rng.sample(cues, rng.randint(0, len(cues)))))
            assert low <= level <= high


def test_routes(min_ruleset: RuleSet) -> None:
    c = Classifier(min_ruleset)
    prod = _classify(c, "Model extraction of our production model", "")
    assert prod.severity is Severity.CRITICAL and prod.routes == ("ssirp",)
    lab = _classify(c, "Model extraction", "")
    assert lab.routes == ("security",)
    mi = _classify(c, "Membership inference on patient records", "our production service")
    assert mi.routes == ("ssirp", "privacy")


def test_critical_research_finding_is_not_an_incident(classifier: Classifier) -> None:
    d = _classify(classifier, "Adversarial patch fools a stop sign detector in simulation",
                  "We printed an adversarial patch; in our CARLA simulation the stop sign "
                  "is read as speed limit. Research prototype only.")
    assert d.threats and d.threats[0].category == "physical-adversarial-example"
    assert d.severity is Severity.CRITICAL
    assert "ssirp" not in d.routes


def test_overrides(min_ruleset: RuleSet) -> None:
    c = Classifier(min_ruleset)
    issue = Issue("t", "Model extraction via API", "")
    assert not c.classify(issue, {"not_a_threat": "1"}).threats
    d = c.classify(issue, {"category": "membership-inference"})
    assert [t.category for t in d.threats] == ["membership-inference"]
    d = c.classify(issue, {"severity": "critical"})
    assert d.severity is Severity.CRITICAL
    d = c.classify(issue, {"severity": "low"})  # outside the seed range: ignored
    assert d.severity is Severity.IMPORTANT
    d = c.classify(issue, {"route": "abuse"})
    assert d.routes == ("abuse",)


def test_decision_hash_ignores_evidence_but_not_severity(min_ruleset: RuleSet) -> None:
    c = Classifier(min_ruleset)
    a = c.classify(Issue("a", "Model extraction", ""))
    b = c.classify(Issue("b", "Model extraction and a substitute model", ""))
    assert decision_hash(a) == decision_hash(b)
    crit = c.classify(Issue("c", "Model extraction in production", ""))
    assert decision_hash(a) != decision_hash(crit)


def test_traditional_bug_note(classifier: Classifier) -> None:
    d = _classify(classifier, "Stored XSS in the experiment dashboard",
                  "The run name is rendered without escaping.")
    assert not d.threats
    assert d.notes and "traditional security bug" in d.notes[0]


@pytest.mark.parametrize(
    ("title", "body", "category"),
    [
        ("Loading a shared checkpoint runs arbitrary code",
         "The .pth file on the hub contains a malicious pickle that executes code on "
         "torch.load.", "ml-supply-chain"),
        ("Prompt injection in our support chatbot",
         "A crafted message makes the production LLM ignore its system prompt.",
         "adversarial-perturbation"),
        ("Training data poisoning through the feedback button",
         "Attackers submit mislabeled examples that the model is retrained on.",
         "data-poisoning"),
        ("Membership inference attack on the patient-risk model",
         "An attacker can tell whether a patient's record was in the training set.",
         "membership-inference"),
    ],
    ids=["supply-chain", "prompt-injection", "poisoning", "membership"],
)
def test_shipped_rules_typical_reports(classifier: Classifier, title: str, body: str,
                                       category: str) -> None:
    d = _classify(classifier, title, body)
    assert d.threats and d.threats[0].category == category


def test_hostile_input_is_cut_and_still_classified(classifier: Classifier) -> None:
    body = ("a" * 5000 + " ") * 200 + "model extraction"  # > 1 MB, keyword past the cap
    info = classifier.explain(Issue("t", "Title", body))
    assert info["truncated"] is True
    assert info["decision"]["threats"] == []
    long_line = "model " * 100_000
    assert classifier.classify(Issue("t", "x", long_line)).threats == ()


def test_every_category_reachable(classifier: Classifier) -> None:
    # Each shipped rule's first own example fires its category (the full set runs in
    # test_rule_examples); this guards against a rule silently losing all its signals.
    for rule in classifier.ruleset.rules.values():
        ex = rule.tests_match[0]
        got = classifier.classify(Issue("t", ex.title, ex.body, ex.labels))
        assert rule.id in [t.category for t in got.threats], rule.id
    assert set(classifier.ruleset.rules) == set(CATEGORY_IDS)


def test_near_signal_needs_every_group_within_the_window(min_ruleset: RuleSet) -> None:
    c = Classifier(min_ruleset)
    close = _classify(c, "", "They queried the endpoint and cloned it.")
    assert close.threats and close.threats[0].evidence == ("queried to clone",)
    far = _classify(c, "", "They queried the endpoint " + "x " * 20 + "and cloned it.")
    assert not far.threats
    one_group = _classify(c, "", "They queried the endpoint a lot.")
    assert not one_group.threats


@pytest.mark.parametrize(
    ("body", "fires"),
    [
        ("zorp quux blat", True),
        ("blat then quux then zorp", True),  # any order
        ("zorp a b quux blat", True),  # blat is exactly 4 words after zorp
        ("zorp a b c quux blat", False),  # 5 words: outside the window
        ("zorp " + "x " * 10 + "zorp quux blat", True),  # a later zorp is close enough
        ("zorp quux", False),  # a group missing
        ("zorp blocker quux blat", False),  # zorp inside a confuser is not evidence
        ("zorp blocker zorp quux blat", True),  # ...but the next one is
        ("wide blat quux zorp", True),  # multi-word term
        ("zorp extraordinarilylongword anotherverylongword quux blat", True),  # long words
        ("zorp quux " + "y " * 3 + "blat", False),  # blat 5 words after zorp
    ],
)
def test_near_signal_with_three_groups(min_ruleset: RuleSet, body: str, fires: bool) -> None:
    from bot.decide.match import Matcher

    for compiled in (False, True):
        report = Matcher(min_ruleset, compiled=compiled).match(Issue("n", "", body))
        hits = report.categories.get("membership-inference")
        names = [h.name for h in hits.hits] if hits else []
        assert ("zorp near quux near blat" in names) is fires, compiled


def test_near_signal_in_title_and_body_counts_once_at_title_weight(
    min_ruleset: RuleSet,
) -> None:
    report = Classifier(min_ruleset).matcher.match(Issue("n", "zorp quux blat", "zorp quux blat"))
    hits = [h for h in report.categories["membership-inference"].hits if h.kind == "near"]
    assert [(h.where, h.weight) for h in hits] == [("title", 1.5)]


def test_a_threat_label_alone_decides_even_under_a_gate(classifier: Classifier) -> None:
    # Terse body, research-gate wording, no ML words: the label is a person's statement.
    for label, category in (("threat/model-stealing", "model-stealing"),
                            ("Prompt Injection", "adversarial-perturbation"),
                            ("ML_Supply_Chain", "ml-supply-chain"),
                            ("model extraction", "model-stealing")):
        d = _classify(classifier, "Question about the tutorial", "Details in the private report.",
                      labels=(label,))
        assert [t.category for t in d.threats] == [category], label
        # No cue in the text: the low end of the seed range.
        assert d.severity is classifier.ruleset.rules[category].severity_range[0], label


def test_scoped_labels_name_their_category(classifier: Classifier) -> None:
    # GitLab scoped labels, "Scope: value" spellings and a scope the rules do not list: the
    # value names the category when the whole label is not a rule's own.
    for label, category in (("threat::model-stealing", "model-stealing"),
                            ("Threat: Data Poisoning", "data-poisoning"),
                            ("type::jailbreak", "adversarial-perturbation"),
                            ("area/Prompt_Injection", "adversarial-perturbation"),
                            ("security : membership inference", "membership-inference")):
        d = _classify(classifier, "Terse", "Details in the private report.", labels=(label,))
        assert [t.category for t in d.threats] == [category], label
    # Scopes with values no rule lists stay silent; the bot's own output labels read nothing.
    for label in ("type::bug", "area/ml-ops", "severity/critical", "route/abuse"):
        assert _classify(classifier, "Terse", "See the ticket.", labels=(label,)).threats == ()


def test_label_globs_match_case_insensitively(tmp_path) -> None:
    (tmp_path / "settings.yml").write_text("version: x\n")
    rule = (SHIPPED_RULES_DIR / "model-stealing.yml").read_text()
    rule = rule.replace("  labels: [", "  labels: ['acme/steal*', ", 1)
    (tmp_path / "model-stealing.yml").write_text(rule)
    c = Classifier(load_rules([tmp_path]))
    d = _classify(c, "Terse", "See the ticket.", labels=("ACME/Stealing-Suspected",))
    assert [t.category for t in d.threats] == ["model-stealing"]
    assert _classify(c, "Terse", "See the ticket.", labels=("acme/other",)).threats == ()


def test_generic_labels_add_context_never_a_category(classifier: Classifier) -> None:
    for labels in (("security",), ("bug",), ("ml",), ("AI",), ("security", "ml", "bug")):
        d = _classify(classifier, "Details in the private report", "", labels=labels)
        assert d.threats == (), labels
    # "ml" anchors an ambiguous word the text leaves without ML context.
    title, body = "Backdoor found", "Someone planted a backdoor and a trigger phrase."
    plain = classifier.explain(Issue("a", title, body))
    labelled = classifier.explain(Issue("b", title, body, ("ml",)))
    assert "backdoor" in plain["categories"][0]["ignored_without_ml_context"]
    assert labelled["context_labels"] == {"ml": "ml"}
    signals = {e["signal"] for cat in labelled["categories"] for e in cat["evidence"]}
    assert "backdoor" in signals


def test_explain_shows_label_evidence(classifier: Classifier) -> None:
    info = classifier.explain(Issue("x", "Terse", "", ("threat/data-poisoning", "security")))
    cat = info["categories"][0]
    assert cat["category"] == "data-poisoning" and cat["fired"]
    assert {"signal": "label: threat/data-poisoning", "kind": "label", "where": "labels",
            "weight": 1.0} in cat["evidence"]
    assert info["context_labels"] == {"security": "security"}


def test_a_mention_is_not_a_report_and_explain_names_the_gate(classifier: Classifier) -> None:
    info = classifier.explain(Issue("d", "Broken link in the data poisoning docs page",
                                    "The link to the data poisoning paper returns 404."))
    assert info["decision"]["threats"] == []
    cat = info["categories"][0]
    assert cat["category"] == "data-poisoning" and not cat["fired"]
    assert cat["held_by"] == ["mention"]
    # Vulnerability phrasing makes it a report again.
    d = _classify(classifier, "Data poisoning through the feedback form",
                  "An attacker can poison the training data the docs page says we retrain on; "
                  "this is a vulnerability in our spam model.")
    assert d.threats and d.threats[0].category == "data-poisoning"


def test_a_mention_in_the_title_holds_against_vulnerability_phrasing(
        classifier: Classifier) -> None:
    body = ("Spammers bypass the spam filter with homoglyphs; this adds a normalisation step "
            "so an attacker can no longer evade the classifier that way.")
    held = classifier.explain(Issue("a", "feat(spam): normalise homoglyphs", body))
    assert held["decision"]["threats"] == []
    assert "vulnerability" in held["gates"]
    # The same body under a report's title is a report.
    d = _classify(classifier, "Homoglyphs evade the spam classifier", body)
    assert d.threats and d.threats[0].category == "adversarial-perturbation"


def test_non_english_core_phrases(classifier: Classifier) -> None:
    cases = {
        "Envenenamiento de datos en el filtro de spam": "data-poisoning",
        "Roubo de modelo pela API de previsão": "model-stealing",
        "Injection de prompt dans l'assistant": "adversarial-perturbation",
        "Modelldiebstahl über die Vorhersage-API": "model-stealing",
        "训练数据投毒": "data-poisoning",
        "プロンプトインジェクション": "adversarial-perturbation",
        "Отравление обучающих данных спам-фильтра": "data-poisoning",
    }
    for title, category in cases.items():
        d = _classify(classifier, title)
        assert d.threats and d.threats[0].category == category, title
