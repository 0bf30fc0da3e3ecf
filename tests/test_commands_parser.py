"""Table-driven tests for the ``/triage`` command parser, its edit diff, help and policy."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from bot.decide.commands import (
    DEFAULT_ACCESS,
    HELP,
    MAX_COMMANDS,
    Command,
    CommandKind,
    CommandPolicy,
    ParseResult,
    PolicyError,
    new_commands,
    parse_commands,
    render_help,
    required_access,
)
from bot.decide.model import CATEGORY_IDS, ROUTES, Access, Severity


def shown(result: ParseResult) -> list[str]:
    """The commands in canonical spelling, for compact expectations."""
    return [str(c) for c in result.commands]


@dataclass(frozen=True)
class Case:
    """One comment and what the parser must make of it."""

    name: str
    text: str
    commands: tuple[str, ...] = ()
    errors: tuple[tuple[int, str], ...] = ()
    """(line, fragment the message must contain) per error, in order."""


def run_cases(cases: list[Case]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", cases, ids=[c.name for c in cases])


def check(case: Case) -> None:
    result = parse_commands(case.text)
    assert shown(result) == list(case.commands)
    assert [e.line for e in result.errors] == [line for line, _ in case.errors]
    for error, (_, fragment) in zip(result.errors, case.errors, strict=True):
        assert fragment in error.message
    assert not result.truncated


# --- each command -------------------------------------------------------------------------

COMMAND_CASES = [
    Case("retriage", "/triage", ("/triage",)),
    Case("retriage-trailing-blanks", "/triage  \t ", ("/triage",)),
    Case("not-a-threat", "/triage not-a-threat", ("/triage not-a-threat",)),
    Case("explain", "/triage explain", ("/triage explain",)),
    Case("help", "/triage help", ("/triage help",)),
    Case("retry-handoff", "/triage Retry-Handoff", ("/triage retry-handoff",)),
    Case("keywords-any-case", "/TRIAGE Severity CRITICAL", ("/triage severity critical",)),
    Case("category-any-case", "/Triage Model-Stealing", ("/triage model-stealing",)),
    Case("threat-prefix-any-case", "/triage THREAT/ml-supply-chain", ("/triage ml-supply-chain",)),
    Case("extra-blanks-between-words", "/triage   route \t abuse  ", ("/triage route abuse",)),
    Case("up-to-three-spaces-indent", "   /triage explain", ("/triage explain",)),
    Case(
        "inside-paragraph",
        "Thanks for the report.\n/triage explain\nMore text.",
        ("/triage explain",),
    ),
]


@run_cases(COMMAND_CASES)
def test_commands(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("category", CATEGORY_IDS)
@pytest.mark.parametrize("spelling", ["{}", "threat/{}"], ids=["bare", "threat-prefix"])
def test_every_category(category: str, spelling: str) -> None:
    result = parse_commands("/triage " + spelling.format(category))
    assert result.commands == (Command(CommandKind.SET_CATEGORY, category),)


@pytest.mark.parametrize("level", list(Severity), ids=[s.label for s in Severity])
def test_every_severity(level: Severity) -> None:
    (command,) = parse_commands(f"/triage severity {level.label}").commands
    assert command == Command(CommandKind.SET_SEVERITY, level.label)
    assert command.severity is level


@pytest.mark.parametrize("route", ROUTES)
def test_every_route(route: str) -> None:
    assert parse_commands(f"/triage route {route}").commands == (
        Command(CommandKind.SET_ROUTE, route),
    )


# --- what is not a command ----------------------------------------------------------------

IGNORED_CASES = [
    Case("fence-backticks", "```\n/triage explain\n```\n/triage help", ("/triage help",)),
    Case("fence-tildes", "~~~\n/triage explain\n~~~\n/triage help", ("/triage help",)),
    Case("fence-info-string", "```python\n/triage explain\n```", ()),
    Case(
        "fence-indented-opener", "  ```\n/triage explain\n   ```\n/triage help", ("/triage help",)
    ),
    Case(
        "fence-closed-only-by-as-long-a-fence",
        "````\n```\n/triage explain\n````\n/triage help",
        ("/triage help",),
    ),
    Case("fence-tilde-not-closed-by-backticks", "~~~\n```\n/triage explain\n```\n", ()),
    Case(
        "fence-unclosed-hides-rest",
        "/triage help\n```\n/triage explain\n/triage not-a-threat",
        ("/triage help",),
    ),
    Case("fence-in-list-item", "- ```\n  /triage explain\n  ```\n/triage help", ("/triage help",)),
    Case(
        "backticks-with-backtick-info-are-not-a-fence", "```x```\n/triage help", ("/triage help",)
    ),
    Case("indented-code", "Example:\n\n    /triage explain\n\n\t/triage not-a-threat", ()),
    Case("indented-continuation", "some text\n    /triage explain", ()),
    Case("inline-code-at-line-start", "`/triage explain`", ()),
    Case("inline-code-mid-line", "Use `/triage explain` to see why.", ()),
    Case("code-span-over-lines", "Try `this\n/triage not-a-threat` please", ()),
    Case("double-backtick-span", "``a ` b\n/triage explain``", ()),
    Case("unmatched-backtick-is-text", "a stray ` here\n/triage explain", ("/triage explain",)),
    Case("escaped-backtick-is-text", "not code \\`\n/triage explain\n`", ("/triage explain",)),
    Case("different-length-runs-do-not-pair", "`a``\n/triage explain", ("/triage explain",)),
    Case("blank-line-ends-code-span", "`open\n\n/triage explain\n`", ("/triage explain",)),
    Case("quote", "> /triage not-a-threat\n/triage explain", ("/triage explain",)),
    Case("quote-indented-and-nested", "  > > /triage not-a-threat\n>/triage help", ()),
    Case("quote-then-own-line", "> reporter wrote this\n/triage explain", ("/triage explain",)),
    Case("html-comment-one-line", "<!-- /triage explain -->\n/triage help", ("/triage help",)),
    Case(
        "html-comment-multi-line",
        "<!--\n/triage not-a-threat\n-->\n/triage help",
        ("/triage help",),
    ),
    Case(
        "html-comment-across-blank-lines",
        "<!--\n\n/triage not-a-threat\n\n-->\n/triage help",
        ("/triage help",),
    ),
    Case(
        "html-comment-inline-over-lines",
        "Thanks <!-- hidden\n/triage not-a-threat\n--> ok\n/triage help",
        ("/triage help",),
    ),
    Case(
        "html-comment-unclosed-hides-rest",
        "/triage help\n<!--\n/triage not-a-threat",
        ("/triage help",),
    ),
    Case(
        "html-comment-unclosed-inline-is-text", "a <!-- b\n\n/triage explain", ("/triage explain",)
    ),
    Case("html-comment-short-form", "<!-->\n/triage explain", ("/triage explain",)),
    Case("pre-block", "<pre>\n/triage explain\n</pre>\n/triage help", ("/triage help",)),
    Case("not-at-line-start", "please /triage explain", ()),
    Case("list-item", "- /triage explain", ()),
    Case("emphasis", "**/triage explain**", ()),
    Case("escaped-slash", "\\/triage explain", ()),
    Case("longer-word-triaged", "/triaged this yesterday", ()),
    Case("longer-word-hyphen", "/triage-bot explain", ()),
    Case("combining-accent-makes-another-word", "/triage\u0301 explain", ()),
    Case("other-slash-command", "/label bug\n/assign me", ()),
    Case("look-alike-not-followed-by-triage", "\u2215usr/bin is a path", ()),
]


@run_cases(IGNORED_CASES)
def test_ignored_text(case: Case) -> None:
    check(case)


# --- line endings, Unicode ----------------------------------------------------------------

LINE_ENDING_CASES = [
    Case("crlf", "/triage explain\r\n/triage help\r\n", ("/triage explain", "/triage help")),
    Case(
        "crlf-fence",
        "```\r\n/triage explain\r\n```\r\n/triage severity low\r\n",
        ("/triage severity low",),
    ),
    Case("crlf-error-line-numbers", "hi\r\n\r\n/triage nope\r\n", (), ((3, "Unknown command"),)),
    Case("lone-cr", "/triage explain\r/triage help", ("/triage explain", "/triage help")),
]


@run_cases(LINE_ENDING_CASES)
def test_line_endings(case: Case) -> None:
    check(case)


# A real ASCII "/triage" is required; near misses are reported and never run.
UNICODE_CASES = [
    Case("division-slash", "\u2215triage not-a-threat", (), ((1, "DIVISION SLASH (U+2215)"),)),
    Case("fraction-slash", "\u2044triage explain", (), ((1, "FRACTION SLASH (U+2044)"),)),
    Case(
        "fullwidth-solidus", "\uff0ftriage not-a-threat", (), ((1, "FULLWIDTH SOLIDUS (U+FF0F)"),)
    ),
    Case("big-solidus", "\u29f8triage explain", (), ((1, "BIG SOLIDUS"),)),
    Case(
        "fullwidth-keyword",
        "/\uff54\uff52\uff49\uff41\uff47\uff45 explain",
        (),
        ((1, "full-width"),),
    ),
    Case(
        "all-fullwidth",
        "\uff0f\uff54\uff52\uff49\uff41\uff47\uff45",
        (),
        ((1, "FULLWIDTH SOLIDUS"),),
    ),
    Case("near-miss-says-not-run", "\u2215triage explain", (), ((1, "Not run"),)),
    Case(
        "fullwidth-arguments",
        "/triage \uff53\uff45\uff56\uff45\uff52\uff49\uff54\uff59 "
        "\uff43\uff52\uff49\uff54\uff49\uff43\uff41\uff4c",
        ("/triage severity critical",),
    ),
    Case("ideographic-space", "/triage\u3000explain", ("/triage explain",)),
    Case("no-break-space", "/triage\u00a0route\u00a0privacy", ("/triage route privacy",)),
    Case("look-alike-in-code-is-ignored", "```\n\u2215triage explain\n```", ()),
]


@run_cases(UNICODE_CASES)
def test_unicode(case: Case) -> None:
    check(case)


# --- several commands, errors -------------------------------------------------------------

SEVERAL_CASES = [
    Case(
        "in-order",
        "/triage data-poisoning\nsome words\n/triage severity important\n/triage route ssirp",
        ("/triage data-poisoning", "/triage severity important", "/triage route ssirp"),
    ),
    Case("repeats-kept", "/triage explain\n/triage explain", ("/triage explain",) * 2),
    Case(
        "errors-and-commands-mixed",
        "/triage explain\n/triage frobnicate\n/triage help",
        ("/triage explain", "/triage help"),
        ((2, "Unknown command"),),
    ),
]


@run_cases(SEVERAL_CASES)
def test_several(case: Case) -> None:
    check(case)


ERROR_CASES = [
    Case(
        "unknown-lists-valid", "/triage foo", (), ((1, "Valid: `/triage`, `/triage <category>`"),)
    ),
    Case("unknown-points-to-help", "/triage foo", (), ((1, "`/triage help`"),)),
    Case("unknown-lists-categories", "/triage foo", (), ((1, "`membership-inference`"),)),
    Case(
        "typo-suggests",
        "/triage data-posioning",
        (),
        ((1, "Did you mean `/triage data-poisoning`?"),),
    ),
    Case("keyword-typo-suggests", "/triage explian", (), ((1, "Did you mean `/triage explain`?"),)),
    Case(
        "severity-as-category",
        "/triage critical",
        (),
        ((1, "did you mean `/triage severity critical`?"),),
    ),
    Case("route-as-category", "/triage ssirp", (), ((1, "did you mean `/triage route ssirp`?"),)),
    Case(
        "severity-missing",
        "/triage severity",
        (),
        ((1, "needs a severity level: `low`, `moderate`, `important`, `critical`"),),
    ),
    Case(
        "severity-unknown",
        "/triage severity extreme",
        (),
        ((1, "Unknown severity level `extreme`"),),
    ),
    Case(
        "severity-typo",
        "/triage severity critcal",
        (),
        ((1, "Did you mean `/triage severity critical`?"),),
    ),
    Case("route-missing", "/triage route", (), ((1, "`ssirp`, `security`, `abuse`, `privacy`"),)),
    Case("route-unknown", "/triage route legal", (), ((1, "Unknown route `legal`"),)),
    Case(
        "threat-prefix-unknown", "/triage threat/foo", (), ((1, "Unknown category `threat/foo`"),)
    ),
    Case(
        "trailing-after-keyword",
        "/triage explain please",
        (),
        ((1, "Unexpected text after `/triage explain`: `please`"),),
    ),
    Case(
        "trailing-after-severity",
        "/triage severity low now",
        (),
        ((1, "after `/triage severity low`: `now`"),),
    ),
    Case(
        "trailing-after-category",
        "/triage data-poisoning because",
        (),
        ((1, "after `/triage data-poisoning`: `because`"),),
    ),
    Case("trailing-punctuation", "/triage not-a-threat .", (), ((1, "Unexpected text"),)),
    Case("help-takes-nothing", "/triage help me", (), ((1, "Unexpected text"),)),
    Case("retry-handoff-takes-nothing", "/triage retry-handoff now", (),
         ((1, "Unexpected text after `/triage retry-handoff`"),)),
    Case("error-line-number", "hello\n\nworld\n/triage foo", (), ((4, "Unknown command"),)),
    Case(
        "mention-is-inside-code",
        "/triage @org/security-team",
        (),
        ((1, "`/triage @org/security-team`"),),
    ),
    Case("backtick-cannot-break-out", "/triage a`b", (), ((1, "``/triage a`b``"),)),
]


@run_cases(ERROR_CASES)
def test_errors(case: Case) -> None:
    check(case)


def test_error_keeps_line_text_and_clips_echoes() -> None:
    (error,) = parse_commands("  /triage " + "x" * 5000).errors
    assert error.line == 1
    assert error.text.startswith("/triage xxx") and len(error.text) <= 201
    assert len(error.message) < 600


# --- size and the cap ---------------------------------------------------------------------

MEGABYTE = 1_000_000
BIG_TEXTS = {
    "prose-then-command": "word " * (MEGABYTE // 5) + "\n/triage explain",
    "short-lines": "a\n" * (MEGABYTE // 2) + "/triage explain",
    "backtick-lines": "`\n" * (MEGABYTE // 2) + "\n/triage explain",
    "slash-backtick-lines": "/`\n" * (MEGABYTE // 3) + "\n/triage explain",
    "unclosed-inline-comments": "x" + "<!--" * (MEGABYTE // 4) + "\n\n/triage explain",
    "comment-lines": "a <!--\n" * (MEGABYTE // 7) + "\n/triage explain",
    "growing-backtick-runs": " ".join("`" * i for i in range(1, 1400)) + "\n\n/triage explain",
    "escapes": "\\`" * (MEGABYTE // 2) + "\n\n/triage explain",
    "fence-lines": "~~~\n" * (MEGABYTE // 4 + 1) + "/triage explain",
    "one-long-command-line": "/triage explain " + "x" * MEGABYTE,
}
BIG_EXPECTED: dict[str, tuple[list[str], int]] = {
    "fence-lines": ([], 0),
    "one-long-command-line": ([], 1),
}


@pytest.mark.parametrize("name", BIG_TEXTS)
def test_one_megabyte_in_linear_time(name: str) -> None:
    text = BIG_TEXTS[name]
    assert len(text) >= MEGABYTE * 0.9
    started = time.perf_counter()
    result = parse_commands(text)
    elapsed = time.perf_counter() - started
    # Not a speed measure (benchmarks do that): a guard against quadratic parsing. Linear work
    # takes about a second here, 11 s when the 2-core machine is saturated; anything quadratic
    # on 1 MB takes hours, so a bound far above any load keeps the check meaningful.
    assert elapsed < 120, f"{elapsed:.1f}s"
    commands, errors = BIG_EXPECTED.get(name, (["/triage explain"], 0))
    assert shown(result) == commands
    assert len(result.errors) == errors


def test_cap_stops_after_max_commands() -> None:
    text = "\n".join(f"/triage severity {s}" for s in ["low"] * MAX_COMMANDS + ["critical"])
    result = parse_commands(text)
    assert shown(result) == ["/triage severity low"] * MAX_COMMANDS
    assert result.truncated
    assert result.truncation_notice is not None and str(MAX_COMMANDS) in result.truncation_notice


def test_cap_exactly_reached_is_not_truncated() -> None:
    result = parse_commands("/triage explain\n" * MAX_COMMANDS)
    assert len(result.commands) == MAX_COMMANDS
    assert not result.truncated and result.truncation_notice is None


def test_cap_counts_errors_but_not_other_slash_lines() -> None:
    errors_first = parse_commands("/triage nope\n" * MAX_COMMANDS + "/triage explain")
    assert errors_first.commands == () and len(errors_first.errors) == MAX_COMMANDS
    assert errors_first.truncated
    other_commands = parse_commands("/label x\n" * 50 + "/triage explain")
    assert shown(other_commands) == ["/triage explain"] and not other_commands.truncated


def test_cap_on_a_megabyte_of_commands() -> None:
    result = parse_commands("/triage explain\n" * (MEGABYTE // 16))
    assert len(result.commands) == MAX_COMMANDS and result.truncated


# --- edited comments ----------------------------------------------------------------------

EDIT_CASES = [
    ("new-comment", None, "/triage explain", ["/triage explain"]),
    ("unchanged-command-does-not-rerun", "/triage explain", "/triage explain\n\nedit: typo", []),
    (
        "added-command-runs",
        "/triage explain",
        "/triage explain\n/triage severity low",
        ["/triage severity low"],
    ),
    (
        "repeat-added-runs-once-more",
        "/triage explain",
        "/triage explain\n/triage explain",
        ["/triage explain"],
    ),
    (
        "two-repeats-added-run-twice",
        "/triage help",
        "/triage help\n" * 3,
        ["/triage help", "/triage help"],
    ),
    ("compared-normalised", "/triage severity LOW", "/TRIAGE  severity low", []),
    (
        "threat-prefix-is-same-command",
        "/triage threat/data-poisoning",
        "/triage data-poisoning",
        [],
    ),
    ("reordered", "/triage explain\n/triage help", "/triage help\n/triage explain", []),
    (
        "changed-argument-runs",
        "/triage severity low",
        "/triage severity critical",
        ["/triage severity critical"],
    ),
    ("removed-runs-nothing", "/triage explain\n/triage help", "/triage help", []),
    ("moved-out-of-code-runs", "```\n/triage explain\n```", "/triage explain", ["/triage explain"]),
    (
        "over-cap-command-gets-its-turn",
        "/triage help\n" + "/triage explain\n" * MAX_COMMANDS,
        "/triage explain\n" * MAX_COMMANDS,
        ["/triage explain"],
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), [c[1:] for c in EDIT_CASES], ids=[c[0] for c in EDIT_CASES]
)
def test_new_commands(old: str | None, new: str, expected: list[str]) -> None:
    assert shown(new_commands(old, new)) == expected


def test_edit_does_not_repeat_old_errors() -> None:
    assert new_commands("/triage foo", "/triage foo\nthanks").errors == ()
    (error,) = new_commands("/triage foo", "/triage foo\n/triage bar").errors
    assert error.line == 2 and "`/triage bar`" in error.message


# --- help ---------------------------------------------------------------------------------


def test_every_command_has_help_whose_examples_parse_to_it() -> None:
    assert set(HELP) == set(CommandKind)
    for kind, entry in HELP.items():
        assert entry.usage.startswith("/triage") and entry.description
        for example in entry.examples:
            assert [c.kind for c in parse_commands(example).commands] == [kind], example


def test_render_help_lists_usage_who_and_examples() -> None:
    text = render_help()
    for entry in HELP.values():
        assert f"`{entry.usage}`" in text
        assert all(f"`{e}`" in text for e in entry.examples)
    assert "| `/triage explain` |" in text and "| Anyone |" in text
    assert "People with triage access or higher" in text
    assert all(f"`{c}`" in text for c in CATEGORY_IDS + ROUTES)


def test_render_help_follows_policy() -> None:
    text = render_help(CommandPolicy.from_dict({"severity": "write"}))
    (row,) = [line for line in text.splitlines() if line.startswith("| `/triage severity")]
    assert "People with write access or higher" in row


# --- permission policy --------------------------------------------------------------------

DEFAULTS = [
    (CommandKind.RETRIAGE, Access.TRIAGE),
    (CommandKind.SET_CATEGORY, Access.TRIAGE),
    (CommandKind.NOT_A_THREAT, Access.TRIAGE),
    (CommandKind.SET_SEVERITY, Access.TRIAGE),
    (CommandKind.SET_ROUTE, Access.TRIAGE),
    (CommandKind.EXPLAIN, Access.NONE),
    (CommandKind.HELP, Access.NONE),
]


@pytest.mark.parametrize(("kind", "access"), DEFAULTS, ids=[k.value for k, _ in DEFAULTS])
def test_default_policy(kind: CommandKind, access: Access) -> None:
    assert DEFAULT_ACCESS[kind] is access
    assert CommandPolicy().required_access(kind) is access
    assert required_access(Command(kind)) is access


POLICY_OVERRIDES = [
    ("severity-write", {"severity": "write"}, CommandKind.SET_SEVERITY, Access.WRITE),
    ("any-case", {"Route": "MAINTAIN"}, CommandKind.SET_ROUTE, Access.MAINTAIN),
    ("access-value", {"explain": Access.READ}, CommandKind.EXPLAIN, Access.READ),
    ("others-keep-defaults", {"severity": "write"}, CommandKind.NOT_A_THREAT, Access.TRIAGE),
    ("none-is-defaults", None, CommandKind.HELP, Access.NONE),
    ("empty-is-defaults", {}, CommandKind.RETRIAGE, Access.TRIAGE),
]


@pytest.mark.parametrize(
    ("raw", "kind", "access"),
    [c[1:] for c in POLICY_OVERRIDES],
    ids=[c[0] for c in POLICY_OVERRIDES],
)
def test_policy_from_dict(raw: object, kind: CommandKind, access: Access) -> None:
    policy = CommandPolicy.from_dict(raw)
    assert policy.required_access(kind) is access
    assert required_access(Command(kind), policy) is access


BAD_POLICIES = [
    ("unknown-command", {"sevrity": "write"}, ["unknown command 'sevrity'", "severity"]),
    ("unknown-level", {"severity": "owner"}, ["unknown access level 'owner'", "maintain"]),
    ("not-a-string", {"severity": 3}, ["unknown access level 3"]),
    ("null-level", {"route": None}, ["unknown access level None"]),
    ("not-a-mapping", ["severity"], ["expected a mapping"]),
    ("given-twice", {"severity": "write", "SEVERITY": "admin"}, ["more than once"]),
    ("every-problem-at-once", {"x": "write", "help": "y"}, ["'x'", "'y'"]),
]


@pytest.mark.parametrize(
    ("raw", "fragments"), [c[1:] for c in BAD_POLICIES], ids=[c[0] for c in BAD_POLICIES]
)
def test_bad_policy(raw: object, fragments: list[str]) -> None:
    with pytest.raises(PolicyError) as caught:
        CommandPolicy.from_dict(raw)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert caught.value.problems


def test_policy_allows() -> None:
    policy = CommandPolicy()
    severity = Command(CommandKind.SET_SEVERITY, "low")
    assert policy.allows(severity, Access.TRIAGE) and policy.allows(severity, Access.ADMIN)
    assert not policy.allows(severity, Access.READ)
    assert policy.allows(CommandKind.EXPLAIN, Access.NONE)
