"""The ``bugbar`` command line: offline triage (classify, explain, eval, rules) and the bot.

Bad input never shows a traceback: every user-facing failure is one ``bugbar: …`` line on
stderr and a non-zero exit (2 for bad usage, input, rules or configuration; 1 for failed checks
and tracker failures). ``--debug`` (or ``BUGBAR_LOG_LEVEL=debug``) adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TextIO

from bot import __version__
from bot.decide.classify import Classifier
from bot.decide.metrics import EvalResult, LabelledItem
from bot.decide.model import CATEGORY_IDS, Decision, Issue
from bot.decide.rules import RulesError, RuleSet, load_rules
from bot.decide.semantic import thresholds_line

SAMPLE_ISSUES = Path(__file__).parent / "data" / "sample_issues.jsonl"


class CliError(Exception):
    """A user-facing error: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def rules_dirs(arg: list[str] | None) -> list[str]:
    """User rule folders: ``--rules`` flags, else ``BUGBAR_RULES`` (os.pathsep-separated)."""
    if arg:
        return arg
    env = os.environ.get("BUGBAR_RULES", "")
    return [d for d in env.split(os.pathsep) if d]


def load_ruleset(arg: list[str] | None) -> RuleSet:
    """Load shipped + user rules or raise CliError listing every problem."""
    try:
        return load_rules(rules_dirs(arg))
    except RulesError as exc:
        if len(exc.issues) == 1:
            raise CliError(f"rules did not load: {exc.issues[0]}") from None
        # One line per problem, so an author fixes them all in one pass.
        raise CliError(f"rules did not load ({len(exc.issues)} problems):\n"
                       + "\n".join(f"  {i}" for i in exc.issues)) from None


def semantic_mode(args: argparse.Namespace) -> str:
    """``off`` (``--no-semantic`` / ``BUGBAR_SEMANTIC=0``), ``on`` (``=1``: required) or
    ``auto`` (the default: on when ``bugbar[semantic]`` is installed)."""
    if getattr(args, "no_semantic", False):
        return "off"
    value = os.environ.get("BUGBAR_SEMANTIC", "").strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value in ("0", "off", "false", "no"):
        return "off"
    if value in ("1", "on", "true", "yes"):
        return "on"
    raise CliError(f"BUGBAR_SEMANTIC={value!r}: use 1 (require the semantic model), 0 (rules "
                   "only) or leave it unset")


def example_dirs(args: argparse.Namespace) -> list[str]:
    """Local example folders: ``--examples`` flags, else ``BUGBAR_EXAMPLES`` (os.pathsep)."""
    given: list[str] | None = getattr(args, "examples", None)
    if given:
        return given
    env = os.environ.get("BUGBAR_EXAMPLES", "")
    return [d for d in env.split(os.pathsep) if d]


def build_classifier(ruleset: RuleSet, args: argparse.Namespace,
                     rule_dirs: list[str] | None = None) -> Classifier:
    """The one classifier every command uses: the rules, plus the semantic model unless it is
    switched off or not installed (then one info line says so)."""
    mode = semantic_mode(args)
    if mode == "off":
        return Classifier(ruleset)
    try:
        from bot.semantic.embed import SemanticUnavailable
        from bot.semantic.examples import ExamplesError, local_dirs
        from bot.semantic.model import load
    except ImportError as exc:  # numpy itself missing: the extra is not installed
        if mode == "on":
            raise CliError(f"the semantic model needs {exc.name}: "
                           "pip install 'bugbar[semantic]'") from None
        print("bugbar: info: semantic model not installed (pip install 'bugbar[semantic]'); "
              "triaging with the rules only", file=sys.stderr)
        return Classifier(ruleset)
    try:
        dirs = local_dirs(example_dirs(args), rule_dirs if rule_dirs is not None
                          else rules_dirs(getattr(args, "rules", None)))
        model = load(ruleset, dirs)
    except ExamplesError as exc:
        raise CliError(str(exc)) from None
    except SemanticUnavailable as exc:
        if mode == "on":
            raise CliError(str(exc)) from None
        print(f"bugbar: info: {exc}; triaging with the rules only", file=sys.stderr)
        return Classifier(ruleset)
    return Classifier(ruleset, semantic=model)


