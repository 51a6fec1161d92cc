"""The Atom feed of goals (RFC 4287): one entry per public goal, its best clip as an enclosure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from footyd.web.views import View

NS = "http://www.w3.org/2005/Atom"
FEED_TITLE = "footyd · goals"


def _rfc3339(value: str | None, fallback: datetime) -> str:
    if value:
        return value
    return fallback.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, f"{{{NS}}}{tag}", attrs)
    if text is not None:
        node.text = text
    return node


def render(goals: Sequence[View], *, base: str, self_url: str, media_query: str,
           now: datetime) -> bytes:
    """The feed document; `goals` are fan views, newest first; links are absolute."""
    ET.register_namespace("", NS)
    feed = ET.Element(f"{{{NS}}}feed")
    _sub(feed, "id", self_url)
    _sub(feed, "title", FEED_TITLE)
    _sub(feed, "updated", _rfc3339(goals[0]["at"] if goals else None, now))
    _sub(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    _sub(feed, "link", rel="alternate", type="text/html", href=base + "/")
    author = _sub(feed, "author")
    _sub(author, "name", "footyd")
    for goal in goals:
        entry = _sub(feed, "entry")
        url = base + goal["url"]
        _sub(entry, "id", url)
        _sub(entry, "title", goal["title"])
        _sub(entry, "updated", _rfc3339(goal["at"], now))
        _sub(entry, "link", rel="alternate", type="text/html", href=url)
        lines = [goal["title"]]
        if goal["assist"]:
            lines.append(f"Assist: {goal['assist']}")
        best = goal["best"]
        if best is not None:
            video = f"{base}{best['video_url']}{media_query}"
            attrs = {"rel": "enclosure", "type": "video/mp4", "href": video}
            _sub(entry, "link", **attrs)
            size = f"{best['width']}×{best['height']}" if best["width"] else "clip"
            lines.append(f"Watch: {video} ({size}, {best['source'] or 'unknown source'})")
            if best["post_url"]:
                lines.append(f"Posted at: {best['post_url']}")
        else:
            lines.append("No clip yet.")
        _sub(entry, "summary", "\n".join(lines), type="text")
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))
