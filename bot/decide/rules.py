"""Load and validate the rule set: one YAML file per category plus ``settings.yml``.

Every problem is reported as ``file:line: message`` with a hint; loading collects all of them
before failing so an author fixes a file in one pass. See ``docs/rules.md`` for the format.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re2

from bot.decide.model import CATEGORY_IDS, ROUTES, Severity
from bot.decide.normalize import normalize_phrase
from bot.decide.yamlload import LocatedDict, LocatedList, YamlError, load_yaml

# Errors only: RE2 would otherwise print its parse errors (through absl) to stderr itself.
_QUIET_RE2 = re2.Options()
_QUIET_RE2.log_errors = False

SHIPPED_RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
"""The rule set shipped inside the package (``bot/rules/``), so every install carries it."""


@dataclass(frozen=True)
class Signal:
    """One weighted piece of evidence: a phrase (normalised) or an RE2 pattern."""

    text: str
    weight: float
    name: str
    is_pattern: bool = False


@dataclass(frozen=True)
class NearSignal:
    """Evidence when one phrase of every group occurs within ``window`` words of each other.

    The fast, linear-time way to say "a loader call near code execution": phrase look-ups on
    tokens instead of a regex with ``.{0,150}``, which makes RE2's automaton explode.
    """

    name: str
    weight: float
    groups: tuple[tuple[str, ...], ...]
    window: int


@dataclass(frozen=True)
class Example:
    """A rule's own test case."""

    title: str
    body: str
    labels: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Rule:
    """One threat category as loaded from its YAML file."""

    id: str
    title: str
    description: str
    references: Mapping[str, Any]
    severity_range: tuple[Severity, Severity]
    severity_default: Severity
    raise_cues: tuple[str, ...]
    lower_cues: tuple[str, ...]
    routes_default: tuple[str, ...]
    routes_critical: tuple[str, ...]
    labels: tuple[str, ...]
    phrases: tuple[Signal, ...]
    ambiguous: tuple[Signal, ...]
    patterns: tuple[Signal, ...]
    near: tuple[NearSignal, ...]
    confusers: tuple[str, ...]
    tests_match: tuple[Example, ...]
    tests_no_match: tuple[Example, ...]
    tests_todo_match: tuple[Example, ...]
    tests_todo_no_match: tuple[Example, ...]
    path: str


@dataclass(frozen=True)
class Cue:
    """A severity cue: text that moves a suggested severity inside its range."""

    id: str
    title: str
    direction: str
    phrases: tuple[str, ...]
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class Gate:
    """Phrasing that scales every score (research/feature talk, negation) or cancels a gate."""

    id: str
    factor: float
    phrases: tuple[str, ...]
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class RouteInfo:
    """A routing lane and the guidance the comment gives for it."""

    id: str
    title: str
    guidance: str


