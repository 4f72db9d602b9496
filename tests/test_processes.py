"""webapp/processes.py: the one start-up definition of web, live, worker, beat and Flower."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.processes import ROOT
from webapp.config import ConfigError, Settings
from webapp.processes import command

BASE = {"RMQ_HOST": "127.0.0.1", "ENVIRONMENT": "testing", "DISABLED_AUTH": "true"}


def settings(**env: str) -> Settings:
    return Settings.from_env(environ={**BASE, **env})


def test_web_listens_where_configured_with_its_control_socket_under_run_dir(tmp_path):
    args = command("web", settings(RUN_DIR=str(tmp_path), WEB_BIND="127.0.0.1:8123"))
    assert args[args.index("-b") + 1] == "127.0.0.1:8123"
    assert args[args.index("-k") + 1] == "gthread"
    # Two dashboards on one machine never claim the same ~/.gunicorn/gunicorn.ctl.
    assert args[args.index("--control-socket") + 1] == str(tmp_path / "gunicorn-8123.ctl")
    assert args[-1] == "wsgi:app"


def test_live_is_one_gevent_process_with_room_for_every_socket(tmp_path):
    args = command(
        "live", settings(RUN_DIR=str(tmp_path), LIVE_BIND="127.0.0.1:8124", LIVE_MAX_SOCKETS="3000")
    )
    assert args[args.index("-k") + 1] == "gevent"
    assert args[args.index("-w") + 1] == "1"
    assert int(args[args.index("--worker-connections") + 1]) > 3000
    assert args[args.index("-b") + 1] == "127.0.0.1:8124"
    assert args[args.index("--control-socket") + 1] == str(tmp_path / "gunicorn-8124.ctl")
    assert args[-1] == "wsgi:app"


def test_worker_is_one_process_with_a_thread_pool_and_mingle_on():
    args = command("worker", settings(WORKER_NAME="w1@%h", WORKER_CONCURRENCY="3"))
    assert args[1:4] == ["-A", "wsgi.celery_app", "worker"]
    assert args[args.index("-P") + 1] == "threads"
    assert args[args.index("-c") + 1] == "3"
    assert args[args.index("-n") + 1] == "w1@%h"
    assert "--without-mingle" not in args and "--without-gossip" not in args


def test_beat_keeps_its_schedule_under_run_dir(tmp_path):
    args = command("beat", settings(RUN_DIR=str(tmp_path)))
    assert args[args.index("--schedule") + 1] == str(tmp_path / "celerybeat-schedule")


def test_flower_credentials_never_reach_the_command_line():
    args = command("flower", settings(FLOWER_BIND="0.0.0.0:5999", FLOWER_BASIC_AUTH="a:secret"))
    assert "--address=0.0.0.0" in args and "--port=5999" in args
    assert not any("secret" in a for a in args)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"FLOWER_BIND": "0.0.0.0:5555"}, "FLOWER_BASIC_AUTH"),
        ({"FLOWER_BIND": "127.0.0.1:5555", "FLOWER_BASIC_AUTH": "nopassword"}, "FLOWER_BASIC_AUTH"),
        ({"WEB_BIND": "8000"}, "WEB_BIND"),
        ({"WEB_BIND": "0.0.0.0:99999"}, "WEB_BIND"),
        ({"WEB_WORKERS": "0"}, "WEB_WORKERS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_bad_process_settings_name_the_variable(env, name):
    with pytest.raises(ConfigError, match=f"^{name}:"):
        settings(**env)


def test_the_entry_point_stops_with_one_line_naming_the_variable():
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "webapp.processes", "worker"],
        cwd=ROOT,
        env={**BASE, "PATH": "/usr/bin:/bin", "WORKER_CONCURRENCY": "many"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "pacer-dashboard: configuration error: WORKER_CONCURRENCY: expected an integer, got 'many'"
    )


def test_unknown_process_is_a_usage_error():
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "webapp.processes", "scheduler"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "usage: python -m webapp.processes {web,live,worker,beat,flower}" in result.stderr
