"""The Docker image, the systemd unit and the README's install steps (issue 10, items 9-11)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

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
