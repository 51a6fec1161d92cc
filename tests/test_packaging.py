"""Dependency pins admit only versions that have the APIs the code calls."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from footyd.build import commit_from_direct_url

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


def test_the_commit_of_a_pip_install_from_a_checkout_or_a_git_url_is_known(tmp_path: Path) -> None:
    """PEP 610 records: `pip install git+URL@rev` names its commit; `pip install /checkout` names
    the checkout, whose HEAD is the commit (README's `footyd status` sample shows one)."""
    vcs = json.dumps({"url": "https://github.com/x/footyd.git",
                      "vcs_info": {"vcs": "git", "commit_id": "0123456789abcdef0123"}})
    assert commit_from_direct_url(vcs) == "0123456789ab"
    checkout = tmp_path / "footyd checkout"
    checkout.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", "-C", str(checkout), *args], check=True, env=env)
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    local = json.dumps({"url": checkout.as_uri(), "dir_info": {}})
    assert commit_from_direct_url(local) == head
    assert commit_from_direct_url(json.dumps({"url": (tmp_path / "gone").as_uri(),
                                              "dir_info": {}})) is None
    for junk in (None, "", "not json", "[]", '{"url": 5}'):
        assert commit_from_direct_url(junk) is None
