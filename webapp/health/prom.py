"""What /metrics exposes, built with prometheus-client (its escaping, types and OpenMetrics).

Three sources, gathered into one registry per scrape:

- The database (`DatabaseCollector`): totals from the hourly rollups, the quarantine, the
  heartbeat rows and the partition count, read once per scrape, never a scan of `messages`.
  Each ingest worker's batch durations arrive here too: the worker keeps a small cumulative
  histogram (`webapp/health/batch_histogram.py`) and writes it into its heartbeat row
  (`worker:<node>`), so the web process exposes it whatever host the worker runs on.
- The broker: the report queue's depth and consumers.
- This web server's own request latency per route (`pacer_dashboard_http_request_duration_seconds`,
  labelled by the URL rule, never the raw path, so the series stay bounded). gunicorn runs several
  worker processes: with `PROMETHEUS_MULTIPROC_DIR` set (`python -m webapp.processes web` sets it,
  under RUN_DIR) every process writes its observations there and each scrape adds them all up,
  whichever process answers it. Without it (the Flask test client, `flask run`) the process's own
  histogram is exposed.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from flask import g, request
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import text

from models.messages import PARTITION_PREFIX

from . import batch_histogram, bp
from .metrics_access import cap_message_types

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Request latency buckets (seconds): pages answer in milliseconds, exports take seconds.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Methods with their own label value; anything else a client sends is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The route label of a request no URL rule matched (404, 405): never the raw path.
UNMATCHED = "unmatched"

REQUEST_SECONDS = Histogram(
    "pacer_dashboard_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL rule (the route, not the raw path) and method.",
    ["route", "method"],
    buckets=REQUEST_BUCKETS,
    registry=None,
)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


@bp.record_once
def _time_every_request(state) -> None:
    # First of all before_request functions: a request refused by a later one (CSRF, bearer
    # token, websocket origin) is timed too.
    state.app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)


@bp.teardown_app_request
def _observe(_error=None) -> None:
    started = g.pop("metrics_started", None)
    if started is None:
        return
    rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    if rule.startswith("/ws/"):
        return  # a socket lives for minutes: not a request latency
    method = request.method if request.method in METHODS else "other"
    REQUEST_SECONDS.labels(rule, method).observe(time.perf_counter() - started)


class _Fixed:
    """A collector over families already built (read once per scrape)."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self):
        return iter(self.families)


class _ThisProcess:
    """The request histogram of this process (when no multiprocess directory is set)."""

    def collect(self):
        return REQUEST_SECONDS.collect()


def exposition(accept: str, database: DatabaseSnapshot, broker: dict) -> tuple[bytes, str]:
    """The /metrics body and its content type, in the format the client's Accept asks for
    (OpenMetrics for `application/openmetrics-text`, else the Prometheus text format)."""
    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_ThisProcess())
    registry.register(_Fixed(families(database, broker)))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


@dataclass
class DatabaseSnapshot:
    """What one scrape reads from the database (`up` False: it did not answer)."""

    up: bool = False
    by_type: list = field(default_factory=list)
    quarantined: tuple = (0, 0)
    ingest_rows: list = field(default_factory=list)
    beats: list = field(default_factory=list)
    partitions: int = 0


def read_database(db) -> DatabaseSnapshot:
    """Rollups, quarantine, heartbeats and partitions: a few cheap queries."""
    try:
        conn = db.session.connection()
        snapshot = DatabaseSnapshot(
            up=True,
            by_type=conn.execute(
                text(
                    "SELECT message_type, sum(total) AS total, sum(errored) AS errored, "
                    "extract(epoch FROM least(max(bucket) + interval '1 hour', now())) "
                    "AS last_seen FROM message_stats GROUP BY message_type ORDER BY message_type"
                )
            ).all(),
            quarantined=tuple(
                conn.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE replayed_at IS NULL), count(*) "
                        "FROM quarantined_reports"
                    )
                ).one()
            ),
            ingest_rows=conn.execute(
                text("SELECT name, at, detail FROM heartbeats WHERE name LIKE 'ingest:%'")
            ).all(),
            beats=conn.execute(
                text(
                    "SELECT name, extract(epoch FROM now() - at) AS age, detail FROM heartbeats "
                    "WHERE name NOT LIKE 'ingest:%' ORDER BY name"
                )
            ).all(),
            partitions=conn.execute(
                text(
                    "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'messages'::regclass AND c.relname LIKE :p"
                ),
                {"p": PARTITION_PREFIX + "%"},
            ).scalar_one(),
        )
        db.session.rollback()
        return snapshot
    except Exception:  # noqa: BLE001 - /metrics then says database_up 0
        logger.exception("metrics: database unavailable")
        db.session.rollback()
        return DatabaseSnapshot()


def _gauge(name: str, help_text: str, samples, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=list(labels))
    for values, value in samples:
        family.add_metric(list(values), float(value))
    return family


