"""The command line's rough edges, each pinned: version, help, input files, scores, errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bot import __version__
from bot.cli import _load_extensions, build_parser, main

Capture = pytest.CaptureFixture[str]
STEAL = {"id": "s1", "title": "Model extraction through the public scoring API",
         "body": "Querying /v1/score 40k times lets an attacker train a substitute model."}


def test_version(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"bugbar {__version__}\n"


def _all_parsers(parser: argparse.ArgumentParser, name: str = "bugbar"
                 ) -> list[tuple[str, argparse.ArgumentParser]]:
    out = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                out += _all_parsers(sub, f"{name} {sub_name}")
    return out


def test_every_option_and_argument_has_help() -> None:
    _load_extensions()
    missing = []
    parsers = _all_parsers(build_parser())
    assert {"bugbar serve", "bugbar handle-event", "bugbar sweep", "bugbar decisions",
            "bugbar deliveries", "bugbar rules test"} <= {n for n, _ in parsers}
    for name, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_sample_with_a_file_is_a_usage_error(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(STEAL) + "\n")
    assert main(["classify", "--sample", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("bugbar: --sample reads the built-in sample issues")
    assert str(path) in captured.err and captured.err.count("\n") == 1


def test_empty_input_says_so_and_keeps_stdout_empty(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n")
    assert main(["classify", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # one line out per line in: none
    assert captured.err == f"bugbar: no issues in {path} (expected one JSON object per line)\n"


@pytest.mark.parametrize(("line", "column", "what"), [
    ('{"id": 1, "title": "x",, "body": "y"}', 24, "Expecting property name"),
    ('{"id": 1, "title": "x", "body": "y"', 36, "Expecting ',' delimiter"),
    ('{"id": 1, "title": "é", "body": "y" "x"}', 37, "Expecting ',' delimiter"),
    ('{"id": 1, "title": "a\tb"}', 22, "Invalid control character"),
], ids=["double-comma", "unclosed", "non-ascii", "control-char"])
def test_json_errors_name_the_right_column(tmp_path: Path, capsys: Capture, line: str,
                                           column: int, what: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(STEAL) + "\n" + line + "\r\n")
    assert main(["classify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bugbar: {path}:2: not valid JSON: {what}")
    assert f"at column {column}" in err and " at at " not in err
    assert line[column - 1:column] or "end of the line" in err


def test_byte_order_mark_is_not_an_error(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(STEAL).encode() + b"\n")
    assert main(["classify", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["threats"][0]["category"] == "model-stealing"


def test_eval_on_unlabelled_data_asks_for_expect(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "unlabelled.jsonl"
    path.write_text(json.dumps({**STEAL, "labels": ["bug"]}) + "\n")
    assert main(["eval", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no false-positive rate of 1.0
    assert f"{path}:1: no 'expect' field" in captured.err


def test_eval_on_an_empty_file_is_an_error_not_a_pass(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    assert main(["eval", str(path), "--max-fp-rate", "0.1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no accuracy 0/0 table
    assert captured.err == f"bugbar: {path}: no labelled issues to evaluate (expected one JSON " \
        "object per line with an 'expect' field)\n"


def test_classify_and_explain_show_the_same_score(capsys: Capture) -> None:
    assert main(["explain", "--title", STEAL["title"], "--body", STEAL["body"],
                 "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    threat = info["decision"]["threats"][0]
    [cat] = [c for c in info["categories"] if c["category"] == threat["category"]]
    assert cat["score"] == threat["score"] and 0 < cat["score"] < 1
    assert cat["evidence_sum"] >= info["threshold"]
    assert main(["explain", "--title", STEAL["title"], "--body", STEAL["body"]]) == 0
    text = capsys.readouterr().out
    assert f"model-stealing: score {threat['score']:.3f} (evidence " in text


def test_debug_anywhere_on_the_line_is_accepted(tmp_path: Path, capsys: Capture) -> None:
    assert main(["classify", str(tmp_path / "missing.jsonl"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bugbar: {tmp_path / 'missing.jsonl'}: no such file")
    assert "Traceback" in err


@pytest.mark.parametrize(("argv", "needle"), [
    (["handle-event", "github", "--event", "issues"],
     "bugbar: handle-event: the following arguments are required: --payload "
     "(see bugbar handle-event --help)"),
    (["classify", "--format", "xml"], "bugbar: classify: argument --format: invalid choice"),
    (["nope"], "bugbar: argument COMMAND: invalid choice: 'nope'"),
], ids=["missing", "choice", "command"])
def test_usage_errors_are_one_line(capsys: Capture, argv: list[str], needle: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(needle) and "usage:" not in err
