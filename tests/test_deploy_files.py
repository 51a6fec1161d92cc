"""The Docker image, the systemd unit and the README's install steps (issue 10, items 9-11)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from footyd import config as config_mod

ROOT = Path(__file__).resolve().parent.parent


def _secret_keys(model: type[BaseModel] = config_mod.Config, prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _secret_keys(ann, f"{prefix}{name}.")
        elif SecretStr in (getattr(ann, "__args__", ()) or (ann,)):
            out.append(prefix + name)
    return out


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_docker_image_config_listens_on_all_interfaces() -> None:
    """Item 9: the image's own config serves /metrics on the EXPOSEd port from outside."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    seds = re.findall(r"sed -i '(s/.+?/.+?/)' /etc/footyd/config\.toml", dockerfile)
    assert seds, "the Dockerfile rewrites nothing in the image's config"
    text = (ROOT / "config.toml").read_text()
    for expr in seds:
        _, old, new, _ = expr.split("/")
        assert re.search(old, text, re.M), f"{old!r} matches nothing in config.toml"
        text = re.sub(old, new.replace("\\", ""), text, flags=re.M)
    cfg = config_mod.build(tomllib.loads(text), env={})
    assert cfg.health.host == "0.0.0.0"
    assert re.search(rf"^EXPOSE {cfg.health.port}$", dockerfile, re.M)


def test_readme_docker_run_is_complete() -> None:
    """Item 9: S3 and MongoDB credentials through an env file, the port published, config readable."""
    readme = (ROOT / "README.md").read_text()
    docker = next(b for b in _code_blocks(readme) if "docker run" in b)
    run = " ".join(docker.replace("\\\n", " ").split())
    assert "--env-file" in run and "-p 9464:9464" in run
    env_file = next(b for b in _code_blocks(readme) if "FOOTYD_STORAGE__SECRET_ACCESS_KEY=" in b)
    for var in ("FOOTYD_API_FOOTBALL__API_KEY", "FOOTYD_MONGO__URI", "FOOTYD_STORAGE__ACCESS_KEY_ID",
                "FOOTYD_STORAGE__BUCKET"):
        assert f"{var}=" in env_file
    assert "10001" in readme and "readable" in readme


def _unit() -> str:
    return (ROOT / "footyd.service").read_text()


def test_systemd_unit_runs_from_a_venv_and_installs_its_documentation() -> None:
    """Item 10: /opt/footyd venv (PEP 668), a Documentation= file the install step puts there."""
    unit = _unit()
    exec_start = re.search(r"^ExecStart=(\S+)", unit, re.M)
    assert exec_start and exec_start.group(1) == "/opt/footyd/bin/footyd"
    install = " ".join(line.lstrip("# ") for line in unit.splitlines() if line.startswith("#"))
    assert "python3 -m venv /opt/footyd" in install and "/opt/footyd/bin/pip install" in install
    doc = re.search(r"^Documentation=file://(\S+)", unit, re.M)
    assert doc, "Documentation= must point at an installed file"
    assert re.search(rf"install [^;]*README\.md {re.escape(doc.group(1))}", install), install
    readme = (ROOT / "README.md").read_text()
    assert "/opt/footyd" in readme and "PEP 668" in readme


def test_systemd_unit_has_a_credential_line_per_secret() -> None:
    """Item 10: a commented LoadCredential= for each secret, with the `_file` key that reads it."""
    lines = re.findall(r"^#\s*LoadCredential=(\w+):(\S+)\s+#\s*(\S+)_file\b", _unit(), re.M)
    by_key = {key: name for name, _path, key in lines}
    assert set(by_key) == set(_secret_keys()), (by_key, _secret_keys())
    # config.toml's credentials example names one of them
    example = re.search(r"/run/credentials/footyd\.service/(\w+)", (ROOT / "config.toml").read_text())
    assert example and example.group(1) in by_key.values()


def test_readme_install_steps_do_not_undo_each_other() -> None:
    """Item 11: no block installs editable and non-editable into one venv; no file outside the repo."""
    readme = (ROOT / "README.md").read_text()
    for block in _code_blocks(readme):
        installs = [shlex.split(c) for c in re.findall(r"pip install [^&\n#]+", block)]
        editable = {"-e" in c for c in installs}
        assert len(editable) <= 1, f"editable and plain installs mixed in one block:\n{block}"
    assert not re.search(r"\.\./\w", readme), "README points outside the repository"
    real = readme[readme.index("### Running it for real"):]
    first = real[:real.index("\n## ")]
    assert "pip install ." not in first or "venv" in first


def _directives(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def test_the_systemd_252_unit_differs_only_in_how_reload_is_wired() -> None:
    modern = _directives(_unit())
    old = _directives((ROOT / "footyd-systemd252.service").read_text())
    assert set(modern) - set(old) == {"Type=notify-reload", "ReloadSignal=SIGHUP"}
    assert set(old) - set(modern) == {"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID"}
    readme = (ROOT / "README.md").read_text()
    assert "footyd-systemd252.service" in readme and "Debian 12" in readme


def _systemd_version() -> int | None:
    if shutil.which("systemd-analyze") is None:
        return None
    out = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True,
                         check=False).stdout
    found = re.match(r"systemd (\d+)", out)
    return int(found.group(1)) if found else None


@pytest.mark.skipif(_systemd_version() is None, reason="systemd-analyze is not installed")
def test_the_unit_for_this_systemd_verifies_cleanly(tmp_path: Path) -> None:
    """On this machine's systemd, the unit README says to use passes `systemd-analyze verify`."""
    version = _systemd_version()
    assert version is not None
    name = "footyd.service" if version >= 253 else "footyd-systemd252.service"
    unit = tmp_path / "footyd.service"  # ExecStart must exist for verify: the venv is not here
    unit.write_text((ROOT / name).read_text().replace("/opt/footyd/bin/footyd", "/bin/true"))
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0 and res.stderr.strip() == "", (name, res.stderr)


def test_the_image_exposes_the_page_port_and_readme_says_how_to_turn_the_page_on() -> None:
    exposed = set(re.findall(r"^EXPOSE (\d+)", (ROOT / "Dockerfile").read_text(), re.M))
    web_port = config_mod.WebConfig().listen.rsplit(":", 1)[1]
    assert {web_port, "9464"} <= exposed
    readme = (ROOT / "README.md").read_text()
    real = readme.split("### Running it for real", 1)[1].split("\n## ", 1)[0]
    docker = readme.split("### Docker", 1)[1].split("\n## ", 1)[0]
    for section in (real, docker):
        assert "FOOTYD_WEB__ENABLED=true" in section and "FOOTYD_WEB__TOKEN" in section
        assert f"0.0.0.0:{web_port}" in section
