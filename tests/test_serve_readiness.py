"""``bugbar serve`` refuses to start when it cannot work; ``/readyz`` says when it is degraded.

The start-up checks run the real client libraries against the fake GitHub, GitLab and Jira
servers: wrong credentials get the 401 those services answer, and serve stops with one line.
``/readyz`` is driven through Starlette's TestClient over a real SQLite store.
"""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app_cli import check_serve_config
from bot.cli import CliError, main
from bot.config import Config
from bot.metrics import Metrics
from bot.preflight import OK, REJECTED, UNREACHABLE, check_credentials
from bot.server import Readiness, ServerConfig, create_app
from bot.store import Store
from tests.conftest import github_env
from tests.fakes.github_api import FakeGitHub
from tests.fakes.gitlab_api import FakeGitLab
from tests.fakes.jira_api import FakeJira

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

Capture = pytest.CaptureFixture[str]
TOKEN = "ghp_serveToken000000000000000000000000000"



def _one_line(capsys: Capture) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bugbar: ") and "Traceback" not in err, err
    return lines[0]


def test_nothing_configured_refuses_to_start(started: list[Any], capsys: Capture,
                                             tmp_path: Path) -> None:
    assert main(["serve", "--port", "0"]) == 2
    line = _one_line(capsys)
    assert "nothing to serve" in line and "BUGBAR_GITHUB_TOKEN" in line
    assert started == [] and not (tmp_path / "state.db").exists()


def test_token_without_webhook_secret_refuses_to_start_naming_the_variable(
        started: list[Any], clean_env: pytest.MonkeyPatch, capsys: Capture) -> None:
    clean_env.setenv("BUGBAR_GITHUB_TOKEN", TOKEN)
    assert main(["serve", "--port", "0"]) == 2
    line = _one_line(capsys)
    assert "BUGBAR_GITHUB_WEBHOOK_SECRET is not set" in line and TOKEN not in line
    assert started == []


def test_secret_without_credentials_refuses_to_start(
        started: list[Any], clean_env: pytest.MonkeyPatch, capsys: Capture) -> None:
    clean_env.setenv("BUGBAR_GITLAB_WEBHOOK_SECRET", "s3cret-hook-01")
    assert main(["serve", "--port", "0"]) == 2
    line = _one_line(capsys)
    assert "BUGBAR_GITLAB_WEBHOOK_SECRET is set but gitlab has no credentials" in line
    assert "BUGBAR_GITLAB_TOKEN" in line and "s3cret" not in line


@pytest.mark.parametrize("variable", ["BUGBAR_GITHUB_WEBHOOK_SECRET",
                                      "BUGBAR_GITLAB_WEBHOOK_SECRET",
                                      "BUGBAR_JIRA_WEBHOOK_SECRET"])
def test_short_webhook_secret_refuses_to_start_naming_the_variable(
        started: list[Any], clean_env: pytest.MonkeyPatch, capsys: Capture,
        variable: str) -> None:
    """A secret under 8 characters (here "s", and a short one beside a good one while
    rotating) is refused before anything else: one line naming the variable, exit 2."""
    clean_env.setenv("BUGBAR_GITHUB_WEBHOOK_SECRET", "hook-secret-0001")
    for value in ("s", "hook-secret-0002,seven77"):
        clean_env.setenv(variable, value)
        assert main(["serve", "--port", "0"]) == 2
        line = _one_line(capsys)
        assert f"{variable} is too short" in line and "at least 8 characters" in line
        assert "seven77" not in line
    clean_env.setenv(variable, "eight888")  # 8 is enough: on to the next check
    assert main(["serve", "--port", "0"]) == 2
    line = _one_line(capsys)
    assert "too short" not in line and "has no credentials" in line
    assert started == []


@pytest.mark.parametrize(("env", "variable"), [
    ({"BUGBAR_JIRA_URL": "https://jira.example", "BUGBAR_JIRA_PAT": "p"},
     "BUGBAR_JIRA_WEBHOOK_SECRET"),
    ({"BUGBAR_GITLAB_URL": "https://gl.example", "BUGBAR_GITLAB_TOKEN": "t"},
     "BUGBAR_GITLAB_WEBHOOK_SECRET"),
], ids=["jira", "gitlab"])
def test_every_provider_needs_its_secret(env: dict[str, str], variable: str) -> None:
    with pytest.raises(CliError, match=variable):
        check_serve_config(Config.from_env(env))


