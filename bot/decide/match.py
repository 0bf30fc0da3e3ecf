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
from typing import Any

import ahocorasick
import re2

from bot.decide.model import Issue
from bot.decide.normalize import normalize
from bot.decide.prose import split_prose
from bot.decide.rules import NearSignal, RuleSet


@dataclass(frozen=True)
class _Role:
    kind: str  # phrase | ambiguous | pattern | near | confuser | anchor | cue | gate | traditional
    rule: str = ""
    weight: float = 0.0
    name: str = ""
    signal: int = -1  # near: index into Matcher._near
    group: int = -1  # near: which group of the signal


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
    """All phrases of all layers in one Aho-Corasick automaton: one C-level pass per text.

    Layers: threat phrases (signals, anchors, confusers), context phrases (cues, gates,
    traditional-bug words) and proximity terms. Threat and context layers keep leftmost-longest
    matches without overlaps, each on its own, so a cue word is never swallowed by a threat
    phrase and a confuser ("cache poisoning") swallows the signal word it contains. The
    proximity layer keeps every match, overlapping or not. Phrases are searched with a space on
    each side in text that is single-spaced tokens, so every match is on word boundaries.
    Time is linear in the text plus the matches found.
    """

    OVERLAPPING = frozenset({2})

    def __init__(self, layers: list[dict[str, list[_Role]]]) -> None:
        self.n_layers = len(layers)
        entries: dict[str, list[list[_Role] | None]] = {}
        for k, layer in enumerate(layers):
            for phrase, roles in layer.items():
                entries.setdefault(phrase, [None] * self.n_layers)[k] = roles
        self.automaton = ahocorasick.Automaton()
        for phrase, per_layer in entries.items():
            key = f" {phrase} "
            present = tuple((k, roles) for k, roles in enumerate(per_layer) if roles is not None)
            self.automaton.add_word(key, (len(key), phrase.count(" ") + 1, present))
        self.empty = not entries
        if not self.empty:
            self.automaton.make_automaton()

    def scan(self, text: str) -> list[list[_Match]]:
        """Return the (token start, token length, roles) matches of each layer, in order."""
        n_layers = self.n_layers
        found: list[list[_Match]] = [[] for _ in range(n_layers)]
        if self.empty or not text:
            return found
        padded = f" {text} "
        candidates: list[list[_Match]] = [[] for _ in range(n_layers)]
        last_char = last_tok = 0
        for end, (key_len, n_tokens, present) in self.automaton.iter(padded):
            # The match starts at a space; the spaces before it count the tokens before it.
            # Matches arrive in order of their end, so count only from the previous one.
            char = end - key_len + 1
            if char >= last_char:
                start = last_tok + padded.count(" ", last_char, char)
            else:
                start = last_tok - padded.count(" ", char, last_char)
            last_char, last_tok = char, start
            for k, roles in present:
                candidates[k].append((start, n_tokens, roles))
        for k in range(n_layers):
            matches = candidates[k]
            if k in self.OVERLAPPING:
                found[k] = sorted(matches, key=lambda m: m[0])
                continue
            matches.sort(key=lambda m: (m[0], -m[1]))
            free = 0
            kept = found[k]
            for match in matches:
                if match[0] >= free:
                    kept.append(match)
                    free = match[0] + match[1]
        return found


def _minimal(group: tuple[str, ...]) -> list[str]:
    """Drop phrases that contain another phrase of the same group as whole words.

    Proximity terms match overlapping, so "bypassed with" adds nothing when "bypassed" is in
    the group; dropping it saves a match per occurrence.
    """
    padded = {p: f" {p} " for p in group}
    return [p for p in group
            if not any(q != p and padded[q] in padded[p] for q in group)]


