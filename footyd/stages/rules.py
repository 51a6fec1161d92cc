"""Pure domain rules: status to stage, which events are goals, goal identity and counting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from footyd.errors import MalformedPayload

StageName = Literal["staging", "active", "completed"]
StatusClass = Literal["scheduled", "live", "finished", "postponed", "unknown"]

SCHEDULED_STATUSES = frozenset({"TBD", "NS"})
LIVE_STATUSES = frozenset({"1H", "HT", "2H", "ET", "BT", "P", "SUSP", "INT", "LIVE"})
FINISHED_STATUSES = frozenset({"FT", "AET", "PEN", "CANC", "ABD", "AWD", "WO"})
POSTPONED_STATUSES = frozenset({"PST"})
# Terminal statuses under which no ball was kicked, so no goal event can exist.
UNPLAYED_STATUSES = frozenset({"CANC", "WO"})

GOAL_DETAILS = {"normal goal": "Normal Goal", "own goal": "Own Goal", "penalty": "Penalty"}
GOAL_STATES = frozenset({"pending", "confirmed", "searching", "done", "cancelled", "failed"})
TERMINAL_GOAL_STATES = frozenset({"done", "cancelled", "failed"})
_UNKNOWN_NAMES = frozenset({"", "unknown"})
# Sane ranges for event numbers (hostile input must never reach BSON's int64).
MAX_MINUTE = 300
MAX_EXTRA_MIN = 60
MAX_ID = 2**31 - 1
MAX_NAME_CHARS = 200
# Alignment costs are integers in quarter-minutes: a scorer mismatch weighs 1.5 minutes; the
# tie-breaks (detail differs, scorer known on one side only) together stay under one minute.
_MINUTE_COST = 4
_SCORER_MISMATCH_COST = 6
_TIE_BREAK_COST = 1


def _norm_status(short: str | None) -> str:
    return short.strip().upper() if isinstance(short, str) else ""


def classify_status(short: str | None) -> StatusClass:
    """Map an API-Football short status code to its class."""
    code = _norm_status(short)
    if code in SCHEDULED_STATUSES:
        return "scheduled"
    if code in LIVE_STATUSES:
        return "live"
    if code in FINISHED_STATUSES:
        return "finished"
    if code in POSTPONED_STATUSES:
        return "postponed"
    return "unknown"


def next_stage(
    *,
    stage: StageName,
    status_short: str | None,
    kickoff: datetime,
    now: datetime,
    activate_before_s: float,
    terminal_since: datetime | None,
    goals_all_terminal: bool,
    complete_grace_s: float,
) -> StageName | None:
    """Return the stage a fixture should move to now, or None to stay where it is."""
    if stage == "completed":
        return None
    status = classify_status(status_short)
    due = (kickoff - now).total_seconds() <= activate_before_s
    if stage == "staging":
        if status == "live":
            return "active"
        if status == "scheduled":
            return "active" if due else None
        if status == "finished":
            # A played match that ended while staged still has goals to find: poll it once.
            unplayed = _norm_status(status_short) in UNPLAYED_STATUSES
            return "completed" if unplayed and goals_all_terminal else "active"
        return None
    if status == "postponed":
        return "staging"
    if status == "scheduled":
        return None if due else "staging"
    if status == "finished":
        if not goals_all_terminal or terminal_since is None:
            return None
        return "completed" if (now - terminal_since).total_seconds() >= complete_grace_s else None
    return None


def scorer_label(scorer_name: str | None) -> str | None:
    """Return the stripped scorer name, or None when the API does not know it yet."""
    if not isinstance(scorer_name, str):
        return None
    name = scorer_name.strip()
    return None if name.lower() in _UNKNOWN_NAMES else name


def minute_label(elapsed: int, extra: int | None) -> str:
    """Format a match minute the way broadcasters and posts write it (90+2')."""
    return f"{elapsed}+{extra}'" if extra else f"{elapsed}'"


@dataclass(frozen=True)
class GoalEvent:
    """One counted goal from the API event list, in API order."""

    index: int
    team_id: int
    team_name: str
    elapsed: int
    extra: int | None
    scorer_id: int | None
    scorer_name: str | None
    assist_name: str | None
    detail: str
    score_home: int
    score_away: int

    @property
    def minute(self) -> int:
        """Absolute minute used for ordering and matching."""
        return self.elapsed + (self.extra or 0)


def _as_int(value: object, hi: int = MAX_ID) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= hi
    return value if ok else None  # type: ignore[return-value]


def _as_str(value: object) -> str | None:
    return value[:MAX_NAME_CHARS] if isinstance(value, str) else None


def _field(entry: dict[str, object], key: str) -> dict[str, object]:
    value = entry.get(key)
    return value if isinstance(value, dict) else {}


def _goal_detail(entry: dict[str, object]) -> str | None:
    """Return the canonical detail of a counted goal, "" for a non-goal, None if unknown."""
    kind, comments = _as_str(entry.get("type")), _as_str(entry.get("comments"))
    if kind is None or kind.strip().lower() != "goal":
        return ""
    if comments is not None and comments.strip().lower() == "penalty shootout":
        return ""
    detail = (_as_str(entry.get("detail")) or "").strip().lower()
    if detail == "missed penalty":
        return ""
    return GOAL_DETAILS.get(detail)


@dataclass(frozen=True)
class GoalRead:
    """The counted goals of one poll, notes on skipped entries, and how many were unreadable.

    An unreadable entry may be a goal: while there is one, no known goal may count as missing.
    """

    goals: list[GoalEvent]
    problems: list[str]
    unreadable: int


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, int | str | float | None) else type(value).__name__
    return text[:40]


