"""The deployment files: docker-compose.yml validates and has every service of the design."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"postgres", "rabbitmq", "web", "live", "proxy", "worker", "beat", "flower", "demo"}


def compose_command() -> list[str]:
    if shutil.which("docker") is None:
        pytest.skip("no docker client on this machine")
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)  # noqa: S607
    if plugin.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("a docker client exists but neither `docker compose` nor `docker-compose` does")


#: What `make up` writes into .env for compose (generated there; any values here).
SECRETS = {
    "POSTGRES_PASSWORD": "p",
    "RMQ_PASSWORD": "r",
    "FLOWER_BASIC_AUTH": "admin:f",
    "REINGEST_RMQ_PASSWORD": "q",
}


def compose_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return {**env, **values}


def test_compose_file_validates_and_lists_the_services(tmp_path):
    command = compose_command()
    check = subprocess.run(  # noqa: S603
        [*command, "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=compose_env(**SECRETS),
    )
    assert check.returncode == 0, check.stderr
    names = subprocess.run(  # noqa: S603
        [*command, "config", "--services"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=compose_env(**SECRETS),
    )
    assert SERVICES <= set(names.stdout.split())


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_generated_secrets(missing):
    """No shared default passwords: without the value compose stops and names it."""
    command = compose_command()
    values = {k: v for k, v in SECRETS.items() if k != missing}
    check = subprocess.run(  # noqa: S603
        [*command, "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=compose_env(**values),
    )
    assert check.returncode != 0
    assert missing in check.stderr


def test_every_process_starts_through_its_one_definition():
    """make up, compose, the Dockerfile, the tests and the benchmarks all start web, live,
    worker, beat and Flower through `python -m webapp.processes NAME`, never their own command line."""
    import yaml

    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("web", "live", "worker", "beat", "flower"):
        assert spec["services"][name]["command"] == ["python", "-m", "webapp.processes", name]
    up = (ROOT / "scripts" / "up.sh").read_text()
    for name in ("web", "live", "worker", "beat", "flower"):
        assert f'"${{run[@]}}" {name}' in up
    assert 'CMD ["python", "-m", "webapp.processes", "web"]' in (ROOT / "Dockerfile").read_text()
    own_command_line = re.compile(
        r'BIN / "(gunicorn|celery)"|\["(gunicorn|celery)",|(^|/)(gunicorn|celery)"? +-', re.M
    )
    for path in [*ROOT.glob("scripts/*"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]:
        if path.name == "test_deploy.py" or not path.is_file():
            continue
        match = own_command_line.search(path.read_text(errors="replace"))
        assert match is None, f"{path.relative_to(ROOT)} starts {match.group(0)!r} itself"


def test_published_ports_bind_loopback_by_default():
    import yaml

    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("web", "proxy", "flower", "rabbitmq"):
        for port in spec["services"][name].get("ports", []):
            assert port.startswith(("${BIND_ADDRESS:-127.0.0.1}:", "127.0.0.1:")), (name, port)


def test_the_live_container_yields_the_cpu_to_the_page_tier():
    """In a container its cgroup's weight decides, not LIVE_NICE (README "Live sockets behind
    a reverse proxy"): the live service gets less than the page tier's default 1024."""
    import yaml

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["live"]["cpu_shares"] < 1024
    assert "cpu_shares" not in services["web"]


def test_compose_services_have_healthchecks_and_named_volumes():
    import yaml

    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("postgres", "rabbitmq", "web", "live", "worker"):
        assert "healthcheck" in spec["services"][name], name
    assert {"pgdata", "rabbitmqdata"} <= set(spec["volumes"])
    assert "management" in spec["services"]["rabbitmq"]["image"]


def test_the_compose_demo_takes_its_silenced_types_from_the_environment():
    """README "Alerts": in compose, `flask demo silence` writes a file the demo container does
    not see; PACER_DEMO_SILENCE reaches the demo PACER, with every other app setting."""
    import yaml

    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    demo = spec["services"]["demo"]["environment"]
    assert demo["PACER_DEMO_SILENCE"] == "${PACER_DEMO_SILENCE:-}"
    assert set(spec["x-app"]["environment"]) <= set(demo)


def test_compose_defaults_are_the_settings_defaults():
    """A `${NAME:-default}` of the app's compose environment must say what the dashboard itself
    defaults to (compose passes the value even when .env does not set it)."""
    import dataclasses

    import yaml

    from webapp.config import Settings, _convert

    # Chosen on purpose for the compose demo (see the comments at the top of the file).
    demo_choices = {"DISABLED_AUTH", "ENVIRONMENT"}
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    checked = 0
    for name, value in spec["x-app"]["environment"].items():
        found = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", str(value))
        if not found or found.group(1) != name or name not in fields or name in demo_choices:
            continue
        field = fields[name]
        assert _convert(name, field.type, found.group(2)) == field.default, (name, found.group(2))
        checked += 1
    assert checked >= 10
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_STARTTLS", "SMTP_CA_FILE", "ALERT_MAIL_FROM"):
        assert name in spec["x-app"]["environment"], name
