"""Domain rules: status classes, stage moves, goal extraction and goal identity across polls."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from footyd.errors import MalformedPayload
from footyd.stages.rules import (
    GoalChange,
    GoalEvent,
    GoalRules,
    KnownGoal,
    MissingGoal,
    NewGoal,
    SeenGoal,
    StageName,
    classify_status,
    goal_events,
    minute_label,
    next_stage,
    reconcile,
    scorer_label,
)

HOME, AWAY = 40, 42
KICKOFF = datetime(2026, 3, 14, 15, 0, tzinfo=UTC)
RULES = GoalRules(confirm_polls=2, cancel_polls=3, match_window_min=5)


# ---------------------------------------------------------------- status and stages


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (["TBD", "NS"], "scheduled"),
        (["1H", "HT", "2H", "ET", "BT", "P", "SUSP", "INT", "LIVE"], "live"),
        (["FT", "AET", "PEN", "CANC", "ABD", "AWD", "WO"], "finished"),
        (["PST"], "postponed"),
        (["XYZ", "", None], "unknown"),
    ],
)
def test_classify_status_covers_every_code(codes: list[str | None], expected: str) -> None:
    assert {classify_status(code) for code in codes} == {expected}


def test_classify_status_tolerates_case_and_whitespace() -> None:
    assert classify_status(" ft ") == "finished"
    assert classify_status("2h") == "live"


def stage(
    current: StageName,
    status: str | None,
    *,
    now: datetime,
    terminal_since: datetime | None = None,
    goals_all_terminal: bool = True,
) -> str | None:
    return next_stage(
        stage=current,
        status_short=status,
        kickoff=KICKOFF,
        now=now,
        activate_before_s=300,
        terminal_since=terminal_since,
        goals_all_terminal=goals_all_terminal,
        complete_grace_s=600,
    )


def test_staging_activates_at_once_on_early_kickoff() -> None:
    hours_before = KICKOFF - timedelta(hours=2)
    assert stage("staging", "1H", now=hours_before) == "active"
    assert stage("staging", "LIVE", now=hours_before) == "active"


def test_staging_activates_activate_before_s_ahead_of_kickoff() -> None:
    assert stage("staging", "NS", now=KICKOFF - timedelta(seconds=301)) is None
    assert stage("staging", "NS", now=KICKOFF - timedelta(seconds=300)) == "active"
    # No live coverage: status stays NS after kickoff, the fixture still becomes active.
    assert stage("staging", "NS", now=KICKOFF + timedelta(hours=1)) == "active"


def test_staging_postponed_or_unknown_stays() -> None:
    assert stage("staging", "PST", now=KICKOFF) is None
    assert stage("staging", "XYZ", now=KICKOFF) is None
    assert stage("staging", None, now=KICKOFF) is None


def test_staging_cancelled_before_kickoff_completes_directly() -> None:
    assert stage("staging", "CANC", now=KICKOFF - timedelta(days=1)) == "completed"
    assert stage("staging", "WO", now=KICKOFF - timedelta(days=1)) == "completed"


def test_staging_played_and_finished_is_polled_before_completion() -> None:
    # A match that ended while staged (e.g. the daemon was down) still has goals to collect.
    assert stage("staging", "FT", now=KICKOFF + timedelta(hours=3)) == "active"
    assert stage("staging", "ABD", now=KICKOFF + timedelta(hours=1)) == "active"
    assert stage("staging", "CANC", now=KICKOFF, goals_all_terminal=False) == "active"


def test_active_postponed_or_rescheduled_goes_back_to_staging() -> None:
    assert stage("active", "PST", now=KICKOFF) == "staging"
    assert stage("active", "TBD", now=KICKOFF - timedelta(hours=1)) == "staging"
    assert stage("active", "NS", now=KICKOFF - timedelta(seconds=301)) == "staging"
    # Kickoff due or passed with no coverage: stay active, no back-and-forth with staging.
    assert stage("active", "NS", now=KICKOFF - timedelta(seconds=299)) is None
    assert stage("active", "TBD", now=KICKOFF + timedelta(minutes=5)) is None


def test_active_live_or_unknown_stays() -> None:
    assert stage("active", "2H", now=KICKOFF + timedelta(minutes=70)) is None
    assert stage("active", None, now=KICKOFF + timedelta(minutes=70)) is None


@pytest.mark.parametrize("status", ["FT", "AET", "PEN", "CANC", "ABD", "AWD", "WO"])
def test_active_terminal_completes_after_grace_when_goals_terminal(status: str) -> None:
    since = KICKOFF + timedelta(minutes=50)
    at_grace = since + timedelta(seconds=600)
    assert (
        stage("active", status, now=at_grace - timedelta(seconds=1), terminal_since=since) is None
    )
    assert stage("active", status, now=at_grace, terminal_since=since) == "completed"
    assert (
        stage("active", status, now=at_grace, terminal_since=since, goals_all_terminal=False)
        is None
    )
    assert stage("active", status, now=at_grace, terminal_since=None) is None


def test_completed_never_moves() -> None:
    for status in ["NS", "1H", "FT", "PST", None]:
        assert stage("completed", status, now=KICKOFF) is None


# ---------------------------------------------------------------- goal events


def ev(
    minute: int,
    team: int = HOME,
    *,
    extra: int | None = None,
    player: tuple[int | None, str | None] | None = (306, "M. Striker"),
    detail: str = "Normal Goal",
    kind: str = "Goal",
    comments: str | None = None,
    assist: str | None = None,
) -> dict[str, Any]:
    return {
        "time": {"elapsed": minute, "extra": extra},
        "team": {"id": team, "name": "Home FC" if team == HOME else "Away FC"},
        "player": None if player is None else {"id": player[0], "name": player[1]},
        "assist": {"id": None, "name": assist},
        "type": kind,
        "detail": detail,
        "comments": comments,
    }


def parse(events: object) -> tuple[list[GoalEvent], list[str]]:
    return goal_events(events, home_id=HOME, away_id=AWAY)


def test_goal_events_filters_to_counted_goals() -> None:
    events = [
        ev(10, detail="Yellow Card", kind="Card"),
        ev(12, detail="Missed Penalty"),
        ev(20, detail="Substitution 1", kind="subst"),
        ev(23),
        ev(30, detail="Goal cancelled", kind="Var"),
        ev(55, AWAY, detail="Penalty", player=(500, "A. Taker")),
        ev(120, extra=1, detail="Penalty", comments="Penalty Shootout"),
        ev(120, AWAY, extra=2, detail="Missed Penalty", comments="Penalty Shootout"),
        ev(90, extra=3, kind="goal", detail="normal goal"),
    ]
    goals, problems = parse(events)
    assert problems == []
    assert [(g.minute, g.team_id, g.detail) for g in goals] == [
        (23, HOME, "Normal Goal"),
        (55, AWAY, "Penalty"),
        (93, HOME, "Normal Goal"),
    ]
    assert [g.index for g in goals] == [0, 1, 2]


def test_goal_events_own_goal_counts_for_benefiting_team_and_running_score() -> None:
    events = [
        ev(5),
        ev(17, AWAY, detail="Own Goal", player=(306, "M. Striker")),  # a home player, away's goal
        ev(44, AWAY, player=(501, "B. Forward"), assist="C. Mid"),
    ]
    goals, _ = parse(events)
    assert [(g.score_home, g.score_away) for g in goals] == [(1, 0), (1, 1), (1, 2)]
    own = goals[1]
    assert (own.team_id, own.team_name, own.detail) == (AWAY, "Away FC", "Own Goal")
    assert (own.scorer_id, own.scorer_name) == (306, "M. Striker")
    assert goals[2].assist_name == "C. Mid"
    assert goals[0].assist_name is None


@pytest.mark.parametrize(
    "player", [None, (None, None), (0, "Unknown"), (0, None), (77, ""), (77, "Unknown")]
)
def test_goal_events_unknown_scorer_is_none(player: tuple[int | None, str | None] | None) -> None:
    goals, problems = parse([ev(23, player=player)])
    assert problems == []
    assert (goals[0].scorer_id, goals[0].scorer_name) == (None, None)


def test_goal_events_reports_malformed_entries_and_keeps_good_ones() -> None:
    no_team = ev(30)
    no_team["team"] = {"name": "Home FC"}
    bad_elapsed = ev(31)
    bad_elapsed["time"]["elapsed"] = "31"
    bad_extra = ev(90, extra=2)
    bad_extra["time"]["extra"] = "two"
    events = [
        ev(10),
        "junk",
        no_team,
        bad_elapsed,
        ev(40, team=999),
        ev(41, detail="???"),
        bad_extra,
    ]
    goals, problems = parse(events)
    assert [g.minute for g in goals] == [10, 90]
    assert goals[1].extra is None and goals[1].score_home == 2
    assert problems == [
        "event 1: not an object (str)",
        "event 2: team.id missing",
        "event 3: time.elapsed '31' is not a minute",
        "event 4: team.id 999 is neither home nor away",
        "event 5: unknown goal detail '???'",
        "event 6: time.extra 'two' ignored",
    ]


@pytest.mark.parametrize("payload", [None, {}, "[]", 3])
def test_goal_events_rejects_non_list(payload: object) -> None:
    with pytest.raises(MalformedPayload):
        parse(payload)


def test_scorer_and_minute_labels() -> None:
    assert scorer_label(None) is None
    assert scorer_label("") is None
    assert scorer_label(" unknown ") is None
    assert scorer_label("  M. Striker ") == "M. Striker"
    assert minute_label(90, 2) == "90+2'"
    assert minute_label(44, None) == "44'"


# ---------------------------------------------------------------- reconcile


def obs(*events: dict[str, Any]) -> list[GoalEvent]:
    goals, problems = parse(list(events))
    assert problems == []
    return goals


def known(
    goal_id: str,
    minute: int,
    team: int = HOME,
    *,
    extra: int | None = None,
    scorer: tuple[int | None, str | None] = (306, "M. Striker"),
    detail: str = "Normal Goal",
    state: str = "confirmed",
    seen: tuple[str, ...] = ("p0", "p1"),
    missing: tuple[str, ...] = (),
    order: int = 0,
) -> KnownGoal:
    return KnownGoal(
        goal_id=goal_id,
        team_id=team,
        elapsed=minute,
        extra=extra,
        scorer_id=scorer[0],
        scorer_name=scorer[1],
        detail=detail,
        state=state,
        seen_poll_ids=frozenset(seen),
        missing_poll_ids=frozenset(missing),
        first_seen_order=order,
    )


def only(changes: list[GoalChange], kind: type) -> list[Any]:
    return [c for c in changes if isinstance(c, kind)]


def test_new_goal_is_reported_unconfirmed_unless_one_poll_suffices() -> None:
    changes = reconcile([], obs(ev(23)), "p1", RULES)
    assert len(changes) == 1 and isinstance(changes[0], NewGoal)
    assert changes[0].event.minute == 23 and not changes[0].confirmed
    changes = reconcile([], obs(ev(23)), "p1", replace(RULES, confirm_polls=1))
    assert isinstance(changes[0], NewGoal) and changes[0].confirmed


def test_confirm_at_exactly_confirm_polls_distinct_polls() -> None:
    pending = known("g1", 23, state="pending", seen=("p1",))
    again = reconcile([pending], obs(ev(23)), "p1", RULES)
    assert again == [
        SeenGoal("g1", obs(ev(23))[0], {}, seen_count=1, confirm=False, reappeared=False)
    ]
    second = reconcile([pending], obs(ev(23)), "p2", RULES)
    assert isinstance(second[0], SeenGoal)
    assert (second[0].seen_count, second[0].confirm) == (2, True)
    # Already confirmed: seen again, not confirmed again.
    confirmed = replace(pending, state="confirmed", seen_poll_ids=frozenset({"p1", "p2"}))
    third = reconcile([confirmed], obs(ev(23)), "p3", RULES)
    assert isinstance(third[0], SeenGoal) and not third[0].confirm and third[0].seen_count == 3


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ((44, None), (45, None), {"elapsed": (44, 45)}),
        ((90, 2), (90, 4), {"extra": (2, 4)}),
        ((45, 3), (46, None), {"elapsed": (45, 46), "extra": (3, None)}),
    ],
)
def test_minute_drift_keeps_goal_id(
    old: tuple[int, int | None], new: tuple[int, int | None], changed: dict[str, Any]
) -> None:
    goal = known("g1", old[0], extra=old[1])
    changes = reconcile([goal], obs(ev(new[0], extra=new[1])), "p2", RULES)
    assert len(changes) == 1 and isinstance(changes[0], SeenGoal)
    assert changes[0].goal_id == "g1" and changes[0].changes == changed


def test_unknown_scorer_later_named_keeps_goal_and_reports_changes() -> None:
    goal = known("g1", 23, scorer=(None, None))
    changes = reconcile([goal], obs(ev(23, player=(306, "M. Striker"))), "p3", RULES)
    assert len(changes) == 1 and isinstance(changes[0], SeenGoal)
    assert changes[0].goal_id == "g1"
    assert changes[0].changes == {
        "scorer_id": (None, 306),
        "scorer_name": (None, "M. Striker"),
    }


def test_recredit_to_own_goal_keeps_goal_id() -> None:
    goal = known("g1", 23, scorer=(306, "M. Striker"), seen=tuple(f"p{i}" for i in range(100)))
    later = obs(ev(23, detail="Own Goal", player=(900, "D. Defender")), ev(48))
    changes = reconcile([goal], later, "p101", RULES)
    seen = only(changes, SeenGoal)
    assert [s.goal_id for s in seen] == ["g1"]
    assert seen[0].changes == {
        "scorer_id": (306, 900),
        "scorer_name": ("M. Striker", "D. Defender"),
        "detail": ("Normal Goal", "Own Goal"),
    }
    assert [n.event.minute for n in only(changes, NewGoal)] == [48]
    assert only(changes, MissingGoal) == []


def test_two_close_goals_of_one_team_stay_distinct() -> None:
    goals = [
        known("a", 23, scorer=(306, "M. Striker"), order=0),
        known("b", 25, scorer=(307, "N. Winger"), order=1),
    ]
    events = obs(ev(23, player=(306, "M. Striker")), ev(25, player=(307, "N. Winger")))
    changes = reconcile(goals, events, "p5", RULES)
    assert [(c.goal_id, c.changes) for c in only(changes, SeenGoal)] == [("a", {}), ("b", {})]
    # Both drift by one minute and the second scorer is revealed: ids still follow order.
    goals[1] = replace(goals[1], scorer_id=None, scorer_name=None)
    events = obs(ev(24, player=(306, "M. Striker")), ev(26, player=(307, "N. Winger")))
    changes = reconcile(goals, events, "p6", RULES)
    assert [c.goal_id for c in only(changes, SeenGoal)] == ["a", "b"]
    assert len(changes) == 2


def test_same_minute_goals_use_first_seen_order() -> None:
    goals = [known("late", 30, scorer=(None, None), order=5), known("early", 30, order=1)]
    events = obs(ev(30), ev(30, player=(None, None)))
    changes = reconcile(goals, events, "p2", RULES)
    assert [(c.goal_id, c.event.index) for c in only(changes, SeenGoal)] == [
        ("early", 0),
        ("late", 1),
    ]


def test_var_cancellation_after_cancel_polls_missing_polls() -> None:
    goal = known("g1", 60, team=AWAY)
    state = goal
    counts = []
    for poll in ["p3", "p4", "p5"]:
        changes = reconcile([state], [], poll, RULES)
        assert len(changes) == 1 and isinstance(changes[0], MissingGoal)
        counts.append((changes[0].missing_count, changes[0].cancel))
        state = replace(state, missing_poll_ids=state.missing_poll_ids | {poll})
    assert counts == [(1, False), (2, False), (3, True)]
    # Re-running the same poll does not double-count.
    repeat = reconcile([state], [], "p5", RULES)
    assert repeat == [MissingGoal("g1", missing_count=3, cancel=True)]


def test_flicker_of_two_polls_does_not_cancel_and_reappearance_is_flagged() -> None:
    goal = known("g1", 60, missing=("p3", "p4"))
    missing = reconcile([goal], [], "p4", RULES)
    assert missing == [MissingGoal("g1", missing_count=2, cancel=False)]
    back = reconcile([goal], obs(ev(60)), "p5", RULES)
    assert len(back) == 1 and isinstance(back[0], SeenGoal)
    assert back[0].goal_id == "g1" and back[0].reappeared
    fresh = reconcile([replace(goal, missing_poll_ids=frozenset())], obs(ev(60)), "p6", RULES)
    assert isinstance(fresh[0], SeenGoal) and not fresh[0].reappeared


def test_cancelling_first_goal_keeps_second_on_its_own_id() -> None:
    goals = [
        known("first", 10, scorer=(306, "M. Striker"), order=0),
        known("second", 14, scorer=(307, "N. Winger"), order=1),
    ]
    changes = reconcile(goals, obs(ev(14, player=(307, "N. Winger"))), "p9", RULES)
    assert [(c.goal_id, c.changes) for c in only(changes, SeenGoal)] == [("second", {})]
    assert [c.goal_id for c in only(changes, MissingGoal)] == ["first"]
    # Unknown scorers: the nearer minute decides.
    goals = [replace(g, scorer_id=None, scorer_name=None) for g in goals]
    changes = reconcile(goals, obs(ev(14, player=(None, None))), "p9", RULES)
    assert [c.goal_id for c in only(changes, SeenGoal)] == ["second"]


def test_goals_outside_window_or_of_other_team_do_not_match() -> None:
    goal = known("g1", 20)
    changes = reconcile([goal], obs(ev(26), ev(20, AWAY)), "p2", RULES)
    assert len(only(changes, NewGoal)) == 2
    assert only(changes, MissingGoal) == [MissingGoal("g1", missing_count=1, cancel=False)]


def test_cancelled_known_goals_are_ignored() -> None:
    dead = known("dead", 23, state="cancelled", missing=("a", "b", "c"))
    changes = reconcile([dead], obs(ev(23)), "p9", RULES)
    assert len(changes) == 1 and isinstance(changes[0], NewGoal)
    assert reconcile([dead], [], "p9", RULES) == []


def test_missing_applies_to_every_live_state() -> None:
    goals = [
        known(state, 10 + i * 10, order=i)
        for i, state in enumerate(["pending", "confirmed", "searching", "done", "failed"])
    ]
    changes = reconcile(goals, [], "p1", RULES)
    assert [c.goal_id for c in only(changes, MissingGoal)] == [
        "pending",
        "confirmed",
        "searching",
        "done",
        "failed",
    ]


def test_goal_rules_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        GoalRules(confirm_polls=0)


def _random_known(rng: random.Random) -> list[KnownGoal]:
    goals = []
    for i in range(rng.randint(0, 8)):
        goals.append(
            known(
                f"g{i}",
                rng.randint(1, 90),
                rng.choice([HOME, AWAY]),
                extra=rng.choice([None, None, rng.randint(1, 6)]),
                scorer=rng.choice([(None, None), (100 + i, f"P{i}")]),
                detail=rng.choice(["Normal Goal", "Own Goal", "Penalty"]),
                state=rng.choice(["pending", "confirmed", "done"]),
                order=i,
            )
        )
    return goals


def _as_events(goals: list[KnownGoal], rng: random.Random | None = None) -> list[GoalEvent]:
    """Render goals as API events: in first-seen order, or shuffled when `rng` is given."""
    shuffled = list(goals)
    if rng is not None:
        rng.shuffle(shuffled)
    raw = [
        ev(
            g.elapsed,
            g.team_id,
            extra=g.extra,
            player=(g.scorer_id, g.scorer_name),
            detail=g.detail,
        )
        for g in shuffled
    ]
    return obs(*raw)


def test_property_known_set_against_its_own_events_is_all_seen_unchanged() -> None:
    rng = random.Random(20260314)
    for _ in range(500):
        goals = _random_known(rng)
        changes = reconcile(goals, _as_events(goals), "px", RULES)
        seen = only(changes, SeenGoal)
        assert len(seen) == len(changes) and all(c.changes == {} for c in seen)
        assert sorted(c.goal_id for c in seen) == sorted(g.goal_id for g in goals)


def test_property_reconcile_is_idempotent_and_a_bijection() -> None:
    rng = random.Random(7)
    for _ in range(500):
        goals = _random_known(rng)
        kept = [g for g in goals if rng.random() < 0.7]
        drifted = [replace(g, elapsed=max(0, g.elapsed + rng.randint(-2, 2))) for g in kept]
        extra = [known("new", rng.randint(1, 90), rng.choice([HOME, AWAY]))]
        extra = extra if rng.random() < 0.5 else []
        events = _as_events(drifted + extra, rng)
        first = reconcile(goals, events, "pz", RULES)
        assert first == reconcile(goals, events, "pz", RULES)
        seen_ids = [c.goal_id for c in first if isinstance(c, SeenGoal)]
        missing_ids = [c.goal_id for c in first if isinstance(c, MissingGoal)]
        assert len(seen_ids) == len(set(seen_ids))
        assert sorted(seen_ids + missing_ids) == sorted(g.goal_id for g in goals)
        # Every event is reported exactly once, as seen or new.
        reported = [c.event.index for c in first if not isinstance(c, MissingGoal)]
        assert sorted(reported) == [e.index for e in events]
        # Nothing is lost: each surviving goal (drift within the window) is matched.
        assert len(seen_ids) >= len(kept)
