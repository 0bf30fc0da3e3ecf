"""The fast matcher against a slow, obvious one.

``bot/decide/match.py`` finds phrases with one automaton pass over bytes and works on character
offsets (leftmost-longest per layer, proximity by a sweep, confusers by interval walks). The
reference below states the same rules the plain way: a list of tokens, every phrase compared
at every position, every combination of proximity positions tried. Both must agree on every
issue, including random ones built from the rules' own words, punctuation, code and quotes.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import re2

from bot.decide.match import Matcher, TextScan, _minimal, statements_only
from bot.decide.model import Issue
from bot.decide.normalize import normalize
from bot.decide.prose import split_prose
from bot.decide.rules import RuleSet, label_key, load_rules

CORPUS = Path(__file__).parent / "corpus"
ROOT_DATA = Path(__file__).resolve().parents[1] / "bot" / "data"

Occurrence = tuple[int, int, str]  # (token start, token count, phrase)


def _index(phrases: dict[str, Any]) -> dict[str, list[list[str]]]:
    by_first: dict[str, list[list[str]]] = defaultdict(list)
    for phrase in phrases:
        by_first[phrase.split(" ")[0]].append(phrase.split(" "))
    return by_first


def _find(tokens: list[str], index: dict[str, list[list[str]]]) -> list[Occurrence]:
    """Every occurrence of every phrase, compared word by word at every position."""
    out = []
    for i, token in enumerate(tokens):
        for words in index.get(token, ()):
            if tokens[i : i + len(words)] == words:
                out.append((i, len(words), " ".join(words)))
    return out


def _leftmost_longest(found: list[Occurrence]) -> list[Occurrence]:
    kept: list[Occurrence] = []
    free = 0
    for occ in sorted(found, key=lambda o: (o[0], -o[1])):
        if occ[0] >= free:
            kept.append(occ)
            free = occ[0] + occ[1]
    return kept


def _tables(rs: RuleSet) -> tuple[Any, ...]:
    """Each phrase with its roles, per layer (built once per rule set)."""
    if id(rs) in _TABLES:
        return _TABLES[id(rs)]
    s = rs.settings
    threat: dict[str, list[tuple[str, str, str, float]]] = defaultdict(list)  # kind, rule, name, w
    context: dict[str, list[tuple[str, str]]] = defaultdict(list)  # kind, name
    gate_phrases: dict[str, list[str]] = defaultdict(list)
    for rule in rs.rules.values():
        for sig in rule.phrases:
            threat[sig.text].append(("phrase", rule.id, sig.name, sig.weight))
        for sig in rule.ambiguous:
            threat[sig.text].append(("ambiguous", rule.id, sig.name, sig.weight))
        for conf in rule.confusers:
            threat[conf].append(("confuser", rule.id, "", 0.0))
    for conf in s.confusers:
        threat[conf].append(("confuser", "", "", 0.0))
    for anchor in s.anchors:
        threat[anchor].append(("anchor", "", "", 0.0))
    for cue in s.cues.values():
        for phrase in cue.phrases:
            context[phrase].append(("cue", cue.id))
    for phrase in s.traditional:
        context[phrase].append(("traditional", phrase))
    for gate in s.gates.values():
        for phrase in gate.phrases:
            gate_phrases[phrase].append(gate.id)

    threat_index, context_index, gate_index = _index(threat), _index(context), _index(gate_phrases)
    near_index = {(rule.id, near.name): [_index(dict.fromkeys(_minimal(g))) for g in near.groups]
                  for rule in rs.rules.values() for near in rule.near}
    _TABLES[id(rs)] = (threat, context, gate_phrases, threat_index, context_index, gate_index,
                       near_index)
    return _TABLES[id(rs)]


_TABLES: dict[int, tuple[Any, ...]] = {}


def reference_match(rs: RuleSet, issue: Issue) -> dict[str, Any]:
    """What the matcher must report, computed the slow way."""
    s = rs.settings
    (threat, context, gate_phrases, threat_index, context_index, gate_index,
     near_index) = _tables(rs)
    limit = s.max_input_chars
    title = normalize(issue.title, limit)
    prose_raw, rest_raw = split_prose(issue.body[: max(0, limit - len(issue.title))])
    prose, rest = normalize(prose_raw), normalize(rest_raw)
    body = f"{prose} {rest}" if prose and rest else (prose or rest)
    seen: dict[str, dict[str, tuple[float, str, str]]] = defaultdict(dict)
    unanchored: dict[str, list[str]] = defaultdict(list)
    confusers: list[str] = []
    cues: set[str] = set()
    traditional: list[str] = []
    gates: set[str] = set()
    keys = [label_key(lbl) for lbl in issue.labels]
    label_ctx = {kind for kind, pats in s.context_labels.items()
               if any(fnmatch.fnmatchcase(k, p) for k in keys if k for p in pats)}
    title_anchored = "ml" in label_ctx
    for where, text, prose_text, raw in (("title", title, title, issue.title),
                                         ("body", body, prose, prose_raw)):
        if not text:
            continue
        tokens = text.split(" ")
        mult = s.title_weight if where == "title" else 1.0
        hits: list[tuple[str, str, float, str]] = []
        anchors: list[int] = []
        pending: list[tuple[int, str, str, float]] = []
        blocked: list[tuple[int, int]] = []
        for start, length, phrase in _leftmost_longest(_find(tokens, threat_index)):
            for kind, rule_id, name, weight in threat[phrase]:
                if kind == "phrase":
                    hits.append((rule_id, name, weight, "phrase"))
                    anchors.append(start)
                elif kind == "anchor":
                    anchors.append(start)
                elif kind == "ambiguous":
                    pending.append((start, rule_id, name, weight))
                elif kind == "confuser":
                    blocked.append((start, start + length))
                    if phrase not in confusers:
                        confusers.append(phrase)
        for rule in rs.rules.values():
            for near in rule.near:
                groups = []
                for terms in near_index[(rule.id, near.name)]:
                    groups.append([o[0] for o in _find(tokens, terms)
                                   if not any(a <= o[0] < b for a, b in blocked)])
                if all(groups) and any(max(combo) - min(combo) <= near.window
                                       for combo in itertools.product(*groups)):
                    hits.append((rule.id, near.name, near.weight, "near"))
        if where == "title" and anchors:
            title_anchored = True
        for start, rule_id, name, weight in pending:
            if title_anchored or any(abs(a - start) <= s.anchor_window for a in anchors):
                hits.append((rule_id, name, weight, "ambiguous"))
            else:
                unanchored[rule_id].append(name)
        for rule in rs.rules.values():
            for sig in rule.patterns:
                if re2.search(sig.text, text):
                    hits.append((rule.id, sig.name, sig.weight, "pattern"))
        for cue in s.cues.values():
            if any(re2.search(p, text) for p in cue.patterns):
                cues.add(cue.id)
        for rule_id, name, weight, kind in hits:
            best = seen[rule_id].get(name)
            if best is None or weight * mult > best[0]:
                seen[rule_id][name] = (weight * mult, where, kind)
        for _, _, phrase in _leftmost_longest(_find(tokens, context_index)):
            for kind, name in context[phrase]:
                if kind == "cue":
                    cues.add(name)
                elif name not in traditional:
                    traditional.append(name)
        if prose_text:
            prose_tokens = prose_text.split(" ")
            found: set[str] = set()
            for start, _, phrase in _leftmost_longest(_find(prose_tokens, gate_index)):
                # The heading gate counts only where it starts the title.
                heads = where == "title" and start == 0
                found.update(g for g in gate_phrases[phrase] if g != "heading" or heads)
            for gate in s.gates.values():
                if any(re2.search(p, prose_text) for p in gate.patterns):
                    found.add(gate.id)
            if "vulnerability" in found:
                # Vulnerability phrasing counts only outside questions.
                stated = normalize(statements_only(raw), limit).split(" ")
                if not any("vulnerability" in gate_phrases[phrase] for _, _, phrase
                           in _leftmost_longest(_find(stated, gate_index))):
                    found.discard("vulnerability")
            gates |= found
    if "security" in label_ctx:
        gates.add("vulnerability")
    if "mention" in label_ctx and "mention" in s.gates:
        gates.add("mention")
    for label, key in zip(issue.labels, keys, strict=True):
        named = [rule for rule in rs.rules.values() if key and any(
            fnmatch.fnmatchcase(key, p)
            for p in (*rule.labels, label_key(s.label_threat.format(id=rule.id)), rule.id))]
        if not named and "/" in key:
            # A scoped label names a category by its value (exact, not glob).
            value = key.rsplit("/", 1)[1]
            named = [rule for rule in rs.rules.values() if value in (
                *(p for p in rule.labels if not any(c in p for c in "*?[")),
                label_key(s.label_threat.format(id=rule.id)), rule.id)]
        for rule in named:
            seen[rule.id].setdefault(f"label: {label}",
                                     (max(1.0, s.threshold), "labels", "label"))
    return {
        "hits": {rid: sorted((n, round(w, 6), wh, k) for n, (w, wh, k) in hits_.items())
                 for rid, hits_ in seen.items() if hits_},
        "unanchored": {rid: sorted(v) for rid, v in unanchored.items() if v},
        "cues": cues, "gates": gates, "traditional": traditional, "confusers": confusers,
    }


def fast_match(matcher: Matcher, issue: Issue) -> dict[str, Any]:
    """The same view of the real matcher's report."""
    r = matcher.match(issue)
    return {
        "hits": {rid: sorted((h.name, round(h.weight, 6), h.where, h.kind) for h in c.hits)
                 for rid, c in r.categories.items() if c.hits},
        "unanchored": {rid: sorted(c.unanchored) for rid, c in r.categories.items()
                       if c.unanchored},
        "cues": r.cues, "gates": r.gates, "traditional": r.traditional,
        "confusers": r.confusers,
    }


