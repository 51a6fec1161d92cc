"""What the demo shows: a live view (rich, on a TTY) or plain lines, and the closing summary."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from footyd import records
from footyd.demo.report import GoalRow, Snapshot, clip_counts, found_text, goal_label, score_text

SUMMARY_COLUMNS = ("goal", "state", "detected", "confirmed", "cancelled", "found", "kept", "dups",
                   "rejected/failed (why)", "to 1st kept")


class Display(Protocol):
    def update(self, snap: Snapshot) -> None: ...

    def close(self) -> None: ...


def _secs(value: float | None) -> str:
    return "-" if value is None else f"+{value:.1f}s"


def _minute(fx: dict[str, Any]) -> str:
    status = fx.get("status") or "?"
    elapsed = fx.get("elapsed")
    return f"{status} {elapsed}'" if elapsed is not None and status not in ("FT", "AET", "PEN") \
        else str(status)


def _teams(fx: dict[str, Any]) -> str:
    return f"{(fx.get('home') or {}).get('name', '?')} v {(fx.get('away') or {}).get('name', '?')}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width text table (plain output, logs and the test's assertions read it)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out)


def summary_rows(rows: Sequence[GoalRow]) -> list[list[str]]:
    out = []
    for r in rows:
        why = ", ".join(r.reasons) if r.reasons else ""
        bad = f"{r.rejected}/{r.failed}" + (f" ({why})" if why else "")
        state = r.state + (f", {r.retracted} retracted" if r.retracted else "")
        out.append([r.label, state, _secs(r.detected_s), _secs(r.confirmed_s),
                    _secs(r.cancelled_s) if r.cancelled_s is not None else "no",
                    r.found or str(r.candidates), str(r.kept), str(r.duplicates), bad,
                    _secs(r.first_kept_s)])
    return out


def summary_text(title: str, snap: Snapshot, rows: Sequence[GoalRow], problems: Sequence[str], *,
                 where: str, log: Path | None, page_url: str | None) -> str:
    """The closing summary: fixtures, one row per goal, where things are, what differed; the
    log and page lines only when they outlive the demo (--keep, --serve)."""
    lines = ["", f"== {title}", *fixture_lines(snap), "",
             table(SUMMARY_COLUMNS, summary_rows(rows)), "",
             f"kept clips: {sum(r.kept for r in rows)}, in {where}"]
    if log is not None:
        lines.append(f"daemon log: {log}")
    if page_url:
        lines.append(f"page: {page_url} (until Ctrl-C)")
    lines.append("")
    if problems:
        lines += ["DIFFERS FROM THE SCRIPT:", *(f"  - {p}" for p in problems)]
    else:
        lines += ["OK: every goal, clip and result matches the script."]
    return "\n".join(lines)


def fixture_lines(snap: Snapshot) -> list[str]:
    return [f"{fx['_id']}  {_teams(fx)}  {score_text(fx)}  {_minute(fx)}  ({fx.get('stage')})"
            for fx in snap.fixtures]


class PlainDisplay:
    """One log-like line per change: goals seen, confirmed, cancelled, clips kept, matches ending."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._seen: dict[str, str] = {}

    def _say(self, text: str) -> None:
        now = datetime.now(UTC).strftime("%H:%M:%S")
        print(f"{now} {text}", file=self._out, flush=True)

    def update(self, snap: Snapshot) -> None:
        for fx in snap.fixtures:
            key = f"f{fx['_id']}"
            state = f"{fx.get('stage')} {fx.get('status')} {score_text(fx)}"
            if self._seen.get(key) != state:
                self._seen[key] = state
                self._say(f"match {fx['_id']} {_teams(fx)} {score_text(fx)} {_minute(fx)} "
                          f"[{fx.get('stage')}]")
        for g in snap.goals:
            key = f"g{g['_id']}"
            clips = snap.clips_of(g["_id"])
            counts = clip_counts(clips)
            # the label names the scorer: the state line says only what changed
            state = (f"{g.get('state')}, found {found_text(clips)}, "
                     f"kept {counts[records.CLIP_KEPT]}, dup {counts[records.CLIP_DUPLICATE]}, "
                     f"rejected {counts[records.CLIP_REJECTED] + counts[records.CLIP_FAILED]}")
            label = goal_label(g)
            if self._seen.get(key) != label + state:
                self._seen[key] = label + state
                self._say(f"goal {label}: {state}")

    def close(self) -> None:
        pass


class LiveDisplay:
    """A rich Live view redrawn from each snapshot (only on a TTY)."""

    def __init__(self, out: TextIO, title: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self._title = title
        self._console = Console(file=out)
        self._live = Live(console=self._console, refresh_per_second=4, transient=False)
        self._live.start()

    def update(self, snap: Snapshot) -> None:
        from rich.console import Group
        from rich.table import Table

        matches = Table(title=f"{self._title}: matches")
        for col in ("fixture", "match", "score", "clock", "stage"):
            matches.add_column(col)
        for fx in snap.fixtures:
            matches.add_row(str(fx["_id"]), _teams(fx), score_text(fx), _minute(fx),
                            str(fx.get("stage")))
        goals = Table(title="goals and clips")
        for col in ("goal", "state", "found", "kept", "duplicate", "rejected/failed"):
            goals.add_column(col)
        for g in snap.goals:
            clips = snap.clips_of(g["_id"])
            counts = clip_counts(clips)
            style = {"cancelled": "red", "done": "green", "pending": "yellow"}.get(
                str(g.get("state")), "")
            goals.add_row(goal_label(g), f"[{style}]{g.get('state')}[/]" if style else
                          str(g.get("state")), found_text(clips),
                          str(counts[records.CLIP_KEPT]), str(counts[records.CLIP_DUPLICATE]),
                          f"{counts[records.CLIP_REJECTED]}/{counts[records.CLIP_FAILED]}")
        self._live.update(Group(matches, goals))

    def close(self) -> None:
        self._live.stop()


def make_display(out: TextIO, *, plain: bool | None, title: str) -> Display:
    """Live on a TTY (unless plain), plain lines otherwise."""
    if plain is None:
        plain = not (hasattr(out, "isatty") and out.isatty())
    if not plain:
        try:
            return LiveDisplay(out, title)
        except ImportError:  # rich is in the demo extra; without it, plain lines still work
            pass
    return PlainDisplay(out)