@dataclass(frozen=True)
class Settings:
    """Shared settings from ``settings.yml``."""

    version: str
    source: str
    seed_ranges: Mapping[str, tuple[Severity, Severity]]
    max_input_chars: int
    threshold: float
    title_weight: float
    anchor_window: int
    label_threat: str
    label_severity: str
    label_route: str
    label_opt_out: str
    routes: Mapping[str, RouteInfo]
    ssirp_requires: tuple[str, ...]
    anchors: tuple[str, ...]
    cues: Mapping[str, Cue]
    gates: Mapping[str, Gate]
    traditional: tuple[str, ...]
    confusers: tuple[str, ...]
    custom_categories: tuple[str, ...] = ()
    """Category ids beyond the nine of the bug bar, declared on purpose in a settings.yml."""
    context_labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Generic tracker labels that add context but never a category alone, by what they add:
    ``ml`` (ML context for ambiguous words), ``security`` (counts as vulnerability phrasing).
    Label keys (see ``label_key``); may be globs."""


@dataclass(frozen=True)
class RuleSet:
    """Everything the matcher needs, validated."""

    settings: Settings
    rules: Mapping[str, Rule]
    version: str
    """``settings.version`` plus a digest of every file, so any rule edit changes it."""
    sources: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class RuleIssue:
    """One validation problem, located."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class RulesError(Exception):
    """Raised when a rule set does not load; carries every problem found."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


_RULE_KEYS = {
    "id", "title", "description", "references", "severity", "routes", "signals",
    "confusers", "tests",
}
_REQUIRED_RULE_KEYS = ("id", "title", "description", "references", "severity", "routes",
                       "signals", "tests")
_REFERENCE_KEYS = {"bug_bar", "atlas", "owasp_ml", "owasp_llm", "nist", "urls"}
_SEVERITY_KEYS = {"range", "default", "raise", "lower"}
_ROUTES_KEYS = {"default", "critical"}
_SIGNAL_KEYS = {"labels", "phrases", "ambiguous", "patterns", "near"}
MAX_NEAR_WINDOW = 200
_TEST_KEYS = {"match", "no_match", "todo_match", "todo_no_match"}
_EXAMPLE_KEYS = {"title", "body", "labels"}
_SETTINGS_KEYS = {
    "version", "source", "seed_ranges", "max_input_chars", "threshold", "title_weight",
    "anchor_window", "labels", "routes", "ssirp_requires", "anchors", "cues", "gates",
    "traditional", "confusers", "custom_categories", "context_labels",
}
CONTEXT_LABEL_KINDS = ("ml", "security", "mention")


def label_key(label: str) -> str:
    """A tracker label as rules compare it: case-folded, runs of spaces, ``_`` and ``-`` made
    one ``-`` (Jira writes spaces as ``_``), so ``Model Extraction`` = ``model-extraction``;
    scope separators (GitLab's ``::``, ``:``, ``/``) made one ``/``, so
    ``threat::model-stealing`` = ``Threat: Model Stealing`` = ``threat/model-stealing``."""
    scoped = label.strip().casefold().replace("::", "/").replace(":", "/")
    parts = ("-".join(p.replace("_", " ").replace("-", " ").split()) for p in scoped.split("/"))
    return "/".join(p for p in parts if p)
_LABEL_KEYS = {"threat", "severity", "route", "opt_out"}


_LINE_STRIDE = 1_000_000
"""Merged settings come from several files: lines of the n-th file are kept as
``n * _LINE_STRIDE + line`` (see :func:`_shift_lines`) so an error names the file it is in."""


class _Checker:
    """Collects located problems while reading one file (or merged settings files)."""

    def __init__(self, path: str, files: list[str] | None = None) -> None:
        self.path = path
        self.files = files or [path]
        self.issues: list[RuleIssue] = []

    def error(self, line: int, message: str) -> None:
        index, line = divmod(line, _LINE_STRIDE)
        path = self.files[index] if index < len(self.files) else self.path
        self.issues.append(RuleIssue(path, line, message))

    def mapping(self, value: Any, line: int, what: str) -> LocatedDict | None:
        if isinstance(value, LocatedDict):
            return value
        self.error(line, f"{what} must be a mapping (key: value lines)")
        return None

    def keys(self, mapping: LocatedDict, allowed: set[str], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                valid = ", ".join(sorted(allowed))
                self.error(mapping.line_of(key), f"unknown key {key!r} in {what}"
                           f"{did_you_mean(str(key), allowed)}; valid: {valid}")

    def text(self, mapping: LocatedDict, key: str, what: str, required: bool = True) -> str:
        value = mapping.get(key)
        if value is None:
            if required:
                self.error(mapping.line, f"{what} needs {key!r} (text)")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.error(mapping.line_of(key), f"{what}.{key} must be non-empty text")
            return ""
        return value.strip()

    def str_list(self, mapping: LocatedDict, key: str, what: str) -> list[tuple[str, int]]:
        value = mapping.get(key)
        if value is None:
            return []
        if not isinstance(value, LocatedList):
            self.error(mapping.line_of(key), f"{what}.{key} must be a list, e.g. [a, b]")
            return []
        out = []
        for item, line in zip(value, value.item_lines, strict=True):
            if not isinstance(item, str) or not item.strip():
                self.error(line, f"{what}.{key} items must be non-empty text, got {item!r}")
                continue
            out.append((item.strip(), line))
        return out

    def severity(self, value: Any, line: int, what: str) -> Severity | None:
        if not isinstance(value, str):
            self.error(line, f"{what} must be one of low, moderate, important, critical")
            return None
        try:
            return Severity.parse(value)
        except ValueError as exc:
            self.error(line, f"{what}: {exc}")
            return None

    def number(self, mapping: LocatedDict, key: str, default: float, what: str) -> float:
        value = mapping.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.error(mapping.line_of(key), f"{what}.{key} must be a non-negative number")
            return default
        return float(value)

    def regex(self, pattern: str, line: int, what: str) -> bool:
        try:
            re2.compile(pattern, _QUIET_RE2)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):  # google-re2 reports RE2's message as bytes
                reason = reason.decode("utf-8", "replace")
            self.error(line, f"{what}: bad RE2 pattern {pattern!r}: {reason} "
                       "(RE2 has no look-around or back-references)")
            return False
        return True


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _read(path: Path, checker: _Checker) -> LocatedDict | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        checker.error(0, f"cannot read: {exc}")
        return None
    try:
        data = load_yaml(text)
    except YamlError as exc:
        checker.error(exc.line, exc.message)
        return None
    return checker.mapping(data, 1, "the file")


def _signals(
    checker: _Checker, mapping: LocatedDict, key: str, what: str, default_weight: float
) -> list[Signal]:
    value = mapping.get(key)
    if value is None:
        return []
    if not isinstance(value, LocatedList):
        checker.error(mapping.line_of(key), f"{what}.{key} must be a list")
        return []
    out: list[Signal] = []
    pattern = key == "patterns"
    for item, line in zip(value, value.item_lines, strict=True):
        weight = default_weight
        name = ""
        if isinstance(item, str):
            text = item
        elif isinstance(item, LocatedDict):
            allowed = {"name", "regex", "weight"} if pattern else {"text", "weight", "name"}
            checker.keys(item, allowed, f"{what}.{key}[]")
            text = item.get("regex" if pattern else "text", "")
            weight = checker.number(item, "weight", default_weight, f"{what}.{key}[]")
            name = str(item.get("name", "") or "")
        else:
            checker.error(line, f"{what}.{key} items must be text or a mapping")
            continue
        if not isinstance(text, str) or not text.strip():
            field_name = "regex" if pattern else "text"
            checker.error(line, f"{what}.{key}[] needs non-empty {field_name!r}")
            continue
        if pattern:
            if not checker.regex(text, line, f"{what}.{key}"):
                continue
            if not name:
                checker.error(line, f"{what}.patterns[] needs a 'name' (shown as evidence)")
                continue
            out.append(Signal(text, weight, name, is_pattern=True))
        else:
            norm = normalize_phrase(text)
            if not norm:
                checker.error(line, f"{what}.{key}: {text!r} has no letters or digits")
                continue
            out.append(Signal(norm, weight, name or norm))
    return out


def _near(checker: _Checker, signals: LocatedDict) -> list[NearSignal]:
    value = signals.get("near")
    if value is None:
        return []
    if not isinstance(value, LocatedList):
        checker.error(signals.line_of("near"), "signals.near must be a list")
        return []
    out = []
    for item, line in zip(value, value.item_lines, strict=True):
        if not isinstance(item, LocatedDict):
            checker.error(line, "signals.near items must be {name, all, window, weight}")
            continue
        checker.keys(item, {"name", "all", "window", "weight"}, "signals.near[]")
        name = checker.text(item, "name", "signals.near[]")
        weight = checker.number(item, "weight", 1.0, "signals.near[]")
        window = int(checker.number(item, "window", 20, "signals.near[]"))
        if not 1 <= window <= MAX_NEAR_WINDOW:
            checker.error(item.line_of("window"),
                          f"signals.near[].window must be 1..{MAX_NEAR_WINDOW} words")
        groups_raw = item.get("all")
        if not (isinstance(groups_raw, LocatedList) and len(groups_raw) >= 2):
            checker.error(item.line_of("all"), "signals.near[].all needs at least two lists of "
                          "phrases, e.g. all: [[torch load, pickle], [code execution]]")
            continue
        groups = []
        for group, gline in zip(groups_raw, groups_raw.item_lines, strict=True):
            if not (isinstance(group, list) and group
                    and all(isinstance(g, str) and normalize_phrase(g) for g in group)):
                checker.error(gline, "each group in signals.near[].all must be a non-empty "
                              "list of phrases")
                continue
            groups.append(tuple(dict.fromkeys(normalize_phrase(g) for g in group)))
        if name and len(groups) == len(groups_raw):
            out.append(NearSignal(name, weight, tuple(groups), window))
    return out


def _examples(checker: _Checker, tests: LocatedDict, key: str) -> list[Example]:
    value = tests.get(key)
    if value is None:
        return []
    if not isinstance(value, LocatedList):
        checker.error(tests.line_of(key), f"tests.{key} must be a list of {{title, body}}")
        return []
    out = []
    for item, line in zip(value, value.item_lines, strict=True):
        if isinstance(item, str):
            out.append(Example(item, "", (), line))
            continue
        if not isinstance(item, LocatedDict):
            checker.error(line, f"tests.{key} items must be {{title, body}} mappings")
            continue
        checker.keys(item, _EXAMPLE_KEYS, f"tests.{key}[]")
        title = item.get("title", "")
        body = item.get("body", "")
        labels = item.get("labels", [])
        if not isinstance(title, str) or not isinstance(body, str) or not (title or body):
            checker.error(line, f"tests.{key}[] needs a text title and/or body")
            continue
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            checker.error(line, f"tests.{key}[].labels must be a list of text")
            labels = []
        out.append(Example(title, body, tuple(labels), line))
    return out


def _load_rule(path: Path, settings: Settings | None, checker: _Checker) -> Rule | None:
    data = _read(path, checker)
    if data is None:
        return None
    checker.keys(data, _RULE_KEYS, "the rule")
    for key in _REQUIRED_RULE_KEYS:
        if key not in data:
            checker.error(1, f"missing required key {key!r} (see docs/rules.md)")
    rule_id = checker.text(data, "id", "the rule")
    title = checker.text(data, "title", "the rule")
    description = checker.text(data, "description", "the rule")
    refs = checker.mapping(data.get("references", LocatedDict()), data.line_of("references"),
                           "references") or LocatedDict()
    checker.keys(refs, _REFERENCE_KEYS, "references")

    sev = checker.mapping(data.get("severity"), data.line_of("severity"), "severity")
    low = high = default = None
    raise_cues: list[str] = []
    lower_cues: list[str] = []
    if sev is not None:
        checker.keys(sev, _SEVERITY_KEYS, "severity")
        rng = sev.get("range")
        if not (isinstance(rng, LocatedList) and len(rng) == 2):
            checker.error(sev.line_of("range"), "severity.range must be [floor, ceiling]")
        else:
            low = checker.severity(rng[0], rng.item_lines[0], "severity.range[0]")
            high = checker.severity(rng[1], rng.item_lines[1], "severity.range[1]")
            seed = settings.seed_ranges.get(rule_id) if settings else None
            if low and high and low > high:
                checker.error(sev.line_of("range"), "severity.range floor is above its ceiling")
            if seed and low and high and (low, high) != seed:
                checker.error(
                    sev.line_of("range"),
                    f"severity.range [{low.label}, {high.label}] differs from the seed range "
                    f"[{seed[0].label}, {seed[1].label}] of {rule_id}; use the seed range "
                    "(settings.yml seed_ranges)",
                )
        if "default" in sev:
            default = checker.severity(sev["default"], sev.line_of("default"), "severity.default")
        else:
            default = low
        if default and low and high and not (low <= default <= high):
            checker.error(sev.line_of("default"),
                          f"severity.default {default.label} is outside the range "
                          f"[{low.label}, {high.label}]; pick a level inside it")
        known_cues = set(settings.cues) if settings else set()
        for key, target in (("raise", raise_cues), ("lower", lower_cues)):
            for cue, line in checker.str_list(sev, key, "severity"):
                if settings and cue not in known_cues:
                    checker.error(line, f"severity.{key}: unknown cue {cue!r}"
                                  f"{did_you_mean(cue, known_cues)}; "
                                  f"valid: {', '.join(sorted(known_cues))}")
                target.append(cue)

    routes = checker.mapping(data.get("routes"), data.line_of("routes"), "routes")
    r_default: list[str] = []
    r_critical: list[str] = []
    if routes is not None:
        checker.keys(routes, _ROUTES_KEYS, "routes")
        known_routes = set(settings.routes) if settings else set(ROUTES)
        for key, target in (("default", r_default), ("critical", r_critical)):
            for route, line in checker.str_list(routes, key, "routes"):
                if route not in known_routes:
                    checker.error(line, f"routes.{key}: unknown route {route!r}"
                                  f"{did_you_mean(route, known_routes)}; "
                                  f"valid: {', '.join(sorted(known_routes))}")
                target.append(route)
        if not r_default:
            checker.error(routes.line, "routes.default needs at least one route")

    signals = checker.mapping(data.get("signals"), data.line_of("signals"), "signals")
    labels: list[str] = []
    phrases: list[Signal] = []
    ambiguous: list[Signal] = []
    patterns: list[Signal] = []
    near: list[NearSignal] = []
    if signals is not None:
        checker.keys(signals, _SIGNAL_KEYS, "signals")
        labels = [label_key(lbl) for lbl, _ in checker.str_list(signals, "labels", "signals")]
        phrases = _signals(checker, signals, "phrases", "signals", 1.0)
        ambiguous = _signals(checker, signals, "ambiguous", "signals", 0.5)
        patterns = _signals(checker, signals, "patterns", "signals", 1.0)
        near = _near(checker, signals)
        if not (phrases or patterns or labels or near):
            checker.error(signals.line, "signals needs at least one phrase, pattern or label")
    confusers = [normalize_phrase(c) for c, _ in checker.str_list(data, "confusers", "rule")]

    tests = checker.mapping(data.get("tests"), data.line_of("tests"), "tests")
    examples: dict[str, list[Example]] = {k: [] for k in _TEST_KEYS}
    if tests is not None:
        checker.keys(tests, _TEST_KEYS, "tests")
        for key in _TEST_KEYS:
            examples[key] = _examples(checker, tests, key)
        if not examples["no_match"]:
            checker.error(tests.line, "tests.no_match needs at least one near miss that must "
                          "not match (a confuser or an ordinary issue)")
        if not examples["match"]:
            checker.error(tests.line, "tests.match needs at least one issue that must match")

    if checker.issues or low is None or high is None or default is None:
        return None
    return Rule(
        id=rule_id, title=title, description=description, references=dict(refs),
        severity_range=(low, high), severity_default=default,
        raise_cues=tuple(raise_cues), lower_cues=tuple(lower_cues),
        routes_default=tuple(r_default), routes_critical=tuple(r_critical or r_default),
        labels=tuple(labels), phrases=tuple(phrases), ambiguous=tuple(ambiguous),
        patterns=tuple(patterns), near=tuple(near), confusers=tuple(confusers),
        tests_match=tuple(examples["match"]), tests_no_match=tuple(examples["no_match"]),
        tests_todo_match=tuple(examples["todo_match"]),
        tests_todo_no_match=tuple(examples["todo_no_match"]),
        path=str(path),
    )


def _shift_lines(value: Any, offset: int) -> None:
    """Add ``offset`` to every line number in a parsed YAML tree (see ``_LINE_STRIDE``)."""
    if isinstance(value, LocatedDict):
        value.line += offset
        value.key_lines = {k: n + offset for k, n in value.key_lines.items()}
        for item in value.values():
            _shift_lines(item, offset)
    elif isinstance(value, LocatedList):
        value.line += offset
        value.item_lines = [n + offset for n in value.item_lines]
        for item in value:
            _shift_lines(item, offset)


def _merge_settings(base: LocatedDict, override: LocatedDict) -> LocatedDict:
    """Key-by-key merge; mappings one level deep (so a user can change one cue or route)."""
    merged = LocatedDict(base)
    merged.line = base.line
    merged.key_lines = dict(base.key_lines)
    for key, value in override.items():
        old = base.get(key)
        if isinstance(value, LocatedDict) and isinstance(old, LocatedDict):
            inner = LocatedDict(old)
            inner.line = old.line
            inner.key_lines = {**old.key_lines, **value.key_lines}
            inner.update(value)
            merged[key] = inner
        else:
            merged[key] = value
        merged.key_lines[key] = override.line_of(key)
    return merged


def _text_list(checker: _Checker, mapping: LocatedDict, key: str, what: str) -> list[str]:
    return [normalize_phrase(t) for t, _ in checker.str_list(mapping, key, what)]


def _parse_settings(data: LocatedDict, checker: _Checker) -> Settings | None:
    checker.keys(data, _SETTINGS_KEYS, "settings")
    version = checker.text(data, "version", "settings")
    source = checker.text(data, "source", "settings")
    seed_ranges: dict[str, tuple[Severity, Severity]] = {}
    seeds = checker.mapping(data.get("seed_ranges"), data.line_of("seed_ranges"), "seed_ranges")
    for cid, rng in (seeds or {}).items():
        line = seeds.line_of(cid) if seeds else 0
        if not (isinstance(rng, list) and len(rng) == 2):
            checker.error(line, f"seed_ranges.{cid} must be [floor, ceiling]")
            continue
        lo = checker.severity(rng[0], line, f"seed_ranges.{cid}")
        hi = checker.severity(rng[1], line, f"seed_ranges.{cid}")
        if lo and hi:
            seed_ranges[cid] = (lo, hi)
    for cid in CATEGORY_IDS:
        if cid not in seed_ranges and seeds is not None:
            checker.error(seeds.line, f"seed_ranges lacks {cid!r}")
    custom = [c for c, _ in checker.str_list(data, "custom_categories", "settings")]
    for cid, line in checker.str_list(data, "custom_categories", "settings"):
        if cid in CATEGORY_IDS:
            checker.error(line, f"custom_categories: {cid!r} is one of the nine bug-bar "
                          "categories already; remove it from the list")
    for cid in seed_ranges:
        if cid not in CATEGORY_IDS and cid not in custom and seeds is not None:
            checker.error(seeds.line_of(cid), f"seed_ranges: {cid!r} is not a bug-bar category "
                          "(a category of your own must be listed under custom_categories "
                          f"too){did_you_mean(cid, CATEGORY_IDS)}")

    labels = checker.mapping(data.get("labels"), data.line_of("labels"), "labels") or LocatedDict()
    checker.keys(labels, _LABEL_KEYS, "labels")
    label_threat = checker.text(labels, "threat", "labels")
    label_severity = checker.text(labels, "severity", "labels")
    label_route = checker.text(labels, "route", "labels")
    label_opt_out = checker.text(labels, "opt_out", "labels")
    for key, placeholder in (("threat", "{id}"), ("severity", "{level}"), ("route", "{route}")):
        if labels.get(key) and placeholder not in str(labels.get(key)):
            checker.error(labels.line_of(key), f"labels.{key} must contain {placeholder}")

    routes: dict[str, RouteInfo] = {}
    rmap = checker.mapping(data.get("routes"), data.line_of("routes"), "routes") or LocatedDict()
    for rid, info in rmap.items():
        im = checker.mapping(info, rmap.line_of(rid), f"routes.{rid}")
        if im is None:
            continue
        checker.keys(im, {"title", "guidance"}, f"routes.{rid}")
        routes[rid] = RouteInfo(rid, checker.text(im, "title", f"routes.{rid}"),
                                checker.text(im, "guidance", f"routes.{rid}"))

    cues: dict[str, Cue] = {}
    cmap = checker.mapping(data.get("cues"), data.line_of("cues"), "cues") or LocatedDict()
    for cid, info in cmap.items():
        im = checker.mapping(info, cmap.line_of(cid), f"cues.{cid}")
        if im is None:
            continue
        checker.keys(im, {"title", "direction", "phrases", "patterns"}, f"cues.{cid}")
        direction = im.get("direction")
        if direction not in ("raise", "lower"):
            checker.error(im.line_of("direction"), f"cues.{cid}.direction must be raise or lower")
        pats = [p for p, line in checker.str_list(im, "patterns", f"cues.{cid}")
                if checker.regex(p, line, f"cues.{cid}.patterns")]
        cues[cid] = Cue(cid, checker.text(im, "title", f"cues.{cid}"), str(direction),
                        tuple(_text_list(checker, im, "phrases", f"cues.{cid}")), tuple(pats))

    gates: dict[str, Gate] = {}
    gmap = checker.mapping(data.get("gates"), data.line_of("gates"), "gates") or LocatedDict()
    for gid, info in gmap.items():
        im = checker.mapping(info, gmap.line_of(gid), f"gates.{gid}")
        if im is None:
            continue
        checker.keys(im, {"factor", "phrases", "patterns"}, f"gates.{gid}")
        pats = [p for p, line in checker.str_list(im, "patterns", f"gates.{gid}")
                if checker.regex(p, line, f"gates.{gid}.patterns")]
        gates[gid] = Gate(gid, checker.number(im, "factor", 1.0, f"gates.{gid}"),
                          tuple(_text_list(checker, im, "phrases", f"gates.{gid}")), tuple(pats))
    for required in ("research", "vulnerability", "negation"):
        if required not in gates:
            checker.error(gmap.line, f"gates needs {required!r}")

    context_labels: dict[str, tuple[str, ...]] = {}
    cl = data.get("context_labels")
    if cl is not None:
        clmap = checker.mapping(cl, data.line_of("context_labels"), "context_labels")
        if clmap is not None:
            checker.keys(clmap, set(CONTEXT_LABEL_KINDS), "context_labels")
            for kind in CONTEXT_LABEL_KINDS:
                context_labels[kind] = tuple(
                    label_key(t) for t, _ in checker.str_list(clmap, kind, "context_labels"))

    max_chars = int(checker.number(data, "max_input_chars", 65536, "settings"))
    if checker.issues:
        return None
    return Settings(
        version=version, source=source, seed_ranges=seed_ranges, max_input_chars=max_chars,
        threshold=checker.number(data, "threshold", 1.0, "settings"),
        title_weight=checker.number(data, "title_weight", 1.5, "settings"),
        anchor_window=int(checker.number(data, "anchor_window", 30, "settings")),
        label_threat=label_threat, label_severity=label_severity, label_route=label_route,
        label_opt_out=label_opt_out, routes=routes,
        ssirp_requires=tuple(c for c, _ in checker.str_list(data, "ssirp_requires", "settings")),
        anchors=tuple(_text_list(checker, data, "anchors", "settings")),
        cues=cues, gates=gates,
        traditional=tuple(_text_list(checker, data, "traditional", "settings")),
        confusers=tuple(_text_list(checker, data, "confusers", "settings")),
        custom_categories=tuple(custom),
        context_labels=context_labels,
    )


def load_rules(extra_dirs: Iterable[str | Path] = (), base_dir: Path | None = None) -> RuleSet:
    """Load the shipped rules, then each folder in ``extra_dirs`` over them.

    A user file with the id of a shipped rule replaces it; a user ``settings.yml`` is merged
    key by key over the shipped one. Raises RulesError listing every problem.
    """
    base = base_dir or SHIPPED_RULES_DIR
    dirs = [base, *(Path(d) for d in extra_dirs)]
    issues: list[RuleIssue] = []
    settings_data: LocatedDict | None = None
    settings_files: list[str] = []
    rule_files: dict[str, Path] = {}
    digest = hashlib.sha256()
    for directory in dirs:
        if not directory.is_dir():
            issues.append(RuleIssue(str(directory), 0, "rules folder not found"))
            continue
        settings_path = directory / "settings.yml"
        if settings_path.exists():
            checker = _Checker(str(settings_path))
            data = _read(settings_path, checker)
            issues.extend(checker.issues)
            if data is not None:
                _shift_lines(data, len(settings_files) * _LINE_STRIDE)
                settings_files.append(str(settings_path))
                settings_data = data if settings_data is None else _merge_settings(
                    settings_data, data)
            digest.update(settings_path.read_bytes())
        found = sorted(directory.glob("*.y*ml"))
        if not found and not (directory / "examples").is_dir():
            # Almost always a wrong --rules / BUGBAR_RULES path (a folder of other files):
            # loading on silently would run the shipped rules as if the override applied.
            issues.append(RuleIssue(str(directory), 0, "no rule files (*.yml) and no examples/ "
                                    "in this folder"))
        for path in found:
            if path.name in ("settings.yml", "settings.yaml"):
                continue
            rule_files[path.stem] = path  # later folders replace earlier ones by file stem
    if settings_data is None:
        issues.append(RuleIssue(str(base / "settings.yml"), 0, "settings.yml not found"))
        raise RulesError(issues)
    checker = _Checker(settings_files[0], files=settings_files)
    settings = _parse_settings(settings_data, checker)
    issues.extend(checker.issues)
    if settings is None:
        raise RulesError(issues)

    rules: dict[str, Rule] = {}
    for stem, path in sorted(rule_files.items()):
        checker = _Checker(str(path))
        rule = _load_rule(path, settings, checker)
        issues.extend(checker.issues)
        digest.update(path.read_bytes())
        if rule is None:
            continue
        if rule.id != stem:
            issues.append(RuleIssue(str(path), 1, f"id {rule.id!r} must match the file name "
                                    f"({stem}.yml)"))
            continue
        if rule.id not in CATEGORY_IDS and rule.id not in settings.custom_categories:
            issues.append(RuleIssue(
                str(path), 1, f"id {rule.id!r} is not one of the nine bug-bar categories (to "
                "add one of your own, list it under custom_categories, with a seed_ranges "
                f"entry, in your settings.yml){did_you_mean(rule.id, CATEGORY_IDS)}"))
            continue
        if rule.id not in settings.seed_ranges:
            issues.append(RuleIssue(str(path), 1, f"id {rule.id!r} has no seed range; add it to "
                                    "seed_ranges in your settings.yml"))
            continue
        rules[rule.id] = rule
    if issues:
        raise RulesError(issues)
    version = f"{settings.version}+{digest.hexdigest()[:8]}"
    return RuleSet(settings=settings, rules=rules, version=version,
                   sources=tuple(str(d) for d in dirs))
