"""Parse ``/triage`` slash commands out of a comment, with no I/O (triagebot's separate parser).

A command is a line that starts with ``/triage`` (after at most three spaces). Lines a reader
does not see as plain text are skipped, following CommonMark block structure line by line:
fenced code (```` ``` ```` / ``~~~``; an unclosed fence hides the rest of the comment), indented
code (4 columns, a tab counts to the next multiple of 4), block quotes (``>``), HTML comments
(``<!-- -->``, multi-line, an unclosed block-level one hides the rest) and ``<pre>``-style
HTML blocks. Inside a paragraph, a line whose start falls in a code span or an inline HTML
comment opened on an earlier line is skipped too. Two simplifications, both on purpose: a line
without ``>`` is never treated as a lazy continuation of a quote (its author typed it outside
the quote marker), and list items are only looked through to find fences.

Unicode: the trigger ``/triage`` must be typed in ASCII. A line that only becomes ``/triage``
after NFKC or with a look-alike slash (U+2215 ∕, U+2044 ⁄, U+FF0F ／, … from Unicode's
confusables for SOLIDUS) is not run: such text is what an attacker pastes to make a report
look like it contains no command, or what a human did not mean as one. It is reported as an
error, so a person who did mean it learns why nothing happened. Arguments after a real
``/triage`` are NFKC-normalised and case-folded, so ``ｃｒｉｔｉｃａｌ`` (full-width, from a CJK
input method) means ``critical``: the person deliberately typed the command, and NFKC maps
those letters to exactly the ones a reader sees.

Linear time: the text is scanned once line by line; code spans are matched with an index of
backtick runs by length, never with backtracking. At most ``MAX_COMMANDS`` command lines are
read per comment; ``ParseResult.truncated`` says when more were ignored.
"""

from __future__ import annotations

import difflib
import enum
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bot.decide.model import CATEGORY_IDS, ROUTES, Access, Severity

MAX_COMMANDS = 10
"""Command lines (valid or not) read from one comment; later ones are ignored."""

PREFIX = "/triage"

SEVERITY_LEVELS: tuple[str, ...] = tuple(s.label for s in Severity)


class CommandKind(enum.Enum):
    """What a command asks for. The values are the names used in the policy config."""

    RETRIAGE = "retriage"
    SET_CATEGORY = "category"
    NOT_A_THREAT = "not-a-threat"
    SET_SEVERITY = "severity"
    SET_ROUTE = "route"
    RETRY_HANDOFF = "retry-handoff"
    EXPLAIN = "explain"
    HELP = "help"


@dataclass(frozen=True)
class Command:
    """One parsed command. Equality ignores ``line``, so edits compare by meaning."""

    kind: CommandKind
    arg: str | None = None
    """Category id, severity label or route, normalised to lower case; ``None`` otherwise."""
    line: int = field(default=0, compare=False)

    @property
    def severity(self) -> Severity | None:
        """The level of a ``SET_SEVERITY`` command."""
        if self.kind is CommandKind.SET_SEVERITY and self.arg is not None:
            return Severity.parse(self.arg)
        return None

    def __str__(self) -> str:
        """The canonical spelling, e.g. ``/triage severity critical``."""
        words = {
            CommandKind.RETRIAGE: [],
            CommandKind.SET_CATEGORY: [self.arg or ""],
            CommandKind.NOT_A_THREAT: ["not-a-threat"],
            CommandKind.SET_SEVERITY: ["severity", self.arg or ""],
            CommandKind.SET_ROUTE: ["route", self.arg or ""],
            CommandKind.RETRY_HANDOFF: ["retry-handoff"],
            CommandKind.EXPLAIN: ["explain"],
            CommandKind.HELP: ["help"],
        }[self.kind]
        return " ".join([PREFIX, *words])


@dataclass(frozen=True)
class CommandError:
    """A line that was meant as a command but cannot run; ``message`` says what is valid.

    ``text`` is the line as written (clipped to 200 characters); quote it before echoing it.
    ``message`` is safe to post: user text in it is clipped and inside a code span, so it
    cannot mention anyone.
    """

    line: int
    text: str
    message: str


