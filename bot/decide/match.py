"""Compile a rule set into one matcher and run it over an issue.

Every literal phrase of every rule (signals, anchors, confusers, cues, traditional-bug words,
gates, proximity terms) is one key of one Aho-Corasick automaton, found in a single pass over the
normalised text of the title and of the body. Each layer then keeps its own leftmost-longest
matches, so a confuser ("cache poisoning") swallows the signal word it contains while a cue word
is never swallowed by a threat phrase. Proximity signals are found by bit masks (which signals
have a term of every group at all) and one sweep over the candidates' terms. Regex patterns all
go into one RE2 set (one linear-time pass per text, no backtracking whatever the pattern). The
input is cut at ``settings.max_input_chars`` first, so time per issue is bounded.
"""

from __future__ import annotations

import bisect
import fnmatch
import functools
import operator
import re
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import ahocorasick_rs
import re2

try:  # the compiled loop, when the install could build it (setup.py); same results
    from bot.decide._speedups import TextScan
except ImportError:  # pragma: no cover - exercised where no C compiler is found
    TextScan = None

from bot.decide.model import Issue
from bot.decide.normalize import normalize_bytes
from bot.decide.prose import split_prose
from bot.decide.rules import NearSignal, RuleSet, label_key


@dataclass(frozen=True, slots=True)
class _Role:
    kind: str  # phrase | ambiguous | pattern | confuser | anchor | cue | gate | traditional
    rule: str = ""
    weight: float = 0.0
    name: str = ""


@dataclass(slots=True)
class Hit:
    """One piece of evidence found for a category."""

    name: str
    weight: float
    where: str  # "title", "body" or "labels"
    kind: str  # phrase | ambiguous | pattern | near | label


@dataclass(slots=True)
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

    categories: dict[str, CategoryReport]  # only categories with evidence or ignored words
    cues: set[str]
    gates: set[str]
    factor: float
    traditional: list[str]
    confusers: list[str]
    truncated: bool
    context_labels: dict[str, str] = field(default_factory=dict)
    """Generic labels that added context, by kind (``ml``, ``security``)."""
    held: tuple[str, ...] = ()
    """The gates that scaled the scores down (the strongest hold, and negation)."""
    stated: bool = False
    """The text states a finding or an incident (vulnerability or incident phrasing in the
    title or body; a security label alone does not)."""


# (pattern index, key start, key end): offsets into the padded text, as the automaton reports
_Found = tuple[int, int, int]
# A threat-layer pattern: (its phrase signals, is it an anchor, its ambiguous signals,
# is it a confuser).
_ThreatInfo = tuple[tuple[tuple[str, str, float, str], ...], bool, tuple["_Role", ...], bool]
# One text's matches before scoring: phrase hits (rule, name, weight, kind), anchor starts,
# ambiguous words (start, role), confuser spans, cue names, traditional-bug names, gate
# matches, indexes of the proximity signals that hold.
_Layered = tuple[list[tuple[str, str, float, str]], list[int], list[tuple[int, "_Role"]],
                 list[tuple[int, int]], list[str], list[str], list[_Found], list[int]]

# Per-pattern layer bits of the compiled loop's table (the same values as in _speedups.pyx).
_KIND_THREAT, _KIND_CONTEXT, _KIND_GATE, _KIND_CONFUSER = 1, 2, 4, 8

# Gates that cancel holds or always apply, rather than holding a category back themselves.
_NOT_HOLDING = frozenset(("vulnerability", "negation", "incident"))
# Gates that say the text states a finding or an incident.
_STATED = frozenset(("vulnerability", "incident"))
# Gates read only where they start the title: words that say what the issue is when they head
# it ("Feature: ...", "Proposal: ...") but are product nouns further on ("Voice clone feature
# used for prank calls") and end many a report's body ("Proposal: add a quota").
_TITLE_ONLY = frozenset(("heading",))

# A sentence and the mark that ends it (or the end of the text). Linear: one character class.
_SENTENCE = re.compile(r"[^.!?\n\u3002\uff01\uff1f]*[.!?\n\u3002\uff01\uff1f]?")
_QUESTION_MARKS = ("?", "\uff1f")


