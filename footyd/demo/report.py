"""What the demo reads back from MongoDB: live snapshots, the per-goal summary, the expectations."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from footyd import records
from footyd.clients.store import Store
from footyd.demo.script import DemoGoal, DemoScript
from footyd.stages.rules import minute_label

CLIP_FIELDS = {"goal_id": 1, "state": 1, "reason": 1, "kept_at": 1, "source_url": 1, "blob_key": 1,
               "source": 1}


def _aware(at: Any) -> datetime | None:
    if not isinstance(at, datetime):
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


@dataclass
class Snapshot:
    """Fixtures, goals and clips as stored right now."""

    fixtures: list[dict[str, Any]] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)
    clips: list[dict[str, Any]] = field(default_factory=list)

    def clips_of(self, goal_id: str) -> list[dict[str, Any]]:
        return [c for c in self.clips if c["goal_id"] == goal_id]

    def fixture(self, fixture_id: int) -> dict[str, Any] | None:
        return next((f for f in self.fixtures if f["_id"] == fixture_id), None)

    def day_over(self) -> bool:
        """Every fixture completed, every goal terminal and retracted if cancelled, no open clip."""
        if not self.fixtures or any(f.get("stage") != "completed" for f in self.fixtures):
            return False
        for g in self.goals:
            if g.get("state") not in ("done", "cancelled", "failed"):
                return False
            if g.get("state") == records.GOAL_CANCELLED and g.get("retracted_at") is None:
                return False
        return all(c["state"] in records.CLIP_TERMINAL for c in self.clips)


async def snapshot(store: Store) -> Snapshot:
    """Read the demo database (it is small: one find per collection)."""
    fixtures = await store.fixtures.find({}).sort("_id", 1).to_list(None)
    goals = await store.goals.find({}).sort([("fixture_id", 1), ("first_seen_at", 1)]).to_list(None)
    clips = await store.clips.find({}, CLIP_FIELDS).to_list(None)
    return Snapshot(fixtures, goals, clips)


def score_text(fx: dict[str, Any]) -> str:
    score = fx.get("score") or {}
    home, away = score.get("home"), score.get("away")
    return "-" if home is None else f"{home}-{away}"


def goal_label(g: dict[str, Any]) -> str:
    """`7002 51' D. Defender (Own Goal)`."""
    minute = minute_label(int(g.get("elapsed") or 0), g.get("extra"))
    who = g.get("scorer_name") or "(scorer not known yet)"
    detail = g.get("detail")
    tail = f" ({detail})" if detail and detail != "Normal Goal" else ""
    return f"{g['fixture_id']} {minute} {who}{tail}"


def clip_counts(clips: list[dict[str, Any]]) -> Counter[str]:
    return Counter(c["state"] for c in clips)


def found_text(clips: list[dict[str, Any]]) -> str:
    """`8`, or `8 (fake 7, reddit 1)` when the clips came from more than one source."""
    by_source = Counter(str(c.get("source")) for c in clips)
    if len(by_source) < 2:
        return str(len(clips))
    return f"{len(clips)} (" + ", ".join(f"{s} {n}" for s, n in sorted(by_source.items())) + ")"


def _short_reason(reason: str) -> str:
    """`filtered: aspect 0.56 (360x640) outside [1.6, 1.9]` -> `aspect 0.56`."""
    if reason.startswith("filtered: "):
        reason = reason.removeprefix("filtered: ").split(" (")[0].split(" outside")[0]
    else:
        reason = reason.split(":")[0]
    return reason[:32]


@dataclass(frozen=True)
class GoalRow:
    """One line of the summary table."""

    goal: DemoGoal | None  # None: a goal the script does not know (a difference by itself)
    label: str
    state: str
    detected_s: float | None  # seconds after the goal happened (sim time)
    confirmed_s: float | None
    cancelled_s: float | None
    candidates: int
    kept: int
    duplicates: int
    rejected: int
    failed: int
    retracted: int
    reasons: tuple[str, ...]  # rejected/failed reasons, "reason xN"
    first_kept_s: float | None
    doc: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    found: str = ""  # candidates, split by source when there are several


def goal_row(goal: DemoGoal | None, doc: dict[str, Any], clips: list[dict[str, Any]],
             happened_at: datetime | None) -> GoalRow:
    def since(at: Any) -> float | None:
        at = _aware(at)
        base = happened_at or _aware(doc.get("first_seen_at"))
        return None if at is None or base is None else round((at - base).total_seconds(), 1)

    counts = clip_counts(clips)
    why = Counter(_short_reason(str(c.get("reason") or "?")) for c in clips
                  if c["state"] in (records.CLIP_REJECTED, records.CLIP_FAILED))
    kept_times = [t for c in clips if (t := _aware(c.get("kept_at"))) is not None]
    return GoalRow(
        goal=goal, label=goal_label(doc), state=str(doc.get("state")),
        detected_s=since(doc.get("first_seen_at")), confirmed_s=since(doc.get("confirmed_at")),
        cancelled_s=since(doc.get("cancelled_at")), candidates=len(clips),
        kept=counts[records.CLIP_KEPT], duplicates=counts[records.CLIP_DUPLICATE],
        rejected=counts[records.CLIP_REJECTED], failed=counts[records.CLIP_FAILED],
        retracted=counts[records.CLIP_RETRACTED],
        reasons=tuple(f"{r} x{n}" if n > 1 else r for r, n in sorted(why.items())),
        first_kept_s=since(min(kept_times)) if kept_times else None, doc=doc,
        found=found_text(clips))


def match_goals(script: DemoScript, snap: Snapshot) -> list[tuple[DemoGoal | None, dict[str, Any]]]:
    """Pair stored goals with the script's: per fixture and credited team, in order first seen."""
    pairs: list[tuple[DemoGoal | None, dict[str, Any]]] = []
    for fx in script.fixtures:
        for side, team in (("home", fx.home), ("away", fx.away)):
            expected = script.team_goals(fx.id, side)
            stored = sorted((g for g in snap.goals
                             if g["fixture_id"] == fx.id and g.get("team_id") == team.id),
                            key=lambda g: (g.get("first_seen_order", 0), str(g["_id"])))
            for i, doc in enumerate(stored):
                pairs.append((expected[i] if i < len(expected) else None, doc))
    known = {fx.id for fx in script.fixtures}
    pairs.extend((None, g) for g in snap.goals if g["fixture_id"] not in known)
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(pairs, key=lambda p: (p[1]["fixture_id"], _aware(p[1].get("first_seen_at")) or epoch))


