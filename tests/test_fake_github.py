"""Drive tests/fakes/github_api.FakeGitHub with real PyGithub over loopback HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import Auth, Github, GithubException, GithubIntegration, GithubRetry
from github.GithubException import (
    BadCredentialsException,
    RateLimitExceededException,
    UnknownObjectException,
)

from tests.fakes.github_api import SECONDARY_RATE_LIMIT_MESSAGE, FakeGitHub

TOKEN = "ghp_test_token"
REPO_ID = 515435940

FAST: dict[str, Any] = {"seconds_between_requests": 0, "seconds_between_writes": 0}


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(tokens=[TOKEN], login="bugbar-bot") as f:
        f.add_repo("o/r", id=REPO_ID)
        yield f


def _github(fake: FakeGitHub, token: str = TOKEN, **kw: Any) -> Github:
    kw.setdefault("retry", None)
    return Github(
        auth=Auth.Token(token),
        base_url=fake.url,
        seconds_between_requests=0,
        seconds_between_writes=0,
        **kw,
    )


@pytest.fixture
def gh(fake: FakeGitHub) -> Github:
    return _github(fake)


def _headers(exc: GithubException) -> dict[str, str]:
    assert exc.headers is not None
    return {k.lower(): v for k, v in exc.headers.items()}


def _raw(fake: FakeGitHub, path: str, token: str | None = TOKEN, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    return requests.get(fake.url + path, headers=headers, timeout=5, **kw)


# --------------------------------------------------------------------------- shapes & headers


def test_get_repo_and_issue_shapes(fake: FakeGitHub, gh: Github) -> None:
    n = fake.add_issue("o/r", "Model stealing", "details", labels=["bug"], user="alice")
    repo = gh.get_repo("o/r")
    assert repo.id == REPO_ID and repo.full_name == "o/r"
    assert repo.url == f"{fake.url}/repos/o/r"
    issue = repo.get_issue(n)
    assert issue.title == "Model stealing" and issue.body == "details"
    assert issue.user.login == "alice" and issue.user.type == "User"
    assert [lb.name for lb in issue.labels] == ["bug"]
    assert issue.state == "open" and issue.comments == 0 and issue.pull_request is None
    assert issue.url == f"{fake.url}/repos/o/r/issues/{n}"
    assert issue.html_url == f"https://github.com/o/r/issues/{n}"
    assert isinstance(issue.created_at, datetime) and issue.created_at.tzinfo is not None
    assert gh.get_user().login == "bugbar-bot"

    resp = _raw(fake, f"/repos/o/r/issues/{n}")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert resp.headers["etag"].startswith('W/"')
    assert resp.headers["x-github-request-id"].count(":") == 4
    assert resp.headers["x-ratelimit-resource"] == "core"
    for name in ("limit", "remaining", "used", "reset"):
        assert resp.headers[f"x-ratelimit-{name}"].isdigit()
    body = resp.json()
    for key in ("id", "node_id", "number", "user", "labels", "comments", "updated_at", "reactions"):
        assert key in body


def test_pull_requests_listed_with_pull_request_key(fake: FakeGitHub, gh: Github) -> None:
    fake.add_issue("o/r", "an issue")
    pr = fake.add_issue("o/r", "a PR", pull_request=True)
    issues = {i.number: i for i in gh.get_repo("o/r").get_issues()}
    pull = issues[pr].pull_request
    assert pull is not None and pull.html_url == f"https://github.com/o/r/pull/{pr}"
    assert issues[1].pull_request is None


# --------------------------------------------------------------------------- pagination


def test_pagination_follows_repositories_links(fake: FakeGitHub) -> None:
    for i in range(250):
        fake.add_issue("o/r", f"issue {i}", state="closed" if i % 10 == 0 else "open")
    gh = _github(fake, per_page=100)
    numbers = [i.number for i in gh.get_repo("o/r").get_issues(state="all")]
    assert numbers == list(range(250, 0, -1))
    sent = [urlsplit(r.path) for r in fake.requests if "/issues" in r.path]
    assert [(u.path, dict(parse_qsl(u.query))) for u in sent] == [
        ("/repos/o/r/issues", {"state": "all", "per_page": "100"}),
        (f"/repositories/{REPO_ID}/issues", {"state": "all", "per_page": "100", "page": "2"}),
        (f"/repositories/{REPO_ID}/issues", {"state": "all", "per_page": "100", "page": "3"}),
    ]
    assert gh.get_repo("o/r").get_issues(state="open").totalCount == 225

    mid = _raw(fake, "/repos/o/r/issues?state=all&per_page=100&page=2")
    assert set(mid.links) == {"prev", "next", "last", "first"}
    assert mid.links["next"]["url"] == (
        f"{fake.url}/repositories/{REPO_ID}/issues?state=all&per_page=100&page=3"
    )
    first = _raw(fake, "/repos/o/r/issues?state=all&per_page=100")
    assert set(first.links) == {"next", "last"}
    last = _raw(fake, f"/repositories/{REPO_ID}/issues?state=all&per_page=100&page=3")
    assert set(last.links) == {"prev", "first"} and len(last.json()) == 50
    assert "link" not in _raw(fake, "/repos/o/r/issues?per_page=100&state=closed").headers


def test_issue_list_filters_since_and_sort(fake: FakeGitHub, gh: Github) -> None:
    old = fake.add_issue("o/r", "old", created_at="2024-01-01T00:00:00Z")
    new = fake.add_issue("o/r", "new", labels=["bug"], created_at="2024-03-01T00:00:00Z")
    fake.edit_issue("o/r", old, body="touched", updated_at="2024-04-01T00:00:00Z")
    repo = gh.get_repo("o/r")
    since = datetime(2024, 3, 15, tzinfo=UTC)
    assert [i.number for i in repo.get_issues(since=since)] == [old]
    asc = repo.get_issues(sort="created", direction="asc")
    assert [i.number for i in asc] == [old, new]
    assert [i.number for i in repo.get_issues(sort="updated")] == [old, new]
    assert [i.number for i in repo.get_issues(labels=["bug"])] == [new]


# --------------------------------------------------------------------------- ETag / 304


def test_etag_304_does_not_consume_budget(fake: FakeGitHub, gh: Github) -> None:
    n = fake.add_issue("o/r", "title")
    issue = gh.get_repo("o/r").get_issue(n)
    assert issue.title == "title"  # completes the lazy object
    before = fake.remaining
    assert issue.update() is False
    assert fake.requests[-1].status == 304
    assert fake.remaining == before
    fake.edit_issue("o/r", n, title="changed", updated_at=time.time() + 5)
    assert issue.update() is True
    assert issue.title == "changed"
    assert fake.remaining == before - 1

    resp = _raw(fake, f"/repos/o/r/issues/{n}")
    again = _raw(fake, f"/repos/o/r/issues/{n}", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["x-ratelimit-remaining"] == resp.headers["x-ratelimit-remaining"]
    assert again.headers["etag"] == resp.headers["etag"]


# --------------------------------------------------------------------------- labels


def test_labels_auto_created_slash_names_and_404(fake: FakeGitHub, gh: Github) -> None:
    fake.add_label("o/r", "Bug", color="d73a4a")
    n = fake.add_issue("o/r", "t")
    issue = gh.get_repo("o/r").get_issue(n)
    issue.add_to_labels("threat/model-stealing", "bug")
    assert fake.issue_labels("o/r", n) == ["threat/model-stealing", "Bug"]
    assert sorted(fake.repo_labels("o/r")) == ["Bug", "threat/model-stealing"]
    auto = gh.get_repo("o/r").get_label("threat/model-stealing")
    assert auto.color == "ededed"
    assert fake.writes == [
        f"github:o/r#{n}:+label threat/model-stealing",
        f"github:o/r#{n}:+label Bug",
    ]

    issue.remove_from_labels("threat/model-stealing")
    assert fake.requests[-1].path == f"/repos/o/r/issues/{n}/labels/threat/model-stealing"
    assert fake.writes[-1] == f"github:o/r#{n}:-label threat/model-stealing"
    with pytest.raises(GithubException) as exc:
        issue.remove_from_labels("threat/model-stealing")
    assert exc.value.status == 404
    assert exc.value.data["message"] == "Label does not exist"
    assert not isinstance(exc.value, UnknownObjectException)

    issue.set_labels("a/b", "c")
    assert fake.issue_labels("o/r", n) == ["a/b", "c"]
    assert fake.writes[-3:] == [
        f"github:o/r#{n}:+label a/b",
        f"github:o/r#{n}:+label c",
        f"github:o/r#{n}:-label Bug",
    ]
    # %2F-encoded names work too
    resp = requests.delete(
        f"{fake.url}/repos/o/r/issues/{n}/labels/a%2Fb",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert resp.status_code == 200 and [x["name"] for x in resp.json()] == ["c"]
    assert [lb.name for lb in gh.get_repo("o/r").get_issue(n).get_labels()] == ["c"]


def test_422_validation_failed(fake: FakeGitHub, gh: Github) -> None:
    repo = gh.get_repo("o/r")
    with pytest.raises(GithubException) as exc:
        repo.create_label("foo", "invalid")
    assert exc.value.status == 422
    assert exc.value.data["message"] == "Validation Failed"
    assert exc.value.data["errors"] == [{"resource": "Label", "code": "invalid", "field": "color"}]

    n = fake.add_issue("o/r", "t")
    with pytest.raises(GithubException) as exc:
        repo.get_issue(n).create_comment("x" * 65537)
    assert exc.value.status == 422

    fake.fail_next("POST", r"/issues/\d+/labels$", 422)
    with pytest.raises(GithubException) as exc:
        repo.get_issue(n).add_to_labels("bug")
    assert exc.value.status == 422 and exc.value.data["message"] == "Validation Failed"
    assert fake.issue_labels("o/r", n) == []


# --------------------------------------------------------------------------- comments & reactions


def test_comment_create_edit_list_and_reactions(fake: FakeGitHub, gh: Github) -> None:
    n = fake.add_issue("o/r", "t")
    seeded = fake.add_comment("o/r", n, "/triage high", user="other-bot[bot]")
    issue = gh.get_repo("o/r").get_issue(n)
    mine = issue.create_comment("bugbar verdict")
    assert mine.user.login == "bugbar-bot" and mine.user.type == "User"
    assert mine.url == f"{fake.url}/repos/o/r/issues/comments/{mine.id}"
    mine.edit("bugbar verdict v2")
    assert fake.comment(mine.id)["body"] == "bugbar verdict v2"

    listed = list(gh.get_repo("o/r").get_issue(n).get_comments())
    assert [(c.id, c.user.login, c.user.type) for c in listed] == [
        (seeded, "other-bot[bot]", "Bot"),
        (mine.id, "bugbar-bot", "User"),
    ]
    assert listed[1].body == "bugbar verdict v2"
    assert listed[1].updated_at >= listed[1].created_at
    assert gh.get_repo("o/r").get_issue(n).comments == 2

    reaction = listed[0].create_reaction("+1")
    assert reaction.content == "+1" and reaction.user.login == "bugbar-bot"
    listed[0].create_reaction("+1")  # same user+content: 200, no new reaction
    assert fake.reactions(seeded) == [("bugbar-bot", "+1")]
    with pytest.raises(GithubException) as exc:
        listed[0].create_reaction("thumbs")
    assert exc.value.status == 422

    assert fake.writes == [
        f"github:o/r#{n}:comment+ {mine.id}",
        f"github:o/r#{n}:comment~ {mine.id}",
        f"github:o/r#{n}:reaction+ {seeded} +1",
    ]
    assert fake.count("POST", r"/reactions$") == 3
    assert fake.count("PATCH") == 1


# --------------------------------------------------------------------------- permissions


def test_collaborator_permission(fake: FakeGitHub, gh: Github) -> None:
    repo = gh.get_repo("o/r")
    for role, legacy in [
        ("triage", "read"),
        ("maintain", "write"),
        ("admin", "admin"),
        ("write", "write"),
        ("read", "read"),
    ]:
        fake.set_permission("o/r", "bob", role)
        assert repo.get_collaborator_permission("bob") == legacy
        assert repo.get_collaborator_role_name("bob") == role
    assert repo.get_collaborator_permission("stranger") == "read"  # public repo
    raw = _raw(fake, "/repos/o/r/collaborators/bob/permission").json()
    assert raw["user"]["login"] == "bob" and raw["user"]["permissions"]["pull"] is True

    fake.add_repo("o/secret", private=True)
    assert gh.get_repo("o/secret").get_collaborator_permission("stranger") == "none"

    fake.add_token("ghp_reader", login="reader")
    fake.set_permission("o/r", "reader", "read")
    with pytest.raises(GithubException) as exc:
        _github(fake, "ghp_reader").get_repo("o/r").get_collaborator_permission("bob")
    assert exc.value.status == 403
    assert exc.value.data["message"] == "Must have push access to view collaborator permission."


# --------------------------------------------------------------------------- auth & errors


def test_bad_credentials_and_missing_auth(fake: FakeGitHub) -> None:
    with pytest.raises(BadCredentialsException) as exc:
        _github(fake, "wrong").get_repo("o/r")
    assert exc.value.status == 401 and exc.value.data["message"] == "Bad credentials"
    assert _raw(fake, "/repos/o/r", token=None).status_code == 401
    assert fake.remaining == fake.rate_limit


def test_unknown_objects_404(fake: FakeGitHub, gh: Github) -> None:
    with pytest.raises(UnknownObjectException):
        gh.get_repo("o/missing")
    with pytest.raises(UnknownObjectException):
        _ = gh.get_repo("o/r").get_issue(999).title
    assert _raw(fake, "/repositories/1/issues").status_code == 404
    assert _raw(fake, "/no/such/endpoint").json()["message"] == "Not Found"


def test_injected_502_raw_and_retried(fake: FakeGitHub) -> None:
    fake.fail_next("GET", r"^/repos/o/r$", 502)
    with pytest.raises(GithubException) as exc:
        _github(fake).get_repo("o/r")
    assert exc.value.status == 502 and exc.value.data == {"message": "Server Error"}

    fake.fail_next("GET", r"^/repos/o/r$", 502, times=2)
    retrying = _github(fake, retry=GithubRetry(total=3, backoff_factor=0))
    assert retrying.get_repo("o/r").id == REPO_ID
    assert [r.status for r in fake.requests[-3:]] == [502, 502, 200]


def test_secondary_rate_limit_shapes(fake: FakeGitHub) -> None:
    n = fake.add_issue("o/r", "t")
    fake.fail_secondary_rate_limit("POST", r"/comments$", retry_after=1)
    issue = _github(fake).get_repo("o/r").get_issue(n)
    with pytest.raises(RateLimitExceededException) as exc:
        issue.create_comment("hi")
    assert exc.value.status == 403
    assert exc.value.data["message"] == SECONDARY_RATE_LIMIT_MESSAGE
    assert _headers(exc.value)["retry-after"] == "1"
    assert int(_headers(exc.value)["x-ratelimit-remaining"]) > 0
    assert fake.writes == []

    # GithubRetry honours Retry-After on a 403 and succeeds on the retry
    fake.fail_secondary_rate_limit("POST", r"/comments$", retry_after=1)
    retrying = _github(fake, retry=GithubRetry(total=3, backoff_factor=0))
    started = time.monotonic()
    retrying.get_repo("o/r").get_issue(n).create_comment("hi")
    assert time.monotonic() - started >= 0.9
    assert fake.count("POST", r"/comments$", status=403) == 2
    assert len(fake.comments("o/r", n)) == 1

    # a 429 without Retry-After is not retried by GithubRetry
    fake.fail_next("POST", r"/comments$", 429)
    with pytest.raises(GithubException) as exc429:
        retrying.get_repo("o/r").get_issue(n).create_comment("again")
    assert exc429.value.status == 429
    assert fake.count("POST", r"/comments$", status=429) == 1


def test_primary_rate_limit_and_headers(fake: FakeGitHub, gh: Github) -> None:
    fake.set_rate_limit(remaining=10, limit=5000)
    gh.get_repo("o/r")
    first = gh.rate_limiting
    gh.get_repo("o/r")
    assert gh.rate_limiting == (first[0] - 1, 5000)
    overview = gh.get_rate_limit()  # free
    assert overview.resources.core.remaining == first[0] - 1
    assert fake.remaining == first[0] - 1
    assert overview.resources.core.limit == 5000

    fake.set_rate_limit(remaining=0)
    with pytest.raises(RateLimitExceededException) as exc:
        gh.get_repo("o/r")
    assert exc.value.status == 403
    assert exc.value.data["message"].startswith("API rate limit exceeded for user ID")
    assert _headers(exc.value)["x-ratelimit-remaining"] == "0"
    assert int(_headers(exc.value)["x-ratelimit-reset"]) > time.time()

    fake.set_rate_limit(reset_in=-1)  # window passes: the budget refills
    gh.get_repo("o/r")
    assert fake.remaining == fake.rate_limit - 1


def test_delay_causes_client_timeout_but_write_happens(fake: FakeGitHub) -> None:
    n = fake.add_issue("o/r", "t")
    gh = _github(fake, timeout=1)
    issue = gh.get_repo("o/r").get_issue(n)
    _ = issue.title
    fake.delay_next("POST", r"/comments$", 1.3)
    with pytest.raises(requests.exceptions.Timeout):
        issue.create_comment("slow")
    deadline = time.monotonic() + 3
    while not fake.comments("o/r", n) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c["body"] for c in fake.comments("o/r", n)] == ["slow"]


# --------------------------------------------------------------------------- listings


def test_org_user_repo_listings(fake: FakeGitHub, gh: Github) -> None:
    fake.add_repo("o/second")
    fake.add_repo("carol/tool", owner_type="User")
    assert [r.full_name for r in gh.get_organization("o").get_repos()] == ["o/r", "o/second"]
    assert [r.full_name for r in gh.get_user("carol").get_repos()] == ["carol/tool"]
    with pytest.raises(UnknownObjectException):
        gh.get_organization("nobody")


# --------------------------------------------------------------------------- GitHub App


def _rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_app_installation_token_flow() -> None:
    private, public = _rsa_pair()
    with FakeGitHub(tokens=[], app_id=123, app_slug="bugbar", app_public_key=public) as fake:
        fake.add_repo("o/r", id=REPO_ID)
        fake.add_repo("o/other")
        fake.add_installation(77, "o", repos=["o/r"])
        n = fake.add_issue("o/r", "t")
        app = Auth.AppAuth(123, private)

        integration = GithubIntegration(auth=app, base_url=fake.url, **FAST)
        assert integration.get_repo_installation("o", "r").id == 77
        with pytest.raises(UnknownObjectException):
            integration.get_repo_installation("o", "other")

        gh = Github(
            auth=app.get_installation_auth(77),
            base_url=fake.url,
            retry=None,
            seconds_between_requests=0,
            seconds_between_writes=0,
        )
        comment = gh.get_repo("o/r").get_issue(n).create_comment("from the app")
        assert comment.user.login == "bugbar[bot]" and comment.user.type == "Bot"
        assert fake.count("POST", r"^/app/installations/77/access_tokens$") == 1
        token = fake.installation_tokens[0]
        assert token.startswith("ghs_")
        assert fake.request_headers[-1]["Authorization"] == f"token {token}"
        with pytest.raises(UnknownObjectException):
            gh.get_repo("o/other")  # not part of the installation
        installation = integration.get_app_installation(77)
        assert [r.full_name for r in installation.get_repos()] == ["o/r"]
        with pytest.raises(GithubException) as exc:
            _ = gh.get_user().login
        assert exc.value.status == 403

        # server-side expiry while PyGithub still trusts its cached token
        fake.expire_installation_tokens()
        with pytest.raises(BadCredentialsException):
            gh.get_repo("o/r")

        # short lifetime: PyGithub refreshes (< 20 s left) before each request
        fake.token_lifetime = 5
        gh2 = Github(
            auth=app.get_installation_auth(77),
            base_url=fake.url,
            retry=None,
            seconds_between_requests=0,
            seconds_between_writes=0,
        )
        before = fake.count("POST", r"/access_tokens$")
        gh2.get_repo("o/r")
        gh2.get_repo("o/r")
        assert fake.count("POST", r"/access_tokens$") == before + 2

        # a JWT signed with another key, or for an unknown installation
        other_private, _ = _rsa_pair()
        bad = GithubIntegration(auth=Auth.AppAuth(123, other_private), base_url=fake.url, **FAST)
        with pytest.raises(GithubException) as exc:
            bad.get_access_token(77)
        assert exc.value.status == 401
        with pytest.raises(UnknownObjectException):
            integration.get_access_token(999)


# --------------------------------------------------------------------------- concurrency


def test_concurrent_writes_are_consistent(fake: FakeGitHub) -> None:
    n = fake.add_issue("o/r", "t")
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            resp = requests.post(
                f"{fake.url}/repos/o/r/issues/{n}/comments",
                json={"body": f"c{i}"},
                headers={"Authorization": f"token {TOKEN}"},
                timeout=5,
            )
            assert resp.status_code == 201
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = [c["id"] for c in fake.comments("o/r", n)]
    assert len(ids) == len(set(ids)) == 20
    assert fake.count("POST", r"/comments$", status=201) == 20
    assert fake.remaining == fake.rate_limit - 20


# --------------------------------------------------------------------------- hand-off endpoints


def test_pygithub_locks_and_unlocks_an_issue(fake: FakeGitHub, gh: Github) -> None:
    n = fake.add_issue("o/r", "t", "b")
    issue = gh.get_repo("o/r").get_issue(n)
    issue.lock("too heated")
    again = gh.get_repo("o/r").get_issue(n)
    assert again.locked is True and again.active_lock_reason == "too heated"
    with pytest.raises(GithubException) as err:
        again.lock("because")
    assert err.value.status == 422
    again.unlock()
    assert gh.get_repo("o/r").get_issue(n).locked is False
    assert fake.writes == [f"github:o/r#{n}:lock", f"github:o/r#{n}:unlock"]


def test_pygithub_creates_lists_and_gets_draft_advisories(fake: FakeGitHub, gh: Github) -> None:
    repo = gh.get_repo("o/r")
    adv = repo.create_repository_advisory("Model stealing via the API", "see issue #1", "high",
                                          cwe_ids=["CWE-200"])
    assert adv.ghsa_id.startswith("GHSA-") and adv.state == "draft" and adv.severity == "high"
    assert [a.ghsa_id for a in repo.get_repository_advisories()] == [adv.ghsa_id]
    got = repo.get_repository_advisory(adv.ghsa_id)
    assert got.summary == "Model stealing via the API" and got.cwe_ids == ["CWE-200"]
    with pytest.raises(GithubException) as err:
        repo.get_repository_advisory("GHSA-xxxx-xxxx-xxxx")
    assert err.value.status == 404


def test_advisories_need_an_admin(fake: FakeGitHub) -> None:
    fake.add_user("wri")
    fake.add_token("wri-token", "wri")
    fake.set_permission("o/r", "wri", "write")
    repo = _github(fake, "wri-token").get_repo("o/r")
    with pytest.raises(GithubException) as err:
        repo.create_repository_advisory("s", "d", "low")
    assert err.value.status == 403
    assert list(repo.get_repository_advisories()) == []  # drafts are not listed to them


def test_private_vulnerability_reporting_and_graphql_transfer(fake: FakeGitHub,
                                                              gh: Github) -> None:
    assert _raw(fake, "/repos/o/r/private-vulnerability-reporting").json() == {"enabled": False}
    fake.set_private_reporting("o/r")
    assert _raw(fake, "/repos/o/r/private-vulnerability-reporting").json() == {"enabled": True}
    fake.add_repo("o/private", private=True)
    n = fake.add_issue("o/r", "t", "b", labels=["bug"])
    _, found = gh.requester.graphql_query(
        "query($owner: String!, $name: String!, $number: Int!, $towner: String!, "
        "$tname: String!) { repository(owner: $owner, name: $name) { issue(number: $number) "
        "{ id } } target: repository(owner: $towner, name: $tname) { id } }",
        {"owner": "o", "name": "r", "number": n, "towner": "o", "tname": "private"})
    issue_id = found["data"]["repository"]["issue"]["id"]
    repo_id = found["data"]["target"]["id"]
    _, moved = gh.requester.graphql_query(
        "mutation($issue: ID!, $repo: ID!) { transferIssue(input: {issueId: $issue, "
        "repositoryId: $repo}) { issue { number } } }", {"issue": issue_id, "repo": repo_id})
    number = moved["data"]["transferIssue"]["issue"]["number"]
    assert [lb.name for lb in gh.get_repo("o/private").get_issue(number).labels] == ["bug"]
    old = _raw(fake, f"/repos/o/r/issues/{n}", allow_redirects=False)
    assert old.status_code == 301
    assert old.headers["Location"].endswith(f"/repos/o/private/issues/{number}")
    # Not from a private repository to a public one.
    public_id = _raw(fake, "/repos/o/r").json()["node_id"]
    _, refused = gh.requester.requestJsonAndCheck(  # the raw answer, GraphQL errors and all
        "POST", gh.requester.graphql_url, input={
            "query": "mutation($issue: ID!, $repo: ID!) { transferIssue(input: {issueId: "
                     "$issue, repositoryId: $repo}) { issue { number } } }",
            "variables": {"issue": issue_id, "repo": public_id}})
    assert refused["errors"][0]["type"] == "UNPROCESSABLE"