def goal_events(events: object, *, home_id: int, away_id: int) -> tuple[list[GoalEvent], list[str]]:
    """Extract counted goals from a raw `events` list; return them and the skipped-entry notes."""
    read = read_goal_events(events, home_id=home_id, away_id=away_id)
    return read.goals, read.problems


def read_goal_events(events: object, *, home_id: int, away_id: int) -> GoalRead:
    """Extract counted goals from a raw `events` list; count the goal entries it cannot read."""
    if not isinstance(events, list):
        raise MalformedPayload(f"events is {type(events).__name__}, not a list")
    goals: list[GoalEvent] = []
    problems: list[str] = []
    unreadable = 0
    home = away = 0
    for pos, entry in enumerate(events):
        note = None
        if not isinstance(entry, dict):
            note = f"event {pos}: not an object ({type(entry).__name__})"
        elif (detail := _goal_detail(entry)) == "":
            continue
        elif detail is None:
            note = f"event {pos}: unknown goal detail {_short(entry.get('detail'))}"
        else:
            team, time = _field(entry, "team"), _field(entry, "time")
            team_id = _as_int(team.get("id"))
            elapsed = _as_int(time.get("elapsed"), MAX_MINUTE)
            if team_id is None:
                raw_id = team.get("id")
                note = (f"event {pos}: team.id missing" if raw_id is None
                        else f"event {pos}: team.id {_short(raw_id)} is not an id")
            elif team_id not in (home_id, away_id):
                note = f"event {pos}: team.id {team_id} is neither home nor away"
            elif elapsed is None:
                note = f"event {pos}: time.elapsed {_short(time.get('elapsed'))} is not a minute"
        if note is not None:
            problems.append(note)
            unreadable += 1
            continue
        assert isinstance(entry, dict) and detail and team_id is not None and elapsed is not None
        extra = _as_int(time.get("extra"), MAX_EXTRA_MIN)
        if extra is None and time.get("extra") is not None:
            # The goal is real even if its stoppage-time offset is garbled: keep it.
            problems.append(f"event {pos}: time.extra {_short(time.get('extra'))} ignored")
        player, assist = _field(entry, "player"), _field(entry, "assist")
        scorer_id = _as_int(player.get("id")) or None  # id 0 means unknown
        scorer_name = scorer_label(_as_str(player.get("name")))
        if scorer_name is None or scorer_id is None:
            scorer_id, scorer_name = None, None
        if team_id == home_id:
            home += 1
        else:
            away += 1
        goals.append(
            GoalEvent(
                index=len(goals),
                team_id=team_id,
                team_name=_as_str(team.get("name")) or "",
                elapsed=elapsed,
                extra=extra,
                scorer_id=scorer_id,
                scorer_name=scorer_name,
                assist_name=scorer_label(_as_str(assist.get("name"))),
                detail=detail,
                score_home=home,
                score_away=away,
            )
        )
    return GoalRead(goals, problems, unreadable)


@dataclass(frozen=True)
class KnownGoal:
    """What the store knows about one goal, as reconcile needs it."""

    goal_id: str
    team_id: int
    elapsed: int
    extra: int | None
    scorer_id: int | None
    scorer_name: str | None
    detail: str
    state: str
    seen_poll_ids: frozenset[str]
    missing_poll_ids: frozenset[str]
    first_seen_order: int = 0
    score: tuple[int | None, int | None] | None = None  # the running score stored with it

    @property
    def minute(self) -> int:
        """Absolute minute used for ordering and matching."""
        return self.elapsed + (self.extra or 0)


@dataclass(frozen=True)
class GoalRules:
    """Thresholds for confirming, cancelling and matching goals."""

    confirm_polls: int = 2
    cancel_polls: int = 3
    match_window_min: int = 5

    def __post_init__(self) -> None:
        if self.confirm_polls < 1 or self.cancel_polls < 1 or self.match_window_min < 0:
            raise ValueError(f"invalid goal rules: {self}")


@dataclass(frozen=True)
class NewGoal:
    """An observed event that matches no known goal."""

    event: GoalEvent
    confirmed: bool


