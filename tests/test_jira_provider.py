"""JiraTracker against FakeJira (Cloud and Data Center) over real HTTP with the real ``jira``
library. Sleeps are injected (RetryPolicy ``sleep=``), so nothing here waits for real except
the two tests that make a request time out on purpose."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from jira import JIRA, JIRAError

from bot.decide.model import Access
from bot.decide.render import MARKER_PREFIX, parse_marker
from bot.events.model import IssueRef
from bot.providers.base import HandOffRefused, HandOffRequest, IssueGone
from bot.providers.jira import (
    PROPERTY_KEY,
    JiraTracker,
    LabelMap,
    classify_jira_failure,
    markdown_to_wiki,
    split_marker,
)
from bot.providers.retry import Action, RateLimited, RetryPolicy, WritePacer
from tests.fakes.jira_api import FakeJira

MARKER = "<!-- bugbar:v1 rules=2026.11.1 hash=0123abcd state=eyJ0IjogMX0= -->"
OTHER_MARKER = "<!-- bugbar:v1 rules=2026.11.1 hash=ffff0000 state=eyJ0IjogMX0= -->"
BODY = f"{MARKER}\n### bugbar triage: possible AI/ML threat\n\n**Category:** `model-stealing`\n"


class Recorder:
    """Collects what the tracker reports to metrics."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int | str]] = []
        self.remaining: list[float] = []

    def api_call(self, provider: str, method: str, status: int | str) -> None:
        self.calls.append((provider, method, status))

    def rate_limit(self, provider: str, remaining: float) -> None:
        self.remaining.append(remaining)


class Harness:
    """A FakeJira with PROJ/SEC, users, and a tracker factory with recorded sleeps."""

    def __init__(self, fake: FakeJira) -> None:
        self.fake = fake
        self.slept: list[float] = []
        self.metrics = Recorder()

    @property
    def cloud(self) -> bool:
        return self.fake.flavour == "cloud"

    def tracker(self, *, handle: str = "bot", sleep: Any = None, **kw: Any) -> JiraTracker:
        user = self.fake.user(handle)
        creds: dict[str, Any] = (
            {"email": user.email, "token": user.token} if self.cloud else {"pat": user.token}
        )
        policy = RetryPolicy(sleep=sleep or self.slept.append, clock=lambda: 1_000_000.0,
                             rand=lambda: 0.0, max_attempts=4)
        kw.setdefault("metrics", self.metrics)
        return JiraTracker(self.fake.url, policy=policy, pacer=WritePacer(0), **creds, **kw)

    def client(self, handle: str) -> JIRA:
        return JIRA(self.fake.url, max_retries=0, **self.fake.auth_kwargs(handle))

    def ref(self, key: str) -> IssueRef:
        project, _, number = key.rpartition("-")
        return IssueRef("jira", project, int(number), key)