@dataclass(frozen=True)
class ParseResult:
    """Everything found in one comment, in order of appearance."""

    commands: tuple[Command, ...] = ()
    errors: tuple[CommandError, ...] = ()
    truncated: bool = False
    """More than ``MAX_COMMANDS`` command lines: the ones after the cap were not read."""

    @property
    def truncation_notice(self) -> str | None:
        """The sentence to tell the author when commands were dropped."""
        if not self.truncated:
            return None
        return (
            f"Only the first {MAX_COMMANDS} `{PREFIX}` commands in a comment are read; "
            "the rest were ignored. Put them in another comment."
        )


@dataclass(frozen=True)
class CommandHelp:
    """prow ``pluginhelp.Command`` for one command: usage, who can use it, examples."""

    usage: str
    description: str
    default_access: Access
    """Who may use it unless the policy config says otherwise."""
    examples: tuple[str, ...]


def _listing(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{v}`" for v in values)


HELP: Mapping[CommandKind, CommandHelp] = MappingProxyType(
    {
        CommandKind.RETRIAGE: CommandHelp(
            usage=PREFIX,
            description="Run triage again on the issue's current title and body.",
            default_access=Access.TRIAGE,
            examples=(PREFIX,),
        ),
        CommandKind.SET_CATEGORY: CommandHelp(
            usage=f"{PREFIX} <category>",
            description="Set the threat category, replacing the bot's choice. "
            "`threat/<category>` is accepted too.",
            default_access=Access.TRIAGE,
            examples=(f"{PREFIX} model-stealing", f"{PREFIX} threat/data-poisoning"),
        ),
        CommandKind.NOT_A_THREAT: CommandHelp(
            usage=f"{PREFIX} not-a-threat",
            description="Remove the bot's threat labels and remember that this issue is not "
            "an AI/ML threat.",
            default_access=Access.TRIAGE,
            examples=(f"{PREFIX} not-a-threat",),
        ),
        CommandKind.SET_SEVERITY: CommandHelp(
            usage=f"{PREFIX} severity <level>",
            description=f"Set the severity ({_listing(SEVERITY_LEVELS)}); it must lie in the "
            "category's range.",
            default_access=Access.TRIAGE,
            examples=(f"{PREFIX} severity important",),
        ),
        CommandKind.SET_ROUTE: CommandHelp(
            usage=f"{PREFIX} route <route>",
            description=f"Send the issue to a team ({_listing(ROUTES)}).",
            default_access=Access.TRIAGE,
            examples=(f"{PREFIX} route privacy",),
        ),
        CommandKind.RETRY_HANDOFF: CommandHelp(
            usage=f"{PREFIX} retry-handoff",
            description="Try the security hand-off step the tracker refused (lock, advisory, "
            "transfer, confidential, security level) again now, e.g. after fixing the bot's "
            "permissions, and reply with the outcome.",
            default_access=Access.TRIAGE,
            examples=(f"{PREFIX} retry-handoff",),
        ),
        CommandKind.EXPLAIN: CommandHelp(
            usage=f"{PREFIX} explain",
            description="Reply with the evidence and cues behind the bot's decision.",
            default_access=Access.NONE,
            examples=(f"{PREFIX} explain",),
        ),
        CommandKind.HELP: CommandHelp(
            usage=f"{PREFIX} help",
            description="Reply with this list of commands.",
            default_access=Access.NONE,
            examples=(f"{PREFIX} help",),
        ),
    }
)
"""Help for every command, in the order ``render_help`` lists them."""

_NO_ARG_KEYWORDS: Mapping[str, CommandKind] = MappingProxyType(
    {
        "not-a-threat": CommandKind.NOT_A_THREAT,
        "retry-handoff": CommandKind.RETRY_HANDOFF,
        "explain": CommandKind.EXPLAIN,
        "help": CommandKind.HELP,
    }
)
_VALUE_KEYWORDS: Mapping[str, tuple[CommandKind, str, tuple[str, ...]]] = MappingProxyType(
    {
        "severity": (CommandKind.SET_SEVERITY, "severity level", SEVERITY_LEVELS),
        "route": (CommandKind.SET_ROUTE, "route", ROUTES),
    }
)
_THREAT_PREFIX = "threat/"
_VALID_SUMMARY = "Valid: " + ", ".join(f"`{h.usage}`" for h in HELP.values())

# Unicode confusables.txt entries for SOLIDUS that are symbols, not letters (letters such as
# KATAKANA NO would flag ordinary prose), plus anything NFKC turns into "/".
_SLASH_LOOKALIKES = frozenset(
    "\u1735\u2041\u2044\u2215\u2571\u27cb\u29f8\u2f03\u3033\u31d3\uff0f\U0001d23a"
)


# --- reading one command line -------------------------------------------------------------


def _code(text: str, limit: int = 40) -> str:
    """``text`` as a Markdown code span, clipped; backticks inside cannot end it early."""
    if len(text) > limit:
        text = text[:limit] + "…"
    longest = max((len(m.group()) for m in re.finditer("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _suggest(word: str, candidates: tuple[str, ...]) -> str | None:
    matches = difflib.get_close_matches(word[:64], candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _trailing(command: Command, extra: list[str]) -> str:
    return (
        f"Unexpected text after `{command}`: {_code(' '.join(extra))}. "
        "Put each command on its own line, with nothing after its argument."
    )


def _parse_value(
    kind: CommandKind, keyword: str, what: str, valid: tuple[str, ...], args: list[str], line: int
) -> Command | str:
    if not args:
        return f"`{PREFIX} {keyword}` needs a {what}: {_listing(valid)}."
    value = args[0]
    if value not in valid:
        hint = _suggest(value, valid)
        did_you_mean = f" Did you mean `{PREFIX} {keyword} {hint}`?" if hint else ""
        return f"Unknown {what} {_code(value)}.{did_you_mean} Valid: {_listing(valid)}."
    command = Command(kind, value, line)
    return _trailing(command, args[1:]) if len(args) > 1 else command


def _parse_unknown(word: str) -> str:
    if word in SEVERITY_LEVELS:
        return f"`{word}` is a severity level: did you mean `{PREFIX} severity {word}`?"
    if word in ROUTES:
        return f"`{word}` is a route: did you mean `{PREFIX} route {word}`?"
    if word.startswith(_THREAT_PREFIX):
        hint = _suggest(word.removeprefix(_THREAT_PREFIX), CATEGORY_IDS)
        did_you_mean = f" Did you mean `{PREFIX} {hint}`?" if hint else ""
        return f"Unknown category {_code(word)}.{did_you_mean} Valid: {_listing(CATEGORY_IDS)}."
    hint = _suggest(word, CATEGORY_IDS + tuple(_NO_ARG_KEYWORDS) + tuple(_VALUE_KEYWORDS))
    did_you_mean = f" Did you mean `{PREFIX} {hint}`?" if hint else ""
    return (
        f"Unknown command {_code(f'{PREFIX} {word}')}.{did_you_mean} {_VALID_SUMMARY}. "
        f"Categories: {_listing(CATEGORY_IDS)}. Send `{PREFIX} help` for details."
    )


def _parse_words(words: list[str], line: int) -> Command | str:
    """The words after ``/triage`` (NFKC, case-folded) → a command, or an error message."""
    if not words:
        return Command(CommandKind.RETRIAGE, None, line)
    head, args = words[0], words[1:]
    if head in _NO_ARG_KEYWORDS:
        command = Command(_NO_ARG_KEYWORDS[head], None, line)
    elif head in _VALUE_KEYWORDS:
        kind, what, valid = _VALUE_KEYWORDS[head]
        return _parse_value(kind, head, what, valid, args, line)
    elif head.removeprefix(_THREAT_PREFIX) in CATEGORY_IDS:
        command = Command(CommandKind.SET_CATEGORY, head.removeprefix(_THREAT_PREFIX), line)
    else:
        return _parse_unknown(head)
    return _trailing(command, args) if args else command


def _near_miss(content: str) -> str | None:
    """Why ``content`` looks like ``/triage`` to a reader but is not ASCII, or ``None``."""
    first = content[0]
    if first == "/":
        what = "spells `/triage` with look-alike or full-width letters"
    elif first in _SLASH_LOOKALIKES or unicodedata.normalize("NFKC", first) == "/":
        name = unicodedata.name(first, "a look-alike character")
        what = f"starts with {name} (U+{ord(first):04X}) instead of an ASCII `/`"
    else:
        return None
    # 32 characters are plenty to spell "triage" and the space after it.
    folded = unicodedata.normalize("NFKC", content[1:33]).casefold()
    if not folded.startswith("triage") or (len(folded) > 6 and not folded[6].isspace()):
        return None
    return (
        f"Not run: this line {what}. Commands must be typed in plain ASCII so that one runs "
        "only when someone meant it; retype the line and edit the comment."
    )


def _read_line(content: str, line: int) -> Command | str | None:
    """A visible line (indentation removed) → command, error message, or ``None`` (not ours)."""
    if not content or (content[0] != "/" and content[0] < "\u0080"):
        return None
    head = content[1:7]
    if content[0] == "/" and head.isascii() and head.lower() == "triage":
        rest = unicodedata.normalize("NFKC", content[7:])
        if rest and not rest[0].isspace():
            return None  # /triaged, /triage-bot: another word
        return _parse_words(rest.casefold().split(), line)
    return _near_miss(content)


# --- finding the lines a reader sees as plain text ----------------------------------------

_LIST_MARKER = re.compile(r"(?:[-*+]|[0-9]{1,9}[.)])[ \t]+")
_RAW_HTML_TAGS = ("pre", "script", "style", "textarea")
# First characters of the lines that may open or close a block; other lines are paragraph text.
_LIST_STARTERS = frozenset("-*+0123456789")
_BLOCK_STARTERS = _LIST_STARTERS | frozenset("`~<>#")


def _split_lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _indent(line: str) -> tuple[int, int]:
    """(columns of leading blanks with tab stops of 4, index of the first other character)."""
    if line[:1] not in (" ", "\t"):
        return 0, 0
    columns = 0
    for index, char in enumerate(line):
        if char == " ":
            columns += 1
        elif char == "\t":
            columns = columns // 4 * 4 + 4
        else:
            return columns, index
    return columns, len(line)


def _run_length(text: str, char: str) -> int:
    return len(text) - len(text.lstrip(char))


def _fence_opener(content: str) -> tuple[str, int] | None:
    """(fence character, length) when ``content`` opens a fenced code block."""
    char = content[:1]
    if char not in ("`", "~"):
        return None
    length = _run_length(content, char)
    if length < 3 or (char == "`" and "`" in content[length:]):
        return None
    return char, length


def _closes_fence(content: str, char: str, length: int) -> bool:
    return _run_length(content, char) >= length and not content.lstrip(char).strip(" \t")


def _html_block_end(content: str) -> str | None:
    """The text that ends the HTML block ``content`` opens (CommonMark types 1 and 2)."""
    if content.startswith("<!--"):
        return "-->"
    start = content[:11].lower()
    for tag in _RAW_HTML_TAGS:
        after = start[len(tag) + 1 : len(tag) + 2]
        if start.startswith("<" + tag) and after in ("", " ", "\t", ">"):
            return f"</{tag}>"
    return None


def _is_heading(content: str) -> bool:
    hashes = _run_length(content[:7], "#")
    return 1 <= hashes <= 6 and content[hashes : hashes + 1] in ("", " ", "\t")


def _escaped(text: str, index: int) -> bool:
    """Whether ``text[index]`` follows an odd number of backslashes."""
    count = 0
    while index - count > 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _hidden_spans(text: str) -> list[tuple[int, int]]:
    """Code spans and HTML comments in a paragraph, as sorted ``[start, end)`` offsets."""
    runs = [(m.start(), m.end() - m.start()) for m in re.finditer("`+", text)]
    starts_by_length: dict[int, list[int]] = {}
    for start, length in runs:
        starts_by_length.setdefault(length, []).append(start)
    # The closer searched for a given length only ever moves right, so one cursor per length
    # keeps the whole scan linear.
    cursor: dict[int, int] = {}

    def closer(length: int, after: int) -> int | None:
        candidates = starts_by_length.get(length, [])
        i = cursor.get(length, 0)
        while i < len(candidates) and candidates[i] < after:
            i += 1
        cursor[length] = i
        return candidates[i] if i < len(candidates) else None

    spans: list[tuple[int, int]] = []
    pos = run_index = 0
    comment = text.find("<!--")
    while True:
        while run_index < len(runs) and runs[run_index][0] < pos:
            run_index += 1
        if comment != -1 and comment < pos:
            comment = text.find("<!--", pos)
        run = runs[run_index] if run_index < len(runs) else None
        if run is not None and (comment == -1 or run[0] < comment):
            run_index += 1
            start, length = run
            if _escaped(text, start):
                start, length = start + 1, length - 1
            end = closer(length, start + length) if length else None
            if end is None:
                pos = start + length
            else:
                spans.append((start, end + length))
                pos = end + length
        elif comment != -1:
            if _escaped(text, comment):
                pos = comment + 1
                continue
            # Searching from +2 makes "<!-->" and "<!--->" complete comments, as in CommonMark.
            end = text.find("-->", comment + 2)
            if end == -1:
                pos, comment = comment + 4, -1  # no later "<!--" can close either
            else:
                spans.append((comment, end + 3))
                pos = end + 3
        else:
            return spans


def _paragraph_lines(paragraph: list[tuple[int, str, int]]) -> Iterator[tuple[int, str]]:
    """Lines of one paragraph that may start a command and do not start inside a span.

    ``paragraph`` holds (line number, line, index where its text starts, or -1 when the line
    cannot start a command).
    """
    candidates: list[tuple[int, int, str]] = []  # offset in the paragraph, number, text
    offset = 0
    for number, line, at in paragraph:
        if at >= 0:
            candidates.append((offset + at, number, line[at:]))
        offset += len(line) + 1
    if not candidates:
        return
    text = "\n".join(line for _, line, _ in paragraph)
    spans = _hidden_spans(text) if "`" in text or "<!--" in text else []
    k = 0
    for offset, number, content in candidates:
        while k < len(spans) and spans[k][1] <= offset:
            k += 1
        if k == len(spans) or spans[k][0] >= offset:
            yield number, content


def _visible_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line without indentation) for each line a reader sees start as text."""
    fence: tuple[str, int, int] | None = None  # character, length, column of its container
    html_end: str | None = None
    paragraph: list[tuple[int, str, int]] = []  # number, line, content index (-1: can't start)
    for number, line in enumerate(_split_lines(text), start=1):
        columns, at = _indent(line)
        if fence is not None:
            char, length, base = fence
            if columns < base + 4 and _closes_fence(line[at:], char, length):
                fence = None
            continue
        if html_end is not None:
            if html_end in (line if html_end == "-->" else line.lower()):
                html_end = None
            continue
        if at == len(line):  # blank line
            yield from _paragraph_lines(paragraph)
            paragraph = []
            continue
        if columns >= 4:  # indented code, or a continuation that cannot start a command
            if paragraph:
                paragraph.append((number, line, -1))
            continue
        content = line[at:]
        first = content[0]
        if first not in _BLOCK_STARTERS:
            paragraph.append((number, line, at if first == "/" or first >= "\x80" else -1))
            continue
        html = _html_block_end(content) if first == "<" else None
        marker = _LIST_MARKER.match(content) if first in _LIST_STARTERS else None
        marker_width = marker.end() if marker else 0
        opener = _fence_opener(content[marker_width:])
        if opener or html or first == ">" or (first == "#" and _is_heading(content)):
            yield from _paragraph_lines(paragraph)
            paragraph = []
            if opener:
                fence = (*opener, columns + marker_width if marker else 0)
            elif html and html not in content[2 if html == "-->" else 1 :].lower():
                html_end = html
            continue
        paragraph.append((number, line, -1))  # "-", "1", "`"… cannot start a command
    yield from _paragraph_lines(paragraph)


# --- public entry points ------------------------------------------------------------------


def parse_commands(text: str) -> ParseResult:
    """Every ``/triage`` command and command error in a comment, in order (see module doc)."""
    commands: list[Command] = []
    errors: list[CommandError] = []
    seen = 0
    for number, content in _visible_lines(text):
        parsed = _read_line(content, number)
        if parsed is None:
            continue
        if seen == MAX_COMMANDS:
            return ParseResult(tuple(commands), tuple(errors), truncated=True)
        seen += 1
        if isinstance(parsed, Command):
            commands.append(parsed)
        else:
            clipped = content if len(content) <= 200 else content[:200] + "…"
            errors.append(CommandError(number, clipped, parsed))
    return ParseResult(tuple(commands), tuple(errors))


def _error_key(error: CommandError) -> tuple[str, str]:
    words = unicodedata.normalize("NFKC", error.text).casefold().split()
    return " ".join(words), error.message


def new_commands(old_text: str | None, new_text: str) -> ParseResult:
    """Commands and errors in ``new_text`` that were not already in ``old_text``.

    For an edited comment: a command runs only if the edit added it, compared by meaning
    (``/TRIAGE threat/x`` equals ``/triage x``) and counted, so adding a second copy of a
    command runs it once more. Errors already reported for the old text are not repeated.
    ``truncated`` is the new text's: the cap applies to the whole comment, so a command past
    it in the old text that an edit brings under it runs then, having never run before.
    """
    new = parse_commands(new_text)
    if old_text is None:
        return new
    old = parse_commands(old_text)
    ran = Counter(old.commands)
    commands: list[Command] = []
    for command in new.commands:
        if ran[command]:
            ran[command] -= 1
        else:
            commands.append(command)
    reported = Counter(_error_key(e) for e in old.errors)
    errors: list[CommandError] = []
    for error in new.errors:
        key = _error_key(error)
        if reported[key]:
            reported[key] -= 1
        else:
            errors.append(error)
    return ParseResult(tuple(commands), tuple(errors), new.truncated)


# --- who may run what ---------------------------------------------------------------------

DEFAULT_ACCESS: Mapping[CommandKind, Access] = MappingProxyType(
    {kind: help_.default_access for kind, help_ in HELP.items()}
)


class PolicyError(ValueError):
    """A command policy config that cannot be used; ``problems`` lists every mistake."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid command policy: " + "; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class CommandPolicy:
    """The access each command needs. Missing kinds fall back to ``DEFAULT_ACCESS``."""

    levels: Mapping[CommandKind, Access] = field(default_factory=lambda: DEFAULT_ACCESS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", MappingProxyType({**DEFAULT_ACCESS, **self.levels}))

    @classmethod
    def from_dict(cls, raw: object) -> CommandPolicy:
        """Build from config such as ``{"severity": "write"}``; ``None`` means the defaults.

        Keys are command names (``retriage``, ``category``, ``not-a-threat``, ``severity``,
        ``route``, ``retry-handoff``, ``explain``, ``help``), values access levels (``none`` …
        ``admin``), both in any case. Raises ``PolicyError`` naming every bad key or value and
        what is valid.
        """
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise PolicyError(
                [f"expected a mapping of command to access level, got {type(raw).__name__}"]
            )
        commands = ", ".join(k.value for k in CommandKind)
        access_names = ", ".join(a.name.lower() for a in Access)
        problems: list[str] = []
        levels: dict[CommandKind, Access] = {}
        for key, value in raw.items():
            try:
                kind = CommandKind(key.strip().casefold()) if isinstance(key, str) else None
            except ValueError:
                kind = None
            if kind is None:
                problems.append(f"unknown command {key!r}; valid: {commands}")
                continue
            if kind in levels:
                problems.append(f"command {key!r} is given more than once")
                continue
            if isinstance(value, Access):
                levels[kind] = value
            elif isinstance(value, str) and value.strip().upper() in Access.__members__:
                levels[kind] = Access[value.strip().upper()]
            else:
                problems.append(f"{key}: unknown access level {value!r}; valid: {access_names}")
        if problems:
            raise PolicyError(problems)
        return cls(levels)

    def required_access(self, command: Command | CommandKind) -> Access:
        """The lowest access that may run ``command``."""
        kind = command.kind if isinstance(command, Command) else command
        return self.levels[kind]

    def allows(self, command: Command | CommandKind, access: Access) -> bool:
        """Whether someone with ``access`` may run ``command``."""
        return access >= self.required_access(command)


DEFAULT_POLICY = CommandPolicy()


def required_access(
    command: Command | CommandKind, policy: CommandPolicy = DEFAULT_POLICY
) -> Access:
    """The lowest access that may run ``command`` under ``policy`` (the defaults if omitted)."""
    return policy.required_access(command)


def _who(access: Access) -> str:
    if access is Access.NONE:
        return "Anyone"
    return f"People with {access.name.lower()} access or higher"


def render_help(policy: CommandPolicy = DEFAULT_POLICY) -> str:
    """The ``/triage help`` reply in Markdown; "who can use it" follows ``policy``."""
    rows = [
        f"| `{h.usage}` | {h.description} | {_who(policy.required_access(kind))} | "
        + ", ".join(f"`{e}`" for e in h.examples)
        + " |"
        for kind, h in HELP.items()
    ]
    return "\n".join(
        [
            f"### `{PREFIX}` commands",
            "",
            f"Write a command at the start of a line in a comment. Lines in code blocks, inline "
            f"code, block quotes and HTML comments are ignored, and at most {MAX_COMMANDS} "
            "commands are read per comment. Editing a comment runs only the commands it adds.",
            "",
            "| Command | What it does | Who can use it | Examples |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            f"Categories: {_listing(CATEGORY_IDS)}.",
            f"Severity levels: {_listing(SEVERITY_LEVELS)}. Routes: {_listing(ROUTES)}.",
        ]
    )
