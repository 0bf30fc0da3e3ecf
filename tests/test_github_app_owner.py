"""``bugbar sweep github:owner/*`` with GitHub App credentials, end to end: the command builds
the App from ``BUGBAR_GITHUB_APP_ID`` + ``BUGBAR_GITHUB_PRIVATE_KEY``, finds the owner's
installation with ``GitHubApp.for_owner`` (``/orgs/{o}/installation``, else
``/users/{u}/installation``), lists the installation's repositories and sweeps each of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.cli import main
from bot.decide.render import MARKER_PREFIX
from bot.providers.retry import WritePacer
from tests.fakes.github_api import FakeGitHub

APP_ID = 4242
STEAL = ("Model extraction of our production fraud detection model",
         "An attacker queried the scoring API and trained a substitute model.")


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.fixture()
def fake(app_key: tuple[str, str]) -> Iterator[FakeGitHub]:
    with FakeGitHub(tokens=[], app_id=APP_ID, app_slug="bugbar",
                    app_public_key=app_key[1]) as f:
        f.add_repo("acme/models")
        f.add_repo("acme/infra")
        f.add_repo("acme/not-installed")
        f.add_installation(77, "acme", repos=["acme/models", "acme/infra"])
        f.add_repo("dana/notebooks", owner_type="User")
        f.add_installation(88, "dana")
        f.add_repo("other/x")
        f.add_installation(99, "other")
        yield f


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, fake: FakeGitHub, app_key: tuple[str, str],
        tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("BUGBAR_") or name == "GITHUB_ACTIONS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("BUGBAR_GITHUB_APP_ID", str(APP_ID))
    monkeypatch.setenv("BUGBAR_GITHUB_PRIVATE_KEY", app_key[0])
    monkeypatch.setenv("BUGBAR_GITHUB_API_URL", fake.url)
    monkeypatch.setenv("BUGBAR_STATE", str(tmp_path / "state.db"))
    # The command paces writes a second apart (GitHub's advice); never sleep in a test.
    monkeypatch.setattr(WritePacer, "wait", lambda self: None)
    return monkeypatch


def bot_comments(fake: FakeGitHub, repo: str, number: int) -> list[dict[str, Any]]:
    return [c for c in fake.comments(repo, number) if MARKER_PREFIX in (c["body"] or "")]


def test_org_wildcard_goes_through_the_org_installation(
        fake: FakeGitHub, env: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    issues = {repo: fake.add_issue(repo, *STEAL)
              for repo in ("acme/models", "acme/infra", "acme/not-installed", "other/x")}
    calm = fake.add_issue("acme/models", "Slow dashboard", "The page takes 10 s to load.")
    report = tmp_path / "sweep.json"
    code = main(["sweep", "github:acme/*", "--apply", "--quiet", "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    # One installation lookup for the account, none per repository by name.
    assert fake.count("GET", r"^/orgs/acme/installation$") == 1
    assert fake.count("GET", r"^/users/acme/installation$") == 0
    assert fake.count("GET", r"^/installation/repositories") == 1
    assert len(fake.installation_tokens) == 1  # installation 77 only
    for repo in ("acme/models", "acme/infra"):
        assert "threat/model-stealing" in fake.issue_labels(repo, issues[repo]), repo
        assert len(bot_comments(fake, repo, issues[repo])) == 1, repo
    for repo in ("acme/not-installed", "other/x"):  # outside the installation / the owner
        assert fake.issue_labels(repo, issues[repo]) == [], repo
        assert bot_comments(fake, repo, issues[repo]) == [], repo
    assert fake.issue_labels("acme/models", calm) == []
    for comment in (c for repo in ("acme/models", "acme/infra")
                    for c in bot_comments(fake, repo, issues[repo])):
        assert comment["user"]["login"] == "bugbar[bot]"
    summary = json.loads(report.read_text())["summary"]
    assert summary["complete"] and summary["counts"]["changed"] == 2
    assert summary["scopes"][0]["scope"] == "github:acme/*"
    assert summary["scopes"][0]["repos"] == 2

    # Again, as the next cron run: nothing to write, nothing to post.
    writes = list(fake.writes)
    assert main(["sweep", "github:acme/*", "--apply", "--quiet"]) == 0
    assert fake.writes == writes


def test_user_wildcard_falls_back_to_the_user_installation(
        fake: FakeGitHub, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    number = fake.add_issue("dana/notebooks", *STEAL)
    assert main(["sweep", "github:dana/*", "--apply", "--quiet"]) == 0
    assert fake.count("GET", r"^/orgs/dana/installation$") == 1  # 404: dana is not an org
    assert fake.count("GET", r"^/users/dana/installation$") == 1
    assert "threat/model-stealing" in fake.issue_labels("dana/notebooks", number)
    assert len(bot_comments(fake, "dana/notebooks", number)) == 1
    out = capsys.readouterr().out
    assert "github:dana/*" in out and "complete" in out


def test_owner_without_an_installation_is_reported(
        fake: FakeGitHub, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add_repo("nobody/repo")
    assert main(["sweep", "github:nobody/*", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "error: github:nobody/*" in out and "cannot list the repositories" in out
    assert fake.writes == [] and fake.installation_tokens == []
