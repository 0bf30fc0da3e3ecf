"""Drive FakeGitLab with real python-gitlab over loopback HTTP.

These tests pin down both the fake's GitLab behaviour and python-gitlab's own behaviour
against it (pagination, error mapping, 429/5xx retries), so adapter code can rely on both.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from datetime import timedelta

import gitlab
import pytest
import requests
from gitlab import exceptions as glexc

from tests.fakes.gitlab_api import ACCESS, FakeGitLab

PROJ = "group/proj"


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    with FakeGitLab() as f:
        f.add_project(PROJ, id=42, visibility="public")
        yield f


@pytest.fixture
def gl(fake: FakeGitLab) -> gitlab.Gitlab:
    return gitlab.Gitlab(fake.url, private_token=fake.token, timeout=5)


# -- identity and auth -------------------------------------------------------------------


def test_current_user_is_a_bot_and_version(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    gl.auth()
    assert gl.user is not None
    assert gl.user.username == "bugbar-bot"
    assert gl.user.bot is True
    assert gl.version() == ("17.9.1-ee", fake.revision)
    assert fake.requests[0].headers["private-token"] == fake.token


def test_bad_token_is_401(fake: FakeGitLab) -> None:
    bad = gitlab.Gitlab(fake.url, private_token="glpat-wrong")
    with pytest.raises(glexc.GitlabAuthenticationError) as err:
        bad.auth()
    assert err.value.response_code == 401
    assert err.value.error_message == "401 Unauthorized"
    # python-gitlab raises the auth error itself, not GitlabGetError, on object calls too
    with pytest.raises(glexc.GitlabAuthenticationError):
        bad.projects.get(PROJ)


def test_revoked_token_and_bearer(fake: FakeGitLab) -> None:
    oauth = gitlab.Gitlab(fake.url, oauth_token=fake.token)
    oauth.auth()
    assert oauth.user is not None and oauth.user.username == "bugbar-bot"
    fake.revoke_token(fake.token)
    with pytest.raises(glexc.GitlabAuthenticationError) as err:
        gitlab.Gitlab(fake.url, private_token=fake.token).auth()
    assert b"invalid_token" in err.value.response_body


def test_anonymous_reads_public_only(fake: FakeGitLab) -> None:
    fake.add_project("secret/proj", visibility="private")
    iid = fake.add_issue(PROJ, "public bug")
    anon = gitlab.Gitlab(fake.url)
    assert anon.projects.get(PROJ).issues.get(iid).title == "public bug"
    with pytest.raises(glexc.GitlabGetError) as err:
        anon.projects.get("secret/proj")
    assert err.value.response_code == 404
    with pytest.raises(glexc.GitlabAuthenticationError):
        anon.auth()
    with pytest.raises(glexc.GitlabAuthenticationError):
        anon.projects.get(PROJ, lazy=True).issues.update(iid, {"add_labels": "x"})


# -- pagination --------------------------------------------------------------------------


def test_250_issues_across_pages(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    for n in range(250):
        fake.add_issue(PROJ, f"issue {n}")
    project = gl.projects.get(PROJ)

    fake.clear_log()
    lazy = project.issues.list(iterator=True, per_page=100)
    assert lazy.total == 250 and lazy.total_pages == 3 and lazy.per_page == 100
    iids = [i.iid for i in lazy]
    assert iids == list(range(250, 0, -1))  # default: created_at desc (id as tie-breaker)
    assert fake.count("GET", r"/projects/42/issues$") == 3

    fake.clear_log()
    assert len(project.issues.list(get_all=True)) == 250  # default per_page=20 → 13 calls
    assert fake.count("GET", r"/issues$") == 13

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = project.issues.list()
    assert len(first) == 20
    assert any("get_all=True" in str(w.message) for w in caught)


def test_pagination_headers_and_links(fake: FakeGitLab) -> None:
    for n in range(45):
        fake.add_issue(PROJ, f"i{n}")
    url = f"{fake.api_url}/projects/group%2Fproj/issues"
    auth = {"PRIVATE-TOKEN": fake.token}
    r = requests.get(url, params={"per_page": 20, "page": 2, "state": "opened"}, headers=auth)
    h = r.headers
    assert (h["x-page"], h["x-per-page"], h["x-next-page"], h["x-prev-page"]) == (
        "2",
        "20",
        "3",
        "1",
    )
    assert (h["x-total"], h["x-total-pages"]) == ("45", "3")
    assert set(r.links) == {"prev", "next", "first", "last"}
    assert "state=opened" in r.links["next"]["url"] and "page=3" in r.links["next"]["url"]
    last = requests.get(url, params={"per_page": 20, "page": 3}, headers=auth)
    assert len(last.json()) == 5 and last.headers["x-next-page"] == ""
    assert "next" not in last.links
    beyond = requests.get(url, params={"per_page": 20, "page": 9}, headers=auth)
    assert beyond.json() == [] and beyond.headers["x-prev-page"] == ""
    capped = requests.get(url, params={"per_page": 500}, headers=auth)
    assert capped.headers["x-per-page"] == "100"
    assert "RateLimit-Remaining" in r.headers and "RateLimit-Reset" in r.headers


def test_issue_filters_and_ordering(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    fake.freeze_time("2024-05-01T10:00:00Z")
    old = fake.add_issue(PROJ, "old")
    fake.advance(3600)
    cut = fake.now()
    mid = fake.add_issue(PROJ, "mid", labels=["bug"])
    fake.advance(60)
    new = fake.add_issue(PROJ, "new", state="closed")
    project = gl.projects.get(PROJ)

    since = project.issues.list(updated_after=cut.isoformat(), get_all=True)
    assert [i.iid for i in since] == [new, mid]  # updated_after is inclusive (>=)
    opened = project.issues.list(state="opened", order_by="updated_at", sort="asc", get_all=True)
    assert [i.iid for i in opened] == [old, mid]
    assert [i.iid for i in project.issues.list(labels=["bug"], get_all=True)] == [mid]

    fake.advance(60)
    fake.edit_issue(PROJ, old, description="edited by a human")
    recent = project.issues.list(updated_after=(fake.now() - timedelta(seconds=1)).isoformat())
    assert [i.iid for i in recent] == [old]

    with pytest.raises(glexc.GitlabListError) as err:
        project.issues.list(order_by="bogus")
    assert err.value.response_code == 400
    with pytest.raises(glexc.GitlabListError):
        project.issues.list(updated_after="not-a-date")


# -- issues and labels -------------------------------------------------------------------


def test_labels_replace_add_remove(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    iid = fake.add_issue(PROJ, "model stolen", "weights exfiltrated", labels=["bug"])
    issue = gl.projects.get(PROJ).issues.get(iid)
    assert issue.labels == ["bug"]

    issue.labels = ["triage::needed", "threat/model-stealing", "bug"]
    issue.save()  # python-gitlab sends labels="triage::needed,threat/model-stealing,bug"
    assert issue.labels == ["bug", "threat/model-stealing", "triage::needed"]  # sorted

    issue.add_labels = "severity::high"
    issue.save()
    assert "severity::high" in issue.labels
    issue.remove_labels = "bug,not-there"  # removing an absent label is no error
    issue.save()
    assert issue.labels == ["severity::high", "threat/model-stealing", "triage::needed"]

    # save(**kwargs) sends them as query parameters; GitLab merges query and body alike
    issue.save(add_labels="area/llm")
    assert "area/llm" in fake.labels_of(PROJ, iid)
    assert "area/llm" in fake.project_labels(PROJ)  # auto-created on the project

    ref = f"gitlab:{PROJ}#{iid}"
    assert f"{ref}:+label threat/model-stealing" in fake.writes
    assert f"{ref}:-label bug" in fake.writes
    assert f"gitlab:{PROJ}:label+ triage::needed" in fake.writes
    assert not any("not-there" in w for w in fake.writes)

    before = len(fake.writes)
    gl.projects.get(PROJ, lazy=True).issues.update(iid, {"add_labels": "area/llm"})
    assert len(fake.writes) == before  # already there: no change, nothing recorded

    events = issue.resourcelabelevents.list(get_all=True)
    assert {(e.action, e.label["name"]) for e in events} >= {("remove", "bug")}


def test_scoped_labels_are_exclusive_only_when_licensed(fake: FakeGitLab) -> None:
    iid = fake.add_issue(PROJ, "x", labels=["severity::low"])
    gl = gitlab.Gitlab(fake.url, private_token=fake.token)
    issues = gl.projects.get(PROJ, lazy=True).issues
    assert issues.update(iid, {"add_labels": "severity::high"})["labels"] == [
        "severity::high",
        "severity::low",
    ]  # GitLab Free keeps both
    with FakeGitLab(scoped_labels=True) as premium:
        premium.add_project(PROJ)
        iid = premium.add_issue(PROJ, "x", labels=["severity::low", "bug"])
        pissues = (
            gitlab.Gitlab(premium.url, private_token=premium.token)
            .projects.get(PROJ, lazy=True)
            .issues
        )
        out = pissues.update(iid, {"add_labels": "severity::high"})
        assert out["labels"] == ["bug", "severity::high"]


def test_label_permissions(fake: FakeGitLab) -> None:
    fake.add_project("group/guarded", bot_access=ACCESS["guest"])
    theirs = fake.add_issue("group/guarded", "someone else's")
    gl = gitlab.Gitlab(fake.url, private_token=fake.token)
    issues = gl.projects.get("group/guarded", lazy=True).issues
    with pytest.raises(glexc.GitlabUpdateError) as err:
        issues.update(theirs, {"add_labels": "x"})
    assert err.value.response_code == 403
    mine = fake.add_issue("group/guarded", "bot's own", author="bugbar-bot")
    out = issues.update(mine, {"add_labels": "x", "title": "renamed"})
    assert out["labels"] == [] and out["title"] == "renamed"  # labels dropped silently


def test_project_labels_endpoint(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    project = gl.projects.get(PROJ)
    created = project.labels.create({"name": "threat/prompt-injection", "color": "#ff0000"})
    assert created.name == "threat/prompt-injection"
    with pytest.raises(glexc.GitlabCreateError) as err:
        project.labels.create({"name": "threat/prompt-injection", "color": "#ff0000"})
    assert err.value.response_code == 409
    fake.add_label("group", "org::wide")  # group label, inherited by the project
    names = [lb.name for lb in project.labels.list(get_all=True)]
    assert names == ["org::wide", "threat/prompt-injection"]


def test_confidential_update(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    iid = fake.add_issue(PROJ, "leak")
    issue = gl.projects.get(PROJ).issues.get(iid)
    before = issue.updated_at
    time.sleep(0.002)
    issue.confidential = True
    issue.save()
    assert issue.confidential is True and issue.updated_at > before
    assert f"gitlab:{PROJ}#{iid}:confidential true" in fake.writes
    system = [n for n in fake.notes(PROJ, iid) if n["system"]]
    assert system[-1]["body"] == "made the issue confidential"
    anon = gitlab.Gitlab(fake.url).projects.get(PROJ)
    with pytest.raises(glexc.GitlabGetError):
        anon.issues.get(iid)
    assert [i.iid for i in anon.issues.list(get_all=True)] == []


def test_issue_404s(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    with pytest.raises(glexc.GitlabGetError) as err:
        gl.projects.get("group/missing")
    assert (err.value.response_code, err.value.error_message) == (404, "404 Project Not Found")
    with pytest.raises(glexc.GitlabGetError) as err:
        gl.projects.get(PROJ, lazy=True).issues.get(999)
    assert err.value.error_message == "404 Not found"
    assert gl.projects.get(42).path_with_namespace == PROJ  # numeric id works too


# -- notes and emoji ---------------------------------------------------------------------


def test_notes_create_edit_list(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    iid = fake.add_issue(PROJ, "prompt injection")
    human_id = fake.add_note(PROJ, iid, "/triage threat/prompt-injection", author="carol")
    issue = gl.projects.get(PROJ).issues.get(iid)
    stamp = issue.updated_at

    time.sleep(0.002)
    note = issue.notes.create({"body": "bugbar: classified"})
    assert note.author["username"] == "bugbar-bot"
    assert "bot" not in note.author  # UserBasic: no bot flag on note authors
    assert gl.projects.get(PROJ).issues.get(iid).updated_at > stamp  # note touches issue

    note.body = "bugbar: reclassified"
    note.save()
    assert fake.notes(PROJ, iid)[-1]["body"] == "bugbar: reclassified"

    newest_first = [n.body for n in issue.notes.list(get_all=True)]
    assert newest_first[0] == "bugbar: reclassified"  # GitLab default sort is desc
    oldest_first = [n.body for n in issue.notes.list(sort="asc", get_all=True)]
    assert oldest_first == ["/triage threat/prompt-injection", "bugbar: reclassified"]
    ref = f"gitlab:{PROJ}#{iid}"
    assert fake.writes == [f"{ref}:note+ {note.id}", f"{ref}:note~ {note.id}"]

    human = issue.notes.get(human_id)
    human.body = "hijack"
    with pytest.raises(glexc.GitlabUpdateError) as err:
        human.save()  # only the author may edit a note
    assert err.value.response_code == 403


def test_award_emoji_on_note(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    iid = fake.add_issue(PROJ, "x")
    nid = fake.add_note(PROJ, iid, "/triage", author="carol")
    note = gl.projects.get(PROJ, lazy=True).issues.get(iid, lazy=True).notes.get(nid)
    award = note.awardemojis.create({"name": "thumbsup"})
    assert award.awardable_type == "Note" and award.user["username"] == "bugbar-bot"
    assert f"gitlab:{PROJ}#{iid}:award+ {nid} thumbsup" in fake.writes
    with pytest.raises(glexc.GitlabCreateError) as err:
        note.awardemojis.create({"name": "thumbsup"})
    assert err.value.response_code == 404  # GitLab answers 404 for a duplicate award
    assert [a.name for a in note.awardemojis.list(get_all=True)] == ["thumbsup"]


# -- members and users -------------------------------------------------------------------


def test_members_all_access_levels(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    fake.add_member(PROJ, "rita", "reporter")
    fake.add_member("group", "gus", "guest")  # inherited from the group
    fake.add_member("group", "dora", "guest")
    fake.add_member(PROJ, "dora", "maintainer")  # highest of direct/inherited wins
    fake.add_user("nobody")
    project = gl.projects.get(PROJ)

    def level(username: str) -> int:
        (user,) = gl.users.list(username=username)
        return int(project.members_all.get(user.id).access_level)

    assert level("rita") == 20
    assert level("gus") == 10
    assert level("dora") == 40
    (nobody,) = gl.users.list(username="NOBODY")  # username lookup ignores case
    with pytest.raises(glexc.GitlabGetError) as err:
        project.members_all.get(nobody.id)
    assert err.value.response_code == 404
    with pytest.raises(glexc.GitlabGetError):
        project.members.get(gl.users.list(username="gus")[0].id)  # not a direct member
    assert gl.users.list(username="ghost") == []
    assert "bot" not in gl.users.list(username="bugbar-bot")[0].attributes
    assert gl.users.get(fake.bot_user["id"]).bot is True


def test_group_projects_listing(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    fake.add_project("group/sub/deep", visibility="public")
    fake.add_project("group/hidden", visibility="private", bot_access=None)
    fake.add_project("other/proj", visibility="public")
    group = gl.groups.get("group")
    direct = {p.path_with_namespace for p in group.projects.list(get_all=True)}
    assert direct == {PROJ}
    nested = group.projects.list(include_subgroups=True, get_all=True)
    assert {p.path_with_namespace for p in nested} == {PROJ, "group/sub/deep"}
    assert gl.groups.get("group/sub").full_path == "group/sub"
    assert gl.projects.get(PROJ).permissions["project_access"]["access_level"] == 30


# -- faults and python-gitlab's own retry behaviour ----------------------------------------


def test_429_is_retried_by_python_gitlab(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    iid = fake.add_issue(PROJ, "x")
    fake.fail_next("GET", r"/issues/\d+$", 429, times=2)  # default Retry-After: 0
    assert gl.projects.get(PROJ, lazy=True).issues.get(iid).iid == iid
    assert fake.count("GET", r"/issues/\d+$") == 3
    assert [r.status for r in fake.requests][-3:] == [429, 429, 200]


def test_429_max_retries_and_obey_rate_limit(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    iid = fake.add_issue(PROJ, "x")
    issues = gl.projects.get(PROJ, lazy=True).issues
    fake.fail_next("GET", r"/issues/\d+$", 429, times=5)
    fake.clear_log()
    with pytest.raises(glexc.GitlabGetError) as err:
        issues.get(iid, max_retries=1)  # per call; gitlab.Gitlab() has no such option
    assert err.value.response_code == 429 and fake.count() == 2
    fake.clear_log()
    with pytest.raises(glexc.GitlabGetError):
        issues.get(iid, obey_rate_limit=False)
    assert fake.count() == 1
    fake.clear_faults()

    # Retry-After: 1 is honoured (python-gitlab sleeps int(Retry-After) seconds)
    fake.fail_next("GET", r"/issues/\d+$", 429, headers={"Retry-After": "1"})
    started = time.monotonic()
    issues.get(iid)
    assert time.monotonic() - started >= 0.95

    # no Retry-After and no RateLimit-Reset: exponential 0.1 * 2**n backoff
    fake.fail_next("GET", r"/issues/\d+$", 429, headers={}, body="Retry later\n", times=2)
    started = time.monotonic()
    issues.get(iid)
    assert 0.29 <= time.monotonic() - started < 0.9

    # a Retry-After that is an HTTP date crashes python-gitlab's int() parse
    fake.fail_next("GET", r"/issues/\d+$", 429, headers={"Retry-After": "Wed, 21 Oct 2099"})
    with pytest.raises(ValueError):
        issues.get(iid)


def test_5xx_needs_retry_transient_errors(fake: FakeGitLab, gl: gitlab.Gitlab) -> None:
    iid = fake.add_issue(PROJ, "x")
    issues = gl.projects.get(PROJ, lazy=True).issues
    fake.fail_next("GET", r"/issues/\d+$", 502)
    fake.clear_log()
    with pytest.raises(glexc.GitlabGetError) as err:
        issues.get(iid)
    assert err.value.response_code == 502 and b"GitLab is not responding" in (
        err.value.response_body
    )
    assert fake.count() == 1  # default: no retry on 5xx

    retrying = gitlab.Gitlab(fake.url, private_token=fake.token, retry_transient_errors=True)
    fake.fail_next("GET", r"/issues/\d+$", 500, times=2)
    fake.clear_log()
    assert retrying.projects.get(PROJ, lazy=True).issues.get(iid).iid == iid
    assert [r.status for r in fake.requests] == [500, 500, 200]

    fake.fail_next("PUT", r"/issues/\d+$", 500)
    fake.clear_log()
    retrying.projects.get(PROJ, lazy=True).issues.update(iid, {"add_labels": "x"})
    assert [r.status for r in fake.requests] == [500, 200]  # PUT is retried as well
    fake.fail_next(None, r"/issues/\d+$", 403)
    with pytest.raises(glexc.GitlabGetError) as err:
        retrying.projects.get(PROJ, lazy=True).issues.get(iid)
    assert err.value.error_message == "403 Forbidden"


def test_timeout_and_dropped_connection(fake: FakeGitLab) -> None:
    iid = fake.add_issue(PROJ, "x")
    quick = gitlab.Gitlab(fake.url, private_token=fake.token, timeout=0.2)
    issues = quick.projects.get(PROJ, lazy=True).issues
    fake.delay_next("PUT", r"/issues/\d+$", 0.5)
    with pytest.raises(requests.exceptions.Timeout):  # not wrapped by python-gitlab
        issues.update(iid, {"add_labels": "late"})
    deadline = time.monotonic() + 2
    while "late" not in fake.labels_of(PROJ, iid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "late" in fake.labels_of(PROJ, iid)  # the write landed although the client gave up

    fake.drop_next("GET", r"/issues/\d+$")
    with pytest.raises(requests.exceptions.ConnectionError):
        issues.get(iid)
    retrying = gitlab.Gitlab(
        fake.url, private_token=fake.token, timeout=0.2, retry_transient_errors=True
    )
    fake.drop_next("GET", r"/issues/\d+$")
    assert retrying.projects.get(PROJ, lazy=True).issues.get(iid).iid == iid


def test_note_creation_limit() -> None:
    # GitLab's notes_create limit answers 429 {"message": {"error": ...}} with no Retry-After.
    # With no RateLimit-Reset either, python-gitlab backs off 0.1 * 2**n s per retry.
    # (When RateLimit-Reset is present it sleeps until then instead: up to a minute.)
    with FakeGitLab(rate_limit=None, notes_per_minute=1) as f:
        f.add_project(PROJ, visibility="public")
        iid = f.add_issue(PROJ, "x")
        gl = gitlab.Gitlab(f.url, private_token=f.token)
        notes = gl.projects.get(PROJ, lazy=True).issues.get(iid, lazy=True).notes
        notes.create({"body": "one"})
        started = time.monotonic()
        with pytest.raises(glexc.GitlabCreateError) as err:
            notes.create({"body": "two"}, max_retries=1)
        assert time.monotonic() - started >= 0.09
        assert err.value.response_code == 429
        assert err.value.error_message == {
            "error": "This endpoint has been requested too many times. Try again later."
        }
        assert f.count("POST", "/notes$") == 3 and len(f.notes(PROJ, iid)) == 1


def test_api_throttle() -> None:
    with FakeGitLab(rate_limit=3) as f:
        auth = {"PRIVATE-TOKEN": f.token}
        for _ in range(3):
            ok = requests.get(f"{f.api_url}/user", headers=auth)
        assert ok.status_code == 200 and ok.headers["RateLimit-Remaining"] == "0"
        r = requests.get(f"{f.api_url}/user", headers=auth)
        assert r.status_code == 429 and r.text == "Retry later\n"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert r.headers["RateLimit-Name"] == "throttle_authenticated_api"
        gl = gitlab.Gitlab(f.url, private_token=f.token)
        with pytest.raises(glexc.GitlabAuthenticationError):
            gitlab.Gitlab(f.url, private_token="wrong").auth()  # anonymous bucket: still 401
        with pytest.raises(glexc.GitlabHttpError) as err:
            gl.http_get("/user", obey_rate_limit=False)
        assert err.value.response_code == 429


def test_concurrent_writes_are_safe(fake: FakeGitLab) -> None:
    iid = fake.add_issue(PROJ, "busy")

    def worker(n: int) -> None:
        client = gitlab.Gitlab(fake.url, private_token=fake.token)
        notes = client.projects.get(PROJ, lazy=True).issues.get(iid, lazy=True).notes
        for k in range(5):
            notes.create({"body": f"{n}-{k}"})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [n["id"] for n in fake.notes(PROJ, iid)]
    assert len(ids) == 40 == len(set(ids))
    assert fake.count("POST", r"/notes$") == 40