def _vocabulary(rs: RuleSet) -> list[str]:
    words: set[str] = set()
    for rule in rs.rules.values():
        for sig in (*rule.phrases, *rule.ambiguous):
            words.add(sig.text)
        words.update(rule.confusers)
        for near in rule.near:
            for group in near.groups:
                words.update(group)
    s = rs.settings
    words.update(s.anchors)
    words.update(s.confusers)
    words.update(s.traditional)
    for cue in s.cues.values():
        words.update(cue.phrases)
    for gate in s.gates.values():
        words.update(gate.phrases)
    return sorted(words)


def _random_issue(rng: random.Random, vocabulary: list[str], n: int) -> Issue:
    filler = ["the", "a", "we", "it", "and", "x", "data", "model", "Model,", "(see", "log)"]
    marks = ["\n```\n", "\n> ", " `", "` ", "\n<!-- ", " --> ", ". ", ", ", "\n\n", " — ",
             "\u200b", "ＭＯＤＥＬ ", "\r\n"]
    parts: list[str] = []
    for _ in range(rng.randint(0, 80)):
        roll = rng.random()
        if roll < 0.45:
            parts.append(rng.choice(vocabulary))
        elif roll < 0.85:
            parts.append(rng.choice(filler))
        else:
            parts.append(rng.choice(marks))
    title = " ".join(rng.choice(vocabulary + filler) for _ in range(rng.randint(0, 6)))
    return Issue(f"r{n}", title, " ".join(parts))