def test_rejected_token_refuses_to_start(started: list[Any], clean_env: pytest.MonkeyPatch,
                                         capsys: Capture) -> None:
    with FakeGitHub(tokens=["the-right-token"]) as fake:
        github_env(clean_env, TOKEN, fake.url)
        assert main(["serve", "--port", "0"]) == 2
        line = _one_line(capsys)
        assert "rejected the credentials in BUGBAR_GITHUB_TOKEN" in line and "401" in line
        assert [r.path for r in fake.requests] == ["/rate_limit"]
    assert started == []


def test_accepted_token_starts_and_readyz_is_ready(
        started: list[Any], clean_env: pytest.MonkeyPatch) -> None:
    with FakeGitHub(tokens=[TOKEN]) as fake:
        github_env(clean_env, TOKEN, fake.url)
        assert main(["serve", "--port", "0"]) == 0
    [app] = started
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.json()
        assert ready.json()["status"] == "ready"
        assert ready.json()["credentials"] == {"github": "ok"}


# --------------------------------------------------------------------------- credential checks


def test_credential_checks_against_each_fake_tracker() -> None:
    with FakeGitHub(tokens=[TOKEN]) as gh:
        good = Config(github_token=TOKEN, github_api_url=gh.url)
        bad = Config(github_token="nope", github_api_url=gh.url)
        assert check_credentials(good, "github").status == OK
        assert check_credentials(bad, "github").status == REJECTED
    with FakeGitLab() as gl:
        good = Config(gitlab_url=gl.url, gitlab_token=gl.token)
        bad = Config(gitlab_url=gl.url, gitlab_token="glpat-wrong")
        assert check_credentials(good, "gitlab").status == OK
        assert check_credentials(bad, "gitlab").status == REJECTED
    for flavour in ("cloud", "dc"):
        with FakeJira(flavour) as jira:
            bot = jira.add_user("bot")
            if flavour == "cloud":
                good = Config(jira_url=jira.url, jira_email=bot.email, jira_token=bot.token)
                bad = Config(jira_url=jira.url, jira_email=bot.email, jira_token="wrong")
            else:
                good = Config(jira_url=jira.url, jira_pat=bot.token)
                bad = Config(jira_url=jira.url, jira_pat="wrong")
            assert check_credentials(good, "jira").status == OK, flavour
            assert check_credentials(bad, "jira").status == REJECTED, flavour


def test_unreachable_tracker_is_reported_not_rejected() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    check = check_credentials(Config(github_token=TOKEN,
                                     github_api_url=f"http://127.0.0.1:{port}"), "github")
    assert check.status == UNREACHABLE
    assert "BUGBAR_GITHUB_API_URL" in check.message() and TOKEN not in check.message()


# --------------------------------------------------------------------------- /readyz


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[tuple[Store, Clock]]:
    clock = Clock()
    s = Store(tmp_path / "ready.db", clock=clock)
    yield s, clock
    s.close()


def _client(store: Store, readiness: Readiness) -> TestClient:
    app = create_app(ServerConfig(github_secrets=["x"], workers=1), store, lambda e: "done",
                     metrics=Metrics(), start_workers=False, readiness=readiness)
    return TestClient(app)


def test_readyz_degraded_when_credentials_rejected(store: tuple[Store, Clock]) -> None:
    client = _client(store[0], Readiness(credentials={"github": REJECTED}))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["github credentials rejected"]
    assert client.get("/healthz").status_code == 200  # liveness is not readiness


def test_readyz_rechecks_an_unreachable_tracker(store: tuple[Store, Clock]) -> None:
    asked: list[str] = []
    clock = Clock()

    def recheck(provider: str) -> str:
        asked.append(provider)
        return OK if len(asked) > 1 else UNREACHABLE

    readiness = Readiness(credentials={"gitlab": UNREACHABLE}, recheck=recheck,
                          recheck_seconds=60.0, clock=clock)
    client = _client(store[0], readiness)
    assert client.get("/readyz").status_code == 503  # asked again: still unreachable
    assert client.get("/readyz").status_code == 503  # not asked again within a minute
    assert asked == ["gitlab"]
    clock.now += 61
    assert client.get("/readyz").status_code == 200
    assert asked == ["gitlab", "gitlab"]


