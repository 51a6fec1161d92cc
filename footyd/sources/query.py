"""Goal queries: team aliases, scorer name variants, and the X search query string."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from footyd.sources.base import GoalQuery

X_QUERY_MAX_CHARS = 512  # self-serve recent search limit
X_API_OPERATORS = ("has:videos", "-is:retweet")
UNKNOWN_SCORERS = frozenset({"", "unknown", "n/a", "none", "null"})

# Letters NFKD does not decompose into base + mark.
_EXTRA_FOLDS = str.maketrans({
    "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D",
    "ı": "i", "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "þ": "th", "Þ": "Th",
})
# Lower-case particles that belong to the surname ("van Dijk", "De Bruyne").
_PARTICLES = frozenset({
    "van", "von", "de", "der", "den", "da", "di", "del", "della", "dos", "das", "do", "du",
    "la", "le", "ter", "ten", "bin", "al", "el", "mac", "st", "st.",
})
_INITIAL_RE = re.compile(r"^\w\.?$|^(\w\.)+$")
_PLAIN_TERM_RE = re.compile(r"^\w+$")


def fold_accents(text: str) -> str:
    """'Müller Ødegaard' -> 'Muller Odegaard'."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_EXTRA_FOLDS))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _dedupe(terms: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for term in terms:
        term = " ".join(term.split())
        key = term.casefold()
        if term and key not in seen:
            seen.add(key)
            out.append(term)
    return tuple(out)


def _with_folded(terms: Iterable[str]) -> list[str]:
    out: list[str] = []
    for term in terms:
        out.extend((term, fold_accents(term)))
    return out


def scorer_terms(scorer_name: str | None) -> tuple[str, ...]:
    """Surname first (with its particles), then the first name; initials dropped; accents folded.

    "M. Striker" -> ("Striker",); "Florian Wirtz" -> ("Wirtz", "Florian");
    "Virgil van Dijk" -> ("van Dijk", "Virgil"); "Müller" -> ("Müller", "Muller").
    The first name is kept because the team terms are ANDed with it, and players known by
    their first name (Vinícius, Rodri) are otherwise missed.
    """
    if scorer_name is None or scorer_name.strip().casefold() in UNKNOWN_SCORERS:
        return ()
    tokens = [t for t in scorer_name.split() if not _INITIAL_RE.match(t)]
    if not tokens:
        return ()
    # The surname is the last token plus any particles right before it.
    start = len(tokens) - 1
    while start > 0 and tokens[start - 1].casefold() in _PARTICLES:
        start -= 1
    surname = " ".join(tokens[start:])
    names = [surname]
    if start > 0:
        names.append(tokens[0])
    return _dedupe(_with_folded(names))


def team_terms(
    team_name: str, aliases: Mapping[str, Sequence[str]], team_id: int | None = None
) -> tuple[str, ...]:
    """The team name plus its configured aliases (keyed by name, case-insensitive, or id)."""
    found: list[str] = [team_name]
    wanted = {team_name.casefold()}
    if team_id is not None:
        wanted.add(str(team_id))
    for key, values in aliases.items():
        if key.casefold() in wanted:
            found.extend(values)
    return _dedupe(_with_folded(found))


def build_query(
    *,
    goal_id: str,
    fixture_id: int,
    team_name: str,
    opponent_name: str,
    scorer_name: str | None,
    minute: int,
    aliases: Mapping[str, Sequence[str]],
    team_id: int | None = None,
    goal_at: datetime | None = None,
    opponent_id: int | None = None,
    score: tuple[int, int] | None = None,
) -> GoalQuery:
    """Assemble the query for one goal (an 'Unknown' scorer counts as unknown)."""
    terms = scorer_terms(scorer_name)
    return GoalQuery(
        goal_id=goal_id,
        fixture_id=fixture_id,
        team_name=team_name,
        opponent_name=opponent_name,
        scorer_name=scorer_name if terms else None,
        minute=minute,
        team_terms=team_terms(team_name, aliases, team_id),
        scorer_terms=terms,
        goal_at=goal_at,
        opponent_terms=team_terms(opponent_name, aliases, opponent_id) if opponent_name else (),
        score=score,
    )


def _quote(term: str) -> str:
    if _PLAIN_TERM_RE.match(term):
        return term
    return '"' + term.replace('"', "") + '"'


def _group(terms: Sequence[str]) -> str:
    quoted = [_quote(t) for t in terms]
    return quoted[0] if len(quoted) == 1 else "(" + " OR ".join(quoted) + ")"


def x_query_string(
    q: GoalQuery,
    *,
    operators: Sequence[str] = X_API_OPERATORS,
    max_chars: int = X_QUERY_MAX_CHARS,
) -> str:
    """`(Wirtz OR Florian) (Leverkusen OR Bayer OR B04) has:videos -is:retweet`.

    Team terms only when the scorer is unknown; trailing team aliases are dropped to fit max_chars.
    """
    teams = list(q.team_terms) or [q.team_name]
    while True:
        parts = [_group(q.scorer_terms)] if q.scorer_terms else []
        parts.append(_group(teams))
        parts.extend(operators)
        text = " ".join(parts)
        if len(text) <= max_chars or len(teams) == 1:
            return text
        teams.pop()