def statements_only(text: str) -> str:
    """``text`` without its questions: the sentences that end with a question mark.

    Vulnerability phrasing asked ("Is our face model vulnerable to printed photos?", "¿Es
    vulnerable nuestro clasificador?") is not a finding stated, in any language.
    """
    if not any(q in text for q in _QUESTION_MARKS):
        return text
    return " ".join(m.group() for m in _SENTENCE.finditer(text)
                    if not m.group().endswith(_QUESTION_MARKS))

_INDEX = operator.itemgetter(0)
_START = operator.itemgetter(1)
_END = operator.itemgetter(2)


def _HIT_ORDER(hit: Hit) -> tuple[float, str]:
    return (-hit.weight, hit.name)


def _longest(found: list[_Found]) -> list[_Found]:
    """Leftmost-longest matches without overlaps (the words of a match belong to it alone).

    Keys carry a space on each side, so two keys that only share the space between two words
    do not overlap: overlap is judged on the words inside the spaces.
    """
    if len(found) < 2:
        return found
    # By start, longest first on a tie: two stable C-level sorts instead of a Python key.
    found.sort(key=_END, reverse=True)
    found.sort(key=_START)
    kept = []
    free = 0
    for m in found:
        if m[1] + 1 >= free:
            kept.append(m)
            free = m[2] - 1
    return kept


class _Scanner:
    """Every phrase of every layer in one Aho-Corasick automaton: one pass per text.

    The automaton is the Rust ``aho-corasick`` crate's DFA (through ``ahocorasick_rs``): linear
    in the text, and all matches come back in one list, so Python does no per-character work.
    Layers: threat phrases (signals, anchors, confusers), context phrases (cues, traditional-bug
    words), gate phrases and proximity terms. Phrases are searched with a space on each side in
    text of single-spaced tokens, so every match is on word boundaries; all overlapping matches
    are reported, in the order of their ends, and each layer then keeps its own leftmost-longest
    set, so a cue word is never swallowed by a threat phrase and a confuser ("cache poisoning")
    swallows the signal word it contains.
    """

    def __init__(
        self,
        threat: dict[str, list[_Role]],
        context: dict[str, list[_Role]],
        near: dict[str, int],
        gate: dict[str, list[_Role]],
    ) -> None:
        # Proximity-only terms go last, so one comparison tells them from the rest: they are
        # most of the matches and need no sorting into layers.
        mixed = list(dict.fromkeys([*threat, *context, *gate]))
        phrases = mixed + [p for p in near if p not in threat and p not in context
                           and p not in gate]
        self.near_from = len(mixed)
        self.term = [near.get(p, -1) for p in phrases]
        # Per pattern, what each layer does with a match, worked out once here.
        self.threat: list[_ThreatInfo | None] = []
        self.context: list[tuple[tuple[str, ...], tuple[str, ...]] | None] = []
        self.gate: list[tuple[str, ...] | None] = []
        for p in phrases:
            roles = threat.get(p)
            self.threat.append(None if not roles else (
                tuple((r.rule, r.name, r.weight, "phrase") for r in roles if r.kind == "phrase"),
                any(r.kind in ("phrase", "anchor") for r in roles),
                tuple(r for r in roles if r.kind == "ambiguous"),
                any(r.kind == "confuser" for r in roles)))
            roles = context.get(p)
            self.context.append(None if not roles else (
                tuple(r.name for r in roles if r.kind == "cue"),
                tuple(r.name for r in roles if r.kind == "traditional")))
            roles = gate.get(p)
            self.gate.append(tuple(r.name for r in roles) if roles else None)
        self.automaton = (
            ahocorasick_rs.BytesAhoCorasick(
                [f" {p} ".encode() for p in phrases],
                implementation=ahocorasick_rs.Implementation.DFA)
            if phrases else None)

    def find(self, padded: bytes) -> list[_Found]:
        """Every match in ``padded`` (text with a space each side), in the order of its end."""
        if self.automaton is None:
            return []
        found: list[_Found] = self.automaton.find_matches_as_indexes(padded, overlapping=True)
        return found

    def layers(self, found: list[_Found]) -> tuple[list[_Found], list[_Found], list[_Found]]:
        """Threat and context matches (each leftmost-longest) and gate matches (all)."""
        split = self.near_from
        mixed = [m for m in found if m[0] < split]
        threat_info = self.threat
        context_info = self.context
        gate_info = self.gate
        threat = [m for m in mixed if threat_info[m[0]] is not None]
        context = [m for m in mixed if context_info[m[0]] is not None]
        gate = [m for m in mixed if gate_info[m[0]] is not None]
        return _longest(threat), _longest(context), gate


