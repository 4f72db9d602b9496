"""Problem naming (webapp/health/queries.py `diagnose`): each cause gets its own sentence, and a
component that is fine is never blamed for another's fault.

The facts are built by hand (the shape `collect()` returns), so every combination is checked
without processes; tests/health/test_heartbeats_e2e.py checks the facts of real processes.
"""

from __future__ import annotations

import copy

import pytest

from webapp.health import queries as status
from webapp.health.queries import diagnose, duration

pytestmark = pytest.mark.unit

NODE = "worker@host-a"


def healthy() -> dict:
    """One worker, beat ticking, the heartbeat task run a minute ago, both queues consumed."""
    return copy.deepcopy(
        {
            "database": {
                "ok": True,
                "partitions_ahead": 2,
                "partitions_wanted": 2,
                "default_partition_rows": 0,
            },
            "broker": {"ok": True, "report_queue_exists": True, "report_consumers": 1},
            "report_queue": {
                "name": "dashboard-logging",
                "exists": True,
                "ready": 0,
                "consumers": 1,
                "unacked": 0,
            },
            "task_queue": {
                "name": "pacer-dashboard-tasks",
                "exists": True,
                "depth": 0,
                "consumers": 1,
            },
            "workers": [
                {
                    "name": NODE,
                    "alive": True,
                    "gone": False,
                    "seen_seconds_ago": 4.0,
                    "started": True,
                    "up_seconds": 3600.0,
                    "held_unacked": 0,
                    "oldest_held_seconds": None,
                    "write_failures": 0,
                }
            ],
            "beat": {"seen": True, "alive": True, "age_seconds": 5.0, "at": "x"},
            "tasks_heartbeat": {
                "at": "2026-12-04T10:00:00+00:00",
                "age_seconds": 50.0,
                "fresh": True,
                "sent_age_seconds": 52.0,
            },
        }
    )


def stale_tasks(facts: dict, age: float = 400.0, sent_age: float | None = 70.0) -> dict:
    facts["tasks_heartbeat"].update(fresh=False, age_seconds=age, sent_age_seconds=sent_age)
    return facts


def stale_beat(facts: dict, age: float = 300.0) -> dict:
    facts["beat"].update(alive=False, age_seconds=age)
    return facts


def test_a_healthy_system_has_no_problem():
    assert diagnose(healthy()) == []


def test_worker_alive_but_task_queue_without_consumer_names_the_task_queue():
    """The incident: the worker heartbeats, beat ticks, nothing consumes the task queue."""
    facts = stale_tasks(healthy())
    facts["task_queue"].update(consumers=0, depth=7)
    assert diagnose(facts) == [
        "no worker consumes pacer-dashboard-tasks (7 tasks waiting; last task run 6 min ago)"
    ]


def test_task_queue_that_does_not_exist_and_no_task_ever_run():
    facts = stale_tasks(healthy(), sent_age=None)
    facts["tasks_heartbeat"].update(at=None, age_seconds=None)
    facts["task_queue"].update(exists=False, depth=None, consumers=0)
    assert diagnose(facts) == [
        "no worker consumes pacer-dashboard-tasks (the queue does not exist yet; "
        "no task has run yet)"
    ]


def test_task_queue_with_consumers_but_a_backlog_says_tasks_are_not_run():
    facts = stale_tasks(healthy())
    facts["task_queue"].update(consumers=2, depth=12)
    assert diagnose(facts) == [
        "tasks are not being run: pacer-dashboard-tasks has 12 tasks waiting and 2 consumers "
        "(last task run 6 min ago)"
    ]


def test_heartbeat_task_sent_by_beat_but_not_run_points_at_the_worker_log():
    facts = stale_tasks(healthy(), age=400.0, sent_age=90.0)
    assert diagnose(facts) == [
        "the heartbeat task beat sent 90 s ago has not run although pacer-dashboard-tasks "
        "has 1 consumer: see the worker log"
    ]


def test_heartbeat_task_just_sent_is_given_time_to_run():
    assert diagnose(stale_tasks(healthy(), age=400.0, sent_age=20.0)) == []


def test_stale_beat_with_fresh_tasks_heartbeat_blames_only_beat():
    facts = stale_beat(healthy())
    assert diagnose(facts) == ["beat has not ticked for 5 min"]


def test_stale_beat_and_stale_tasks_heartbeat_blame_beat_not_the_consumed_task_queue():
    """Beat sends the heartbeat task: when beat stops, the task stops too; the task queue still
    has its consumer, so only beat is named."""
    facts = stale_tasks(stale_beat(healthy(), age=600.0), age=620.0, sent_age=640.0)
    assert diagnose(facts) == ["beat has not ticked for 10 min"]


