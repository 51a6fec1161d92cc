"""r/soccer goal-post titles: parse `Arsenal [2] - 1 Chelsea - Bukayo Saka 67'` and match a goal."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from footyd.sources.base import GoalQuery
from footyd.sources.query import fold_accents

TITLE_MAX_CHARS = 300  # Reddit caps titles at 300 characters
MAX_SCORE = 30
MAX_MINUTE = 130  # 120 + stoppage; shootouts are not goals

_SCORE = r"(\[\d{1,2}\]|\d{1,2})"
# Team names may contain digits ("Schalke 04") and hyphens ("Saint-Étienne"): the score is the
# first `N - N` with at least one side able to be a score; the part separator needs spaces.
_HEAD_RE = re.compile(
    r"^\s*(?P<home>.+?)\s*" + _SCORE + r"\s*[-–—:]\s*" + _SCORE
    + r"\s*(?P<away>.+?)(?:\s+[-–—|]\s+|\s*\|\s*|\s*:\s+)(?P<rest>.+)$"
)
_MINUTE_RE = re.compile(r"(?<![\d+])(\d{1,3})\s*(?:\+\s*(\d{1,2}))?\s*(?:'|’|′|‘|min\b)", re.I)
_OG_RE = re.compile(r"\(\s*o\.?\s*g\.?\s*\)|\bo\.g\.?|\bOG\b|\bown[\s-]goal\b", re.I)
_PEN_RE = re.compile(r"\(\s*(?:pen\.?|p|penalty|pk)\s*\)|\bpen\b\.?|\bpenalty\b|\bPK\b", re.I)
_WORD_RE = re.compile(r"\w+")
# match/post-match/pre-match/half-time/daily discussion threads quote scores and minutes but are
# never clips of a goal, whatever their score bracket says
THREAD_RE = re.compile(r"\bthreads?\b", re.I)


@dataclass(frozen=True)
class ParsedTitle:
    """What a goal-post title says."""

    home: str
    away: str
    home_score: int
    away_score: int
    scoring_side: str | None  # "home" / "away" from the bracket; None when unmarked
    scorer: str  # the scorer text, marks and minute removed ("" when absent)
    elapsed: int
    extra: int | None
    own_goal: bool
    penalty: bool

    @property
    def minute(self) -> int:
        """Absolute minute (90+2' -> 92), as GoalQuery.minute counts it."""
        return self.elapsed + (self.extra or 0)


def _score(raw: str) -> tuple[int, bool]:
    bracketed = raw.startswith("[")
    return int(raw.strip("[]")), bracketed


def _tidy(text: str) -> str:
    text = re.sub(r"\(\s*\)|\[\s*\]", " ", text)
    text = " ".join(text.strip(" \t-–—|,;:").split())
    if text.startswith("(") and ")" not in text:
        text = text[1:]
    if text.endswith(")") and "(" not in text:
        text = text[:-1]
    return text.strip()


def parse_title(title: str) -> ParsedTitle | None:
    """The parts of a goal-post title, or None when it is not one (no score or no minute)."""
    if not isinstance(title, str) or not title or len(title) > TITLE_MAX_CHARS:
        return None
    if THREAD_RE.search(title):
        return None
    head = _HEAD_RE.match(" ".join(title.split()))
    if head is None:
        return None
    home_raw, hs_raw, as_raw, away_raw, rest = head.groups()
    (home_score, home_mark), (away_score, away_mark) = _score(hs_raw), _score(as_raw)
    home, away = _tidy(home_raw), _tidy(away_raw)
    if not home or not away or max(home_score, away_score) > MAX_SCORE:
        return None
    minute = _MINUTE_RE.search(rest)
    if minute is None:
        return None
    elapsed, extra = int(minute.group(1)), int(minute.group(2)) if minute.group(2) else None
    if elapsed > MAX_MINUTE:
        return None
    rest = rest[:minute.start()] + " " + rest[minute.end():]
    own_goal, penalty = bool(_OG_RE.search(rest)), bool(_PEN_RE.search(rest))
    scorer = _tidy(_PEN_RE.sub(" ", _OG_RE.sub(" ", rest)))
    side = "home" if home_mark and not away_mark else "away" if away_mark and not home_mark else None
    return ParsedTitle(home, away, home_score, away_score, side, scorer, elapsed, extra,
                       own_goal, penalty)


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD_RE.findall(fold_accents(text).casefold()))


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def _in_order(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    """All of needle's words, in order, gaps allowed ("Atletico Madrid" in "Atlético de Madrid")."""
    words = iter(haystack)
    return len(needle) > 1 and all(w in words for w in needle)


def names_match(text: str, terms: Iterable[str]) -> bool:
    """True when a team's name or alias is the title's side, or whole words of it (accent-folded)."""
    side = _words(text)
    for term in terms:
        words = _words(term)
        if not words:
            continue
        # "Bayern" in "Bayern München", or "Bayern München" in "FC Bayern München"
        if _contains(side, words) or _in_order(side, words) or (
                sum(map(len, side)) >= 4 and (_contains(words, side) or _in_order(words, side))):
            return True
    return False


def _orientation(parsed: ParsedTitle, query: GoalQuery) -> str | None:
    """Which title side is the goal's team ("home"/"away"), None when the teams do not fit."""
    team = (parsed.home, parsed.away)
    opponent_terms = query.opponent_terms or ((query.opponent_name,) if query.opponent_name else ())
    fits = []
    for ours, theirs, side in ((0, 1, "home"), (1, 0, "away")):
        if names_match(team[ours], query.team_terms or (query.team_name,)) and (
            not opponent_terms or names_match(team[theirs], opponent_terms)
        ):
            fits.append(side)
    if len(fits) == 1:
        return fits[0]
    if len(fits) == 2 and parsed.scoring_side is not None:  # same alias both sides: the bracket says
        return parsed.scoring_side
    return None


def mismatch(parsed: ParsedTitle, query: GoalQuery, *, minute_drift: int) -> str | None:
    """Why the post is not about this goal (None when it is)."""
    side = _orientation(parsed, query)
    if side is None:
        return "teams"
    if parsed.scoring_side is not None and parsed.scoring_side != side:
        return "scoring side"
    if query.score is not None:
        # The running score identifies the goal's ordinal; either orientation of the fixture's
        # (home, away) is accepted, since the title's order is the poster's, not the API's.
        if (parsed.home_score, parsed.away_score) not in (query.score, query.score[::-1]):
            return "score"
    if abs(parsed.minute - query.minute) > minute_drift:
        return "minute"
    if query.scorer_terms and parsed.scorer and not any(
        _contains(_words(parsed.scorer), _words(term)) for term in query.scorer_terms
    ):
        return "scorer"
    return None


def title_matches(title: str, query: GoalQuery, *, minute_drift: int) -> bool:
    """True when the title is a goal post for this goal."""
    parsed = parse_title(title)
    return parsed is not None and mismatch(parsed, query, minute_drift=minute_drift) is None
