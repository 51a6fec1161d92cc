"""structlog setup: JSON lines off a TTY, console on one; stdlib bridged; secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
_REDACTED = "[redacted]"
SHORT_SECRET_CHARS = 4


class _Redactor:
    """Replaces known secret values anywhere in an event's string fields."""

    def __init__(self) -> None:
        self.secrets: tuple[str, ...] = ()
        # a secret of 1-3 characters also occurs inside ordinary words: redact it where it
        # stands alone (between non-alphanumerics), so it still never reaches a line whole
        self.short: re.Pattern[str] | None = None

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
        if not self.secrets and self.short is None:
            return event
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = self._scrub(value)
            elif isinstance(value, (list, tuple)):
                event[key] = [self._scrub(v) if isinstance(v, str) else v for v in value]
        return event

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, _REDACTED)
        if self.short is not None:
            text = self.short.sub(_REDACTED, text)
        return text


_redactor = _Redactor()


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def setup(
    *,
    level: str = "info",
    fmt: str = "auto",
    libraries: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and route stdlib loggers through the same renderer."""
    out = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    # Redaction runs after exceptions are formatted, so tracebacks are scrubbed too.
    final: list[Any] = [structlog.processors.format_exc_info, _redactor]
    renderer: Any = (
        structlog.processors.JSONRenderer(default=str)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    set_secrets(secrets)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level, libraries)


def set_level(level: str, libraries: Mapping[str, str] | None = None) -> None:
    """Change footyd's level and the per-library table (used on reload)."""
    root = logging.getLogger()
    root.setLevel(_LEVELS[level])
    for name, lib_level in (libraries or {}).items():
        logging.getLogger(name).setLevel(max(_LEVELS[lib_level], _LEVELS[level]))


def set_secrets(secrets: Iterable[str]) -> None:
    """Values that must never reach a log line (short ones where they stand alone)."""
    values = {s for s in secrets if s}
    _redactor.secrets = tuple(sorted((s for s in values if len(s) >= SHORT_SECRET_CHARS),
                                     key=len, reverse=True))
    short = sorted((s for s in values if len(s) < SHORT_SECRET_CHARS), key=len, reverse=True)
    _redactor.short = re.compile(
        "(?<![A-Za-z0-9])(?:" + "|".join(re.escape(s) for s in short) + ")(?![A-Za-z0-9])"
    ) if short else None
