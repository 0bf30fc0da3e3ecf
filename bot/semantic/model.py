"""The semantic scorer: WordLlama embeddings + a logistic head trained when it loads.

Training takes a fraction of a second (a few hundred texts, 256 dims), so the head is fitted at
load time from the shipped examples plus any local ones: a correction dropped into an examples
folder changes the model on the next start, with no build step and no weights to go stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from bot.decide.model import Issue
from bot.decide.rules import RuleSet
from bot.semantic import examples as ex
from bot.semantic.embed import WordLlamaEmbedder, features
from bot.semantic.head import Head, train

_HEADS: dict[str, Head] = {}
"""Heads trained in this process, by training-set digest: a process that builds several
classifiers (the test suite, a server reloading) trains each distinct set once."""
_EMBEDDER: list[WordLlamaEmbedder] = []


def shared_embedder() -> WordLlamaEmbedder:
    """The process's one embedder (16 MB of weights, read once)."""
    if not _EMBEDDER:
        _EMBEDDER.append(WordLlamaEmbedder())
    return _EMBEDDER[0]


class SemanticModel:
    """``scores(issue)`` → probabilities over the nine categories and ``none``."""

    def __init__(self, embedder: WordLlamaEmbedder, training: list[ex.Example]) -> None:
        self.embedder = embedder
        self.training = training
        self.digest = ex.digest(training)
        head = _HEADS.get(self.digest)
        if head is None:
            labels = np.array([ex.CLASSES.index(e.label) for e in training], dtype=np.int64)
            weights = np.array([e.weight for e in training])
            x = features(embedder, [e.text for e in training])
            head = _HEADS[self.digest] = train(x, labels, len(ex.CLASSES), sample_weight=weights)
        self.head: Head = head
        self.local = sum(1 for e in training if e.weight != 1.0)

    def scores(self, issue: Issue) -> Mapping[str, float]:
        """Class probabilities for one issue (deterministic)."""
        return self.score_many([issue])[0]

    def score_many(self, issues: Iterable[Issue]) -> list[dict[str, float]]:
        """Class probabilities for several issues in one batch."""
        x = features(self.embedder, [ex.issue_text(i.title, i.body) for i in issues])
        probs = self.head.probabilities(x)
        return [{c: float(p) for c, p in zip(ex.CLASSES, row, strict=True)} for row in probs]

    def describe(self) -> str:
        """One line for logs and ``explain``: what the head was trained on."""
        return (f"wordllama l2_supercat_256 + bag of words, logistic head on "
                f"{len(self.training)} examples "
                f"({self.local} local), training set {self.digest}")


def load(ruleset: RuleSet, example_dirs: Iterable[Path] = (),
         embedder: WordLlamaEmbedder | None = None) -> SemanticModel:
    """Build the model from the shipped examples, the rule set's and the local folders'.

    Raises ``SemanticUnavailable`` when wordllama is missing and ``ExamplesError`` for a
    malformed local examples file.
    """
    training = ex.shipped_examples(ruleset) + ex.local_examples(example_dirs)
    return SemanticModel(embedder or shared_embedder(), training)
