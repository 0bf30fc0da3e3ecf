"""Training examples for the semantic head: shipped with the project, plus local folders.

Shipped: every rule's own examples (``match`` → its category; ``no_match`` → not a threat unless
another rule lists the same text as a match) and the JSON Lines files ``bot/data/train_*.jsonl``.
Local: every ``*.jsonl`` in the folders given by ``--examples`` / ``BUGBAR_EXAMPLES`` and in an
``examples/`` folder inside each rules folder, in the format ``bugbar corrections export``
writes: ``{"id", "title", "body", "labels", "expect": [category] or [], "source"}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.decide.model import CATEGORY_IDS
from bot.decide.rules import RuleSet

NONE = "none"
CLASSES: tuple[str, ...] = (*CATEGORY_IDS, NONE)
"""The head's ten classes: the nine categories and not-a-threat (last)."""

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "data"
LOCAL_WEIGHT = 5.0
"""A local example (a maintainer's correction) counts this many shipped ones: one correction
must be enough to change the decision on the case it covers."""


class ExamplesError(Exception):
    """A local examples file is unreadable or malformed; the message names file and line."""


@dataclass(frozen=True)
class Example:
    """One labelled text for the head."""

    id: str
    title: str
    body: str
    label: str
    source: str
    weight: float = 1.0

    @property
    def text(self) -> str:
        """What the model embeds."""
        return issue_text(self.title, self.body)


def issue_text(title: str, body: str) -> str:
    """The text the model embeds for an issue (title, then body)."""
    return f"{title}\n{body}"


def rule_examples(ruleset: RuleSet) -> list[Example]:
    """The rules' own examples: matches as their category, no-matches as not a threat.

    A custom category's matches are left out (the head knows the nine), but still keep the
    same text from being learned as not a threat."""
    out: list[Example] = []
    positives: set[str] = set()
    for rule in ruleset.rules.values():
        for n, ex in enumerate((*rule.tests_match, *rule.tests_todo_match)):
            positives.add(issue_text(ex.title, ex.body))
            if rule.id in CATEGORY_IDS:
                out.append(Example(f"{rule.id}:match:{n}", ex.title, ex.body, rule.id,
                                   rule.path))
    for rule in ruleset.rules.values():
        for n, ex in enumerate((*rule.tests_no_match, *rule.tests_todo_no_match)):
            if issue_text(ex.title, ex.body) not in positives:
                out.append(Example(f"{rule.id}:no_match:{n}", ex.title, ex.body, NONE,
                                   rule.path))
    return out


def read_file(path: Path, weight: float = 1.0,
              custom: Collection[str] = ()) -> Iterator[Example]:
    """Examples from one JSON Lines file; raises ExamplesError naming the bad line.

    An example of one of the install's own ``custom`` categories is left to the rules: the
    head knows the nine categories only.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExamplesError(f"{path}: cannot read examples ({exc})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExamplesError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ExamplesError(f"{where}: expected an object with title, body, expect")
        title, body = record.get("title") or "", record.get("body") or ""
        expect = record.get("expect")
        if not isinstance(title, str) or not isinstance(body, str):
            raise ExamplesError(f"{where}: 'title' and 'body' must be text")
        if not isinstance(expect, list) or not all(isinstance(x, str) for x in expect):
            raise ExamplesError(f"{where}: 'expect' must be a list of category ids ([] for "
                                "not a threat)")
        cats = [x for x in expect if x not in (NONE, "not-a-threat")]
        unknown = [x for x in cats if x not in CATEGORY_IDS and x not in custom]
        if unknown:
            raise ExamplesError(f"{where}: unknown category {unknown[0]!r} in 'expect'")
        if cats and cats[0] not in CATEGORY_IDS:
            continue
        if record.get("kind") == "label-only":
            # Its evidence is a tracker label, which the head does not read: learning its
            # terse text ("details in the private report") as a category teaches noise.
            continue
        label = cats[0] if cats else NONE
        yield Example(str(record.get("id", where)), title, body, label,
                      str(record.get("source") or path.name), weight)


def shipped_examples(ruleset: RuleSet, shipped_dir: Path = SHIPPED_DIR) -> list[Example]:
    """Everything the project ships: rule examples and ``bot/data/train_*.jsonl``."""
    out = rule_examples(ruleset)
    for path in sorted(shipped_dir.glob("train_*.jsonl")):
        out.extend(read_file(path))
    return out


def local_dirs(examples: Iterable[str], rules_dirs: Iterable[str]) -> list[Path]:
    """Local example folders: the given ones, then ``examples/`` inside each rules folder."""
    dirs = [Path(d) for d in examples]
    for d in dirs:
        if not d.is_dir():
            raise ExamplesError(f"{d}: examples folder not found")
    dirs += [p for p in (Path(r) / "examples" for r in rules_dirs) if p.is_dir()]
    return dirs


def local_examples(dirs: Iterable[Path], custom: Collection[str] = ()) -> list[Example]:
    """Every ``*.jsonl`` in the local folders, weighted as corrections."""
    out: list[Example] = []
    for d in dirs:
        for path in sorted(d.glob("*.jsonl")):
            out.extend(read_file(path, LOCAL_WEIGHT, custom))
    return out


def digest(examples: Iterable[Example], version: str = "") -> str:
    """A content hash of a training set and of how it is trained (identifies the head)."""
    h = hashlib.sha256(version.encode() + b"\0")
    for ex in examples:
        h.update(f"{ex.label}\0{ex.weight}\0{ex.text}\0".encode())
    return h.hexdigest()[:12]
