"""The mention, discussion and incident gates of the shipped rules.

A held mention must be one the rules would otherwise flag (its evidence before the gates
reaches the threshold), so each case fails if the gate stops holding it, not merely if a
signal went missing. Kept reports carry the words the gates look for and must still be flagged.
All texts were written for this test.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.decide.classify import Classifier
from bot.decide.model import Issue

# (title, body, the gate that must hold it)
HELD = [
    # Requests to add, support or implement an attack or a defence, in eight languages.
    ("Add support for the HopSkipJump attack",
     "It would be great to have the decision-based HopSkipJump evasion attack next to Boundary "
     "Attack. Happy to send a PR.", "mention"),
    ("Feature idea: membership inference audit command",
     "A command that trains shadow models and reports the membership advantage of a model, to "
     "include in model cards.", "mention"),
    ("Proposition : ajouter une attaque par inférence d'appartenance",
     "Serait-il possible d'ajouter une attaque d'inférence d'appartenance (membership inference) "
     "à la boîte à outils ?", "mention"),
    ("Solicitud: añadir una defensa contra el envenenamiento de datos",
     "Sería útil incluir una defensa contra el envenenamiento de datos (data poisoning), por "
     "ejemplo filtrado espectral.", "mention"),
    ("Pedido de recurso: adicionar ataque de extração de modelo",
     "Seria ótimo adicionar suporte a um ataque de extração de modelo (model extraction).",
     "mention"),
    ("Feature-Wunsch: Angriff zur Modellinversion hinzufügen",
     "Es wäre schön, wenn das Toolkit einen Model-Inversion-Angriff unterstützen würde.",
     "mention"),
    ("功能请求：增加模型窃取攻击的实现",
     "希望工具包能支持模型窃取（model extraction）攻击，用于评估我们的预测API。", "mention"),
    ("機能追加：メンバーシップ推論攻撃のサポート",
     "メンバーシップ推論攻撃（membership inference）をツールキットに追加してほしいです。",
     "mention"),
    ("Запрос функции: добавить атаку извлечения модели",
     "Было бы полезно добавить атаку извлечения модели (model extraction) через API предсказаний.",
     "mention"),
    # A test suite asked for.
    ("Request: a prompt injection test suite for the agent",
     "A set of prompt injection and jailbreak test cases that runs in CI against the assistant "
     "before each release.", "mention"),
    # An attack's example, notebook or demo with a bug of its own (English and French).
    ("Membership inference example: AUC computed with labels flipped",
     "In the shadow model example the AUC is 1 - actual because member and non-member labels "
     "are swapped.", "mention"),
    ("Model stealing example fails with the new sklearn",
     "The copycat example queries a local toy model and trains a substitute model; it raises "
     "AttributeError on sklearn 1.7.", "mention"),
    ("L'exemple d'attaque par extraction de modèle calcule mal l'accord",
     "Dans l'exemple, l'accord entre le modèle volé et le modèle cible est mesuré sur les données "
     "d'entraînement (model extraction).", "mention"),
    ("El script de ejemplo de inferencia de pertenencia calcula mal el AUC",
     "En el ejemplo de inferencia de pertenencia (membership inference) las etiquetas de "
     "miembro y no miembro están cambiadas.", "mention"),
    ("Support de l'attaque par inversion de modèle",
     "Est-il prévu de supporter l'inversion de modèle (model inversion) dans la prochaine "
     "version ?", "mention"),
    # A template, a checklist, a CTF write-up.
    ("Red team report template for LLM features",
     "Here is a report template: scope, prompt injection attempts, jailbreak attempts, "
     "findings, severity. Please review.", "mention"),
    ("Writeup: the prompt injection CTF challenge from last week",
     "Level 3 required a prompt injection through a hidden instruction in the uploaded document "
     "to make the bot reveal the flag.", "mention"),
    ("CTF write-up: evading the toy malware classifier",
     "We crafted adversarial examples that evade a small malware classifier and got the flag; an "
     "attacker can bypass it with byte padding.", "mention"),
    # Words of impact in a request or a docs page are not an incident.
    ("Feature request: isolate RAG indexes so prompt injection can't reach other users",
     "Please add per-tenant isolation of the vector store, so a prompt injection in one tenant's "
     "documents never affects other users' answers.", "mention"),
    ("Docs: explain how to protect production endpoints from model extraction",
     "The docs page should describe rate limiting and output rounding for our production "
     "prediction API, to limit model stealing.", "mention"),
    # A defence discussed, not an attack reported.
    ("Should we round confidence scores to make model extraction harder?",
     "Returning only the top label, or rounding probabilities, is often cited as a defence "
     "against model stealing. Would it help, or hurt our users? Thoughts welcome.", "discussion"),
]

# (title, body, the category it must get)
KEPT = [
    ("The attack from the paper works on our production API",
     "We reproduced the model extraction attack from the paper against our production "
     "prediction API: 20k queries gave a copy with 95% agreement.", "model-stealing"),
    ("Feature request: rate limiting because someone is scraping our API right now",
     "Someone is sending millions of queries to our prediction API and training a copy of our "
     "model from the outputs.", "model-stealing"),
    ("Prompt injection in the docs assistant leaks other users' chats",
     "A hidden instruction in a web page makes the documentation assistant send the previous "
     "user's conversation to an attacker URL.", "adversarial-perturbation"),
    ("Tutorial notebook on the hub ships a malicious pickle",
     "The tutorial notebook downloads model.pkl, which runs a reverse shell on load. The "
     "uploader account was compromised.", "ml-supply-chain"),
    ("Malicious pickle in the example checkpoint on the hub",
     "The checkpoint linked from the examples folder runs os.system when loaded with "
     "torch.load.", "ml-supply-chain"),
    ("Defence against prompt injection bypassed with base64",
     "Encoding the instruction in base64 bypasses the prompt injection filter of our support "
     "chatbot; an attacker can make it ignore its instructions.", "adversarial-perturbation"),
    ("Evaluation harness downloads and runs scripts from model repos",
     "Pointing the harness at a model repo makes it execute the repo's Python with "
     "trust_remote_code; a malicious model repo runs code on the eval machine.",
     "ml-supply-chain"),
]

# (title, body, labels, the gate that must hold it): the planning, question, library and heading
# gates, each in more than one language.
HELD_WORK = [
    # A threat-model draft, training material, a questionnaire, a roadmap item.
    ("Threat model draft for the speech API, ready for review",
     "Assets: voice recordings, the acoustic model, transcripts. Threats listed: membership "
     "inference on enrolment audio, model extraction through the transcription endpoint. "
     "Please review by Thursday.", (), "planning"),
    ("Schulungsunterlagen: Abschnitt zu Model Inversion korrigieren",
     "In der Schulung zur KI-Sicherheit verwechselt der Abschnitt zu Model Inversion "
     "White-Box- und Black-Box-Angriffe.", (), "planning"),
    ("Responder el cuestionario del banco sobre inyección de prompt",
     "El banco pregunta en su cuestionario si evaluamos la inyección de prompt (prompt "
     "injection) en el asistente. Hay que redactar la respuesta.", (), "planning"),
    ("Roadmap Q3: Schutz des Feedback-Kanals vor Data Poisoning",
     "Roadmap-Eintrag: Nutzerfeedback erst nach Prüfung ins Training übernehmen.", (), "planning"),
    # How an attack works; a defence asked for as a countermeasure.
    ("How does gradient inversion reconstruct training images?",
     "In federated learning, how does gradient inversion rebuild the client's images from the "
     "shared gradients? Can someone explain the intuition?", (), "question"),
    ("Frage: Wie funktioniert Membership Inference bei Sprachmodellen?",
     "Wie funktioniert ein Membership-Inference-Angriff auf ein Sprachmodell genau?", (),
     "question"),
    ("推論APIのスコアを丸める設定",
     "モデル抽出対策として、確率を小数第一位に丸める設定を入れたいです。", (), "question"),
    # An attack's implementation with a bug of its own; numbers for a model card.
    ("Backdoor trigger generator crashes on RGBA images",
     "The BadNets-style backdoor generator crashes on 4-channel images because the trigger "
     "pattern is always built with 3 channels. Small fix, PR incoming.", (), "library"),
    ("Robust accuracy under PGD evasion on the new checkpoint",
     "PGD evasion attack at eps 8/255: robust accuracy 41% (was 35%). Numbers for the model "
     "card.", (), "library"),
    ("Course assignment: threat model for a fictional voice assistant",
     "Students describe over-the-air adversarial audio and physical adversarial examples "
     "against a made-up assistant; grading rubric in the handout.", (), "planning"),
    # What the issue is, said in its title.
    ("Proposal: a prompt injection classifier in front of the agent",
     "Score retrieved documents for prompt injection before they reach the context window.",
     (), "heading"),
    ("Propuesta: detectar inyección de prompt en los correos antes de resumirlos",
     "Pasar un clasificador por los correos y marcar los que traen instrucciones para el modelo "
     "(prompt injection).", (), "heading"),
]

# (title, body, labels): a plain statement that nothing has happened, or a "not applicable"
# answer, holds (the quiet gate).
NO_INCIDENT = [
    ("Auditor asks how the fraud model is protected against data poisoning",
     "We need a written answer on how the fraud model's training data is protected from data "
     "poisoning. There was no incident.", ()),
    ("Le modèle de scoring est-il exposé à l'inversion de modèle ?",
     "Un client demande si notre modèle de scoring est exposé à l'inversion de modèle (model "
     "inversion). Rien ne s'est produit, il faut juste répondre.", ()),
    ("Membership inference risk for the reporting dashboard",
     "A customer asked about membership inference on our reporting dashboard. The dashboard "
     "shows SQL aggregates and no model is trained anywhere. Answered: not applicable.", ()),
]

# (title, body, labels, category): reports that use the words of those gates, or whose only
# report phrasing is a finding stated ("works on our", "anyone with") or a security label in
# another language, are still flagged.
KEPT_FINDINGS = [
    ("Jailbreak makes the support assistant reveal its system prompt",
     "The role-play jailbreak in the tutorial works on our production support assistant: it "
     "prints the whole system prompt and the internal refund rules.", (),
     "adversarial-perturbation"),
    ("Checkpoint vom Spiegelserver führt beim Laden Code aus",
     "Die Gewichte, die in der Dokumentation verlinkt sind, starten beim Laden einen Prozess: "
     "das Modell führt Code aus und öffnet eine Verbindung zu einem fremden Server.",
     ("sicherheit",), "ml-supply-chain"),
    ("Course notebook exercise reproduced against the live pricing API",
     "I pointed the model extraction exercise from the course notebook at the live pricing "
     "API; anyone with a free key can train a surrogate model that agrees on 96% of inputs.", (),
     "model-stealing"),
    ("Translation bot used as a free essay writer",
     "A forum shares a prompt that makes our translation chatbot write essays and code, work "
     "that has nothing to do with its purpose; it is billed to us. Proposal: a topic guard "
     "and per-key quotas.", (), "neural-net-reprogramming"),
    ("Scoring API returns feature importances for every request",
     "Per-request feature attributions make it easy to rebuild a copy of our credit model "
     "from a few thousand queries.", (), "model-stealing"),
]


def _explain(c: Classifier, title: str, body: str) -> dict[str, Any]:
    return c.explain(Issue("t", title, body))


@pytest.mark.parametrize(("title", "body", "gate"), HELD, ids=[h[0][:40] for h in HELD])
def test_mentions_are_held_and_explain_names_the_gate(
        classifier: Classifier, title: str, body: str, gate: str) -> None:
    info = _explain(classifier, title, body)
    assert info["decision"]["threats"] == []
    # It is the gate that holds it: without it, the category would fire.
    top = info["categories"][0]
    assert top["raw"] >= info["threshold"] > top["evidence_sum"], top
    assert top["held_by"] == [gate]


@pytest.mark.parametrize(("title", "body", "category"), KEPT, ids=[k[0][:40] for k in KEPT])
def test_reports_with_mention_words_are_flagged(
        classifier: Classifier, title: str, body: str, category: str) -> None:
    d = classifier.classify(Issue("t", title, body))
    assert d.threats and d.threats[0].category == category


def test_a_question_is_not_vulnerability_phrasing(classifier: Classifier) -> None:
    title = "Are we vulnerable to data poisoning through fake clicks?"
    body = ("Could fake clicks poison the recommendation model's training data? Just curious; "
            "no sign of an attack so far.")
    info = _explain(classifier, title, body)
    assert info["decision"]["threats"] == []
    assert "vulnerability" not in info["gates"]
    assert info["categories"][0]["held_by"] == ["discussion", "negation"]
    # Stated, not asked, it cancels the hold.
    stated = _explain(classifier, "Our recommender is vulnerable to data poisoning through fake "
                      "clicks", "Fake clicks poison the recommendation model's training data.")
    assert "vulnerability" in stated["gates"]
    assert [t["category"] for t in stated["decision"]["threats"]][:1] == ["data-poisoning"]


def test_explain_names_only_the_gate_that_applied(classifier: Classifier) -> None:
    # "add support for" is research and mention phrasing at once; mention (0.2) is what held.
    info = _explain(classifier, "Add support for the HopSkipJump attack",
                    "Please add the decision-based HopSkipJump evasion attack; adversarial "
                    "examples from it would help our robustness evaluation.")
    assert {"mention", "research"} <= set(info["gates"])
    held = [c["held_by"] for c in info["categories"] if c["held_by"]]
    assert held and all(h == ["mention"] for h in held)


def test_an_incident_cancels_a_mention_in_the_title(classifier: Classifier) -> None:
    body = ("Our prediction API answers with full probabilities and anyone can train a copy of "
            "the model from its outputs.")
    held = _explain(classifier, "Feature request: rate limiting for the prediction API", body)
    assert held["decision"]["threats"] == [] and "incident" not in held["gates"]
    live = _explain(classifier, "Feature request: rate limiting for the prediction API",
                    body + " Someone is doing exactly that right now.")
    assert "incident" in live["gates"]
    assert [t["category"] for t in live["decision"]["threats"]][:1] == ["model-stealing"]
    # Hypothetical phrasing that contains the incident words is a mention, not an incident.
    what_if = _explain(classifier, "Feature request: rate limiting for the prediction API",
                       body + " What if someone is doing that?")
    assert "incident" not in what_if["gates"] and what_if["decision"]["threats"] == []


def test_vulnerability_phrasing_cancels_a_discussion_even_in_the_title(
        classifier: Classifier) -> None:
    title = "Rounding scores as a defence against model extraction"
    body = ("Returning rounded probabilities instead of raw ones from the prediction API would "
            "slow down anyone training a substitute model on its outputs.")
    assert _explain(classifier, title, body)["categories"][0]["held_by"] == ["discussion"]
    report = _explain(classifier, title, body + " Right now an attacker can query it freely "
                      "and we found a copy of our model for sale: this is a vulnerability.")
    assert [t["category"] for t in report["decision"]["threats"]][:1] == ["model-stealing"]


@pytest.mark.parametrize("trigger", ["workflow trigger", "cron trigger", "scheduled trigger"])
def test_a_ci_trigger_near_training_is_not_a_backdoor(
        classifier: Classifier, trigger: str) -> None:
    info = _explain(classifier, f"Nightly training job: {trigger} fires twice",
                    f"The GitHub Actions {trigger} for the nightly training run fires twice, "
                    "so two training jobs fight over the GPU.")
    assert info["decision"]["threats"] == []
    assert trigger in info["confusers"]
    # The same words as a backdoor trigger in the training data are still evidence.
    backdoor = _explain(classifier, "Hidden trigger phrase planted in our training data",
                        "Someone seeded the fine-tuning set with a secret trigger phrase that "
                        "makes the model approve any refund.")
    assert [t["category"] for t in backdoor["decision"]["threats"]][:1] == ["data-poisoning"]


def test_every_language_has_mention_phrases_for_each_kind_of_mention(
        classifier: Classifier) -> None:
    """Requests, implementation, tutorials, examples, docs and papers are held in each of the
    eight languages the rules read: a phrase of each, run through the real matcher."""
    cases = {
        "es": ["solicitud de función", "añadir soporte", "implementar un ataque", "tutorial",
               "el ejemplo", "en la documentación", "el artículo"],
        "pt": ["pedido de recurso", "adicionar suporte", "implementar um ataque", "tutorial",
               "o exemplo", "na documentação", "o artigo"],
        "fr": ["demande de fonctionnalité", "ajouter le support", "implémenter une attaque",
               "tutoriel", "l'exemple", "dans la documentation", "l'article"],
        "de": ["Feature-Wunsch", "Unterstützung für", "implementieren", "Tutorial",
               "das Beispiel", "in der Dokumentation", "das Paper"],
        "zh": ["功能请求", "希望支持", "希望实现", "教程", "示例", "文档中", "论文"],
        "ja": ["機能リクエスト", "サポートしてほしい", "実装してほしい", "チュートリアル",
               "サンプルコード", "ドキュメントの", "論文"],
        "ru": ["запрос функции", "добавить поддержку", "реализовать атаку", "туториал",
               "в примере", "в документации", "в статье"],
    }
    for lang, phrases in cases.items():
        for phrase in phrases:
            report = classifier.matcher.match(Issue("t", "x", f"word {phrase} word"))
            assert "mention" in report.gates, (lang, phrase)


@pytest.mark.parametrize(("title", "body", "labels", "gate"), HELD_WORK,
                         ids=[h[0][:40] for h in HELD_WORK])
def test_work_about_attacks_is_held_by_its_gate(
        classifier: Classifier, title: str, body: str, labels: tuple[str, ...],
        gate: str) -> None:
    info = classifier.explain(Issue("t", title, body, labels))
    assert info["decision"]["threats"] == []
    top = info["categories"][0]
    assert top["raw"] >= info["threshold"] > top["evidence_sum"], top
    assert top["held_by"] == [gate]


@pytest.mark.parametrize(("title", "body", "labels"), NO_INCIDENT,
                         ids=[n[0][:40] for n in NO_INCIDENT])
def test_nothing_happened_holds(
        classifier: Classifier, title: str, body: str, labels: tuple[str, ...]) -> None:
    info = classifier.explain(Issue("t", title, body, labels))
    assert info["decision"]["threats"] == []
    top = info["categories"][0]
    assert top["raw"] >= info["threshold"] > top["evidence_sum"], top
    assert top["held_by"] == ["quiet"]


def test_vulnerability_asked_in_a_question_does_not_cancel_a_hold(
        classifier: Classifier) -> None:
    asked = classifier.explain(Issue(
        "t", "Is our recommender vulnerable to data poisoning?",
        "Could an attacker push items up through fake clicks? Nothing has happened; the "
        "auditor wants a written answer."))
    assert "vulnerability" not in asked["gates"]
    assert asked["decision"]["threats"] == []
    assert asked["categories"][0]["held_by"] == ["quiet"]
    # Stated, the same words are a report, even with "nothing has happened yet".
    stated = classifier.explain(Issue(
        "t", "Our recommender is vulnerable to data poisoning",
        "Fake clicks from new accounts flow straight into retraining. Nothing has happened yet."))
    assert "vulnerability" in stated["gates"]
    assert [t["category"] for t in stated["decision"]["threats"]][:1] == ["data-poisoning"]
    # The same in Spanish: the question marks say it is asked.
    spanish = classifier.explain(Issue(
        "t", "¿Es vulnerable nuestro filtro de spam a ejemplos adversariales?",
        "¿Un atacante podría evadir el filtro? No hubo incidente, solo quiero saber."))
    assert "vulnerability" not in spanish["gates"] and spanish["decision"]["threats"] == []


@pytest.mark.parametrize(("title", "body", "labels", "category"), KEPT_FINDINGS,
                         ids=[k[0][:40] for k in KEPT_FINDINGS])
def test_findings_near_gate_words_are_flagged(
        classifier: Classifier, title: str, body: str, labels: tuple[str, ...],
        category: str) -> None:
    d = classifier.classify(Issue("t", title, body, labels))
    assert d.threats and d.threats[0].category == category


def test_the_heading_gate_reads_the_start_of_the_title_only(classifier: Classifier) -> None:
    body = "Proposal: add a per-key quota to the prediction endpoint."
    in_title = classifier.matcher.match(Issue("t", "Proposal: per-key quotas", "More text."))
    in_body = classifier.matcher.match(Issue("t", "Per-key quotas", body))
    assert "heading" in in_title.gates
    assert "heading" not in in_body.gates
    # Further on in the title the word is a product noun, not what the issue is.
    noun = classifier.matcher.match(Issue("t", "Voice clone feature used for prank calls", ""))
    assert "heading" not in noun.gates
    # An ML term that starts with a heading word is not a heading.
    term = classifier.matcher.match(Issue("t", "Feature importances let anyone rebuild the "
                                          "scoring model", ""))
    assert "heading" not in term.gates


def test_a_tie_between_holds_is_named_by_the_first_gate_in_settings(
        classifier: Classifier) -> None:
    # "proposition" heads the title (heading) and "ajouter une attaque" is a mention: both
    # hold at 0.2, and mention comes first in the shipped settings.
    info = classifier.explain(Issue(
        "t", "Proposition : ajouter une attaque par inférence d'appartenance",
        "Il serait utile d'ajouter une attaque d'inférence d'appartenance (membership "
        "inference) à la boîte à outils."))
    assert {"heading", "mention"} <= set(info["gates"])
    assert info["categories"][0]["held_by"] == ["mention"]


@pytest.mark.parametrize("label", ["enhancement", "Documentation", "type/feature-request",
                                   "kind/docs", "feature", "discussion", "blog", "talks",
                                   "homework", "changelog", "planning", "refactor", "勉強会",
                                   "обсуждение"])
def test_a_feature_or_docs_label_holds_a_mention(classifier: Classifier, label: str) -> None:
    # Neither the title nor the body says "feature request" or "docs": the label does.
    title = "Membership inference for the fine-tuned models"
    body = ("Train shadow models on the public split and report the membership advantage of "
            "each fine-tuned model, so model cards can state it.")
    unlabelled = _explain(classifier, title, body)
    assert [t["category"] for t in unlabelled["decision"]["threats"]][:1] == [
        "membership-inference"]
    held = classifier.explain(Issue("l", title, body, labels=(label,)))
    assert held["decision"]["threats"] == [] and "mention" in held["gates"]


@pytest.mark.parametrize("label", ["release", "legal", "question"])
def test_labels_real_reports_are_filed_under_do_not_hold(classifier: Classifier,
                                                          label: str) -> None:
    # A compromised release, a vendor's breach of contract and "is this exploitable?" are
    # filed under these labels: they add no hold.
    title = "Membership inference for the fine-tuned models"
    body = ("Train shadow models on the public split and report the membership advantage of "
            "each fine-tuned model, so model cards can state it.")
    out = classifier.explain(Issue("l", title, body, labels=(label,)))
    assert "mention" not in out["gates"]
    assert [t["category"] for t in out["decision"]["threats"]][:1] == ["membership-inference"]


def test_a_feature_label_does_not_hold_a_stated_incident(classifier: Classifier) -> None:
    body = ("Our prediction API answers with full probabilities and anyone can train a copy of "
            "the model from its outputs. Someone is doing exactly that right now.")
    out = classifier.classify(Issue("i", "Rate limiting for the prediction API", body,
                                    labels=("enhancement",)))
    assert out.top is not None and out.top.category == "model-stealing"


@pytest.mark.parametrize(("title", "body"), [
    ("Duda: ¿el envenenamiento de datos aplica a modelos que no se reentrenan?",
     "Leyendo sobre envenenamiento de datos me surge la duda para nuestro caso."),
    ("Доклад на митапе: отравление данных в рекомендательных системах",
     "Готовлю доклад про отравление данных, нужны примеры из практики."),
    ("课程作业：数据投毒实验的代码报错", "第三周的数据投毒实验代码运行报错，求助。"),
    ("Bedrohungsmodell für den Übersetzungsdienst: Prompt Injection",
     "Bitte um Review des Bedrohungsmodells; Prompt Injection ist als Risiko aufgeführt."),
])
def test_questions_talks_coursework_and_threat_models_in_other_languages_hold(
        classifier: Classifier, title: str, body: str) -> None:
    assert classifier.classify(Issue("q", title, body)).threats == ()


def test_a_product_named_after_a_course_is_not_held(classifier: Classifier) -> None:
    # "Course" heads the title as a product name, not as course material.
    out = classifier.classify(Issue(
        "c", "Course recommender can be steered by rating a course a lot",
        "A group of accounts rated one course five stars thousands of times and the "
        "recommender now puts it first for everyone: the ratings feed its nightly retraining."))
    assert out.top is not None and out.top.category == "data-poisoning"


@pytest.mark.parametrize("label", ["enhancement", "docs", "feature"])
def test_a_mention_label_holds_a_request_justified_by_what_an_attacker_could_do(
        classifier: Classifier, label: str) -> None:
    # "An attacker can ..." is how a feature request argues for itself; the label says what
    # the issue is. Unlabelled, the same text fires.
    title = "Per-key query budget for the scoring API"
    body = ("An attacker can steal the model through the scoring API by querying it at scale "
            "and training a copy on the outputs. Add a per-key query budget and an alert when a "
            "key goes over it.")
    assert _explain(classifier, title, body)["decision"]["threats"]
    held = classifier.explain(Issue("l", title, body, labels=(label,)))
    assert held["decision"]["threats"] == [] and "mention" in held["gates"]
    # A finding on our own system still fires under the label.
    stated = classifier.classify(Issue("s", title, body + " We confirmed it: a copy of our "
                                       "model is being used by a competitor.", labels=(label,)))
    assert stated.top is not None and stated.top.category == "model-stealing"