def _check_goal(row: GoalRow, label: str) -> list[str]:
    assert row.goal is not None
    exp, doc, out = row.goal.expect, row.doc, []
    history = doc.get("scorer_history") or []
    got: dict[str, Any] = {
        "state": row.state, "scorer": doc.get("scorer_name"), "detail": doc.get("detail"),
        "candidates": row.candidates, "kept": row.kept, "duplicates": row.duplicates,
        "rejected": row.rejected, "failed": row.failed,
        "scorer_changes": max(0, len(history) - 1),
    }
    for name, want in exp.model_dump().items():
        if want is not None and got[name] != want:
            out.append(f"{label}: {name} expected {want!r}, got {got[name]!r}")
    return out


def differences(script: DemoScript, snap: Snapshot, rows: list[GoalRow]) -> list[str]:
    """Everything that differs from the script's expectations (empty: the day went as written)."""
    out: list[str] = []
    for res in script.results:
        fx = snap.fixture(res.fixture)
        name = f"fixture {res.fixture}"
        if fx is None:
            out.append(f"{name}: never stored")
            continue
        score = fx.get("score") or {}
        got_score = (score.get("home"), score.get("away"))
        if fx.get("status") != res.status:
            out.append(f"{name}: status expected {res.status}, got {fx.get('status')}")
        if got_score != tuple(res.score):
            out.append(f"{name}: score expected {res.score[0]}-{res.score[1]}, got {score_text(fx)}")
        n_goals = sum(1 for g in snap.goals if g["fixture_id"] == res.fixture)
        if n_goals != res.goals:
            out.append(f"{name}: expected {res.goals} goal documents, got {n_goals}")
        if fx.get("stage") != "completed":
            out.append(f"{name}: stage expected completed, got {fx.get('stage')}")
    seen = set()
    for row in rows:
        if row.goal is None:
            out.append(f"{row.label}: a goal the script does not have")
            continue
        seen.add((row.goal.fixture, row.goal.key))
        out.extend(_check_goal(row, f"{row.goal.fixture}/{row.goal.key} ({row.label})"))
    out.extend(f"{g.fixture}/{g.key}: never detected" for g in script.goals
               if (g.fixture, g.key) not in seen)
    return out
