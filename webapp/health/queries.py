"""The system's state, read once for both `/healthz` (JSON) and the System page (HTML).

`collect()` reads the facts (database, broker, RabbitMQ management API, heartbeat rows) and
`diagnose()` names what is wrong from those facts alone: each problem names the component that is
wrong, never a bystander. The heartbeats (webapp/health/heartbeats.py) are what make that
possible: beat writes its own row, each worker its own, and the heartbeat task (run by a worker
from the task queue) proves the task queue is consumed.

Status: `down` (HTTP 503) when the database or the broker cannot be reached: this web process
cannot do its job. Everything else that is wrong (a worker missing or stuck, beat not ticking,
a queue without consumers, partitions) is `degraded` (HTTP 200, with `problems`): the web process
itself is fine and must not be restarted or taken out of a load balancer for it.

Cheap by design: a handful of small queries (no scan of `messages`), two passive queue
declarations on one broker connection and one management API request (2 s timeout; after a
failure it is skipped for a minute and unacked counts come from the workers' heartbeats).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from urllib.parse import quote

from flask import current_app
from sqlalchemy import text

from ..extensions import db
from ..partitions import services as partitions
from . import clock, heartbeats

logger = logging.getLogger(__name__)

#: A worker writes every 10 s: three missed heartbeats and some slack = not seen.
WORKER_STALE_SECONDS = 45
#: A worker not seen for longer than this is listed as gone, no longer reported as a problem
#: (its row is deleted after a day by the heartbeat task).
WORKER_FORGET_SECONDS = 3600
#: A worker that has not reached 'ready' this long after it started is stuck starting.
WORKER_START_SECONDS = 60
#: A delivery held unacked this long means a batch is stuck (normally well under a second).
HELD_STALE_SECONDS = 30
#: Beat writes its row every 15 s.
BEAT_STALE_SECONDS = 90
#: Beat sends the heartbeat task every 60 s; a worker runs it within seconds.
TASKS_STALE_SECONDS = 180
#: Grace for the heartbeat task beat says it sent: queued, received, run.
TASK_RUN_GRACE_SECONDS = 60
MANAGEMENT_TIMEOUT_SECONDS = 2.0
MANAGEMENT_RETRY_SECONDS = 60.0
HEARTBEAT_TASKS = ("tasks.maintenance.tasks_heartbeat", "tasks.maintenance.beat_heartbeat")

#: Management API base URLs that failed recently -> monotonic time to try again.
_management_down_until: dict[str, float] = {}


def system_status() -> tuple[dict, int]:
    """The whole state with its problems and overall status, and the HTTP status for /healthz."""
    facts = collect()
    problems = diagnose(facts)
    down = not facts["database"]["ok"] or not facts["broker"]["ok"]
    status = "down" if down else ("degraded" if problems else "ok")
    return {"status": status, "problems": problems, **facts}, 503 if down else 200


# ---- facts ----------------------------------------------------------------------------------


def collect() -> dict:
    """Everything /healthz and the System page show, read now."""
    settings = current_app.extensions["settings"]
    database, rows, now = _read_database()
    if database["ok"]:
        database["partitions_wanted"] = settings.MESSAGE_PARTITIONS_AHEAD
        database["report_clock"] = _report_clock(settings)
    broker, report_queue, task_queue = read_broker(settings)
    workers = [_worker(r) for r in rows if r["name"].startswith(heartbeats.WORKER_PREFIX)]
    workers.sort(key=lambda w: (w["gone"], w["name"]))
    beat_row = next((r for r in rows if r["name"] == heartbeats.BEAT), None)
    tasks_row = next((r for r in rows if r["name"] == heartbeats.TASKS), None)
    schedule = list((beat_row or {}).get("detail", {}).get("schedule") or [])

    management = {"reachable": False}
    if broker["ok"] and report_queue["exists"]:
        management = _read_management(settings, settings.DASHBOARD_QUEUE)
    if management.get("reachable") and management.get("unacked") is not None:
        report_queue["unacked"] = management["unacked"]
        report_queue["unacked_source"] = "management"
    elif database["ok"]:
        report_queue["unacked"] = sum(w["held_unacked"] or 0 for w in workers if w["alive"])
        report_queue["unacked_source"] = "workers"

    if database["ok"]:
        database["beat_heartbeat"] = beat_row["at"].isoformat() if beat_row else None
        batches = [
            r["detail"].get("last_batch_at")
            for r in rows
            if r["name"].startswith((heartbeats.INGEST_PREFIX, heartbeats.WORKER_PREFIX))
        ]
        database["last_ingest_at"] = max((b for b in batches if b), default=None)

    sent = next((e for e in schedule if e.get("task") in HEARTBEAT_TASKS), None)
    return {
        "time": (now or datetime.now(UTC)).isoformat(),
        "database": database,
        "broker": broker,
        "report_queue": report_queue,
        "task_queue": task_queue,
        "workers": workers,
        "beat": {
            "seen": beat_row is not None,
            "at": beat_row["at"].isoformat() if beat_row else None,
            "age_seconds": beat_row["age"] if beat_row else None,
            "alive": beat_row is not None and beat_row["age"] <= BEAT_STALE_SECONDS,
            "host": (beat_row or {}).get("detail", {}).get("host"),
            "pid": (beat_row or {}).get("detail", {}).get("pid"),
        },
        "schedule": schedule,
        "tasks_heartbeat": {
            "at": tasks_row["at"].isoformat() if tasks_row else None,
            "age_seconds": tasks_row["age"] if tasks_row else None,
            "fresh": tasks_row is not None and tasks_row["age"] <= TASKS_STALE_SECONDS,
            "worker": (tasks_row or {}).get("detail", {}).get("worker"),
            "sent_at": (sent or {}).get("last_run_at"),
            "sent_age_seconds": _age(sent.get("last_run_at"), now) if sent and now else None,
        },
        "management": management,
    }


def _read_database() -> tuple[dict, list[dict], datetime | None]:
    try:
        conn = db.session.connection()
        now = conn.execute(text("SELECT now()")).scalar_one()
        ahead = partitions.partitions_ahead(conn)
        default_rows = partitions.default_partition_rows(conn)
        rows = [
            {"name": r.name, "at": r.at, "detail": r.detail or {}, "age": float(r.age)}
            for r in conn.execute(
                text(
                    "SELECT name, at, detail, extract(epoch FROM now() - at) AS age "
                    "FROM heartbeats ORDER BY name"
                )
            )
        ]
        db.session.rollback()
    except Exception as exc:  # noqa: BLE001 - any failure means "down", with its reason
        db.session.rollback()
        return {"ok": False, "error": _error_text(exc)}, [], None
    database = {"ok": True, "partitions_ahead": ahead, "default_partition_rows": default_rows}
    return database, rows, now


def _report_clock(settings) -> dict | None:
    """Whole-hour offset of the newest reports' processing times from their arrival
    (webapp/health/clock.py: PACER_TIMEZONE probably wrong); None when it cannot be read."""
    try:
        samples = clock.read_samples(db.session.connection())
        db.session.rollback()
    except Exception:  # noqa: BLE001 - a health page never fails for this check
        logger.warning("reading the newest reports' processing times failed", exc_info=True)
        db.session.rollback()
        return None
    return {**clock.clock_offset(samples, settings.timezone), "setting": settings.PACER_TIMEZONE}


def read_broker(settings) -> tuple[dict, dict, dict]:
    """Passive declarations of the report queue and the task queue (ready count, consumers)."""
    from amqp.exceptions import NotFound
    from kombu import Connection

    report = {"name": settings.DASHBOARD_QUEUE, "exists": False, "ready": None, "consumers": 0}
    report.update(unacked=None, unacked_source=None)
    tasks = {"name": settings.CELERY_QUEUE, "exists": False, "depth": None, "consumers": 0}

    def declare(conn, name: str) -> tuple[int, int] | None:
        channel = conn.channel()
        try:
            _, messages, consumers = channel.queue_declare(queue=name, passive=True)
            return messages, consumers
        except NotFound:
            return None  # the broker closed this channel; the connection stays usable
        finally:
            try:
                channel.close()
            except Exception:  # noqa: BLE001, S110 - already closed by the broker
                pass

    try:
        with Connection(settings.broker_url, ssl=settings.broker_use_ssl, connect_timeout=3) as c:
            c.ensure_connection(max_retries=1, timeout=3)
            found_report = declare(c, settings.DASHBOARD_QUEUE)
            found_tasks = declare(c, settings.CELERY_QUEUE)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": _error_text(exc)[:200]}, report, tasks
    if found_report is None:
        # The broker answers; the queue appears when the first worker declares it.
        broker = {"ok": True, "report_queue_exists": False, "report_consumers": 0}
    else:
        ready, consumers = found_report
        report.update(exists=True, ready=ready, consumers=consumers)
        broker = {
            "ok": True,
            "report_queue_exists": True,
            "report_queue_depth": ready,
            "report_consumers": consumers,
        }
    if found_tasks is not None:
        tasks.update(exists=True, depth=found_tasks[0], consumers=found_tasks[1])
    return broker, report, tasks


def management_url(settings) -> str:
    """Base URL of the RabbitMQ management API (https when the broker is spoken to over TLS)."""
    scheme = "https" if settings.broker_use_ssl else "http"
    return f"{scheme}://{settings.RMQ_HOST}:{settings.RMQ_MANAGEMENT_PORT}/api"


def _read_management(settings, queue: str) -> dict:
    """The report queue's unacked count from the management API; unreachable is no error."""
    import requests

    base = management_url(settings)
    if time.monotonic() < _management_down_until.get(base, 0.0):
        return {"reachable": False, "error": "unreachable recently; not asked again yet"}
    url = f"{base}/queues/{quote(settings.RMQ_VHOST, safe='')}/{quote(queue, safe='')}"
    try:
        response = requests.get(
            url,
            auth=(settings.RMQ_USERNAME, settings.RMQ_PASSWORD),
            timeout=MANAGEMENT_TIMEOUT_SECONDS,
        )
        response.raise_for_status()
        body = response.json()
    except Exception as exc:  # noqa: BLE001 - optional source: fall back to the heartbeats
        _management_down_until[base] = time.monotonic() + MANAGEMENT_RETRY_SECONDS
        return {"reachable": False, "error": _error_text(exc)[:200]}
    _management_down_until.pop(base, None)
    # The statistics are refreshed every few seconds; before the first refresh the key is absent.
    return {"reachable": True, "unacked": body.get("messages_unacknowledged")}


