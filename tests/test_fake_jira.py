"""Drive tests/fakes/jira_api.FakeJira with the real ``jira`` library (pycontribs 3.x).

Retry note (jira 3.10 ``ResilientSession``): every request is retried up to ``max_retries``
(JIRA(..., max_retries=3) by default) on 429 and 503 and on ``requests.ConnectionError``.
Delay before retry n (n = 1, 2, ...): with ``Retry-After`` → ``2 * max(Retry-After, 1)``; a 429
without it → ``10 * 2**n``; a ConnectionError → ``10 * 2**n``; always capped at
``session.max_retry_delay`` (60 s) and multiplied by ``random.uniform(0.5, 1.0)``; it sleeps
with ``time.sleep``. Other statuses (500, 502, 504, 403, 404 ...) and read timeouts are not
retried. ``JIRA(..., max_retries=0)`` turns all of this off (one attempt, JIRAError carries the
response and its ``Retry-After``), leaving one retry layer to the caller.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from jira import JIRA, JIRAError

from tests.fakes.jira_api import FakeJira, adf_to_text, text_to_adf

FLAVOURS = ["cloud", "dc"]


def connect(fake: FakeJira, handle: str | None = None, **kw: Any) -> JIRA:
    """A real client pointed at the fake, with the library's own retries off."""
    kw.setdefault("max_retries", 0)
    return JIRA(fake.url, **fake.auth_kwargs(handle), **kw)


