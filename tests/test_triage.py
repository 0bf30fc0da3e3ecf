"""The triage handler end to end over the in-memory tracker and a real SQLite store."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.decide.classify import Classifier
from bot.decide.render import MARKER_PREFIX, parse_marker
from bot.decide.rules import RuleSet
from bot.handlers.triage import Triage, handoff_state, refusal_retry_due
from bot.providers.recording import DryRunTracker
from bot.store import IssueState, Store
from tests.fakes.tracker import MemoryTracker

STEAL = ("Model extraction of our production fraud detection model",
         "An attacker queried the scoring API and trained a substitute model.")


@pytest.fixture()
def triage(classifier: Classifier, store: Store) -> Triage:
    return Triage(classifier, store)


def _bot_comments(tracker: MemoryTracker, ref) -> list:
    return [c for c in tracker.comments(ref) if MARKER_PREFIX in c.body]


def test_new_threat_gets_labels_and_one_comment(triage: Triage, tracker: MemoryTracker) -> None:
    ref = tracker.add_issue("o/r", 1, *STEAL, labels=("bug",))
    result = triage.run(tracker, ref)
    assert result.outcome == "triaged"
    assert set(tracker.labels(ref)) == {"bug", "threat/model-stealing", "severity/critical",
                                        "route/ssirp"}
    assert len(_bot_comments(tracker, ref)) == 1


def test_redelivery_writes_nothing(triage: Triage, tracker: MemoryTracker) -> None:
    ref = tracker.add_issue("o/r", 1, *STEAL)
    triage.run(tracker, ref)
    before = list(tracker.writes)
    assert triage.run(tracker, ref).outcome == "unchanged"
    assert tracker.writes == before


def test_human_removed_label_stays_removed(triage: Triage, tracker: MemoryTracker) -> None:
    ref = tracker.add_issue("o/r", 1, *STEAL)
    triage.run(tracker, ref)
    tracker.remove_label(ref, "route/ssirp")  # a maintainer takes it off
    tracker.edit(ref, body=STEAL[1] + " More details.")
    triage.run(tracker, ref)
    assert "route/ssirp" not in tracker.labels(ref)
    assert "threat/model-stealing" in tracker.labels(ref)


def test_edit_to_no_match_removes_labels_and_says_so(triage: Triage,
                                                     tracker: MemoryTracker) -> None:
    ref = tracker.add_issue("o/r", 1, *STEAL, labels=("bug",))
    triage.run(tracker, ref)
    tracker.edit(ref, title="Slow dashboard", body="The page takes 10 s to load.")
    assert triage.run(tracker, ref).outcome == "triaged"
    assert tracker.labels(ref) == ("bug",)
    comments = _bot_comments(tracker, ref)
    assert len(comments) == 1 and "no longer matches" in comments[0].body


def test_decision_change_edits_the_same_comment(triage: Triage, tracker: MemoryTracker) -> None:
    ref = tracker.add_issue("o/r", 1, "Model extraction via the API", "substitute model")
    triage.run(tracker, ref)
    first = _bot_comments(tracker, ref)[0]
    tracker.edit(ref, body="substitute model of our fraud detection model in production")
    triage.run(tracker, ref)
    comments = _bot_comments(tracker, ref)
    assert [c.id for c in comments] == [first.id]
    assert "severity/critical" in tracker.labels(ref)
    assert any(w.endswith(f"comment~ {first.id}") for w in tracker.writes)


def test_opt_out_and_pull_requests_left_alone(triage: Triage, tracker: MemoryTracker) -> None:
    a = tracker.add_issue("o/r", 1, *STEAL, labels=("bugbar:ignore",))
    b = tracker.add_issue("o/r", 2, *STEAL, pull_request=True)
    assert triage.run(tracker, a).outcome == "opted-out"
    assert triage.run(tracker, b).outcome == "skipped-pull-request"
    assert tracker.writes == []


def test_not_a_threat_stays_quiet(triage: Triage, tracker: MemoryTracker) -> None:
    ref = tracker.add_issue("o/r", 1, "CUDA OOM on batch 64", "traceback")
    assert triage.run(tracker, ref).outcome == "unchanged"
    assert tracker.writes == []


def test_dry_run_records_and_writes_nothing(classifier: Classifier, store: Store,
                                            tracker: MemoryTracker) -> None:
    ref = tracker.add_issue("o/r", 1, *STEAL)
    dry = DryRunTracker(tracker)
    result = Triage(classifier, store, dry_run=True).run(dry, ref, delivery_id="d1")
    assert result.outcome == "dry-run"
    assert tracker.writes == []
    assert store.recent_decisions(key=str(ref))[0].dry_run is True
    assert store.get_issue_state(str(ref)) is None


def test_store_lost_human_override_survives_via_marker(classifier: Classifier, tmp_path,
                                                       tracker: MemoryTracker) -> None:
    ref = tracker.add_issue("o/r", 1, *STEAL)
    first = Store(tmp_path / "a.db")
    state = first.update_issue_state(str(ref), lambda s: s.overrides.update(
        {"category": "membership-inference"}))
    assert state.overrides
    Triage(classifier, first).run(tracker, ref)
    assert "threat/membership-inference" in tracker.labels(ref)
    fresh = Store(tmp_path / "b.db")  # the store is gone; the marker remembers
    tracker.edit(ref, body=STEAL[1] + " again")
    Triage(classifier, fresh).run(tracker, ref)
    assert "threat/membership-inference" in tracker.labels(ref)
    assert "threat/model-stealing" not in tracker.labels(ref)
    assert fresh.get_issue_state(str(ref)).overrides == {"category": "membership-inference"}


def test_protect_and_escalate_once(classifier: Classifier, store: Store,
                                   tracker: MemoryTracker) -> None:
    tracker.protect_result = "confidential"
    tracker.escalate_result = "SEC-1"
    ref = tracker.add_issue("o/r", 1, *STEAL)
    triage = Triage(classifier, store)
    triage.run(tracker, ref)
    tracker.edit(ref, body=STEAL[1] + " update")
    triage.run(tracker, ref)
    assert tracker.writes.count(f"{ref}:protect") == 1
    assert tracker.writes.count(f"{ref}:escalate") == 1


def test_bot_labels_are_not_evidence(triage: Triage, tracker: MemoryTracker,
                                     ruleset: RuleSet) -> None:
    # The bot applied threat/model-stealing; the text then stops being a threat: its own label
    # must not keep the category alive.
    ref = tracker.add_issue("o/r", 1, *STEAL)
    triage.run(tracker, ref)
    assert "threat/model-stealing" in tracker.labels(ref)
    tracker.edit(ref, title="Slow dashboard", body="The page takes 10 s to load.")
    assert triage.run(tracker, ref).decision.threats == ()
    assert "threat/model-stealing" not in tracker.labels(ref)


def test_a_threat_label_a_person_set_is_their_decision(triage: Triage,
                                                       tracker: MemoryTracker) -> None:
    # Nothing in the text; a maintainer labelled it. The bot keeps the label, takes the
    # category (low end of the seed range: no cue), and does not store it as an override.
    ref = tracker.add_issue("o/r", 1, "Report from the security mailbox",
                            "Details are in the private report.",
                            labels=("threat/model-stealing",))
    result = triage.run(tracker, ref)
    assert result.decision is not None
    assert [t.category for t in result.decision.threats] == ["model-stealing"]
    assert result.decision.severity is not None
    assert result.decision.severity.label == "important"
    assert "threat/model-stealing" in tracker.labels(ref)
    state = triage.store.get_issue_state(str(ref))
    assert state is not None and "category" not in state.overrides
    # The person's category wins over what the text alone would say.
    tracker.edit(ref, body="Someone poisoned the training data of the spam classifier.")
    result = triage.run(tracker, ref)
    assert result.decision is not None
    assert [t.category for t in result.decision.threats] == ["model-stealing"]
    assert "threat/model-stealing" in tracker.labels(ref)


def test_without_a_store_the_marker_remembers_human_removals(classifier: Classifier,
                                                             tmp_path,
                                                             tracker: MemoryTracker) -> None:
    # GitHub Actions mode: every run starts with an empty store.
    ref = tracker.add_issue("o/r", 1, *STEAL)
    Triage(classifier, Store(tmp_path / "run1.db")).run(tracker, ref)
    tracker.remove_label(ref, "severity/critical")
    tracker.edit(ref, body=STEAL[1] + " (edited)")
    Triage(classifier, Store(tmp_path / "run2.db")).run(tracker, ref)
    assert "severity/critical" not in tracker.labels(ref)
    assert "threat/model-stealing" in tracker.labels(ref)


def test_a_refused_protect_step_is_asked_for_in_the_comment_once(
        classifier: Classifier, store: Store, tracker: MemoryTracker,
        caplog: pytest.LogCaptureFixture) -> None:
    tracker.refuse_protect = "Jira answered 403"
    ref = tracker.add_issue("o/r", 1, *STEAL)
    triage = Triage(classifier, store)
    first = triage.run(tracker, ref)
    assert first.outcome == "triaged" and first.handoff is not None
    assert first.handoff.refused == "Jira answered 403"
    (comment,) = tracker.comments(ref)
    assert "Jira answered 403" in comment.body and "make the issue confidential" in comment.body
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1
    tracker.edit(ref, body=STEAL[1] + " update")
    triage.run(tracker, ref)
    assert len(tracker.protect_requests) == 1  # never asked again
    assert len(tracker.comments(ref)) == 1


def test_a_protect_step_that_writes_nothing_is_not_counted(
        classifier: Classifier, store: Store, tracker: MemoryTracker) -> None:
    ref = tracker.add_issue("o/r", 1, *STEAL)
    triage = Triage(classifier, store)
    assert triage.run(tracker, ref).outcome == "triaged"
    # Configured later; the tracker then does nothing for this issue (answers None).
    tracker.protect_result = ""
    tracker.refuse_protect = ""
    original = tracker.handoff
    tracker.handoff = lambda r, *, protect: replace(  # type: ignore[method-assign]
        original(r, protect=protect), protect="make confidential")
    result = triage.run(tracker, ref)
    assert result.plan is not None and result.plan.protect
    assert result.outcome == "unchanged" and result.writes == 0


class _Killed(BaseException):
    """Stands in for kill -9 at one write: nothing after it runs."""


@pytest.mark.parametrize("killed_at", [1, 2])
def test_killed_between_writes_then_rerun_ends_the_same(
        classifier: Classifier, store: Store, tracker: MemoryTracker, killed_at: int) -> None:
    """A run killed after its first or second write, then run again (the redelivery after a
    restart): the labels and exactly one comment, as if nothing had happened. With the comment
    written first, its marker would claim labels that never arrived, and the re-run would take
    them for labels a human removed."""
    ref = tracker.add_issue("o/r", 1, *STEAL)
    writes = [0]
    original_add, original_create = tracker.add_labels, tracker.create_comment

    def count() -> None:
        writes[0] += 1
        if writes[0] == killed_at:
            raise _Killed

    def add_labels(r: object, labels: list[str]) -> None:
        original_add(r, labels)  # type: ignore[arg-type]
        count()

    def create_comment(r: object, body: str) -> object:
        made = original_create(r, body)  # type: ignore[arg-type]
        count()
        return made

    tracker.add_labels = add_labels  # type: ignore[method-assign,assignment]
    tracker.create_comment = create_comment  # type: ignore[method-assign,assignment]
    with pytest.raises(_Killed):
        Triage(classifier, store).run(tracker, ref)
    tracker.add_labels, tracker.create_comment = original_add, original_create  # type: ignore[method-assign]
    assert Triage(classifier, store).run(tracker, ref).outcome in ("triaged", "unchanged")
    assert {"threat/model-stealing", "severity/critical", "route/ssirp"} <= set(tracker.labels(ref))
    assert len(_bot_comments(tracker, ref)) == 1


@pytest.mark.parametrize("store_kept", [True, False], ids=["store", "marker-only"])
def test_a_persons_threat_label_lasts_as_long_as_the_label(
        classifier: Classifier, tmp_path, tracker: MemoryTracker, store_kept: bool) -> None:
    """The category a person's label chose is not remembered as a /triage decision, neither
    by the store nor by the comment's marker: once the label is off, the text decides."""
    ref = tracker.add_issue("o/r", 1, "Report from the security mailbox",
                            "Details are in the private report.",
                            labels=("threat/model-stealing",))
    first = Store(tmp_path / "a.db")
    assert Triage(classifier, first).run(tracker, ref).outcome == "triaged"
    (comment,) = _bot_comments(tracker, ref)
    marker = parse_marker(comment.body)
    assert marker is not None and marker.overrides == {}
    tracker.remove_label(ref, "threat/model-stealing")  # the person takes it off again
    later = first if store_kept else Store(tmp_path / "b.db")
    result = Triage(classifier, later).run(tracker, ref)
    assert result.outcome == "triaged" and result.decision is not None
    assert result.decision.threats == ()
    assert tracker.labels(ref) == ()
    (comment,) = _bot_comments(tracker, ref)
    assert "no longer matches" in comment.body


def test_the_store_keeps_when_a_hand_off_step_was_refused() -> None:
    state = IssueState("github:o/r#1", extra={"protect_refused": "GitHub answered 403",
                                              "protect_refused_at": "1000.5"})
    assert handoff_state(state, None).refused_at == 1000.5
    assert not refusal_retry_due(state, 1000.5 + 3599)
    assert refusal_retry_due(state, 1000.5 + 3600)
    # An unreadable time counts as unknown (one try, which records it); done is never due.
    state.extra["protect_refused_at"] = "soon"
    assert handoff_state(state, None).refused_at == 0.0 and refusal_retry_due(state, 10_000.0)
    state.extra["protect_refused_at"] = "inf"
    assert refusal_retry_due(state, 10_000.0)
    state.extra["protected"] = "locked"
    assert not refusal_retry_due(state, 10_000.0)
    assert not refusal_retry_due(None, 10_000.0)
