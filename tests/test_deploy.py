"""The deployment files: docker-compose.yml validates and has every service of the design."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"postgres", "rabbitmq", "web", "worker", "beat", "flower", "demo"}


def compose_command() -> list[str]:
    if shutil.which("docker") is None:
        pytest.skip("no docker client on this machine")
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)  # noqa: S607
    if plugin.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("a docker client exists but neither `docker compose` nor `docker-compose` does")


def test_compose_file_validates_and_lists_the_services():
    command = compose_command()
    check = subprocess.run([*command, "config", "-q"], cwd=ROOT, capture_output=True, text=True)  # noqa: S603
    assert check.returncode == 0, check.stderr
    names = subprocess.run(  # noqa: S603
        [*command, "config", "--services"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert SERVICES <= set(names.stdout.split())


def test_compose_services_have_healthchecks_and_named_volumes():
    import yaml

    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("postgres", "rabbitmq", "web", "worker"):
        assert "healthcheck" in spec["services"][name], name
    assert {"pgdata", "rabbitmqdata"} <= set(spec["volumes"])
    assert "management" in spec["services"]["rabbitmq"]["image"]