def raw(j: JIRA, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
    """A non-raising request with the client's auth (ResilientSession raises on 4xx/5xx).

    ``path`` is relative to the client's REST root, or absolute when it starts with ``/``.
    """
    session = requests.Session()
    session.auth = j._session.auth
    url = j.server_url + path if path.startswith("/") else j._get_url(path)
    data = json.dumps(body) if body is not None else None
    headers = {"Content-Type": "application/json"}
    return session.request(method, url, data=data, params=params, headers=headers)


@pytest.fixture(params=FLAVOURS)
def fake(request: pytest.FixtureRequest) -> Iterator[FakeJira]:
    with FakeJira(request.param) as f:
        f.add_project("PROJ", name="Product")
        f.add_project("SEC", name="Security")
        f.add_security_level("PROJ", id="10001", name="Embargoed")
        f.add_security_level("SEC", id="10101", name="Security team")
        f.add_user("alice", display_name="Alice Liddell", email="alice@example.com")
        f.add_user("alicia", display_name="Alicia Keys", email="alicia@example.com")
        f.add_user("bob", display_name="Bob Builder", email="bob@example.com")
        for who in ("alice", "alicia", "bob"):
            f.grant(who, "PROJ", "BROWSE_PROJECTS", "ADD_COMMENTS")
        f.grant("alice", "PROJ", "EDIT_ISSUES")
        yield f


@pytest.fixture
def cloud() -> Iterator[FakeJira]:
    with FakeJira("cloud") as f:
        f.add_project("PROJ")
        yield f


@pytest.fixture
def dc() -> Iterator[FakeJira]:
    with FakeJira("dc", context_path="/jira") as f:  # DC often lives under a context path
        f.add_project("PROJ")
        yield f


# --------------------------------------------------------------------------- construction
def test_construction_fetches_server_info_only(fake: FakeJira) -> None:
    j = connect(fake)
    assert [r.path for r in fake.requests] == ["/rest/api/2/serverInfo"]
    assert j._is_cloud is (fake.flavour == "cloud")
    me = j.myself()
    if fake.flavour == "cloud":
        assert me["accountId"] == fake.user("bot").account_id and "name" not in me
    else:
        assert me["name"] == "bot" and me["key"].startswith("JIRAUSER")


def test_without_server_info_cloud_search_falls_back_to_removed_api(cloud: FakeJira) -> None:
    j = connect(cloud, get_server_info=False)
    assert cloud.count() == 0 and j._is_cloud is False
    with pytest.raises(JIRAError) as err:
        j.search_issues("project = PROJ")
    assert err.value.status_code == 410
    assert "/rest/api/3/search/jql" in err.value.text


# --------------------------------------------------------------------------- issues
def test_issue_get_v2_plain_and_v3_adf(fake: FakeJira) -> None:
    key = fake.add_issue(
        "PROJ", "Model weights leak", "Line one\nLine two", labels=["ai"], reporter="alice"
    )
    j = connect(fake)
    issue = j.issue(key)
    assert issue.key == "PROJ-1" and issue.fields.summary == "Model weights leak"
    assert issue.fields.description == "Line one\nLine two"
    assert issue.fields.labels == ["ai"]
    assert issue.fields.reporter.displayName == "Alice Liddell"
    assert issue.fields.project.key == "PROJ" and issue.fields.security is None
    assert j.issue(issue.id).key == key  # the self link uses the numeric id
    v3 = raw(j, "GET", f"/rest/api/3/issue/{key}")
    if fake.flavour == "cloud":
        desc = v3.json()["fields"]["description"]
        assert desc["type"] == "doc" and adf_to_text(desc) == "Line one\nLine two"
    else:
        assert v3.status_code == 404  # DC has no v3


def test_labels_add_remove_via_update(fake: FakeJira) -> None:
    then = datetime(2024, 1, 1, tzinfo=UTC)
    key = fake.add_issue("PROJ", "s", labels=["ai", "old"], updated=then)
    j = connect(fake)
    issue = j.issue(key)
    issue.add_field_value("labels", "threat_model-stealing")
    issue.update(update={"labels": [{"remove": "old"}]})
    assert issue.fields.labels == ["ai", "threat_model-stealing"]
    issue.update(fields={"labels": ["ai", "triaged"]})  # replaces the list
    assert fake.issue(key)["labels"] == ["ai", "triaged"]
    assert fake.issue(key)["updated"] > then
    assert fake.writes == [
        f"jira:{key}:+label threat_model-stealing",
        f"jira:{key}:-label old",
        f"jira:{key}:+label triaged",
        f"jira:{key}:-label threat_model-stealing",
    ]
    issue.add_field_value("labels", "ai")  # already there: no effective write
    assert len(fake.writes) == 4
    with pytest.raises(JIRAError) as err:
        issue.add_field_value("labels", "has space")
    assert err.value.status_code == 400
    assert "contains spaces which is invalid" in err.value.text
    assert json.loads(err.value.response.text)["errors"]["labels"]


def test_edit_needs_permission_and_rejects_unknown_fields(fake: FakeJira) -> None:
    key = fake.add_issue("PROJ", "s")
    bob = connect(fake, "bob")
    with pytest.raises(JIRAError) as err:
        bob.issue(key).update(fields={"labels": ["x"]})
    assert err.value.status_code == 403
    j = connect(fake)
    with pytest.raises(JIRAError) as err:
        j.issue(key).update(fields={"customfield_99": "x"})
    assert err.value.status_code == 400 and "cannot be set" in err.value.text


# --------------------------------------------------------------------------- comments
def test_comment_create_update_list(fake: FakeJira) -> None:
    key = fake.add_issue("PROJ", "s")
    human = fake.add_comment(key, "a human says hi", author="alice")
    j = connect(fake)
    c = j.add_comment(key, "bugbar: **triaged**")
    c.update(body="bugbar: triaged (edited)")
    assert c.body == "bugbar: triaged (edited)"
    listed = j.comments(key)
    assert [x.id for x in listed] == [human, c.id]
    assert listed[1].body == "bugbar: triaged (edited)"
    mine = listed[1].author
    assert (mine.accountId if fake.flavour == "cloud" else mine.name) == fake.user_id("bot")
    assert fake.writes == [f"jira:{key}:comment+ {c.id}", f"jira:{key}:comment~ {c.id}"]
    with pytest.raises(JIRAError) as err:  # the bot may not edit a human's comment
        listed[0].update(body="rewritten")
    assert err.value.status_code == 403
    page = j._get_json(f"issue/{key}/comment", params={"startAt": 1, "maxResults": 1})
    assert page["total"] == 2 and [x["id"] for x in page["comments"]] == [c.id]


def test_v3_comment_bodies_are_adf(cloud: FakeJira) -> None:
    key = cloud.add_issue("PROJ", "s")
    j = connect(cloud)
    url = f"/rest/api/3/issue/{key}/comment"
    bad = raw(j, "POST", url, {"body": "plain"})
    assert bad.status_code == 400 and bad.json()["errors"]["comment"]
    assert raw(j, "POST", url, {"body": text_to_adf("hi")}).status_code == 201
    assert j.comments(key)[0].body == "hi"  # v2 sees plain text


# --------------------------------------------------------------------------- properties
def test_entity_property_roundtrip(fake: FakeJira) -> None:
    key = fake.add_issue("PROJ", "s")
    j = connect(fake)
    with pytest.raises(JIRAError) as err:
        j.issue_property(key, "bugbar")
    assert err.value.status_code == 404
    state = {"comment_id": "10001", "labels": ["a"], "v": 1}
    assert j.add_issue_property(key, "bugbar", state).status_code == 201
    assert j.add_issue_property(key, "bugbar", {**state, "v": 2}).status_code == 200
    assert j.issue_property(key, "bugbar").raw == {"key": "bugbar", "value": {**state, "v": 2}}
    assert [p.key for p in j.issue_properties(key)] == ["bugbar"]
    got = j.issue(key, fields="summary", properties="bugbar").raw["properties"]
    assert got == {"bugbar": {**state, "v": 2}}
    assert raw(j, "DELETE", f"issue/{key}/properties/bugbar").status_code == 204
    assert fake.writes == [f"jira:{key}:property bugbar"] * 2 + [f"jira:{key}:property- bugbar"]


# --------------------------------------------------------------------------- permissions
def _can_edit(fake: FakeJira, j: JIRA, handle: str) -> bool:
    """What bugbar should ask: does ``handle`` hold EDIT_ISSUES on PROJ?"""
    params = {"permissions": "EDIT_ISSUES", "projectKey": "PROJ"}
    if fake.flavour == "cloud":
        params["accountId"] = fake.user(handle).account_id
        users = j._get_json("user/permission/search", params=params)
        return any(u["accountId"] == params["accountId"] for u in users)
    params["username"] = handle
    users = j._get_json("user/permission/search", params=params)
    return any(u["name"] == handle for u in users)  # DC matches by prefix: filter exactly


def test_user_permission_search(fake: FakeJira) -> None:
    j = connect(fake)
    assert _can_edit(fake, j, "alice") is True
    assert _can_edit(fake, j, "bob") is False
    if fake.flavour == "dc":
        prefix = j._get_json(
            "user/permission/search",
            params={"permissions": "BROWSE_PROJECTS", "projectKey": "PROJ", "username": "ali"},
        )
        assert sorted(u["name"] for u in prefix) == ["alice", "alicia"]
    fake.revoke("bot", None, "ADMINISTER_PROJECTS")
    with pytest.raises(JIRAError) as err:
        _can_edit(fake, j, "alice")
    assert err.value.status_code == 403


def test_bulk_permission_check_cloud(cloud: FakeJira) -> None:
    cloud.add_user("carol")
    cloud.grant("carol", "PROJ", "EDIT_ISSUES")
    j = connect(cloud)
    pid = int(j.project("PROJ").id)
    body = {
        "accountId": cloud.user("carol").account_id,
        "projectPermissions": [{"permissions": ["EDIT_ISSUES"], "projects": [pid]}],
    }
    assert raw(j, "POST", "permissions/check", body).status_code == 403  # needs ADMINISTER
    cloud.grant("bot", None, "ADMINISTER")
    got = raw(j, "POST", "permissions/check", body).json()
    assert got["projectPermissions"] == [
        {"permission": "EDIT_ISSUES", "projects": [pid], "issues": []}
    ]
    body["accountId"] = cloud.add_user("dave").account_id
    got = raw(j, "POST", "permissions/check", body).json()
    assert got["projectPermissions"][0]["projects"] == []


def test_my_permissions(fake: FakeJira) -> None:
    j = connect(fake, "bob")
    perms = j.my_permissions(projectKey="PROJ", permissions="EDIT_ISSUES,ADD_COMMENTS")
    assert perms["permissions"]["EDIT_ISSUES"]["havePermission"] is False
    assert perms["permissions"]["ADD_COMMENTS"]["havePermission"] is True
    if fake.flavour == "cloud":
        with pytest.raises(JIRAError) as err:
            j.my_permissions(projectKey="PROJ")
        assert err.value.status_code == 400


# --------------------------------------------------------------------------- search
def _add_many(fake: FakeJira, n: int) -> None:
    base = datetime(2024, 3, 1, tzinfo=UTC)
    for i in range(n):
        when = base + timedelta(hours=i)
        fake.add_issue("PROJ", f"issue {i}", created=when, updated=when)


def test_cloud_search_token_paging(cloud: FakeJira) -> None:
    _add_many(cloud, 120)
    j = connect(cloud)
    everything = j.search_issues("project = PROJ ORDER BY key ASC", maxResults=False)
    assert [i.key for i in everything] == [f"PROJ-{n}" for n in range(1, 121)]
    assert cloud.count("GET", r"/rest/api/2/search/jql\?") == 2  # pages of 100
    keys: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = j.enhanced_search_issues(
            "project = PROJ", nextPageToken=token, maxResults=50, fields="summary,labels"
        )
        keys += [i.key for i in page]
        pages += 1
        token = page.nextPageToken
        if token is None:
            break
    assert pages == 3 and len(set(keys)) == 120 and keys[0] == "PROJ-120"
    first = j.enhanced_search_issues("project = PROJ", maxResults=100, json_result=True)
    assert first["isLast"] is False and "total" not in first and first["issues"][0]["key"]
    ids = j._get_json("search/jql", params={"jql": "project = PROJ", "maxResults": 5000})
    assert ids["isLast"] is True and "nextPageToken" not in ids
    assert set(ids["issues"][0]) == {"id"}  # no fields asked: ids only
    with pytest.raises(JIRAError):
        j.search_issues("project = PROJ", startAt=50)  # the library refuses on Cloud
    assert raw(j, "GET", "search", jql="project = PROJ").status_code == 410
    with pytest.raises(JIRAError) as err:
        j.search_issues("ORDER BY updated DESC")
    assert "Unbounded JQL" in err.value.text


def test_dc_search_startat_paging(dc: FakeJira) -> None:
    _add_many(dc, 120)
    j = connect(dc)
    assert dc.url.endswith("/jira") and dc.requests[0].path == "/jira/rest/api/2/serverInfo"
    keys: list[str] = []
    start = 0
    while True:
        page = j.search_issues("project = PROJ", startAt=start, maxResults=50)
        keys += [i.key for i in page]
        start += len(page)
        if not page or start >= page.total:
            break
    assert len(keys) == 120 and len(set(keys)) == 120 and page.total == 120
    assert len(j.search_issues("project = PROJ", maxResults=False)) == 120
    assert raw(j, "GET", "search/jql", jql="project = PROJ").status_code == 404


def test_jql_subset(fake: FakeJira) -> None:
    _add_many(fake, 30)  # updated 2024-03-01 00:00 + i hours
    fake.edit_issue("PROJ-3", labels=["ai"], updated=datetime(2024, 3, 5, tzinfo=UTC))
    j = connect(fake)

    def keys(jql: str) -> list[str]:
        return [i.key for i in j.search_issues(jql, maxResults=False, fields="summary")]

    assert len(keys('project = PROJ AND updated >= "2024-03-02"')) == 7  # hours 24..29 + PROJ-3
    assert keys('project = PROJ AND updated >= "2024-03-02 05:00" ORDER BY updated DESC') == [
        "PROJ-3",
        "PROJ-30",
    ]
    assert keys("project = PROJ AND labels = ai") == ["PROJ-3"]
    assert len(keys("project in (PROJ, SEC) AND labels is EMPTY")) == 29
    assert keys("project = PROJ AND labels is not EMPTY") == ["PROJ-3"]
    assert keys('project = PROJ AND summary ~ "issue 2 and more" ORDER BY key') == []
    assert keys('project = PROJ AND summary ~ "issue 29"') == ["PROJ-30"]
    for bad, text in [
        ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
        ("project = PROJ OR project = SEC", "only AND-joined"),
        ('project = PROJ AND updated >= "yesterday"', "is invalid"),
    ]:
        with pytest.raises(JIRAError) as err:
            j.search_issues(bad)
        assert err.value.status_code == 400 and text in err.value.text


# --------------------------------------------------------------------------- create + link
def test_create_issue_and_link(fake: FakeJira) -> None:
    key = fake.add_issue("PROJ", "public report")
    j = connect(fake)
    sec = j.create_issue(
        project="SEC",
        summary="[embargoed] copy of PROJ-1",
        description="details",
        issuetype={"name": "Bug"},
        security={"id": "10101"},
        labels=["bugbar"],
    )
    assert sec.key == "SEC-1" and sec.fields.security.name == "Security team"
    assert j.create_issue_link("Relates", key, sec.key).status_code == 201
    links = j.issue(key).fields.issuelinks
    assert [(lk.type.name, lk.outwardIssue.key) for lk in links] == [("Relates", "SEC-1")]
    assert j.issue(sec.key).fields.issuelinks[0].inwardIssue.key == key
    # JIRA.create_issue cannot send "update" (it only posts "fields"), so post it raw.
    link = {"add": {"type": {"name": "Relates"}, "outwardIssue": {"key": key}}}
    body = {
        "fields": {
            "project": {"key": "SEC"},
            "issuetype": {"name": "Task"},
            "summary": "linked on create",
        },
        "update": {"issuelinks": [link]},
    }
    second = j.issue(raw(j, "POST", "issue", body).json()["key"])
    assert fake.writes == [
        "jira:SEC-1:created",
        f"jira:{key}:link SEC-1",
        "jira:SEC-2:created",
        f"jira:{second.key}:link {key}",
    ]
    with pytest.raises(JIRAError) as err:
        j.create_issue(project="SEC", issuetype={"name": "Bug"}, summary="")
    assert err.value.status_code == 400 and "summary" in err.value.text


def test_security_level_update(fake: FakeJira) -> None:
    key = fake.add_issue("PROJ", "s")
    j = connect(fake)
    issue = j.issue(key)
    issue.update(fields={"security": {"id": "10001"}})
    assert issue.fields.security.id == "10001" and issue.fields.security.name == "Embargoed"
    assert fake.writes == [f"jira:{key}:security 10001"]
    with pytest.raises(JIRAError) as err:
        issue.update(fields={"security": {"id": "10101"}})  # SEC's level, not PROJ's
    assert err.value.status_code == 400
    fake.revoke("bot", None, "SET_ISSUE_SECURITY")
    with pytest.raises(JIRAError) as err:
        issue.update(fields={"security": None})
    assert "cannot be set" in err.value.text


# --------------------------------------------------------------------------- errors & faults
def test_401_wrong_credentials(fake: FakeJira) -> None:
    with pytest.raises(JIRAError) as err:
        JIRA(fake.url, basic_auth=("bot@example.com", "wrong"), max_retries=0)
    assert err.value.status_code == 401
    wrong_scheme = (
        {"token_auth": fake.user("bot").token}
        if fake.flavour == "cloud"
        else {"basic_auth": ("bot", fake.user("bot").token)}
    )
    with pytest.raises(JIRAError) as err:
        JIRA(fake.url, max_retries=0, get_server_info=False, **wrong_scheme).myself()
    assert err.value.status_code == 401


def test_404_and_injected_errors(fake: FakeJira) -> None:
    j = connect(fake)
    with pytest.raises(JIRAError) as err:
        j.issue("PROJ-999")
    assert err.value.status_code == 404
    assert err.value.text == "Issue does not exist or you do not have permission to see it."
    key = fake.add_issue("PROJ", "s")
    fake.fail_next("GET", rf"/issue/{key}", 403, body={"errorMessages": ["nope"], "errors": {}})
    with pytest.raises(JIRAError) as err:
        j.issue(key)
    assert (err.value.status_code, err.value.text) == (403, "nope")
    assert j.issue(key).key == key  # fault consumed


def test_429_with_library_retries_off(fake: FakeJira) -> None:
    key = fake.add_issue("PROJ", "s")
    j = connect(fake)
    fake.fail_next("GET", rf"/issue/{key}", 429, headers={"Retry-After": "7"})
    with pytest.raises(JIRAError) as err:
        j.issue(key)
    assert err.value.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert fake.count("GET", rf"/issue/{key}") == 1


def test_library_resilient_session_backoff(fake: FakeJira, monkeypatch: pytest.MonkeyPatch) -> None:
    """Documents ResilientSession: what it retries and how long it would sleep."""
    slept: list[float] = []
    monkeypatch.setattr("jira.resilientsession.time.sleep", slept.append)
    key = fake.add_issue("PROJ", "s")
    j = connect(fake, max_retries=3)
    path = rf"/issue/{key}$"

    fake.fail_next("GET", path, 429, headers={"Retry-After": "5"}, times=2)
    assert j.issue(key).key == key
    assert fake.count("GET", path) == 3 and len(slept) == 2
    assert all(5 <= s <= 10 for s in slept)  # 2*Retry-After * uniform(0.5, 1.0)

    slept.clear()
    fake.fail_next("GET", path, 429, headers={}, times=4)  # no Retry-After: 10*2**n, cap 60
    with pytest.raises(JIRAError) as err:
        j.issue(key)
    assert err.value.status_code == 429 and len(slept) == 3
    for n, s in enumerate(slept, start=1):
        assert min(60, 10 * 2**n) * 0.5 <= s <= min(60, 10 * 2**n)

    slept.clear()
    before = fake.count("GET", path)
    fake.fail_next("GET", path, 503)  # default Retry-After: 1 -> sleeps 1..2 s
    assert j.issue(key).key == key and len(slept) == 1 and 1 <= slept[0] <= 2
    fake.fail_next("GET", path, 500)
    with pytest.raises(JIRAError):
        j.issue(key)
    assert fake.count("GET", path) == before + 3 and len(slept) == 1  # 500: no retry

    slept.clear()
    fake.reset_next("GET", path)  # connection dropped -> ConnectionError -> retried
    assert j.issue(key).key == key and len(slept) == 1 and 10 <= slept[0] <= 20


def test_delay_next_and_timeout(cloud: FakeJira) -> None:
    key = cloud.add_issue("PROJ", "s")
    j = connect(cloud, timeout=0.2)
    cloud.delay_next("GET", rf"/issue/{key}", 0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        j.issue(key)
    assert j.issue(key).key == key


def test_default_429_headers_and_request_log(cloud: FakeJira) -> None:
    j = connect(cloud)
    cloud.fail_next(None, r"/myself", 429)
    with pytest.raises(JIRAError) as err:
        j.myself()
    headers = err.value.response.headers
    assert headers["Retry-After"] == "1" and headers["RateLimit-Reason"] == "jira-burst-based"
    assert str(cloud.requests[-1]) == "GET /rest/api/2/myself -> 429"
    assert cloud.requests[-1].user is None  # faults fire before authentication


def test_concurrent_label_writes_are_serialised(fake: FakeJira) -> None:
    key = fake.add_issue("PROJ", "s")
    j = connect(fake)
    statuses: list[int] = []

    def add(n: int) -> None:
        body = {"update": {"labels": [{"add": f"l{n}"}]}}
        statuses.append(raw(j, "PUT", f"issue/{key}", body).status_code)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [204] * 16
    assert sorted(fake.issue(key)["labels"]) == sorted(f"l{n}" for n in range(16))
    assert len(fake.writes) == 16
