"""Config findings: a problem with the key it is about, and the verdict they add up to."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    """One problem: the key it is about, what happens, and how to fix it."""

    key: str
    problem: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.key}: {self.problem}" + (f"; fix: {self.fix}" if self.fix else "")


@dataclass(frozen=True)
class Verdict:
    """Errors stop `run` (exit 78); warnings are settings that leave part of footyd idle."""

    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class SourceVerdict(Verdict):
    """A source's own config problems; `can_search` is False when it would never find a clip."""

    can_search: bool = True


def is_set(secret: object) -> bool:
    """Whether a SecretStr (or None) holds a non-empty value."""
    get = getattr(secret, "get_secret_value", None)
    return bool(get and get())