def _worker(row: dict) -> dict:
    detail, age = row["detail"], row["age"]
    held = detail.get("held_unacked") or 0
    oldest = detail.get("oldest_held_seconds")
    alive = age <= WORKER_STALE_SECONDS
    return {
        "name": row["name"].removeprefix(heartbeats.WORKER_PREFIX),
        "alive": alive,
        "gone": age > WORKER_FORGET_SECONDS,
        "seen_at": row["at"].isoformat(),
        "seen_seconds_ago": round(age, 1),
        "host": detail.get("host"),
        "pid": detail.get("pid"),
        "started": bool(detail.get("started")),
        "ready_at": detail.get("ready_at"),
        # Figures are as of the heartbeat: time has passed since, for the process and the held.
        "up_seconds": _plus(detail.get("up_seconds"), age),
        "consuming_reports": bool(detail.get("consuming_reports")),
        "reports_enabled": detail.get("reports_enabled", True),
        "held_unacked": held,
        "held_pending": detail.get("held_pending"),
        "held_in_flight": detail.get("held_in_flight"),
        "held_retry": detail.get("held_retry"),
        "oldest_held_seconds": _plus(oldest, age) if held else None,
        "write_failures": detail.get("write_failures") or 0,
        "last_batch_at": detail.get("last_batch_at"),
        "last_batch_size": detail.get("last_batch_size"),
        "last_batch_seconds": detail.get("last_batch_seconds"),
        "totals": detail.get("totals") or {},
    }


