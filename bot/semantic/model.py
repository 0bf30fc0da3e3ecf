"""The semantic scorer: WordLlama embeddings + a logistic head trained when it loads.

The head is fitted from the shipped examples plus any local ones, so a correction dropped into
an examples folder changes the model on the next start with no code change. Training takes
about a second, so heads are kept by the digest of what they were trained on: the package
ships the one for its own examples (``bot/data/semantic_head.npz``), and one trained with
local examples is cached in ``$XDG_CACHE_HOME/bugbar`` (``~/.cache/bugbar``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from bot.decide.classify import Classifier
from bot.decide.model import Issue
from bot.decide.rules import RuleSet
from bot.decide.semantic import RULE_FEATURES, RuleSignals, rule_features
from bot.semantic import examples as ex
from bot.semantic.embed import BOW_DIMS, CHAR_DIMS, GRAM_SIZES, WEIGHTS, WordLlamaEmbedder, features
from bot.semantic.head import L2, SCALE, STEPS, Head, train

SHIPPED_HEAD = Path(__file__).resolve().parents[1] / "data" / "semantic_head.npz"
"""The head for the shipped examples, built by ``python -m bot.semantic.build``; used only when
its digest matches the training set, so a stale file costs time, never correctness."""
RULE_SCALE = 0.1
"""Weight of the rule inputs beside the unit-length text features (cross-validated, README)."""
VERSION = (f"{WEIGHTS}|bow{BOW_DIMS}|char{CHAR_DIMS}{GRAM_SIZES}|rules{RULE_FEATURES}x"
           f"{RULE_SCALE}|l2={L2}|steps={STEPS}|scale={SCALE}")
"""Everything besides the examples and the rules that changes the head: part of its digest."""


def stacked(text_features: np.ndarray, signals: list[RuleSignals],
            scale: float = RULE_SCALE) -> np.ndarray:
    """The head's input: the text features next to the rules' view of each text."""
    rules = np.array([rule_features(s) for s in signals], dtype=np.float32).reshape(
        len(signals), RULE_FEATURES)
    return np.hstack([text_features, rules * np.float32(scale)]).astype(np.float32)


def rule_signals(ruleset: RuleSet, texts: list[tuple[str, str]]) -> list[RuleSignals]:
    """What the rules (alone) see in each (title, body)."""
    clf = Classifier(ruleset)
    return [clf.signals(clf.matcher.match(Issue(str(n), title, body)))
            for n, (title, body) in enumerate(texts)]


def cache_dir() -> Path:
    """Where heads trained with local examples are kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bugbar"


def _read_head(path: Path, digest: str) -> Head | None:
    try:
        with np.load(path) as data:
            if str(data["digest"]) != digest:
                return None
            return Head(data["weights"].astype(np.float32), data["bias"].astype(np.float32))
    except (OSError, KeyError, ValueError):
        return None


def write_head(path: Path, head: Head, digest: str) -> None:
    """Save a head atomically (a reader never sees half a file); errors are the caller's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, weights=head.weights, bias=head.bias, digest=np.array(digest))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the head is no secret
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fit(embedder: WordLlamaEmbedder, training: list[ex.Example], ruleset: RuleSet) -> Head:
    """Train a head on ``training`` and what ``ruleset`` sees in it (deterministic)."""
    labels = np.array([ex.CLASSES.index(e.label) for e in training], dtype=np.int64)
    weights = np.array([e.weight for e in training])
    x = stacked(features(embedder, [e.text for e in training]),
                rule_signals(ruleset, [(e.title, e.body) for e in training]))
    return train(x, labels, len(ex.CLASSES), sample_weight=weights)


def find_head(embedder: WordLlamaEmbedder, training: list[ex.Example], ruleset: RuleSet,
              digest: str, cache: Path | None) -> Head:
    """The head for ``training``: this process's, the shipped one, the cached one, or a new
    one (then cached, if the cache folder is writable)."""
    head = _HEADS.get(digest) or _read_head(SHIPPED_HEAD, digest)
    if head is None and cache is not None:
        head = _read_head(cache / f"semantic-head-{digest}.npz", digest)
    if head is None:
        head = fit(embedder, training, ruleset)
        if cache is not None:
            # A read-only home only costs the training time on the next start.
            with contextlib.suppress(OSError):
                write_head(cache / f"semantic-head-{digest}.npz", head, digest)
    _HEADS[digest] = head
    return head

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

    def __init__(self, embedder: WordLlamaEmbedder, training: list[ex.Example],
                 ruleset: RuleSet, cache: Path | None = None) -> None:
        self.embedder = embedder
        self.training = training
        self.ruleset = ruleset
        # The head reads the rules' view of each text, so other rules make another head.
        self.digest = ex.digest(training, f"{VERSION}|{ruleset.version}")
        self.head: Head = find_head(embedder, training, ruleset, self.digest, cache)
        self.local = sum(1 for e in training if e.weight != 1.0)
        self._rules = Classifier(ruleset)

    def scores(self, issue: Issue, signals: RuleSignals | None = None) -> Mapping[str, float]:
        """Class probabilities for one issue (deterministic); ``signals``: what the rules saw
        (worked out here when not given)."""
        return self.score_many([issue], None if signals is None else [signals])[0]

    def score_many(self, issues: Iterable[Issue],
                   signals: list[RuleSignals] | None = None) -> list[dict[str, float]]:
        """Class probabilities for several issues in one batch."""
        batch = list(issues)
        if signals is None:
            signals = [self._rules.signals(self._rules.matcher.match(i)) for i in batch]
        x = stacked(features(self.embedder, [ex.issue_text(i.title, i.body) for i in batch]),
                    signals)
        probs = self.head.probabilities(x)
        return [{c: float(p) for c, p in zip(ex.CLASSES, row, strict=True)} for row in probs]

    def describe(self) -> str:
        """One line for logs and ``explain``: what the head was trained on."""
        return (f"wordllama l2_supercat_256 + bag of words + character grams + the rules' "
                f"view, logistic head on "
                f"{len(self.training)} examples "
                f"({self.local} local), training set {self.digest}")


def load(ruleset: RuleSet, example_dirs: Iterable[Path] = (),
         embedder: WordLlamaEmbedder | None = None,
         cache: Path | None = None) -> SemanticModel:
    """Build the model from the shipped examples, the rule set's and the local folders'.

    Raises ``SemanticUnavailable`` when wordllama is missing and ``ExamplesError`` for a
    malformed local examples file.
    """
    training = ex.shipped_examples(ruleset) + ex.local_examples(example_dirs, set(ruleset.rules))
    return SemanticModel(embedder or shared_embedder(), training, ruleset,
                         cache_dir() if cache is None else cache)