def test_stale_tasks_heartbeat_with_fresh_beat_never_blames_beat():
    facts = stale_tasks(healthy())
    facts["task_queue"].update(consumers=0, depth=3)
    problems = diagnose(facts)
    assert problems == [
        "no worker consumes pacer-dashboard-tasks (3 tasks waiting; last task run 6 min ago)"
    ]
    assert not [p for p in problems if "beat" in p]


def test_beat_that_never_ticked():
    facts = healthy()
    facts["beat"] = {"seen": False, "alive": False, "age_seconds": None, "at": None}
    assert diagnose(facts) == ["beat has never ticked: no heartbeat from beat (is beat running?)"]


@pytest.mark.parametrize(
    ("held", "oldest", "failures", "expected"),
    [
        (312, 40.0, 0, ["worker worker@host-a holds 312 reports unacked for 40 s"]),
        (1, 125.0, 3, ["worker worker@host-a holds 1 report unacked for 2 min (3 failed writes)"]),
        (500, status.HELD_STALE_SECONDS - 1, 0, []),  # a batch being written: normal
        (0, None, 0, []),
    ],
)
def test_reports_held_unacked_beyond_the_threshold(held, oldest, failures, expected):
    facts = healthy()
    facts["workers"][0].update(
        held_unacked=held, oldest_held_seconds=oldest, write_failures=failures
    )
    assert diagnose(facts) == expected


def test_worker_not_seen_is_named_and_its_held_count_is_not_trusted():
    facts = healthy()
    facts["workers"][0].update(
        alive=False, seen_seconds_ago=90.0, held_unacked=312, oldest_held_seconds=100.0
    )
    assert diagnose(facts) == ["worker worker@host-a not seen for 90 s"]


def test_worker_gone_for_long_is_listed_not_reported():
    facts = healthy()
    facts["workers"][0].update(alive=False, gone=True, seen_seconds_ago=7200.0)
    assert diagnose(facts) == []


def test_worker_stuck_starting():
    """Heartbeat thread alive, worker_ready never came (e.g. start-up hung before the event loop):
    named with the worker; the consequence on the task queue is named with the queue."""
    facts = stale_tasks(healthy())
    facts["workers"][0].update(started=False, up_seconds=300.0, held_unacked=312)
    facts["workers"][0]["oldest_held_seconds"] = 290.0
    facts["task_queue"].update(consumers=0, depth=5)
    assert diagnose(facts) == [
        "no worker consumes pacer-dashboard-tasks (5 tasks waiting; last task run 6 min ago)",
        "worker worker@host-a has not finished starting after 5 min (not ready: it runs no tasks)",
        "worker worker@host-a holds 312 reports unacked for 4 min",
    ]


def test_worker_still_starting_within_the_grace_period_is_fine():
    facts = healthy()
    facts["workers"][0].update(started=False, up_seconds=10.0)
    assert diagnose(facts) == []


def test_report_queue_without_consumer():
    facts = healthy()
    facts["report_queue"].update(consumers=0, ready=1234)
    assert diagnose(facts) == [
        "no worker consumes the report queue dashboard-logging (1234 reports waiting)"
    ]


def test_report_queue_not_declared_yet():
    facts = healthy()
    facts["report_queue"].update(exists=False, consumers=0, ready=None)
    assert diagnose(facts) == [
        "report queue 'dashboard-logging' does not exist yet: no worker has started"
    ]


def test_database_down_judges_nothing_it_cannot_read():
    """Heartbeats live in the database: without it no worker or beat is accused."""
    facts = stale_tasks(stale_beat(healthy()))
    facts["database"] = {"ok": False, "error": "OperationalError: connection refused"}
    facts["workers"] = []
    assert diagnose(facts) == ["database unreachable"]


def test_broker_down_judges_no_queue():
    facts = stale_tasks(healthy())
    facts["broker"] = {"ok": False, "error": "ConnectionRefusedError"}
    facts["task_queue"].update(consumers=0, exists=False)
    facts["report_queue"].update(consumers=0, exists=False)
    assert diagnose(facts) == ["broker unreachable"]


def test_partitions():
    facts = healthy()
    facts["database"].update(partitions_ahead=1, default_partition_rows=17)
    assert diagnose(facts) == [
        "only 1 partitions ahead (want 2); run `flask partitions create`",
        "17 rows in the default partition; run `flask partitions create`",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (40.7, "40 s"),
        (119, "119 s"),
        (300, "5 min"),
        (7300, "2 h"),
        (3 * 86400, "3 days"),
    ],
)
def test_duration(seconds, text):
    assert duration(seconds) == text
