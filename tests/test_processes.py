"""webapp/processes.py: the one start-up definition of web, live, worker, beat and Flower."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
        ({"LIVE_NICE": "20"}, "LIVE_NICE"),
        ({"LIVE_NICE": "-5"}, "LIVE_NICE"),
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


AUTOGROUP = Path("/proc/self/autogroup")


def _lower_priority(nice: int, new_session: bool) -> tuple[str, int, str | None]:
    """lower_priority(nice) in a new Python process, leading a session of its own or in this
    one's: (what it reports, its niceness after, its autogroup line)."""
    code = (
        "import json, os, pathlib; from webapp.processes import lower_priority; "
        "p = pathlib.Path('/proc/self/autogroup'); "
        f"print(json.dumps([lower_priority({nice}), os.nice(0), "
        "p.read_text().strip() if p.exists() else None]))"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=new_session,
        check=True,
    )
    # JSON, not a line each: a process in the kernel's default autogroup (CI runners whose
    # session never called setsid) reads /proc/self/autogroup as an empty file.
    reported, niceness, group = json.loads(result.stdout)
    return reported, niceness, group


def test_a_session_leader_lowers_its_priority_and_its_sessions():
    """The live process (LIVE_NICE) and the bench's simulated browsers: the niceness, and where
    the kernel shares the CPU per session first (autogroups), the session's too; else a
    niceness ranks the process only against the rest of its own session."""
    expected = min(19, os.nice(0) + 6)
    reported, niceness, group = _lower_priority(6, new_session=True)
    assert niceness == expected
    assert reported.startswith(f"nice {expected}, ")
    if AUTOGROUP.exists():
        assert group is not None and group.endswith(f" nice {expected}"), group
        assert reported == f"nice {expected}, {group}"


def test_a_process_in_someone_elses_session_leaves_the_session_alone():
    """Started from a terminal, the process is not its session's leader: the terminal's
    autogroup (every other program of that terminal) keeps its niceness."""
    before = AUTOGROUP.read_text() if AUTOGROUP.exists() else None
    reported, niceness, _ = _lower_priority(6, new_session=False)
    assert niceness == min(19, os.nice(0) + 6)
    assert reported.endswith("no autogroup")
    assert (AUTOGROUP.read_text() if AUTOGROUP.exists() else None) == before


def test_nice_zero_changes_nothing():
    reported, niceness, _ = _lower_priority(0, new_session=True)
    assert niceness == os.nice(0) and reported == f"nice {os.nice(0)}"


def test_live_nice_defaults_to_yielding_to_the_page_tier():
    assert settings().LIVE_NICE == 10
    assert settings(LIVE_NICE="0").LIVE_NICE == 0