def test_readyz_degraded_while_dead_letters_wait(store: tuple[Store, Clock]) -> None:
    s, _ = store
    client = _client(s, Readiness())
    assert client.get("/readyz").status_code == 200
    s.put_delivery("github", "d-1", "issues", {}, b"{}")
    claimed = s.claim_next("w", 60.0, max_attempts=1)
    assert claimed is not None
    s.fail(claimed.pk, "boom", 0.0, max_attempts=1)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["1 dead letter(s): see bugbar deliveries"]
    s.retry_dead(claimed.pk)
    assert client.get("/readyz").status_code == 200


def test_dropping_the_dead_letter_makes_readyz_ready(store: tuple[Store, Clock]) -> None:
    s, _ = store
    client = _client(s, Readiness())
    s.put_delivery("github", "d-9", "issues", {}, b"{}")
    claimed = s.claim_next("w", 60.0, max_attempts=1)
    assert claimed is not None
    s.fail(claimed.pk, "boom", 0.0, max_attempts=1)
    assert client.get("/readyz").status_code == 503
    assert s.drop_dead() == 1
    assert client.get("/readyz").status_code == 200
    assert s.depth() == 0  # dropped, not queued again


def test_readyz_degraded_when_the_inbox_is_stale(store: tuple[Store, Clock]) -> None:
    s, clock = store
    client = _client(s, Readiness(max_inbox_age=300.0))
    s.put_delivery("github", "d-2", "issues", {}, b"{}")
    assert client.get("/readyz").status_code == 200
    clock.now += 301
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["oldest_pending_seconds"] == 301.0
    assert body["problems"] == ["oldest pending delivery is 301 s old (limit 300 s)"]


def test_a_401_mid_run_marks_the_credentials_rejected(store: tuple[Store, Clock]) -> None:
    from github import BadCredentialsException

    from bot.app_cli import watch_credentials
    from bot.events.model import Event, EventKind

    clock = Clock()
    readiness = Readiness(credentials={"github": OK}, recheck=lambda p: OK, clock=clock)

    def revoked(event: Event) -> str:
        raise BadCredentialsException(401, {"message": "Bad credentials"}, {})

    process = watch_credentials(revoked, readiness)
    event = Event(provider="github", delivery_id="d", kind=EventKind.ISSUE_OPENED, name="issues")
    with pytest.raises(BadCredentialsException):  # the delivery still fails and is retried
        process(event)
    client = _client(store[0], readiness)
    assert client.get("/readyz").json()["problems"] == ["github credentials rejected"]
    clock.now += 61  # asked again a minute later: the token works again
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(("name", "value", "needle"), [
    ("BUGBAR_PORT", "eighty", "BUGBAR_PORT must be a port number"),
    ("BUGBAR_READY_MAX_INBOX_AGE", "soon", "BUGBAR_READY_MAX_INBOX_AGE must be a number"),
], ids=["port", "inbox-age"])
def test_bad_serve_variables_are_one_line(started: list[Any], clean_env: pytest.MonkeyPatch,
                                          capsys: Capture, name: str, value: str,
                                          needle: str) -> None:
    github_env(clean_env, TOKEN)
    clean_env.setenv(name, value)
    assert main(["serve"]) == 2
    assert needle in _one_line(capsys) and started == []


def test_github_app_credentials_are_checked_with_its_jwt() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with FakeGitHub(tokens=[], app_id=4242, app_public_key=public) as fake:
        good = Config(github_app_id="4242", github_private_key=private, github_api_url=fake.url)
        wrong_app = Config(github_app_id="999", github_private_key=private,
                           github_api_url=fake.url)
        assert check_credentials(good, "github").status == OK
        check = check_credentials(wrong_app, "github")
        assert check.status == REJECTED
        assert "BUGBAR_GITHUB_APP_ID / BUGBAR_GITHUB_PRIVATE_KEY" in check.message()
        assert [r.path for r in fake.requests] == ["/app", "/app"]
