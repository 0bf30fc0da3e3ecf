"""The semantic scorer: WordLlama embeddings + a logistic head trained when it loads.

The head is fitted from the shipped examples plus any local ones, so a correction dropped into
an examples folder changes the model on the next start with no code change. Training takes
a few seconds, so heads are kept by the digest of what they were trained on: the package
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

from bot.decide.model import Issue
from bot.decide.rules import RuleSet
from bot.semantic import examples as ex
from bot.semantic.embed import (
    BOW_DIMS,
    CHAR_DIMS,
    CHAR_WEIGHT,
    GRAM_SIZES,
    WEIGHTS,
    WordLlamaEmbedder,
    features,
)
from bot.semantic.head import L2, SCALE, STEPS, Head, train

SHIPPED_HEAD = Path(__file__).resolve().parents[1] / "data" / "semantic_head.npz"
"""The head for the shipped examples, built by ``python -m bot.semantic.build``; used only when
its digest matches the training set, so a stale file costs time, never correctness."""
VERSION = (f"{WEIGHTS}|bow{BOW_DIMS}|char{CHAR_DIMS}{GRAM_SIZES}x{CHAR_WEIGHT}|l2={L2}"
           f"|steps={STEPS}|scale={SCALE}")
"""Everything besides the examples that changes the head: part of its digest."""


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


def fit(embedder: WordLlamaEmbedder, training: list[ex.Example]) -> Head:
    """Train a head on ``training`` (deterministic)."""
    labels = np.array([ex.CLASSES.index(e.label) for e in training], dtype=np.int64)
    weights = np.array([e.weight for e in training])
    x = features(embedder, [e.text for e in training])
    return train(x, labels, len(ex.CLASSES), sample_weight=weights)


def find_head(embedder: WordLlamaEmbedder, training: list[ex.Example], digest: str,
              cache: Path | None) -> Head:
    """The head for ``training``: this process's, the shipped one, the cached one, or a new
    one (then cached, if the cache folder is writable)."""
    head = _HEADS.get(digest) or _read_head(SHIPPED_HEAD, digest)
    if head is None and cache is not None:
        head = _read_head(cache / f"semantic-head-{digest}.npz", digest)
    if head is None:
        head = fit(embedder, training)
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
                 cache: Path | None = None) -> None:
        self.embedder = embedder
        self.training = training
        self.digest = ex.digest(training, VERSION)
        self.head: Head = find_head(embedder, training, self.digest, cache)
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
        return (f"wordllama l2_supercat_256 + bag of words + character grams, logistic head on "
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
    return SemanticModel(embedder or shared_embedder(), training,
                         cache_dir() if cache is None else cache)