def _within(positions: list[list[int]], window: int) -> bool:
    """True if one position from every list fits in a span of ``window`` words."""
    events = sorted((pos, g) for g, plist in enumerate(positions) for pos in plist)
    need = len(positions)
    counts = [0] * need
    covered = 0
    left = 0
    for pos, group in events:
        if counts[group] == 0:
            covered += 1
        counts[group] += 1
        while events[left][0] < pos - window:
            g = events[left][1]
            counts[g] -= 1
            if counts[g] == 0:
                covered -= 1
            left += 1
        if covered == need:
            return True
    return False


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
        self._near_roles: dict[str, list[_Role]] = {}
        self._near: list[tuple[str, NearSignal]] = []
        # Proximity phrase id -> every (signal, group) it belongs to; a phrase shared by twenty
        # signals is matched once and fanned out only when it occurs.
        self._near_members: list[list[tuple[int, int]]] = []
        self._near_group_of: list[dict[int, list[int]]] = []  # signal -> phrase id -> groups
        for rule in ruleset.rules.values():
            for near in rule.near:
                index = len(self._near)
                self._near.append((rule.id, near))
                for g, group in enumerate(near.groups):
                    for phrase in _minimal(group):
                        if phrase not in self._near_roles:
                            self._near_roles[phrase] = [
                                _Role("near", signal=len(self._near_members))]
                            self._near_members.append([])
                        phrase_id = self._near_roles[phrase][0].signal
                        self._near_members[phrase_id].append((index, g))
                        while len(self._near_group_of) <= index:
                            self._near_group_of.append({})
                        self._near_group_of[index].setdefault(phrase_id, []).append(g)
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
        # Gates read only the author's prose (bot/decide/prose.py), so they get their own table.
        gate_roles: dict[str, list[_Role]] = defaultdict(list)
        self._gate_patterns: list[tuple[str, Any]] = []
        for gate in settings.gates.values():
            for phrase in gate.phrases:
                gate_roles[phrase].append(_Role("gate", name=gate.id))
            for pat in gate.patterns:
                self._gate_patterns.append((gate.id, re2.compile(pat)))
        self._gates = _PhraseTable([gate_roles])
        for phrase in settings.traditional:
            self._context_roles[phrase].append(_Role("traditional", name=phrase))
        self._phrases = _PhraseTable(
            [self._threat_roles, self._context_roles, self._near_roles])
        self._pattern_set.Compile()

    def _add_pattern(self, pattern: str, role: _Role) -> None:
        index = self._pattern_set.Add(pattern)
        assert index == len(self._pattern_roles)
        self._pattern_roles.append(role)

    def _near_hits(
        self, matches: list[_Match], blocked: list[tuple[int, int]]
    ) -> list[tuple[str, NearSignal]]:
        if not matches:
            return []
        occurrences: dict[int, list[int]] = {}
        for start, _, roles in matches:
            # Inside a confuser ("cache poisoning") a word is not evidence.
            if blocked and any(a <= start < b for a, b in blocked):
                continue
            phrase_id = roles[0].signal
            if phrase_id in occurrences:
                occurrences[phrase_id].append(start)
            else:
                occurrences[phrase_id] = [start]
        # First which groups of which signals are present at all (a bit mask per signal),
        # then positions only for the signals with every group present.
        masks: dict[int, int] = defaultdict(int)
        members = self._near_members
        for phrase_id in occurrences:
            for index, g in members[phrase_id]:
                masks[index] |= 1 << g
        out = []
        for index, mask in masks.items():
            rule_id, near = self._near[index]
            if mask != (1 << len(near.groups)) - 1:
                continue
            groups: list[list[int]] = [[] for _ in near.groups]
            group_of = self._near_group_of[index]
            for phrase_id, starts in occurrences.items():
                for g in group_of.get(phrase_id, ()):
                    groups[g].extend(starts)
            if _within(groups, near.window):
                out.append((rule_id, near))
        return out

    def _gate_ids(self, text: str) -> set[str]:
        gates: set[str] = set()
        for _, _, roles in self._gates.scan(text)[0]:
            gates.update(role.name for role in roles)
        for gate_id, pattern in self._gate_patterns:
            if gate_id not in gates and pattern.search(text):
                gates.add(gate_id)
        return gates

    def _patterns(self, text: str) -> list[_Role]:
        found = self._pattern_set.Match(text) if self._pattern_roles else None
        return [self._pattern_roles[i] for i in sorted(found or ())]

    def match(self, issue: Issue) -> MatchReport:
        """Run every rule over ``issue`` and report what was found."""
        settings = self.ruleset.settings
        limit = settings.max_input_chars
        truncated = len(issue.title) + len(issue.body) > limit
        title = normalize(issue.title, limit)
        # Prose and code/quotes are normalised once each: gates read the prose alone, signals
        # read both (prose first, then the rest).
        prose_raw, rest_raw = split_prose(issue.body[: max(0, limit - len(issue.title))])
        prose = normalize(prose_raw)
        rest = normalize(rest_raw) if rest_raw else ""
        body = f"{prose} {rest}" if prose and rest else (prose or rest)
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
            threat_matches, context_matches, near_matches = self._phrases.scan(text)
            context.extend(context_matches)
            blocked: list[tuple[int, int]] = []
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
                        blocked.append((start, start + length))
                        phrase = " ".join(tokens[start : start + length])
                        if phrase not in confusers:
                            confusers.append(phrase)
            for rule_id, near in self._near_hits(near_matches, blocked):
                add(rule_id, Hit(near.name, near.weight * mult, where, "near"))
            if where == "title" and anchors:
                title_anchored = True
            for start, role in pending:
                i = bisect.bisect_left(anchors, start - window)
                close = i < len(anchors) and anchors[i] <= start + window
                if close or title_anchored:
                    add(role.rule, Hit(role.name, role.weight * mult, where, "ambiguous"))
                else:
                    reports[role.rule].unanchored.append(role.name)
            for role in self._patterns(text):
                if role.kind == "pattern":
                    add(role.rule, Hit(role.name, role.weight * mult, where, "pattern"))
                else:
                    pattern_roles.append(role)

        gates = self._gate_ids(title) | self._gate_ids(prose)
        for label in issue.labels:
            for rule_id in self._labels.get(label.casefold(), ()):
                add(rule_id, Hit(f"label: {label}", 1.0, "labels", "label"))

        cues: set[str] = set()
        traditional: list[str] = []
        for role in pattern_roles + [r for _, _, roles in context for r in roles]:
            if role.kind == "cue":
                cues.add(role.name)
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