def _token_indexes(padded: bytes, starts: list[int]) -> list[int]:
    """Token index of each key start in ``starts`` (sorted): the spaces before it, counted
    incrementally, so the whole list costs one pass over the text."""
    out = []
    last = 0
    count = -1
    for s in starts:
        count += padded.count(b" ", last, s + 1)
        last = s + 1
        out.append(count)
    return out


def _minimal(group: tuple[str, ...]) -> list[str]:
    """Drop phrases that contain another phrase of the same group as whole words.

    Proximity terms match overlapping, so "bypassed with" adds nothing when "bypassed" is in
    the group; dropping it saves a match per occurrence.
    """
    padded = {p: f" {p} " for p in group}
    return [p for p in group
            if not any(q != p and padded[q] in padded[p] for q in group)]


class Matcher:
    """A rule set compiled for matching; build once, use for many issues."""

    def __init__(self, ruleset: RuleSet, compiled: bool = True) -> None:
        """``compiled=False`` keeps to the pure-Python loop even where the compiled one was
        built (tests check that both give the same reports)."""
        self.ruleset = ruleset
        settings = ruleset.settings
        threat: dict[str, list[_Role]] = defaultdict(list)
        context: dict[str, list[_Role]] = defaultdict(list)
        gate: dict[str, list[_Role]] = defaultdict(list)
        # Every RE2 pattern (rule signals, cues) in one set: one linear pass per text. Gate
        # patterns read only the prose, so they get a set of their own.
        self._pattern_set = re2.Set.SearchSet()
        self._pattern_roles: list[_Role] = []
        self._gate_set = re2.Set.SearchSet()
        self._gate_pattern_ids: list[str] = []
        # Tracker labels: exact keys in a dict, globs ("threat/*") tried one by one (few).
        self._labels: dict[str, list[str]] = defaultdict(list)
        self._label_globs: list[tuple[str, str]] = []
        # Proximity signals. A term shared by twenty signals is matched once; its bits say which
        # group of which signal it belongs to (4 bits per signal, one per group), so the
        # signals with every group present are found with a few integer operations.
        near_ids: dict[str, int] = {}
        near_signals: list[tuple[str, NearSignal]] = []
        group_of_term: list[dict[int, list[int]]] = []  # signal -> term -> its groups
        term_bits: list[int] = []
        pad = low = 0
        for rule in ruleset.rules.values():
            for near in rule.near:
                index = len(near_signals)
                near_signals.append((rule.id, near))
                group_of_term.append({})
                low |= 1 << (4 * index)
                for g in range(len(near.groups), 4):
                    pad |= 1 << (4 * index + g)  # groups a signal lacks count as present
                for g, group in enumerate(near.groups):
                    for phrase in _minimal(group):
                        term = near_ids.setdefault(phrase, len(near_ids))
                        if term == len(term_bits):
                            term_bits.append(0)
                        term_bits[term] |= 1 << (4 * index + g)
                        group_of_term[index].setdefault(term, []).append(g)
            for sig in rule.phrases:
                threat[sig.text].append(_Role("phrase", rule.id, sig.weight, sig.name))
            for sig in rule.ambiguous:
                threat[sig.text].append(_Role("ambiguous", rule.id, sig.weight, sig.name))
            for sig in rule.patterns:
                self._add_pattern(sig.text, _Role("pattern", rule.id, sig.weight, sig.name))
            for conf in rule.confusers:
                threat[conf].append(_Role("confuser", rule.id))
            own = (label_key(settings.label_threat.format(id=rule.id)), rule.id)
            for label in dict.fromkeys((*rule.labels, *own)):
                if any(c in label for c in "*?["):
                    self._label_globs.append((label, rule.id))
                elif rule.id not in self._labels[label]:
                    self._labels[label].append(rule.id)
        self._context_labels = {
            kind: ({p for p in pats if not any(c in p for c in "*?[")},
                   [p for p in pats if any(c in p for c in "*?[")])
            for kind, pats in settings.context_labels.items()}
        for conf in settings.confusers:
            threat[conf].append(_Role("confuser"))
        for anchor in settings.anchors:
            threat[anchor].append(_Role("anchor"))
        for cue in settings.cues.values():
            for phrase in cue.phrases:
                context[phrase].append(_Role("cue", name=cue.id))
            for pat in cue.patterns:
                self._add_pattern(pat, _Role("cue", name=cue.id))
        for gate_def in settings.gates.values():
            for phrase in gate_def.phrases:
                gate[phrase].append(_Role("gate", name=gate_def.id))
            for pat in gate_def.patterns:
                self._gate_set.Add(pat)
                self._gate_pattern_ids.append(gate_def.id)
        for phrase in settings.traditional:
            context[phrase].append(_Role("traditional", name=phrase))
        self._scanner = _Scanner(threat, context, near_ids, gate)
        # Bits of each pattern of the automaton (0 for what is not a proximity term).
        self._near_bits = [term_bits[t] if t >= 0 else 0 for t in self._scanner.term]
        index_of_term = {t: i for i, t in enumerate(self._scanner.term) if t >= 0}
        self._near = [
            (rule_id, signal, {index_of_term[t]: g for t, g in groups.items()})
            for (rule_id, signal), groups in zip(near_signals, group_of_term, strict=True)]
        self._near_pad = pad
        self._near_low = low
        self._compiled = self._compile_tables() if compiled and TextScan is not None else None
        self._pattern_set.Compile()
        self._gate_set.Compile()

    def _compile_tables(self) -> Any:
        """The same tables as flat arrays for the compiled loop (bot/decide/_speedups.pyx)."""
        scanner = self._scanner
        kind = bytearray()
        for threat, context, gate in zip(scanner.threat, scanner.context, scanner.gate,
                                         strict=True):
            kind.append((_KIND_THREAT if threat is not None else 0)
                        | (_KIND_CONTEXT if context is not None else 0)
                        | (_KIND_GATE if gate is not None else 0)
                        | (_KIND_CONFUSER if threat and threat[3] else 0))
        members: list[list[tuple[int, int]]] = [[] for _ in kind]
        for s, (_, _, group_of) in enumerate(self._near):
            for idx, groups in group_of.items():
                members[idx].extend((s, g) for g in groups)
        mstart, msig, mgrp = array("i", [0]), array("i"), bytearray()
        for pairs in members:
            for s, g in pairs:
                msig.append(s)
                mgrp.append(g)
            mstart.append(len(msig))
        ngroups = bytes(len(signal.groups) for _, signal, _ in self._near)
        window = array("i", [signal.window for _, signal, _ in self._near])
        return TextScan(bytes(kind), mstart, msig, bytes(mgrp), ngroups, window,
                        scanner.threat, scanner.context)

    def _add_pattern(self, pattern: str, role: _Role) -> None:
        index = self._pattern_set.Add(pattern)
        assert index == len(self._pattern_roles)
        self._pattern_roles.append(role)

    def _layered(self, found: list[_Found], padded: bytes) -> _Layered:
        """What one text's matches amount to, before scoring (the compiled loop in
        bot/decide/_speedups.pyx returns the same): phrase hits, anchor and ambiguous-word
        positions, confuser spans, cue and traditional-bug names, gate matches and the
        proximity signals that hold."""
        scanner = self._scanner
        threat, context, gate = scanner.layers(found)
        hits: list[tuple[str, str, float, str]] = []
        anchors: list[int] = []
        pending: list[tuple[int, _Role]] = []
        spans: list[tuple[int, int]] = []
        for idx, start, end in threat:
            phrases, anchor, ambiguous, confuser = scanner.threat[idx]  # type: ignore[misc]
            hits += phrases
            if anchor:
                anchors.append(start)
            for role in ambiguous:
                pending.append((start, role))
            if confuser:
                spans.append((start + 1, end - 1))
        cue_names: list[str] = []
        trad_names: list[str] = []
        for idx, _, _ in context:
            cue, trad = scanner.context[idx]  # type: ignore[misc]
            cue_names += cue
            trad_names += trad
        held = self._near_hits(found, spans, padded)
        return hits, anchors, pending, spans, cue_names, trad_names, gate, held

    def _near_hits(
        self, found: list[_Found], blocked: list[tuple[int, int]], padded: bytes
    ) -> list[int]:
        """Indexes of the proximity signals with a term of every group within their window."""
        present = set(map(_INDEX, found))
        bits = functools.reduce(operator.or_, map(self._near_bits.__getitem__, present), 0)
        # A signal is a candidate when all four of its bits are set (absent groups are padded).
        full = bits | self._near_pad
        ready = full & (full >> 1) & (full >> 2) & (full >> 3) & self._near_low
        if not ready:
            return []
        # Which group of which candidate each present term stands for.
        candidates: list[tuple[str, NearSignal, dict[int, list[int]]]] = []
        indexes: list[int] = []
        members: dict[int, list[tuple[int, int]]] = {}
        while ready:
            lowest = ready & -ready
            ready ^= lowest
            index = (lowest.bit_length() - 1) >> 2
            candidate = self._near[index]
            slot = len(candidates)
            candidates.append(candidate)
            indexes.append(index)
            group_of = candidate[2]
            for idx in group_of.keys() & present:
                slots = members.setdefault(idx, [])
                for g in group_of[idx]:
                    slots.append((slot, g))
        # Those terms' occurrences in text order (by key start, the space before the term).
        occurrences = sorted([(m[1], m[0]) for m in found if m[0] in members])
        if blocked:
            # Inside a confuser ("cache poisoning") a word is not evidence. Both lists are in
            # text order and the confusers do not overlap, so one walk does.
            kept = []
            j = 0
            for occurrence in occurrences:
                at = occurrence[0] + 1
                while j < len(blocked) and blocked[j][1] <= at:
                    j += 1
                if j == len(blocked) or at < blocked[j][0]:
                    kept.append(occurrence)
            occurrences = kept
        # One sweep: each candidate keeps the latest start of each of its groups and holds once
        # the oldest of them is within its window of words of the newest. Words between two
        # starts are the spaces between them; a word takes at least two characters with its
        # space, so a span of at most twice the window needs no counting.
        latest = [[-1] * len(c[1].groups) for c in candidates]
        windows = [c[1].window for c in candidates]
        held = [False] * len(candidates)
        for start, idx in occurrences:
            for slot, g in members[idx]:
                if held[slot]:
                    continue
                starts = latest[slot]
                starts[g] = start
                oldest = min(starts)
                if oldest >= 0 and (start - oldest <= 2 * windows[slot]
                                    or padded.count(b" ", oldest, start) <= windows[slot]):
                    held[slot] = True
        return [index for index, ok in zip(indexes, held, strict=True) if ok]

    def _gate_ids(self, padded: bytes, gate: list[_Found], end: int) -> set[str]:
        """Gates in the prose (``padded`` up to ``end``), from phrases and patterns."""
        names = self._scanner.gate
        found: set[str] = set()
        for idx, _, _ in _longest([m for m in gate if m[2] - 1 <= end]):
            found.update(names[idx] or ())
        if self._gate_pattern_ids and end > 1:
            for i in self._gate_set.Match(padded[1:end]) or ():
                found.add(self._gate_pattern_ids[i])
        return found

    def _heads(self, gate: list[_Found]) -> bool:
        """Whether a phrase of a title-only gate starts the text (``gate``: its gate matches)."""
        names = self._scanner.gate
        return any(start == 0 and not _TITLE_ONLY.isdisjoint(names[idx] or ())
                   for idx, start, _ in _longest(list(gate)))

    def _states_vulnerability(self, raw: str) -> bool:
        """Whether ``raw`` (a title or the prose of a body) has vulnerability phrasing outside
        its questions. Only texts with a question mark are scanned again."""
        stated = statements_only(raw)
        if stated is raw:
            return True
        text = normalize_bytes(stated, self.ruleset.settings.max_input_chars)
        if not text:
            return False
        padded = b" " + text + b" "
        _, _, gate = self._scanner.layers(self._scanner.find(padded))
        return "vulnerability" in self._gate_ids(padded, gate, len(padded) - 1)

    def match(self, issue: Issue) -> MatchReport:
        """Run every rule over ``issue`` and report what was found."""
        settings = self.ruleset.settings
        limit = settings.max_input_chars
        truncated = len(issue.title) + len(issue.body) > limit
        title = normalize_bytes(issue.title, limit)
        # Prose and code/quotes are normalised once each and scanned together; gates read the
        # prose part alone (its matches end before the code starts).
        prose_raw, rest_raw = split_prose(issue.body[: max(0, limit - len(issue.title))])
        prose = normalize_bytes(prose_raw)
        rest = normalize_bytes(rest_raw) if rest_raw else b""
        body = prose + b" " + rest if prose and rest else (prose or rest)
        # rule -> signal name -> (weight, where, kind): each distinct signal counts once, at
        # its best (title beats body on a tie, being first).
        seen: dict[str, dict[str, tuple[float, str, str]]] = defaultdict(dict)
        unanchored: dict[str, list[str]] = defaultdict(list)
        confusers: list[str] = []
        cues: set[str] = set()
        traditional: list[str] = []
        gates: set[str] = set()
        scanner = self._scanner
        label_rules, label_context = self.read_labels(issue.labels)
        # An ML-context label ("ml", "ai") anchors every ambiguous word, like an anchor in the
        # title; a security label counts as vulnerability phrasing (cancels the research gate).
        title_anchored = "ml" in label_context
        title_mention = False
        for where, text, prose_len in (("title", title, len(title)), ("body", body, len(prose))):
            if not text:
                continue
            padded = b" " + text + b" "
            found = scanner.find(padded)
            layered: _Layered = (self._compiled.run(found, padded) if self._compiled is not None
                                 else self._layered(found, padded))
            hits, anchors, pending, spans, cue_names, trad_names, gate, held = layered
            for a, b in spans:
                phrase = padded[a:b].decode("utf-8", "surrogatepass")
                if phrase not in confusers:
                    confusers.append(phrase)
            for index in held:
                rule_id, signal, _ = self._near[index]
                hits.append((rule_id, signal.name, signal.weight, "near"))
            if where == "title" and anchors:
                title_anchored = True
            if pending:
                self._ambiguous(padded, pending, anchors, title_anchored, hits, unanchored)
            if self._pattern_roles:
                for i in sorted(self._pattern_set.Match(text) or ()):
                    role = self._pattern_roles[i]
                    if role.kind == "pattern":
                        hits.append((role.rule, role.name, role.weight, "pattern"))
                    else:
                        cues.add(role.name)
            mult = settings.title_weight if where == "title" else 1.0
            for rule_id, name, weight, kind in hits:
                weight *= mult
                best = seen[rule_id].get(name)
                if best is None or weight > best[0]:
                    seen[rule_id][name] = (weight, where, kind)
            cues.update(cue_names)
            for name in trad_names:
                if name not in traditional:
                    traditional.append(name)
            if gate or self._gate_pattern_ids:
                found_gates = self._gate_ids(padded, gate, prose_len + 1)
                if found_gates & _TITLE_ONLY and (where == "body" or not self._heads(gate)):
                    found_gates -= _TITLE_ONLY
                if "vulnerability" in found_gates:
                    asked = issue.title if where == "title" else prose_raw
                    if not self._states_vulnerability(asked):
                        found_gates.discard("vulnerability")
                if where == "title" and "mention" in found_gates:
                    # A title that says what the issue is ("Docs: ...", "Paper summary: ...",
                    # "feat(...)") holds even where the body describes the attack it is about.
                    title_mention = True
                gates |= found_gates

        # A threat label is a person's statement: it decides its category whatever the text
        # says and no gate scales it (its weight is the threshold, added after the gates).
        label_weight = max(settings.threshold, 1.0)
        for label, rule_id in label_rules:
            name = f"label: {label}"
            if name not in seen[rule_id]:
                seen[rule_id][name] = (label_weight, "labels", "label")
        stated = bool(gates & _STATED)
        if "security" in label_context:
            gates.add("vulnerability")
        # A feature, docs or discussion label says what kind of issue a person filed: a
        # mention of an attack there holds like a mention in the title — vulnerability
        # phrasing does not cancel it (a feature request justifies itself with what an
        # attacker could do), only an incident does.
        if "mention" in label_context and "mention" in settings.gates:
            gates.add("mention")
            title_mention = True

        factor = 1.0
        gate_defs = settings.gates
        holds: list[str] = []
        # Research, mention and any other gate an install adds: the strongest one holds,
        # unless vulnerability phrasing says this is a report after all. An attack said to be
        # happening to a live system (``incident``: "someone is scraping", "was compromised")
        # cancels every hold, a mention in the title or a mention label included. Negation
        # always holds. A gate of factor 1 holds nothing: its phrases only swallow the gate
        # words they contain ("the docs assistant" is a product, not a docs page).
        # On a tie the gate listed first in settings names the hold (the shipped order puts
        # the broad ``mention`` before the narrower planning, question and library gates).
        order = {g: i for i, g in enumerate(gate_defs)}
        holding = sorted((gate_defs[g].factor, order[g], g) for g in gates
                         if g not in _NOT_HOLDING and g in gate_defs and gate_defs[g].factor < 1)
        if "incident" not in gates:
            if holding and "vulnerability" not in gates:
                factor *= holding[0][0]
                holds.append(holding[0][2])
            elif title_mention:
                factor *= gate_defs["mention"].factor
                holds.append("mention")
        if "negation" in gates:
            factor *= gate_defs["negation"].factor
            holds.append("negation")
        # Only categories with something to show get a report; the rest scored nothing.
        reports = {}
        for rule_id in self.ruleset.rules:
            signals = seen.get(rule_id)
            if not signals and rule_id not in unanchored:
                continue
            report = CategoryReport(rule_id, unanchored=unanchored.get(rule_id, []))
            if signals:
                report.hits = sorted(
                    (Hit(name, w, where, kind) for name, (w, where, kind) in signals.items()),
                    key=_HIT_ORDER)
                report.raw = sum(h.weight for h in report.hits)
                from_labels = (sum(h.weight for h in report.hits if h.kind == "label")
                               if label_rules else 0.0)
                report.score = (report.raw - from_labels) * factor + from_labels
            reports[rule_id] = report
        return MatchReport(reports, cues, gates, factor, traditional, confusers, truncated,
                           label_context, tuple(holds), stated)

    def read_labels(
        self, labels: tuple[str, ...]
    ) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """(label, rule id) for each threat label, and the generic labels by the context they
        add (``ml``, ``security``: first label of each)."""
        rules: list[tuple[str, str]] = []
        context: dict[str, str] = {}
        for label in labels:
            key = label_key(label)
            if not key:
                continue
            ids = list(self._labels.get(key, ()))
            ids += [rid for pat, rid in self._label_globs
                    if rid not in ids and fnmatch.fnmatchcase(key, pat)]
            if not ids and "/" in key:
                # A scoped label ("area/prompt-injection", "type::jailbreak") names a category
                # by its value when the whole label is not one of the rules' own.
                ids = list(self._labels.get(key.rsplit("/", 1)[1], ()))
            rules += [(label, rid) for rid in ids]
            for kind, (exact, globs) in self._context_labels.items():
                if kind not in context and (key in exact or any(
                        fnmatch.fnmatchcase(key, p) for p in globs)):
                    context[kind] = label
        return rules, context

    def _ambiguous(
        self,
        padded: bytes,
        pending: list[tuple[int, _Role]],
        anchors: list[int],
        title_anchored: bool,
        hits: list[tuple[str, str, float, str]],
        unanchored: dict[str, list[str]],
    ) -> None:
        """Ambiguous words count only with ML context: an anchor in the title, or one within
        ``anchor_window`` words in the same text."""
        if title_anchored or not anchors:
            close = [title_anchored] * len(pending)
        else:
            window = self.ruleset.settings.anchor_window
            spots = sorted(anchors + [s for s, _ in pending])
            token_of = dict(zip(spots, _token_indexes(padded, spots), strict=True))
            anchor_tokens = [token_of[a] for a in anchors]
            close = []
            for start, _ in pending:
                t = token_of[start]
                i = bisect.bisect_left(anchor_tokens, t - window)
                close.append(i < len(anchor_tokens) and anchor_tokens[i] <= t + window)
        for (_, role), ok in zip(pending, close, strict=True):
            if ok:
                hits.append((role.rule, role.name, role.weight, "ambiguous"))
            else:
                unanchored[role.rule].append(role.name)