@pytest.fixture(params=["cloud", "dc"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with FakeJira(request.param) as fake:
        fake.add_project("PROJ", name="Product")
        fake.add_project("SEC", name="Security")
        fake.add_security_level("PROJ", id="10001", name="Embargoed")
        for who in ("alice", "alicia", "bob"):
            fake.add_user(who)
            fake.grant(who, "PROJ", "BROWSE_PROJECTS", "ADD_COMMENTS")
        fake.grant("alice", "PROJ", "EDIT_ISSUES")
        fake.grant("alicia", "PROJ", "EDIT_ISSUES")
        yield Harness(fake)


# --------------------------------------------------------------------------- pure helpers
def test_label_map_round_trip_for_configured_templates() -> None:
    labels = LabelMap(("AI threat/{id}", "sev {level} level", "route/{route}"), ("no bot",))
    assert labels.to_jira("AI threat/model-stealing") == "AI_threat/model-stealing"
    for name in ("AI threat/model-stealing", "sev critical level", "route/ssirp", "no bot"):
        assert labels.from_jira(labels.to_jira(name)) == name
    # A human's label with underscores is not the bot's: left as it is.
    assert labels.from_jira("needs_info") == "needs_info"
    assert labels.from_jira("AI_threat/") == "AI_threat/"
    default = LabelMap()
    assert default.to_jira("threat/model-stealing") == "threat/model-stealing"
    assert default.from_jira("threat/model-stealing") == "threat/model-stealing"


def test_split_marker_and_markdown_to_wiki() -> None:
    marker, visible = split_marker(BODY)
    assert marker == MARKER and MARKER_PREFIX not in visible
    assert split_marker("no marker here") == (None, "no marker here")
    # A malformed marker-looking line is not a marker.
    assert split_marker("<!-- bugbar:v1 junk -->\nx")[0] is None
    wiki = markdown_to_wiki(
        "### Title\n**Bold:** `code **x**` and [docs](https://example.com/a)\n- item\n"
        "<sub>small print</sub>"
    )
    assert wiki.split("\n") == [
        "h3. Title",
        "*Bold:* {{code **x**}} and [docs|https://example.com/a]",
        "* item",
        "_small print_",
    ]


def _error(status: int | None, headers: dict[str, str] | None = None) -> JIRAError:
    response = requests.Response()
    response.status_code = status or 0
    response.headers.update(headers or {})
    return JIRAError("x", status_code=status, response=response)


@pytest.mark.parametrize(
    ("exc", "action", "seconds", "rate_limited"),
    [
        pytest.param(_error(429, {"Retry-After": "7"}), Action.RETRY_AFTER, 7.0, True, id="429"),
        pytest.param(_error(503, {"Retry-After": "2"}), Action.RETRY_AFTER, 2.0, True,
                     id="503-retry-after"),
        pytest.param(_error(429), Action.BACKOFF, 0.0, True, id="429-bare"),
        pytest.param(_error(503), Action.BACKOFF, 0.0, False, id="503"),
        pytest.param(_error(500), Action.BACKOFF, 0.0, False, id="500"),
        pytest.param(_error(400), Action.GIVE_UP, 0.0, False, id="400"),
        pytest.param(_error(403), Action.GIVE_UP, 0.0, False, id="403"),
        pytest.param(_error(404), Action.GIVE_UP, 0.0, False, id="404"),
        pytest.param(JIRAError("deprecated"), Action.GIVE_UP, 0.0, False, id="no-status"),
        pytest.param(requests.ReadTimeout(), Action.BACKOFF, 0.0, False, id="timeout"),
        pytest.param(requests.ConnectionError(), Action.BACKOFF, 0.0, False, id="reset"),
        pytest.param(ValueError(), Action.GIVE_UP, 0.0, False, id="bug"),
    ],
)
def test_classify_jira_failure(
    exc: BaseException, action: Action, seconds: float, rate_limited: bool
) -> None:
    failure = classify_jira_failure(exc)
    assert (failure.action, failure.seconds, failure.rate_limited) == (
        action, seconds, rate_limited)


def test_classify_rate_limit_reset_and_http_date() -> None:
    reset = classify_jira_failure(_error(429, {"X-RateLimit-Reset": "2026-01-01T00:05Z"}))
    assert reset.reset_at == datetime(2026, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    dated = classify_jira_failure(_error(429, {"Retry-After": "Thu, 01 Jan 2026 00:06:00 GMT"}))
    assert dated.reset_at == datetime(2026, 1, 1, 0, 6, tzinfo=UTC).timestamp()


def test_constructor_rejects_contradictory_credentials() -> None:
    policy, pacer = RetryPolicy(), WritePacer(0)
    with pytest.raises(ValueError):
        JiraTracker("https://x", pat="p", email="e", token="t", policy=policy, pacer=pacer)
    with pytest.raises(ValueError):
        JiraTracker("https://x", email="e", policy=policy, pacer=pacer)
    with pytest.raises(ValueError):
        JiraTracker("https://x", pat="p", jql_filter="x = 1 ORDER BY key", policy=policy,
                    pacer=pacer)


# --------------------------------------------------------------------------- issues & labels
def test_identity_and_get_issue(h: Harness) -> None:
    then = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    key = h.fake.add_issue("PROJ", "Model stolen", "via the API", labels=["ai"],
                           reporter="alice", updated=then)
    t = h.tracker()
    assert t.bot_identity() == h.fake.user_id("bot")
    snap = t.get_issue(h.ref(key))
    assert (snap.title, snap.body, snap.labels, snap.state) == (
        "Model stolen", "via the API", ("ai",), "open")
    assert snap.author == h.fake.user_id("alice") and snap.updated_at == then
    assert snap.confidential is False and snap.url == f"{h.fake.url}/browse/{key}"
    h.fake.edit_issue(key, security="10001", description=None)
    snap = t.get_issue(h.ref(key))
    assert snap.confidential is True and snap.body == ""
    assert ("jira", "GET", 200) in h.metrics.calls


def test_labels_add_and_remove(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s", labels=["ai"])
    t = h.tracker()
    ref = h.ref(key)
    t.add_labels(ref, ["threat/model-stealing", "severity/critical", "threat/model-stealing"])
    t.add_labels(ref, ["severity/critical"])  # already there: Jira changes nothing
    t.remove_label(ref, "severity/critical")
    t.remove_label(ref, "severity/critical")  # already gone: not an error
    t.add_labels(ref, [])
    assert h.fake.issue(key)["labels"] == ["ai", "threat/model-stealing"]
    assert h.fake.writes == [
        f"jira:{key}:+label threat/model-stealing",
        f"jira:{key}:+label severity/critical",
        f"jira:{key}:-label severity/critical",
    ]
    assert h.fake.count("PUT", rf"/issue/{key}$") == 4  # one request per call, none for []


def test_labels_with_spaces_are_mapped_reversibly(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s", labels=["needs_info"])
    t = h.tracker(label_map=LabelMap(("AI threat/{id}", "severity/{level}", "route/{route}")))
    ref = h.ref(key)
    t.add_labels(ref, ["AI threat/model-stealing"])
    assert h.fake.issue(key)["labels"] == ["needs_info", "AI_threat/model-stealing"]
    assert t.get_issue(ref).labels == ("needs_info", "AI threat/model-stealing")
    t.remove_label(ref, "AI threat/model-stealing")
    assert h.fake.issue(key)["labels"] == ["needs_info"]


# --------------------------------------------------------------------------- the bot comment
def test_bot_comment_lives_in_a_property_and_is_found_again(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")
    h.fake.add_comment(key, "first!", author="alice")
    t = h.tracker()
    ref = h.ref(key)
    assert t.find_bot_comment(ref) is None
    created = t.create_comment(ref, BODY)
    assert created.body == BODY and created.author == t.bot_identity() and created.author_is_bot
    stored = h.fake.issue(key)
    text = stored["comments"][1]["body"]
    assert MARKER_PREFIX not in text and "<!--" not in text
    assert text.startswith("h3. bugbar triage") and "{{model-stealing}}" in text
    assert stored["properties"][PROPERTY_KEY] == {
        "v": 1, "comment_id": created.id, "marker": MARKER}
    assert h.fake.writes == [f"jira:{key}:comment+ {created.id}", f"jira:{key}:property bugbar"]

    found = t.find_bot_comment(ref)
    assert found is not None and found.id == created.id and found.author_is_bot
    assert found.body == f"{MARKER}\n{text}"
    marker = parse_marker(found.body)
    assert marker is not None and marker.decision_hash == "0123abcd"
    assert h.fake.count("GET", rf"/issue/{key}\?.*properties=bugbar") == 2  # one GET per find

    h.fake.clear_log()
    new_body = BODY.replace(MARKER, OTHER_MARKER).replace("possible", "likely")
    t.edit_comment(ref, created.id, new_body)
    assert h.fake.writes == [f"jira:{key}:comment~ {created.id}", f"jira:{key}:property bugbar"]
    found = t.find_bot_comment(ref)
    assert found is not None and found.id == created.id
    assert found.body.startswith(OTHER_MARKER + "\nh3. bugbar triage: likely")
    # A fresh tracker (new process) finds the same comment: nothing is kept in memory.
    again = h.tracker().find_bot_comment(ref)
    assert again is not None and again.id == created.id


def test_comment_without_marker_writes_no_property(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")
    t = h.tracker()
    c = t.create_comment(h.ref(key), "Only maintainers can run `/triage severity`.")
    assert h.fake.writes == [f"jira:{key}:comment+ {c.id}"]
    assert h.fake.issue(key)["comments"][0]["body"] == (
        "Only maintainers can run {{/triage severity}}.")
    t.react(h.ref(key), c.id, "+1")  # no reactions in Jira: nothing happens
    assert len(h.fake.writes) == 1


def test_someone_elses_marker_is_never_the_bots(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")
    ref = h.ref(key)
    t = h.tracker()
    # A human pastes a marker and even the triage heading into a comment.
    human = h.fake.add_comment(key, f"{MARKER}\nh3. bugbar triage: fake", author="alice")
    assert t.find_bot_comment(ref) is None
    # A human who can edit the issue points the property at their own comment.
    alice = h.client("alice")
    alice.add_issue_property(key, PROPERTY_KEY, {"v": 1, "comment_id": human, "marker": MARKER})
    assert t.find_bot_comment(ref) is None
    # Garbage in the property is ignored as well.
    alice.add_issue_property(key, PROPERTY_KEY, {"comment_id": human, "marker": "nope"})
    assert t.find_bot_comment(ref) is None
    # The bot posts its own; the property now names it and it is found.
    mine = t.create_comment(ref, BODY)
    found = t.find_bot_comment(ref)
    assert found is not None and found.id == mine.id != human
    # The pointer is forged again: the bot's own comment is still the one (no marker, so the
    # handler edits it and rewrites the property rather than posting a second comment).
    alice.add_issue_property(key, PROPERTY_KEY, {"v": 1, "comment_id": human, "marker": MARKER})
    found = t.find_bot_comment(ref)
    assert found is not None and found.id == mine.id and parse_marker(found.body) is None


def test_deleted_bot_comment_is_not_found(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")
    t = h.tracker()
    c = t.create_comment(h.ref(key), BODY)
    h.client("bot").comment(key, c.id).delete()
    assert t.find_bot_comment(h.ref(key)) is None


def test_lost_property_falls_back_to_the_bots_own_triage_comment(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")
    ref = h.ref(key)
    t = h.tracker()
    h.fake.add_comment(key, "h3. bugbar triage: by a human", author="alice")
    # The property write fails for good after the comment was posted (a crash in between).
    h.fake.fail_next("PUT", r"/properties/bugbar", 403)
    with pytest.raises(JIRAError):
        t.create_comment(ref, BODY)
    posted = [c for c in h.fake.issue(key)["comments"] if c["author"] == "bot"]
    assert len(posted) == 1 and PROPERTY_KEY not in h.fake.issue(key)["properties"]
    found = t.find_bot_comment(ref)
    assert found is not None and found.id == posted[0]["id"]
    assert parse_marker(found.body) is None  # so the handler edits it, restoring the property
    t.edit_comment(ref, found.id, BODY)
    assert h.fake.issue(key)["properties"][PROPERTY_KEY]["comment_id"] == found.id


def test_comment_post_that_timed_out_is_not_repeated(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")

    waits: list[float] = []

    def wait_for_server(seconds: float) -> None:  # the retry waits until the slow POST landed
        waits.append(seconds)
        deadline = time.monotonic() + 3
        while not h.fake.issue(key)["comments"] and time.monotonic() < deadline:
            time.sleep(0.01)

    t = h.tracker(sleep=wait_for_server, timeout=0.2)
    t.bot_identity()
    h.fake.delay_next("POST", rf"/issue/{key}/comment", 0.4)
    c = t.create_comment(h.ref(key), BODY)
    assert waits[-1] == 10.0  # the settle wait before looking for the comment
    comments = h.fake.issue(key)["comments"]
    assert [x["id"] for x in comments] == [c.id]
    assert h.fake.count("POST", rf"/issue/{key}/comment") == 1
    assert h.fake.issue(key)["properties"][PROPERTY_KEY]["comment_id"] == c.id


def test_list_comments_pages(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")
    for i in range(130):
        h.fake.add_comment(key, f"c{i}", author="alice" if i % 2 else "bot")
    t = h.tracker()
    comments = list(t.list_comments(h.ref(key)))
    assert [c.body for c in comments] == [f"c{i}" for i in range(130)]
    assert comments[0].author_is_bot and not comments[1].author_is_bot
    assert comments[1].author == h.fake.user_id("alice")
    assert h.fake.count("GET", rf"/issue/{key}/comment\?") == 2


# --------------------------------------------------------------------------- permission
def test_permission_from_edit_issues(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")
    ref = h.ref(key)
    t = h.tracker()
    assert t.permission(ref, h.fake.user_id("alice")) is Access.TRIAGE
    assert t.permission(ref, h.fake.user_id("bob")) is Access.READ
    assert t.permission(ref, "no-such-user") is Access.READ
    assert t.permission(ref, "") is Access.NONE
    asked = [r for r in h.fake.requests if "/user/permission/search" in r.path]
    assert all(r.query["permissions"] == ["EDIT_ISSUES"] and r.query["projectKey"] == ["PROJ"]
               for r in asked)
    if h.cloud:
        assert asked[0].query["accountId"] == [h.fake.user_id("alice")]
    else:
        assert asked[0].query["username"] == ["alice"]
        # Webhooks give Data Center users by key (actor_id): resolved to the name.
        assert t.permission(ref, h.fake.user("alice").key) is Access.TRIAGE
        assert t.permission(ref, h.fake.user("bob").key) is Access.READ
        assert t.permission(ref, "JIRAUSER99999") is Access.READ
        # DC searches by prefix: "ali" matches alice and alicia, but is neither of them.
        assert t.permission(ref, "ali") is Access.READ
        h.fake.revoke("alice", "PROJ", "EDIT_ISSUES")
        assert t.permission(ref, "alice") is Access.READ  # alicia's EDIT does not count


def test_permission_failure_raises(h: Harness) -> None:
    ref = h.ref(h.fake.add_issue("PROJ", "s"))
    t = h.tracker()
    h.fake.revoke("bot", None, "ADMINISTER_PROJECTS")
    with pytest.raises(JIRAError) as err:
        t.permission(ref, h.fake.user_id("alice"))
    assert err.value.status_code == 403 and h.slept == []
    h.fake.grant("bot", None, "ADMINISTER_PROJECTS")
    h.fake.fail_next("GET", r"/user/permission/search", 503, headers={}, times=10)
    with pytest.raises(JIRAError):
        t.permission(ref, h.fake.user_id("alice"))
    assert len(h.slept) == 3  # max_attempts=4, then it raises: callers fail closed


# --------------------------------------------------------------------------- backlog listing
def test_list_issues_pages_over_120(h: Harness) -> None:
    base = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(120):
        when = base + timedelta(hours=i)
        h.fake.add_issue("PROJ", f"issue {i}", "text", labels=["ai"], created=when, updated=when)
    h.fake.add_issue("SEC", "other project")
    t = h.tracker()
    assert t.expand_scope("PROJ") == ["PROJ"]
    keys: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = t.list_issues("PROJ", state="open", since=None, cursor=cursor)
        keys += [s.ref.key for s in page.issues]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert keys == [f"PROJ-{n}" for n in range(1, 121)] and pages == 2
    first = t.list_issues("PROJ", state="open", since=None, cursor=None).issues[0]
    assert (first.ref, first.title, first.labels) == (
        IssueRef("jira", "PROJ", 1, "PROJ-1"), "issue 0", ("ai",))
    searches = [r for r in h.fake.requests if "/search" in r.path]
    assert all(r.query["jql"] == ['project = "PROJ" AND statusCategory != Done ORDER BY key ASC']
               for r in searches)
    if h.cloud:
        assert all(r.path.startswith("/rest/api/2/search/jql?") for r in searches)
        assert "nextPageToken" in searches[1].query
    else:
        assert all(r.path.startswith("/rest/api/2/search?") for r in searches)
        assert searches[1].query["startAt"] == ["100"]
    since = t.list_issues("PROJ", state="all", since=base + timedelta(hours=115), cursor=None)
    assert [s.ref.number for s in since.issues] == [116, 117, 118, 119, 120]
    assert since.next_cursor is None
    assert t.list_issues("PROJ", state="closed", since=None, cursor=None).issues == []
    with pytest.raises(ValueError):
        t.list_issues('PROJ" OR project = "SEC', state="all", since=None, cursor=None)


def test_state_is_part_of_the_query_so_pages_stay_full(h: Harness) -> None:
    for i in range(150):
        h.fake.add_issue("PROJ", f"old {i}", status="Done")
    for i in range(30):
        h.fake.add_issue("PROJ", f"new {i}")
    t = h.tracker()
    first = t.list_issues("PROJ", state="open", since=None, cursor=None)
    # Without the clause the first 100 keys are all closed and the page would come back empty.
    assert [s.title for s in first.issues] == [f"new {i}" for i in range(30)]
    assert first.next_cursor is None
    closed = t.list_issues("PROJ", state="closed", since=None, cursor=None)
    assert len(closed.issues) == 100 and all(s.state == "closed" for s in closed.issues)
    assert closed.next_cursor is not None


def test_list_issues_user_filter(h: Harness) -> None:
    h.fake.add_issue("PROJ", "a", labels=["wontfix"])
    h.fake.add_issue("PROJ", "b")
    t = h.tracker(jql_filter="labels is EMPTY")
    page = t.list_issues("PROJ", state="all", since=None, cursor=None)
    assert [s.ref.key for s in page.issues] == ["PROJ-2"]


# --------------------------------------------------------------------------- protect & escalate
def test_protect_sets_the_security_level(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")
    ref = h.ref(key)
    assert h.tracker().protect(ref, HandOffRequest()) is None and h.fake.writes == []
    level = h.tracker(security_level="10001").protect(ref, HandOffRequest())
    assert level == "security-level 10001"
    assert h.fake.writes == [f"jira:{key}:security 10001"]
    other = h.ref(h.fake.add_issue("PROJ", "t"))
    named = h.tracker(security_level="Embargoed").protect(other, HandOffRequest())
    assert named == "security-level Embargoed"
    assert h.fake.issue(other.key)["security"] == "10001"
    # A level outside the project's scheme: refused (not retried), the comment asks a human.
    with pytest.raises(HandOffRefused, match="Jira answered 400"):
        h.tracker(security_level="Nope").protect(ref, HandOffRequest())


def test_escalation_creates_one_linked_issue(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "Secret exploit details", "do not copy me", reporter="alice")
    ref = h.ref(key)
    assert h.tracker().escalate(ref, "x") is None
    t = h.tracker(security_project="SEC")
    summary = f"AI/ML threat needing incident response: {ref}"
    assert t.escalate(ref, summary) == "SEC-1"
    assert h.fake.writes == ["jira:SEC-1:created", f"jira:SEC-1:link {key}"]
    sec = h.fake.issue("SEC-1")
    assert sec["summary"] == summary and sec["description"] is None
    assert sec["links"] == [("SEC-1", "Relates", key)]
    # Redelivery, and a fresh tracker with no memory (lost store): no second issue.
    assert t.escalate(ref, summary) == "SEC-1"
    assert h.tracker(security_project="SEC").escalate(ref, summary) == "SEC-1"
    assert h.fake.issue_keys("SEC") == ["SEC-1"] and len(h.fake.writes) == 2


def test_escalation_links_separately_when_create_cannot(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")
    t = h.tracker(security_project="SEC")
    body = {"errorMessages": [],
            "errors": {"issuelinks": "Field 'issuelinks' cannot be set. It is not on the "
                                     "appropriate screen, or unknown."}}
    h.fake.fail_next("POST", r"/rest/api/2/issue$", 400, body=body)
    h.fake.fail_next("POST", r"/issueLink", 500)  # the link fails once: not a second issue
    assert t.escalate(h.ref(key), "summary") == "SEC-1"
    assert h.fake.issue_keys("SEC") == ["SEC-1"]
    assert h.fake.issue(key)["links"] == [("SEC-1", "Relates", key)]
    assert len(h.slept) == 1


def test_escalation_post_that_timed_out_is_not_repeated(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")

    def wait_for_server(_: float) -> None:
        deadline = time.monotonic() + 3
        while not h.fake.issue(key)["links"] and time.monotonic() < deadline:
            time.sleep(0.01)

    t = h.tracker(security_project="SEC", sleep=wait_for_server, timeout=0.2)
    t.bot_identity()
    h.fake.delay_next("POST", r"/rest/api/2/issue$", 0.4)
    assert t.escalate(h.ref(key), "summary") == "SEC-1"
    assert h.fake.issue_keys("SEC") == ["SEC-1"]


# --------------------------------------------------------------------------- retries
def test_429_is_retried_once_by_our_layer_only(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    library_slept: list[float] = []
    monkeypatch.setattr("jira.resilientsession.time.sleep", library_slept.append)
    key = h.fake.add_issue("PROJ", "s")
    t = h.tracker()
    t.bot_identity()
    h.fake.fail_next("GET", rf"/issue/{key}\?", 429, headers={"Retry-After": "7",
                                                              "X-RateLimit-Remaining": "0"})
    assert t.get_issue(h.ref(key)).title == "s"
    assert h.fake.count("GET", rf"/issue/{key}\?") == 2
    assert h.slept == [7.0] and library_slept == []
    assert ("jira", "GET", 429) in h.metrics.calls and h.metrics.remaining == [0.0]


def test_4xx_is_not_retried(h: Harness) -> None:
    t = h.tracker()
    # A 404 on an issue of a readable project: gone (Jira does not tell "deleted" from "never
    # existed"), a definite answer that is not retried either.
    with pytest.raises(IssueGone) as err:
        t.get_issue(IssueRef("jira", "PROJ", 99, "PROJ-99"))
    assert isinstance(err.value.__cause__, JIRAError) and err.value.__cause__.status_code == 404
    key = h.fake.add_issue("PROJ", "s")
    h.fake.fail_next("PUT", rf"/issue/{key}$", 400)
    with pytest.raises(JIRAError):
        t.add_labels(h.ref(key), ["x"])
    assert h.fake.count("GET", r"/issue/PROJ-99") == 1
    assert h.fake.count("PUT", rf"/issue/{key}$") == 1 and h.slept == []


def test_5xx_and_dropped_connections_back_off(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")
    t = h.tracker()
    h.fake.fail_next("PUT", rf"/issue/{key}$", 502)
    h.fake.reset_next("PUT", rf"/issue/{key}$")
    t.add_labels(h.ref(key), ["x"])
    assert h.fake.issue(key)["labels"] == ["x"]
    assert h.slept == [1.0, 2.0]  # base 1 s, doubling (jitter injected as 0)
    assert ("jira", "PUT", 502) in h.metrics.calls and ("jira", "PUT", "error") in h.metrics.calls


def test_rate_limit_outlasting_the_policy_raises_rate_limited(h: Harness) -> None:
    key = h.fake.add_issue("PROJ", "s")
    t = h.tracker()
    h.fake.fail_next("GET", rf"/issue/{key}\?", 429, headers={}, times=4)
    with pytest.raises(RateLimited):
        t.get_issue(h.ref(key))
    assert t.rate_limit_remaining() is None
    h.fake.fail_next("GET", rf"/issue/{key}\?", 429, headers={
        "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2026-01-01T00:05Z"})
    with pytest.raises(RateLimited) as err:  # the reset is beyond max_wait: no waiting at all
        t.get_issue(h.ref(key))
    assert h.slept == [5.0, 10.0, 20.0]
    reset = datetime(2026, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    assert t.rate_limit_remaining() == 0.0 and t.rate_limit_reset() == reset
    assert err.value.reset_at >= reset
    t.get_issue(h.ref(key))  # an answer without the headers: no limit in force any more
    assert t.rate_limit_remaining() is None and t.rate_limit_reset() is None
    assert h.slept == [5.0, 10.0, 20.0]  # no Retry-After: back off from 5 s


def test_server_info_is_retried_too(h: Harness) -> None:
    h.fake.fail_next("GET", r"/serverInfo", 503)
    t = h.tracker()
    assert t.bot_identity() == h.fake.user_id("bot")
    assert h.slept == [1.0] and t.is_cloud is h.cloud


def test_logs_carry_no_credentials_and_no_issue_text(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    key = h.fake.add_issue("PROJ", "s", "secret exploit recipe")
    t = h.tracker()
    caplog.set_level("DEBUG")
    h.fake.fail_next("GET", rf"/issue/{key}\?", 429, headers={"Retry-After": "1"})
    t.get_issue(h.ref(key))
    h.fake.fail_next("GET", rf"/issue/{key}\?", 403)
    with pytest.raises(JIRAError) as err:
        t.get_issue(h.ref(key))
    token = h.fake.user("bot").token
    shown = caplog.text + str(err.value) + repr(err.value.__dict__.get("headers"))
    assert token not in shown and "secret exploit recipe" not in shown
    assert "retrying" in caplog.text


def test_settle_waits_follow_only_ambiguous_failures(h: Harness) -> None:
    """A 502, then a 429 with Retry-After: a settle wait after the 502 only."""
    key = h.fake.add_issue("PROJ", "s")
    t = h.tracker()
    t.bot_identity()
    h.fake.fail_next("POST", rf"/issue/{key}/comment", 502)
    h.fake.fail_next("POST", rf"/issue/{key}/comment", 429, headers={"Retry-After": "4"})
    c = t.create_comment(h.ref(key), BODY)
    assert [x["id"] for x in h.fake.issue(key)["comments"]] == [c.id]
    assert 10.0 in h.slept and h.slept.count(10.0) == 1  # one settle, after the 502
    assert h.slept[-1] == 4.0  # the 429's Retry-After, then straight on


# --------------------------------------------------------------------------- deleted issues


def test_deleted_issue_is_gone_after_one_project_check(h: Harness) -> None:
    """Jira's 404 "Issue does not exist or you do not have permission to see it." on an issue
    of a project the bot can still read (one more GET, only on this path) is IssueGone."""
    key = h.fake.add_issue("PROJ", "spam", "buy now")
    h.fake.delete_issue(key)
    with pytest.raises(IssueGone) as err:
        h.tracker().get_issue(h.ref(key))
    assert err.value.ref == h.ref(key)
    assert h.fake.count("GET", rf"/issue/{key}(\?|$)") == 1
    assert h.fake.count("GET", r"/project/PROJ$") == 1 and h.slept == []


def test_no_access_to_the_project_is_not_gone(h: Harness) -> None:
    """A project the bot may not browse (or that does not exist) keeps the 404 an error; a
    401 asks nothing more."""
    key = h.fake.add_issue("PROJ", "title", "body")
    t = h.tracker()
    h.fake.revoke("bot", None, "BROWSE_PROJECTS")
    for missing in (h.ref(key), h.ref("NOPE-1")):
        with pytest.raises(JIRAError) as err:
            t.get_issue(missing)
        assert err.value.status_code == 404 and not isinstance(err.value, IssueGone)
        assert "Issue does not exist" in str(err.value.text)
    assert h.fake.count("GET", r"/project/[A-Z]+$") == 2
    h.fake.grant("bot", None, "BROWSE_PROJECTS")
    h.fake.fail_next("GET", rf"/issue/{key}(\?|$)", 401, headers={})
    with pytest.raises(JIRAError) as err401:
        t.get_issue(h.ref(key))
    assert err401.value.status_code == 401
    assert h.fake.count("GET", r"/project/[A-Z]+$") == 2 and h.slept == []
