"""Compile a rule set into one matcher and run it over an issue.

Literal phrases of every rule are kept as token tuples in one table and found leftmost-longest
in a single pass over the normalised tokens: signals, anchors and confusers together, so a
confuser ("cache poisoning") swallows the signal word it contains. A second table does the same
for severity cues and gates, so a cue word is never swallowed by a threat phrase. Regex patterns
all go into one RE2 set (one linear-time pass per text, no backtracking whatever the pattern).
The input is cut at ``settings.max_input_chars`` first, so time per issue is bounded.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field

import re2

from bot.decide.model import Issue
from bot.decide.normalize import normalize
from bot.decide.rules import RuleSet


@dataclass(frozen=True)
class _Role:
    kind: str  # phrase | ambiguous | pattern | confuser | anchor | cue | gate | traditional
    rule: str = ""
    weight: float = 0.0
    name: str = ""


@dataclass
class Hit:
    """One piece of evidence found for a category."""

    name: str
    weight: float
    where: str  # "title", "body" or "labels"
    kind: str  # phrase | ambiguous | pattern | label
    anchored: bool = True


@dataclass
class CategoryReport:
    """Everything the matcher saw for one category, before and after gates."""

    rule_id: str
    hits: list[Hit] = field(default_factory=list)
    unanchored: list[str] = field(default_factory=list)
    raw: float = 0.0
    score: float = 0.0


@dataclass
class MatchReport:
    """The matcher's full account of one issue (used by classify and explain)."""

    categories: dict[str, CategoryReport]
    cues: set[str]
    gates: set[str]
    factor: float
    traditional: list[str]
    confusers: list[str]
    truncated: bool


_Table = dict[tuple[str, ...], list[_Role]]
_Match = tuple[int, int, list[_Role]]


class _PhraseTable:
    """Phrases as token tuples, found leftmost-longest without overlaps in one pass.

    Two independent layers share the table: threat phrases (signals, anchors, confusers) and
    context phrases (cues, gates, traditional-bug words); each layer has its own leftmost-longest
    matching, so a cue word is never swallowed by a threat phrase. Only tokens that start some
    phrase are visited (a C-level set intersection finds them), so the cost is linear in the text
    and small for text that mentions nothing of interest.
    """

    def __init__(self, layers: tuple[dict[str, list[_Role]], dict[str, list[_Role]]]) -> None:
        self.tables: tuple[_Table, _Table] = (
            {tuple(k.split(" ")): v for k, v in layers[0].items()},
            {tuple(k.split(" ")): v for k, v in layers[1].items()},
        )
        lengths: dict[str, set[int]] = defaultdict(set)
        for table in self.tables:
            for key in table:
                lengths[key[0]].add(len(key))
        # Longest first, so the first hit at a position is the leftmost-longest one.
        self.lengths: dict[str, tuple[int, ...]] = {
            k: tuple(sorted(v, reverse=True)) for k, v in lengths.items()
        }

    def scan(self, tokens: list[str]) -> tuple[list[_Match], list[_Match]]:
        """Return the (start, length, roles) matches of each layer, in text order."""
        threat: list[_Match] = []
        context: list[_Match] = []
        hot = self.lengths.keys() & set(tokens)
        if not hot:
            return threat, context
        threat_table, context_table = self.tables
        lengths = self.lengths
        n_tokens = len(tokens)
        free = [0, 0]
        for i in [i for i, tok in enumerate(tokens) if tok in hot]:
            need_threat = i >= free[0]
            need_context = i >= free[1]
            for n in lengths[tokens[i]]:
                if not (need_threat or need_context):
                    break
                if i + n > n_tokens:
                    continue
                key = tuple(tokens[i : i + n])
                if need_threat and (roles := threat_table.get(key)) is not None:
                    threat.append((i, n, roles))
                    free[0] = i + n
                    need_threat = False
                if need_context and (roles := context_table.get(key)) is not None:
                    context.append((i, n, roles))
                    free[1] = i + n
                    need_context = False
        return threat, context


