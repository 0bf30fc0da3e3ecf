"""Start-up checks: does each configured tracker accept our credentials?

One cheap authenticated request per provider, made once, with no retries and a short timeout,
so a wrong token or URL is reported in a second as one line instead of after a minute of
back-off (or as a dead letter per delivery):

* GitHub token: ``GET /rate_limit`` (every token may read it, Actions' ``GITHUB_TOKEN`` too,
  and it does not count against the budget); GitHub App: ``GET /app`` with the App's JWT.
* GitLab: ``GET /user`` (personal, group and project access tokens all may).
* Jira: ``GET /rest/api/2/myself``.

401 and 403 mean the tracker rejects the credentials (``rejected``); a connection error,
timeout or 5xx means it could not be asked (``unreachable``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.config import Config
from bot.errors import http_status, network_reason

log = logging.getLogger("bugbar.preflight")

OK = "ok"
REJECTED = "rejected"
UNREACHABLE = "unreachable"

DEFAULT_TIMEOUT = 10

CREDENTIAL_VARIABLES = {
    "github": "BUGBAR_GITHUB_TOKEN, or BUGBAR_GITHUB_APP_ID and BUGBAR_GITHUB_PRIVATE_KEY",
    "gitlab": "BUGBAR_GITLAB_URL and BUGBAR_GITLAB_TOKEN",
    "jira": "BUGBAR_JIRA_URL and BUGBAR_JIRA_PAT, or BUGBAR_JIRA_EMAIL and BUGBAR_JIRA_TOKEN",
}
URL_VARIABLES = {
    "github": "BUGBAR_GITHUB_API_URL",
    "gitlab": "BUGBAR_GITLAB_URL",
    "jira": "BUGBAR_JIRA_URL",
}


@dataclass(frozen=True)
class CredentialCheck:
    """What one provider said to the start-up request."""

    provider: str
    status: str
    """ok | rejected | unreachable"""
    detail: str = ""
    """The tracker's answer or the network error, one line, no secrets."""
    variable: str = ""
    """The variable(s) holding the credentials that were checked."""

    @property
    def ok(self) -> bool:
        """The tracker accepted the credentials."""
        return self.status == OK

    def message(self) -> str:
        """A one-line explanation naming the variable to fix."""
        if self.status == REJECTED:
            return (f"{self.provider}: the tracker rejected the credentials in "
                    f"{self.variable or CREDENTIAL_VARIABLES[self.provider]} ({self.detail}); "
                    "set valid credentials with access to the issues")
        if self.status == UNREACHABLE:
            return (f"{self.provider}: cannot reach the API ({self.detail}); check "
                    f"{URL_VARIABLES[self.provider]} and the network")
        return f"{self.provider}: credentials accepted"


def configured_variable(config: Config, provider: str) -> str:
    """The variable(s) the configured credentials of ``provider`` came from."""
    if provider == "github":
        return ("BUGBAR_GITHUB_TOKEN" if config.github_token
                else "BUGBAR_GITHUB_APP_ID / BUGBAR_GITHUB_PRIVATE_KEY")
    if provider == "gitlab":
        return "BUGBAR_GITLAB_TOKEN"
    return "BUGBAR_JIRA_PAT" if config.jira_pat else "BUGBAR_JIRA_EMAIL / BUGBAR_JIRA_TOKEN"


def _verdict(provider: str, exc: BaseException) -> CredentialCheck:
    status = http_status(exc)
    if status in (401, 403):
        return CredentialCheck(provider, REJECTED, f"HTTP {status}")
    if status is not None and status < 500:
        # e.g. 404: the URL points at something that is not this tracker's API.
        return CredentialCheck(provider, UNREACHABLE, f"HTTP {status} from the API URL")
    if status is not None:
        return CredentialCheck(provider, UNREACHABLE, f"HTTP {status}")
    return CredentialCheck(provider, UNREACHABLE, network_reason(exc))


def _github(config: Config, timeout: int) -> None:
    from github import Auth

    from bot.providers.github import make_github

    if config.github_token:
        gh = make_github(Auth.Token(config.github_token), config.github_api_url, timeout=timeout)
        gh.requester.requestJsonAndCheck("GET", "/rate_limit")
    else:
        gh = make_github(Auth.AppAuth(int(config.github_app_id), config.github_private_key),
                         config.github_api_url, timeout=timeout)
        gh.requester.requestJsonAndCheck("GET", "/app")


def _gitlab(config: Config, timeout: int) -> None:
    import gitlab

    gl = gitlab.Gitlab(config.gitlab_url, private_token=config.gitlab_token, timeout=timeout,
                       retry_transient_errors=False, user_agent="bugbar (+python-gitlab)")
    gl.auth()


def _jira(config: Config, timeout: int) -> None:
    from jira import JIRA

    auth: dict[str, object] = (
        {"token_auth": config.jira_pat} if config.jira_pat
        else {"basic_auth": (config.jira_email, config.jira_token)})
    client = JIRA(config.jira_url, max_retries=0, timeout=timeout, get_server_info=False,
                  **auth)  # type: ignore[arg-type]
    try:
        client.myself()
    finally:
        client.close()  # type: ignore[no-untyped-call]


CHECKS: dict[str, Callable[[Config, int], None]] = {
    "github": _github,
    "gitlab": _gitlab,
    "jira": _jira,
}


def check_credentials(config: Config, provider: str,
                      timeout: int = DEFAULT_TIMEOUT) -> CredentialCheck:
    """Ask ``provider`` once whether it accepts the configured credentials."""
    try:
        CHECKS[provider](config, timeout)
    except Exception as exc:  # noqa: BLE001 - every failure is a verdict, not a crash
        verdict = _verdict(provider, exc)
        log.debug("credential check failed", extra={"provider": provider,
                                                    "status": verdict.status})
        return replace(verdict, variable=configured_variable(config, provider))
    return CredentialCheck(provider, OK, variable=configured_variable(config, provider))


def check_all(config: Config, providers: list[str] | None = None,
              timeout: int = DEFAULT_TIMEOUT) -> list[CredentialCheck]:
    """One check per configured provider (or per provider named)."""
    return [check_credentials(config, p, timeout)
            for p in (providers if providers is not None else config.providers())]