COMPILED = TextScan is not None


@pytest.fixture(scope="module", params=["python", "compiled"])
def shipped(request: pytest.FixtureRequest) -> tuple[RuleSet, Matcher]:
    """The shipped rules, matched by the pure-Python loop and by the compiled one."""
    rs = load_rules()
    if request.param == "compiled" and not COMPILED:
        pytest.fail("bot/decide/_speedups was not built: `pip install -e .` compiles it "
                    "(needs Cython, which the build fetches, and a C compiler)")
    matcher = Matcher(rs, compiled=request.param == "compiled")
    assert (matcher._compiled is not None) is (request.param == "compiled")
    return rs, matcher


def test_agrees_with_the_reference_on_random_issues(shipped: tuple[RuleSet, Matcher]) -> None:
    rs, matcher = shipped
    rng = random.Random(20261128)
    vocabulary = _vocabulary(rs)
    for n in range(300):
        issue = _random_issue(rng, vocabulary, n)
        assert fast_match(matcher, issue) == reference_match(rs, issue), issue


def test_agrees_with_the_reference_on_the_own_corpus(shipped: tuple[RuleSet, Matcher]) -> None:
    rs, matcher = shipped
    for line in (ROOT_DATA / "train_labelled.jsonl").read_text().splitlines()[::3]:
        record = json.loads(line)
        issue = Issue(record["id"], record["title"], record["body"] or "",
                      tuple(record.get("labels") or ()))
        assert fast_match(matcher, issue) == reference_match(rs, issue), record["id"]


def test_leftmost_longest_on_word_boundaries() -> None:
    from bot.decide.match import _longest

    # padded " a b c ": keys " a b " (0..5), " b c " (2..7), " a " (0..3), " b " (2..5)
    assert _longest([(0, 0, 5), (1, 2, 7)]) == [(0, 0, 5)]  # "b" belongs to "a b"
    assert _longest([(2, 0, 3), (3, 2, 5)]) == [(2, 0, 3), (3, 2, 5)]  # neighbours share a space
    assert _longest([(2, 0, 3), (0, 0, 5)]) == [(0, 0, 5)]  # longest wins at the same start