# ---- problems -------------------------------------------------------------------------------


def diagnose(facts: dict) -> list[str]:
    """Each problem named for the component that is wrong (pure: facts in, sentences out)."""
    database, broker = facts["database"], facts["broker"]
    problems: list[str] = []
    if not database["ok"]:
        problems.append("database unreachable")
    if not broker["ok"]:
        problems.append("broker unreachable")

    if database["ok"]:
        if database["partitions_ahead"] < database["partitions_wanted"]:
            problems.append(
                f"only {database['partitions_ahead']} partitions ahead "
                f"(want {database['partitions_wanted']}); run `flask partitions create`"
            )
        if database["default_partition_rows"]:
            problems.append(
                f"{database['default_partition_rows']} rows in the default partition; "
                "run `flask partitions create`"
            )
        report_clock = database.get("report_clock")
        clock_problem = clock.problem(report_clock, (report_clock or {}).get("setting", "UTC"))
        if clock_problem:
            problems.append(clock_problem)

    report_queue = facts["report_queue"]
    if broker["ok"]:
        if not report_queue["exists"]:
            problems.append(
                f"report queue '{report_queue['name']}' does not exist yet: no worker has started"
            )
        elif not report_queue["consumers"]:
            problems.append(
                f"no worker consumes the report queue {report_queue['name']} "
                f"({_count(report_queue['ready'], 'report')} waiting)"
            )

    if database["ok"]:
        problems += _task_queue_problems(facts)
        problems += _beat_problems(facts["beat"])
        for worker in facts["workers"]:
            problems += _worker_problems(worker)
    return problems