@dataclass(frozen=True)
class SeenGoal:
    """An observed event matched to a known goal."""

    goal_id: str
    event: GoalEvent
    changes: dict[str, tuple[object, object]]
    seen_count: int
    confirm: bool
    reappeared: bool
    counting: bool = True  # still pending: every poll that sees it counts toward confirming
    score_changed: bool = True  # the running score differs (an earlier goal was cancelled)

    @property
    def needs_write(self) -> bool:
        """Whether this sighting changes anything stored (a settled, unchanged goal does not)."""
        return (bool(self.changes) or self.confirm or self.reappeared or self.counting
                or self.score_changed)


@dataclass(frozen=True)
class MissingGoal:
    """A known goal absent from this poll."""

    goal_id: str
    missing_count: int
    cancel: bool


GoalChange = NewGoal | SeenGoal | MissingGoal
_TRACKED_FIELDS = ("elapsed", "extra", "scorer_id", "scorer_name", "detail")


def _pair_cost(known: KnownGoal, event: GoalEvent) -> int:
    cost = _MINUTE_COST * abs(known.minute - event.minute)
    if known.scorer_id is not None and event.scorer_id is not None:
        if known.scorer_id != event.scorer_id:
            cost += _SCORER_MISMATCH_COST
    elif known.scorer_id != event.scorer_id:
        cost += _TIE_BREAK_COST
    if known.detail != event.detail:
        cost += _TIE_BREAK_COST
    return cost


def _align(
    known: Sequence[KnownGoal], observed: Sequence[GoalEvent], window_min: int
) -> list[tuple[int, int]]:
    """Order-preserving alignment: most pairs within the window, then least total cost."""
    n, m = len(known), len(observed)
    # best[i][j] = (pairs, -cost) for known[:i] against observed[:j]
    best = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            score = max(best[i - 1][j], best[i][j - 1])
            k, e = known[i - 1], observed[j - 1]
            if abs(k.minute - e.minute) <= window_min:
                pairs, neg_cost = best[i - 1][j - 1]
                score = max(score, (pairs + 1, neg_cost - _pair_cost(k, e)))
            best[i][j] = score
    pairs_out: list[tuple[int, int]] = []
    i, j = n, m
    while i > 0 and j > 0:
        k, e = known[i - 1], observed[j - 1]
        if abs(k.minute - e.minute) <= window_min:
            pairs, neg_cost = best[i - 1][j - 1]
            if best[i][j] == (pairs + 1, neg_cost - _pair_cost(k, e)):
                pairs_out.append((i - 1, j - 1))
                i, j = i - 1, j - 1
                continue
        if best[i][j] == best[i - 1][j]:
            i -= 1
        else:
            j -= 1
    pairs_out.reverse()
    return pairs_out


def reconcile(
    known: Sequence[KnownGoal], observed: Sequence[GoalEvent], poll_id: str, rules: GoalRules,
    *, hold_missing: bool = False,
) -> list[GoalChange]:
    """Diff one poll's goal events against the known goals; same inputs give the same result.

    `hold_missing`: the poll had an unreadable goal entry, so an unmatched known goal may be that
    entry: it is neither counted missing nor cancelled (its state is held).
    """
    live = [k for k in known if k.state != "cancelled"]
    teams = sorted({k.team_id for k in live} | {e.team_id for e in observed})
    matched: dict[int, KnownGoal] = {}  # observed index -> known goal
    unmatched_known: list[KnownGoal] = []
    for team_id in teams:
        team_known = sorted(
            (k for k in live if k.team_id == team_id), key=lambda k: (k.minute, k.first_seen_order)
        )
        team_obs = sorted(
            (e for e in observed if e.team_id == team_id), key=lambda e: (e.minute, e.index)
        )
        pairs = _align(team_known, team_obs, rules.match_window_min)
        paired_known = {ki for ki, _ in pairs}
        for ki, oi in pairs:
            matched[team_obs[oi].index] = team_known[ki]
        unmatched_known += [k for ki, k in enumerate(team_known) if ki not in paired_known]

    changes: list[GoalChange] = []
    for event in sorted(observed, key=lambda e: e.index):
        goal = matched.get(event.index)
        if goal is None:
            changes.append(NewGoal(event=event, confirmed=rules.confirm_polls <= 1))
            continue
        diff = {
            name: (getattr(goal, name), getattr(event, name))
            for name in _TRACKED_FIELDS
            if getattr(goal, name) != getattr(event, name)
        }
        seen_count = len(goal.seen_poll_ids | {poll_id})
        changes.append(
            SeenGoal(
                goal_id=goal.goal_id,
                event=event,
                changes=diff,
                seen_count=seen_count,
                confirm=goal.state == "pending" and seen_count >= rules.confirm_polls,
                reappeared=bool(goal.missing_poll_ids),
                counting=goal.state == "pending",
                score_changed=goal.score != (event.score_home, event.score_away),
            )
        )
    if hold_missing:
        return changes
    for goal in sorted(unmatched_known, key=lambda k: (k.minute, k.first_seen_order)):
        missing_count = len(goal.missing_poll_ids | {poll_id})
        changes.append(
            MissingGoal(
                goal_id=goal.goal_id,
                missing_count=missing_count,
                cancel=missing_count >= rules.cancel_polls,
            )
        )
    return changes