class Matcher:
    """A rule set compiled for matching; build once, use for many issues."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        settings = ruleset.settings
        self._threat_roles: dict[str, list[_Role]] = defaultdict(list)
        self._context_roles: dict[str, list[_Role]] = defaultdict(list)
        # Every RE2 pattern (rule signals, cues, gates) in one set: one linear pass per text.
        self._pattern_set = re2.Set.SearchSet()
        self._pattern_roles: list[_Role] = []
        self._labels: dict[str, list[str]] = defaultdict(list)
        for rule in ruleset.rules.values():
            for sig in rule.phrases:
                self._threat_roles[sig.text].append(_Role("phrase", rule.id, sig.weight, sig.name))
            for sig in rule.ambiguous:
                self._threat_roles[sig.text].append(
                    _Role("ambiguous", rule.id, sig.weight, sig.name))
            for sig in rule.patterns:
                self._add_pattern(sig.text, _Role("pattern", rule.id, sig.weight, sig.name))
            for conf in rule.confusers:
                self._threat_roles[conf].append(_Role("confuser", rule.id))
            for label in rule.labels:
                self._labels[label].append(rule.id)
        for conf in settings.confusers:
            self._threat_roles[conf].append(_Role("confuser"))
        for anchor in settings.anchors:
            self._threat_roles[anchor].append(_Role("anchor"))
        for cue in settings.cues.values():
            for phrase in cue.phrases:
                self._context_roles[phrase].append(_Role("cue", name=cue.id))
            for pat in cue.patterns:
                self._add_pattern(pat, _Role("cue", name=cue.id))
        for gate in settings.gates.values():
            for phrase in gate.phrases:
                self._context_roles[phrase].append(_Role("gate", name=gate.id))
            for pat in gate.patterns:
                self._add_pattern(pat, _Role("gate", name=gate.id))
        for phrase in settings.traditional:
            self._context_roles[phrase].append(_Role("traditional", name=phrase))
        self._phrases = _PhraseTable((self._threat_roles, self._context_roles))
        self._pattern_set.Compile()

    def _add_pattern(self, pattern: str, role: _Role) -> None:
        index = self._pattern_set.Add(pattern)
        assert index == len(self._pattern_roles)
        self._pattern_roles.append(role)

    def _patterns(self, text: str) -> list[_Role]:
        found = self._pattern_set.Match(text) if self._pattern_roles else None
        return [self._pattern_roles[i] for i in sorted(found or ())]

    def match(self, issue: Issue) -> MatchReport:
        """Run every rule over ``issue`` and report what was found."""
        settings = self.ruleset.settings
        limit = settings.max_input_chars
        truncated = len(issue.title) + len(issue.body) > limit
        title = normalize(issue.title, limit)
        body = normalize(issue.body, max(0, limit - len(issue.title)))
        reports = {rid: CategoryReport(rid) for rid in self.ruleset.rules}
        seen: dict[str, dict[str, Hit]] = {rid: {} for rid in self.ruleset.rules}
        confusers: list[str] = []

        def add(rule_id: str, hit: Hit) -> None:
            best = seen[rule_id].get(hit.name)
            # Each distinct signal counts once, at its best (title beats body).
            if best is None or hit.weight > best.weight:
                seen[rule_id][hit.name] = hit

        title_anchored = False
        pattern_roles: list[_Role] = []
        context: list[_Match] = []
        window = settings.anchor_window
        for where, text in (("title", title), ("body", body)):
            if not text:
                continue
            tokens = text.split(" ")
            mult = settings.title_weight if where == "title" else 1.0
            anchors: list[int] = []
            pending: list[tuple[int, _Role]] = []
            threat_matches, context_matches = self._phrases.scan(tokens)
            context.extend(context_matches)
            for start, length, roles in threat_matches:
                for role in roles:
                    if role.kind == "phrase":
                        add(role.rule, Hit(role.name, role.weight * mult, where, "phrase"))
                        anchors.append(start)
                    elif role.kind == "anchor":
                        anchors.append(start)
                    elif role.kind == "ambiguous":
                        pending.append((start, role))
                    elif role.kind == "confuser":
                        phrase = " ".join(tokens[start : start + length])
                        if phrase not in confusers:
                            confusers.append(phrase)
            if where == "title" and anchors:
                title_anchored = True
            for start, role in pending:
                i = bisect.bisect_left(anchors, start - window)
                near = i < len(anchors) and anchors[i] <= start + window
                if near or title_anchored:
                    add(role.rule, Hit(role.name, role.weight * mult, where, "ambiguous"))
                else:
                    reports[role.rule].unanchored.append(role.name)
            for role in self._patterns(text):
                if role.kind == "pattern":
                    add(role.rule, Hit(role.name, role.weight * mult, where, "pattern"))
                else:
                    pattern_roles.append(role)

        for label in issue.labels:
            for rule_id in self._labels.get(label.casefold(), ()):
                add(rule_id, Hit(f"label: {label}", 1.0, "labels", "label"))

        cues: set[str] = set()
        gates: set[str] = set()
        traditional: list[str] = []
        for role in pattern_roles + [r for _, _, roles in context for r in roles]:
            if role.kind == "cue":
                cues.add(role.name)
            elif role.kind == "gate":
                gates.add(role.name)
            elif role.name not in traditional:
                traditional.append(role.name)

        factor = 1.0
        gate_defs = settings.gates
        if "research" in gates and "vulnerability" not in gates:
            factor *= gate_defs["research"].factor
        if "negation" in gates:
            factor *= gate_defs["negation"].factor
        for rule_id, report in reports.items():
            report.hits = sorted(seen[rule_id].values(), key=lambda h: (-h.weight, h.name))
            report.raw = sum(h.weight for h in report.hits)
            report.score = report.raw * factor
        return MatchReport(reports, cues, gates, factor, traditional, confusers, truncated)
