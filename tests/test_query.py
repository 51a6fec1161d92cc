"""Goal queries: scorer variants, team aliases and the X query string."""

from __future__ import annotations

from footyd.sources.base import GoalQuery
from footyd.sources.query import build_query, fold_accents, scorer_terms, x_query_string

ALIASES = {"bayer leverkusen": ["Leverkusen", "Bayer", "B04", "Leverkusen"], "168": ["Werkself"]}


def _q(
    scorer: str | None,
    team: str = "Bayer Leverkusen",
    aliases: dict[str, list[str]] | None = None,
    team_id: int | None = None,
) -> GoalQuery:
    return build_query(
        goal_id="g1", fixture_id=7, team_name=team, opponent_name="Bayern München",
        scorer_name=scorer, minute=44, aliases=ALIASES if aliases is None else aliases,
        team_id=team_id,
    )


def test_accents_are_folded_and_original_kept() -> None:
    assert fold_accents("Müller Ødegaard Łukasz Sørloth Çalhanoğlu") == (
        "Muller Odegaard Lukasz Sorloth Calhanoglu"
    )
    assert scorer_terms("Thomas Müller") == ("Müller", "Muller", "Thomas")
    assert scorer_terms("Martin Ødegaard")[:2] == ("Ødegaard", "Odegaard")


def test_initials_are_dropped() -> None:
    assert scorer_terms("M. Striker") == ("Striker",)
    assert scorer_terms("J. P. Doe") == ("Doe",)
    assert scorer_terms("F. Wirtz") == ("Wirtz",)


def test_surname_first_then_first_name_and_particles_kept() -> None:
    assert scorer_terms("Florian Wirtz") == ("Wirtz", "Florian")
    assert scorer_terms("Virgil van Dijk") == ("van Dijk", "Virgil")
    assert scorer_terms("Kevin De Bruyne") == ("De Bruyne", "Kevin")
    assert scorer_terms("Rodri") == ("Rodri",)


def test_unknown_scorer_searches_team_terms_only() -> None:
    for name in (None, "", "Unknown", "  unknown "):
        q = _q(name)
        assert q.scorer_name is None
        assert q.scorer_terms == ()
        assert x_query_string(q) == (
            '("Bayer Leverkusen" OR Leverkusen OR Bayer OR B04) has:videos -is:retweet'
        )


def test_aliases_by_name_and_id_deduplicated_and_multiword_quoted() -> None:
    q = _q("Florian Wirtz", team_id=168)
    assert q.team_terms == ("Bayer Leverkusen", "Leverkusen", "Bayer", "B04", "Werkself")
    assert x_query_string(q) == (
        '(Wirtz OR Florian) ("Bayer Leverkusen" OR Leverkusen OR Bayer OR B04 OR Werkself) '
        "has:videos -is:retweet"
    )


def test_single_terms_need_no_parentheses_and_particles_are_quoted() -> None:
    q = _q("Virgil van Dijk", team="Liverpool", aliases={})
    assert x_query_string(q) == '("van Dijk" OR Virgil) Liverpool has:videos -is:retweet'
    assert x_query_string(q, operators=()) == '("van Dijk" OR Virgil) Liverpool'


def test_long_alias_lists_are_trimmed_to_the_query_limit() -> None:
    many = {"Club": [f"Alias{i}" for i in range(200)]}
    q = _q("Florian Wirtz", team="Club", aliases=many)
    text = x_query_string(q)
    assert len(text) <= 512
    assert text.startswith("(Wirtz OR Florian) (Club OR Alias0 OR")
    assert text.endswith("has:videos -is:retweet")
