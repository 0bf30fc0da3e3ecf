"""The rule loader: strict validation with file:line errors, user folders, the shipped set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.decide.model import CATEGORY_IDS, Severity
from bot.decide.rules import RulesError, load_rules
from tests.conftest import MIN_RULES

GOOD = (MIN_RULES / "model-stealing.yml").read_text()


def _user_dir(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / "user"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d


def _errors(tmp_path: Path, text: str, name: str = "model-stealing.yml") -> list[str]:
    d = _user_dir(tmp_path, name, text)
    with pytest.raises(RulesError) as info:
        load_rules([d], base_dir=MIN_RULES)
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize(
    ("case", "edit", "line", "needle"),
    [
        ("unknown key", lambda t: t.replace("confusers:", "confuser:"), 23,
         "unknown key 'confuser'"),
        ("duplicate key", lambda t: t + "title: Again\n", 31, "duplicate key 'title'"),
        ("bad regex", lambda t: t.replace("'cop(y|ied)", "'(?<=x)cop(y|ied)"), 22,
         "bad RE2 pattern"),
        ("severity outside seed", lambda t: t.replace("range: [important, critical]",
                                                      "range: [low, critical]"), 14,
         "differs from the seed range"),
        ("default outside range", lambda t: t.replace("default: important", "default: low"), 15,
         "outside the range"),
        ("unknown cue", lambda t: t.replace("raise: [production", "raise: [prodution"), 16,
         "unknown cue 'prodution'"),
        ("unknown route", lambda t: t.replace("critical: [ssirp]", "critical: [sirp]"), 21,
         "unknown route 'sirp'"),
        ("no near misses", lambda t: t.split("  no_match:")[0], 28, "tests.no_match needs"),
        ("near needs two groups", lambda t: t.replace("all: [[queried, thousands of queries], ",
                                                      "all: ["), 24, "at least two lists"),
        ("near window", lambda t: t.replace("window: 8}", "window: 999}"), 24,
         "window must be 1..200"),
        ("yaml syntax", lambda t: t.replace("phrases: [model", "phrases: [[model"), 23,
         "YAML syntax"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_rule_errors_are_located(tmp_path: Path, case: str, edit, line: int, needle: str) -> None:
    errors = _errors(tmp_path, edit(GOOD))
    assert any(needle in e for e in errors), errors
    located = [e for e in errors if needle in e][0]
    path, lineno, _ = located.split(":", 2)
    assert path.endswith("model-stealing.yml")
    assert int(lineno) > 0
    assert abs(int(lineno) - line) <= 8, located


def test_id_must_match_file_name(tmp_path: Path) -> None:
    errors = _errors(tmp_path, GOOD, name="stealing.yml")
    assert any("must match the file name" in e for e in errors)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("confusers:", "confuser:").replace("critical: [ssirp]", "critical: [x]")
    errors = _errors(tmp_path, text)
    assert len(errors) >= 2


def test_user_folder_replaces_a_rule_and_changes_version(tmp_path: Path) -> None:
    base = load_rules(base_dir=MIN_RULES)
    text = GOOD.replace("model extraction,", "model extraction, weights exfiltration,")
    d = _user_dir(tmp_path, "model-stealing.yml", text)
    merged = load_rules([d], base_dir=MIN_RULES)
    phrases = {s.text for s in merged.rules["model-stealing"].phrases}
    assert "weights exfiltration" in phrases
    assert merged.version != base.version


def test_user_settings_merge_key_by_key(tmp_path: Path) -> None:
    d = _user_dir(tmp_path, "settings.yml", "threshold: 2.5\nlabels:\n  opt_out: no-bot\n")
    rs = load_rules([d], base_dir=MIN_RULES)
    assert rs.settings.threshold == 2.5
    assert rs.settings.label_opt_out == "no-bot"
    assert rs.settings.label_threat == "threat/{id}"  # untouched keys survive the merge


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="rules folder not found"):
        load_rules([tmp_path / "nope"], base_dir=MIN_RULES)


def test_a_folder_without_rule_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a rule")
    with pytest.raises(RulesError, match=r"no rule files \(\*\.yml\) and no examples/ in"):
        load_rules([tmp_path], base_dir=MIN_RULES)
    (tmp_path / "examples").mkdir()  # a folder of labelled examples only is a real override
    load_rules([tmp_path], base_dir=MIN_RULES)


def test_new_category_needs_a_seed_range(tmp_path: Path) -> None:
    text = GOOD.replace("id: model-stealing", "id: prompt-leak")
    _user_dir(tmp_path, "settings.yml", "custom_categories: [prompt-leak]\n")
    errors = _errors(tmp_path, text, name="prompt-leak.yml")
    assert any("no seed range" in e for e in errors)


def test_shipped_rules_cover_all_nine_within_seed_ranges() -> None:
    rs = load_rules()
    assert set(rs.rules) == set(CATEGORY_IDS)
    for rule in rs.rules.values():
        assert rule.severity_range == rs.settings.seed_ranges[rule.id]
        assert rule.tests_no_match, rule.id
        assert rule.references.get("atlas"), rule.id


def test_shipped_settings_routes_and_levels() -> None:
    rs = load_rules()
    assert set(rs.settings.routes) == {"ssirp", "security", "abuse", "privacy"}
    assert rs.settings.seed_ranges["membership-inference"] == (Severity.MODERATE,
                                                               Severity.CRITICAL)


def test_copy_of_shipped_rules_loads_as_base(tmp_path: Path) -> None:
    copy = tmp_path / "rules"
    shutil.copytree(Path(__file__).resolve().parents[1] / "bot" / "rules", copy)
    assert load_rules(base_dir=copy).rules.keys() == load_rules().rules.keys()
