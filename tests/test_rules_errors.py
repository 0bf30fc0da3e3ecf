"""Rule errors a person can act on: one clean line each, with "did you mean" for typos, and no
category created by accident."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.decide.classify import Classifier
from bot.decide.model import Issue
from bot.decide.rules import RulesError, load_rules
from tests.conftest import MIN_RULES, ROOT

GOOD = (MIN_RULES / "model-stealing.yml").read_text()


def _errors(folder: Path) -> list[str]:
    with pytest.raises(RulesError) as info:
        load_rules([folder], base_dir=MIN_RULES)
    return [str(i) for i in info.value.issues]


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    d = tmp_path / "user"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def test_misspelt_id_is_an_error_not_a_tenth_category(tmp_path: Path) -> None:
    text = GOOD.replace("id: model-stealing", "id: model-steeling")
    errors = _errors(_folder(tmp_path, {"model-steeling.yml": text}))
    [line] = errors
    assert line.endswith("model-steeling.yml:1: id 'model-steeling' is not one of the nine "
                         "bug-bar categories (to add one of your own, list it under "
                         "custom_categories, with a seed_ranges entry, in your settings.yml); "
                         "did you mean 'model-stealing'?")


def test_a_seed_range_for_a_typo_is_an_error_in_the_users_file(tmp_path: Path) -> None:
    settings = "version: mine\nseed_ranges:\n  model-steeling: [important, critical]\n"
    [line] = _errors(_folder(tmp_path, {"settings.yml": settings}))
    # Named in the user's settings.yml, at its own line (merged over the shipped one).
    assert line.startswith(str(tmp_path / "user" / "settings.yml") + ":3: ")
    assert "seed_ranges: 'model-steeling' is not a bug-bar category" in line
    assert line.endswith("did you mean 'model-stealing'?")


def test_declared_custom_category_loads_and_classifies(tmp_path: Path) -> None:
    text = GOOD.replace("id: model-stealing", "id: prompt-leak")
    settings = ("custom_categories: [prompt-leak]\n"
                "seed_ranges:\n  prompt-leak: [important, critical]\n")
    rs = load_rules([_folder(tmp_path, {"prompt-leak.yml": text, "settings.yml": settings})],
                    base_dir=MIN_RULES)
    assert "prompt-leak" in rs.rules and rs.settings.custom_categories == ("prompt-leak",)
    example = rs.rules["prompt-leak"].tests_match[0]
    decision = Classifier(rs).classify(Issue("x", example.title, example.body))
    assert "prompt-leak" in [t.category for t in decision.threats]


def test_custom_category_cannot_shadow_a_bug_bar_id(tmp_path: Path) -> None:
    errors = _errors(_folder(tmp_path, {"settings.yml": "custom_categories: [model-stealing]\n"}))
    assert any("is one of the nine bug-bar categories already" in e for e in errors), errors


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda t: t.replace("confusers:", "confuser:"),
     "unknown key 'confuser' in the rule; did you mean 'confusers'?"),
    (lambda t: t.replace("raise: [production", "raise: [prodution"),
     "unknown cue 'prodution'; did you mean 'production'?"),
    (lambda t: t.replace("critical: [ssirp]", "critical: [sirp]"),
     "unknown route 'sirp'; did you mean 'ssirp'?"),
], ids=["key", "cue", "route"])
def test_typos_get_did_you_mean(tmp_path: Path, edit, needle: str) -> None:  # type: ignore[no-untyped-def]
    errors = _errors(_folder(tmp_path, {"model-stealing.yml": edit(GOOD)}))
    assert any(needle in e for e in errors), errors


def test_unrelated_key_gets_no_guess(tmp_path: Path) -> None:
    errors = _errors(_folder(tmp_path, {"model-stealing.yml": GOOD + "zzz: 1\n"}))
    [line] = [e for e in errors if "'zzz'" in e]
    assert "did you mean" not in line and "valid: confusers" in line


def test_bad_pattern_is_one_clean_line_without_re2_noise(tmp_path: Path) -> None:
    bad = GOOD.replace("'cop(y|ied)", "'(?<=x)cop(y|ied)")
    folder = _folder(tmp_path, {"model-stealing.yml": bad})
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUGBAR_")}
    env["PYTHONPATH"] = str(ROOT)
    # A fresh process: RE2 logs through absl on the C++ side, which capsys cannot see.
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "rules", "lint", "--rules", str(folder)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    [problem] = proc.stderr.splitlines()
    assert problem.startswith(f"bugbar: rules did not load: {folder / 'model-stealing.yml'}:23:")
    assert "signals.patterns: bad RE2 pattern '(?<=x)cop(y|ied)" in problem
    assert "invalid perl operator: (?<" in problem
    assert "b'" not in problem and "absl" not in proc.stderr and "re2.cc" not in proc.stderr