def _open_input(path: str | None, sample: bool) -> tuple[TextIO, str]:
    if sample and path is not None:
        raise CliError(f"--sample reads the built-in sample issues; drop it to read {path}, "
                       "or drop FILE to use the samples")
    if sample or (path is None and sys.stdin.isatty()):
        if not sample:
            print("bugbar: no input given; classifying the built-in sample issues "
                  "(pass FILE or - for stdin)", file=sys.stderr)
        return SAMPLE_ISSUES.open(encoding="utf-8"), str(SAMPLE_ISSUES)
    if path in (None, "-"):
        return sys.stdin, "<stdin>"
    try:
        # utf-8-sig: a file saved by an editor that writes a byte-order mark still reads.
        return open(path, encoding="utf-8-sig"), path  # noqa: SIM115 - closed by caller
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a folder, expected a JSON Lines file") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc.strerror})") from None


def _labels(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CliError(f"{where}: 'labels' must be a list")
    out = []
    for item in value:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            out.append(item["name"])  # tracker label objects
        elif isinstance(item, str):
            out.append(item)
        else:
            raise CliError(f"{where}: 'labels' items must be text or {{\"name\": ...}}")
    return tuple(out)


def parse_record(line: str, where: str) -> dict[str, Any]:
    """Parse one JSON Lines record into a dict, or raise a located CliError."""
    # The line's own end is not part of the record: with it, an error at the end of the line
    # would be reported at "column 1" of the next one.
    text = line.rstrip("\r\n").removeprefix("\ufeff")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        what = exc.msg.removesuffix(" at").removesuffix(":")
        column = exc.pos + 1
        end = " (the end of the line)" if exc.pos >= len(text) else ""
        raise CliError(f"{where}: not valid JSON: {what} at column {column}{end}") from None
    if not isinstance(record, dict):
        raise CliError(f"{where}: expected a JSON object with id, title, body, labels")
    return record


def issue_from_record(record: dict[str, Any], where: str, with_labels: bool = True) -> Issue:
    """Build an Issue from a classify input record (extra keys ignored)."""
    rid = record.get("id")
    if rid is None or isinstance(rid, bool) or not isinstance(rid, str | int):
        raise CliError(f"{where}: 'id' is missing or not text/number")
    title = record.get("title") or ""
    body = record.get("body") or ""
    if not isinstance(title, str) or not isinstance(body, str):
        raise CliError(f"{where}: 'title' and 'body' must be text")
    labels = _labels(record.get("labels"), where) if with_labels else ()
    return Issue(str(rid), title, body, labels)


def iter_records(stream: TextIO, name: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Yield (record, location) for every non-blank line."""
    for n, line in enumerate(stream, 1):
        if line and not line.isspace():
            yield parse_record(line, f"{name}:{n}"), f"{name}:{n}"


def _text_line(d: Decision) -> str:
    if not d.threats:
        extra = f"  ({d.notes[0]})" if d.notes else ""
        return f"{d.issue_id}\tnot an AI/ML threat{extra}"
    parts = [f"{t.category}({t.score:.2f})" for t in d.threats]
    ev = ", ".join(d.threats[0].evidence[:4])
    sev = d.severity.label if d.severity else "-"
    return f"{d.issue_id}\t{' '.join(parts)}\t{sev}\t{'+'.join(d.routes)}\t[{ev}]"


# One encoder for every line: json.dumps with options builds a new one per call.
_JSONL = json.JSONEncoder(ensure_ascii=False)


def cmd_classify(args: argparse.Namespace) -> int:
    """``bugbar classify``: JSON Lines (a contract: README "Command line") or readable text."""
    classifier = build_classifier(load_ruleset(args.rules), args)
    stream, name = _open_input(args.file, args.sample)
    out = sys.stdout
    count = 0
    try:
        for record, where in iter_records(stream, name):
            decision = classifier.classify(issue_from_record(record, where))
            count += 1
            if args.format == "jsonl":
                out.write(_JSONL.encode(decision.to_json()) + "\n")
            else:
                out.write(_text_line(decision) + "\n")
    finally:
        if stream is not sys.stdin:
            stream.close()
    if count == 0:
        # stdout stays empty (one line per input: none in, none out); say why on stderr.
        print(f"bugbar: no issues in {name} (expected one JSON object per line)",
              file=sys.stderr)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """``bugbar explain``: why each issue matched (rules, phrases, cues, gates)."""
    classifier = build_classifier(load_ruleset(args.rules), args)
    if args.title is not None or args.body is not None:
        issues = [Issue("cli", args.title or "", args.body or "", tuple(args.label or ()))]
    else:
        stream, name = _open_input(args.file, args.sample)
        try:
            issues = [issue_from_record(r, w) for r, w in iter_records(stream, name)]
        finally:
            if stream is not sys.stdin:
                stream.close()
    if not issues:
        print("bugbar: no issues to explain (expected one JSON object per line)",
              file=sys.stderr)
    for issue in issues:
        info = classifier.explain(issue)
        if args.format == "json":
            print(json.dumps(info, ensure_ascii=False))
            continue
        d = info["decision"]
        print(f"== {issue.id}: {issue.title[:80]}")
        if d["threats"]:
            top = d["threats"][0]
            print(f"   decision: {top['category']} severity={d['severity']} "
                  f"route={'+'.join(d['route'])}")
        else:
            print("   decision: not an AI/ML threat")
        print(f"   gates: {', '.join(info['gates']) or '-'} (factor {info['gate_factor']})"
              f"   cues: {', '.join(info['cues']) or '-'}")
        if info["context_labels"]:
            print("   context labels: " + ", ".join(
                f"{label} ({kind})" for kind, label in info["context_labels"].items()))
        if info["confusers"]:
            print(f"   confusers swallowed: {', '.join(info['confusers'])}")
        for cat in info["categories"]:
            # The same 0..1 score classify prints; the evidence sum is what the weights add up to.
            mark = ("FIRED" if cat["fired"] else
                    f"held by gate: {', '.join(cat['held_by'])}" if cat["held_by"]
                    else f"below threshold {info['threshold_score']}")
            print(f"   {cat['category']}: score {cat['score']:.3f} (evidence {cat['evidence_sum']}"
                  f", before gates {cat['raw']}) {mark}")
            for ev in cat["evidence"]:
                print(f"      + {ev['signal']} [{ev['kind']}, {ev['where']}, {ev['weight']}]")
            for word in cat["ignored_without_ml_context"]:
                print(f"      - {word} [ignored: no ML context nearby]")
        sem = info.get("semantic")
        if sem:
            scores = ", ".join(f"{c} {p:.2f}" for c, p in list(sem["scores"].items())[:4])
            print(f"   semantic model: {scores}")
            print(f"      {thresholds_line(sem)}")
        for note in info["notes"]:
            print(f"   note: {note}")
    return 0


_SLOW_REPEAT = re.compile(r"\{\d*,\s*(\d{3,}|[3-9]\d|2[1-9])\}")


def cmd_rules_lint(args: argparse.Namespace) -> int:
    """``bugbar rules lint``: load and validate; print every problem as file:line."""
    rs = load_ruleset(args.rules)
    missing = [c for c in CATEGORY_IDS if c not in rs.rules]
    for cid in missing:
        print(f"bugbar: warning: no rule for category {cid}", file=sys.stderr)
    for rule in rs.rules.values():
        for sig in rule.patterns:
            if _SLOW_REPEAT.search(sig.text):
                print(f"bugbar: warning: {rule.path}: pattern {sig.name!r} has a bounded repeat "
                      "over 20 (slow in RE2); use signals.near instead", file=sys.stderr)
    print(f"ok: {len(rs.rules)} rules, version {rs.version}")
    return 0


def run_rule_tests(rs: RuleSet) -> tuple[int, list[str], list[str]]:
    """Run every rule's own examples. Returns (checks run, failures, notes)."""
    classifier = Classifier(rs)
    failures: list[str] = []
    notes: list[str] = []
    checks = 0
    for rule in rs.rules.values():
        cases = (
            ("match", rule.tests_match, True, False),
            ("no_match", rule.tests_no_match, False, False),
            ("todo_match", rule.tests_todo_match, True, True),
            ("todo_no_match", rule.tests_todo_no_match, False, True),
        )
        for kind, examples, want, todo in cases:
            for ex in examples:
                checks += 1
                got = classifier.classify(Issue("test", ex.title, ex.body, ex.labels))
                has = any(t.category == rule.id for t in got.threats)
                where = f"{rule.path}:{ex.line}"
                if has == want and todo:
                    notes.append(f"{where}: {kind} now passes; move it to "
                                 f"{kind.removeprefix('todo_')}")
                elif has != want and not todo:
                    cats = ", ".join(t.category for t in got.threats) or "no threat"
                    failures.append(f"{where}: {kind} example {ex.title[:60]!r} got {cats}")
    return checks, failures, notes


def cmd_rules_test(args: argparse.Namespace) -> int:
    """``bugbar rules test``: every rule's own examples; exit 1 on any failure."""
    rs = load_ruleset(args.rules)
    checks, failures, notes = run_rule_tests(rs)
    for line in failures:
        print(f"FAIL {line}")
    for line in notes:
        print(f"note {line}")
    print(f"{checks - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


def read_labelled(path: Path) -> Iterator[tuple[LabelledItem, Issue]]:
    """Read a labelled corpus file: ``expect`` (ours) or ``labels`` + ``role`` (shared corpus).

    When expectations come from ``labels`` they are ground truth, not tracker labels, so the
    classifier is given ``tracker_labels`` instead (usually none) to avoid leaking the answer.
    """
    with path.open(encoding="utf-8") as stream:
        for record, where in iter_records(stream, str(path)):
            if "expect" not in record and "role" not in record:
                raise CliError(
                    f"{where}: no 'expect' field: eval needs labelled issues, e.g. "
                    '"expect": ["model-stealing"] (or [] for not a threat); to triage '
                    "unlabelled issues use bugbar classify")
            if "expect" in record:
                expected = record["expect"]
                issue = issue_from_record(record, where)
            else:
                expected = record.get("labels") or []
                issue = issue_from_record(
                    {**record, "labels": record.get("tracker_labels", [])}, where)
            if not isinstance(expected, list) or not all(isinstance(x, str) for x in expected):
                raise CliError(f"{where}: expected categories must be a list of ids")
            expected = [x for x in expected if x != "none"]
            role = record.get("role") or ("report" if expected else "none")
            yield LabelledItem(issue.id, issue.title, tuple(expected), str(role),
                               record.get("severity")), issue


def evaluate(classifier: Classifier, files: list[Path]) -> EvalResult:
    """Classify every labelled item in ``files`` and score the results."""
    result = EvalResult()
    items = 0
    for path in files:
        for item, issue in read_labelled(path):
            result.add(item, classifier.classify(issue))
            items += 1
    if not items:
        # 0/0 would print an accuracy of 0.000 and pass any --max-fp-rate gate.
        raise CliError(f"{', '.join(map(str, files))}: no labelled issues to evaluate "
                       "(expected one JSON object per line with an 'expect' field)")
    return result


def _eval_files(target: str) -> list[Path]:
    path = Path(target)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise CliError(f"{target}: no .jsonl files in this folder")
        return files
    if not path.exists():
        raise CliError(f"{target}: no such file or folder")
    return [path]


def print_eval(result: EvalResult, out: TextIO) -> None:
    """Readable eval report."""
    w = out.write
    w(f"threat reports: {result.reports_correct}/{result.reports} top category right "
      f"= accuracy {result.accuracy:.3f}\n")
    w(f"non-threats:    {result.false_positives}/{result.negatives} flagged "
      f"= false-positive rate {result.fp_rate:.3f}\n")
    if result.topical:
        w(f"topical:        {result.topical_flagged}/{result.topical} flagged, "
          f"{result.topical_correct} with the right category (no bar)\n")
    if result.severity_total:
        w(f"severity:       {result.severity_correct}/{result.severity_total} exact "
          "(where the corpus gives one)\n")
    w("\ncategory                      prec   rec    f1   support\n")
    for cat, m in result.per_category().items():
        w(f"{cat:<28} {m['precision']:5.2f} {m['recall']:5.2f} {m['f1']:5.2f} "
          f"{int(m['support']):5d}\n")
    cats = [*CATEGORY_IDS, "none"]
    short = {c: c.split("-")[0][:5] + (c.split("-")[1][:2] if "-" in c else "") for c in cats}
    w("\nconfusion (rows expected, columns predicted top category)\n")
    w(" " * 10 + "".join(f"{short[c]:>8}" for c in cats) + "\n")
    for row in cats:
        w(f"{short[row]:<10}" + "".join(f"{result.confusion[(row, c)]:>8}" for c in cats) + "\n")
    if result.fp_items:
        w("\nfalse positives:\n")
        for item in result.fp_items:
            w(f"  {item['id']}: {item['got']} {item['evidence']} — {item['title']}\n")
    if result.missed_items:
        w("\nmissed or wrong threat reports:\n")
        for item in result.missed_items:
            w(f"  {item['id']}: expected {item['expected']} got {item['got']} — "
              f"{item['title']}\n")


def write_chart(result: EvalResult, path: str) -> None:
    """A PNG of the confusion matrix (needs matplotlib: pip install 'bugbar[chart]')."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CliError("--chart needs matplotlib: pip install 'bugbar[chart]'") from None
    cats = [*CATEGORY_IDS, "none"]
    grid = [[result.confusion[(r, c)] for c in cats] for r in cats]
    fig, ax = plt.subplots(figsize=(9, 8))
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(cats)), cats, rotation=60, ha="right")
    ax.set_yticks(range(len(cats)), cats)
    for i, row in enumerate(grid):
        for j, val in enumerate(row):
            if val:
                ax.text(j, i, str(val), ha="center", va="center",
                        color="white" if val > max(map(max, grid)) / 2 else "black")
    ax.set_xlabel("predicted (top category)")
    ax.set_ylabel("expected")
    ax.set_title(f"bugbar: accuracy {result.accuracy:.2f}, FP rate {result.fp_rate:.3f}")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise CliError(f"{path}: cannot write chart ({exc.strerror})") from None
    finally:
        plt.close(fig)


def cmd_eval(args: argparse.Namespace) -> int:
    """``bugbar eval FILE|DIR``: precision/recall/F1, confusion matrix, false positives."""
    classifier = build_classifier(load_ruleset(args.rules), args)
    result = evaluate(classifier, _eval_files(args.file))
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print_eval(result, sys.stdout)
    if args.chart:
        write_chart(result, args.chart)
    failed = []
    if args.min_accuracy is not None and result.accuracy < args.min_accuracy:
        failed.append(f"accuracy {result.accuracy:.3f} < {args.min_accuracy}")
    if args.max_fp_rate is not None and result.fp_rate > args.max_fp_rate:
        failed.append(f"false-positive rate {result.fp_rate:.3f} > {args.max_fp_rate}")
    for line in failed:
        print(f"bugbar: eval below the bar: {line}", file=sys.stderr)
    return 1 if failed else 0


Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one ``bugbar: …`` line (exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("bugbar").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"bugbar: {where}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; feature modules add their own sub-commands here."""
    parser = _Parser(
        prog="bugbar", description="Triage AI/ML security reports against the SDL AI/ML bug bar.",
        epilog="Errors are one 'bugbar: ...' line: exit 2 for bad usage or configuration, "
               "1 for a tracker failure or a failed check.")
    parser.add_argument("--version", action="version", version=f"bugbar {__version__}",
                        help="print the version and exit")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback behind an error (also BUGBAR_LOG_LEVEL=debug;"
                             " accepted after the command too)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    rules_opt = _Parser(add_help=False)
    rules_opt.add_argument("--rules", action="append", metavar="DIR",
                           help="extra rules folder over the shipped rules (repeatable; default "
                                "$BUGBAR_RULES, os.pathsep-separated)")
    rules_opt.add_argument("--examples", action="append", metavar="DIR",
                           help="folder of labelled examples (JSON Lines) the semantic model "
                                "also learns from (repeatable; default $BUGBAR_EXAMPLES)")
    rules_opt.add_argument("--no-semantic", action="store_true",
                           help="rules only: do not load the semantic model "
                                "(BUGBAR_SEMANTIC=0; =1 requires it)")

    p = sub.add_parser("classify", parents=[rules_opt], help="classify issues from JSON Lines",
                       description="One decision per input line, same order (JSON Lines in: "
                                   '{"id", "title", "body", "labels"}).')
    p.add_argument("file", nargs="?", help="JSON Lines file, or - for stdin")
    p.add_argument("--format", choices=("jsonl", "text"), default="jsonl",
                   help="jsonl: one JSON decision per line (default); text: one readable line")
    p.add_argument("--sample", action="store_true",
                   help="classify the built-in sample issues instead of FILE")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("explain", parents=[rules_opt], help="why an issue matched")
    p.add_argument("file", nargs="?", help="JSON Lines file, or - for stdin")
    p.add_argument("--title", help="explain this title (instead of FILE)")
    p.add_argument("--body", help="explain this body (instead of FILE)")
    p.add_argument("--label", action="append", metavar="LABEL",
                   help="a tracker label on the issue given by --title/--body (repeatable)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or one JSON object per issue")
    p.add_argument("--sample", action="store_true",
                   help="explain the built-in sample issues instead of FILE")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("eval", parents=[rules_opt], help="measure triage quality on a corpus")
    p.add_argument("file", help="labelled JSON Lines file (each line has \"expect\") or a folder "
                               "of them")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text report (default) or JSON")
    p.add_argument("--chart", metavar="PNG", help="write the confusion matrix as a PNG")
    p.add_argument("--min-accuracy", type=float, metavar="X",
                   help="exit 1 when the accuracy on threat reports is below X (0..1)")
    p.add_argument("--max-fp-rate", type=float, metavar="X",
                   help="exit 1 when the false-positive rate is above X (0..1)")
    p.set_defaults(func=cmd_eval)

    rules = sub.add_parser("rules", help="check the rule set")
    rsub = rules.add_subparsers(dest="rules_command", metavar="ACTION")
    p = rsub.add_parser("lint", parents=[rules_opt], help="validate rule files")
    p.set_defaults(func=cmd_rules_lint)
    p = rsub.add_parser("test", parents=[rules_opt], help="run every rule's own examples")
    p.set_defaults(func=cmd_rules_test)

    for register in _EXTENSIONS:
        register(sub, rules_opt)
    return parser


_EXTENSIONS: list[Callable[[Any, argparse.ArgumentParser], None]] = []


OFFLINE_COMMANDS = frozenset({"classify", "explain", "eval", "rules"})

_EXTENSION_MODULES = ("bot.app_cli", "bot.sweep_cli", "bot.state_cli")
"""Modules with a ``register(subparsers, rules_opt)`` adding the bot's own sub-commands."""


def _load_extensions() -> None:
    # The server-side commands (serve, handle-event, sweep, deliveries) live next to their
    # features and are imported only when the CLI runs, so `classify` starts fast.
    _EXTENSIONS.clear()
    for name in _EXTENSION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        _EXTENSIONS.append(module.register)


def main(argv: list[str] | None = None) -> int:
    """Run the ``bugbar`` command; returns the exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    from bot.errors import debug_requested

    debug = debug_requested(words)
    # --debug is accepted anywhere on the line (users add it after the command they re-run).
    words = [w for w in words if w != "--debug"]
    command = next((w for w in words if not w.startswith("-")), None)
    # The offline commands need none of the tracker libraries: skip importing them (half a
    # second of start-up) unless the command is one of the bot's own, or help is asked for.
    if command not in OFFLINE_COMMANDS:
        _load_extensions()
    else:
        _EXTENSIONS.clear()
    parser = build_parser()
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"bugbar: {exc}", file=sys.stderr)
        if debug:
            _traceback(exc)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `bugbar classify big.jsonl | head` closes the pipe early; that is not an error.
        sys.stderr.close()
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place every other failure becomes a line
        from bot.errors import describe

        code, line = describe(exc, getattr(args, "provider", "") or "")
        hint = "" if debug else " (--debug shows the traceback)"
        print(f"bugbar: {line}{hint}", file=sys.stderr)
        if debug:
            _traceback(exc)
        return code


def _traceback(exc: BaseException) -> None:
    from bot.errors import print_traceback

    print_traceback(exc)


if __name__ == "__main__":
    # ``python -m bot.cli``: run the ``bot.cli`` module the sub-commands import, so that the
    # CliError they raise is the class caught above (this one is ``__main__``'s copy).
    from bot.cli import main as _main

    sys.exit(_main())