def _counter(name: str, help_text: str, samples, labels: tuple[str, ...] = ()) -> Metric:
    family = CounterMetricFamily(name, help_text, labels=list(labels))
    for values, value in samples:
        family.add_metric(list(values), float(value))
    return family


def families(snapshot: DatabaseSnapshot, broker: dict) -> list[Metric]:
    """The metric families of the database and broker reads (names and labels unchanged since
    the hand-written format, plus the batch duration histogram and last-seen per type)."""
    types = cap_message_types(snapshot.by_type)
    workers = list(snapshot.ingest_rows)
    worker_beats = [b for b in snapshot.beats if b.name.startswith("worker:")]
    ingest = [(w.name.removeprefix("ingest:"), w) for w in workers]
    # The `ingest:<host>:<pid>` row is written inside the batch's transaction, before the batch's
    # duration is known: the duration is in the same process's `worker:<node>` row.
    durations = {
        f"{(b.detail or {}).get('host')}:{(b.detail or {}).get('pid')}": (b.detail or {}).get(
            "last_batch_seconds"
        )
        for b in worker_beats
    }
    return [
        _gauge("pacer_dashboard_database_up", "1 when the database answered.", [((), snapshot.up)]),
        _counter(
            "pacer_dashboard_reports_ingested_total",
            "Reports stored, by message type (from the hourly rollups).",
            [((t.message_type,), t.total) for t in types],
            ("message_type",),
        ),
        _counter(
            "pacer_dashboard_reports_errored_total",
            "Stored reports that carried errors, by message type.",
            [((t.message_type,), t.errored) for t in types],
            ("message_type",),
        ),
        _gauge(
            "pacer_dashboard_message_type_last_seen_timestamp_seconds",
            "Unix time of the end of the latest hour with a report of this type (hourly "
            "rollups, at most now): a type that falls silent is seen within the hour.",
            [((t.message_type,), t.last_seen) for t in types if t.last_seen is not None],
            ("message_type",),
        ),
        _counter(
            "pacer_dashboard_reports_quarantined_total",
            "Bodies quarantined as not-a-report (replayed or not).",
            [((), int(snapshot.quarantined[1]))],
        ),
        _gauge(
            "pacer_dashboard_quarantine_waiting",
            "Quarantined bodies not yet replayed.",
            [((), int(snapshot.quarantined[0]))],
        ),
        _gauge(
            "pacer_dashboard_ingest_batch_seconds",
            "Duration of the last committed batch, per worker.",
            [
                ((n,), (w.detail or {}).get("last_batch_seconds") or durations.get(n) or 0)
                for n, w in ingest
            ],
            ("worker",),
        ),
        _gauge(
            "pacer_dashboard_ingest_batch_size",
            "Reports in the last committed batch, per worker.",
            [((n,), (w.detail or {}).get("last_batch_size") or 0) for n, w in ingest],
            ("worker",),
        ),
        _gauge(
            "pacer_dashboard_ingest_last_batch_timestamp_seconds",
            "Unix time of the last committed batch, per worker.",
            [((n,), round(w.at.timestamp(), 3)) for n, w in ingest],
            ("worker",),
        ),
        _batch_durations(worker_beats),
        _gauge(
            "pacer_dashboard_heartbeat_age_seconds",
            "Seconds since each process's heartbeat: beat, tasks (the heartbeat task), "
            "worker:<node>.",
            [((b.name,), round(float(b.age), 1)) for b in snapshot.beats],
            ("heartbeat",),
        ),
        _gauge(
            "pacer_dashboard_worker_reports_held",
            "Reports a worker holds unacked (pending + in flight + retry), as of its heartbeat.",
            [
                ((b.name.removeprefix("worker:"),), (b.detail or {}).get("held_unacked") or 0)
                for b in worker_beats
            ],
            ("worker",),
        ),
        _gauge(
            "pacer_dashboard_report_queue_messages",
            "Reports waiting in the report queue (queue lag); -1 when the broker is unreachable.",
            [((), broker.get("report_queue_depth", 0 if broker.get("ok") else -1))],
        ),
        _gauge(
            "pacer_dashboard_report_queue_consumers",
            "Consumers on the report queue.",
            [((), broker.get("report_consumers", 0))],
        ),
        _gauge(
            "pacer_dashboard_partitions",
            "Range partitions of messages.",
            [((), snapshot.partitions)],
        ),
    ]


def _batch_durations(worker_beats: list) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "pacer_dashboard_ingest_batch_duration_seconds",
        "Time to prepare and commit one ingest batch, per worker (cumulative since the worker "
        "started, from its heartbeat row).",
        labels=["worker"],
    )
    for beat in worker_beats:
        histogram = batch_histogram.from_detail(beat.detail)
        if histogram is None:
            continue
        buckets, total = histogram
        family.add_metric([beat.name.removeprefix("worker:")], buckets, total)
    return family