def _task_queue_problems(facts: dict) -> list[str]:
    """The task queue is proven consumed by the heartbeat task's row; only when that proof is
    missing do the queue's consumers and depth say why. Beat not sending is beat's problem."""
    tasks, heartbeat = facts["task_queue"], facts["tasks_heartbeat"]
    if heartbeat["fresh"] or not facts["broker"]["ok"]:
        return []
    last = (
        f"last task run {duration(heartbeat['age_seconds'])} ago"
        if heartbeat["at"]
        else "no task has run yet"
    )
    if not tasks["consumers"]:
        waiting = (
            f"{_count(tasks['depth'], 'task')} waiting"
            if tasks["exists"]
            else "the queue does not exist yet"
        )
        return [f"no worker consumes {tasks['name']} ({waiting}; {last})"]
    if tasks["depth"]:
        return [
            f"tasks are not being run: {tasks['name']} has {_count(tasks['depth'], 'task')} "
            f"waiting and {_count(tasks['consumers'], 'consumer')} ({last})"
        ]
    sent_age = heartbeat["sent_age_seconds"]
    sent_after_last_run = heartbeat["at"] is None or (
        sent_age is not None and sent_age < heartbeat["age_seconds"]
    )
    if (
        facts["beat"]["alive"]
        and sent_age is not None
        and sent_age > TASK_RUN_GRACE_SECONDS
        and sent_after_last_run
    ):
        return [
            f"the heartbeat task beat sent {duration(sent_age)} ago has not run although "
            f"{tasks['name']} has {_count(tasks['consumers'], 'consumer')}: see the worker log"
        ]
    return []


def _beat_problems(beat: dict) -> list[str]:
    if not beat["seen"]:
        return ["beat has never ticked: no heartbeat from beat (is beat running?)"]
    if not beat["alive"]:
        return [f"beat has not ticked for {duration(beat['age_seconds'])}"]
    return []


def _worker_problems(worker: dict) -> list[str]:
    name = worker["name"]
    if worker["gone"]:
        return []
    if not worker["alive"]:
        return [f"worker {name} not seen for {duration(worker['seen_seconds_ago'])}"]
    problems = []
    up = worker["up_seconds"]
    if not worker["started"] and up is not None and up > WORKER_START_SECONDS:
        problems.append(
            f"worker {name} has not finished starting after {duration(up)} (not ready: "
            "it runs no tasks)"
        )
    oldest = worker["oldest_held_seconds"]
    if worker["held_unacked"] and oldest is not None and oldest > HELD_STALE_SECONDS:
        failing = (
            f" ({_count(worker['write_failures'], 'failed write')})"
            if worker["write_failures"]
            else ""
        )
        problems.append(
            f"worker {name} holds {_count(worker['held_unacked'], 'report')} unacked "
            f"for {duration(oldest)}{failing}"
        )
    return problems


# ---- helpers --------------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """40 s, 5 min, 3 h, 2 days."""
    if seconds is None:
        return "an unknown time"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _count(n: int | None, noun: str) -> str:
    n = n or 0
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _plus(value: float | None, seconds: float) -> float | None:
    return None if value is None else round(value + seconds, 1)


def _age(iso: str | None, now: datetime | None) -> float | None:
    if not iso or now is None:
        return None
    try:
        return (now - datetime.fromisoformat(iso)).total_seconds()
    except (TypeError, ValueError):
        return None


def _error_text(exc: BaseException) -> str:
    text_ = str(exc).strip()
    return f"{type(exc).__name__}: {text_.splitlines()[0] if text_ else ''}".rstrip(": ")
