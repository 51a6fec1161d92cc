"""Dependency pins admit only versions that have the APIs the code calls."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
# numpy APIs new in 2.0 (a 1.x install raises AttributeError on first use)
NUMPY_2_ONLY = ("bitwise_count", "unstack", "astype", "matrix_transpose", "permute_dims")


def _requirement(name: str) -> Requirement:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    found = [Requirement(d) for d in deps if Requirement(d).name == name]
    assert len(found) == 1, f"{name} must be pinned once in [project].dependencies"
    return found[0]


def test_numpy_pin_admits_no_version_without_the_apis_used() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "footyd").rglob("*.py"))
    used = sorted({m for m in NUMPY_2_ONLY if re.search(rf"\bnp\.{m}\(", code)})
    assert used, "the scan found no numpy 2 API: update NUMPY_2_ONLY or drop this test"
    spec = _requirement("numpy").specifier
    for old in ("1.26.4", "1.26.0", "1.99.0"):
        assert not spec.contains(old), f"numpy {old} lacks {used} but {spec} admits it"
    assert spec.contains("2.0.0") and spec.contains("2.4.6")
