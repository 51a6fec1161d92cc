"""Webhook bodies (json, Discord, Slack) from a notification's frozen facts; pure, no I/O."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

TITLES = {
    "goal_confirmed": "Goal",
    "goal_cancelled": "Goal cancelled",
    "clip_kept": "Clip ready",
    "clip_replaced": "Better clip",
}
MAX_TEXT = 1800  # Discord content is capped at 2000 characters; Slack text at 40,000
_DISCORD_MARKUP = re.compile(r"([\\*_~`|>#\[\]()@-])")


def _s(value: Any, limit: int = 120) -> str:
    """A bounded one-line string of untrusted text (team and player names come from the API)."""
    text = " ".join(str(value if value is not None else "?").split())
    return text[:limit]


def _plain(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def headline(event: str, facts: dict[str, Any]) -> str:
    """One plain line: 'Goal: Leverkusen 1-0 Bayern, 23' Florian Wirtz'."""
    fx = facts.get("fixture") or {}
    goal = facts.get("goal") or {}
    home, away = _s((fx.get("home") or {}).get("name")), _s((fx.get("away") or {}).get("name"))
    score = f"{_s(goal.get('score_home'))}-{_s(goal.get('score_away'))}"
    scorer = _s(goal.get("scorer_name") or "scorer unknown")
    return f"{TITLES.get(event, event)}: {home} {score} {away}, {_s(goal.get('minute'))}' {scorer}"


def json_body(event_id: str, event: str, facts: dict[str, Any], clip_url: str | None) -> bytes:
    """The `json` format: the event id, its kind, and the fixture, goal and clip facts."""
    body = {"id": event_id, "event": event, "occurred_at": facts.get("occurred_at"),
            "fixture": facts.get("fixture"), "goal": facts.get("goal"),
            "clip": {**facts["clip"], "url": clip_url} if facts.get("clip") else None,
            "replaced_clip_id": facts.get("replaced_clip_id")}
    return json.dumps(body, default=_plain, separators=(",", ":")).encode()


def _discord_escape(text: str) -> str:
    return _DISCORD_MARKUP.sub(r"\\\1", text)


def discord_body(event: str, facts: dict[str, Any], clip_url: str | None) -> bytes:
    """Discord's execute-webhook body; mentions are disabled (names are untrusted)."""
    text = _discord_escape(headline(event, facts))
    if clip_url:
        text += f"\n{clip_url}"
    body = {"content": text[:MAX_TEXT], "allowed_mentions": {"parse": []}}
    return json.dumps(body, separators=(",", ":")).encode()


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(event: str, facts: dict[str, Any], clip_url: str | None) -> bytes:
    """Slack's incoming-webhook body: escaped mrkdwn text with the clip as a link."""
    text = _slack_escape(headline(event, facts))
    if clip_url:
        text += f"\n<{_slack_escape(clip_url)}|clip>"
    return json.dumps({"text": text[:MAX_TEXT]}, separators=(",", ":")).encode()


def render(fmt: str, event_id: str, event: str, facts: dict[str, Any],
           clip_url: str | None) -> bytes:
    """The request body for a webhook format."""
    if fmt == "discord":
        return discord_body(event, facts, clip_url)
    if fmt == "slack":
        return slack_body(event, facts, clip_url)
    return json_body(event_id, event, facts, clip_url)
