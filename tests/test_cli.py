"""The offline CLI: the classify contract, clear errors without tracebacks, eval and rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import MIN_RULES, ROOT

ISSUES = [
    {"id": "a", "title": "Model stealing attack on our production fraud detection model",
     "body": "An attacker ran a model extraction attack through the prediction API and trained "
             "a substitute model that copies ours.", "labels": []},
    {"id": 7, "title": "Typo in README", "body": None, "labels": [{"name": "docs"}],
     "extra": "ignored"},
]


def _jsonl(tmp_path: Path, rows: list[object], name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_classify_jsonl_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _jsonl(tmp_path, ISSUES)
    assert main(["classify", str(path)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["id"] for x in lines] == ["a", "7"]
    assert lines[0]["threats"][0]["category"] == "model-stealing"
    assert lines[0]["severity"] == "critical" and lines[0]["route"] == ["ssirp"]
    assert lines[1] == {"id": "7", "threats": [], "severity": None, "route": []}


def test_classify_text_and_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "--sample", "--format", "text"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 10
    assert any("not an AI/ML threat" in line for line in out)
    assert any("\tcritical\t" in line for line in out)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"id": "a", "title": "x"}\n{not json\n', "in.jsonl:2: not valid JSON"),
        ('[1, 2]\n', "in.jsonl:1: expected a JSON object"),
        ('{"title": "no id"}\n', "'id' is missing"),
        ('{"id": "a", "title": 5}\n', "'title' and 'body' must be text"),
        ('{"id": "a", "labels": "x"}\n', "'labels' must be a list"),
    ],
    ids=["malformed", "not-object", "no-id", "bad-title", "bad-labels"],
)
def test_bad_input_one_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     content: str, needle: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(content)
    assert main(["classify", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "/nonexistent/file.jsonl"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_broken_rules_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "rules"
    bad.mkdir()
    (bad / "model-stealing.yml").write_text("id: model-stealing\nid: twice\n")
    assert main(["rules", "lint", "--rules", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad / 'model-stealing.yml'}:2: duplicate key 'id'" in err


def test_rules_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "rules"
    bad.mkdir()
    (bad / "settings.yml").write_text("threshold: -1\n")
    monkeypatch.setenv("BUGBAR_RULES", str(bad))
    assert main(["rules", "lint"]) == 2
    assert "threshold must be a non-negative number" in capsys.readouterr().err


def test_rules_test_passes_on_shipped_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test"]) == 0
    assert " 0 failed" in capsys.readouterr().out


def test_rules_test_fails_on_a_wrong_example(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "rules"
    d.mkdir()
    text = (MIN_RULES / "model-stealing.yml").read_text().replace(
        "body: The thread pool hangs.", "body: The thread pool hangs. Model extraction!")
    (d / "model-stealing.yml").write_text(text)
    assert main(["rules", "test", "--rules", str(d)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_explain_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--title", "Work stealing deadlock",
                 "--body", "the model steals threads"]) == 0
    out = capsys.readouterr().out
    assert "confusers swallowed: work stealing" in out


def test_eval_json_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {"id": "1", "title": "Model stealing attack on our API", "body": "An attacker ran a "
         "model extraction attack and trained a substitute model.",
         "expect": ["model-stealing"]},
        {"id": "2", "title": "Typo", "body": "", "expect": []},
        {"id": "3", "title": "Model extraction tutorial", "body": "", "labels": [],
         "role": "none"},
    ]
    path = _jsonl(tmp_path, rows)
    chart = tmp_path / "cm.png"
    assert main(["eval", str(path), "--format", "json", "--chart", str(chart)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reports"] == 1 and result["accuracy"] == 1.0
    assert result["negatives"] == 2
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["eval", str(path), "--min-accuracy", "1.1"]) == 1


def test_eval_does_not_leak_ground_truth_labels(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Shared-corpus style: `labels` is the answer, not tracker labels.
    rows = [{"id": "1", "title": "Hello", "body": "", "labels": ["model-stealing"],
             "role": "report"}]
    assert main(["eval", str(_jsonl(tmp_path, rows)), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == 0.0


def test_console_script_runs_without_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "classify", "/nope.jsonl"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "bugbar: /nope.jsonl: no such file"


def test_sample_threat_reports_are_caught_by_the_rules(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first command shows these: each sample report gets its category from the
    rules alone (a gate phrase that swallowed an ordinary word once hid demo-03)."""
    monkeypatch.setenv("BUGBAR_SEMANTIC", "0")
    assert main(["classify", "--sample"]) == 0
    got = {d["id"]: [t["category"] for t in d["threats"]][:1]
           for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert got["demo-01"] == ["adversarial-perturbation"]
    assert got["demo-02"] == ["ml-supply-chain"]
    assert got["demo-03"] == ["data-poisoning"]
    assert got["demo-04"] == ["model-stealing"]
    assert got["demo-05"] == ["physical-adversarial-example"]
    assert all(got[f"demo-{n:02d}"] == [] for n in range(7, 13))
