"""Configuration from the environment (a contract: README "Configuration"), never logged.

Secrets that may be rotated (webhook secrets) accept several values separated by commas or
newlines; every value is accepted until the old one is removed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_GITHUB_API = "https://api.github.com"
SECRET_FIELDS = {
    "github_token", "github_private_key", "github_webhook_secrets", "gitlab_token",
    "gitlab_webhook_secrets", "jira_token", "jira_pat", "jira_webhook_secrets",
}


class ConfigError(ValueError):
    """A configuration problem, phrased for the person setting the bot up."""


def _list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(v.strip() for v in value.replace("\n", ",").split(",") if v.strip())


def _mention(value: str) -> str:
    return value if value.startswith("@") else f"@{value}"


_GITHUB_MENTION = re.compile(r"^@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9._-]{1,100})?$")
_GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_GITLAB_PATH = r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}"
_GITLAB_MENTION = re.compile(rf"^@{_GITLAB_PATH}(?:/{_GITLAB_PATH})*$")
_GITLAB_USER = re.compile(r"^(?:\d+|[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254})$")
_JIRA_USER = re.compile(r"^[^\s,]{1,128}$")
_ROUTE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")


def _seconds(env: Mapping[str, str], name: str, default: float, *,
             positive: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 if positive else value >= 0) or value != value or value > 86_400:
        raise ConfigError(f"{name} must be a number of seconds "
                          f"({'above' if positive else 'at least'} 0, at most 86400), "
                          f"not {raw!r}")
    return value


DEFAULT_RETENTION_DAYS = 30.0


def _retention_days(env: Mapping[str, str]) -> float | None:
    """``BUGBAR_RETENTION_DAYS``: days a done delivery is kept; None when pruning is off."""
    raw = env.get("BUGBAR_RETENTION_DAYS", "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    if raw.lower() == "off":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if value == 0:
        return None
    # 100 years is "forever"; the cap keeps the cutoff arithmetic finite.
    if not 0 < value <= 36_500:
        raise ConfigError(f"BUGBAR_RETENTION_DAYS must be a number of days above 0 (at most "
                          f"36500), or 0 / off to keep every delivery, not {raw!r}")
    return value


def _url_passwords(location: str) -> list[str]:
    """The password in a ``scheme://user:password@host`` location, as written and decoded."""
    from urllib.parse import unquote, urlsplit

    if "://" not in location:
        return []
    try:
        password = urlsplit(location).password
    except ValueError:
        return []
    return list(dict.fromkeys([password, unquote(password)])) if password else []


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Config:
    """Everything the bot reads from its environment."""

    github_token: str = ""
    github_app_id: str = ""
    github_private_key: str = ""
    github_webhook_secrets: tuple[str, ...] = ()
    github_api_url: str = DEFAULT_GITHUB_API
    github_identity: str = ""
    """The bot's login when the token cannot read ``/user`` (Actions: github-actions[bot])."""
    github_protect: str = "none"
    """Critical/ssirp issues: none, lock, advisory or transfer:OWNER/PRIVATE-REPO."""
    github_escalate: tuple[str, ...] = ()
    """``@user`` / ``@org/team`` mentioned in the comment for the escalate routes."""
    github_assignees: tuple[str, ...] = ()
    escalate_routes: tuple[str, ...] = ("ssirp",)
    """The routes that need people (``BUGBAR_ESCALATE_ROUTES``)."""
    gitlab_url: str = ""
    gitlab_token: str = ""
    gitlab_webhook_secrets: tuple[str, ...] = ()
    gitlab_confidential: str = "public"
    """When to mark critical/ssirp issues confidential: public (projects), always, never."""
    gitlab_escalate: tuple[str, ...] = ()
    """``@user`` / ``@group`` / ``@group/subgroup`` mentioned for the escalate routes."""
    gitlab_assignees: tuple[str, ...] = ()
    """User ids or usernames assigned to escalated issues."""
    jira_url: str = ""
    jira_email: str = ""
    jira_token: str = ""
    jira_pat: str = ""
    jira_webhook_secrets: tuple[str, ...] = ()
    jira_security_level: str = ""
    """Security level id or name to set on critical/ssirp issues (empty: off)."""
    jira_security_project: str = ""
    """Project key where a linked issue is created for ssirp routes (empty: off)."""
    jira_escalate: tuple[str, ...] = ()
    """Watchers added to escalated issues: account ids (Cloud) or usernames (Data Center)."""
    jira_assignee: str = ""
    """Assignee of escalated issues: an account id (Cloud) or a username (Data Center)."""
    state_path: str = "bugbar.db"
    rules_dirs: tuple[str, ...] = ()
    dry_run: bool = False
    command_policy: Mapping[str, str] = field(default_factory=dict)
    log_level: str = "INFO"
    lease_seconds: float = 15.0
    """``BUGBAR_LEASE_SECONDS``: a claimed delivery's lease (renewed every third of it)."""
    write_interval: float = 1.0
    """``BUGBAR_WRITE_INTERVAL``: seconds between tracker writes (GitHub asks for 1)."""
    retry_base_seconds: float = 1.0
    """``BUGBAR_RETRY_BASE_SECONDS``: first back-off wait after a 5xx/timeout."""
    settle_seconds: float = 10.0
    """``BUGBAR_SETTLE_SECONDS``: wait after an ambiguous comment POST before looking for it."""
    delivery_retry_seconds: float = 5.0
    """``BUGBAR_DELIVERY_RETRY_SECONDS``: first wait before a failed delivery runs again."""
    ready_max_inbox_age: float = 600.0
    """``BUGBAR_READY_MAX_INBOX_AGE``: ``/readyz`` is degraded when the oldest pending delivery
    is older than this many seconds."""
    retention_days: float | None = DEFAULT_RETENTION_DAYS
    """``BUGBAR_RETENTION_DAYS``: ``serve`` deletes done deliveries older than this (their ids
    stop counting as duplicates); None (``0`` / ``off``) keeps them forever."""

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = "***"
            elif f.name == "state_path":
                for password in _url_passwords(value):
                    value = value.replace(f":{password}@", ":***@", 1)
            shown.append(f"{f.name}={value!r}")
        return f"Config({', '.join(shown)})"

    @property
    def secrets(self) -> list[str]:
        """Every secret value, for the log redaction filter."""
        out: list[str] = []
        for name in SECRET_FIELDS:
            value = getattr(self, name)
            out.extend(value if isinstance(value, tuple) else [value])
        out.extend(_url_passwords(self.state_path))  # postgresql://user:PASSWORD@host/db
        return [v for v in out if v]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read the ``BUGBAR_*`` variables; raises ConfigError on contradictions."""
        e = os.environ if env is None else env
        key = e.get("BUGBAR_GITHUB_PRIVATE_KEY", "")
        key_file = e.get("BUGBAR_GITHUB_PRIVATE_KEY_FILE", "")
        if key_file and not key:
            try:
                key = Path(key_file).read_text()
            except OSError as exc:
                raise ConfigError(f"BUGBAR_GITHUB_PRIVATE_KEY_FILE: cannot read "
                                  f"{key_file} ({exc.strerror})") from None
        policy_text = e.get("BUGBAR_COMMAND_POLICY", "")
        try:
            policy = json.loads(policy_text) if policy_text else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"BUGBAR_COMMAND_POLICY is not JSON: {exc.msg}") from None
        if not isinstance(policy, dict):
            raise ConfigError('BUGBAR_COMMAND_POLICY must be an object like {"severity": '
                              '"write"}')
        cfg = cls(
            github_token=e.get("BUGBAR_GITHUB_TOKEN", ""),
            github_app_id=e.get("BUGBAR_GITHUB_APP_ID", ""),
            github_private_key=key,
            github_webhook_secrets=_list(e.get("BUGBAR_GITHUB_WEBHOOK_SECRET")),
            github_api_url=(e.get("BUGBAR_GITHUB_API_URL") or DEFAULT_GITHUB_API).rstrip("/"),
            # Actions' GITHUB_TOKEN cannot read /user; its comments are by github-actions[bot].
            github_identity=e.get("BUGBAR_GITHUB_IDENTITY") or (
                "github-actions[bot]" if e.get("GITHUB_ACTIONS") == "true" else ""),
            github_protect=(e.get("BUGBAR_GITHUB_PROTECT") or "none").strip(),
            github_escalate=tuple(_mention(m) for m in _list(e.get("BUGBAR_GITHUB_ESCALATE"))),
            github_assignees=tuple(m.lstrip("@") for m in
                                   _list(e.get("BUGBAR_GITHUB_ASSIGNEES"))),
            escalate_routes=_list(e.get("BUGBAR_ESCALATE_ROUTES")) or ("ssirp",),
            gitlab_url=e.get("BUGBAR_GITLAB_URL", "").rstrip("/"),
            gitlab_token=e.get("BUGBAR_GITLAB_TOKEN", ""),
            gitlab_webhook_secrets=_list(e.get("BUGBAR_GITLAB_WEBHOOK_SECRET")),
            gitlab_confidential=e.get("BUGBAR_GITLAB_CONFIDENTIAL", "public").lower(),
            gitlab_escalate=tuple(_mention(m) for m in _list(e.get("BUGBAR_GITLAB_ESCALATE"))),
            gitlab_assignees=tuple(m.lstrip("@") for m in
                                   _list(e.get("BUGBAR_GITLAB_ASSIGNEES"))),
            jira_url=e.get("BUGBAR_JIRA_URL", "").rstrip("/"),
            jira_email=e.get("BUGBAR_JIRA_EMAIL", ""),
            jira_token=e.get("BUGBAR_JIRA_TOKEN", ""),
            jira_pat=e.get("BUGBAR_JIRA_PAT", ""),
            jira_webhook_secrets=_list(e.get("BUGBAR_JIRA_WEBHOOK_SECRET")),
            jira_security_level=e.get("BUGBAR_JIRA_SECURITY_LEVEL", ""),
            jira_security_project=e.get("BUGBAR_JIRA_SECURITY_PROJECT", ""),
            jira_escalate=_list(e.get("BUGBAR_JIRA_ESCALATE")),
            jira_assignee=e.get("BUGBAR_JIRA_ASSIGNEE", "").strip(),
            state_path=e.get("BUGBAR_STATE", "bugbar.db"),
            rules_dirs=tuple(d for d in e.get("BUGBAR_RULES", "").split(os.pathsep) if d),
            dry_run=_flag(e.get("BUGBAR_DRY_RUN")),
            command_policy={str(k): str(v) for k, v in policy.items()},
            log_level=e.get("BUGBAR_LOG_LEVEL", "INFO").upper(),
            lease_seconds=_seconds(e, "BUGBAR_LEASE_SECONDS", 15.0, positive=True),
            write_interval=_seconds(e, "BUGBAR_WRITE_INTERVAL", 1.0),
            retry_base_seconds=_seconds(e, "BUGBAR_RETRY_BASE_SECONDS", 1.0),
            settle_seconds=_seconds(e, "BUGBAR_SETTLE_SECONDS", 10.0),
            delivery_retry_seconds=_seconds(e, "BUGBAR_DELIVERY_RETRY_SECONDS", 5.0),
            ready_max_inbox_age=_seconds(e, "BUGBAR_READY_MAX_INBOX_AGE", 600.0, positive=True),
            retention_days=_retention_days(e),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Reject settings that cannot work together."""
        for name, url in (("BUGBAR_GITHUB_API_URL", self.github_api_url),
                          ("BUGBAR_GITLAB_URL", self.gitlab_url),
                          ("BUGBAR_JIRA_URL", self.jira_url)):
            parts = urllib.parse.urlsplit(url)
            if url and (parts.scheme not in ("http", "https") or not parts.hostname):
                # Caught here, a typo is a configuration error (exit 2) naming the variable,
                # not "cannot reach the API" with a client library's AttributeError.
                raise ConfigError(f"{name} must be an http(s) URL like https://host/…, not "
                                  f"{url!r}")
        if self.github_app_id and not self.github_app_id.isdigit():
            raise ConfigError(f"BUGBAR_GITHUB_APP_ID must be the App's numeric id (its settings "
                              f"page shows it), not {self.github_app_id!r}")
        key = self.github_private_key.strip()
        if self.github_app_id and key and not key.startswith("-----BEGIN"):
            raise ConfigError("BUGBAR_GITHUB_PRIVATE_KEY (or the _FILE it names) is not a PEM "
                              "private key: use the .pem file the App's settings page "
                              "generates")
        if self.github_app_id and not self.github_private_key:
            raise ConfigError("BUGBAR_GITHUB_APP_ID needs BUGBAR_GITHUB_PRIVATE_KEY or "
                              "BUGBAR_GITHUB_PRIVATE_KEY_FILE")
        protect = self.github_protect
        if protect.startswith("transfer:"):
            if not _GITHUB_REPO.match(protect.split(":", 1)[1]):
                raise ConfigError("BUGBAR_GITHUB_PROTECT=transfer:OWNER/REPO needs a repository "
                                  "like transfer:acme/security-reports")
        elif protect not in ("none", "lock", "advisory"):
            raise ConfigError("BUGBAR_GITHUB_PROTECT must be none, lock, advisory or "
                              "transfer:OWNER/PRIVATE-REPO")
        for mention in self.github_escalate:
            if not _GITHUB_MENTION.match(mention):
                raise ConfigError(f"BUGBAR_GITHUB_ESCALATE: {mention!r} is not a GitHub user "
                                  "or team (use @user or @org/team, comma-separated)")
        for login in self.github_assignees:
            if not _GITHUB_LOGIN.match(login):
                raise ConfigError(f"BUGBAR_GITHUB_ASSIGNEES: {login!r} is not a GitHub login "
                                  "(teams cannot be assigned; mention them in "
                                  "BUGBAR_GITHUB_ESCALATE)")
        for mention in self.gitlab_escalate:
            if not _GITLAB_MENTION.match(mention):
                raise ConfigError(f"BUGBAR_GITLAB_ESCALATE: {mention!r} is not a GitLab user or "
                                  "group (use @user, @group or @group/subgroup, comma-separated)")
        for who in self.gitlab_assignees:
            if not _GITLAB_USER.match(who):
                raise ConfigError(f"BUGBAR_GITLAB_ASSIGNEES: {who!r} is not a user id or "
                                  "username")
        for who in (*self.jira_escalate, *([self.jira_assignee] if self.jira_assignee else [])):
            if not _JIRA_USER.match(who):
                raise ConfigError(f"BUGBAR_JIRA_ESCALATE / BUGBAR_JIRA_ASSIGNEE: {who!r} is not "
                                  "an account id (Cloud) or username (Data Center)")
        for route in self.escalate_routes:
            if not _ROUTE.match(route):
                raise ConfigError(f"BUGBAR_ESCALATE_ROUTES: {route!r} is not a route name "
                                  "(e.g. ssirp,privacy)")
        if self.gitlab_confidential not in ("public", "always", "never"):
            raise ConfigError("BUGBAR_GITLAB_CONFIDENTIAL must be public, always or never")
        if bool(self.gitlab_url) != bool(self.gitlab_token):
            have, need = (("BUGBAR_GITLAB_URL", "BUGBAR_GITLAB_TOKEN") if self.gitlab_url
                          else ("BUGBAR_GITLAB_TOKEN", "BUGBAR_GITLAB_URL"))
            raise ConfigError(f"{have} needs {need}")
        if self.jira_url and not (self.jira_pat or (self.jira_email and self.jira_token)):
            raise ConfigError("BUGBAR_JIRA_URL needs BUGBAR_JIRA_PAT (Data Center) or "
                              "BUGBAR_JIRA_EMAIL + BUGBAR_JIRA_TOKEN (Cloud)")
        if self.jira_pat and (self.jira_email or self.jira_token):
            raise ConfigError("BUGBAR_JIRA_PAT (Data Center) and BUGBAR_JIRA_EMAIL / "
                              "BUGBAR_JIRA_TOKEN (Cloud) exclude each other: set one or the other")
        if not self.jira_url and (self.jira_pat or self.jira_email or self.jira_token):
            raise ConfigError("Jira credentials are set but BUGBAR_JIRA_URL is not")
        if self.log_level not in logging.getLevelNamesMapping():
            raise ConfigError(f"BUGBAR_LOG_LEVEL {self.log_level!r} is not a level: use DEBUG, "
                              "INFO, WARNING, ERROR or CRITICAL")

    def providers(self) -> list[str]:
        """The trackers this configuration can write to."""
        out = []
        if self.github_token or self.github_app_id:
            out.append("github")
        if self.gitlab_url and self.gitlab_token:
            out.append("gitlab")
        if self.jira_url:
            out.append("jira")
        return out
