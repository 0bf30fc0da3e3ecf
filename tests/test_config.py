"""``Config.from_env``: the contract variable names (README "Configuration"), secrets kept out
of reprs, contradictions refused with a message naming the variables, and the commands'
one-line failure on them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import DEFAULT_GITHUB_API, Config, ConfigError

ROOT = Path(__file__).resolve().parents[1]

SECRETS = {
    "BUGBAR_GITHUB_TOKEN": "ghp_s3cr3t-token-value",
    "BUGBAR_GITHUB_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nMIIsecretkey\n"
                                 "-----END PRIVATE KEY-----",
    "BUGBAR_GITHUB_WEBHOOK_SECRET": "gh-hook-old,gh-hook-new",
    "BUGBAR_GITLAB_TOKEN": "glpat-s3cr3t-value",
    "BUGBAR_GITLAB_WEBHOOK_SECRET": "gl-hook-one",
    "BUGBAR_JIRA_TOKEN": "jira-api-s3cr3t",
    "BUGBAR_JIRA_WEBHOOK_SECRET": "jira-hook-s3cr3t",
}

CLOUD = {
    **SECRETS,
    "BUGBAR_GITHUB_APP_ID": "4242",
    "BUGBAR_GITHUB_API_URL": "https://ghe.example.com/api/v3/",
    "BUGBAR_GITLAB_URL": "https://gitlab.example.com/",
    "BUGBAR_JIRA_URL": "https://example.atlassian.net/",
    "BUGBAR_JIRA_EMAIL": "bot@example.com",
    "BUGBAR_STATE": "/var/lib/bugbar/state.db",
    "BUGBAR_RULES": os.pathsep.join(["/etc/bugbar/rules", "/srv/more-rules"]),
    "BUGBAR_DRY_RUN": "1",
}


def test_every_design_variable_is_read_by_its_exact_name() -> None:
    cfg = Config.from_env(CLOUD)
    assert cfg.github_token == SECRETS["BUGBAR_GITHUB_TOKEN"]
    assert cfg.github_app_id == "4242"
    assert cfg.github_private_key == SECRETS["BUGBAR_GITHUB_PRIVATE_KEY"]
    assert cfg.github_webhook_secrets == ("gh-hook-old", "gh-hook-new")
    assert cfg.github_api_url == "https://ghe.example.com/api/v3"
    assert cfg.gitlab_url == "https://gitlab.example.com"
    assert cfg.gitlab_token == SECRETS["BUGBAR_GITLAB_TOKEN"]
    assert cfg.gitlab_webhook_secrets == ("gl-hook-one",)
    assert cfg.jira_url == "https://example.atlassian.net"
    assert cfg.jira_email == "bot@example.com"
    assert cfg.jira_token == SECRETS["BUGBAR_JIRA_TOKEN"]
    assert cfg.jira_pat == ""
    assert cfg.jira_webhook_secrets == ("jira-hook-s3cr3t",)
    assert cfg.state_path == "/var/lib/bugbar/state.db"
    assert cfg.rules_dirs == ("/etc/bugbar/rules", "/srv/more-rules")
    assert cfg.dry_run is True
    assert cfg.providers() == ["github", "gitlab", "jira"]


def test_data_center_pat_and_private_key_file(tmp_path: Path) -> None:
    pem = tmp_path / "app.pem"
    pem.write_text("-----BEGIN PRIVATE KEY-----\nfromfile\n-----END PRIVATE KEY-----\n")
    cfg = Config.from_env({
        "BUGBAR_GITHUB_APP_ID": "7", "BUGBAR_GITHUB_PRIVATE_KEY_FILE": str(pem),
        "BUGBAR_JIRA_URL": "https://jira.example.com", "BUGBAR_JIRA_PAT": "dc-pat-s3cr3t",
    })
    assert cfg.github_private_key == pem.read_text()
    assert cfg.jira_pat == "dc-pat-s3cr3t" and cfg.jira_email == cfg.jira_token == ""
    assert cfg.providers() == ["github", "jira"]


def test_defaults_and_near_miss_names_are_not_read() -> None:
    cfg = Config.from_env({
        # Names that are not the contract: a plural, lower case, a missing prefix.
        "BUGBAR_GITHUB_WEBHOOK_SECRETS": "x", "bugbar_github_token": "x", "GITHUB_TOKEN": "x",
        "BUGBAR_STATE_PATH": "x.db", "BUGBAR_DRYRUN": "1",
    })
    assert cfg.github_token == "" and cfg.github_webhook_secrets == ()
    assert cfg.github_api_url == DEFAULT_GITHUB_API and cfg.state_path == "bugbar.db"
    assert cfg.rules_dirs == () and cfg.dry_run is False and cfg.providers() == []
    assert cfg.github_identity == ""


@pytest.mark.parametrize(("value", "expected"), [
    ("1", True), ("true", True), ("YES", True), ("on", True),
    ("0", False), ("false", False), ("", False), ("no", False),
])
def test_dry_run_flag(value: str, expected: bool) -> None:
    assert Config.from_env({"BUGBAR_DRY_RUN": value}).dry_run is expected


def test_webhook_secrets_rotate_comma_or_newline_separated() -> None:
    cfg = Config.from_env({"BUGBAR_GITHUB_WEBHOOK_SECRET": " old , new\nnewer ,, ",
                           "BUGBAR_JIRA_WEBHOOK_SECRET": "a,b"})
    assert cfg.github_webhook_secrets == ("old", "new", "newer")
    assert cfg.jira_webhook_secrets == ("a", "b")


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BUGBAR_") or name == "GITHUB_ACTIONS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("BUGBAR_STATE", "/tmp/from-env.db")
    assert Config.from_env().state_path == "/tmp/from-env.db"


def test_repr_never_shows_a_secret() -> None:
    cfg = Config.from_env(CLOUD)
    dc = Config.from_env({"BUGBAR_JIRA_URL": "https://jira.example.com",
                          "BUGBAR_JIRA_PAT": "dc-pat-s3cr3t"})
    values = [v for raw in SECRETS.values() for v in raw.replace("\n", ",").split(",")]
    for text in (repr(cfg), str(cfg), f"{cfg!r}", repr(dc), str([cfg, dc])):
        for value in [*values, "dc-pat-s3cr3t", "MIIsecretkey"]:
            assert value not in text
        assert "***" in text
    assert "https://gitlab.example.com" in repr(cfg)  # what is not secret stays readable
    assert "bot@example.com" in repr(cfg) and "4242" in repr(cfg)
    # Every secret is handed to the log redaction filter.
    assert set(cfg.secrets) >= {SECRETS["BUGBAR_GITHUB_TOKEN"], "gh-hook-old", "gh-hook-new",
                                SECRETS["BUGBAR_GITLAB_TOKEN"], SECRETS["BUGBAR_JIRA_TOKEN"],
                                SECRETS["BUGBAR_GITHUB_PRIVATE_KEY"]}
    assert "dc-pat-s3cr3t" in dc.secrets


BAD: list[tuple[dict[str, str], str]] = [
    ({"BUGBAR_GITHUB_APP_ID": "1"},
     "BUGBAR_GITHUB_APP_ID needs BUGBAR_GITHUB_PRIVATE_KEY or BUGBAR_GITHUB_PRIVATE_KEY_FILE"),
    ({"BUGBAR_GITHUB_APP_ID": "1", "BUGBAR_GITHUB_PRIVATE_KEY_FILE": "/nonexistent/app.pem"},
     "BUGBAR_GITHUB_PRIVATE_KEY_FILE: cannot read /nonexistent/app.pem"),
    ({"BUGBAR_GITLAB_URL": "https://gitlab.example.com"},
     "BUGBAR_GITLAB_URL needs BUGBAR_GITLAB_TOKEN"),
    ({"BUGBAR_GITLAB_TOKEN": "glpat-s3cr3t-value"}, "BUGBAR_GITLAB_TOKEN needs BUGBAR_GITLAB_URL"),
    ({"BUGBAR_GITLAB_URL": "https://g", "BUGBAR_GITLAB_TOKEN": "t",
      "BUGBAR_GITLAB_CONFIDENTIAL": "sometimes"},
     "BUGBAR_GITLAB_CONFIDENTIAL must be public, always or never"),
    ({"BUGBAR_JIRA_URL": "https://jira.example.com"}, "BUGBAR_JIRA_URL needs BUGBAR_JIRA_PAT"),
    ({"BUGBAR_JIRA_URL": "https://j", "BUGBAR_JIRA_EMAIL": "bot@example.com"},
     "BUGBAR_JIRA_URL needs BUGBAR_JIRA_PAT (Data Center) or BUGBAR_JIRA_EMAIL + "
     "BUGBAR_JIRA_TOKEN (Cloud)"),
    ({"BUGBAR_JIRA_URL": "https://j", "BUGBAR_JIRA_PAT": "dc-pat-s3cr3t",
      "BUGBAR_JIRA_EMAIL": "bot@example.com", "BUGBAR_JIRA_TOKEN": "jira-api-s3cr3t"},
     "exclude each other"),
    ({"BUGBAR_JIRA_URL": "https://j", "BUGBAR_JIRA_PAT": "dc-pat-s3cr3t",
      "BUGBAR_JIRA_TOKEN": "jira-api-s3cr3t"}, "exclude each other"),
    ({"BUGBAR_JIRA_PAT": "dc-pat-s3cr3t"}, "BUGBAR_JIRA_URL is not"),
    ({"BUGBAR_COMMAND_POLICY": "{severity: write}"}, "BUGBAR_COMMAND_POLICY is not JSON"),
    ({"BUGBAR_COMMAND_POLICY": "[1]"}, "BUGBAR_COMMAND_POLICY must be an object"),
    ({"BUGBAR_LOG_LEVEL": "loud"}, "BUGBAR_LOG_LEVEL 'LOUD' is not a level"),
    ({"BUGBAR_GITHUB_API_URL": "notaurl"}, "BUGBAR_GITHUB_API_URL must be an http(s) URL"),
    ({"BUGBAR_GITHUB_API_URL": "ftp://ghe.example"}, "BUGBAR_GITHUB_API_URL must be an http(s)"),
    ({"BUGBAR_GITLAB_URL": "gitlab.example.com", "BUGBAR_GITLAB_TOKEN": "glpat-s3cr3t-value"},
     "BUGBAR_GITLAB_URL must be an http(s) URL"),
    ({"BUGBAR_JIRA_URL": "https://", "BUGBAR_JIRA_PAT": "dc-pat-s3cr3t"},
     "BUGBAR_JIRA_URL must be an http(s) URL"),
    ({"BUGBAR_GITHUB_APP_ID": "abc", "BUGBAR_GITHUB_PRIVATE_KEY": "x"},
     "BUGBAR_GITHUB_APP_ID must be the App's numeric id"),
    ({"BUGBAR_GITHUB_APP_ID": "12", "BUGBAR_GITHUB_PRIVATE_KEY": "jira-api-s3cr3t"},
     "BUGBAR_GITHUB_PRIVATE_KEY (or the _FILE it names) is not a PEM private key"),
]
ALL_SECRET_VALUES = ["glpat-s3cr3t-value", "dc-pat-s3cr3t", "jira-api-s3cr3t"]


@pytest.mark.parametrize(("env", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_contradictions_raise_a_clear_config_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env(env)
    text = str(info.value)
    assert message in text and "\n" not in text
    assert not any(value in text for value in ALL_SECRET_VALUES)  # never echo a secret


def test_github_actions_identity() -> None:
    assert Config.from_env({"GITHUB_ACTIONS": "true"}).github_identity == "github-actions[bot]"
    assert Config.from_env({"GITHUB_ACTIONS": "false"}).github_identity == ""
    assert Config.from_env({}).github_identity == ""
    explicit = {"GITHUB_ACTIONS": "true", "BUGBAR_GITHUB_IDENTITY": "my-app[bot]"}
    assert Config.from_env(explicit).github_identity == "my-app[bot]"


# --------------------------------------------------------------------------- the commands


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("BUGBAR_") or name == "GITHUB_ACTIONS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("BUGBAR_STATE", str(tmp_path / "state.db"))

    def no_server(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server started despite a bad configuration")

    monkeypatch.setattr("bot.server.serve", no_server)
    return monkeypatch


COMMANDS = {
    "serve": ["serve", "--port", "0"],
    "handle-event": ["handle-event", "github", "--event", "issues", "--payload", "PAYLOAD"],
    "sweep": ["sweep", "github:o/r"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("env", "message"), [BAD[0], BAD[3], BAD[7], BAD[12]],
                         ids=["app-without-key", "gitlab-half", "jira-both", "log-level"])
def test_commands_with_a_bad_config_print_one_line_and_exit_2(
        clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        command: str, env: dict[str, str], message: str) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"action": "opened"}')
    for name, value in env.items():
        clean_env.setenv(name, value)
    argv = [str(payload) if a == "PAYLOAD" else a for a in COMMANDS[command]]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bugbar: ") and message in lines[0], lines
    assert not (tmp_path / "state.db").exists()  # failed before touching anything


@pytest.mark.parametrize("how", [
    ["-c", "import sys; from bot.cli import main; sys.exit(main())"],  # the console script
    ["-m", "bot.cli"],
], ids=["bugbar", "python-m"])
def test_a_real_process_shows_no_traceback(tmp_path: Path, how: list[str]) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BUGBAR_") and k != "GITHUB_ACTIONS"}
    env.update({"BUGBAR_JIRA_URL": "https://jira.example.com", "BUGBAR_JIRA_PAT": "p",
                "BUGBAR_JIRA_TOKEN": "t", "BUGBAR_STATE": str(tmp_path / "s.db"),
                "PYTHONPATH": str(ROOT)})
    proc = subprocess.run([sys.executable, *how, "serve", "--port", "0"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("bugbar: BUGBAR_JIRA_PAT")


def test_a_password_in_the_state_url_is_a_secret() -> None:
    url = "postgresql://bugbar:p%40ss-w0rd-77@db.internal:5432/bugbar"
    cfg = Config.from_env({"BUGBAR_STATE": url})
    assert cfg.state_path == url
    assert "p%40ss-w0rd-77" in cfg.secrets and "p@ss-w0rd-77" in cfg.secrets
    assert "w0rd" not in repr(cfg) and "postgresql://bugbar:***@db.internal" in repr(cfg)
    plain = Config.from_env({"BUGBAR_STATE": "/var/lib/bugbar/state.db"})
    assert "/var/lib/bugbar/state.db" in repr(plain) and plain.secrets == []
