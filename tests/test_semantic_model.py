"""The embedded semantic model: loads offline from the installed wordllama package, scores
deterministically, learns from a local examples folder, and is switched by flags and env."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from bot.decide.model import Issue
from bot.decide.rules import RuleSet
from bot.semantic import examples as ex
from bot.semantic import model as sm
from bot.semantic.embed import SemanticUnavailable, WordLlamaEmbedder, bag_of_words, package_dir

# A plain-language case neither the rules nor the shipped examples flag (checked below).
# Borderline for the shipped model (below its flag threshold); one correction tips it.
CASE = {"id": "case", "title": "Partner portal shows the ranking score of every listing",
        "body": "Partners can page through the scores of all listings in the portal."}


@pytest.fixture(scope="session")
def semantic(ruleset: RuleSet) -> sm.SemanticModel:
    """The shipped model, built once for the session."""
    return sm.load(ruleset)


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_loads_from_the_installed_package_without_network(monkeypatch: pytest.MonkeyPatch,
                                                          ruleset: RuleSet) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the semantic model tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    root = package_dir()
    assert "site-packages" in str(root) or root.is_dir()
    emb = WordLlamaEmbedder(root)
    assert emb.table.shape == (32000, 256)
    model = sm.SemanticModel(emb, ex.shipped_examples(ruleset)[:40])
    p = model.scores(Issue("1", "title", "body"))
    assert set(p) == set(ex.CLASSES) and abs(sum(p.values()) - 1.0) < 1e-5


def test_embeddings_are_unit_length_and_meaningful(semantic: sm.SemanticModel) -> None:
    a, b, c = semantic.embedder.embed(["a cat sat on the mat", "a kitten sat on the rug",
                                       "quarterly tax filing deadline"])
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-5
    assert float(a @ b) > float(a @ c) + 0.2
    assert not semantic.embedder.embed([""]).any()
    bow = bag_of_words(["poisoned training data", ""])
    assert abs(float(np.linalg.norm(bow[0])) - 1.0) < 1e-5 and not bow[1].any()


def test_scores_are_deterministic(semantic: sm.SemanticModel, ruleset: RuleSet) -> None:
    issue = Issue("d", "Anyone can push rows into the table the fraud model is refit on",
                  "The feedback table has no auth; the nightly refit learns whatever rows "
                  "get inserted.")
    first = semantic.scores(issue)
    assert semantic.scores(issue) == first
    # Training again from scratch gives the same head (and the shipped one, when current).
    again = sm.fit(semantic.embedder, semantic.training)
    assert np.allclose(again.weights, semantic.head.weights, atol=1e-5)
    assert np.allclose(again.bias, semantic.head.bias, atol=1e-5)
    assert max(first, key=lambda c: first[c]) == "data-poisoning"


def test_heads_are_kept_by_digest(semantic: sm.SemanticModel, tmp_path: Path) -> None:
    training = semantic.training[:30]
    model = sm.SemanticModel(semantic.embedder, training, cache=tmp_path)
    cached = list(tmp_path.glob("semantic-head-*.npz"))
    assert [p.name for p in cached] == [f"semantic-head-{model.digest}.npz"]
    sm._HEADS.pop(model.digest)
    again = sm.SemanticModel(semantic.embedder, training, cache=tmp_path)
    assert np.array_equal(again.head.weights, model.head.weights)
    # A file for another training set is never used for this one.
    assert sm._read_head(cached[0], "other") is None
    # A cache that cannot be written (here: under a plain file) only costs the training.
    (tmp_path / "file").write_text("")
    sm._HEADS.pop(model.digest)
    unwritable = sm.SemanticModel(semantic.embedder, training, cache=tmp_path / "file" / "x")
    assert np.array_equal(unwritable.head.weights, model.head.weights)


def test_training_set_holds_every_shipped_source(semantic: sm.SemanticModel) -> None:
    sources = {e.source for e in semantic.training}
    assert any(s.endswith(".yml") for s in sources)
    assert any("train_labelled.jsonl" in s for s in sources)
    labels = {e.label for e in semantic.training}
    assert labels == set(ex.CLASSES)
    assert "(0 local)" in semantic.describe()


def test_examples_folder_changes_the_decision_end_to_end(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUGBAR_SEMANTIC", raising=False)
    monkeypatch.delenv("BUGBAR_EXAMPLES", raising=False)
    issues = _jsonl(tmp_path / "in.jsonl", [CASE])
    assert main(["classify", str(issues)]) == 0
    assert json.loads(capsys.readouterr().out)["threats"] == []

    correction = {**CASE, "id": "fix-1", "labels": [], "expect": ["model-stealing"],
                  "source": "/triage model-stealing"}
    folder = tmp_path / "examples"
    _jsonl(folder / "corrections.jsonl", [correction])
    assert main(["classify", "--examples", str(folder), str(issues)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [t["category"] for t in out["threats"]] == ["model-stealing"]
    assert out["threats"][0]["evidence"][0].startswith("similar to known reports of "
                                                       "model-stealing, ")
    # The same folder from the environment, and as examples/ inside a rules folder.
    monkeypatch.setenv("BUGBAR_EXAMPLES", str(folder))
    assert main(["classify", str(issues)]) == 0
    assert json.loads(capsys.readouterr().out)["threats"][0]["category"] == "model-stealing"
    monkeypatch.delenv("BUGBAR_EXAMPLES")
    rules = tmp_path / "rules"
    _jsonl(rules / "examples" / "c.jsonl", [correction])
    assert main(["classify", "--rules", str(rules), str(issues)]) == 0
    assert json.loads(capsys.readouterr().out)["threats"][0]["category"] == "model-stealing"
    # Switched off, the rules alone decide again.
    assert main(["classify", "--no-semantic", "--examples", str(folder), str(issues)]) == 0
    assert json.loads(capsys.readouterr().out)["threats"] == []


def test_bad_examples_file_is_one_line_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "ex"
    folder.mkdir()
    (folder / "bad.jsonl").write_text('{"title": "x", "body": "y", "expect": ["nope"]}\n')
    issues = _jsonl(tmp_path / "in.jsonl", [CASE])
    assert main(["classify", "--examples", str(folder), str(issues)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bugbar: ") and "bad.jsonl:1" in err[0]
    assert "nope" in err[0]
    assert main(["classify", "--examples", str(tmp_path / "missing"), str(issues)]) == 2
    assert "examples folder not found" in capsys.readouterr().err


def test_semantic_switch(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    issues = _jsonl(tmp_path / "in.jsonl", [CASE])

    def missing() -> WordLlamaEmbedder:
        raise SemanticUnavailable(
            "the semantic model needs wordllama: pip install 'bugbar[semantic]'")

    monkeypatch.setattr(sm, "shared_embedder", missing)
    monkeypatch.setenv("BUGBAR_SEMANTIC", "1")
    assert main(["classify", str(issues)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bugbar: the semantic model needs wordllama: pip install 'bugbar[semantic]'"]
    monkeypatch.delenv("BUGBAR_SEMANTIC")
    assert main(["classify", str(issues)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["id"] == "case"
    info = captured.err.strip().splitlines()
    assert len(info) == 1 and info[0].startswith("bugbar: info: ") and "rules only" in info[0]
    monkeypatch.setenv("BUGBAR_SEMANTIC", "maybe")
    assert main(["classify", str(issues)]) == 2
    assert "BUGBAR_SEMANTIC" in capsys.readouterr().err
    monkeypatch.setenv("BUGBAR_SEMANTIC", "0")
    assert main(["classify", str(issues)]) == 0
    assert capsys.readouterr().err == ""


def test_explain_prints_semantic_scores(capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUGBAR_SEMANTIC", raising=False)
    assert main(["explain", "--title", CASE["title"], "--body", CASE["body"]]) == 0
    out = capsys.readouterr().out
    assert "semantic model: " in out
    assert "flags where the rules are silent at 0.7; holds a rule match back" in out


def test_the_bot_triages_with_the_same_classifier(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from bot.app_cli import build_bot
    from bot.config import Config
    from bot.store import Store

    monkeypatch.delenv("BUGBAR_SEMANTIC", raising=False)
    folder = _jsonl(tmp_path / "ex" / "c.jsonl",
                    [{**CASE, "expect": ["model-stealing"], "source": "correction"}])
    store = Store(str(tmp_path / "s.db"))
    try:
        bot = build_bot(Config(state_path=str(tmp_path / "s.db")),
                        argparse.Namespace(rules=None, examples=[str(folder.parent)]),
                        None, store)
        assert isinstance(bot.classifier.semantic, sm.SemanticModel)
        assert bot.classifier.semantic.local == 1
        # Webhook triage, /triage re-runs and sweeps all go through bot.triage's classifier.
        assert bot.triage.classifier is bot.classifier
        decision = bot.triage.classifier.classify(Issue("1", CASE["title"], CASE["body"]))
        assert decision.top is not None and decision.top.category == "model-stealing"
        off = build_bot(Config(state_path=str(tmp_path / "s.db")),
                        argparse.Namespace(rules=None, no_semantic=True), None, store)
        assert off.classifier.semantic is None
    finally:
        store.close()


def test_custom_categories_are_left_to_the_rules(tmp_path: Path,
                                                 semantic: sm.SemanticModel) -> None:
    from bot.decide.rules import load_rules

    rules = tmp_path / "rules"
    rules.mkdir()
    shipped = Path(__file__).resolve().parents[1] / "bot" / "rules" / "model-stealing.yml"
    (rules / "prompt-leak.yml").write_text(
        shipped.read_text().replace("id: model-stealing", "id: prompt-leak"))
    (rules / "settings.yml").write_text(
        "custom_categories: [prompt-leak]\nseed_ranges:\n  prompt-leak: [important, critical]\n")
    examples = _jsonl(rules / "examples" / "c.jsonl", [
        {**CASE, "id": "a", "expect": ["prompt-leak"]},
        {**CASE, "id": "b", "expect": ["model-stealing"]},
    ])
    ruleset = load_rules([rules])
    model = sm.load(ruleset, [examples.parent], embedder=semantic.embedder, cache=tmp_path)
    local = [e for e in model.training if e.weight != 1.0]
    assert [(e.id, e.label) for e in local] == [("b", "model-stealing")]
    assert "prompt-leak" not in {e.label for e in model.training}
    # A category nobody declared is still a clear error.
    _jsonl(rules / "examples" / "d.jsonl", [{**CASE, "id": "c", "expect": ["prompt-leek"]}])
    with pytest.raises(ex.ExamplesError, match="d.jsonl:1: unknown category 'prompt-leek'"):
        sm.load(ruleset, [examples.parent], embedder=semantic.embedder, cache=tmp_path)
