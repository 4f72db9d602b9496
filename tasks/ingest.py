"""The report consumer: a Kombu ConsumerStep inside the Celery worker (DESIGN §5).

Callbacks run in the worker's consumer thread and only buffer the raw delivery. The buffer is
written by `writer.write_batch` when it holds INGEST_BATCH_SIZE reports or INGEST_FLUSH_MS after its
first report, on the worker's event-loop timer; every delivery of the batch is acked only after
the commit. When PostgreSQL is unreachable the step keeps the deliveries unacked, backs off
exponentially and retries; RabbitMQ keeps everything beyond the prefetch window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg2
from celery import bootsteps
from kombu import Consumer, Exchange, Queue

from webapp.ingest.writer import ParseOptions, RawReport, write_batch

logger = logging.getLogger("pacer_dashboard.ingest")

BACKOFF_MAX_SECONDS = 30.0


def report_queue(settings) -> Queue:
    """The durable report queue bound to the direct dashboard exchange."""
    exchange = Exchange(settings.DASHBOARD_EXCHANGE, type="direct", durable=True)
    return Queue(
        settings.DASHBOARD_QUEUE,
        exchange=exchange,
        routing_key=settings.DASHBOARD_ROUTING_KEY,
        durable=True,
    )


class ReportIngestor:
    """Buffer + flush logic, independent of Celery so it can be driven directly in tests."""

    def __init__(self, settings, connect: Callable[[], psycopg2.extensions.connection]):
        self.settings = settings
        self.connect = connect
        self.options = ParseOptions(
            task_name=settings.REPORT_TASK_NAME,
            timezone=settings.timezone,
            max_bytes=settings.REPORT_MAX_BYTES,
        )
        self.batch_size = settings.INGEST_BATCH_SIZE
        self.flush_seconds = settings.INGEST_FLUSH_MS / 1000
        self.buffer: list = []  # kombu Messages
        self.first_buffered_at: float | None = None
        self.conn = None
        self.failures = 0
        self.retry_at = 0.0
        self.totals = {"stored": 0, "duplicates": 0, "quarantined": 0, "batches": 0}

    # called from kombu ------------------------------------------------------------------------
    def on_message(self, message) -> None:
        if not self.buffer:
            self.first_buffered_at = time.monotonic()
        self.buffer.append(message)
        if len(self.buffer) >= self.batch_size:
            self.flush()

    def tick(self) -> None:
        """Timer callback: flush a partial batch once it is INGEST_FLUSH_MS old."""
        if self.buffer and time.monotonic() - (self.first_buffered_at or 0) >= self.flush_seconds:
            self.flush()

    # the work -----------------------------------------------------------------------------------
    def flush(self) -> bool:
        """Write and ack the buffer. False (nothing acked) when the database is unavailable."""
        if not self.buffer:
            return True
        if time.monotonic() < self.retry_at:
            return False
        batch = self.buffer
        raws = [
            RawReport(
                body=m.body if isinstance(m.body, bytes) else str(m.body).encode(),
                content_type=m.content_type,
                headers=dict(m.headers or {}),
                routing_key=m.delivery_info.get("routing_key"),
            )
            for m in batch
        ]
        try:
            if self.conn is None or self.conn.closed:
                self.conn = self.connect()
            result = write_batch(self.conn, raws, self.options)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            self._close()
            self.failures += 1
            delay = min(BACKOFF_MAX_SECONDS, 0.5 * 2 ** min(self.failures, 10))
            self.retry_at = time.monotonic() + delay
            logger.error(
                "database unavailable (%s); %d reports held unacked, retry in %.1f s",
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                len(batch),
                delay,
            )
            return False
        except Exception:  # noqa: BLE001 - never crash the consumer; keep the reports unacked
            self._close()
            self.failures += 1
            delay = min(BACKOFF_MAX_SECONDS, 0.5 * 2 ** min(self.failures, 10))
            self.retry_at = time.monotonic() + delay
            logger.exception("batch write failed; %d reports held unacked", len(batch))
            return False
        # Committed: now, and only now, ack. A failed ack means a redelivery, deduped later.
        self.buffer, self.first_buffered_at = [], None
        for message in batch:
            try:
                message.ack()
            except Exception:  # noqa: BLE001 - channel gone: the broker will redeliver
                logger.warning(
                    "ack failed after commit; the report will be redelivered and deduped"
                )
                break
        if self.failures:
            logger.warning("database is back; ingestion resumed after %d failures", self.failures)
        self.failures, self.retry_at = 0, 0.0
        self.totals["stored"] += result.stored
        self.totals["duplicates"] += result.duplicates
        self.totals["quarantined"] += result.quarantined
        self.totals["batches"] += 1
        logger.info(
            "batch: %d stored, %d duplicates, %d quarantined in %.0f ms",
            result.stored,
            result.duplicates,
            result.quarantined,
            result.seconds * 1000,
        )
        return True

    def drop_unacked(self) -> None:
        """The channel is gone: its deliveries will be redelivered; forget them here."""
        if self.buffer:
            logger.info("dropping %d unacked deliveries of a closed channel", len(self.buffer))
        self.buffer, self.first_buffered_at = [], None

    def _close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
        self.conn = None

    def close(self) -> None:
        self._close()


class ReportConsumerStep(bootsteps.ConsumerStep):
    """Consumes the report queue in the worker (`celery -A wsgi.celery_app worker`).

    Disabled with `--without-reports` (e.g. for a worker that should run only tasks).
    """

    def __init__(self, parent, without_reports: bool = False, **kwargs):
        self.enabled = not without_reports
        self.flask_app = parent.app.flask_app
        self.ingestor: ReportIngestor | None = None
        self.timer_entry = None
        super().__init__(parent, **kwargs)

    def get_consumers(self, channel):
        settings = self.flask_app.extensions["settings"]
        if self.ingestor is None:
            self.ingestor = ReportIngestor(settings, lambda: _connect(settings))
        prefetch = settings.ingest_prefetch
        consumer = Consumer(
            channel,
            queues=[report_queue(settings)],
            on_message=self.ingestor.on_message,
            accept=None,
            no_ack=False,
            prefetch_count=prefetch,
            auto_declare=True,
        )
        logger.info(
            "consuming reports from %s (batch %d, flush %d ms, prefetch %d)",
            settings.DASHBOARD_QUEUE,
            settings.INGEST_BATCH_SIZE,
            settings.INGEST_FLUSH_MS,
            prefetch,
        )
        return [consumer]

    def start(self, c):
        super().start(c)
        if self.ingestor is not None and self.timer_entry is None:
            interval = max(0.02, min(self.ingestor.flush_seconds / 2, 0.25))
            self.timer_entry = c.timer.call_repeatedly(interval, self._tick)

    def _tick(self):
        try:
            if self.ingestor is not None:
                self.ingestor.tick()
        except Exception:  # noqa: BLE001 - never kill the timer
            logger.exception("report flush failed")

    def stop(self, c):
        # Connection lost or worker stopping: try to commit + ack what we hold, else forget it.
        if self.ingestor is not None:
            try:
                if not self.ingestor.flush():
                    self.ingestor.drop_unacked()
            except Exception:  # noqa: BLE001
                logger.exception("flush on stop failed")
                self.ingestor.drop_unacked()
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None
        super().stop(c)

    def shutdown(self, c):
        self.stop(c)
        if self.ingestor is not None:
            self.ingestor.close()
        super().shutdown(c)


def _connect(settings):
    conn = psycopg2.connect(
        host=settings.POSTGRES_HOST,
        port=settings.POSTGRES_PORT,
        dbname=settings.POSTGRES_DB,
        user=settings.POSTGRES_USER,
        password=settings.POSTGRES_PASSWORD or None,
        application_name="pacer-dashboard-ingest",
        connect_timeout=5,
        keepalives=1,
        keepalives_idle=30,
    )
    conn.autocommit = False
    return conn
